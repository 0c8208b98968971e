//! ONNX files read through a memory map, so that the weights are never held twice: prost
//! decodes `raw_data` as slices of the mapping ([`prost::bytes::Bytes`]), and once a weight
//! is converted to f32 its pages are given back ([`release`]). A 244 MB AlexNet then peaks
//! near the network plus one layer instead of file + protobuf copy + network.

use memmap2::Mmap;
use prost::bytes::Bytes;
use std::path::Path;

/// The bytes of the file at `path`, mapped read-only.
pub fn map(path: &Path) -> std::io::Result<Bytes> {
    let file = std::fs::File::open(path)?;
    // SAFETY: the mapping is read-only and every byte is validated as it is decoded; a file
    // changed underneath while importing gives wrong weights or a decode error, not
    // undefined behaviour in safe code reading a `&[u8]` (the same contract as reading a
    // file that changes between two reads).
    let map = unsafe { Mmap::map(&file)? };
    Ok(Bytes::from_owner(map))
}

/// Drops the resident pages lying wholly inside `bytes`, a slice of a [`map`]ping that has
/// been read: the kernel reads them from the file again if they are touched, so this only
/// lowers the resident set. Must not be called on heap memory (which it would zero).
pub fn release(bytes: &[u8]) {
    // SAFETY: sysconf has no preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    let start = (bytes.as_ptr() as usize).next_multiple_of(page);
    let end = (bytes.as_ptr() as usize + bytes.len()) / page * page;
    if end > start {
        // SAFETY: `start..end` lies inside a live read-only file mapping (the caller's
        // contract); MADV_DONTNEED on it drops clean page-cache pages, which later reads
        // fault back in from the file unchanged. A failure only leaves the pages resident.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
    }
}
