//! Named tensors in safetensors files: typed reads that check dtype and shape, and atomic
//! writes. Both the dense checkpoints and the CSR models are built on this, so every loader
//! reports problems the same way: the file, the tensor, what was expected, what was found.
//!
//! ```
//! use ticket_core::tensor_file::{OwnedTensor, TensorFile, write_tensors};
//! use std::collections::BTreeMap;
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("t.safetensors");
//! let meta = BTreeMap::from([("format".to_string(), "demo".to_string())]);
//! write_tensors(&path, vec![("w".into(), OwnedTensor::f32(vec![2], &[1.0, 2.0]))], &meta).unwrap();
//! let bytes = std::fs::read(&path).unwrap();
//! let file = TensorFile::parse(&bytes, &path).unwrap();
//! assert_eq!(file.f32("w", &[2]).unwrap(), [1.0, 2.0]);
//! assert_eq!(file.meta("format").unwrap(), "demo");
//! ```

use crate::atomic::write_atomic_with;
use crate::{Error, Result};
use safetensors::tensor::{Metadata, TensorInfo, TensorView};
use safetensors::{Dtype, SafeTensors};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A tensor that owns its little-endian bytes, ready to be written.
#[derive(Clone, Debug, PartialEq)]
pub struct OwnedTensor {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

impl OwnedTensor {
    pub fn f32(shape: Vec<usize>, values: &[f32]) -> Self {
        Self::from_le(Dtype::F32, shape, values.iter().flat_map(|v| v.to_le_bytes()))
    }

    pub fn u8(shape: Vec<usize>, values: &[u8]) -> Self {
        Self { dtype: Dtype::U8, shape, data: values.to_vec() }
    }

    pub fn u16(shape: Vec<usize>, values: &[u16]) -> Self {
        Self::from_le(Dtype::U16, shape, values.iter().flat_map(|v| v.to_le_bytes()))
    }

    pub fn u32(shape: Vec<usize>, values: &[u32]) -> Self {
        Self::from_le(Dtype::U32, shape, values.iter().flat_map(|v| v.to_le_bytes()))
    }

    pub fn i64(shape: Vec<usize>, values: &[i64]) -> Self {
        Self::from_le(Dtype::I64, shape, values.iter().flat_map(|v| v.to_le_bytes()))
    }

    /// A tensor of `dtype` from bytes already in little-endian order.
    pub fn from_le(dtype: Dtype, shape: Vec<usize>, bytes: impl IntoIterator<Item = u8>) -> Self {
        Self { dtype, shape, data: bytes.into_iter().collect() }
    }
}

/// Serializes `tensors` with `metadata` and writes the file atomically, streaming: the
/// header, then each tensor's bytes straight into the temporary file, so the file is never
/// held in memory a second time (a 244 MB model is written with no 244 MB buffer).
pub fn write_tensors(
    path: &Path,
    tensors: Vec<(String, OwnedTensor)>,
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let layout: Vec<TensorLayout> = tensors
        .iter()
        .map(|(name, t)| TensorLayout {
            name: name.clone(),
            dtype: t.dtype,
            shape: t.shape.clone(),
        })
        .collect();
    for ((name, t), l) in tensors.iter().zip(&layout) {
        if t.data.len() != l.bytes() {
            let problem = format!("tensor {name}: {} bytes for shape {:?}", t.data.len(), t.shape);
            return Err(Error::invalid(path, problem));
        }
    }
    let (header, order) = file_header(path, &layout, metadata)?;
    write_atomic_with(path, |file| {
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        out.write_all(&header)?;
        for i in order {
            out.write_all(&tensors[i].1.data)?;
        }
        out.flush()
    })
}

/// A tensor's name, dtype and shape: all a safetensors header says of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorLayout {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
}

impl TensorLayout {
    /// Bytes of its data.
    pub fn bytes(&self) -> usize {
        self.shape.iter().product::<usize>() * self.dtype.bitsize() / 8
    }
}

/// The header safetensors writes for tensors of `layout` with `metadata` (the 8-byte length,
/// then the JSON padded to a multiple of 8) and the order in which their data follows it
/// (descending dtype, then name, as `safetensors::serialize` orders them), computed without
/// any data: [`write_tensors`] streams the data after it, and the length of a file not
/// written is `header.len()` plus the data bytes ([`file_len`]).
pub fn file_header(
    path: &Path,
    layout: &[TensorLayout],
    metadata: &BTreeMap<String, String>,
) -> Result<(Vec<u8>, Vec<usize>)> {
    let mut order: Vec<usize> = (0..layout.len()).collect();
    order.sort_by(|&a, &b| {
        layout[b].dtype.cmp(&layout[a].dtype).then_with(|| layout[a].name.cmp(&layout[b].name))
    });
    let mut offset = 0;
    let infos = order
        .iter()
        .map(|&i| {
            let t = &layout[i];
            let (start, end) = (offset, offset + t.bytes());
            offset = end;
            let info =
                TensorInfo { dtype: t.dtype, shape: t.shape.clone(), data_offsets: (start, end) };
            (t.name.clone(), info)
        })
        .collect();
    let meta: HashMap<String, String> = metadata.clone().into_iter().collect();
    let cannot = |e: &dyn std::fmt::Display| Error::invalid(path, format!("cannot serialize: {e}"));
    let header = Metadata::new(Some(meta), infos).map_err(|e| cannot(&e))?;
    let header = serde_json::to_string(&header).map_err(|e| cannot(&e))?;
    let mut json = header.into_bytes();
    json.resize(json.len().next_multiple_of(8), b' ');
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend(json);
    Ok((out, order))
}

/// The length of the safetensors file of tensors of `layout` with `metadata`, from its
/// header alone.
pub fn file_len(
    path: &Path,
    layout: &[TensorLayout],
    metadata: &BTreeMap<String, String>,
) -> Result<usize> {
    let data: usize = layout.iter().map(TensorLayout::bytes).sum();
    Ok(file_header(path, layout, metadata)?.0.len() + data)
}

/// The bytes of the safetensors file of `tensors` and `metadata` (`path` names it in errors).
pub fn serialize_tensors(
    path: &Path,
    tensors: Vec<(String, OwnedTensor)>,
    metadata: &BTreeMap<String, String>,
) -> Result<Vec<u8>> {
    let views = tensors
        .iter()
        .map(|(name, t)| {
            TensorView::new(t.dtype, t.shape.clone(), &t.data)
                .map(|v| (name.clone(), v))
                .map_err(|e| Error::invalid(path, format!("tensor {name}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let meta: HashMap<String, String> = metadata.clone().into_iter().collect();
    safetensors::serialize(views, Some(meta))
        .map_err(|e| Error::invalid(path, format!("cannot serialize: {e}")))
}

/// Every tensor and the metadata of a safetensors file, to edit.
pub type Contents = (Vec<(String, OwnedTensor)>, BTreeMap<String, String>);

/// Rewrites the safetensors file at `path` after `edit` changed its tensors or metadata
/// (atomically, like every write). Tests use it to make damaged files.
pub fn edit_file(
    path: &Path,
    edit: impl FnOnce(&mut Vec<(String, OwnedTensor)>, &mut BTreeMap<String, String>),
) -> Result<()> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let (mut tensors, mut metadata) = TensorFile::parse(&bytes, path)?.contents();
    edit(&mut tensors, &mut metadata);
    write_tensors(path, tensors, &metadata)
}

/// A parsed safetensors buffer plus the path it came from, for error messages.
pub struct TensorFile<'a> {
    path: PathBuf,
    tensors: SafeTensors<'a>,
    metadata: HashMap<String, String>,
}

impl<'a> TensorFile<'a> {
    /// Parses the header and checks that every offset lies inside `bytes`.
    pub fn parse(bytes: &'a [u8], path: &Path) -> Result<Self> {
        let (_, header) = SafeTensors::read_metadata(bytes)
            .map_err(|e| Error::invalid(path, format!("not a valid safetensors file: {e}")))?;
        let tensors = SafeTensors::deserialize(bytes)
            .map_err(|e| Error::invalid(path, format!("not a valid safetensors file: {e}")))?;
        Ok(Self {
            path: path.to_path_buf(),
            tensors,
            metadata: header.metadata().clone().unwrap_or_default(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn metadata(&self) -> &HashMap<String, String> {
        &self.metadata
    }

    /// A required `__metadata__` entry.
    pub fn meta(&self, key: &str) -> Result<&str> {
        self.metadata
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| self.error(format!("metadata has no `{key}` entry")))
    }

    /// A required `__metadata__` entry parsed as `T`.
    pub fn meta_parsed<T: std::str::FromStr>(&self, key: &str) -> Result<T> {
        let text = self.meta(key)?;
        text.parse().map_err(|_| self.error(format!("metadata `{key}` = `{text}` is not valid")))
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tensors.tensor(name).is_ok()
    }

    pub fn names(&self) -> Vec<&str> {
        self.tensors.names()
    }

    /// The raw view of a tensor that must exist.
    pub fn view(&self, name: &str) -> Result<TensorView<'a>> {
        self.tensors.tensor(name).map_err(|_| self.error(format!("missing tensor `{name}`")))
    }

    /// The bytes of tensor `name`, after checking its dtype and, when given, its shape.
    pub fn bytes(&self, name: &str, dtype: Dtype, shape: Option<&[usize]>) -> Result<&'a [u8]> {
        let view = self.view(name)?;
        if view.dtype() != dtype {
            return Err(self.error(format!(
                "tensor `{name}` has dtype {:?}, expected {dtype:?}",
                view.dtype()
            )));
        }
        if let Some(shape) = shape {
            if view.shape() != shape {
                return Err(self.error(format!(
                    "tensor `{name}` has shape {:?}, expected {shape:?}",
                    view.shape()
                )));
            }
        }
        Ok(view.data())
    }

    pub fn f32(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let bytes = self.bytes(name, Dtype::F32, Some(shape))?;
        Ok(bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect())
    }

    pub fn u8(&self, name: &str, shape: &[usize]) -> Result<Vec<u8>> {
        Ok(self.bytes(name, Dtype::U8, Some(shape))?.to_vec())
    }

    /// Owned copies of every tensor (in name order) and of the metadata.
    pub fn contents(&self) -> Contents {
        let mut names = self.names();
        names.sort_unstable();
        let tensors = names
            .into_iter()
            .map(|n| {
                let v = self.tensors.tensor(n).expect("listed names exist");
                (
                    n.to_string(),
                    OwnedTensor::from_le(v.dtype(), v.shape().to_vec(), v.data().to_vec()),
                )
            })
            .collect();
        (tensors, self.metadata.clone().into_iter().collect())
    }

    /// An error about this file.
    pub fn error(&self, problem: impl Into<String>) -> Error {
        Error::invalid(&self.path, problem)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tensors of every dtype the formats use, named so that dtype and name orders differ.
    fn mixed() -> Vec<(String, OwnedTensor)> {
        vec![
            ("b.indices".into(), OwnedTensor::u16(vec![3], &[1, 2, 3])),
            ("a.values".into(), OwnedTensor::f32(vec![2, 2], &[1.0, -2.0, 3.5, 0.0])),
            ("c.shape".into(), OwnedTensor::i64(vec![2], &[7, 9])),
            ("a.codes".into(), OwnedTensor::u8(vec![5], &[9, 8, 7, 6, 5])),
            ("z.indptr".into(), OwnedTensor::u32(vec![4], &[0, 1, 1, 3])),
            ("half".into(), OwnedTensor::from_le(Dtype::F16, vec![1], [0x00, 0x3c])),
            ("empty".into(), OwnedTensor::f32(vec![0], &[])),
        ]
    }

    #[test]
    fn the_streamed_file_is_what_safetensors_serializes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.safetensors");
        for meta in [BTreeMap::new(), BTreeMap::from([("format".into(), "x".repeat(13))])] {
            write_tensors(&path, mixed(), &meta).unwrap();
            let want = serialize_tensors(&path, mixed(), &meta).unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), want);
            let layout: Vec<TensorLayout> = mixed()
                .into_iter()
                .map(|(name, t)| TensorLayout { name, dtype: t.dtype, shape: t.shape })
                .collect();
            assert_eq!(file_len(&path, &layout, &meta).unwrap(), want.len());
        }
    }

    #[test]
    fn a_tensor_whose_bytes_do_not_fit_its_shape_is_refused_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.safetensors");
        let bad = OwnedTensor { dtype: Dtype::F32, shape: vec![3], data: vec![0; 8] };
        let err = write_tensors(&path, vec![("w".into(), bad)], &BTreeMap::new()).unwrap_err();
        assert!(err.to_string().contains("tensor w: 8 bytes for shape [3]"), "{err}");
        assert!(!path.exists());
    }
}
