//! The shape of a multilayer perceptron: its layer sizes, written `784-300-100-10`.
//!
//! ```
//! use ticket_core::Arch;
//! let arch: Arch = "784-300-100-10".parse().unwrap();
//! assert_eq!(arch.layer_names(), ["fc1", "fc2", "fc3"]);
//! assert_eq!(arch.dense_weights(), 266_200);
//! ```

use crate::{Error, Result};
use std::fmt;
use std::str::FromStr;

/// The most parameters (weights and biases) a model may have: 2^32 - 1, the most entries a
/// layer's U32 `indptr` can count in the CSR format, and 16 GiB of f32, beyond any model this
/// toolkit trains. Sizes past it come from a corrupt file or a typo and would otherwise
/// overflow counts or ask for impossible allocations.
pub const MAX_PARAMS: usize = u32::MAX as usize;

/// Layer widths from input to output. Layer `i` (named `fc{i+1}`) maps `sizes[i]` inputs to
/// `sizes[i+1]` outputs and stores its weight PyTorch-style as `[out, in]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arch {
    sizes: Vec<usize>,
}

/// Shape of one linear layer's weight, `[rows = out, cols = in]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerShape {
    pub rows: usize,
    pub cols: usize,
}

impl LayerShape {
    pub fn len(&self) -> usize {
        self.rows * self.cols
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Arch {
    /// At least an input and an output width, none of them zero, at most [`MAX_PARAMS`]
    /// parameters in all.
    pub fn new(sizes: Vec<usize>) -> Result<Self> {
        if sizes.len() < 2 {
            return Err(Error::usage(format!(
                "an architecture needs at least two layer sizes, got {sizes:?}"
            )));
        }
        if sizes.contains(&0) {
            return Err(Error::usage(format!("layer sizes must be positive, got {sizes:?}")));
        }
        let params = sizes.windows(2).try_fold(0usize, |total, w| {
            total.checked_add(w[0].checked_mul(w[1])?)?.checked_add(w[1])
        });
        if params.is_none_or(|p| p > MAX_PARAMS) {
            let shown: Vec<String> = sizes.iter().map(usize::to_string).collect();
            return Err(Error::usage(format!(
                "architecture {} has more than {MAX_PARAMS} parameters",
                shown.join("-")
            )));
        }
        Ok(Arch { sizes })
    }

    pub fn sizes(&self) -> &[usize] {
        &self.sizes
    }

    pub fn inputs(&self) -> usize {
        self.sizes[0]
    }

    pub fn outputs(&self) -> usize {
        self.sizes[self.sizes.len() - 1]
    }

    pub fn num_layers(&self) -> usize {
        self.sizes.len() - 1
    }

    /// `fc1`, `fc2`, ... in order.
    pub fn layer_names(&self) -> Vec<String> {
        (1..=self.num_layers()).map(|i| format!("fc{i}")).collect()
    }

    pub fn layer_shapes(&self) -> Vec<LayerShape> {
        self.sizes.windows(2).map(|w| LayerShape { rows: w[1], cols: w[0] }).collect()
    }

    /// Number of weights (biases excluded), the denominator of "% weights remaining".
    pub fn dense_weights(&self) -> usize {
        self.layer_shapes().iter().map(LayerShape::len).sum()
    }

    /// Weights plus biases.
    pub fn dense_params(&self) -> usize {
        self.dense_weights() + self.sizes[1..].iter().sum::<usize>()
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.sizes.iter().map(usize::to_string).collect();
        f.write_str(&parts.join("-"))
    }
}

impl FromStr for Arch {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let sizes = s
            .split('-')
            .map(|p| p.trim().parse::<usize>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| Error::usage(format!("architecture `{s}` is not like 784-300-100-10")))?;
        Arch::new(sizes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenet_counts_match_the_paper() {
        let arch: Arch = "784-300-100-10".parse().unwrap();
        assert_eq!(arch.dense_weights(), 784 * 300 + 300 * 100 + 100 * 10);
        assert_eq!(arch.dense_params(), 266_200 + 410);
        assert_eq!(arch.to_string(), "784-300-100-10");
        assert_eq!(arch.layer_shapes()[0], LayerShape { rows: 300, cols: 784 });
    }

    #[test]
    fn rejects_nonsense() {
        assert!("784".parse::<Arch>().is_err());
        assert!("784-0-10".parse::<Arch>().is_err());
        assert!("784-x-10".parse::<Arch>().is_err());
    }

    #[test]
    fn parameter_counts_past_the_limit_are_refused() {
        // 65,535 x 65,535 weights + 65,535 biases = 2^32 - 2^16: just fits.
        let fits: Arch = "65535-65535".parse().unwrap();
        assert_eq!(fits.dense_params(), 65_535 * 65_536);
        assert!(fits.dense_params() <= MAX_PARAMS);
        // One more output: 65,536 x 65,536 = 2^32 parameters.
        let err = "65535-65536".parse::<Arch>().unwrap_err().to_string();
        assert_eq!(err, "architecture 65535-65536 has more than 4294967295 parameters");
        // Products and sums that overflow usize are refused, not wrapped.
        for sizes in [vec![1 << 32, 1 << 32, 10], vec![usize::MAX, 2], vec![2, usize::MAX]] {
            assert!(Arch::new(sizes).is_err());
        }
        // Many layers that each fit but together do not.
        assert!(Arch::new(vec![60_000; 3]).is_err());
    }
}
