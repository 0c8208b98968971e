//! External data: PyTorch's dynamo exporter writes weights to `<model>.onnx.data` beside the
//! model by default, and each initializer names its `location`, `offset` and `length`. The
//! file is mapped and each tensor's `raw_data` becomes a slice of it (read into memory
//! instead when the model itself was given as bytes), so the rest of the import sees one
//! file. A
//! location must be a file name in the model's directory (no path, no `..`); ranges must lie
//! inside the file.

use super::proto::{GraphProto, TensorProto};
use prost::bytes::Bytes;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use ticket_core::{Error, Result};

/// Replaces every initializer's external data by its bytes; `model` is the ONNX file's path.
/// With `map` the data files are mapped (see [`super::mapped`]), else read.
pub fn load_external(graph: &mut GraphProto, model: &Path, map: bool) -> Result<()> {
    let dir = model.parent().unwrap_or(Path::new("."));
    let mut files: HashMap<String, Bytes> = HashMap::new();
    for t in &mut graph.initializer {
        if t.data_location != 1 && t.external_data.is_empty() {
            continue;
        }
        let entry =
            |key: &str| t.external_data.iter().find(|e| e.key == key).map(|e| e.value.clone());
        let location = entry("location").ok_or_else(|| {
            Error::invalid(model, format!("tensor `{}` is external but names no location", t.name))
        })?;
        let number = |key: &str| -> Result<Option<usize>> {
            entry(key)
                .map(|v| {
                    v.parse().map_err(|_| {
                        Error::invalid(
                            model,
                            format!("tensor `{}` has external {key} `{v}`", t.name),
                        )
                    })
                })
                .transpose()
        };
        let (offset, length) = (number("offset")?.unwrap_or(0), number("length")?);
        let path = sidecar(dir, &location).ok_or_else(|| {
            Error::invalid(
                model,
                format!("tensor `{}` names external data `{location}`, which is not a file name beside the model", t.name),
            )
        })?;
        if !files.contains_key(&location) {
            let read =
                if map { super::mapped::map(&path) } else { std::fs::read(&path).map(Bytes::from) };
            let bytes = read.map_err(|e| {
                Error::invalid(
                    model,
                    format!(
                        "tensor `{}` is stored in {}, which cannot be read: {e}",
                        t.name,
                        path.display()
                    ),
                )
            })?;
            files.insert(location.clone(), bytes);
        }
        let bytes = &files[&location];
        let end = match length {
            Some(n) => offset.checked_add(n),
            None => Some(bytes.len()),
        };
        let range = end
            .filter(|&e| e <= bytes.len() && offset <= e)
            .map(|e| offset..e)
            .ok_or_else(|| {
                Error::invalid(
                    &path,
                    format!(
                        "tensor `{}` lies at bytes {offset}..{} but the file has {}",
                        t.name,
                        offset.saturating_add(length.unwrap_or(0)),
                        bytes.len()
                    ),
                )
            })?;
        *t = TensorProto {
            raw_data: bytes.slice(range),
            external_data: vec![],
            data_location: 0,
            ..std::mem::take(t)
        };
    }
    Ok(())
}

/// `dir/location` when `location` is a plain file name.
fn sidecar(dir: &Path, location: &str) -> Option<PathBuf> {
    let name = Path::new(location);
    let plain = name.components().count() == 1
        && matches!(name.components().next(), Some(std::path::Component::Normal(_)));
    plain.then(|| dir.join(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::proto::StringStringEntryProto;

    fn external(location: &str, offset: &str, length: &str) -> GraphProto {
        let entry = |k: &str, v: &str| StringStringEntryProto { key: k.into(), value: v.into() };
        let t = TensorProto {
            name: "w".into(),
            dims: vec![2],
            data_type: 1,
            data_location: 1,
            external_data: vec![
                entry("location", location),
                entry("offset", offset),
                entry("length", length),
            ],
            ..Default::default()
        };
        GraphProto { initializer: vec![t], ..Default::default() }
    }

    #[test]
    fn reads_the_range_beside_the_model_and_refuses_escapes_and_lies() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("m.onnx");
        std::fs::write(dir.path().join("m.onnx.data"), [9u8, 1, 2, 3, 4, 5, 6, 7, 8, 9]).unwrap();
        let mut g = external("m.onnx.data", "1", "8");
        load_external(&mut g, &model, true).unwrap();
        assert_eq!(g.initializer[0].raw_data[..], [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(g.initializer[0].data_location, 0);
        let err = load_external(&mut external("m.onnx.data", "4", "8"), &model, false).unwrap_err();
        assert!(err.to_string().contains("lies at bytes 4..12 but the file has 10"), "{err}");
        let err =
            load_external(&mut external("../m.onnx.data", "0", "8"), &model, false).unwrap_err();
        assert!(err.to_string().contains("not a file name beside the model"), "{err}");
        let err =
            load_external(&mut external("missing.data", "0", "8"), &model, false).unwrap_err();
        assert!(err.to_string().contains("cannot be read"), "{err}");
    }
}
