//! Little-endian bytes of the CSR arrays: values in f32, f16 or bf16 (converted in bulk with
//! `half`, which uses F16C where the CPU has it) and column indices in U16 or U32. The writer
//! and the decoder share these so a value is rounded exactly once, on the way out.

use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};
use safetensors::Dtype;
use ticket_core::csr_format::ValueDtype;

/// The bytes of `values` stored as `dtype` (round to nearest, ties to even).
pub fn encode_values(values: &[f32], dtype: ValueDtype) -> Vec<u8> {
    match dtype {
        ValueDtype::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ValueDtype::F16 => encode_half(values, f16::to_bits),
        ValueDtype::Bf16 => encode_half(values, bf16::to_bits),
    }
}

/// Values stored as `dtype`, widened to f32 (exact: every f16 and bf16 is an f32).
/// `bytes.len()` must be a multiple of the dtype's size (the caller checked the tensor shape).
pub fn decode_values(bytes: &[u8], dtype: ValueDtype) -> Vec<f32> {
    match dtype {
        ValueDtype::F32 => {
            bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
        }
        ValueDtype::F16 => decode_half(bytes, f16::from_bits),
        ValueDtype::Bf16 => decode_half(bytes, bf16::from_bits),
    }
}

/// `values` converted in bulk to the 16-bit float type `T`, as little-endian bytes.
fn encode_half<T: Copy + Default>(values: &[f32], to_bits: fn(T) -> u16) -> Vec<u8>
where
    [T]: HalfFloatSliceExt,
{
    let mut half = vec![T::default(); values.len()];
    half.convert_from_f32_slice(values);
    half.iter().flat_map(|&v| to_bits(v).to_le_bytes()).collect()
}

/// Little-endian 16-bit floats of type `T`, converted in bulk to f32.
fn decode_half<T: Copy>(bytes: &[u8], from_bits: fn(u16) -> T) -> Vec<f32>
where
    [T]: HalfFloatSliceExt,
{
    let half: Vec<T> =
        bytes.chunks_exact(2).map(|c| from_bits(u16::from_le_bytes([c[0], c[1]]))).collect();
    let mut out = vec![0.0; half.len()];
    half.convert_to_f32_slice(&mut out);
    out
}

/// The bytes of column indices as `dtype` (U16 or U32). Callers pick the dtype with
/// [`ticket_core::csr_format::index_dtype`], which guarantees every index fits.
pub fn encode_indices(indices: &[u32], dtype: Dtype) -> Vec<u8> {
    match dtype {
        Dtype::U16 => indices
            .iter()
            .flat_map(|&i| u16::try_from(i).expect("index fits the format's U16").to_le_bytes())
            .collect(),
        Dtype::U32 => indices.iter().flat_map(|i| i.to_le_bytes()).collect(),
        other => panic!("the CSR format has no {other:?} indices"),
    }
}

/// Column indices stored as U16 or U32, widened to u32.
pub fn decode_indices(bytes: &[u8], dtype: Dtype) -> Vec<u32> {
    match dtype {
        Dtype::U16 => {
            bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]]) as u32).collect()
        }
        Dtype::U32 => {
            bytes.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
        }
        other => panic!("the CSR format has no {other:?} indices"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_like_scalar_conversion() {
        // Ties, subnormals, overflow and signed zero, each against half's scalar conversion.
        let values = [0.0, -0.0, 1.0, 1.0 + 1.0 / 2048.0, 3.0e-6, 1.0e-8, 65_504.0, 70_000.0, -2.5];
        let f16s = decode_values(&encode_values(&values, ValueDtype::F16), ValueDtype::F16);
        let bf16s = decode_values(&encode_values(&values, ValueDtype::Bf16), ValueDtype::Bf16);
        for (i, &v) in values.iter().enumerate() {
            assert_eq!(f16s[i].to_bits(), f16::from_f32(v).to_f32().to_bits(), "f16 of {v}");
            assert_eq!(bf16s[i].to_bits(), bf16::from_f32(v).to_f32().to_bits(), "bf16 of {v}");
        }
        // 1 + 2^-11 is halfway between two f16 values and rounds to the even one, 1.0.
        assert_eq!(f16s[3], 1.0);
        assert!(f16s[7].is_infinite());
        let f32s = decode_values(&encode_values(&values, ValueDtype::F32), ValueDtype::F32);
        assert_eq!(
            f32s.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            values.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn indices_round_trip_in_both_widths() {
        let small = [0, 1, 65_535];
        assert_eq!(encode_indices(&small, Dtype::U16).len(), 6);
        assert_eq!(decode_indices(&encode_indices(&small, Dtype::U16), Dtype::U16), small);
        let large = [0, 65_536, u32::MAX];
        assert_eq!(decode_indices(&encode_indices(&large, Dtype::U32), Dtype::U32), large);
    }
}
