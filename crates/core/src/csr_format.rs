//! Names, dtypes and metadata keys of the CSR model format (`format = ticket-csr`), shared by
//! the writer (ticket-export) and the reader (ticket-infer) so the two cannot drift apart.
//! The full specification is docs/FORMAT.md.
//!
//! Per weighted layer `<name>` (one CSR row per output unit or channel; a conv row flattens
//! `[in, kh, kw]` in C order): `<name>.weight.indptr` U32 `[rows + 1]`,
//! `<name>.weight.indices` U16 (cols <= 65,536) or U32 `[nnz]` sorted within each row,
//! `<name>.weight.values` F32 / F16 / BF16 `[nnz]`, `<name>.weight.shape` I64 = the full weight
//! shape (`[out, in]` or `[out, in, kh, kw]`), `<name>.bias` F32 `[rows]`. Version 2 carries
//! the model graph in `graph`; version 1 (MLPs) had `arch` and `activation` instead.

use safetensors::Dtype;
use std::fmt;
use std::str::FromStr;

pub const FORMAT: &str = "ticket-csr";
/// Major version written.
pub const FORMAT_VERSION: u32 = 2;
/// Major versions read: 1 (MLPs, `arch`) and 2 (graphs).
pub const READ_VERSIONS: [u32; 2] = [1, 2];
/// Layers with at most this many columns store their column indices as U16.
pub const MAX_U16_COLS: usize = 1 << 16;

/// `__metadata__` keys.
pub mod meta {
    pub const FORMAT: &str = "format";
    pub const FORMAT_VERSION: &str = "format_version";
    /// The model graph as JSON (version 2).
    pub const GRAPH: &str = "graph";
    /// Names of the weighted layers in order, comma-separated: `fc1,fc2,fc3`.
    pub const LAYERS: &str = "layers";
    /// `f32`, `f16` or `bf16`.
    pub const VALUE_DTYPE: &str = "value_dtype";
    /// Kept weights / dense weights, as a decimal fraction.
    pub const DENSITY: &str = "density";
    /// Dense weight + bias count.
    pub const DENSE_PARAMS: &str = "dense_params";
    /// Kept weights + biases.
    pub const KEPT_PARAMS: &str = "kept_params";
    /// Test accuracy of the source checkpoint (fraction), when known.
    pub const SOURCE_ACCURACY: &str = "source_accuracy";
    /// Data set the source was trained on.
    pub const DATASET: &str = "dataset";
}

pub fn indptr_name(layer: &str) -> String {
    format!("{layer}.weight.indptr")
}

pub fn indices_name(layer: &str) -> String {
    format!("{layer}.weight.indices")
}

pub fn values_name(layer: &str) -> String {
    format!("{layer}.weight.values")
}

pub fn shape_name(layer: &str) -> String {
    format!("{layer}.weight.shape")
}

pub fn bias_name(layer: &str) -> String {
    format!("{layer}.bias")
}

/// The index dtype the format prescribes for a layer with `cols` columns.
pub fn index_dtype(cols: usize) -> Dtype {
    if cols <= MAX_U16_COLS {
        Dtype::U16
    } else {
        Dtype::U32
    }
}

/// Storage type of the nonzero values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ValueDtype {
    #[default]
    F32,
    F16,
    Bf16,
}

impl ValueDtype {
    pub fn dtype(self) -> Dtype {
        match self {
            ValueDtype::F32 => Dtype::F32,
            ValueDtype::F16 => Dtype::F16,
            ValueDtype::Bf16 => Dtype::BF16,
        }
    }

    pub fn bytes(self) -> usize {
        match self {
            ValueDtype::F32 => 4,
            ValueDtype::F16 | ValueDtype::Bf16 => 2,
        }
    }
}

impl fmt::Display for ValueDtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ValueDtype::F32 => "f32",
            ValueDtype::F16 => "f16",
            ValueDtype::Bf16 => "bf16",
        })
    }
}

impl FromStr for ValueDtype {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" => Ok(ValueDtype::F32),
            "f16" => Ok(ValueDtype::F16),
            "bf16" => Ok(ValueDtype::Bf16),
            other => Err(format!("unknown value dtype `{other}` (expected f32, f16 or bf16)")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_dtype_switches_past_u16_range() {
        assert_eq!(index_dtype(784), Dtype::U16);
        assert_eq!(index_dtype(65_536), Dtype::U16);
        assert_eq!(index_dtype(65_537), Dtype::U32);
    }

    #[test]
    fn value_dtype_round_trips_through_text() {
        for d in [ValueDtype::F32, ValueDtype::F16, ValueDtype::Bf16] {
            assert_eq!(d.to_string().parse::<ValueDtype>().unwrap(), d);
        }
        assert!("f64".parse::<ValueDtype>().is_err());
    }
}
