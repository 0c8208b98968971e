//! A batch of inputs in a safetensors file and the logits written back: tensor `input` F32
//! `[batch, features]` (or `[batch, C, H, W]` for image models) in, tensor `logits` F32 `[batch, classes]` out (written atomically).

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
/// shape and that every value is finite. `example` is the shape of one example the model
/// takes (`[features]` or `[C, H, W]`); the tensor is `[batch, *example]` or, for images,
/// also `[batch, C*H*W]` (the same values in C order).
pub fn read_inputs(path: &Path, example: &[usize]) -> Result<(Vec<f32>, usize)> {
    let features: usize = example.iter().product();
    let bytes = std::fs::read(path).map_err(|e| ticket_core::Error::io(path, e))?;
    let file = TensorFile::parse(&bytes, path)?;
    let view = file.view(INPUT)?;
    if view.dtype() != Dtype::F32 {
        return Err(Error::invalid(
            path,
            format!("tensor `{INPUT}` has dtype {:?}, expected F32", view.dtype()),
        ));
    }
    let dims = |d: &[usize]| d.iter().map(usize::to_string).collect::<Vec<_>>().join(", ");
    let expected = if example.len() == 1 {
        format!("[batch, {features}]")
    } else {
        format!("[batch, {}] or [batch, {features}]", dims(example))
    };
    let batch = match view.shape() {
        [batch, rest @ ..] if rest == example || rest == [features] => *batch,
        [_, f] => {
            return Err(Error::invalid(
                path,
                format!(
                    "tensor `{INPUT}` has {f} features per example, the model takes {features} \
                     (expected {expected})"
                ),
            ))
        }
        other => {
            return Err(Error::invalid(
                path,
                format!("tensor `{INPUT}` has shape {other:?}, expected {expected}"),
            ))
        }
    };
    let inputs = file.f32(INPUT, view.shape())?;
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
