//! The values of an ONNX `TensorProto` (an initializer or a `Constant`), checked against its
//! dims: `raw_data` (little-endian) or the typed repeated fields, in the float and integer
//! types exporters write. External data, sizes that do not match the dims and other data types
//! are refused with a problem naming the tensor.

use super::proto::{data_type, TensorProto};
use half::{bf16, f16};
use ticket_core::graph::MAX_PARAMS;

/// The dims of `t` as sizes, refusing negative ones and totals past [`MAX_PARAMS`].
pub fn dims(t: &TensorProto) -> Result<Vec<usize>, String> {
    let dims = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("tensor `{}` has dim {d}", t.name)))
        .collect::<Result<Vec<usize>, String>>()?;
    elements(&dims).ok_or_else(|| format!("tensor `{}` has too many elements {dims:?}", t.name))?;
    Ok(dims)
}

fn elements(dims: &[usize]) -> Option<usize> {
    dims.iter().try_fold(1usize, |p, &d| p.checked_mul(d)).filter(|&n| n <= MAX_PARAMS)
}

/// Refuses data still kept in another file ([`super::external`] loads it first).
fn check_local(t: &TensorProto) -> Result<(), String> {
    if t.data_location == 1 || !t.external_data.is_empty() {
        return Err(format!("tensor `{}` has its data in another file", t.name));
    }
    Ok(())
}

/// `raw_data` cut into `size`-byte values, after checking it holds exactly `n` of them.
fn raw<'a>(
    t: &'a TensorProto,
    n: usize,
    size: usize,
) -> Result<std::slice::ChunksExact<'a, u8>, String> {
    if t.raw_data.len() != n * size {
        return Err(format!(
            "tensor `{}` holds {} bytes, but its dims {:?} of {} need {}",
            t.name,
            t.raw_data.len(),
            t.dims,
            data_type::name(t.data_type),
            n * size
        ));
    }
    Ok(t.raw_data.chunks_exact(size))
}

/// A typed field's values, after checking there are exactly `n`.
fn typed<T: Copy>(t: &TensorProto, values: &[T], n: usize) -> Result<Vec<T>, String> {
    if values.len() != n {
        return Err(format!(
            "tensor `{}` holds {} values, but its dims {:?} need {n}",
            t.name,
            values.len(),
            t.dims
        ));
    }
    Ok(values.to_vec())
}

/// The values of a floating-point tensor (FLOAT, DOUBLE, FLOAT16, BFLOAT16) as f32.
pub fn floats(t: &TensorProto) -> Result<Vec<f32>, String> {
    check_local(t)?;
    let n = elements(&dims(t)?).expect("checked by dims");
    let has_raw = !t.raw_data.is_empty() || n == 0;
    let half_bits = |bits: &[i32]| -> Result<Vec<u16>, String> {
        typed(t, bits, n)?
            .into_iter()
            .map(|b| {
                u16::try_from(b)
                    .map_err(|_| format!("tensor `{}` holds a 16-bit value {b}", t.name))
            })
            .collect()
    };
    let le16 = |c: &[u8]| u16::from_le_bytes([c[0], c[1]]);
    match t.data_type {
        data_type::FLOAT if has_raw => {
            Ok(raw(t, n, 4)?.map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect())
        }
        data_type::FLOAT => typed(t, &t.float_data, n),
        data_type::DOUBLE if has_raw => {
            Ok(raw(t, n, 8)?.map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32).collect())
        }
        data_type::DOUBLE => {
            Ok(typed(t, &t.double_data, n)?.into_iter().map(|v| v as f32).collect())
        }
        data_type::FLOAT16 if has_raw => {
            Ok(raw(t, n, 2)?.map(|c| f16::from_bits(le16(c)).to_f32()).collect())
        }
        data_type::FLOAT16 => {
            Ok(half_bits(&t.int32_data)?.into_iter().map(|b| f16::from_bits(b).to_f32()).collect())
        }
        data_type::BFLOAT16 if has_raw => {
            Ok(raw(t, n, 2)?.map(|c| bf16::from_bits(le16(c)).to_f32()).collect())
        }
        data_type::BFLOAT16 => {
            Ok(half_bits(&t.int32_data)?.into_iter().map(|b| bf16::from_bits(b).to_f32()).collect())
        }
        other => Err(format!(
            "tensor `{}` has data type {}, expected FLOAT, DOUBLE, FLOAT16 or BFLOAT16",
            t.name,
            data_type::name(other)
        )),
    }
}

/// The values of an integer tensor (INT64, INT32, and the small integer types) as i64.
pub fn ints(t: &TensorProto) -> Result<Vec<i64>, String> {
    check_local(t)?;
    let n = elements(&dims(t)?).expect("checked by dims");
    let has_raw = !t.raw_data.is_empty() || n == 0;
    match t.data_type {
        data_type::INT64 if has_raw => {
            Ok(raw(t, n, 8)?.map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect())
        }
        data_type::INT64 => typed(t, &t.int64_data, n),
        data_type::INT32 if has_raw => {
            Ok(raw(t, n, 4)?.map(|c| i32::from_le_bytes(c.try_into().unwrap()) as i64).collect())
        }
        data_type::UINT64 if has_raw => {
            Ok(raw(t, n, 8)?.map(|c| u64::from_le_bytes(c.try_into().unwrap()) as i64).collect())
        }
        data_type::UINT64 => {
            Ok(typed(t, &t.uint64_data, n)?.into_iter().map(|v| v as i64).collect())
        }
        data_type::INT32
        | data_type::INT16
        | data_type::INT8
        | data_type::UINT16
        | data_type::UINT8
        | data_type::BOOL
            if !has_raw =>
        {
            Ok(typed(t, &t.int32_data, n)?.into_iter().map(i64::from).collect())
        }
        data_type::INT16 => {
            Ok(raw(t, n, 2)?.map(|c| i16::from_le_bytes([c[0], c[1]]) as i64).collect())
        }
        data_type::UINT16 => {
            Ok(raw(t, n, 2)?.map(|c| u16::from_le_bytes([c[0], c[1]]) as i64).collect())
        }
        data_type::INT8 => Ok(raw(t, n, 1)?.map(|c| c[0] as i8 as i64).collect()),
        data_type::UINT8 | data_type::BOOL => Ok(raw(t, n, 1)?.map(|c| c[0] as i64).collect()),
        data_type::UINT32 if has_raw => {
            Ok(raw(t, n, 4)?.map(|c| u32::from_le_bytes(c.try_into().unwrap()) as i64).collect())
        }
        other => Err(format!(
            "tensor `{}` has data type {}, expected an integer type",
            t.name,
            data_type::name(other)
        )),
    }
}

/// Whether `t` holds integers (of a type [`ints`] reads).
pub fn is_int(t: &TensorProto) -> bool {
    use data_type::*;
    matches!(t.data_type, INT64 | INT32 | INT16 | INT8 | UINT64 | UINT32 | UINT16 | UINT8 | BOOL)
}

/// Whether `t` holds floating-point values.
pub fn is_float(t: &TensorProto) -> bool {
    matches!(
        t.data_type,
        data_type::FLOAT | data_type::DOUBLE | data_type::FLOAT16 | data_type::BFLOAT16
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(data_type: i32, dims: Vec<i64>) -> TensorProto {
        TensorProto { name: "w".into(), data_type, dims, ..Default::default() }
    }

    #[test]
    fn raw_and_typed_fields_give_the_same_values() {
        let mut t = tensor(data_type::FLOAT, vec![2, 2]);
        t.raw_data = [1.0f32, -2.0, 0.5, 3.25].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(floats(&t).unwrap(), [1.0, -2.0, 0.5, 3.25]);
        let mut t = tensor(data_type::FLOAT, vec![2, 2]);
        t.float_data = vec![1.0, -2.0, 0.5, 3.25];
        assert_eq!(floats(&t).unwrap(), [1.0, -2.0, 0.5, 3.25]);
        let mut t = tensor(data_type::FLOAT16, vec![2]);
        t.int32_data =
            vec![f16::from_f32(1.5).to_bits() as i32, f16::from_f32(-0.25).to_bits() as i32];
        assert_eq!(floats(&t).unwrap(), [1.5, -0.25]);
        let mut t = tensor(data_type::INT64, vec![2]);
        t.raw_data = [-1i64, 784].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(ints(&t).unwrap(), [-1, 784]);
        let mut t = tensor(data_type::INT64, vec![]);
        t.int64_data = vec![7];
        assert_eq!(ints(&t).unwrap(), [7]);
    }

    #[test]
    fn sizes_that_lie_and_other_types_are_refused() {
        let mut t = tensor(data_type::FLOAT, vec![3, 2]);
        t.raw_data = vec![0; 20].into();
        assert!(floats(&t)
            .unwrap_err()
            .contains("holds 20 bytes, but its dims [3, 2] of FLOAT need 24"));
        let mut t = tensor(data_type::FLOAT, vec![3]);
        t.float_data = vec![1.0];
        assert!(floats(&t).unwrap_err().contains("holds 1 values"));
        let t = tensor(data_type::FLOAT, vec![-1]);
        assert!(floats(&t).unwrap_err().contains("dim -1"));
        let t = tensor(data_type::FLOAT, vec![1 << 40, 1 << 40]);
        assert!(floats(&t).unwrap_err().contains("too many elements"));
        let t = tensor(8, vec![1]);
        assert!(floats(&t).unwrap_err().contains("data type STRING"));
        assert!(!is_int(&t) && !is_float(&t));
        let mut t = tensor(data_type::FLOAT, vec![1]);
        t.data_location = 1;
        assert!(floats(&t).unwrap_err().contains("in another file"));
    }
}
