//! A CSR file that is corrupt, inconsistent or of another version is rejected with an error
//! that names the file and the problem; nothing panics.

mod common;
use common::*;
use ticket_core::csr_format::ValueDtype;
use ticket_core::tensor_file::{edit_file, OwnedTensor};
use ticket_export::{read_csr, write_csr, Provenance};

/// Writes a valid file for a 6-5-4 model, applies `edit`, and returns the read error.
fn read_edited(edit: impl FnOnce(&mut Tensors, &mut Metadata)) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let mut net = random_net("6-5-4", 0.6, 21);
    net.layers[0].mask[..3].fill(1); // row 0 of fc1 keeps columns 0, 1, 2 at least
    write_csr(&path, &net, ValueDtype::F32, &Provenance::default()).unwrap();
    edit_file(&path, edit).unwrap();
    let err = read_csr(&path).unwrap_err().to_string();
    assert!(err.contains("m.safetensors: "), "{err}");
    err
}

#[test]
fn unsorted_or_duplicate_indices() {
    let err = read_edited(|t, _| tensor(t, "fc1.weight.indices").data.swap(0, 2));
    assert!(err.contains("layer fc1: not a valid CSR matrix") && err.contains("sorted"), "{err}");
    let err = read_edited(|t, _| {
        let d = &mut tensor(t, "fc1.weight.indices").data;
        d[2] = d[0];
    });
    assert!(err.contains("layer fc1: not a valid CSR matrix"), "{err}");
}

#[test]
fn index_out_of_range() {
    // The last index of row 0 of fc1 pointed past the 6 columns.
    let err = read_edited(|t, _| {
        let ip = &tensor(t, "fc1.weight.indptr").data;
        let end = u32::from_le_bytes(ip[4..8].try_into().unwrap()) as usize;
        tensor(t, "fc1.weight.indices").data[2 * (end - 1)] = 9;
    });
    assert!(err.contains("layer fc1: not a valid CSR matrix") && err.contains("larger"), "{err}");
}

#[test]
fn indptr_that_does_not_span_the_values() {
    let err = read_edited(|t, _| tensor(t, "fc2.weight.indptr").data[0] = 1);
    assert!(err.contains("layer fc2: indptr runs from 1 to"), "{err}");
    let err = read_edited(|t, _| {
        let v = tensor(t, "fc2.weight.values");
        v.data.truncate(v.data.len() - 4);
        v.shape[0] -= 1;
    });
    assert!(err.contains("layer fc2: indptr runs from 0 to"), "{err}");
    // Decreasing in the middle.
    let err = read_edited(|t, _| {
        let d = &mut tensor(t, "fc1.weight.indptr").data;
        d[4..8].copy_from_slice(&1000u32.to_le_bytes());
    });
    assert!(err.contains("layer fc1: not a valid CSR matrix"), "{err}");
}

#[test]
fn wrong_dtypes() {
    let err = read_edited(|t, _| {
        let i = tensor(t, "fc1.weight.indices");
        let wide: Vec<u8> = i.data.chunks(2).flat_map(|c| [c[0], c[1], 0, 0]).collect();
        *i = OwnedTensor::from_le(safetensors::Dtype::U32, i.shape.clone(), wide);
    });
    assert!(err.contains("`fc1.weight.indices` has dtype U32, expected U16"), "{err}");
    let err = read_edited(|_, m| {
        m.insert("value_dtype".into(), "f16".into());
    });
    assert!(err.contains("`fc1.weight.values` has dtype F32, expected F16"), "{err}");
    let err = read_edited(|_, m| {
        m.insert("value_dtype".into(), "int4".into());
    });
    assert!(err.contains("unknown value dtype `int4`"), "{err}");
}

#[test]
fn metadata_that_disagrees() {
    let err = read_edited(|_, m| {
        m.insert("format_version".into(), "3".into());
    });
    assert!(err.contains("format_version `3` is not supported"), "{err}");
    let err = read_edited(|_, m| {
        m.insert("format".into(), "ticket-dense".into());
    });
    assert!(err.contains("expected `ticket-csr`"), "{err}");
    let err = read_edited(|_, m| {
        m.insert("layers".into(), "fc1".into());
    });
    assert!(err.contains("`layers` = `fc1` does not match graph 6-5-4"), "{err}");
    let err = read_edited(|t, _| {
        tensor(t, "fc2.weight.shape").data[..8].copy_from_slice(&7i64.to_le_bytes());
    });
    assert!(err.contains("layer fc2: shape [7, 5] does not match the graph's [4, 5]"), "{err}");
    let err = read_edited(|t, _| t.retain(|(n, _)| n != "fc2.bias"));
    assert!(err.contains("missing tensor `fc2.bias`"), "{err}");
}

#[test]
fn truncated_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    write_csr(&path, &random_net("6-5-4", 0.6, 22), ValueDtype::F16, &Provenance::default())
        .unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 5]).unwrap();
    let err = read_csr(&path).unwrap_err().to_string();
    assert!(err.contains("m.safetensors: not a valid safetensors file"), "{err}");
}
