//! Names, dtypes and metadata keys of the CSR model format (`format = ticket-csr`), shared by
//! the writer (ticket-export) and the reader (ticket-infer) so the two cannot drift apart.
//! The full specification is docs/FORMAT.md.
//!
//! Per weighted layer `<name>` (one CSR row per output unit or channel; a conv row flattens
//! `[in, kh, kw]` in C order): `<name>.weight.indptr` U32 `[rows + 1]`,
//! `<name>.weight.indices` U16 (cols <= 65,536) or U32 `[nnz]` sorted within each row,
//! `<name>.weight.values` F32 / F16 / BF16 `[nnz]`, `<name>.weight.shape` I64 = the full weight
//! shape (`[out, in]` or `[out, in, kh, kw]`), `<name>.bias` F32 `[rows]`. Version 2 carries
//! the model graph in `graph`; version 1 (MLPs) had `arch` and `activation` instead.
//!
//! Compressed layers (format version 2.1, [`ValueCodec`] and [`IndexCodec`]): `values` I8
//! with `<name>.weight.scales` F32 `[rows]` (`int8`), or U8 packed codebook indices with
//! `<name>.weight.codebook` F32 `[K]` (`k2`..`k8`); `indices` U8 packed gaps when metadata
//! `index_bits` names a width for the layer's kind ([`IndexCodecs`]). The bit layout is in [`crate::packed`].

use safetensors::Dtype;
use std::fmt;
use std::str::FromStr;

pub const FORMAT: &str = "ticket-csr";
/// Major version written.
pub const FORMAT_VERSION: u32 = 2;
/// Written instead of [`FORMAT_VERSION`] when a layer uses a compressed codec: readers of
/// 2.0 accept the major version and then refuse the codec by name (`value_dtype`) or by the
/// U8 dtype of `indices`.
pub const FORMAT_VERSION_COMPRESSED: &str = "2.1";
/// Major versions read: 1 (MLPs, `arch`) and 2 (graphs).
pub const READ_VERSIONS: [u32; 2] = [1, 2];
/// Layers with at most this many columns store their column indices as U16.
pub const MAX_U16_COLS: usize = 1 << 16;

/// `__metadata__` keys.
pub mod meta {
    pub const FORMAT: &str = "format";
    pub const FORMAT_VERSION: &str = "format_version";
    /// The model graph as JSON (version 2).
    pub const GRAPH: &str = "graph";
    /// Names of the weighted layers in order, comma-separated: `fc1,fc2,fc3`.
    pub const LAYERS: &str = "layers";
    /// `f32`, `f16`, `bf16`, `int8` or `k2`..`k8` (a [`super::ValueCodec`]).
    pub const VALUE_DTYPE: &str = "value_dtype";
    /// `3`..`8`: column indices are gaps of this many bits (absent: absolute U16/U32), or one
    /// width per layer kind, `conv=3,linear=5` (a [`super::IndexCodecs`]).
    pub const INDEX_BITS: &str = "index_bits";
    /// Kept weights / dense weights, as a decimal fraction.
    pub const DENSITY: &str = "density";
    /// Dense weight + bias count.
    pub const DENSE_PARAMS: &str = "dense_params";
    /// Kept weights + biases.
    pub const KEPT_PARAMS: &str = "kept_params";
    /// Test accuracy of the source checkpoint (fraction), when known.
    pub const SOURCE_ACCURACY: &str = "source_accuracy";
    /// Data set the source was trained on.
    pub const DATASET: &str = "dataset";
}

pub fn indptr_name(layer: &str) -> String {
    format!("{layer}.weight.indptr")
}

pub fn indices_name(layer: &str) -> String {
    format!("{layer}.weight.indices")
}

pub fn values_name(layer: &str) -> String {
    format!("{layer}.weight.values")
}

/// One f32 scale per row of an `int8` layer.
pub fn scales_name(layer: &str) -> String {
    format!("{layer}.weight.scales")
}

/// The centroids of a `kN` layer.
pub fn codebook_name(layer: &str) -> String {
    format!("{layer}.weight.codebook")
}

pub fn shape_name(layer: &str) -> String {
    format!("{layer}.weight.shape")
}

pub fn bias_name(layer: &str) -> String {
    format!("{layer}.bias")
}

/// The index dtype the format prescribes for a layer with `cols` columns.
pub fn index_dtype(cols: usize) -> Dtype {
    if cols <= MAX_U16_COLS {
        Dtype::U16
    } else {
        Dtype::U32
    }
}

/// Storage type of the nonzero values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ValueDtype {
    #[default]
    F32,
    F16,
    Bf16,
}

impl ValueDtype {
    pub fn dtype(self) -> Dtype {
        match self {
            ValueDtype::F32 => Dtype::F32,
            ValueDtype::F16 => Dtype::F16,
            ValueDtype::Bf16 => Dtype::BF16,
        }
    }

    pub fn bytes(self) -> usize {
        match self {
            ValueDtype::F32 => 4,
            ValueDtype::F16 | ValueDtype::Bf16 => 2,
        }
    }
}

impl fmt::Display for ValueDtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ValueDtype::F32 => "f32",
            ValueDtype::F16 => "f16",
            ValueDtype::Bf16 => "bf16",
        })
    }
}

impl FromStr for ValueDtype {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" => Ok(ValueDtype::F32),
            "f16" => Ok(ValueDtype::F16),
            "bf16" => Ok(ValueDtype::Bf16),
            other => Err(format!("unknown value dtype `{other}` (expected f32, f16 or bf16)")),
        }
    }
}

/// How the nonzero values are stored: a float dtype, int8 with one scale per row, or `bits`-bit
/// indices into a per-layer codebook of at most `2^bits` f32 centroids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueCodec {
    Float(ValueDtype),
    Int8,
    Codebook { bits: u32 },
}

/// Codebook index widths: `k2`..`k8`.
pub const CODEBOOK_BITS: std::ops::RangeInclusive<u32> = 2..=8;
/// Gap widths of `index_bits`.
pub const GAP_BITS: std::ops::RangeInclusive<u32> = 3..=8;

impl Default for ValueCodec {
    fn default() -> Self {
        ValueCodec::Float(ValueDtype::F32)
    }
}

impl ValueCodec {
    /// Whether readers of format 2.0 know this codec.
    pub fn is_float(self) -> bool {
        matches!(self, ValueCodec::Float(_))
    }

    /// Bits one stored value takes in the `values` tensor.
    pub fn value_bits(self) -> u32 {
        match self {
            ValueCodec::Float(d) => 8 * d.bytes() as u32,
            ValueCodec::Int8 => 8,
            ValueCodec::Codebook { bits } => bits,
        }
    }
}

impl fmt::Display for ValueCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueCodec::Float(d) => d.fmt(f),
            ValueCodec::Int8 => f.write_str("int8"),
            ValueCodec::Codebook { bits } => write!(f, "k{bits}"),
        }
    }
}

impl FromStr for ValueCodec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s == "int8" {
            return Ok(ValueCodec::Int8);
        }
        if let Some(bits) = s.strip_prefix('k').and_then(|b| b.parse::<u32>().ok()) {
            if CODEBOOK_BITS.contains(&bits) {
                return Ok(ValueCodec::Codebook { bits });
            }
        }
        s.parse().map(ValueCodec::Float).map_err(|_| {
            format!("unknown value dtype `{s}` (expected f32, f16, bf16, int8 or k2..k8)")
        })
    }
}

/// One setting per weighted layer kind: a layer whose full weight shape has 4 dimensions is
/// `conv`, any other `linear`. [`ValueCodecs`] and [`IndexCodecs`] are the two.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PerKind<T> {
    pub conv: T,
    pub linear: T,
}

impl<T: Copy + PartialEq> PerKind<T> {
    /// `value` for every layer.
    pub fn all(value: T) -> Self {
        PerKind { conv: value, linear: value }
    }

    /// The setting of a layer whose full weight shape has `rank` dimensions (4 for conv).
    pub fn for_rank(self, rank: usize) -> T {
        if rank == 4 {
            self.conv
        } else {
            self.linear
        }
    }

    /// The one setting of every layer, when there is one.
    pub fn single(self) -> Option<T> {
        (self.conv == self.linear).then_some(self.linear)
    }
}

impl<T: Copy + PartialEq> From<T> for PerKind<T> {
    fn from(value: T) -> Self {
        PerKind::all(value)
    }
}

impl<T: Copy + PartialEq + fmt::Display> fmt::Display for PerKind<T> {
    /// `k5` / `gap5` when every kind shares a setting, else `conv=k8,linear=k5`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.single() {
            Some(value) => value.fmt(f),
            None => write!(f, "conv={},linear={}", self.conv, self.linear),
        }
    }
}

/// The value codec of each weighted layer kind: one for every layer (`k5`) or one per kind
/// (`conv=k8,linear=k5`, Deep Compression's AlexNet setting; a kind not named stays f32). Its
/// text is what `--dtype` takes and metadata `value_dtype` records.
pub type ValueCodecs = PerKind<ValueCodec>;

impl ValueCodecs {
    /// Whether readers of format 2.0 know every codec.
    pub fn is_float(self) -> bool {
        self.conv.is_float() && self.linear.is_float()
    }
}

impl FromStr for ValueCodecs {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (conv, linear) = parse_per_kind(s, ValueCodec::default(), |codec| codec.parse())?;
        Ok(ValueCodecs { conv, linear })
    }
}

/// `one` for both layer kinds, or `conv=<one>,linear=<one>` (a kind not named is `default`),
/// the text of `--dtype`, `--index-bits` and their metadata entries. Each part is parsed by
/// `parse`; an unknown or repeated kind is refused. Returns (conv, linear).
fn parse_per_kind<T: Copy>(
    s: &str,
    default: T,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<(T, T), String> {
    if !s.contains('=') {
        let one = parse(s.trim())?;
        return Ok((one, one));
    }
    let (mut conv, mut linear) = (default, default);
    let mut seen = Vec::new();
    for part in s.split(',').map(str::trim) {
        let (kind, value) =
            part.split_once('=').ok_or_else(|| format!("`{part}` in `{s}` is not KIND=VALUE"))?;
        let kind = kind.trim();
        let value = parse(value.trim()).map_err(|e| format!("`{part}`: {e}"))?;
        let slot = match kind {
            "conv" => &mut conv,
            "linear" => &mut linear,
            other => {
                return Err(format!(
                    "`{part}`: unknown layer kind `{other}` (expected conv or linear)"
                ))
            }
        };
        if seen.contains(&kind) {
            return Err(format!("`{s}` names layer kind `{kind}` twice"));
        }
        seen.push(kind);
        *slot = value;
    }
    Ok((conv, linear))
}

/// How column indices are stored: absolute U16/U32, or gaps of `bits` bits with fillers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum IndexCodec {
    #[default]
    Absolute,
    Gaps {
        bits: u32,
    },
}

impl IndexCodec {
    /// The gap codec of one `index_bits` width, `3`..`8`.
    fn parse_bits(text: &str) -> Result<Self, String> {
        match text.parse::<u32>() {
            Ok(bits) if GAP_BITS.contains(&bits) => Ok(IndexCodec::Gaps { bits }),
            _ => Err(format!("`{text}` is not 3..8")),
        }
    }
}

impl fmt::Display for IndexCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IndexCodec::Absolute => f.write_str("absolute"),
            IndexCodec::Gaps { bits } => write!(f, "gap{bits}"),
        }
    }
}

/// The index codec of each weighted layer kind, parallel to [`ValueCodecs`]: one for every
/// layer (`5`) or one per kind (`conv=3,linear=5`: conv layers at 35-84% density have gaps
/// of 1-3, which 3 or 4 bits hold; a kind not named keeps absolute indices). Its text is what
/// `--index-bits` takes and metadata `index_bits` records.
pub type IndexCodecs = PerKind<IndexCodec>;

impl IndexCodecs {
    /// Whether every layer stores absolute indices (what format 2.0 readers know).
    pub fn is_absolute(self) -> bool {
        self == IndexCodecs::default()
    }

    /// The codecs named by metadata `index_bits` (`None`: the entry is absent, every layer
    /// absolute).
    pub fn from_meta(index_bits: Option<&str>) -> Result<Self, String> {
        let Some(text) = index_bits else { return Ok(IndexCodecs::default()) };
        text.parse().map_err(|e| match text.contains('=') {
            true => format!("metadata `{}`: {e}", meta::INDEX_BITS),
            false => format!("metadata `{}` = {e}", meta::INDEX_BITS),
        })
    }

    /// The text of metadata `index_bits`: `5`, `conv=3,linear=5` or `conv=4` (linear
    /// absolute); `None` when every layer is absolute (the entry is left out).
    pub fn to_meta(self) -> Option<String> {
        let bits = |codec| match codec {
            IndexCodec::Absolute => None,
            IndexCodec::Gaps { bits } => Some(bits),
        };
        match (bits(self.conv), bits(self.linear)) {
            (None, None) => None,
            (Some(c), Some(l)) if c == l => Some(c.to_string()),
            (Some(c), Some(l)) => Some(format!("conv={c},linear={l}")),
            (Some(c), None) => Some(format!("conv={c}")),
            (None, Some(l)) => Some(format!("linear={l}")),
        }
    }
}

impl FromStr for IndexCodecs {
    type Err = String;

    /// `N` (3..8) for every layer, or `conv=N,linear=M` (a kind not named stays absolute).
    fn from_str(s: &str) -> Result<Self, String> {
        let (conv, linear) = parse_per_kind(s, IndexCodec::Absolute, IndexCodec::parse_bits)?;
        Ok(IndexCodecs { conv, linear })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_dtype_switches_past_u16_range() {
        assert_eq!(index_dtype(784), Dtype::U16);
        assert_eq!(index_dtype(65_536), Dtype::U16);
        assert_eq!(index_dtype(65_537), Dtype::U32);
    }

    #[test]
    fn value_dtype_round_trips_through_text() {
        for d in [ValueDtype::F32, ValueDtype::F16, ValueDtype::Bf16] {
            assert_eq!(d.to_string().parse::<ValueDtype>().unwrap(), d);
        }
        assert!("f64".parse::<ValueDtype>().is_err());
    }

    #[test]
    fn value_codec_names() {
        for name in ["f32", "f16", "bf16", "int8", "k2", "k6", "k8"] {
            assert_eq!(name.parse::<ValueCodec>().unwrap().to_string(), name);
        }
        for bad in ["k1", "k9", "int4", "k", "f64"] {
            assert!(bad.parse::<ValueCodec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn index_codecs_read_one_width_or_one_per_kind() {
        let gaps = |bits| IndexCodec::Gaps { bits };
        assert_eq!(IndexCodecs::from_meta(Some("5")), Ok(IndexCodecs::all(gaps(5))));
        assert_eq!(IndexCodecs::from_meta(None), Ok(IndexCodecs::default()));
        let per_kind = IndexCodecs { conv: gaps(3), linear: gaps(5) };
        assert_eq!(IndexCodecs::from_meta(Some("conv=3,linear=5")), Ok(per_kind));
        assert_eq!(IndexCodecs::from_meta(Some(" linear=5 , conv=3")), Ok(per_kind));
        let conv_only = IndexCodecs { conv: gaps(4), linear: IndexCodec::Absolute };
        assert_eq!(IndexCodecs::from_meta(Some("conv=4")), Ok(conv_only));
        for codecs in [per_kind, conv_only, IndexCodecs::all(gaps(8)), IndexCodecs::default()] {
            assert_eq!(IndexCodecs::from_meta(codecs.to_meta().as_deref()), Ok(codecs));
        }
        assert_eq!(per_kind.to_string(), "conv=gap3,linear=gap5");
        assert_eq!(per_kind.for_rank(4), gaps(3));
        assert_eq!(per_kind.for_rank(2), gaps(5));
        let err = |text| IndexCodecs::from_meta(Some(text)).unwrap_err();
        assert_eq!(err("9"), "metadata `index_bits` = `9` is not 3..8");
        assert_eq!(err("conv=9"), "metadata `index_bits`: `conv=9`: `9` is not 3..8");
        assert!(err("pool=4").contains("unknown layer kind `pool`"), "{}", err("pool=4"));
        assert!(err("conv=3,conv=4").contains("names layer kind `conv` twice"));
        assert!(err("conv").contains("not 3..8"));
    }

    #[test]
    fn value_codecs_read_one_codec_or_one_per_kind() {
        let per_kind: ValueCodecs = "conv=k8,linear=k5".parse().unwrap();
        assert_eq!(per_kind.conv, ValueCodec::Codebook { bits: 8 });
        assert_eq!(per_kind.to_string(), "conv=k8,linear=k5");
        let conv_only: ValueCodecs = "conv=f16".parse().unwrap();
        assert_eq!(conv_only.linear, ValueCodec::default());
        assert!("pool=k4".parse::<ValueCodecs>().unwrap_err().contains("unknown layer kind"));
        assert!("conv=k4,conv=k5".parse::<ValueCodecs>().unwrap_err().contains("twice"));
    }
}
