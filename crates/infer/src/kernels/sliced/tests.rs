use super::*;
use crate::fixture::{CsrParts, Random};

/// Runs `m` through every instruction set on one thread and two, and checks that each gives
/// `want` bit for bit, for `x` and for `x` with every 7th input infinite (infinite sums, which
/// a step past a row's end would turn into NaN, 0 times infinity, were its lane
/// not masked off).
fn assert_every_isa_gives(m: &SlicedRows, want: &SlicedRows, x: &[f32], what: &str) {
    let mut infinite = x.to_vec();
    infinite.iter_mut().step_by(7).for_each(|v| *v = f32::INFINITY);
    let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    for x in [x, &infinite] {
        let mut expected = vec![0.0f32; m.rows];
        let id = Activation::Identity;
        want.spmv_with(Isa::Portable, None, x, &mut expected, id, (1, &mut vec![]));
        for (isa, threads) in Isa::available().into_iter().flat_map(|i| [(i, 1), (i, 2)]) {
            let mut y = vec![f32::NAN; m.rows];
            let sums = &mut vec![f32::NAN; 3];
            m.spmv_with(isa, None, x, &mut y, id, (threads, sums));
            assert_eq!(bits(&y), bits(&expected), "{what}: {} on {threads} threads", isa.name());
        }
    }
}

/// Every instruction set's product equals the portable one bit for bit and a naive f64
/// product within the rounding of a sum of the row's length, on layers whose rows are empty,
/// shorter than, equal to and longer than a slice, with a row count that leaves the last
/// slice part-filled.
#[test]
fn every_isa_matches_portable_bit_for_bit_and_the_f64_product() {
    let mut rng = Random::new(11);
    for (rows, cols, density) in [(1, 5, 1.0), (37, 50, 0.3), (16, 40, 0.0), (300, 784, 0.035)] {
        let w = CsrParts::random(rows, cols, density, &mut rng);
        let idx = w.indices_u16();
        let csr = CsrRef::new(rows, cols, &w.indptr, &idx, &w.values).unwrap();
        let sliced = SlicedRows::new(csr);
        let x = rng.vec(cols, -1.0, 1.0);
        let mut got = vec![0.0f32; rows];
        let relu = Activation::Relu;
        sliced.spmv_with(Isa::Portable, Some(&w.bias), &x, &mut got, relu, (1, &mut vec![]));
        for (r, &got) in got.iter().enumerate() {
            let range = w.indptr[r] as usize..w.indptr[r + 1] as usize;
            let term = |k: usize| w.values[k] as f64 * x[w.indices[k] as usize] as f64;
            let exact = w.bias[r] as f64 + range.clone().map(term).sum::<f64>();
            let size = w.bias[r].abs() as f64 + range.clone().map(|k| term(k).abs()).sum::<f64>();
            let gamma = (range.len() + 1) as f64 * f32::EPSILON as f64;
            let got = got as f64;
            assert!((got - exact.max(0.0)).abs() <= gamma * size, "row {r}: {got} vs {exact}");
        }
        assert_every_isa_gives(&sliced, &sliced, &x, &format!("f32 {rows} x {cols}"));
    }
}

/// A compressed layer's copy, in every value codec (f32, int8, codebooks of 1 to 8 bits) with
/// every column codec of the file (absolute U16 and U32, gaps of 3 to 8 bits, fillers
/// included; the copy's columns are absolute), gives the f32 copy of its decoded matrix bit
/// for bit on every instruction set.
#[test]
fn compressed_copies_equal_the_f32_copy_of_the_decoded_matrix() {
    use crate::kernels::compressed::tests::layouts;
    let mut rng = Random::new(5);
    // 0.4 % of 3,000 columns: gaps of 250 on average, so the file's gaps need many fillers.
    for (rows, cols, density) in [(45, 700, 0.04), (20, 30, 0.5), (40, 3000, 0.004)] {
        let w = CsrParts::random(rows, cols, density, &mut rng);
        let x = rng.vec(cols, -1.0, 1.0);
        for (name, c, decoded) in layouts(&w, &mut rng) {
            let idx = w.indices_u16();
            let csr = CsrRef::new(rows, cols, &w.indptr, &idx, &decoded).unwrap();
            let want = SlicedRows::new(csr);
            let sliced =
                c.batch1_copy(&w.indptr, |shape, kind, e| SlicedRows::build(shape, kind, e));
            assert_every_isa_gives(&sliced, &want, &x, &format!("{name} {rows} x {cols}"));
        }
    }
}

#[test]
fn slices_hold_rows_longest_first_and_count_their_bytes() {
    let mut rng = Random::new(3);
    let w = CsrParts::random(40, 30, 0.4, &mut rng);
    let idx = w.indices_u16();
    let csr = CsrRef::new(40, 30, &w.indptr, &idx, &w.values).unwrap();
    let sliced = SlicedRows::new(csr);
    assert_eq!(sliced.slices.len(), 3);
    let lens: Vec<u32> = sliced.slices.iter().flat_map(|s| s.lens).collect();
    assert!(lens.windows(2).all(|p| p[0] >= p[1]), "longest first: {lens:?}");
    let mut seen: Vec<u32> = sliced.slices.iter().flat_map(|s| s.rows).take(40).collect();
    seen.sort();
    assert_eq!(seen, (0..40).collect::<Vec<_>>());
    let steps = *sliced.starts.last().unwrap() as usize;
    assert_eq!(sliced.starts.len(), 4);
    assert_eq!(sliced.bytes(), 3 * 128 + 4 * 4 + steps * 96);
}
