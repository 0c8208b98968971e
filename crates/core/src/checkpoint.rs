//! Dense checkpoints: an [`Network`] in safetensors with PyTorch names and layout, so PyTorch,
//! candle or the Python `safetensors` package read them as they are.
//!
//! Tensors per weighted layer `<name>`: `<name>.weight` F32 of the full weight shape (`[out, in]`
//! or `[out, in, kh, kw]`), `<name>.bias` F32 `[out]`, `<name>.weight_mask` U8 of the weight's
//! shape (1 = kept). `__metadata__`: `format = ticket-dense`, `format_version`, `graph`,
//! `iteration`, `dataset`, `seed` (version 1: `arch` and `activation` instead of `graph`).
//! The full specification is docs/FORMAT.md.

use crate::tensor_file::{write_tensors, OwnedTensor, TensorFile};
use crate::{Error, Graph, LayerParams, Network, Result};
use std::collections::BTreeMap;
use std::path::Path;

pub const FORMAT: &str = "ticket-dense";
/// Major version written.
pub const FORMAT_VERSION: u32 = 2;
/// Major versions read: 1 (MLPs, `arch`) and 2 (graphs).
pub const READ_VERSIONS: [u32; 2] = [1, 2];

/// What a checkpoint records besides the parameters.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct CheckpointMeta {
    /// Optimizer steps taken when the weights were saved.
    pub iteration: usize,
    pub dataset: String,
    pub seed: u64,
}

/// A checkpoint as read from disk.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    pub net: Network,
    pub meta: CheckpointMeta,
    /// False when the file had no `*.weight_mask` tensors (every weight is then kept).
    pub has_masks: bool,
}

/// Writes `net` (weights, biases, masks) atomically.
pub fn save(path: &Path, net: &Network, meta: &CheckpointMeta) -> Result<()> {
    let mut tensors = Vec::with_capacity(3 * net.layers.len());
    for (w, layer) in net.graph.weighted().iter().zip(&net.layers) {
        let (name, shape) = (&w.name, w.dims.clone());
        tensors.push((format!("{name}.weight"), OwnedTensor::f32(shape.clone(), &layer.weight)));
        tensors
            .push((format!("{name}.bias"), OwnedTensor::f32(vec![layer.shape.rows], &layer.bias)));
        tensors.push((format!("{name}.weight_mask"), OwnedTensor::u8(shape, &layer.mask)));
    }
    let metadata = BTreeMap::from([
        ("format".to_string(), FORMAT.to_string()),
        ("format_version".to_string(), FORMAT_VERSION.to_string()),
        ("graph".to_string(), net.graph.to_json()),
        ("iteration".to_string(), meta.iteration.to_string()),
        ("dataset".to_string(), meta.dataset.clone()),
        ("seed".to_string(), meta.seed.to_string()),
    ]);
    write_tensors(path, tensors, &metadata)
}

/// Reads and validates a dense checkpoint: format, version, architecture, every tensor's
/// dtype and shape, and mask values.
pub fn load(path: &Path) -> Result<Checkpoint> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    load_bytes(&bytes, path)
}

/// [`load`] on the bytes of a checkpoint file already in memory; `path` only names the file
/// in errors.
pub fn load_bytes(bytes: &[u8], path: &Path) -> Result<Checkpoint> {
    let file = TensorFile::parse(bytes, path)?;
    let version = check_format(&file, FORMAT, &READ_VERSIONS)?;
    let graph = read_graph(&file, version)?;
    let meta = CheckpointMeta {
        iteration: file.meta_parsed("iteration")?,
        dataset: file.meta("dataset")?.to_string(),
        seed: file.meta_parsed("seed")?,
    };
    let weighted = graph.weighted();
    let names = graph.layer_names();
    let mask_count = names.iter().filter(|n| file.contains(&format!("{n}.weight_mask"))).count();
    if mask_count != 0 && mask_count != names.len() {
        return Err(file.error(format!(
            "masks for {mask_count} of {} layers: either every layer has a `weight_mask` or none",
            names.len()
        )));
    }
    let has_masks = mask_count == names.len();
    let mut layers = Vec::with_capacity(names.len());
    for w in weighted {
        let (name, shape, dims) = (&w.name, w.shape, &w.dims);
        // The weight first: its bytes in the file bound the layer's size before anything of
        // that size is allocated (a file without masks gets a mask of ones).
        let weight = file.f32(&format!("{name}.weight"), dims)?;
        let mask = if has_masks {
            let mask = file.u8(&format!("{name}.weight_mask"), dims)?;
            if let Some(bad) = mask.iter().find(|&&m| m > 1) {
                return Err(file.error(format!(
                    "tensor `{name}.weight_mask` holds {bad}; masks hold only 0 and 1"
                )));
            }
            mask
        } else {
            vec![1; weight.len()]
        };
        let bias = file.f32(&format!("{name}.bias"), &[shape.rows])?;
        layers.push(LayerParams { shape, weight, bias, mask });
    }
    Ok(Checkpoint { net: Network { graph, layers }, meta, has_masks })
}

/// The model graph of a file of major version `version`: `graph` (JSON) from version 2 on,
/// the MLP shorthand `arch` with `activation = relu` in version 1.
pub fn read_graph(file: &TensorFile, version: u32) -> Result<Graph> {
    if version >= 2 {
        return Graph::from_json(file.meta("graph")?)
            .map_err(|e| file.error(format!("metadata `graph`: {e}")));
    }
    let activation = file.meta("activation")?;
    if activation != "relu" {
        return Err(file.error(format!(
            "activation `{activation}` is not supported (ticket runs relu networks)"
        )));
    }
    file.meta("arch")?.parse().map_err(|e: Error| file.error(format!("metadata `arch`: {e}")))
}

/// Checks `format` and that the major part of `format_version` is one of `majors`; returns
/// that major version.
pub fn check_format(file: &TensorFile, format: &str, majors: &[u32]) -> Result<u32> {
    let found = file.meta("format").map_err(|_| {
        file.error(format!("no `format` in the metadata: not a {format} file written by ticket"))
    })?;
    if found != format {
        return Err(file.error(format!("format is `{found}`, expected `{format}`")));
    }
    let version = file.meta("format_version")?;
    let found_major = version.split('.').next().and_then(|m| m.parse::<u32>().ok());
    match found_major {
        Some(major) if majors.contains(&major) => Ok(major),
        _ => {
            let known: Vec<String> = majors.iter().map(u32::to_string).collect();
            Err(file.error(format!(
                "format_version `{version}` is not supported (this ticket reads versions {})",
                known.join(" and ")
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor_file::edit_file;

    fn sample() -> Network {
        let graph: Graph = "5-4-3".parse().unwrap();
        let mut net = Network::zeros(&graph);
        for (l, layer) in net.layers.iter_mut().enumerate() {
            for (i, w) in layer.weight.iter_mut().enumerate() {
                *w = (i as f32 - 7.5) * 0.1 + l as f32;
            }
            for (i, b) in layer.bias.iter_mut().enumerate() {
                *b = i as f32 * -0.5;
            }
            for (i, m) in layer.mask.iter_mut().enumerate() {
                *m = (i % 3 != 0) as u8;
            }
            layer.apply_mask();
        }
        net
    }

    fn meta() -> CheckpointMeta {
        CheckpointMeta { iteration: 7, dataset: "digits".into(), seed: 42 }
    }

    #[test]
    fn round_trip_is_exact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.safetensors");
        save(&path, &sample(), &meta()).unwrap();
        let back = load(&path).unwrap();
        assert_eq!(back.net, sample());
        assert_eq!(back.meta, meta());
        assert!(back.has_masks);
    }

    /// Writes the sample with `edit` applied to its tensors and metadata, then loads it.
    fn load_edited(
        edit: impl FnOnce(&mut Vec<(String, OwnedTensor)>, &mut BTreeMap<String, String>),
    ) -> String {
        load_edited_from(sample(), edit)
    }

    /// [`load_edited`] for any network.
    fn load_edited_from(
        net: Network,
        edit: impl FnOnce(&mut Vec<(String, OwnedTensor)>, &mut BTreeMap<String, String>),
    ) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.safetensors");
        save(&path, &net, &meta()).unwrap();
        edit_file(&path, edit).unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(err.contains("c.safetensors"), "{err}");
        err
    }

    #[test]
    fn missing_tensor() {
        let err = load_edited(|t, _| t.retain(|(n, _)| n != "fc2.bias"));
        assert!(err.contains("missing tensor `fc2.bias`"), "{err}");
    }

    #[test]
    fn wrong_shape() {
        let err = load_edited(|t, _| {
            let w = t.iter_mut().find(|(n, _)| n == "fc1.weight").unwrap();
            w.1.shape = vec![5, 4];
        });
        assert!(err.contains("shape [5, 4], expected [4, 5]"), "{err}");
    }

    #[test]
    fn wrong_dtype() {
        let err = load_edited(|t, _| {
            let w = t.iter_mut().find(|(n, _)| n == "fc1.bias").unwrap();
            w.1.dtype = safetensors::Dtype::I32;
        });
        assert!(err.contains("dtype I32, expected F32"), "{err}");
    }

    #[test]
    fn unknown_version_and_format() {
        let err = load_edited(|_, m| {
            m.insert("format_version".into(), "3".into());
        });
        assert!(err.contains("format_version `3` is not supported"), "{err}");
        let err = load_edited(|_, m| {
            m.insert("format".into(), "ticket-csr".into());
        });
        assert!(err.contains("expected `ticket-dense`"), "{err}");
    }

    #[test]
    fn bad_mask_values_and_partial_masks() {
        let err = load_edited(|t, _| {
            let m = t.iter_mut().find(|(n, _)| n == "fc1.weight_mask").unwrap();
            m.1.data[0] = 7;
        });
        assert!(err.contains("holds 7"), "{err}");
        let err = load_edited(|t, _| t.retain(|(n, _)| n != "fc1.weight_mask"));
        assert!(err.contains("masks for 1 of 2 layers"), "{err}");
    }

    #[test]
    fn no_masks_means_all_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.safetensors");
        save(&path, &sample(), &meta()).unwrap();
        edit_file(&path, |t, _| t.retain(|(n, _)| !n.ends_with("_mask"))).unwrap();
        let back = load(&path).unwrap();
        assert!(!back.has_masks);
        assert_eq!(back.net.kept_weights(), back.net.graph.dense_weights());
    }

    /// A conv graph: 4-D weights and masks, stored in their PyTorch shape.
    fn conv_sample() -> Network {
        let graph = Graph::from_json(
            r#"{"input":[2,5,5],"layers":[
              {"op":"conv2d","name":"conv1","in":2,"out":3,"kernel":[3,2],"stride":[2,1],"padding":[1,0]},
              {"op":"relu"},{"op":"avgpool2d","kernel":[3,4]},{"op":"flatten"},
              {"op":"linear","name":"fc","in":3,"out":2}]}"#,
        )
        .unwrap();
        let mut net = Network::zeros(&graph);
        for (l, layer) in net.layers.iter_mut().enumerate() {
            for (i, (w, m)) in layer.weight.iter_mut().zip(&mut layer.mask).enumerate() {
                *w = (i as f32 + 1.0) * if l == 0 { 0.25 } else { -1.5 };
                *m = (i % 4 != 1) as u8;
            }
            layer.apply_mask();
        }
        net
    }

    #[test]
    fn conv_round_trip_keeps_full_weight_shapes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.safetensors");
        save(&path, &conv_sample(), &meta()).unwrap();
        assert_eq!(load(&path).unwrap().net, conv_sample());
        let bytes = std::fs::read(&path).unwrap();
        let file = TensorFile::parse(&bytes, &path).unwrap();
        assert_eq!(file.meta("format_version").unwrap(), "2");
        assert_eq!(Graph::from_json(file.meta("graph").unwrap()).unwrap(), conv_sample().graph);
        assert!(
            file.metadata().get("arch").is_none() && file.metadata().get("activation").is_none()
        );
        // Element [o, c, i, j] of the 3x2x3x2 weight is at (o*2 + c)*6 + i*2 + j, C order.
        let weight = file.f32("conv1.weight", &[3, 2, 3, 2]).unwrap();
        assert_eq!(weight[(2 * 2 + 1) * 6 + 2 * 2 + 1], 36.0 * 0.25);
        assert_eq!(file.u8("conv1.weight_mask", &[3, 2, 3, 2]).unwrap()[1], 0);
        let err = load_edited_from(conv_sample(), |t, _| {
            let w = t.iter_mut().find(|(n, _)| n == "conv1.weight").unwrap();
            w.1.shape = vec![3, 12];
        });
        assert!(err.contains("`conv1.weight` has shape [3, 12], expected [3, 2, 3, 2]"), "{err}");
    }

    #[test]
    fn version_1_reads_arch_and_refuses_other_activations() {
        let v1 = |m: &mut BTreeMap<String, String>| {
            m.remove("graph");
            m.insert("format_version".into(), "1".into());
            m.insert("arch".into(), "5-4-3".into());
            m.insert("activation".into(), "relu".into());
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.safetensors");
        save(&path, &sample(), &meta()).unwrap();
        edit_file(&path, |_, m| v1(m)).unwrap();
        assert_eq!(load(&path).unwrap().net, sample());
        let err = load_edited(|_, m| {
            v1(m);
            m.insert("activation".into(), "tanh".into());
        });
        assert!(err.contains("activation `tanh` is not supported"), "{err}");
        let err = load_edited(|_, m| {
            v1(m);
            m.remove("arch");
        });
        assert!(err.contains("no `arch` entry"), "{err}");
    }

    #[test]
    fn a_bad_graph_is_refused_naming_the_file_and_the_layer() {
        let err = load_edited(|_, m| {
            m.insert(
                "graph".into(),
                r#"{"input":[5],"layers":[{"op":"linear","name":"fc1","in":6,"out":4}]}"#.into(),
            );
        });
        assert!(
            err.contains("metadata `graph`") && err.contains("layer 0 (linear `fc1`)"),
            "{err}"
        );
        let err = load_edited(|_, m| {
            m.insert("graph".into(), "{\"input\":[5],\"layers\":[{\"op\":\"gelu\n\"}]}".into());
        });
        assert!(err.contains("metadata `graph`") && !err.contains('\n'), "{err}");
        let err = load_edited(|_, m| {
            m.remove("graph");
        });
        assert!(err.contains("no `graph` entry"), "{err}");
    }

    #[test]
    fn header_that_lies_about_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.safetensors");
        save(&path, &sample(), &meta()).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header = String::from_utf8(bytes[8..8 + n].to_vec()).unwrap();
        // Point the first data range one element further than the data goes.
        let lied = header.replacen("\"data_offsets\":[0,", "\"data_offsets\":[4,", 1);
        assert_ne!(lied, header);
        bytes.splice(8..8 + n, lied.into_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(err.contains("c.safetensors") && err.contains("not a valid safetensors"), "{err}");
        // And a truncated file.
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        assert!(load(&path).is_err());
    }
}
