//! The compressed codecs (int8, k2..k8 codebooks, 3..8-bit gap indices) round-trip: the
//! decoded masks are the source masks exactly, and the decoded values are what the codec
//! promises, checked against the raw tensors decoded here independently. Corrupt compressed
//! tensors are refused with an error naming the layer and the problem.

mod common;
use common::*;
use safetensors::Dtype;
use ticket_core::csr_format::{IndexCodec, IndexCodecs, ValueCodec};
use ticket_core::tensor_file::{edit_file, TensorFile};
use ticket_core::Network;
use ticket_export::{read_csr, Codecs, CsrModel, Provenance};

const CONV: &str = r#"{"input":[2,6,6],"layers":[
    {"op":"conv2d","name":"conv1","in":2,"out":4,"kernel":[3,3],"padding":[1,1]},{"op":"relu"},
    {"op":"maxpool2d","kernel":[2,2]},{"op":"flatten"},
    {"op":"linear","name":"fc1","in":36,"out":300},{"op":"relu"},
    {"op":"linear","name":"fc2","in":300,"out":3}]}"#;

fn write(net: &Network, codecs: Codecs) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    CsrModel::from_net(net).unwrap().write(&path, codecs, &Provenance::default()).unwrap();
    (dir, path)
}

/// Field `i` of an LSB-first stream of `bits`-bit fields, written from the format text.
fn bits_at(bytes: &[u8], i: usize, bits: usize) -> u32 {
    (0..bits)
        .map(|b| {
            let bit = i * bits + b;
            (((bytes[bit / 8] >> (bit % 8)) & 1) as u32) << b
        })
        .sum()
}

#[test]
fn every_codec_keeps_the_masks_and_decodes_as_specified() {
    let mut net = random_net(CONV, 0.3, 5);
    // A row whose only weight is in the last column, and an empty row.
    let fc1 = &mut net.layers[1];
    fc1.mask[..36].fill(0);
    fc1.mask[35] = 1;
    fc1.mask[36..72].fill(0);
    fc1.weight[35] = 0.75;
    fc1.apply_mask();
    for value in ["int8", "k2", "k3", "k5", "k8", "f16"] {
        for index in ["", "3", "4", "6", "8", "conv=3,linear=5", "conv=4", "linear=6"] {
            let index: IndexCodecs = match index {
                "" => IndexCodecs::default(),
                text => text.parse().unwrap(),
            };
            let codecs = Codecs { value: value.parse().unwrap(), index };
            let (_dir, path) = write(&net, codecs);
            let file = read_csr(&path).unwrap();
            assert_eq!(file.codecs, codecs);
            assert_eq!(
                file.metadata["format_version"],
                if value == "f16" && index.is_absolute() { "2" } else { "2.1" }
            );
            let decoded = file.model.to_dense();
            let bytes = std::fs::read(&path).unwrap();
            let raw = TensorFile::parse(&bytes, &path).unwrap();
            for ((src, got), name) in
                net.layers.iter().zip(&decoded.layers).zip(["conv1", "fc1", "fc2"])
            {
                assert_eq!(src.mask, got.mask, "{codecs} {name}");
                let kept: Vec<(usize, f32, f32)> = (0..src.mask.len())
                    .filter(|&i| src.mask[i] != 0)
                    .map(|i| (i / src.shape.cols, src.weight[i], got.weight[i]))
                    .collect();
                check_values(&raw, name, codecs.value.linear, &kept);
            }
        }
    }
}

/// The decoded values against the codec's promise, from the raw scales / codebook tensors.
fn check_values(raw: &TensorFile, layer: &str, codec: ValueCodec, kept: &[(usize, f32, f32)]) {
    match codec {
        ValueCodec::Int8 => {
            let rows = raw.view(&format!("{layer}.weight.scales")).unwrap().shape()[0];
            let scales = raw.f32(&format!("{layer}.weight.scales"), &[rows]).unwrap();
            let q = raw.bytes(&format!("{layer}.weight.values"), Dtype::I8, None).unwrap();
            for (k, &(row, src, got)) in kept.iter().enumerate() {
                assert_eq!(got, scales[row] * q[k] as i8 as f32);
                assert!((got - src).abs() <= scales[row] * 0.5 * (1.0 + 1e-5), "{src} -> {got}");
            }
        }
        ValueCodec::Codebook { bits } => {
            let name = format!("{layer}.weight.codebook");
            let entries = raw.view(&name).unwrap().shape()[0];
            assert!(entries <= 1 << bits);
            let book = raw.f32(&name, &[entries]).unwrap();
            let codes = raw.bytes(&format!("{layer}.weight.values"), Dtype::U8, None).unwrap();
            for (k, &(_, src, got)) in kept.iter().enumerate() {
                assert_eq!(got, book[bits_at(codes, k, bits as usize) as usize]);
                // The nearest centroid.
                let best = book.iter().map(|c| (c - src).abs()).fold(f32::INFINITY, f32::min);
                assert_eq!((got - src).abs(), best);
            }
        }
        ValueCodec::Float(d) => {
            for &(_, src, got) in kept {
                assert_eq!(
                    got,
                    ticket_export::codec::decode_values(
                        &ticket_export::codec::encode_values(&[src], d),
                        d
                    )[0]
                );
            }
        }
    }
}

fn read_edited(codecs: &str, edit: impl FnOnce(&mut Tensors, &mut Metadata)) -> String {
    let net = random_net("20-12-4", 0.5, 9);
    let (value, index) = codecs.split_once('+').unwrap_or((codecs, ""));
    let codecs = Codecs {
        value: value.parse().unwrap(),
        index: index
            .strip_prefix("gap")
            .map_or(IndexCodec::Absolute, |b| IndexCodec::Gaps { bits: b.parse().unwrap() })
            .into(),
    };
    let (_dir, path) = write(&net, codecs);
    edit_file(&path, edit).unwrap();
    let err = read_csr(&path).unwrap_err().to_string();
    assert!(err.contains("m.safetensors: "), "{err}");
    err
}

#[test]
fn corrupt_compressed_tensors_are_refused() {
    // A codebook shorter than the indices need.
    let err = read_edited("k3", |t, _| {
        let book = tensor(t, "fc1.weight.codebook");
        let keep = 1;
        book.data.truncate(4 * keep);
        book.shape = vec![keep];
    });
    assert!(err.contains("layer fc1: codebook index") && err.contains("out of range"), "{err}");
    let err = read_edited("k3", |t, _| {
        let book = tensor(t, "fc1.weight.codebook");
        book.data = vec![0; 4 * 9];
        book.shape = vec![9];
    });
    assert!(err.contains("expected [K] with 1 <= K <= 8"), "{err}");
    // A gap stream that ends before indptr's nonzeros.
    let err = read_edited("f32+gap4", |t, _| {
        let gaps = tensor(t, "fc1.weight.indices");
        gaps.data.truncate(gaps.data.len() / 2);
        gaps.shape = vec![gaps.data.len()];
    });
    assert!(err.contains("layer fc1: gap stream ends in row"), "{err}");
    // A scale that is NaN.
    let err = read_edited("int8", |t, _| {
        tensor(t, "fc2.weight.scales").data[..4].copy_from_slice(&f32::NAN.to_le_bytes());
    });
    assert!(err.contains("layer fc2: scale 0 is NaN"), "{err}");
    // A codebook entry that is infinite.
    let err = read_edited("k4+gap5", |t, _| {
        tensor(t, "fc2.weight.codebook").data[..4].copy_from_slice(&f32::INFINITY.to_le_bytes());
    });
    assert!(err.contains("layer fc2: codebook entry 0 is inf"), "{err}");
    // Unknown codec names.
    let err = read_edited("k4", |_, m| {
        m.insert("value_dtype".into(), "k9".into());
    });
    assert!(err.contains("unknown value dtype `k9`"), "{err}");
    let err = read_edited("k4+gap5", |_, m| {
        m.insert("index_bits".into(), "2".into());
    });
    assert!(err.contains("index_bits` = `2` is not 3..8"), "{err}");
    // Gap indices whose metadata was lost read as absolute indices of the wrong dtype.
    let err = read_edited("f32+gap5", |_, m| {
        m.remove("index_bits");
    });
    assert!(err.contains("fc1.weight.indices` has dtype U8, expected U16"), "{err}");
}
