//! Row-major `[rows][cols]` to `[cols][rows]`: between the `[batch][features]` layout of data
//! and the `[features][batch]` layout of the kernels.

/// Side of the square blocks copied at a time: both the rows read and the rows written
/// stay within a few cache lines.
const BLOCK: usize = 8;

/// Writes the transpose of `src` (`rows x cols`, row-major) into `dst` (`cols x rows`).
pub fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    assert_eq!(src.len(), rows * cols, "transpose: source length");
    assert_eq!(dst.len(), rows * cols, "transpose: destination length");
    for r0 in (0..rows).step_by(BLOCK) {
        let r1 = (r0 + BLOCK).min(rows);
        for c0 in (0..cols).step_by(BLOCK) {
            let c1 = (c0 + BLOCK).min(cols);
            for r in r0..r1 {
                for c in c0..c1 {
                    dst[c * rows + r] = src[r * cols + c];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transposes_odd_shapes() {
        for (rows, cols) in [(1, 1), (3, 5), (9, 17), (64, 784), (10, 1)] {
            let src: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
            let mut dst = vec![0.0; rows * cols];
            transpose(&src, rows, cols, &mut dst);
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(dst[c * rows + r], src[r * cols + c]);
                }
            }
        }
    }
}
