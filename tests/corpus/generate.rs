//! The generator of the bad-input corpus under `tests/corpus/`: small valid files (a CSR model,
//! a dense checkpoint, an IDX data set, a recipe) and, from each, every kind of damage a reader
//! must refuse. Files are laid out by hand here (safetensors headers, IDX headers, gzip members)
//! rather than written by ticket's own writers, so the corpus stays the same when the writers
//! change and can lie in ways no writer would.
//!
//! `tests/bad_inputs.rs` checks that the files on disk are exactly what [`corpus`] returns and
//! rewrites them when `TICKET_WRITE_CORPUS=1` is set.
//!
//! Layout (paths relative to `tests/corpus/`):
//! - `valid/`: the undamaged files every case is derived from; the commands must accept them
//!   (`conv-*`: version-2 files of a small conv net, the others version-1 MLP files);
//! - `csr/*.safetensors`: CSR models that `ticket infer` must refuse;
//! - `dense/*.safetensors`: checkpoints that `ticket export` and `ticket train --mask` refuse;
//! - `dense-values/*.safetensors`: checkpoints with NaN or infinite kept weights or biases,
//!   refused by `ticket export` (`train --mask` reads only the masks of a checkpoint);
//! - `batch/*.safetensors`: input batches that `ticket infer MODEL --input` refuses;
//! - `idx/CASE/FILE`: IDX files that replace `FILE` of `valid/idx/` for `ticket train --data`;
//! - `recipe/*.toml`: recipes that `ticket train --model` refuses;
//! - `import/*`: ONNX files and PyTorch state dicts that `ticket export` refuses
//!   (`import_cases.rs`);
//! - `request/*.json`, `request/*.bin`: infer requests that `ticket serve` answers with 400 when
//!   serving `valid/model.safetensors`; a `.bin` file's first line is its
//!   `Inference-Header-Content-Length`, the rest its body (JSON header, then binary tensors);
//! - `sweep/*.toml`: sweep files that `ticket sweep` refuses;
//! - `expected.tsv`: for every damaged file, `path<TAB>text`: the text its error must contain,
//!   whichever command reads it.

use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

#[path = "import_cases.rs"]
mod import_cases;

/// One file of the corpus.
pub struct CorpusFile {
    /// Relative to `tests/corpus/`.
    pub path: String,
    pub bytes: Vec<u8>,
}

/// The manifest of expected problems, relative to `tests/corpus/`.
pub const MANIFEST: &str = "expected.tsv";

/// Widths of the valid models: digits-shaped (64 pixels, 10 classes) with a small hidden layer.
pub const ARCH: &str = "64-6-10";
const SIZES: [usize; 3] = [64, 6, 10];
/// Examples in the valid IDX training and test sets (8 x 8 images).
const TRAIN_EXAMPLES: usize = 12;
const TEST_EXAMPLES: usize = 4;

/// Every file of the corpus, in a fixed order.
pub fn corpus() -> Vec<CorpusFile> {
    let mut files = Vec::new();
    let mut add = |path: String, bytes: Vec<u8>| files.push(CorpusFile { path, bytes });

    let csr = csr_model();
    let dense = dense_checkpoint();
    let batch = input_batch(3);
    add("valid/model.safetensors".into(), csr.bytes());
    add("valid/checkpoint.safetensors".into(), dense.bytes());
    add("valid/batch.safetensors".into(), batch.bytes());
    add("valid/empty-batch.safetensors".into(), input_batch(0).bytes());
    add("valid/recipe.toml".into(), RECIPE.as_bytes().to_vec());
    add("valid/sweep.toml".into(), SWEEP.as_bytes().to_vec());
    let conv_csr = conv_csr_model();
    let conv_dense = conv_dense_checkpoint();
    add("valid/conv-model.safetensors".into(), conv_csr.bytes());
    add("valid/conv-checkpoint.safetensors".into(), conv_dense.bytes());
    for (name, bytes) in idx_files() {
        add(format!("valid/idx/{name}"), bytes);
    }

    for (name, bytes) in container_damage(&csr).into_iter().chain(csr_damage(&csr)) {
        add(format!("csr/{name}.safetensors"), bytes);
    }
    for (name, bytes) in graph_damage(&conv_csr, csr_conv_rank_2) {
        add(format!("csr/{name}.safetensors"), bytes);
    }
    let (codebook, int8) =
        (compressed_model(&csr, Codec::K3Gap4), compressed_model(&csr, Codec::Int8));
    add("valid/k3-gap4-model.safetensors".into(), codebook.bytes());
    add("valid/int8-model.safetensors".into(), int8.bytes());
    for (name, bytes) in compressed_damage(&codebook, &int8) {
        add(format!("csr/{name}.safetensors"), bytes);
    }
    for (name, bytes) in container_damage(&dense).into_iter().chain(dense_damage(&dense)) {
        add(format!("dense/{name}.safetensors"), bytes);
    }
    for (name, bytes) in graph_damage(&conv_dense, dense_conv_rank_2) {
        add(format!("dense/{name}.safetensors"), bytes);
    }
    for (name, bytes) in container_damage(&batch).into_iter().chain(batch_damage(&batch)) {
        add(format!("batch/{name}.safetensors"), bytes);
    }
    for (name, bytes) in dense_value_damage(&dense) {
        add(format!("dense-values/{name}.safetensors"), bytes);
    }
    for (case, file, bytes) in idx_damage() {
        add(format!("idx/{case}/{file}"), bytes);
    }
    for (name, text) in recipe_damage() {
        add(format!("recipe/{name}.toml"), text);
    }
    for (path, bytes, _) in import_cases::cases() {
        add(path, bytes);
    }
    for (name, bytes, _) in request_damage() {
        add(format!("request/{name}"), bytes);
    }
    for (name, text) in sweep_damage() {
        add(format!("sweep/{name}.toml"), text);
    }
    let manifest: String = files
        .iter()
        .filter(|f| !f.path.starts_with("valid/"))
        .map(|f| {
            let expected = expected_problem(&f.path);
            assert!(!expected.contains(['\t', '\n']), "{}: {expected:?}", f.path);
            format!("{}\t{expected}\n", f.path)
        })
        .collect();
    files.push(CorpusFile { path: MANIFEST.into(), bytes: manifest.into_bytes() });
    files
}

// ---------------------------------------------------------------------------------------------
// Deterministic numbers.

/// A weight-like value in [-1, 1) for position `i` of tensor `salt`.
fn value(i: usize, salt: usize) -> f32 {
    let h = (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ^ (salt as u64).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    ((h >> 40) % 2000) as f32 / 1000.0 - 1.0
}

fn le<T: Copy, const N: usize>(values: &[T], to_bytes: fn(T) -> [u8; N]) -> Vec<u8> {
    values.iter().flat_map(|&v| to_bytes(v)).collect()
}

fn f32s(v: &[f32]) -> Vec<u8> {
    le(v, f32::to_le_bytes)
}

fn u32s(v: &[u32]) -> Vec<u8> {
    le(v, u32::to_le_bytes)
}

fn u16s(v: &[u16]) -> Vec<u8> {
    le(v, u16::to_le_bytes)
}

fn i64s(v: &[i64]) -> Vec<u8> {
    le(v, i64::to_le_bytes)
}

// ---------------------------------------------------------------------------------------------
// Safetensors files laid out by hand.

#[derive(Clone)]
struct Tensor {
    name: String,
    dtype: String,
    shape: Vec<u64>,
    data: Vec<u8>,
}

/// A safetensors file as metadata plus tensors; the header is built with sorted keys and the
/// data in tensor order, so the bytes are the same on every run.
#[derive(Clone)]
struct SafeTensors {
    meta: BTreeMap<String, String>,
    tensors: Vec<Tensor>,
}

impl SafeTensors {
    fn header(&self) -> Map<String, Value> {
        let mut header = Map::new();
        if !self.meta.is_empty() {
            header.insert("__metadata__".into(), json!(self.meta));
        }
        let mut offset = 0;
        for t in &self.tensors {
            let end = offset + t.data.len();
            header.insert(
                t.name.clone(),
                json!({"dtype": t.dtype, "shape": t.shape, "data_offsets": [offset, end]}),
            );
            offset = end;
        }
        header
    }

    fn data(&self) -> Vec<u8> {
        self.tensors.iter().flat_map(|t| t.data.iter().copied()).collect()
    }

    fn bytes(&self) -> Vec<u8> {
        encode(&self.header(), &self.data())
    }

    fn tensor(&mut self, name: &str) -> &mut Tensor {
        self.tensors.iter_mut().find(|t| t.name == name).unwrap_or_else(|| panic!("no {name}"))
    }

    /// A copy with `edit` applied, as file bytes.
    fn edited(&self, edit: impl FnOnce(&mut SafeTensors)) -> Vec<u8> {
        let mut copy = self.clone();
        edit(&mut copy);
        copy.bytes()
    }

    /// The file with `edit` applied to its header (offsets included) and data.
    fn header_edited(&self, edit: impl FnOnce(&mut Map<String, Value>, &mut Vec<u8>)) -> Vec<u8> {
        let (mut header, mut data) = (self.header(), self.data());
        edit(&mut header, &mut data);
        encode(&header, &data)
    }
}

/// The 8-byte header length, the JSON header padded with spaces to a multiple of 8, the data.
fn encode(header: &Map<String, Value>, data: &[u8]) -> Vec<u8> {
    let mut text = serde_json::to_string(header).unwrap();
    while !text.len().is_multiple_of(8) {
        text.push(' ');
    }
    let mut bytes = (text.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(text.as_bytes());
    bytes.extend_from_slice(data);
    bytes
}

fn tensor(name: &str, dtype: &str, shape: &[u64], data: Vec<u8>) -> Tensor {
    Tensor { name: name.into(), dtype: dtype.into(), shape: shape.to_vec(), data }
}

fn meta(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Damage any safetensors reader must refuse: truncation, lying header lengths and offsets,
/// headers that are not JSON, unknown dtypes, shapes that disagree with the bytes, bit flips.
fn container_damage(file: &SafeTensors) -> Vec<(String, Vec<u8>)> {
    let bytes = file.bytes();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let data_len = bytes.len() - 8 - n;
    let mut out = Vec::new();
    let mut cuts = vec![0, 4, 8, 9, 8 + n / 2, 8 + n - 1, 8 + n, 8 + n + 1];
    cuts.extend([8 + n + data_len / 2, bytes.len() - 4, bytes.len() - 1]);
    for cut in cuts {
        out.push((format!("truncated-at-{cut:05}"), bytes[..cut].to_vec()));
    }
    let with_length = |len: u64| {
        let mut b = bytes.clone();
        b[..8].copy_from_slice(&len.to_le_bytes());
        b
    };
    out.push(("header-length-huge".into(), with_length(u64::MAX)));
    out.push(("header-length-past-end".into(), with_length(bytes.len() as u64)));
    out.push(("header-length-zero".into(), with_length(0)));
    out.push(("header-length-short".into(), with_length(n as u64 - 8)));
    out.push(("header-length-long".into(), with_length(n as u64 + 8)));
    let mut trailing = bytes.clone();
    trailing.extend_from_slice(&[0; 4]);
    out.push(("trailing-bytes".into(), trailing));
    let mut not_utf8 = bytes.clone();
    not_utf8[9] = 0xff;
    out.push(("header-not-utf8".into(), not_utf8));
    let mut not_object = bytes.clone();
    not_object[8] = b'[';
    out.push(("header-not-an-object".into(), not_object));

    // Offsets that lie: past the end, overlapping, reversed, leaving a gap.
    let names: Vec<String> = file.tensors.iter().map(|t| t.name.clone()).collect();
    let offsets = |h: &mut Map<String, Value>, name: &str, f: &dyn Fn(u64, u64) -> (u64, u64)| {
        let o = &mut h[name]["data_offsets"];
        let (b, e) = f(o[0].as_u64().unwrap(), o[1].as_u64().unwrap());
        *o = json!([b, e]);
    };
    let last = names.last().unwrap().clone();
    out.push((
        "offsets-past-the-end".into(),
        file.header_edited(|h, _| offsets(h, &last, &|b, e| (b, e + 4))),
    ));
    if let Some(second) = names.get(1) {
        out.push((
            "offsets-overlap".into(),
            file.header_edited(|h, _| offsets(h, second, &|b, e| (b - 4, e))),
        ));
    }
    out.push((
        "offsets-reversed".into(),
        file.header_edited(|h, _| offsets(h, &names[0], &|b, e| (e, b))),
    ));
    out.push((
        "offsets-gap".into(),
        file.header_edited(|h, d| {
            offsets(h, &last, &|b, e| (b + 4, e + 4));
            let at = d.len() - file.tensors.last().unwrap().data.len();
            d.splice(at..at, [0; 4]);
        }),
    ));
    out.push((
        "offsets-huge".into(),
        file.header_edited(|h, _| offsets(h, &last, &|b, _| (b, u64::MAX))),
    ));
    out.push((
        "name-with-a-newline".into(),
        file.header_edited(|h, _| {
            let info = h.remove(&last).unwrap();
            h.insert(format!("{last}\nsecond line"), info);
            offsets(h, &format!("{last}\nsecond line"), &|b, e| (b + 1, e));
        }),
    ));
    out.push((
        "offsets-missing".into(),
        file.header_edited(|h, _| {
            h[&names[0]].as_object_mut().unwrap().remove("data_offsets");
        }),
    ));
    out.push((
        "shape-disagrees-with-bytes".into(),
        file.header_edited(|h, _| {
            let shape = h[&names[0]]["shape"].as_array_mut().unwrap();
            let first = shape[0].as_u64().unwrap();
            shape[0] = json!(first + 1);
        }),
    ));
    out.push((
        "shape-overflows".into(),
        file.header_edited(|h, _| {
            h[&names[0]]["shape"] = json!([u64::MAX, u64::MAX, 2]);
        }),
    ));
    out.push((
        "shape-negative".into(),
        file.header_edited(|h, _| h[&names[0]]["shape"] = json!([-1, 4])),
    ));
    out.push((
        "dtype-unknown-to-safetensors".into(),
        file.header_edited(|h, _| h[&names[0]]["dtype"] = json!("Q4")),
    ));
    if !file.meta.is_empty() {
        out.push((
            "metadata-not-strings".into(),
            file.header_edited(|h, _| h["__metadata__"]["format_version"] = json!(1)),
        ));
    }

    // Single bit flips in the header text: (what, where it is found, byte of that, bit).
    let header_text = String::from_utf8(bytes[8..8 + n].to_vec()).unwrap();
    let flips = [
        ("opening-brace", "{", 0, 0x01),
        ("metadata-key", "\"__metadata__\"", 3, 0x01),
        ("dtype-key", "\"dtype\"", 1, 0x20),
        ("dtype-value", "\"dtype\":\"F", 9, 0x01),
        ("data-offsets-key", "\"data_offsets\"", 5, 0x01),
        ("offset-digit", "\"data_offsets\":[0,", 16, 0x02),
        ("shape-digit", "\"shape\":[", 9, 0x01),
        ("format-value", "\"format\":\"ticket-", 10, 0x01),
    ];
    for (what, needle, index, bit) in flips {
        let Some(found) = header_text.find(needle) else { continue };
        let at = 8 + found + index;
        let mut b = bytes.clone();
        b[at] ^= bit;
        out.push((format!("bit-flip-{what}"), b));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The CSR model and its damage.

/// The kept columns of row `r` of layer `l` (about a third of fc1, half of fc2).
fn kept_columns(l: usize, r: usize, cols: usize) -> Vec<usize> {
    (0..cols)
        .filter(
            |&c| if l == 0 { (r * cols + c).is_multiple_of(3) } else { (r + c).is_multiple_of(2) },
        )
        .collect()
}

fn csr_model() -> SafeTensors {
    let mut tensors = Vec::new();
    let (mut kept, mut dense) = (0, 0);
    for l in 0..2 {
        let (rows, cols) = (SIZES[l + 1], SIZES[l]);
        let name = format!("fc{}", l + 1);
        let (mut indptr, mut indices) = (vec![0u32], Vec::new());
        for r in 0..rows {
            indices.extend(kept_columns(l, r, cols).iter().map(|&c| c as u16));
            indptr.push(indices.len() as u32);
        }
        let nnz = indices.len() as u64;
        let values: Vec<f32> = (0..indices.len()).map(|i| value(i, l)).collect();
        let bias: Vec<f32> = (0..rows).map(|i| value(i, 10 + l) / 2.0).collect();
        tensors.extend([
            tensor(&format!("{name}.bias"), "F32", &[rows as u64], f32s(&bias)),
            tensor(&format!("{name}.weight.indices"), "U16", &[nnz], u16s(&indices)),
            tensor(&format!("{name}.weight.indptr"), "U32", &[rows as u64 + 1], u32s(&indptr)),
            tensor(&format!("{name}.weight.shape"), "I64", &[2], i64s(&[rows as i64, cols as i64])),
            tensor(&format!("{name}.weight.values"), "F32", &[nnz], f32s(&values)),
        ]);
        kept += indices.len();
        dense += rows * cols;
    }
    let density = format!("{}", kept as f64 / dense as f64);
    let (dense_params, kept_params) = ((dense + 16).to_string(), (kept + 16).to_string());
    SafeTensors {
        meta: meta(&[
            ("format", "ticket-csr"),
            ("format_version", "1"),
            ("arch", ARCH),
            ("activation", "relu"),
            ("layers", "fc1,fc2"),
            ("value_dtype", "f32"),
            ("density", &density),
            ("dense_params", &dense_params),
            ("kept_params", &kept_params),
            ("dataset", "digits"),
        ]),
        tensors,
    }
}

/// The compressed codecs of the valid compressed models (format 2.1).
#[derive(Clone, Copy, PartialEq)]
enum Codec {
    /// 3-bit codebook indices (code `i % 8` for nonzero `i`) and 4-bit column gaps.
    K3Gap4,
    /// int8 values with one scale per row, absolute U16 indices.
    Int8,
}

/// `fields` of `bits` bits packed least significant bit first (docs/FORMAT.md), written out
/// bit by bit.
fn pack_bits(fields: &[u32], bits: usize) -> Vec<u8> {
    let mut out = vec![0u8; (fields.len() * bits).div_ceil(8)];
    for (i, &f) in fields.iter().enumerate() {
        for b in 0..bits {
            if f >> b & 1 == 1 {
                out[(i * bits + b) / 8] |= 1 << ((i * bits + b) % 8);
            }
        }
    }
    out
}

/// The gap fields of columns `cols` of one row: fillers (all ones) while a gap does not fit.
fn gap_fields(cols: &[usize], bits: usize) -> Vec<u32> {
    let fill = (1usize << bits) - 1;
    let (mut out, mut next) = (Vec::new(), 0);
    for &c in cols {
        let mut gap = c - next;
        while gap >= fill {
            out.push(fill as u32);
            gap -= fill;
        }
        out.push(gap as u32);
        next = c + 1;
    }
    out
}

/// The valid version-1 CSR model re-encoded as a version-2.1 model with `codec`.
fn compressed_model(base: &SafeTensors, codec: Codec) -> SafeTensors {
    let mut f = base.clone();
    f.meta.remove("arch");
    f.meta.remove("activation");
    let graph = json!({"input": [64], "layers": [
        {"op": "linear", "name": "fc1", "in": 64, "out": 6}, {"op": "relu"},
        {"op": "linear", "name": "fc2", "in": 6, "out": 10}]});
    set_meta(&mut f, "graph", &graph.to_string());
    set_meta(&mut f, "format_version", "2.1");
    for l in 0..2 {
        let (rows, cols) = (SIZES[l + 1], SIZES[l]);
        let name = format!("fc{}", l + 1);
        let nnz: usize = (0..rows).map(|r| kept_columns(l, r, cols).len()).sum();
        let values = f.tensor(&format!("{name}.weight.values"));
        match codec {
            Codec::K3Gap4 => {
                let codes: Vec<u32> = (0..nnz as u32).map(|i| i % 8).collect();
                *values = tensor(&values.name, "U8", &[], pack_bits(&codes, 3));
                values.shape = vec![values.data.len() as u64];
                let book: Vec<f32> = (0..8).map(|k| value(k, 20 + l)).collect();
                f.tensors.push(tensor(
                    &format!("{name}.weight.codebook"),
                    "F32",
                    &[8],
                    f32s(&book),
                ));
                let gaps: Vec<u32> =
                    (0..rows).flat_map(|r| gap_fields(&kept_columns(l, r, cols), 4)).collect();
                let stream = pack_bits(&gaps, 4);
                let ix = f.tensor(&format!("{name}.weight.indices"));
                *ix = tensor(&ix.name, "U8", &[stream.len() as u64], stream);
            }
            Codec::Int8 => {
                let q: Vec<u8> = (0..nnz).map(|i| (i as i64 % 255 - 127) as i8 as u8).collect();
                *values = tensor(&values.name, "I8", &[nnz as u64], q);
                let scales: Vec<f32> = (0..rows).map(|r| 0.001 * (r + 1) as f32).collect();
                f.tensors.push(tensor(
                    &format!("{name}.weight.scales"),
                    "F32",
                    &[rows as u64],
                    f32s(&scales),
                ));
            }
        }
    }
    match codec {
        Codec::K3Gap4 => {
            set_meta(&mut f, "value_dtype", "k3");
            set_meta(&mut f, "index_bits", "4");
        }
        Codec::Int8 => set_meta(&mut f, "value_dtype", "int8"),
    }
    f
}

/// Compressed tensors that lie: codebook indices beyond the codebook, streams too short or too
/// long, columns past the matrix, NaN scales and centroids, unknown codec metadata.
fn compressed_damage(codebook: &SafeTensors, int8: &SafeTensors) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    let (book, gaps, codes) = ("fc1.weight.codebook", "fc1.weight.indices", "fc1.weight.values");
    let mut case = |name: &str, base: &SafeTensors, edit: &dyn Fn(&mut SafeTensors)| {
        out.push((name.to_string(), base.edited(|f| edit(f))));
    };
    case("k3-codebook-index-out-of-range", codebook, &|f| {
        let t = f.tensor(book);
        t.data.truncate(4 * 5);
        t.shape = vec![5];
    });
    case("k3-codebook-too-long", codebook, &|f| {
        let t = f.tensor(book);
        t.data.extend_from_slice(&f32s(&[0.5]));
        t.shape = vec![9];
    });
    case("k3-codebook-nan", codebook, &|f| set_f32(f, book, 2, f32::NAN));
    case("k3-codes-short", codebook, &|f| {
        let t = f.tensor(codes);
        t.data.pop();
        t.shape = vec![t.data.len() as u64];
    });
    case("gap4-stream-short", codebook, &|f| {
        let t = f.tensor(gaps);
        t.data.truncate(t.data.len() / 2);
        t.shape = vec![t.data.len() as u64];
    });
    case("gap4-stream-trailing", codebook, &|f| {
        let t = f.tensor(gaps);
        t.data.push(0);
        t.shape = vec![t.data.len() as u64];
    });
    case("gap4-column-out-of-range", codebook, &|f| f.tensor(gaps).data.fill(0xee));
    case("gap4-indices-u16", codebook, &|f| {
        let t = f.tensor(gaps);
        t.data.resize(t.data.len().next_multiple_of(2), 0);
        t.dtype = "U16".into();
        t.shape = vec![t.data.len() as u64 / 2];
    });
    case("index-bits-unknown", codebook, &|f| set_meta(f, "index_bits", "9"));
    case("index-bits-conv-9", codebook, &|f| set_meta(f, "index_bits", "conv=9,linear=4"));
    case("index-bits-kind-pool", codebook, &|f| set_meta(f, "index_bits", "pool=4"));
    case("index-bits-kind-twice", codebook, &|f| set_meta(f, "index_bits", "linear=4,linear=5"));
    // The gap width named for conv layers only: this MLP's U8 streams are then not absolute.
    case("index-bits-other-kind", codebook, &|f| set_meta(f, "index_bits", "conv=4"));
    case("int8-scale-nan", int8, &|f| set_f32(f, "fc2.weight.scales", 4, f32::NAN));
    case("int8-scales-missing", int8, &|f| f.tensors.retain(|t| t.name != "fc1.weight.scales"));
    case("value-dtype-k9", int8, &|f| set_meta(f, "value_dtype", "k9"));
    out
}

/// How values of one type are read from and written to little-endian bytes.
type LeCodec<T, const N: usize> = (fn([u8; N]) -> T, fn(T) -> [u8; N]);

/// The tensor `name` read as little-endian values, edited, and written back as one dimension.
fn edit_le<T: Copy, const N: usize>(
    f: &mut SafeTensors,
    name: &str,
    (from, to): LeCodec<T, N>,
    edit: impl FnOnce(&mut Vec<T>),
) {
    let t = f.tensor(name);
    let mut v: Vec<T> = t.data.chunks_exact(N).map(|c| from(c.try_into().unwrap())).collect();
    edit(&mut v);
    t.shape = vec![v.len() as u64];
    t.data = le(&v, to);
}

fn edit_u32(f: &mut SafeTensors, name: &str, edit: impl FnOnce(&mut Vec<u32>)) {
    edit_le(f, name, (u32::from_le_bytes, u32::to_le_bytes), edit);
}

fn edit_u16(f: &mut SafeTensors, name: &str, edit: impl FnOnce(&mut Vec<u16>)) {
    edit_le(f, name, (u16::from_le_bytes, u16::to_le_bytes), edit);
}

/// The F32 tensor `name` stored as F64 instead.
fn to_f64(f: &mut SafeTensors, name: &str) {
    let t = f.tensor(name);
    let v: Vec<f64> =
        t.data.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64).collect();
    t.data = le(&v, f64::to_le_bytes);
    t.dtype = "F64".into();
}

fn set_f32(f: &mut SafeTensors, name: &str, at: usize, v: f32) {
    f.tensor(name).data[4 * at..4 * at + 4].copy_from_slice(&v.to_le_bytes());
}

fn set_meta(f: &mut SafeTensors, key: &str, v: &str) {
    f.meta.insert(key.into(), v.into());
}

/// The start of row `r` of fc1 in the valid model.
fn fc1_row_start(r: usize) -> usize {
    (0..r).map(|r| kept_columns(0, r, SIZES[0]).len()).sum()
}

fn csr_damage(base: &SafeTensors) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    let mut case = |name: &str, edit: &dyn Fn(&mut SafeTensors)| {
        out.push((name.to_string(), base.edited(|f| edit(f))));
    };
    let (ip, ix, vals) = ("fc1.weight.indptr", "fc1.weight.indices", "fc1.weight.values");
    // indptr
    case("indptr-decreases", &|f| edit_u32(f, ip, |v| v[2] = v[1] - 1));
    case("indptr-overruns", &|f| edit_u32(f, ip, |v| *v.last_mut().unwrap() += 1));
    case("indptr-row-overruns", &|f| edit_u32(f, ip, |v| v[3] = 10_000));
    case("indptr-starts-above-zero", &|f| edit_u32(f, ip, |v| v[0] = 1));
    case("indptr-too-short", &|f| {
        edit_u32(f, ip, |v| {
            v.pop();
        })
    });
    case("indptr-too-long", &|f| edit_u32(f, ip, |v| v.push(*v.last().unwrap())));
    case("indptr-wrong-dtype", &|f| f.tensor(ip).dtype = "I32".into());
    case("indptr-two-dimensional", &|f| f.tensor(ip).shape = vec![1, 7]);
    // indices
    let row1 = fc1_row_start(1);
    case("index-out-of-range", &|f| edit_u16(f, ix, |v| v[row1 - 1] = 64));
    case("index-far-out-of-range", &|f| edit_u16(f, ix, |v| v[0] = u16::MAX));
    case("indices-unsorted", &|f| edit_u16(f, ix, |v| v.swap(row1, row1 + 1)));
    case("indices-duplicate", &|f| edit_u16(f, ix, |v| v[row1 + 1] = v[row1]));
    case("indices-wrong-dtype", &|f| f.tensor(ix).dtype = "I16".into());
    case("indices-fewer-than-values", &|f| {
        edit_u16(f, ix, |v| {
            v.pop();
        })
    });
    case("indices-two-dimensional", &|f| {
        let n = f.tensor(ix).shape[0];
        f.tensor(ix).shape = vec![1, n];
    });
    // values
    case("values-nan", &|f| set_f32(f, vals, 3, f32::NAN));
    case("values-infinite", &|f| set_f32(f, vals, 0, f32::INFINITY));
    case("values-negative-infinite", &|f| set_f32(f, "fc2.weight.values", 5, f32::NEG_INFINITY));
    case("bias-nan", &|f| set_f32(f, "fc2.bias", 9, f32::NAN));
    case("values-fewer-than-indices", &|f| {
        let t = f.tensor(vals);
        t.data.truncate(t.data.len() - 4);
        t.shape[0] -= 1;
    });
    case("values-f64", &|f| to_f64(f, vals));
    case("values-f16-infinite", &|f| {
        for l in ["fc1", "fc2"] {
            let t = f.tensor(&format!("{l}.weight.values"));
            let n = t.data.len() / 4;
            let mut halves = vec![0x3c00u16; n]; // 1.0
            if l == "fc2" {
                halves[1] = 0x7c00; // +inf
            }
            t.data = u16s(&halves);
            t.dtype = "F16".into();
        }
        set_meta(f, "value_dtype", "f16");
    });
    case("values-bf16-nan", &|f| {
        for l in ["fc1", "fc2"] {
            let t = f.tensor(&format!("{l}.weight.values"));
            let n = t.data.len() / 4;
            let mut halves = vec![0x3f80u16; n]; // 1.0
            halves[0] = 0x7fc1; // NaN
            t.data = u16s(&halves);
            t.dtype = "BF16".into();
        }
        set_meta(f, "value_dtype", "bf16");
    });
    case("value-dtype-disagrees", &|f| set_meta(f, "value_dtype", "f16"));
    case("value-dtype-unknown", &|f| set_meta(f, "value_dtype", "f8"));
    case("bias-wrong-length", &|f| {
        let t = f.tensor("fc1.bias");
        t.data.extend_from_slice(&[0; 4]);
        t.shape = vec![7];
    });
    case("bias-missing", &|f| f.tensors.retain(|t| t.name != "fc2.bias"));
    case("values-missing", &|f| f.tensors.retain(|t| t.name != vals));
    // shapes and architecture
    let shape = |f: &mut SafeTensors, layer: &str, dims: [i64; 2]| {
        f.tensor(&format!("{layer}.weight.shape")).data = i64s(&dims);
    };
    case("shapes-do-not-chain", &|f| shape(f, "fc2", [10, 5]));
    case("shape-disagrees-with-arch", &|f| shape(f, "fc1", [6, 63]));
    case("shape-negative-rows", &|f| shape(f, "fc1", [-6, 64]));
    case("shape-zero-columns", &|f| shape(f, "fc1", [6, 0]));
    case("shape-huge-columns", &|f| shape(f, "fc1", [6, i64::MAX]));
    case("shape-three-dims", &|f| {
        let t = f.tensor("fc1.weight.shape");
        t.data = i64s(&[6, 64, 1]);
        t.shape = vec![3];
    });
    case("layers-fewer-than-arch", &|f| set_meta(f, "layers", "fc1"));
    case("layers-unknown-name", &|f| set_meta(f, "layers", "fc1,fc9"));
    case("activation-unknown", &|f| set_meta(f, "activation", "tanh"));
    out.extend(metadata_damage(base, "ticket-dense"));
    out
}

/// Metadata both formats must refuse: architectures that cannot be or do not fit, another
/// format (`other_format`), versions that are not 1, keys that are missing.
fn metadata_damage(base: &SafeTensors, other_format: &str) -> Vec<(String, Vec<u8>)> {
    let cases = [
        ("arch-zero-sized-layer", "arch", Some("64-0-10")),
        ("arch-one-size", "arch", Some("64")),
        ("arch-not-numbers", "arch", Some("64-six-10")),
        ("arch-too-large", "arch", Some("100000000000-6-10")),
        ("arch-disagrees-with-tensors", "arch", Some("64-7-10")),
        ("arch-missing", "arch", None),
        ("format-other", "format", Some(other_format)),
        ("format-with-a-newline", "format", Some("ticket-\nsomething")),
        ("format-missing", "format", None),
        ("version-2-without-graph", "format_version", Some("2")),
        ("version-3", "format_version", Some("3")),
        ("version-0", "format_version", Some("0")),
        ("version-not-a-number", "format_version", Some("one")),
        ("version-empty", "format_version", Some("")),
        ("version-missing", "format_version", None),
    ];
    cases
        .into_iter()
        .map(|(name, key, value)| {
            let bytes = base.edited(|f| match value {
                Some(v) => set_meta(f, key, v),
                None => {
                    f.meta.remove(key);
                }
            });
            (name.to_string(), bytes)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The dense checkpoint and its damage.

fn dense_checkpoint() -> SafeTensors {
    let mut tensors = Vec::new();
    for l in 0..2 {
        let (rows, cols) = (SIZES[l + 1], SIZES[l]);
        let name = format!("fc{}", l + 1);
        let mask: Vec<u8> = (0..rows * cols)
            .map(|i| kept_columns(l, i / cols, cols).contains(&(i % cols)) as u8)
            .collect();
        let weight: Vec<f32> =
            (0..rows * cols).map(|i| if mask[i] == 1 { value(i, 20 + l) } else { 0.0 }).collect();
        let bias: Vec<f32> = (0..rows).map(|i| value(i, 30 + l) / 2.0).collect();
        let shape = [rows as u64, cols as u64];
        tensors.extend([
            tensor(&format!("{name}.bias"), "F32", &[rows as u64], f32s(&bias)),
            tensor(&format!("{name}.weight"), "F32", &shape, f32s(&weight)),
            tensor(&format!("{name}.weight_mask"), "U8", &shape, mask),
        ]);
    }
    SafeTensors {
        meta: meta(&[
            ("format", "ticket-dense"),
            ("format_version", "1"),
            ("arch", ARCH),
            ("activation", "relu"),
            ("iteration", "0"),
            ("dataset", "digits"),
            ("seed", "0"),
        ]),
        tensors,
    }
}

fn dense_damage(base: &SafeTensors) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    let mut case = |name: &str, edit: &dyn Fn(&mut SafeTensors)| {
        out.push((name.to_string(), base.edited(|f| edit(f))));
    };
    case("mask-holds-2", &|f| f.tensor("fc1.weight_mask").data[5] = 2);
    case("mask-holds-255", &|f| f.tensor("fc2.weight_mask").data[59] = 255);
    case("mask-missing-in-one-layer", &|f| f.tensors.retain(|t| t.name != "fc2.weight_mask"));
    case("mask-wrong-dtype", &|f| {
        let t = f.tensor("fc1.weight_mask");
        t.data = t.data.iter().flat_map(|&m| [m, 0]).collect();
        t.dtype = "U16".into();
    });
    case("mask-wrong-shape", &|f| f.tensor("fc1.weight_mask").shape = vec![64, 6]);
    case("weight-wrong-shape", &|f| f.tensor("fc2.weight").shape = vec![6, 10]);
    case("weight-wrong-dtype", &|f| f.tensor("fc1.weight").dtype = "I32".into());
    case("weight-f64", &|f| to_f64(f, "fc2.weight"));
    case("weight-missing", &|f| f.tensors.retain(|t| t.name != "fc1.weight"));
    case("bias-missing", &|f| f.tensors.retain(|t| t.name != "fc2.bias"));
    case("bias-wrong-length", &|f| {
        let t = f.tensor("fc1.bias");
        t.data.truncate(20);
        t.shape = vec![5];
    });
    case("shapes-do-not-chain", &|f| {
        // Both fc2 tensors say [10, 5]: self-consistent, but fc1 gives 6 outputs.
        for name in ["fc2.weight", "fc2.weight_mask"] {
            let t = f.tensor(name);
            let width = t.data.len() / 60;
            t.data.truncate(50 * width);
            t.shape = vec![10, 5];
        }
    });
    case("arch-too-large-without-masks", &|f| {
        f.tensors.retain(|t| !t.name.ends_with("_mask"));
        set_meta(f, "arch", "1000000-4000-10");
    });
    case("iteration-not-a-number", &|f| set_meta(f, "iteration", "-3"));
    case("seed-missing", &|f| {
        f.meta.remove("seed");
    });
    out.extend(metadata_damage(base, "ticket-csr"));
    out
}

/// Values a checkpoint may hold but an export must refuse.
fn dense_value_damage(base: &SafeTensors) -> Vec<(String, Vec<u8>)> {
    let kept = kept_columns(0, 0, SIZES[0])[1];
    vec![
        ("weight-nan".into(), base.edited(|f| set_f32(f, "fc1.weight", kept, f32::NAN))),
        ("weight-infinite".into(), base.edited(|f| set_f32(f, "fc2.weight", 0, f32::INFINITY))),
        ("bias-nan".into(), base.edited(|f| set_f32(f, "fc1.bias", 2, f32::NAN))),
        ("bias-infinite".into(), base.edited(|f| set_f32(f, "fc2.bias", 0, -f32::INFINITY))),
    ]
}

// ---------------------------------------------------------------------------------------------
// Version 2: a conv net's graph, its dense checkpoint and CSR model, and their damage.

/// The graph of the valid version-2 files, for the 8 x 8 digits: conv 1->2 (3 x 3, padding 1),
/// ReLU, 2 x 2 max-pool, flatten, linear 32 -> 10.
fn conv_graph() -> Value {
    json!({"input": [1, 8, 8], "layers": [
        {"op": "conv2d", "name": "conv1", "in": 1, "out": 2, "kernel": [3, 3],
         "stride": [1, 1], "padding": [1, 1]},
        {"op": "relu"},
        {"op": "maxpool2d", "kernel": [2, 2], "stride": [2, 2]},
        {"op": "flatten"},
        {"op": "linear", "name": "fc1", "in": 32, "out": 10},
    ]})
}

/// The weighted layers of [`conv_graph`]: name and full weight shape.
const CONV_LAYERS: [(&str, &[usize]); 2] = [("conv1", &[2, 1, 3, 3]), ("fc1", &[10, 32])];

/// Whether weight `(r, c)` of conv layer `l` (as a matrix) is kept: two thirds of them.
fn conv_kept(l: usize, r: usize, c: usize) -> bool {
    !(r * 7 + c + l).is_multiple_of(3)
}

/// Rows and columns of a weight of shape `dims` seen as a matrix.
fn matrix(dims: &[usize]) -> (usize, usize) {
    (dims[0], dims[1..].iter().product())
}

fn conv_dense_checkpoint() -> SafeTensors {
    let mut tensors = Vec::new();
    for (l, (name, dims)) in CONV_LAYERS.iter().enumerate() {
        let (rows, cols) = matrix(dims);
        let mask: Vec<u8> =
            (0..rows * cols).map(|i| conv_kept(l, i / cols, i % cols) as u8).collect();
        let weight: Vec<f32> =
            (0..rows * cols).map(|i| if mask[i] == 1 { value(i, 60 + l) } else { 0.0 }).collect();
        let bias: Vec<f32> = (0..rows).map(|i| value(i, 70 + l) / 2.0).collect();
        let shape: Vec<u64> = dims.iter().map(|&d| d as u64).collect();
        tensors.extend([
            tensor(&format!("{name}.bias"), "F32", &[rows as u64], f32s(&bias)),
            tensor(&format!("{name}.weight"), "F32", &shape, f32s(&weight)),
            tensor(&format!("{name}.weight_mask"), "U8", &shape, mask),
        ]);
    }
    let graph = conv_graph().to_string();
    SafeTensors {
        meta: meta(&[
            ("format", "ticket-dense"),
            ("format_version", "2"),
            ("graph", &graph),
            ("iteration", "0"),
            ("dataset", "digits"),
            ("seed", "0"),
        ]),
        tensors,
    }
}

fn conv_csr_model() -> SafeTensors {
    let mut tensors = Vec::new();
    let (mut kept, mut dense, mut biases) = (0, 0, 0);
    for (l, (name, dims)) in CONV_LAYERS.iter().enumerate() {
        let (rows, cols) = matrix(dims);
        let (mut indptr, mut indices) = (vec![0u32], Vec::new());
        for r in 0..rows {
            indices.extend((0..cols).filter(|&c| conv_kept(l, r, c)).map(|c| c as u16));
            indptr.push(indices.len() as u32);
        }
        let nnz = indices.len() as u64;
        let values: Vec<f32> = (0..indices.len()).map(|i| value(i, 80 + l)).collect();
        let bias: Vec<f32> = (0..rows).map(|i| value(i, 90 + l) / 2.0).collect();
        let full: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
        tensors.extend([
            tensor(&format!("{name}.bias"), "F32", &[rows as u64], f32s(&bias)),
            tensor(&format!("{name}.weight.indices"), "U16", &[nnz], u16s(&indices)),
            tensor(&format!("{name}.weight.indptr"), "U32", &[rows as u64 + 1], u32s(&indptr)),
            tensor(&format!("{name}.weight.shape"), "I64", &[full.len() as u64], i64s(&full)),
            tensor(&format!("{name}.weight.values"), "F32", &[nnz], f32s(&values)),
        ]);
        kept += indices.len();
        dense += rows * cols;
        biases += rows;
    }
    let graph = conv_graph().to_string();
    let density = format!("{}", kept as f64 / dense as f64);
    let (dense_params, kept_params) = ((dense + biases).to_string(), (kept + biases).to_string());
    SafeTensors {
        meta: meta(&[
            ("format", "ticket-csr"),
            ("format_version", "2"),
            ("graph", &graph),
            ("layers", "conv1,fc1"),
            ("value_dtype", "f32"),
            ("density", &density),
            ("dense_params", &dense_params),
            ("kept_params", &kept_params),
            ("dataset", "digits"),
        ]),
        tensors,
    }
}

/// Layer `i` of a graph's JSON.
fn layer(g: &mut Value, i: usize) -> &mut Map<String, Value> {
    g["layers"][i].as_object_mut().unwrap()
}

/// The conv layer's weight given as a rank-2 `[out, in*kh*kw]` in a dense checkpoint.
fn dense_conv_rank_2(f: &mut SafeTensors, dims: &[u64]) {
    for name in ["conv1.weight", "conv1.weight_mask"] {
        f.tensor(name).shape = dims.to_vec();
    }
}

/// The conv layer's `weight.shape` tensor set to `dims` in a CSR model.
fn csr_conv_rank_2(f: &mut SafeTensors, dims: &[u64]) {
    let t = f.tensor("conv1.weight.shape");
    t.data = i64s(&dims.iter().map(|&d| d as i64).collect::<Vec<_>>());
    t.shape = vec![dims.len() as u64];
}

/// Damage to the graph of a version-2 file, and to the conv weight's shape (set by
/// `set_conv_dims`, which knows where the file keeps it).
fn graph_damage(
    base: &SafeTensors,
    set_conv_dims: fn(&mut SafeTensors, &[u64]),
) -> Vec<(String, Vec<u8>)> {
    let graph_edited = |edit: &dyn Fn(&mut Value)| {
        let mut g = conv_graph();
        edit(&mut g);
        g.to_string()
    };
    let graphs: Vec<(&str, String)> = vec![
        ("v2-graph-not-json", r#"{"input": [1, 8, 8], "layers": [{"op": "conv2d""#.into()),
        ("v2-graph-unknown-op", graph_edited(&|g| g["layers"][1] = json!({"op": "gelu"}))),
        (
            "v2-graph-unknown-field",
            graph_edited(&|g| {
                layer(g, 0).insert("dilation".into(), json!([2, 2]));
            }),
        ),
        (
            "v2-graph-shapes-do-not-chain",
            graph_edited(&|g| {
                layer(g, 4).insert("in".into(), json!(31));
            }),
        ),
        (
            "v2-graph-kernel-larger-than-input",
            graph_edited(&|g| {
                layer(g, 0).insert("kernel".into(), json!([11, 11]));
            }),
        ),
        (
            "v2-graph-zero-channels",
            graph_edited(&|g| {
                layer(g, 0).insert("out".into(), json!(0));
            }),
        ),
        ("v2-graph-zero-input", graph_edited(&|g| g["input"] = json!([1, 0, 8]))),
        (
            "v2-graph-huge-channels",
            graph_edited(&|g| {
                layer(g, 0).insert("out".into(), json!(1u64 << 40));
            }),
        ),
        ("v2-graph-huge-input", graph_edited(&|g| g["input"] = json!([1, 1u64 << 31, 1u64 << 31]))),
        (
            "v2-graph-flatten-missing",
            graph_edited(&|g| {
                g["layers"].as_array_mut().unwrap().remove(3);
            }),
        ),
    ];
    let mut out: Vec<(String, Vec<u8>)> = graphs
        .into_iter()
        .map(|(name, graph)| (name.to_string(), base.edited(|f| set_meta(f, "graph", &graph))))
        .collect();
    let mut case = |name: &str, edit: &dyn Fn(&mut SafeTensors)| {
        out.push((name.to_string(), base.edited(|f| edit(f))));
    };
    case("v2-graph-missing", &|f| {
        f.meta.remove("graph");
    });
    case("v2-version-3", &|f| set_meta(f, "format_version", "3"));
    case("v2-conv-weight-rank-2", &|f| set_conv_dims(f, &[2, 9]));
    // As a matrix the same [2, 9]; as a conv weight not what the graph says.
    case("v2-conv-dims-disagree-with-graph", &|f| set_conv_dims(f, &[2, 1, 1, 9]));
    out
}

// ---------------------------------------------------------------------------------------------
// Input batches for `ticket infer --input` and their damage.

/// Tensor `input`, F32 `[examples, 64]`, values in [0, 1); no metadata.
fn input_batch(examples: usize) -> SafeTensors {
    let x: Vec<f32> = (0..examples * 64).map(|i| (value(i, 50) + 1.0) / 2.0).collect();
    let shape = [examples as u64, 64];
    SafeTensors { meta: BTreeMap::new(), tensors: vec![tensor("input", "F32", &shape, f32s(&x))] }
}

fn batch_damage(base: &SafeTensors) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    let mut case = |name: &str, edit: &dyn Fn(&mut SafeTensors)| {
        out.push((name.to_string(), base.edited(|f| edit(f))));
    };
    case("nan", &|f| set_f32(f, "input", 70, f32::NAN));
    case("infinite", &|f| set_f32(f, "input", 191, f32::NEG_INFINITY));
    case("features-63", &|f| {
        let t = f.tensor("input");
        t.data.truncate(3 * 63 * 4);
        t.shape = vec![3, 63];
    });
    case("one-dimension", &|f| f.tensor("input").shape = vec![192]);
    case("three-dimensions", &|f| f.tensor("input").shape = vec![3, 64, 1]);
    case("dtype-i32", &|f| f.tensor("input").dtype = "I32".into());
    case("dtype-f16", &|f| {
        let t = f.tensor("input");
        t.data.truncate(t.data.len() / 2);
        t.dtype = "F16".into();
    });
    case("named-otherwise", &|f| f.tensor("input").name = "inputs".into());
    out
}

// ---------------------------------------------------------------------------------------------
// IDX data and its damage.

pub const TRAIN_IMAGES: &str = "train-images-idx3-ubyte";
pub const TRAIN_LABELS: &str = "train-labels-idx1-ubyte";
pub const TEST_IMAGES: &str = "t10k-images-idx3-ubyte";
pub const TEST_LABELS: &str = "t10k-labels-idx1-ubyte";

/// An IDX file of unsigned bytes: magic `00 00 08 ndim`, big-endian dims, data.
fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

fn images(n: usize, salt: usize) -> Vec<u8> {
    (0..n * 64).map(|i| ((value(i, salt) + 1.0) * 127.5) as u8).collect()
}

fn labels(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 10) as u8).collect()
}

/// The valid data set: 12 training and 4 test images of 8 x 8 pixels.
fn idx_files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (TRAIN_IMAGES, idx(&[TRAIN_EXAMPLES as u32, 8, 8], &images(TRAIN_EXAMPLES, 40))),
        (TRAIN_LABELS, idx(&[TRAIN_EXAMPLES as u32], &labels(TRAIN_EXAMPLES))),
        (TEST_IMAGES, idx(&[TEST_EXAMPLES as u32, 8, 8], &images(TEST_EXAMPLES, 41))),
        (TEST_LABELS, idx(&[TEST_EXAMPLES as u32], &labels(TEST_EXAMPLES))),
    ]
}

/// A gzip member holding `data` in stored (uncompressed) deflate blocks: the bytes depend on
/// nothing but `data`.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let chunks: Vec<&[u8]> = data.chunks(65_535).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        out.push((i + 1 == chunks.len()) as u8);
        let len = chunk.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// `(case, file name, bytes)`: each file replaces its namesake (raw or `.gz`) in the valid set.
fn idx_damage() -> Vec<(String, &'static str, Vec<u8>)> {
    let valid: BTreeMap<&str, Vec<u8>> = idx_files().into_iter().collect();
    let images = &valid[TRAIN_IMAGES];
    let mut out: Vec<(String, &'static str, Vec<u8>)> = Vec::new();
    for cut in [0, 2, 3, 4, 7, 10, 15, 16, 17, 400, images.len() - 1] {
        out.push((format!("images-truncated-at-{cut:04}"), TRAIN_IMAGES, images[..cut].to_vec()));
    }
    let test_labels = &valid[TEST_LABELS];
    for cut in [5, 8, test_labels.len() - 1] {
        out.push((
            format!("labels-truncated-at-{cut:02}"),
            TEST_LABELS,
            test_labels[..cut].to_vec(),
        ));
    }
    let with = |file: &str, at: usize, byte: u8| {
        let mut b = valid[file].clone();
        b[at] = byte;
        b
    };
    out.push(("magic-not-zero".into(), TRAIN_IMAGES, with(TRAIN_IMAGES, 0, 0x50)));
    out.push(("magic-bit-flip".into(), TEST_IMAGES, with(TEST_IMAGES, 1, 0x01)));
    out.push(("dtype-float".into(), TRAIN_IMAGES, with(TRAIN_IMAGES, 2, 0x0d)));
    out.push(("dtype-unknown".into(), TRAIN_LABELS, with(TRAIN_LABELS, 2, 0x42)));
    out.push(("zero-dimensions".into(), TRAIN_LABELS, with(TRAIN_LABELS, 3, 0)));
    let data = &images[16..];
    out.push(("images-two-dimensions".into(), TRAIN_IMAGES, idx(&[12, 64], data)));
    out.push(("images-four-dimensions".into(), TRAIN_IMAGES, idx(&[12, 8, 8, 1], data)));
    out.push(("labels-two-dimensions".into(), TRAIN_LABELS, idx(&[12, 1], &labels(12))));
    out.push(("header-promises-more".into(), TRAIN_IMAGES, idx(&[13, 8, 8], data)));
    out.push(("header-promises-less".into(), TRAIN_IMAGES, idx(&[11, 8, 8], data)));
    out.push(("header-promises-4-gib".into(), TRAIN_IMAGES, idx(&[u32::MAX, 1, 1], data)));
    out.push((
        "header-dimensions-overflow".into(),
        TRAIN_IMAGES,
        idx(&[u32::MAX, u32::MAX, u32::MAX], data),
    ));
    out.push(("labels-fewer-than-images".into(), TRAIN_LABELS, idx(&[11], &labels(11))));
    // gzip
    let gz = gzip(images);
    let mut bad_crc = gz.clone();
    let n = bad_crc.len();
    bad_crc[n - 8] ^= 0xff;
    out.push(("gzip-bad-crc".into(), "train-images-idx3-ubyte.gz", bad_crc));
    out.push(("gzip-truncated".into(), "train-images-idx3-ubyte.gz", gz[..gz.len() / 2].to_vec()));
    let mut bad_block = gz.clone();
    bad_block[10] = 0x07; // final block of the reserved type 3
    out.push(("gzip-reserved-block-type".into(), "train-images-idx3-ubyte.gz", bad_block));
    let mut bad_length = gz.clone();
    bad_length[13] ^= 0x01; // NLEN no longer the complement of LEN
    out.push(("gzip-stored-length-mismatch".into(), "train-images-idx3-ubyte.gz", bad_length));
    let mut trailing = gz.clone();
    trailing.extend_from_slice(b"garbage");
    out.push(("gzip-trailing-garbage".into(), "train-images-idx3-ubyte.gz", trailing));
    out.push((
        "gzip-of-truncated-idx".into(),
        "t10k-labels-idx1-ubyte.gz",
        gzip(&test_labels[..6]),
    ));
    out
}

// ---------------------------------------------------------------------------------------------
// Recipes.

/// The valid recipe: the architecture of the valid models, tiny training, a validation split
/// that fits the 12 training examples of the valid IDX data.
pub const RECIPE: &str = r#"name = "corpus"
layers = [64, 6, 10]

[train]
iterations = 2
batch_size = 4
eval_every = 1
validation_size = 4

[prune]
layer_rates = [0.2, 0.1]
levels = 1
"#;

/// `text` with its first `from` replaced by `to`, as bytes.
fn edited(text: &str, from: &str, to: &str) -> Vec<u8> {
    assert!(text.contains(from), "{from}");
    text.replacen(from, to, 1).into_bytes()
}

fn recipe_damage() -> Vec<(String, Vec<u8>)> {
    let edit = |from: &str, to: &str| edited(RECIPE, from, to);
    vec![
        ("empty".into(), vec![]),
        ("not-utf8".into(), b"name = \"\xff\xfe\"\n".to_vec()),
        ("not-toml".into(), b"layers = [64, 6,".to_vec()),
        ("truncated".into(), RECIPE.as_bytes()[..RECIPE.len() / 2].to_vec()),
        ("unknown-key".into(), edit("batch_size", "batch_sise")),
        ("wrong-type".into(), edit("iterations = 2", "iterations = \"2\"")),
        ("negative-size".into(), edit("[64, 6, 10]", "[64, -6, 10]")),
        ("zero-sized-layer".into(), edit("[64, 6, 10]", "[64, 0, 10]")),
        ("one-layer-size".into(), edit("[64, 6, 10]", "[64]")),
        ("too-large".into(), edit("[64, 6, 10]", "[64, 100000000, 10]")),
        ("overflowing".into(), edit("[64, 6, 10]", "[4294967296, 4294967296, 10]")),
        ("nan-learning-rate".into(), edit("[train]", "[train]\nlearning_rate = nan")),
        ("infinite-epsilon".into(), edit("[train]", "[train]\nepsilon = inf")),
        ("beta-one".into(), edit("[train]", "[train]\nbeta1 = 1.0")),
        ("zero-iterations".into(), edit("iterations = 2", "iterations = 0")),
        ("zero-batch".into(), edit("batch_size = 4", "batch_size = 0")),
        ("rate-one".into(), edit("[0.2, 0.1]", "[1.0, 0.1]")),
        ("rates-fewer-than-layers".into(), edit("[0.2, 0.1]", "[0.2]")),
        ("unknown-optimizer".into(), edit("[train]", "[train]\noptimizer = \"lbfgs\"")),
        (
            "rewind-past-the-end".into(),
            edit("levels = 1", "levels = 1\nreset = \"rewind\"\nrewind_iteration = 3"),
        ),
    ]
}

/// The valid sweep file: a shipped recipe, two variants, two replicates.
const SWEEP: &str = r#"out = "sweep-out"
models = ["digits-mlp"]
datasets = ["digits"]
seeds = [0]
replicates = 2

[find]
iterations = 20
levels = 1

[variants.reset]
[variants.global]
pruning = "global"

[slurm]
time = "00:10:00"
cpus_per_task = 1
"#;

fn sweep_damage() -> Vec<(String, Vec<u8>)> {
    let edit = |from: &str, to: &str| edited(SWEEP, from, to);
    vec![
        ("empty".into(), vec![]),
        ("not-utf8".into(), b"models = [\"\xff\xfe\"]\n".to_vec()),
        ("not-toml".into(), b"models = [\"digits-mlp\",".to_vec()),
        ("unknown-key".into(), edit("replicates = 2", "replicats = 2")),
        ("unknown-find-option".into(), edit("levels = 1", "levles = 1")),
        ("wrong-type".into(), edit("replicates = 2", "replicates = \"2\"")),
        ("negative-seed".into(), edit("seeds = [0]", "seeds = [-1]")),
        ("no-models".into(), edit("[\"digits-mlp\"]", "[]")),
        ("zero-replicates".into(), edit("replicates = 2", "replicates = 0")),
        ("too-many-jobs".into(), edit("replicates = 2", "replicates = 100001")),
        ("unknown-recipe".into(), edit("[\"digits-mlp\"]", "[\"no-such-recipe\"]")),
        (
            "one-experiment-twice".into(),
            edit("[\"digits-mlp\"]", "[\"digits-mlp\", \"models/digits-mlp\"]"),
        ),
        ("variant-name-a-path".into(), edit("[variants.global]", "[variants.\"../global\"]")),
        ("unknown-pruning".into(), edit("\"global\"", "\"random\"")),
        ("slurm-line-break".into(), edit("\"00:10:00\"", "\"00:10:00\\n#SBATCH --mem=1T\"")),
        ("zero-cpus".into(), edit("cpus_per_task = 1", "cpus_per_task = 0")),
    ]
}

// ---------------------------------------------------------------------------------------------
// The manifest: what each damaged file's error must say.

/// The text the error for the damaged file `path` (relative to `tests/corpus/`) must contain,
/// whichever command reads it: the damage named, not just any refusal.
fn expected_problem(path: &str) -> String {
    if let Some(problem) = import_cases::expected(path) {
        return problem;
    }
    let (kind, file) = path.split_once('/').unwrap();
    if kind == "request" {
        let case = request_damage().into_iter().find(|(name, ..)| name == file);
        return case.expect("a request case").2.to_string();
    }
    let case = file.split(['/', '.']).next().unwrap();
    if let Some(cut) = case.strip_prefix("truncated-at-") {
        return truncation_problem(kind, cut.parse().unwrap()).to_string();
    }
    let common = match case {
        "header-length-huge" => Some("header too large"),
        "header-length-past-end" => Some("invalid header length"),
        "header-length-zero" => Some("EOF while parsing a value"),
        "header-length-short" => Some("invalid JSON in header: EOF while parsing"),
        "header-length-long" | "header-not-utf8" => Some("invalid UTF-8 in header"),
        "header-not-an-object" => Some("invalid type: sequence"),
        "trailing-bytes" => Some("file not fully covered"),
        "offsets-past-the-end" | "offsets-huge" | "shape-disagrees-with-bytes" => {
            Some("invalid shape, data type, or offset")
        }
        "offsets-overlap" | "offsets-reversed" | "offsets-gap" => Some("invalid offset for tensor"),
        "name-with-a-newline" => Some("invalid offset for tensor"),
        "offsets-missing" | "bit-flip-data-offsets-key" => Some("missing field `data_offsets`"),
        "shape-overflows" => Some("overflow computing buffer size"),
        "shape-negative" => Some("invalid value: integer `-1`"),
        "dtype-unknown-to-safetensors" => Some("unknown variant `Q4`"),
        "metadata-not-strings" => Some("invalid type: integer `1`, expected a string"),
        "bit-flip-opening-brace" => Some("invalid JSON in header: expected value"),
        "bit-flip-metadata-key" | "bit-flip-dtype-key" => Some("missing field `dtype`"),
        "bit-flip-dtype-value" => Some("unknown variant `G32`"),
        "bit-flip-offset-digit" => Some("invalid offset for tensor"),
        "bit-flip-shape-digit" => Some("invalid shape, data type, or offset"),
        "format-missing" => Some("no `format` in the metadata"),
        "format-with-a-newline" => Some("format is `ticket-\\nsomething`"),
        "version-0" => Some("format_version `0` is not supported"),
        "version-3" | "v2-version-3" => Some("format_version `3` is not supported"),
        "version-not-a-number" => Some("format_version `one` is not supported"),
        "version-empty" => Some("format_version `` is not supported"),
        "version-missing" => Some("metadata has no `format_version` entry"),
        "version-2-without-graph" | "v2-graph-missing" => Some("metadata has no `graph` entry"),
        "arch-missing" => Some("metadata has no `arch` entry"),
        "arch-not-numbers" => Some("architecture `64-six-10` is not like"),
        "arch-one-size" => Some("at least two layer sizes, got [64]"),
        "arch-too-large" => Some("the model input [100000000000] is too large"),
        "arch-zero-sized-layer" => Some("layer sizes must be positive, got [64, 0, 10]"),
        "bias-missing" => Some("missing tensor `fc2.bias`"),
        "v2-graph-not-json" => Some("metadata `graph`: graph: EOF while parsing"),
        "v2-graph-unknown-op" => Some("metadata `graph`: graph: unknown variant `gelu`"),
        "v2-graph-unknown-field" => Some("metadata `graph`: graph: unknown field `dilation`"),
        "v2-graph-shapes-do-not-chain" => {
            Some("layer 4 (linear `fc1`) has in = 31, but its input has 32 features")
        }
        "v2-graph-kernel-larger-than-input" => {
            Some("(conv2d `conv1`) kernel [11, 11] is larger than its input [8, 8]")
        }
        "v2-graph-zero-channels" => Some("(conv2d `conv1`) has an empty output [0, 8, 8]"),
        "v2-graph-zero-input" => Some("with positive sizes, got [1, 0, 8]"),
        "v2-graph-huge-channels" => Some("(conv2d `conv1`) has too large an output"),
        "v2-graph-huge-input" => Some("the model input [1, 2147483648, 2147483648] is too large"),
        "v2-graph-flatten-missing" => Some("layer 3 (linear `fc1`) takes a vector"),
        _ => None,
    };
    let specific = match (kind, case) {
        ("csr", "format-other") => "format is `ticket-dense`, expected `ticket-csr`",
        // `ticket train --mask` says "format is `ticket-csr`, expected `ticket-dense`";
        // `ticket export` reads the file as a CSR file to re-encode, and says so.
        ("dense", "format-other") => "`ticket-csr`",
        ("csr", "bit-flip-format-value") => "format is `uicket-csr`, expected `ticket-csr`",
        ("dense", "bit-flip-format-value") => "format is `uicket-dense`, expected `ticket-dense`",
        ("csr", "activation-unknown") => "activation `tanh` is not supported",
        ("csr", "arch-disagrees-with-tensors") => "layer fc1 has weight shape [6, 64] but graph",
        ("dense", "arch-disagrees-with-tensors") => {
            "`fc1.weight` has shape [6, 64], expected [7, 64]"
        }
        ("csr", "bias-nan") => "layer fc2: bias of row 9 is NaN",
        ("csr", "bias-wrong-length") => "`fc1.bias` has shape [7], expected [6]",
        ("dense", "bias-wrong-length") => "`fc1.bias` has shape [5], expected [6]",
        ("csr", "index-far-out-of-range") => "row 0 has column index 65535, but the matrix has 64",
        ("csr", "index-out-of-range") => "row 0 has column index 64, but the matrix has 64",
        ("csr", "indices-duplicate") => "indices of row 1 are not strictly increasing (2 then 2)",
        ("csr", "indices-unsorted") => "indices of row 1 are not strictly increasing (5 then 2)",
        ("csr", "indices-fewer-than-values") => "past the 127 column indices",
        ("csr", "indices-two-dimensional") => {
            "`fc1.weight.indices` has shape [1, 128], expected one"
        }
        ("csr", "indices-wrong-dtype") => "`fc1.weight.indices` has dtype I16",
        ("csr", "indptr-decreases") => "layer fc1: indptr decreases at row 1",
        ("csr", "indptr-overruns") => "ends at 129, past the 128 column indices",
        ("csr", "indptr-row-overruns") => "row 2 ends at 10000, past the 128 column indices",
        ("csr", "indptr-starts-above-zero") => "indptr starts at 1, expected 0",
        ("csr", "indptr-too-long") => "`fc1.weight.indptr` has shape [8], expected [7]",
        ("csr", "indptr-too-short") => "`fc1.weight.indptr` has shape [6], expected [7]",
        ("csr", "indptr-two-dimensional") => "`fc1.weight.indptr` has shape [1, 7], expected [7]",
        ("csr", "indptr-wrong-dtype") => "`fc1.weight.indptr` has dtype I32, expected U32",
        ("csr", "layers-fewer-than-arch") => {
            "metadata lists 1 layers (fc1) but graph 64-6-10 has 2"
        }
        ("csr", "layers-unknown-name") => "`layers` names `fc9` where the graph has `fc2`",
        ("csr", "shape-disagrees-with-arch") => "layer fc1 has weight shape [6, 63]",
        ("csr", "shape-huge-columns") => "layer fc1 has weight shape [6, 9223372036854775807]",
        ("csr", "shape-negative-rows") => "`fc1.weight.shape` holds [-6, 64], not a shape",
        ("csr", "shape-zero-columns") => "`fc1.weight.shape` holds [6, 0], not a shape",
        ("csr", "shape-three-dims") => "`fc1.weight.shape` has shape [3], expected [2]",
        ("csr", "shapes-do-not-chain") => "layer fc2 has weight shape [10, 5]",
        ("dense", "shapes-do-not-chain") => "`fc2.weight` has shape [10, 5], expected [10, 6]",
        ("csr", "value-dtype-disagrees") => "is f32 but metadata `value_dtype` says f16",
        ("csr", "value-dtype-unknown") => "unknown value dtype `f8`",
        ("csr", "values-bf16-nan") => "layer fc1: value 0 is NaN",
        ("csr", "values-f16-infinite") => "layer fc2: value 1 is inf",
        ("csr", "values-f64") => "`fc1.weight.values` has dtype F64",
        ("csr", "values-fewer-than-indices") => {
            "`fc1.weight.values` has shape [127], expected [128]"
        }
        ("csr", "values-infinite") => "layer fc1: value 0 is inf",
        ("csr", "values-missing") => "missing tensor `fc1.weight.values`",
        ("csr", "values-nan") => "layer fc1: value 3 is NaN",
        ("csr", "k3-codebook-index-out-of-range") => {
            "layer fc1: codebook index 5 of value 5 is out of range (the codebook has 5 entries)"
        }
        ("csr", "k3-codebook-too-long") => {
            "`fc1.weight.codebook` is F32 [9], expected F32 [K] with 1 <= K <= 8"
        }
        ("csr", "k3-codebook-nan") => "layer fc1: codebook entry 2 is NaN",
        ("csr", "k3-codes-short") => {
            "`fc1.weight.values` is not U8 [48] (128 codebook indices of 3 bits)"
        }
        ("csr", "gap4-stream-short") => "layer fc1: gap stream ends in row 3",
        ("csr", "gap4-stream-trailing") => "layer fc1: the gap stream has",
        ("csr", "gap4-column-out-of-range") => {
            "layer fc1: gap stream places row 0 at column 74, but the matrix has 64 columns"
        }
        ("csr", "gap4-indices-u16") => {
            "`fc1.weight.indices` has dtype U16, but the indices are 4-bit gaps"
        }
        ("csr", "index-bits-unknown") => "metadata `index_bits` = `9` is not 3..8",
        ("csr", "index-bits-conv-9") => "metadata `index_bits`: `conv=9`: `9` is not 3..8",
        ("csr", "index-bits-kind-pool") => {
            "`pool=4`: unknown layer kind `pool` (expected conv or linear)"
        }
        ("csr", "index-bits-kind-twice") => "`linear=4,linear=5` names layer kind `linear` twice",
        ("csr", "index-bits-other-kind") => {
            "`fc1.weight.indices` has dtype U8, but the indices are absolute"
        }
        ("csr", "int8-scale-nan") => "layer fc2: scale of row 4 is NaN",
        ("csr", "int8-scales-missing") => "missing tensor `fc1.weight.scales`",
        ("csr", "value-dtype-k9") => {
            "unknown value dtype `k9` (expected f32, f16, bf16, int8 or k2..k8)"
        }
        ("csr", "values-negative-infinite") => "layer fc2: value 5 is -inf",
        ("csr", "v2-conv-weight-rank-2") => "`conv1.weight.shape` has shape [2], expected [4]",
        ("csr", "v2-conv-dims-disagree-with-graph") => {
            "layer conv1 has weight shape [2, 1, 1, 9] but graph"
        }
        ("dense", "v2-conv-weight-rank-2") => {
            "`conv1.weight` has shape [2, 9], expected [2, 1, 3, 3]"
        }
        ("dense", "v2-conv-dims-disagree-with-graph") => {
            "`conv1.weight` has shape [2, 1, 1, 9], expected [2, 1, 3, 3]"
        }
        ("dense", "arch-too-large-without-masks") => {
            "`fc1.weight` has shape [6, 64], expected [4000"
        }
        ("dense", "iteration-not-a-number") => "metadata `iteration` = `-3` is not valid",
        ("dense", "mask-holds-2") => "`fc1.weight_mask` holds 2; masks hold only 0 and 1",
        ("dense", "mask-holds-255") => "`fc2.weight_mask` holds 255; masks hold only 0 and 1",
        ("dense", "mask-missing-in-one-layer") => "masks for 1 of 2 layers",
        ("dense", "mask-wrong-dtype") => "`fc1.weight_mask` has dtype U16, expected U8",
        ("dense", "mask-wrong-shape") => "`fc1.weight_mask` has shape [64, 6], expected [6, 64]",
        ("dense", "seed-missing") => "metadata has no `seed` entry",
        ("dense", "weight-f64") => "`fc2.weight` has dtype F64, expected F32",
        ("dense", "weight-missing") => "missing tensor `fc1.weight`",
        ("dense", "weight-wrong-dtype") => "`fc1.weight` has dtype I32, expected F32",
        ("dense", "weight-wrong-shape") => "`fc2.weight` has shape [6, 10], expected [10, 6]",
        ("dense-values", "bias-infinite") => "layer fc2: bias [0] is -inf; refusing to export it",
        ("dense-values", "bias-nan") => "layer fc1: bias [2] is NaN; refusing to export it",
        ("dense-values", "weight-infinite") => "layer fc2: weight [0, 0] (index 0) is inf",
        ("dense-values", "weight-nan") => "layer fc1: weight [0, 3] (index 3) is NaN",
        ("batch", "infinite") => "tensor `input`: feature 63 of example 2 is -inf",
        ("batch", "nan") => "tensor `input`: feature 6 of example 1 is NaN",
        ("batch", "named-otherwise") => "missing tensor `input`",
        ("batch", "one-dimension") => "`input` has shape [192], expected [batch, 64]",
        ("batch", "three-dimensions") => "`input` has shape [3, 64, 1], expected [batch, 64]",
        ("batch", "features-63") => "`input` has 63 features per example, the model takes 64",
        ("batch", "dtype-f16") => "`input` has dtype F16, expected F32",
        ("batch", "dtype-i32") => "`input` has dtype I32, expected F32",
        ("sweep", "empty") => "missing field `models`",
        ("sweep", "not-utf8") => "stream did not contain valid UTF-8",
        ("sweep", "not-toml") => "unclosed array",
        ("sweep", "unknown-key") => "unknown field `replicats`",
        ("sweep", "unknown-find-option") => "unknown field `levles`",
        ("sweep", "wrong-type") => "invalid type: string \"2\", expected usize",
        ("sweep", "negative-seed") => "invalid value: integer `-1`, expected u64",
        ("sweep", "no-models") => "`models` is empty: give at least one",
        ("sweep", "zero-replicates") => "`replicates` is 0: give at least 1",
        ("sweep", "too-many-jobs") => "the grid has more than 100000 jobs",
        ("sweep", "unknown-recipe") => "no recipe file `no-such-recipe`",
        ("sweep", "one-experiment-twice") => {
            "the grid makes the experiment `digits-mlp-digits-global-s0` twice"
        }
        ("sweep", "variant-name-a-path") => "variant name `../global`: use letters, digits",
        ("sweep", "unknown-pruning") => "unknown variant `random`",
        ("sweep", "slurm-line-break") => "`slurm.time` holds a line break or control character",
        ("sweep", "zero-cpus") => "`slurm.cpus_per_task` is 0: give at least 1",
        ("recipe", "beta-one") => "train.beta1 must be in [0, 1), got 1",
        ("recipe", "empty") => "missing field `name`",
        ("recipe", "infinite-epsilon") => "train.epsilon must be a positive number, got inf",
        ("recipe", "nan-learning-rate") => "train.learning_rate must be a positive number, got NaN",
        ("recipe", "negative-size") => "line 2, column 10",
        ("recipe", "not-toml") => "unclosed array",
        ("recipe", "not-utf8") => "stream did not contain valid UTF-8",
        ("recipe", "one-layer-size") => "at least two layer sizes, got [64]",
        ("recipe", "overflowing") => "the model input [4294967296] is too large",
        ("recipe", "rate-one") => "prune.layer_rates[0] = 1 is impossible",
        ("recipe", "rates-fewer-than-layers") => "layer_rates has 1 entries but the model has 2",
        ("recipe", "rewind-past-the-end") => "rewind_iteration = 3 is past the end of training",
        ("recipe", "too-large") => {
            "architecture 64-100000000-10 has more than 4294967295 parameters"
        }
        ("recipe", "truncated") => "key with no value",
        ("recipe", "unknown-key") => "unknown field `batch_sise`",
        ("recipe", "unknown-optimizer") => "unknown variant `lbfgs`",
        ("recipe", "wrong-type") => "invalid type: string \"2\", expected usize",
        ("recipe", "zero-batch") => "train.batch_size must be at least 1",
        ("recipe", "zero-iterations") => "train.iterations must be at least 1",
        ("recipe", "zero-sized-layer") => "layer sizes must be positive, got [64, 0, 10]",
        ("idx", "dtype-float") => "IDX element type 0x0d is not supported",
        ("idx", "dtype-unknown") => "IDX element type 0x42 is not supported",
        ("idx", "gzip-bad-crc") => "does not have a matching checksum",
        ("idx", "gzip-of-truncated-idx") => "truncated: the file ends inside dimension 0",
        ("idx", "gzip-reserved-block-type" | "gzip-stored-length-mismatch") => {
            "cannot decode (corrupt gzip stream?): corrupt deflate stream"
        }
        ("idx", "gzip-trailing-garbage") => "cannot decode (corrupt gzip stream?)",
        ("idx", "gzip-truncated") => "incomplete deflate stream",
        ("idx", "header-dimensions-overflow") => "are implausibly large",
        ("idx", "header-promises-4-gib") => "promises 4294967295 data bytes, found 768",
        ("idx", "header-promises-less") => "more data than the header [11, 8, 8] declares",
        ("idx", "header-promises-more") => "promises 832 data bytes, found 768",
        ("idx", "images-four-dimensions") => "images must have 3 dimensions",
        ("idx", "images-two-dimensions") => "images must have 3 dimensions",
        ("idx", "labels-fewer-than-images") => "11 labels for 12 images",
        ("idx", "labels-two-dimensions") => "labels must have 1 dimension [n], found [12, 1]",
        ("idx", "magic-bit-flip") => "magic number 0x00010803 does not start with two zero",
        ("idx", "magic-not-zero") => "magic number 0x50000803 does not start with two zero",
        ("idx", "zero-dimensions") => "IDX header declares zero dimensions",
        ("idx", case) if case.starts_with("images-truncated-at-") => {
            return idx_truncation_problem(case, 12 * 64, 16);
        }
        ("idx", case) if case.starts_with("labels-truncated-at-") => {
            return idx_truncation_problem(case, 4, 8);
        }
        _ => common.unwrap_or_else(|| panic!("no expected problem recorded for {path}")),
    };
    specific.to_string()
}

/// What a safetensors reader must say of a `kind` file cut after `cut` bytes.
fn truncation_problem(kind: &str, cut: usize) -> &'static str {
    let valid = match kind {
        "csr" => csr_model(),
        "dense" => dense_checkpoint(),
        _ => input_batch(3),
    }
    .bytes();
    let header_end = 8 + u64::from_le_bytes(valid[..8].try_into().unwrap()) as usize;
    match cut {
        0 if kind == "csr" => "the file is empty, not a CSR model",
        0..8 => "header too small",
        _ if cut < header_end => "invalid header length",
        _ => "incomplete metadata, file not fully covered",
    }
}

/// What the IDX reader must say of an IDX file (`header` bytes of header for `data` bytes of
/// data) cut as the case name `...-truncated-at-NNNN` says.
fn idx_truncation_problem(case: &str, data: usize, header: usize) -> String {
    let cut: usize = case.rsplit('-').next().unwrap().parse().unwrap();
    match cut {
        0..4 => "the file ends inside the 4-byte magic number".into(),
        _ if cut < header => {
            format!("the file ends inside dimension {} of the header", (cut - 4) / 4)
        }
        _ => format!("promises {data} data bytes, found {}", cut - header),
    }
}

// ---------------------------------------------------------------------------------------------
// Infer requests (the Open Inference Protocol) for the valid MLP: input FP32 [-1, 64].

/// A JSON infer request whose one input has `shape` and `data`, with `extra` fields merged
/// into the input.
fn request(shape: Value, data: Value, extra: Value) -> Value {
    let mut input = json!({"name": "input", "datatype": "FP32", "shape": shape, "data": data});
    if let (Some(input), Value::Object(extra)) = (input.as_object_mut(), extra) {
        input.extend(extra);
    }
    json!({"inputs": [input]})
}

/// A `.bin` request file: header length line, JSON header, `values` as FP32 bytes.
fn binary_request(header_length: Option<&str>, header: &Value, values: &[f32]) -> Vec<u8> {
    let header = header.to_string();
    let length = header_length.map_or(header.len().to_string(), str::to_string);
    [format!("{length}\n").into_bytes(), header.into_bytes(), f32s(values)].concat()
}

/// (file name, bytes, the text of the 400 answer) of every damaged request.
fn request_damage() -> Vec<(String, Vec<u8>, &'static str)> {
    let example: Vec<f32> = (0..64).map(|i| value(i, 77)).collect();
    let good = || request(json!([1, 64]), json!(example), json!({}));
    let edited = |edit: &dyn Fn(&mut Value)| {
        let mut v = good();
        edit(&mut v);
        v.to_string().into_bytes()
    };
    let binary_header = |size: usize| {
        let mut v = good();
        let input = &mut v["inputs"][0];
        input.as_object_mut().unwrap().remove("data");
        input["parameters"] = json!({"binary_data_size": size});
        v
    };
    let with_value = |i: usize, x: f32| {
        let mut values = example.clone();
        values[i] = x;
        binary_request(None, &binary_header(256), &values)
    };
    let json_cases: Vec<(&str, Vec<u8>, &'static str)> = vec![
        ("not-json", b"{\"inputs\": [".to_vec(), "EOF while parsing"),
        ("not-utf8", b"\xff\xfe{}".to_vec(), "expected value at line 1 column 1"),
        ("no-inputs", br#"{"inputs": []}"#.to_vec(), "request has 0 inputs"),
        ("inputs-missing", br#"{"outputs": []}"#.to_vec(), "missing field `inputs`"),
        (
            "two-inputs",
            edited(&|v| {
                let input = v["inputs"][0].clone();
                v["inputs"].as_array_mut().unwrap().push(input);
            }),
            "request has 2 inputs",
        ),
        (
            "input-unknown-name",
            edited(&|v| v["inputs"][0]["name"] = json!("x")),
            "unknown input 'x'",
        ),
        (
            "datatype-fp64",
            edited(&|v| v["inputs"][0]["datatype"] = json!("FP64")),
            "has datatype FP64; the model takes FP32",
        ),
        (
            "shape-wrong-features",
            edited(&|v| v["inputs"][0]["shape"] = json!([1, 63])),
            "has shape [1, 63]; the model takes [-1, 64]",
        ),
        (
            "shape-negative",
            edited(&|v| v["inputs"][0]["shape"] = json!([-1, 64])),
            "with a negative dimension",
        ),
        (
            "shape-empty-batch",
            edited(&|v| {
                v["inputs"][0]["shape"] = json!([0, 64]);
                v["inputs"][0]["data"] = json!([]);
            }),
            "an empty batch",
        ),
        (
            "shape-huge-batch",
            edited(&|v| v["inputs"][0]["shape"] = json!([1u64 << 60, 64])),
            "too large",
        ),
        (
            "data-fewer-than-shape",
            edited(&|v| v["inputs"][0]["shape"] = json!([2, 64])),
            "(128 values) but its data holds 64",
        ),
        (
            "data-beyond-fp32",
            edited(&|v| v["inputs"][0]["data"][3] = json!(1e39)),
            "data value 1e+39 at index 3 is not a finite FP32 number",
        ),
        (
            "data-not-numbers",
            edited(&|v| v["inputs"][0]["data"][0] = json!("a")),
            "data value at index 0 is not a number",
        ),
        (
            "data-missing",
            edited(&|v| {
                v["inputs"][0].as_object_mut().unwrap().remove("data");
            }),
            "has neither data nor binary_data_size",
        ),
        (
            "data-and-binary-size",
            edited(&|v| v["inputs"][0]["parameters"] = json!({"binary_data_size": 256})),
            "has both data and binary_data_size",
        ),
        (
            "output-unknown",
            edited(&|v| v["outputs"] = json!([{"name": "probs"}])),
            "unknown output 'probs'",
        ),
    ];
    let binary_cases: Vec<(&str, Vec<u8>, &'static str)> = vec![
        (
            "binary-size-lies",
            binary_request(None, &binary_header(252), &example[..63]),
            "(256 bytes of FP32) but binary_data_size 252",
        ),
        (
            "binary-truncated",
            binary_request(None, &binary_header(256), &example[..63]),
            "only 252 bytes of binary data follow the header",
        ),
        (
            "binary-trailing-bytes",
            binary_request(None, &binary_header(256), &[&example[..], &[0.0]].concat()),
            "4 bytes of binary data follow the inputs that no input claims",
        ),
        ("binary-nan", with_value(2, f32::NAN), "value NaN at index 2 is not a finite FP32"),
        ("binary-infinite", with_value(0, f32::INFINITY), "value inf at index 0 is not a finite"),
        (
            "header-length-past-end",
            binary_request(Some("99999"), &binary_header(256), &example),
            "Inference-Header-Content-Length is 99999 but the body has only",
        ),
        (
            "header-length-cuts-the-json",
            binary_request(Some("20"), &binary_header(256), &example),
            "EOF while parsing",
        ),
        (
            "header-length-not-a-number",
            binary_request(Some("abc"), &binary_header(256), &example),
            "is not a byte count",
        ),
    ];
    let json_files = json_cases.into_iter().map(|(n, b, e)| (format!("{n}.json"), b, e));
    let binary_files = binary_cases.into_iter().map(|(n, b, e)| (format!("{n}.bin"), b, e));
    json_files.chain(binary_files).collect()
}
