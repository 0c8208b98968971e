//! What a served model takes and gives, in the protocol's terms: tensor `input` FP32
//! `[batch, *input_shape]` (a conv model also takes its images flattened, `[batch, C*H*W]`),
//! tensor `logits` FP32 `[batch, classes]` and, when asked, `class` INT64 `[batch]`.

use serde_json::{json, Value};
use ticket_infer::SparseModel;

pub const INPUT: &str = "input";
pub const LOGITS: &str = "logits";
pub const CLASS: &str = "class";
/// The platform name in model metadata (Triton's `<backend>_<format>` style).
pub const PLATFORM: &str = "ticket_csr";
/// The one version every model has.
pub const VERSION: &str = "1";

/// The tensor signature of one served model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    /// One example's shape, as the graph declares it: `[features]` or `[C, H, W]`.
    pub input_shape: Vec<usize>,
    /// Values per example (the product of `input_shape`).
    pub features: usize,
    /// Logits per example.
    pub classes: usize,
}

impl Signature {
    pub fn of(model: &SparseModel) -> Self {
        Signature {
            input_shape: model.graph().input_shape().to_vec(),
            features: model.inputs(),
            classes: model.outputs(),
        }
    }

    /// The batch size of an input of `shape`, if the shape fits: `[batch, *input_shape]` or
    /// `[batch, features]`.
    pub fn batch_of(&self, shape: &[usize]) -> Option<usize> {
        let (&batch, example) = shape.split_first()?;
        (example == self.input_shape.as_slice() || example == [self.features]).then_some(batch)
    }

    /// The accepted input shape as the protocol writes it, `-1` for the batch.
    pub fn input_dims(&self) -> Vec<i64> {
        std::iter::once(-1).chain(self.input_shape.iter().map(|&d| d as i64)).collect()
    }

    /// Model metadata (`GET /v2/models/{name}`).
    pub fn metadata(&self, name: &str) -> Value {
        json!({
            "name": name,
            "versions": [VERSION],
            "platform": PLATFORM,
            "inputs": [{"name": INPUT, "datatype": "FP32", "shape": self.input_dims()}],
            "outputs": [
                {"name": LOGITS, "datatype": "FP32", "shape": [-1, self.classes as i64]},
                {"name": CLASS, "datatype": "INT64", "shape": [-1]},
            ],
        })
    }

    /// Model configuration in Triton's terms (`GET /v2/models/{name}/config`), which Triton's
    /// clients ask for.
    pub fn config(&self, name: &str, max_batch: usize, max_queue_delay_us: u64) -> Value {
        json!({
            "name": name,
            "platform": PLATFORM,
            "max_batch_size": max_batch,
            "input": [{"name": INPUT, "data_type": "TYPE_FP32", "dims": self.input_shape}],
            "output": [
                {"name": LOGITS, "data_type": "TYPE_FP32", "dims": [self.classes]},
                {"name": CLASS, "data_type": "TYPE_INT64", "dims": []},
            ],
            "dynamic_batching": {"max_queue_delay_microseconds": max_queue_delay_us},
        })
    }
}
