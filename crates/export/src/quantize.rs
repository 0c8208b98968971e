//! Lossy value codecs of the compressed export: symmetric int8 with one scale per row, and a
//! per-layer k-means codebook (Deep Compression's weight sharing, Han et al. 2016) with linear
//! initialisation between the smallest and largest kept weight, which the paper found best
//! because it keeps centroids on the rare large weights that matter most.
//!
//! The k-means is 1-D, so Lloyd's algorithm runs over the sorted weights: with centroids in
//! order, a cluster is a contiguous run of the sorted values cut at the midpoints between
//! neighbouring centroids, and its mean comes from prefix sums. An iteration costs
//! `O(K log n)` after one sort.

/// A layer's values as indices into a codebook.
#[derive(Clone, Debug, PartialEq)]
pub struct Codebook {
    /// Ascending, distinct, at most `2^bits` (clusters that ended empty are dropped).
    pub centroids: Vec<f32>,
    /// One index into `centroids` per value, in the order the values were given.
    pub codes: Vec<u32>,
}

/// Iterations after which k-means stops even if centroids still move (it stops earlier at a
/// fixed point; layers of LeNet reach one in a few dozen).
const MAX_ITERATIONS: usize = 500;

/// The k-means codebook of `values` with at most `2^bits` centroids. Values that take at most
/// `2^bits` distinct values are their own codebook (zero error, which Lloyd from a linear
/// initialisation may miss): a layer whose weights were already shared, as fine-tuning leaves
/// them, is stored exactly.
pub fn kmeans(values: &[f32], bits: u32) -> Codebook {
    let mut sorted: Vec<f32> = values.to_vec();
    sorted.sort_unstable_by(f32::total_cmp);
    // Counted before any copy is made: AlexNet's fc6 has 3.4M kept weights.
    let distinct = 1 + sorted.windows(2).filter(|w| w[0] != w[1]).count();
    if !sorted.is_empty() && distinct <= 1 << bits {
        let mut centroids = sorted;
        centroids.dedup_by(|a, b| a == b);
        let codes = values.iter().map(|&v| nearest(&centroids, v)).collect();
        return Codebook { centroids, codes };
    }
    let clusters = Clusters::new(&sorted);
    let (centroids, _) = lloyd(&clusters, linear_init(&sorted, 1 << bits), MAX_ITERATIONS);
    let bounds = clusters.bounds(&centroids);
    // Keep the centroids whose cluster is not empty (an empty layer keeps one, 0.0).
    let kept: Vec<f32> = centroids
        .iter()
        .enumerate()
        .filter(|&(j, _)| bounds[j] < bounds[j + 1])
        .map(|(_, &c)| c)
        .collect();
    let centroids = if kept.is_empty() { vec![0.0] } else { kept };
    let codes = values.iter().map(|&v| nearest(&centroids, v)).collect();
    Codebook { centroids, codes }
}

/// `k` centroids evenly spaced from the smallest to the largest of `sorted`.
fn linear_init(sorted: &[f32], k: usize) -> Vec<f32> {
    let (Some(&lo), Some(&hi)) = (sorted.first(), sorted.last()) else { return vec![0.0; k] };
    let (lo, hi) = (lo as f64, hi as f64);
    (0..k).map(|j| (lo + (hi - lo) * j as f64 / (k - 1) as f64) as f32).collect()
}

/// The index of the centroid nearest `v` among ascending `centroids` (ties to the lower one):
/// how many midpoints lie strictly below `v`.
fn nearest(centroids: &[f32], v: f32) -> u32 {
    let below = centroids.windows(2).filter(|w| midpoint(w[0], w[1]) < v as f64).count();
    below as u32
}

fn midpoint(a: f32, b: f32) -> f64 {
    (a as f64 + b as f64) / 2.0
}

/// Prefix sums of sorted values, to get each cluster's mean and squared error in O(1).
struct Clusters<'a> {
    sorted: &'a [f32],
    sum: Vec<f64>,
    squares: Vec<f64>,
}

impl<'a> Clusters<'a> {
    fn new(sorted: &'a [f32]) -> Self {
        let mut sum = vec![0.0; sorted.len() + 1];
        let mut squares = vec![0.0; sorted.len() + 1];
        for (i, &v) in sorted.iter().enumerate() {
            sum[i + 1] = sum[i] + v as f64;
            squares[i + 1] = squares[i] + v as f64 * v as f64;
        }
        Clusters { sorted, sum, squares }
    }

    /// `k + 1` cut points: cluster `j` of ascending `centroids` is `sorted[b[j]..b[j + 1]]`,
    /// the values nearest centroid `j` (ties to the lower one).
    fn bounds(&self, centroids: &[f32]) -> Vec<usize> {
        let mut b = Vec::with_capacity(centroids.len() + 1);
        b.push(0);
        for w in centroids.windows(2) {
            let mid = midpoint(w[0], w[1]);
            b.push(self.sorted.partition_point(|&v| v as f64 <= mid));
        }
        b.push(self.sorted.len());
        b
    }

    /// Squared error of values `lo..hi` around `c`.
    fn error(&self, lo: usize, hi: usize, c: f32) -> f64 {
        let (n, s, q) =
            ((hi - lo) as f64, self.sum[hi] - self.sum[lo], self.squares[hi] - self.squares[lo]);
        let c = c as f64;
        (q - 2.0 * c * s + n * c * c).max(0.0)
    }
}

/// Lloyd iterations from `centroids` over `sorted` until no centroid moves (a fixed point) or
/// `max_iterations`: the final centroids (ascending) and the squared error after each
/// iteration. A centroid only moves to its cluster's mean (rounded to f32) when that lowers
/// the cluster's error, so the error never increases and f32 rounding cannot make the
/// iteration cycle.
fn lloyd(
    clusters: &Clusters,
    mut centroids: Vec<f32>,
    max_iterations: usize,
) -> (Vec<f32>, Vec<f64>) {
    let mut errors = Vec::new();
    for _ in 0..max_iterations {
        let bounds = clusters.bounds(&centroids);
        let mut moved = false;
        let mut next = centroids.clone();
        for (j, c) in next.iter_mut().enumerate() {
            let (lo, hi) = (bounds[j], bounds[j + 1]);
            if lo == hi {
                continue;
            }
            let mean = ((clusters.sum[hi] - clusters.sum[lo]) / (hi - lo) as f64) as f32;
            if mean != *c && clusters.error(lo, hi, mean) < clusters.error(lo, hi, *c) {
                *c = mean;
                moved = true;
            }
        }
        next.sort_unstable_by(f32::total_cmp);
        let bounds = clusters.bounds(&next);
        errors
            .push((0..next.len()).map(|j| clusters.error(bounds[j], bounds[j + 1], next[j])).sum());
        centroids = next;
        if !moved {
            break;
        }
    }
    (centroids, errors)
}

/// Symmetric int8 of one row: `scale = max |v| / 127` and `q = round(v / scale)` (ties to
/// even), so that `scale * q` is the decoded value; a row of zeros (or no values) has scale 0.
pub fn int8_row(values: &[f32]) -> (f32, Vec<i8>) {
    let max = values.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    if max == 0.0 {
        return (0.0, vec![0; values.len()]);
    }
    let scale = max / 127.0;
    let q =
        values.iter().map(|&v| (v / scale).round_ties_even().clamp(-127.0, 127.0) as i8).collect();
    (scale, q)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Lloyd's algorithm the plain way: every value against every centroid.
    fn naive_lloyd(values: &[f32], mut centroids: Vec<f64>, iterations: usize) -> Vec<f64> {
        for _ in 0..iterations {
            let mut sum = vec![0.0; centroids.len()];
            let mut count = vec![0usize; centroids.len()];
            for &v in values {
                let j = naive_nearest(&centroids, v as f64);
                sum[j] += v as f64;
                count[j] += 1;
            }
            for j in 0..centroids.len() {
                if count[j] > 0 {
                    centroids[j] = sum[j] / count[j] as f64;
                }
            }
        }
        centroids
    }

    fn naive_nearest(centroids: &[f64], v: f64) -> usize {
        let mut best = 0;
        for (j, &c) in centroids.iter().enumerate() {
            if (v - c).abs() < (v - centroids[best]).abs() {
                best = j;
            }
        }
        best
    }

    fn squared_error(values: &[f32], book: &Codebook) -> f64 {
        values
            .iter()
            .zip(&book.codes)
            .map(|(&v, &c)| (v as f64 - book.centroids[c as usize] as f64).powi(2))
            .sum()
    }

    /// Deterministic weights shaped like a trained layer's: many small, a few large.
    fn weights(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                let u = (s >> 11) as f64 / (1u64 << 53) as f64;
                let sign = if s & 1 == 0 { 1.0 } else { -1.0 };
                (sign * (0.02 + 0.3 * u * u * u)) as f32
            })
            .collect()
    }

    #[test]
    fn kmeans_matches_naive_lloyd_and_stops_at_a_fixed_point() {
        let values = weights(3000, 7);
        for bits in [2, 4, 6] {
            let book = kmeans(&values, bits);
            let mut sorted = values.clone();
            sorted.sort_unstable_by(f32::total_cmp);
            let init: Vec<f64> =
                linear_init(&sorted, 1 << bits).iter().map(|&c| c as f64).collect();
            let naive = naive_lloyd(&values, init, MAX_ITERATIONS);
            // The naive run's nonempty clusters are ours, up to f32 rounding of the means.
            let used: Vec<usize> =
                values.iter().map(|&v| naive_nearest(&naive, v as f64)).collect();
            let mut naive_kept: Vec<f64> =
                (0..naive.len()).filter(|j| used.contains(j)).map(|j| naive[j]).collect();
            naive_kept.sort_by(f64::total_cmp);
            assert_eq!(book.centroids.len(), naive_kept.len(), "{bits} bits");
            for (&ours, &theirs) in book.centroids.iter().zip(&naive_kept) {
                assert!(
                    (ours as f64 - theirs).abs() <= 1e-6 * theirs.abs().max(1e-3),
                    "{ours} vs {theirs}"
                );
            }
            // A fixed point: one more naive step from our centroids does not move them.
            let ours: Vec<f64> = book.centroids.iter().map(|&c| c as f64).collect();
            let again = naive_lloyd(&values, ours.clone(), 1);
            for (a, b) in again.iter().zip(&ours) {
                assert!((a - b).abs() <= 1e-6 * b.abs().max(1e-3), "{a} moved from {b}");
            }
            // Every value maps to its nearest centroid.
            for (&v, &c) in values.iter().zip(&book.codes) {
                let best = naive_nearest(&ours, v as f64);
                assert!((v as f64 - ours[best]).abs() == (v as f64 - ours[c as usize]).abs());
            }
        }
    }

    #[test]
    fn squared_error_never_increases_and_shrinks_with_more_bits() {
        let values = weights(2000, 3);
        let mut sorted = values.clone();
        sorted.sort_unstable_by(f32::total_cmp);
        for bits in 2..=8 {
            let (_, errors) =
                lloyd(&Clusters::new(&sorted), linear_init(&sorted, 1 << bits), MAX_ITERATIONS);
            assert!(errors.windows(2).all(|w| w[1] <= w[0]), "{bits} bits: {errors:?}");
            assert!(errors.len() < MAX_ITERATIONS, "{bits} bits reached a fixed point");
        }
        let errors: Vec<f64> =
            (2..=8).map(|b| squared_error(&values, &kmeans(&values, b))).collect();
        assert!(errors.windows(2).all(|w| w[1] < w[0]), "{errors:?}");
    }

    /// Four distinct values and four centroids: linear initialisation would leave a centroid
    /// empty and merge -1.0 with -0.9; the values themselves are the codebook.
    #[test]
    fn already_shared_values_are_their_own_codebook() {
        let values = [1.0, -0.9, -1.0, 0.9, 1.0, -1.0];
        let book = kmeans(&values, 2);
        assert_eq!(book.centroids, [-1.0, -0.9, 0.9, 1.0]);
        let decoded: Vec<f32> = book.codes.iter().map(|&c| book.centroids[c as usize]).collect();
        assert_eq!(decoded, values);
        // One distinct value more than the codebook holds: clustering, with some error.
        let book = kmeans(&[1.0, -0.9, -1.0, 0.9, 0.1], 2);
        assert!(squared_error(&[1.0, -0.9, -1.0, 0.9, 0.1], &book) > 0.0);
    }

    #[test]
    fn few_values_keep_exact_centroids() {
        let values = [0.5, -0.25, 0.5, 0.125];
        let book = kmeans(&values, 4);
        assert_eq!(book.centroids, [-0.25, 0.125, 0.5]);
        assert_eq!(book.codes, [2, 0, 2, 1]);
        assert_eq!(kmeans(&[], 3), Codebook { centroids: vec![0.0], codes: vec![] });
        let same = kmeans(&[0.3; 5], 2);
        assert_eq!(same.centroids, [0.3]);
    }

    proptest! {
        #[test]
        fn int8_error_is_at_most_half_a_step(values in prop::collection::vec(-4.0f32..4.0, 0..50)) {
            let (scale, q) = int8_row(&values);
            for (&v, &q) in values.iter().zip(&q) {
                prop_assert!(q >= -127);
                prop_assert!((scale * q as f32 - v).abs() <= scale * 0.5 + 1e-6 * v.abs());
            }
        }
    }

    #[test]
    fn int8_keeps_the_largest_weight_and_zero_rows() {
        let (scale, q) = int8_row(&[0.5, -1.27, 0.0]);
        assert_eq!(scale, 1.27 / 127.0);
        assert_eq!(q, [50, -127, 0]);
        assert_eq!(int8_row(&[0.0, 0.0]), (0.0, vec![0, 0]));
    }
}
