//! Values known before any example is seen: initializers, `Constant` nodes, and what
//! exporters compute from them (the `Shape -> Gather -> Unsqueeze -> Concat` chain that
//! feeds a `Reshape`, a `Transpose` of a weight). Folding them here lets the chain see
//! weights and reshape targets as plain numbers, whichever exporter and optimisation wrote
//! the file. The batch size is the one unknown, kept as [`Int::Batch`].

use super::proto::{NodeProto, TensorProto};
use super::tensor;

/// One element of an integer constant: a number, or the batch size of the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Int {
    Known(i64),
    Batch,
}

/// A folded value and the initializer it came from (which names the layer that uses it).
#[derive(Clone, Debug, PartialEq)]
pub struct Const {
    pub dims: Vec<usize>,
    pub values: Values,
    pub origin: String,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Values {
    Float(Vec<f32>),
    Int(Vec<Int>),
}

impl Const {
    pub fn from_tensor(t: &TensorProto) -> Result<Const, String> {
        let dims = tensor::dims(t)?;
        let values = if tensor::is_float(t) {
            Values::Float(tensor::floats(t)?)
        } else if tensor::is_int(t) {
            Values::Int(tensor::ints(t)?.into_iter().map(Int::Known).collect())
        } else {
            return Err(format!(
                "tensor `{}` has data type {}, which is not supported (FLOAT, DOUBLE, FLOAT16, \
                 BFLOAT16 or an integer type)",
                t.name,
                super::proto::data_type::name(t.data_type)
            ));
        };
        Ok(Const { dims, values, origin: t.name.clone() })
    }

    pub fn ints(dims: Vec<usize>, values: Vec<Int>) -> Const {
        Const { dims, values: Values::Int(values), origin: String::new() }
    }

    pub fn floats(&self) -> Option<&[f32]> {
        match &self.values {
            Values::Float(v) => Some(v),
            Values::Int(_) => None,
        }
    }

    pub fn int_values(&self) -> Option<&[Int]> {
        match &self.values {
            Values::Int(v) => Some(v),
            Values::Float(_) => None,
        }
    }

    /// Plain numbers, or `None` when an element is the batch size (or the values are floats).
    pub fn known_ints(&self) -> Option<Vec<i64>> {
        self.int_values()?
            .iter()
            .map(|v| match v {
                Int::Known(i) => Some(*i),
                Int::Batch => None,
            })
            .collect()
    }

    fn len(&self) -> usize {
        match &self.values {
            Values::Float(v) => v.len(),
            Values::Int(v) => v.len(),
        }
    }
}

/// Attribute `name` of `node`, if present.
pub fn attribute<'a>(node: &'a NodeProto, name: &str) -> Option<&'a super::proto::AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

/// An int attribute, or `default`.
pub fn int_attr(node: &NodeProto, name: &str, default: i64) -> i64 {
    attribute(node, name).map_or(default, |a| a.i)
}

/// An ints attribute, if present.
pub fn ints_attr(node: &NodeProto, name: &str) -> Option<Vec<i64>> {
    attribute(node, name).map(|a| a.ints.clone())
}

/// The value of a `Constant` node.
pub fn constant_node(node: &NodeProto) -> Result<Const, String> {
    let [attr] = node.attribute.as_slice() else {
        return Err("needs exactly one attribute".into());
    };
    match attr.name.as_str() {
        "value" => match &attr.t {
            Some(t) => Const::from_tensor(t),
            None => Err("has no tensor in `value`".into()),
        },
        "value_float" => Ok(float_const(vec![], vec![attr.f])),
        "value_floats" => Ok(float_const(vec![attr.floats.len()], attr.floats.clone())),
        "value_int" => Ok(Const::ints(vec![], vec![Int::Known(attr.i)])),
        "value_ints" => Ok(Const::ints(
            vec![attr.ints.len()],
            attr.ints.iter().map(|&i| Int::Known(i)).collect(),
        )),
        other => Err(format!("attribute `{other}` is not supported")),
    }
}

fn float_const(dims: Vec<usize>, values: Vec<f32>) -> Const {
    Const { dims, values: Values::Float(values), origin: String::new() }
}

/// Whether [`fold`] knows `op`.
pub fn foldable(op: &str) -> bool {
    matches!(
        op,
        "Constant"
            | "Identity"
            | "Transpose"
            | "Cast"
            | "Unsqueeze"
            | "Squeeze"
            | "Concat"
            | "Gather"
            | "Reshape"
    )
}

/// The output of `node` applied to constants `inputs`.
pub fn fold(node: &NodeProto, inputs: &[&Const]) -> Result<Const, String> {
    let first = || inputs.first().copied().ok_or_else(|| "has no input".to_string());
    match node.op_type.as_str() {
        "Constant" => constant_node(node),
        "Identity" => Ok(first()?.clone()),
        "Cast" => cast(first()?, int_attr(node, "to", 0)),
        "Transpose" => transpose(first()?, ints_attr(node, "perm")),
        "Unsqueeze" | "Squeeze" => {
            let c = first()?;
            let axes = match (inputs.get(1), ints_attr(node, "axes")) {
                (Some(a), _) => a.known_ints().ok_or("takes its axes as integers")?,
                (None, Some(a)) => a,
                (None, None) => vec![],
            };
            if node.op_type == "Unsqueeze" {
                unsqueeze(c, &axes)
            } else {
                squeeze(c, &axes)
            }
        }
        "Concat" => concat(inputs),
        "Gather" => gather(first()?, inputs.get(1).copied(), int_attr(node, "axis", 0)),
        "Reshape" => {
            let c = first()?;
            let shape = inputs.get(1).and_then(|s| s.known_ints()).ok_or("needs a known shape")?;
            reshape_dims(&c.dims, &shape, c.len()).map(|dims| Const { dims, ..c.clone() })
        }
        op => Err(format!("op {op} cannot be folded")),
    }
}

fn cast(c: &Const, to: i64) -> Result<Const, String> {
    use super::proto::data_type as dt;
    let to = i32::try_from(to).map_err(|_| format!("casts to data type {to}"))?;
    let values = match (&c.values, to) {
        (Values::Float(v), dt::FLOAT | dt::DOUBLE | dt::FLOAT16 | dt::BFLOAT16) => {
            Values::Float(v.clone())
        }
        (Values::Int(v), dt::INT64 | dt::INT32) => Values::Int(v.clone()),
        (Values::Int(v), dt::FLOAT | dt::DOUBLE) => Values::Float(
            v.iter()
                .map(|i| match i {
                    Int::Known(i) => Ok(*i as f32),
                    Int::Batch => Err("casts the batch size to a float".to_string()),
                })
                .collect::<Result<_, _>>()?,
        ),
        _ => return Err(format!("casts to {}, which is not supported", dt::name(to))),
    };
    Ok(Const { values, ..c.clone() })
}

fn transpose(c: &Const, perm: Option<Vec<i64>>) -> Result<Const, String> {
    let rank = c.dims.len();
    let perm = perm.unwrap_or_else(|| (0..rank as i64).rev().collect());
    if rank != 2 || perm != [1, 0] {
        return Err(format!("transposes {:?} by {perm:?}; only 2-D transposes fold", c.dims));
    }
    let (r, k) = (c.dims[0], c.dims[1]);
    let values = match &c.values {
        Values::Float(v) => Values::Float(transposed(v, r, k)),
        Values::Int(v) => Values::Int(transposed(v, r, k)),
    };
    Ok(Const { dims: vec![k, r], values, origin: c.origin.clone() })
}

/// The `[cols, rows]` transpose of a row-major `[rows, cols]` matrix.
pub fn transposed<T: Copy>(v: &[T], rows: usize, cols: usize) -> Vec<T> {
    (0..cols).flat_map(|c| (0..rows).map(move |r| v[r * cols + c])).collect()
}

/// An axis in `[-rank, rank)` as an index.
fn axis(a: i64, rank: usize) -> Result<usize, String> {
    let r = rank as i64;
    if a < -r || a >= r {
        return Err(format!("axis {a} is out of range for rank {rank}"));
    }
    Ok(if a < 0 { (a + r) as usize } else { a as usize })
}

fn unsqueeze(c: &Const, axes: &[i64]) -> Result<Const, String> {
    let rank = c.dims.len() + axes.len();
    let mut axes = axes.iter().map(|&a| axis(a, rank)).collect::<Result<Vec<_>, _>>()?;
    axes.sort_unstable();
    let mut dims = c.dims.clone();
    for a in axes {
        dims.insert(a.min(dims.len()), 1);
    }
    Ok(Const { dims, ..c.clone() })
}

fn squeeze(c: &Const, axes: &[i64]) -> Result<Const, String> {
    let axes = axes.iter().map(|&a| axis(a, c.dims.len())).collect::<Result<Vec<_>, _>>()?;
    let mut dims = Vec::new();
    for (i, &d) in c.dims.iter().enumerate() {
        let squeezed = if axes.is_empty() { d == 1 } else { axes.contains(&i) };
        if squeezed && d != 1 {
            return Err(format!("squeezes axis {i} of size {d}"));
        }
        if !squeezed {
            dims.push(d);
        }
    }
    Ok(Const { dims, ..c.clone() })
}

fn concat(inputs: &[&Const]) -> Result<Const, String> {
    let mut values = Vec::new();
    for c in inputs {
        if c.dims.len() != 1 {
            return Err(format!("concatenates a value of shape {:?}; only vectors fold", c.dims));
        }
        values.extend_from_slice(c.int_values().ok_or("concatenates floats")?);
    }
    Ok(Const::ints(vec![values.len()], values))
}

fn gather(c: &Const, indices: Option<&Const>, axis_attr: i64) -> Result<Const, String> {
    let data = c.int_values().ok_or("gathers from floats")?;
    let indices = indices.ok_or("has no indices")?;
    if c.dims.len() != 1 || axis(axis_attr, 1)? != 0 {
        return Err(format!("gathers from shape {:?}; only vectors fold", c.dims));
    }
    let picked = indices
        .known_ints()
        .ok_or("needs known indices")?
        .into_iter()
        .map(|i| axis(i, data.len()).map(|i| data[i]))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Const::ints(indices.dims.clone(), picked))
}

/// The dims a reshape to `shape` gives `len` values of shape `dims` (`0` copies a dim, one
/// `-1` takes the rest).
fn reshape_dims(dims: &[usize], shape: &[i64], len: usize) -> Result<Vec<usize>, String> {
    let mut out = Vec::with_capacity(shape.len());
    let mut infer = None;
    for (i, &s) in shape.iter().enumerate() {
        match s {
            -1 if infer.is_none() => {
                infer = Some(i);
                out.push(1);
            }
            0 => out.push(*dims.get(i).ok_or("copies a dim that does not exist")?),
            s if s > 0 => out.push(s as usize),
            _ => return Err(format!("reshapes to {shape:?}")),
        }
    }
    let known = out
        .iter()
        .try_fold(1usize, |p, &d| p.checked_mul(d))
        .ok_or_else(|| format!("reshapes to {shape:?}, too large"))?;
    if let Some(i) = infer {
        if known == 0 || !len.is_multiple_of(known) {
            return Err(format!("cannot reshape {dims:?} to {shape:?}"));
        }
        out[i] = len / known;
    }
    if out.iter().try_fold(1usize, |p, &d| p.checked_mul(d)) != Some(len) {
        return Err(format!("cannot reshape {dims:?} to {shape:?}"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(op: &str) -> NodeProto {
        NodeProto { op_type: op.into(), ..Default::default() }
    }

    fn known(v: &[i64]) -> Const {
        Const::ints(vec![v.len()], v.iter().map(|&i| Int::Known(i)).collect())
    }

    #[test]
    fn the_shape_chain_of_a_view_folds_to_batch_and_minus_one() {
        // Shape(x)[0], unsqueezed, concatenated with [-1]: what x.view(x.size(0), -1) exports.
        let shape =
            Const::ints(vec![4], vec![Int::Batch, Int::Known(1), Int::Known(4), Int::Known(4)]);
        let index = Const::ints(vec![], vec![Int::Known(0)]);
        let n = fold(&node("Gather"), &[&shape, &index]).unwrap();
        assert_eq!(n.dims, Vec::<usize>::new());
        let n = fold(&node("Unsqueeze"), &[&n, &known(&[0])]).unwrap();
        assert_eq!(n.dims, [1]);
        let target = fold(&node("Concat"), &[&n, &known(&[-1])]).unwrap();
        assert_eq!(target.int_values().unwrap(), [Int::Batch, Int::Known(-1)]);
    }

    #[test]
    fn transpose_matches_index_arithmetic() {
        let c = Const {
            dims: vec![2, 3],
            values: Values::Float(vec![0., 1., 2., 3., 4., 5.]),
            origin: "w".into(),
        };
        let t = fold(&node("Transpose"), &[&c]).unwrap();
        assert_eq!(t.dims, [3, 2]);
        assert_eq!(t.floats().unwrap(), [0., 3., 1., 4., 2., 5.]);
        assert_eq!(t.origin, "w");
    }

    #[test]
    fn reshape_infers_minus_one_and_refuses_a_bad_count() {
        assert_eq!(reshape_dims(&[2, 6], &[-1, 3], 12).unwrap(), [4, 3]);
        assert_eq!(reshape_dims(&[2, 6], &[0, -1], 12).unwrap(), [2, 6]);
        assert!(reshape_dims(&[2, 6], &[5, -1], 12).is_err());
        assert!(reshape_dims(&[2, 6], &[-1, -1], 12).is_err());
        assert!(reshape_dims(&[2, 6], &[i64::MAX, i64::MAX, -1], 12).is_err());
    }
}
