//! Inverted dropout (Srivastava et al. 2014) on the input of a linear layer: in training each
//! value is zeroed with probability `p` and the survivors are scaled by `1 / (1 - p)`, so that
//! evaluation and inference use the weights as they are. The draws come from the run's seeded
//! `dropout` stream, so a run stays bit-identical for a seed.

use crate::rng::SeededRng;

pub struct Dropout {
    p: f32,
    rng: SeededRng,
    /// Per input value of the last training batch: 0 (dropped) or `1 / (1 - p)`.
    scale: Vec<f32>,
    /// The input after dropout, what the layer multiplied.
    dropped: Vec<f32>,
}

impl Dropout {
    /// Dropout with probability `p` for up to `capacity` values per batch; `stream` keys its
    /// own generator within the run's `dropout` stream.
    pub fn new(p: f32, stream: u64, capacity: usize) -> Self {
        Dropout {
            p,
            rng: SeededRng::new(stream, "dropout"),
            scale: vec![0.0; capacity],
            dropped: vec![0.0; capacity],
        }
    }

    /// Draws a fresh mask for `input` and returns the input after dropout.
    pub fn apply(&mut self, input: &[f32]) -> &[f32] {
        let n = input.len();
        let keep = 1.0 / (1.0 - self.p);
        for (s, (d, &x)) in self.scale[..n].iter_mut().zip(self.dropped[..n].iter_mut().zip(input))
        {
            *s = if (self.rng.uniform() as f32) < self.p { 0.0 } else { keep };
            *d = x * *s;
        }
        &self.dropped[..n]
    }

    /// The input after dropout of the last [`Dropout::apply`] on `n` values.
    pub fn dropped(&self, n: usize) -> &[f32] {
        &self.dropped[..n]
    }

    /// Chains the gradient through the last mask: `grad *= scale`.
    pub fn backward(&self, grad: &mut [f32]) {
        for (g, &s) in grad.iter_mut().zip(&self.scale) {
            *g *= s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_the_given_fraction_and_keeps_the_expectation() {
        let mut d = Dropout::new(0.25, 3, 40_000);
        let x = vec![2.0f32; 40_000];
        let y = d.apply(&x).to_vec();
        let dropped = y.iter().filter(|&&v| v == 0.0).count() as f64 / y.len() as f64;
        // Standard error of the fraction: sqrt(0.25 * 0.75 / 40000) ~ 0.0022.
        assert!((dropped - 0.25).abs() < 0.01, "{dropped}");
        assert!(y.iter().all(|&v| v == 0.0 || (v - 2.0 / 0.75).abs() < 1e-6));
        let mut g = vec![1.0f32; 40_000];
        d.backward(&mut g);
        assert!(g.iter().zip(&y).all(|(g, y)| (*g == 0.0) == (*y == 0.0)));
        let again = Dropout::new(0.25, 3, 40_000).apply(&x).to_vec();
        assert_eq!(y, again, "same stream, same mask");
    }
}
