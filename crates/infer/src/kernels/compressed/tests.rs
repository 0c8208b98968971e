//! Every compressed layout (f32 / int8 / codebook values x U16 / U32 / gap columns), every
//! instruction set and batch shape, against the f32 CSR kernels on the decoded matrix: bit
//! for bit, since both sum in the same order.

use super::*;
use crate::fixture::{CsrParts, Random};
use crate::kernels::spmm_with;
use ticket_core::packed::{encode_gaps, pack, GapRows};
use ticket_core::Par;

/// One layout of a random layer: the compressed weights and the f32 values they decode to.
pub(crate) fn layouts(
    w: &CsrParts,
    rng: &mut Random,
) -> Vec<(String, CompressedWeights, Vec<f32>)> {
    let nnz = w.nnz();
    let mut out = vec![];
    let row_of: Vec<usize> = (0..w.rows)
        .flat_map(|r| std::iter::repeat_n(r, (w.indptr[r + 1] - w.indptr[r]) as usize))
        .collect();
    for value_kind in ["f32", "int8", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8"] {
        let (values, decoded) = match value_kind {
            "f32" => (ValueStore::F32(w.values.clone().into()), w.values.clone()),
            "int8" => {
                let scales = rng.vec(w.rows, 0.001, 0.02);
                let q: Vec<i8> = (0..nnz).map(|_| (rng.uniform(-127.0, 127.0)) as i8).collect();
                let decoded = (0..nnz).map(|k| scales[row_of[k]] * q[k] as f32).collect();
                (ValueStore::Int8 { q: q.into(), scales: scales.into() }, decoded)
            }
            k => {
                let bits: u32 = k[1..].parse().unwrap();
                let entries = (1usize << bits) - (bits as usize % 2); // not always full
                let book = rng.vec(entries, -0.5, 0.5);
                let codes: Vec<u32> = (0..nnz)
                    .map(|_| (rng.unit() * entries as f64) as u32 % entries as u32)
                    .collect();
                let mut table = Box::new([0.0f32; 256]);
                table[..entries].copy_from_slice(&book);
                let decoded = codes.iter().map(|&c| book[c as usize]).collect();
                let codes = pack(&codes, bits);
                (ValueStore::Codebook { bits, codes: codes.into(), table }, decoded)
            }
        };
        let mut columns = vec![
            ("u16".to_string(), ColumnStore::U16(w.indices_u16().into())),
            ("u32".to_string(), ColumnStore::U32(w.indices.clone().into())),
        ];
        for bits in 3..=8 {
            let stream = pack(&encode_gaps(&w.indptr, &w.indices, bits), bits);
            let starts = GapRows::check(w.rows, w.cols, &w.indptr, &stream, bits).unwrap().starts;
            columns.push((format!("gap{bits}"), ColumnStore::gaps(bits, stream.into(), starts)));
        }
        for (name, columns) in columns {
            let values = match &values {
                ValueStore::F32(v) => ValueStore::F32(v.to_vec().into()),
                ValueStore::Int8 { q, scales } => {
                    ValueStore::Int8 { q: q.to_vec().into(), scales: scales.to_vec().into() }
                }
                ValueStore::Codebook { bits, codes, table } => ValueStore::Codebook {
                    bits: *bits,
                    codes: codes.to_vec().into(),
                    table: table.clone(),
                },
            };
            let c = CompressedWeights { rows: w.rows, cols: w.cols, values, columns };
            out.push((format!("{value_kind}+{name}"), c, decoded.clone()));
        }
    }
    out
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn compressed_products_equal_the_f32_kernels_bit_for_bit() {
    let mut rng = Random::new(11);
    for (rows, cols, density) in [(37, 300, 0.05), (9, 70, 0.6), (5, 1000, 0.01)] {
        let mut w = CsrParts::random(rows, cols, density, &mut rng);
        w.clear_rows(|r| r % 4 == 2);
        let bias = rng.vec(rows, -0.1, 0.1);
        for (name, c, decoded) in layouts(&w, &mut rng) {
            let f32_csr = CsrRef::new(rows, cols, &w.indptr, &w.indices, &decoded).unwrap();
            let mut seen = vec![];
            c.for_each(&w.indptr, |r, col, v| seen.push((r, col as u32, v.to_bits())));
            let (indices, values) = (&w.indices, &decoded);
            let want: Vec<(usize, u32, u32)> = (0..rows)
                .flat_map(|r| {
                    f32_csr.row_range(r).map(move |k| (r, indices[k], values[k].to_bits()))
                })
                .collect();
            assert_eq!(seen, want, "{name}: decoded entries");
            let (all_cols, all_values) = c.decoded(&w.indptr);
            assert_eq!(all_cols, w.indices, "{name}: decoded columns");
            assert_eq!(bits(&all_values), bits(&decoded), "{name}: decoded values");
            // One plain block, and batches laid out in tiles of 8 or 32 (the last shorter).
            for (batch, tile) in
                [(1, 1), (3, 3), (8, 8), (13, 13), (32, 32), (70, 70), (13, 8), (70, 32)]
            {
                let x = rng.vec(cols * batch, -1.0, 1.0);
                for act in [Activation::Identity, Activation::Relu] {
                    let what = format!("{name} batch {batch} tile {tile} {act:?}");
                    assert_tiles_equal(&c, (f32_csr, &bias), &x, (batch, tile), act, &what);
                }
            }
        }
    }
}

/// `c`'s product over a batch laid out in tiles against the f32 CSR kernel `w` (`c`
/// decoded) run over each tile, bit for bit, with every instruction set.
fn assert_tiles_equal(
    c: &CompressedWeights,
    (w, bias): (CsrRef<u32>, &[f32]),
    x: &[f32],
    (batch, tile): (usize, usize),
    act: Activation,
    what: &str,
) {
    let (rows, cols) = (w.rows(), w.cols());
    for isa in Isa::available() {
        let mut want = vec![0.0; rows * batch];
        for e in crate::kernels::tiles(batch, tile) {
            let xt = &x[e.start * cols..e.end * cols];
            let yt = &mut want[e.start * rows..e.end * rows];
            spmm_with(isa, w, Some(bias), xt, yt, e.len(), act, Par::Seq, usize::MAX);
        }
        let mut got = vec![f32::NAN; rows * batch];
        c.spmm_with(isa, w.indptr(), bias, TiledInput::Tiled(x), &mut got, (batch, tile), act);
        assert_eq!(bits(&got), bits(&want), "{what} {isa:?}");
    }
}

/// A layer of more nonzeros than one chunk decoded for several tiles: chunks of rows follow
/// one another, each over every tile.
#[test]
fn tiled_products_over_several_chunks_equal_the_f32_kernels() {
    let mut rng = Random::new(17);
    let (rows, cols) = (90, 1500);
    let w = CsrParts::random(rows, cols, 0.15, &mut rng);
    assert!(w.nnz() > 2 * TILED_CHUNK, "{} nonzeros", w.nnz());
    let bias = rng.vec(rows, -0.1, 0.1);
    let (batch, tile) = (40, 16);
    let x = rng.vec(cols * batch, -1.0, 1.0);
    for (name, c, decoded) in layouts(&w, &mut rng) {
        if !["f32+u16", "int8+gap4", "k4+u32", "k6+gap5", "k8+gap8"].contains(&name.as_str()) {
            continue;
        }
        let f32_csr = CsrRef::new(rows, cols, &w.indptr, &w.indices, &decoded).unwrap();
        assert_tiles_equal(&c, (f32_csr, &bias), &x, (batch, tile), Activation::Relu, &name);
    }
}

/// A batch of one tile with its rows split over threads (each decoding its own rows, several
/// chunks per part) equals the f32 kernel bit for bit, empty rows and all.
#[test]
fn split_rows_equal_the_f32_kernels() {
    let mut rng = Random::new(23);
    let (rows, cols) = (61, 900);
    let mut w = CsrParts::random(rows, cols, 0.05, &mut rng);
    w.clear_rows(|r| r % 7 == 3 || r < 2);
    assert!(w.nnz() > 4 * CHUNK, "{} nonzeros", w.nnz());
    let bias = rng.vec(rows, -0.1, 0.1);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
    for (name, c, decoded) in layouts(&w, &mut rng) {
        let f32_csr = CsrRef::new(rows, cols, &w.indptr, &w.indices, &decoded).unwrap();
        for batch in [1, 5] {
            let x = rng.vec(cols * batch, -1.0, 1.0);
            for isa in Isa::available() {
                let mut want = vec![0.0; rows * batch];
                let act = Activation::Relu;
                spmm_with(
                    isa,
                    f32_csr,
                    Some(&bias),
                    &x,
                    &mut want,
                    batch,
                    act,
                    Par::Seq,
                    usize::MAX,
                );
                for threads in [2, 3, rows + 4] {
                    let mut got = vec![f32::NAN; rows * batch];
                    pool.install(|| {
                        c.spmm_split(isa, &w.indptr, &bias, &x, &mut got, batch, act, threads)
                    });
                    assert_eq!(bits(&got), bits(&want), "{name} batch {batch} {threads} {isa:?}");
                }
            }
        }
    }
}

#[test]
fn compressed_convolution_equals_the_f32_kernel() {
    let mut rng = Random::new(3);
    let input = Image { channels: 3, height: 7, width: 6 };
    let window = Window { kernel: [3, 3], stride: [1, 2], padding: [1, 0] };
    let (rows, cols) = (5, 3 * 9);
    let mut w = CsrParts::random(rows, cols, 0.4, &mut rng);
    w.clear_rows(|r| r == 3);
    let bias = rng.vec(rows, -0.1, 0.1);
    for (name, c, decoded) in layouts(&w, &mut rng) {
        let f32_csr = CsrRef::new(rows, cols, &w.indptr, &w.indices, &decoded).unwrap();
        let conv = Conv2d::new(f32_csr, &bias, input, window);
        for batch in [1, 4, 9] {
            let x = rng.vec(input.len() * batch, -1.0, 1.0);
            let mut want = vec![0.0; conv.output().len() * batch];
            conv.run(&x, &mut want, batch, Activation::Relu);
            let mut got = vec![f32::NAN; want.len()];
            c.conv2d(&w.indptr, &bias, input, window, &x, &mut got, batch, Activation::Relu);
            assert_eq!(bits(&got), bits(&want), "{name} batch {batch}");
        }
    }
}

/// The rows decoded from `start` (up to `limit` nonzeros) with `isa`'s decoders: ptr, columns
/// and values (as bits).
fn decoded(
    c: &CompressedWeights,
    isa: Isa,
    indptr: &[u32],
    start: usize,
    limit: usize,
) -> (usize, Vec<u32>, Vec<u32>, Vec<u32>) {
    let mut buf = RowBuffer::default();
    let end = c.decode_rows(isa, indptr, (start, c.rows), limit, &mut buf, true);
    let n = *buf.ptr.last().unwrap() as usize;
    (end, buf.ptr.clone(), buf.cols[..n].to_vec(), bits(&buf.vals[..n]))
}

#[test]
fn vector_decoders_equal_the_scalar_decoder_from_every_row() {
    let mut rng = Random::new(5);
    // Long rows with long gaps (fillers at every width), short rows and empty ones, streams
    // whose end falls inside a 16-byte load.
    for (rows, cols, density) in [(23, 2000, 0.02), (40, 50, 0.3), (3, 9, 0.5)] {
        let mut w = CsrParts::random(rows, cols, density, &mut rng);
        w.clear_rows(|r| r % 5 == 1);
        for (name, c, want_values) in layouts(&w, &mut rng) {
            let (_, _, cols_all, vals_all) = decoded(&c, Isa::Portable, &w.indptr, 0, usize::MAX);
            assert_eq!(cols_all, w.indices, "{name}: scalar columns");
            assert_eq!(vals_all, bits(&want_values), "{name}: scalar values");
            for isa in Isa::available() {
                for start in 0..rows {
                    for limit in [0, 7, 64] {
                        let want = decoded(&c, Isa::Portable, &w.indptr, start, limit);
                        let got = decoded(&c, isa, &w.indptr, start, limit);
                        assert_eq!(got, want, "{name} {isa:?} from row {start}, limit {limit}");
                    }
                }
            }
        }
    }
}
