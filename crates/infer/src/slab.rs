//! Arrays of a model: borrowed straight from the memory-mapped file (or the buffer the file
//! was read into) when their bytes are aligned for their type (zero-copy), or owned when they
//! had to be copied or decoded.

use memmap2::Mmap;
use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;

/// The bytes of a model file that arrays may borrow from.
pub(crate) enum Backing {
    /// The file mapped into memory ([`crate::SparseModel::load`]).
    Mapped(Mmap),
    /// The file's bytes handed over in a buffer ([`crate::SparseModel::from_bytes`]).
    Read(Vec<u8>),
}

impl Deref for Backing {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Backing::Mapped(map) => map,
            Backing::Read(bytes) => bytes,
        }
    }
}

/// An element type that can be read from little-endian file bytes.
pub(crate) trait Element: bytemuck::Pod {
    fn from_le(bytes: &[u8]) -> Self;
}

macro_rules! element {
    ($($t:ty),*) => {$(
        impl Element for $t {
            fn from_le(bytes: &[u8]) -> Self {
                <$t>::from_le_bytes(bytes.try_into().expect("chunk of the element's size"))
            }
        }
    )*};
}
element!(u8, i8, u16, u32, f32);

/// A `[T]` that lives in the file's bytes or in its own allocation.
pub(crate) enum Slab<T> {
    Mapped { map: Arc<Backing>, offset: usize, len: usize, _type: PhantomData<T> },
    Owned(Vec<T>),
}

impl<T: Element> Slab<T> {
    /// The elements stored in `bytes`, a subslice of `map`: borrowed when aligned (and the
    /// machine is little-endian like the file), copied otherwise.
    pub(crate) fn from_file(map: &Arc<Backing>, bytes: &[u8]) -> Self {
        let start = bytes.as_ptr() as usize;
        let base = map.as_ptr() as usize;
        debug_assert!(start >= base && start + bytes.len() <= base + map.len());
        if cfg!(target_endian = "little") && bytemuck::try_cast_slice::<u8, T>(bytes).is_ok() {
            return Slab::Mapped {
                map: Arc::clone(map),
                offset: start - base,
                len: bytes.len() / size_of::<T>(),
                _type: PhantomData,
            };
        }
        Slab::Owned(bytes.chunks_exact(size_of::<T>()).map(T::from_le).collect())
    }
}

impl<T> Slab<T> {
    pub(crate) fn is_mapped(&self) -> bool {
        matches!(self, Slab::Mapped { .. })
    }
}

impl<T: bytemuck::Pod> Slab<T> {
    /// Bytes the elements occupy in memory.
    pub(crate) fn bytes(&self) -> usize {
        self.len() * size_of::<T>()
    }
}

impl<T: bytemuck::Pod> Deref for Slab<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        match self {
            // The range was a subslice of the map and its alignment was checked when the slab
            // was made; the map never moves, so the cast cannot fail.
            Slab::Mapped { map, offset, len, .. } => {
                bytemuck::cast_slice(&map[*offset..*offset + len * size_of::<T>()])
            }
            Slab::Owned(v) => v,
        }
    }
}

impl<T> From<Vec<T>> for Slab<T> {
    fn from(v: Vec<T>) -> Self {
        Slab::Owned(v)
    }
}
