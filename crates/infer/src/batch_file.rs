//! A batch of inputs in a safetensors file and the logits written back: tensor `input` F32
//! `[batch, features]` in, tensor `logits` F32 `[batch, classes]` out (written atomically).

use crate::{Error, Result};
use safetensors::Dtype;
use std::collections::BTreeMap;
use std::path::Path;
use ticket_core::tensor_file::{write_tensors, OwnedTensor, TensorFile};

/// Name of the input tensor.
pub const INPUT: &str = "input";
/// Name of the output tensor.
pub const LOGITS: &str = "logits";

/// Inputs `[batch][features]` row-major and the batch size, after checking the tensor's dtype,
/// shape and that every value is finite.
pub fn read_inputs(path: &Path, features: usize) -> Result<(Vec<f32>, usize)> {
    let bytes = std::fs::read(path).map_err(|e| ticket_core::Error::io(path, e))?;
    let file = TensorFile::parse(&bytes, path)?;
    let view = file.view(INPUT)?;
    if view.dtype() != Dtype::F32 {
        return Err(Error::invalid(
            path,
            format!("tensor `{INPUT}` has dtype {:?}, expected F32", view.dtype()),
        ));
    }
    let batch = match view.shape() {
        [batch, f] if *f == features => *batch,
        [_, f] => {
            return Err(Error::invalid(
                path,
                format!(
                    "tensor `{INPUT}` has {f} features per example, the model takes {features}"
                ),
            ))
        }
        other => {
            return Err(Error::invalid(
                path,
                format!("tensor `{INPUT}` has shape {other:?}, expected [batch, {features}]"),
            ))
        }
    };
    let inputs = file.f32(INPUT, &[batch, features])?;
    if let Some(i) = inputs.iter().position(|v| !v.is_finite()) {
        return Err(Error::invalid(
            path,
            format!(
                "tensor `{INPUT}`: feature {} of example {} is {}",
                i % features,
                i / features,
                inputs[i]
            ),
        ));
    }
    Ok((inputs, batch))
}

/// Writes `logits` (`[batch][classes]` row-major) as tensor `logits`, atomically.
pub fn write_logits(path: &Path, logits: &[f32], batch: usize, classes: usize) -> Result<()> {
    assert_eq!(logits.len(), batch * classes, "write_logits: length");
    let tensors = vec![(LOGITS.to_string(), OwnedTensor::f32(vec![batch, classes], logits))];
    write_tensors(path, tensors, &BTreeMap::new())?;
    Ok(())
}
