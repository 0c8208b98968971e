use super::*;
use crate::csr::CsrRef;
use crate::fixture::{CsrParts, Random};
use crate::kernels::{spmm_with, PAR_MIN_WORK};
use ticket_core::Par;

/// A compressed layer's copy, in every value codec (f32, int8, codebooks of 1 to 8 bits)
/// with every column codec of the file (absolute U16 and U32, gaps of 3 to 8 bits, fillers
/// included), on every instruction set and on one thread and two, gives bit for bit what the
/// CSR kernel's scalar rows (AVX2's batch-1 rows; for f32 values the CSR kernel of the same
/// instruction set) give for the f32 matrix it decodes to, with and without bias and ReLU,
/// within the rounding bound of an f64 product; and its bytes are its arrays'.
#[cfg(target_arch = "x86_64")]
#[test]
fn copies_equal_the_csr_rows_of_the_decoded_matrix_bit_for_bit() {
    use crate::kernels::compressed::tests::layouts;
    let mut rng = Random::new(6);
    let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    // Empty rows, rows shorter than a group of four, long rows, and gaps that need fillers.
    for (rows, cols, density) in [(45, 700, 0.04), (20, 30, 0.5), (40, 3000, 0.004), (3, 9, 0.0)] {
        let w = CsrParts::random(rows, cols, density, &mut rng);
        let x = rng.vec(cols, -1.0, 1.0);
        for (name, c, decoded) in layouts(&w, &mut rng) {
            let idx = w.indices_u16();
            let csr = CsrRef::new(rows, cols, &w.indptr, &idx, &decoded).unwrap();
            let copy = c.batch1_copy(&w.indptr, |shape, kind, entries| {
                CodedRows::build(shape, kind, entries)
            });
            // A u32 entry a kept weight and the scales or the table, or for f32 values a u16
            // column and an f32 value.
            let arrays = match copy.layout {
                Layout::F32 { .. } => 6 * w.nnz(),
                Layout::Coded { decode: Decode::Int8(_), .. } => 4 * w.nnz() + 4 * rows,
                Layout::Coded { decode: Decode::Codebook(_), .. } => 4 * w.nnz() + 4 * 256,
            };
            assert_eq!(copy.bytes(), 4 * (rows + 1) + arrays, "{name}");
            for (bias, act) in [(None, Activation::Identity), (Some(&w.bias[..]), Activation::Relu)]
            {
                for (isa, threads) in Isa::available().into_iter().flat_map(|i| [(i, 1), (i, 2)]) {
                    // f32 values run by the CSR kernel of `isa`; codes and int8 bytes in the
                    // order of its scalar rows, whatever the instruction set.
                    let order =
                        if let Layout::F32 { .. } = copy.layout { isa } else { Isa::Avx2Fma };
                    let mut want = vec![0.0f32; rows];
                    spmm_with(order, csr, bias, &x, &mut want, 1, act, Par::Seq, PAR_MIN_WORK);
                    let mut y = vec![f32::NAN; rows];
                    copy.spmv_with(isa, bias, &x, &mut y, act, threads);
                    assert_eq!(bits(&y), bits(&want), "{name} {rows} x {cols} {}", isa.name());
                    for (r, &got) in y.iter().enumerate() {
                        let range = w.indptr[r] as usize..w.indptr[r + 1] as usize;
                        let term = |k: usize| decoded[k] as f64 * x[w.indices[k] as usize] as f64;
                        let b = bias.map_or(0.0, |b| b[r] as f64);
                        let exact = b + range.clone().map(term).sum::<f64>();
                        let exact = if act == Activation::Relu { exact.max(0.0) } else { exact };
                        let size = b.abs() + range.clone().map(|k| term(k).abs()).sum::<f64>();
                        let gamma = (range.len() + 1) as f64 * f32::EPSILON as f64;
                        assert!((got as f64 - exact).abs() <= gamma * size, "{name} row {r}");
                    }
                }
            }
        }
    }
}

/// Lengths that do not fit the copy are refused with the name of the mismatch.
#[test]
#[should_panic(expected = "coded rows: x has 3 entries")]
fn a_wrong_input_length_panics() {
    let copy = CodedRows::build((2, 4), ValueKind::F32, |r, out| out.push((r as u32, 0)));
    copy.spmv(None, &[0.0; 3], &mut [0.0; 2], Activation::Identity, 1);
}
