//! The IDX format of MNIST and Fashion-MNIST: a big-endian header (two zero bytes, a dtype byte,
//! the number of dimensions, then one u32 per dimension) followed by the raw data. Files may be
//! gzip-compressed. The header is checked against the data length before anything is trusted,
//! gzip input is never inflated past the size the header promises, and memory grows with the
//! data found, not with what the header promises.

use crate::{Error, Result};
use flate2::read::MultiGzDecoder;
use std::io::Read;
use std::path::Path;

/// The only IDX element type MNIST-style data sets use.
const DTYPE_U8: u8 = 0x08;
/// Refuse headers that promise more than this many bytes (a corrupt header, not a data set).
const MAX_BYTES: usize = 1 << 32;
/// Memory reserved for the data before any of it has been read: a header alone must not make
/// the reader allocate gigabytes; beyond this the buffer grows with the data actually found.
const INITIAL_RESERVE: usize = 1 << 24;

/// An n-dimensional array of unsigned bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// Reads an IDX file, raw or gzip-compressed (detected from its first bytes, not its name).
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_idx_bytes(&bytes, path)
}

/// [`read_idx`] on the bytes of a file already in memory; `path` only names it in errors.
pub fn parse_idx_bytes(bytes: &[u8], path: &Path) -> Result<IdxArray> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        parse_idx(MultiGzDecoder::new(bytes), path)
    } else {
        parse_idx(bytes, path)
    }
}

/// Parses IDX data from `reader`; `path` only names the source in errors.
pub fn parse_idx(mut reader: impl Read, path: &Path) -> Result<IdxArray> {
    let mut magic = [0u8; 4];
    read_exact(&mut reader, &mut magic, path, "the 4-byte magic number")?;
    if magic[0] != 0 || magic[1] != 0 {
        return Err(Error::invalid(
            path,
            format!(
                "not an IDX file: magic number 0x{:08x} does not start with two zero bytes",
                u32::from_be_bytes(magic)
            ),
        ));
    }
    if magic[2] != DTYPE_U8 {
        return Err(Error::invalid(
            path,
            format!(
                "IDX element type 0x{:02x} is not supported (only 0x08, unsigned bytes)",
                magic[2]
            ),
        ));
    }
    let ndim = magic[3] as usize;
    if ndim == 0 {
        return Err(Error::invalid(path, "IDX header declares zero dimensions"));
    }
    let mut dims = Vec::with_capacity(ndim);
    for d in 0..ndim {
        let mut word = [0u8; 4];
        read_exact(&mut reader, &mut word, path, &format!("dimension {d} of the header"))?;
        dims.push(u32::from_be_bytes(word) as usize);
    }
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= MAX_BYTES)
        .ok_or_else(|| {
            Error::invalid(path, format!("IDX dimensions {dims:?} are implausibly large"))
        })?;

    let mut data = Vec::with_capacity(expected.min(INITIAL_RESERVE));
    let got = reader
        .by_ref()
        .take(expected as u64)
        .read_to_end(&mut data)
        .map_err(|e| decode_error(path, e))?;
    if got < expected {
        return Err(Error::invalid(
            path,
            format!("truncated: the header {dims:?} promises {expected} data bytes, found {got}"),
        ));
    }
    let mut extra = [0u8; 1];
    match reader.read(&mut extra) {
        Ok(0) => Ok(IdxArray { dims, data }),
        Ok(_) => Err(Error::invalid(
            path,
            format!("more data than the header {dims:?} declares ({expected} bytes)"),
        )),
        Err(e) => Err(decode_error(path, e)),
    }
}

fn read_exact(reader: &mut impl Read, buf: &mut [u8], path: &Path, what: &str) -> Result<()> {
    reader.read_exact(buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => {
            Error::invalid(path, format!("truncated: the file ends inside {what}"))
        }
        _ => decode_error(path, e),
    })
}

fn decode_error(path: &Path, e: std::io::Error) -> Error {
    Error::invalid(path, format!("cannot decode (corrupt gzip stream?): {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut out = vec![0, 0, DTYPE_U8, dims.len() as u8];
        for d in dims {
            out.extend_from_slice(&d.to_be_bytes());
        }
        out.extend_from_slice(data);
        out
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    fn read_bytes(bytes: &[u8]) -> Result<IdxArray> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x-idx3-ubyte");
        std::fs::write(&path, bytes).unwrap();
        read_idx(&path)
    }

    #[test]
    fn reads_raw_and_gzip_identically() {
        let data: Vec<u8> = (0..24).collect();
        let raw = idx(&[2, 3, 4], &data);
        let a = read_bytes(&raw).unwrap();
        let b = read_bytes(&gz(&raw)).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.dims, [2, 3, 4]);
        assert_eq!(a.data, data);
    }

    #[test]
    fn truncated_at_every_offset_is_an_error() {
        let raw = idx(&[2, 3, 4], &[7; 24]);
        for cut in 0..raw.len() {
            let err = read_bytes(&raw[..cut]).unwrap_err().to_string();
            assert!(err.contains("x-idx3-ubyte") && err.contains("truncated"), "cut {cut}: {err}");
        }
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        let mut raw = idx(&[2], &[1, 2]);
        raw.push(3);
        assert!(read_bytes(&raw).unwrap_err().to_string().contains("more data"));
    }

    #[test]
    fn wrong_magic_and_dtype_are_errors() {
        let mut raw = idx(&[1], &[1]);
        raw[0] = 0x50;
        assert!(read_bytes(&raw).unwrap_err().to_string().contains("not an IDX file"));
        let mut raw = idx(&[1], &[1]);
        raw[2] = 0x0d;
        assert!(read_bytes(&raw).unwrap_err().to_string().contains("element type 0x0d"));
    }

    #[test]
    fn gzip_garbage_is_an_error() {
        let mut bytes = gz(&idx(&[100], &[9; 100]));
        let n = bytes.len();
        for b in &mut bytes[10..n - 8] {
            *b ^= 0x5a;
        }
        let err = read_bytes(&bytes).unwrap_err().to_string();
        assert!(err.contains("x-idx3-ubyte"), "{err}");
    }

    #[test]
    fn absurd_dimensions_are_refused_before_allocating() {
        let raw = idx(&[u32::MAX, u32::MAX, 16], &[]);
        assert!(read_bytes(&raw).unwrap_err().to_string().contains("implausibly large"));
    }
}
