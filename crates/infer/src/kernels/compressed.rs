//! Products over compressed layers, decoded on the fly from the file's own bytes: values as
//! f32, int8 with one scale per row, or packed codebook indices (looked up in a table of
//! `2^N` centroids, padded to 256 so that an index never needs a bounds check); columns as
//! absolute U16/U32 indices or packed gaps with fillers (`ticket_core::packed`). Nothing is
//! expanded ahead of time: a few rows at a time (about [`CHUNK`] nonzeros, 4 KB, in L1) are
//! decoded into a per-thread buffer right before the f32 CSR row kernel of the instruction
//! set runs over them, on every tile of the batch in turn (with several tiles, chunks of up
//! to [`TILED_CHUNK`] nonzeros: the decoding is paid once per batch, not once per tile).
//! With AVX2 the decoders take eight fields per register (see [`avx2`]: shuffle-and-shift
//! unpacking, permute or gather lookups, prefix-summed gaps); elsewhere sequential 64-bit bit
//! readers decode one field at a time. Absolute indices are not
//! copied: the row kernel reads them from the file.
//!
//! Since that row kernel is the one the f32 CSR layers use (`portable::spmm_rows`,
//! `avx2::spmm_rows`), a compressed layer gives bit for bit the result of its decoded f32 CSR
//! matrix. Conv layers decode one output channel's row and run the f32 direct convolution on
//! it (see [`CompressedWeights::conv2d`]).

use super::conv2d::Conv2d;
use super::sliced::ValueKind;
use super::{Activation, Image, Isa, TiledInput, Window};
use crate::csr::{ColIndex, CsrRef};
use crate::slab::Slab;
use std::cell::RefCell;
use std::ops::Range;
use ticket_core::packed::filler;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512;

/// Nonzeros decoded per call of the row kernel over one tile (rows are not split).
pub(crate) const CHUNK: usize = 512;
/// Nonzeros decoded at once when the rows then run over several tiles: 64 KB of columns and
/// values, in the second-level cache, which covers a whole LeNet-300-100 layer, so each
/// tile's input is swept once per layer as with f32 weights.
pub(crate) const TILED_CHUNK: usize = 8192;
/// Entries of the row buffer past the decoded rows, which the vector decoders may write.
const SLACK: usize = 16;

/// Bytes of one thread's row buffer for a layer whose longest row has `longest` nonzeros,
/// decoded `chunk` nonzeros at a time: columns and values (4 bytes each) of a chunk plus one
/// row plus [`SLACK`], and the chunk's ptr.
pub(crate) fn row_buffer_bytes(longest: usize, chunk: usize) -> usize {
    8 * (chunk + longest + SLACK) + 4 * (chunk + 2)
}

/// How a compressed layer stores its values.
pub(crate) enum ValueStore {
    F32(Slab<f32>),
    /// `value = scales[row] * q`.
    Int8 {
        q: Slab<i8>,
        scales: Slab<f32>,
    },
    /// `value = table[code]`, codes packed `bits` to a field.
    Codebook {
        bits: u32,
        codes: Slab<u8>,
        table: Box<[f32; 256]>,
    },
}

/// How a compressed layer stores its column indices.
pub(crate) enum ColumnStore {
    U16(Slab<u16>),
    U32(Slab<u32>),
    /// `starts[r]` is the first gap field of row `r`, and bit `i` of `heads` is set when
    /// field `i` is the first of a row (both derived once when the stream was checked:
    /// `rows + 1` u32 and one bit a field, the only arrays not in the file).
    Gaps {
        bits: u32,
        stream: Slab<u8>,
        starts: Vec<u32>,
        heads: Vec<u8>,
    },
}

impl ColumnStore {
    /// Gap columns from a checked stream and its row starts (`GapRows::starts`).
    pub(crate) fn gaps(bits: u32, stream: Slab<u8>, starts: Vec<u32>) -> ColumnStore {
        let fields = starts.last().map_or(0, |&s| s as usize);
        // Room for the 4-byte reads of a last group of 16 fields past the end.
        let mut heads = vec![0u8; (fields + 16) / 8 + 4];
        for &s in &starts[..starts.len().saturating_sub(1)] {
            heads[s as usize / 8] |= 1 << (s % 8);
        }
        ColumnStore::Gaps { bits, stream, starts, heads }
    }
}

/// A validated compressed weight: every codebook index below the codebook's length, every
/// decoded column below `cols`, `indptr` spanning the values and the gap rows.
pub(crate) struct CompressedWeights {
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) values: ValueStore,
    pub(crate) columns: ColumnStore,
}

/// A sequential reader of `bits`-bit fields, least significant bit first, from field `at`.
#[derive(Clone, Copy)]
struct BitReader<'a> {
    bytes: &'a [u8],
    bit: usize,
    bits: u32,
}

impl<'a> BitReader<'a> {
    #[inline(always)]
    fn new(bytes: &'a [u8], bits: u32, at: usize) -> Self {
        BitReader { bytes, bit: at * bits as usize, bits }
    }

    /// The field at the reader (the stream was checked to hold it).
    #[inline(always)]
    fn peek(&self) -> u32 {
        let byte = self.bit >> 3;
        let word = match self.bytes.get(byte..byte + 8) {
            Some(b) => u64::from_le_bytes(b.try_into().expect("8 bytes")),
            None => self.bytes[byte..].iter().rev().fold(0u64, |w, &b| (w << 8) | b as u64),
        };
        (word >> (self.bit & 7)) as u32 & ((1 << self.bits) - 1)
    }

    /// Moves on by `n` fields, `n` 0 or 1: a mask rather than a multiply, since this add is
    /// the loop-carried chain of the value stream.
    #[inline(always)]
    fn skip(&mut self, n: usize) {
        debug_assert!(n <= 1);
        self.bit += self.bits as usize & n.wrapping_neg();
    }
}

/// The values of consecutive nonzeros from `k`, read in order.
trait Values: Copy {
    type Cursor;
    fn at(&self, k: usize) -> Self::Cursor;
    /// The value of the cursor's nonzero (in row `row`).
    fn get(&self, cursor: &Self::Cursor, row: usize) -> f32;
    /// Moves the cursor on by `n` (0 or 1) nonzeros.
    fn skip(&self, cursor: &mut Self::Cursor, n: usize);
}

#[derive(Clone, Copy)]
struct F32Values<'a>(&'a [f32]);

impl Values for F32Values<'_> {
    type Cursor = usize;
    fn at(&self, k: usize) -> usize {
        k
    }
    #[inline(always)]
    fn get(&self, &k: &usize, _: usize) -> f32 {
        self.0[k]
    }
    #[inline(always)]
    fn skip(&self, k: &mut usize, n: usize) {
        *k += n;
    }
}

#[derive(Clone, Copy)]
struct Int8Values<'a> {
    q: &'a [i8],
    scales: &'a [f32],
}

impl Values for Int8Values<'_> {
    type Cursor = usize;
    fn at(&self, k: usize) -> usize {
        k
    }
    #[inline(always)]
    fn get(&self, &k: &usize, row: usize) -> f32 {
        self.scales[row] * self.q[k] as f32
    }
    #[inline(always)]
    fn skip(&self, k: &mut usize, n: usize) {
        *k += n;
    }
}

#[derive(Clone, Copy)]
struct CodebookValues<'a> {
    codes: &'a [u8],
    bits: u32,
    table: &'a [f32; 256],
}

impl<'a> Values for CodebookValues<'a> {
    type Cursor = BitReader<'a>;
    fn at(&self, k: usize) -> BitReader<'a> {
        BitReader::new(self.codes, self.bits, k)
    }
    #[inline(always)]
    fn get(&self, reader: &BitReader<'a>, _: usize) -> f32 {
        // A field is below 2^bits <= 256: the lookup needs no check.
        self.table[reader.peek() as u8 as usize]
    }
    #[inline(always)]
    fn skip(&self, reader: &mut BitReader<'a>, n: usize) {
        reader.skip(n);
    }
}

/// How a vector decoder unpacks a register of consecutive fields, for the loop they share.
#[cfg(target_arch = "x86_64")]
trait Unpacker: Copy {
    /// Fields a register holds: `LANES` fields of `bits` bits span `LANES * bits / 8` bytes.
    const LANES: usize;
    type Fields: Copy;
    /// A register of `LANES` f32 values.
    type Values: Copy;
    /// # Safety
    /// The decoder's instruction set available; `1 <= bits <= 8`, `offset < 8`.
    unsafe fn new(bits: u32, offset: u32) -> Self;
    /// Stores a whole register at `p`.
    ///
    /// # Safety
    /// The decoder's instruction set available; `LANES` floats from `p` writable.
    unsafe fn store(p: *mut f32, v: Self::Values);
    /// The `LANES` fields whose bytes start at `bytes[byte]` (zeros past the end of `bytes`).
    ///
    /// # Safety
    /// The decoder's instruction set available.
    unsafe fn fields(&self, bytes: &[u8], byte: usize) -> Self::Fields;
}

/// Calls `f(fields, k, valid)` for the registers of fields `first..first + n` of a stream of
/// `bits`-bit fields, in order: `k` is the register's first field counted from `first`,
/// `valid` how many of its lanes are in the range (`LANES` but in the last).
///
/// # Safety
/// `U`'s instruction set available; `1 <= bits <= 8`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn each_register<U: Unpacker>(
    bytes: &[u8],
    bits: u32,
    (first, n): (usize, usize),
    mut f: impl FnMut(U::Fields, usize, usize),
) {
    // SAFETY: the caller's contract.
    unsafe {
        let unpack = U::new(bits, (first * bits as usize % 8) as u32);
        let mut byte = first * bits as usize / 8;
        let mut k = 0;
        while k < n {
            f(unpack.fields(bytes, byte), k, (n - k).min(U::LANES));
            byte += U::LANES / 8 * bits as usize;
            k += U::LANES;
        }
    }
}

/// Values `first..first + n` of `book`'s stream into `out[..n]`, each register of codes
/// turned into centroids by `lookup` (whole registers are stored).
///
/// # Safety
/// `U`'s instruction set available; every field of the range is in the stream (checked by
/// the loader); `lookup` sound for any codes below `2^bits`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn lookup_values<U: Unpacker>(
    book: CodebookValues,
    (first, n): (usize, usize),
    out: &mut [f32],
    lookup: impl Fn(U::Fields) -> U::Values,
) {
    assert!(out.len() >= n.next_multiple_of(U::LANES), "codebook values: out too short");
    // SAFETY: the caller's contract; each store of LANES floats starts below n, and out
    // holds n rounded up to LANES.
    unsafe {
        each_register::<U>(book.codes, book.bits, (first, n), |codes, k, _| {
            U::store(out.as_mut_ptr().add(k), lookup(codes))
        })
    }
}

/// Calls `f(column, real)` for each entry of row `r`, in order: `real` is 1 for a nonzero at
/// `column` and 0 for a gap filler (whose `column` means nothing). Gap rows are decoded
/// without branches, since fillers fall at random and a mispredicted branch per nonzero
/// would cost more than the decoding.
trait Columns: Copy {
    fn for_each(&self, indptr: &[u32], r: usize, f: impl FnMut(usize, usize));
}

#[derive(Clone, Copy)]
struct Absolute<'a, I>(&'a [I]);

impl<I: ColIndex> Columns for Absolute<'_, I> {
    #[inline(always)]
    fn for_each(&self, indptr: &[u32], r: usize, mut f: impl FnMut(usize, usize)) {
        for c in &self.0[indptr[r] as usize..indptr[r + 1] as usize] {
            f(c.to_usize(), 1);
        }
    }
}

#[derive(Clone, Copy)]
struct Gaps<'a> {
    stream: &'a [u8],
    bits: u32,
    starts: &'a [u32],
}

impl Columns for Gaps<'_> {
    #[inline(always)]
    fn for_each(&self, _: &[u32], r: usize, mut f: impl FnMut(usize, usize)) {
        let fill = filler(self.bits) as usize;
        let (start, end) = (self.starts[r] as usize, self.starts[r + 1] as usize);
        let mut reader = BitReader::new(self.stream, self.bits, start);
        let mut next = 0usize;
        for _ in start..end {
            let field = reader.peek() as usize;
            reader.skip(1);
            let real = (field != fill) as usize;
            let col = next + field;
            f(col, real);
            // An entry moves past its column; a filler moves on by `fill` (= col - next).
            next = col + real;
        }
    }
}

/// Runs `$body` with `$v` and `$c` bound to the layer's value and column decoders.
macro_rules! with_streams {
    ($w:expr, |$v:ident, $c:ident| $body:expr) => {{
        let w = $w;
        macro_rules! columns {
            ($vv:expr) => {{
                let $v = $vv;
                match &w.columns {
                    ColumnStore::U16(i) => {
                        let $c = Absolute(&i[..]);
                        $body
                    }
                    ColumnStore::U32(i) => {
                        let $c = Absolute(&i[..]);
                        $body
                    }
                    ColumnStore::Gaps { bits, stream, starts, .. } => {
                        let $c = Gaps { stream, bits: *bits, starts };
                        $body
                    }
                }
            }};
        }
        match &w.values {
            ValueStore::F32(v) => columns!(F32Values(v)),
            ValueStore::Int8 { q, scales } => columns!(Int8Values { q, scales }),
            ValueStore::Codebook { bits, codes, table } => {
                columns!(CodebookValues { codes, bits: *bits, table })
            }
        }
    }};
}

/// Decoded rows: their CSR `ptr` (from 0), columns and values (`cols` and `vals` only grow;
/// the first `ptr.last()` entries are the rows').
#[derive(Debug, Default)]
pub(crate) struct RowBuffer {
    ptr: Vec<u32>,
    cols: Vec<u32>,
    vals: Vec<f32>,
}

impl RowBuffer {
    /// The decoded rows as a `rows x cols` f32 CSR matrix.
    pub(crate) fn csr(&self, cols: usize) -> CsrRef<'_, u32> {
        let rows = self.ptr.len().saturating_sub(1);
        let n = self.ptr.last().map_or(0, |&n| n as usize);
        CsrRef::new_prechecked(rows, cols, &self.ptr, &self.cols[..n], &self.vals[..n])
    }
}

thread_local! {
    /// Each thread's decoded rows.
    static ROWS: RefCell<RowBuffer> = RefCell::new(RowBuffer::default());
}

impl CompressedWeights {
    /// Bytes of the arrays the forward pass reads (the file's bytes, plus the padded
    /// codebook table and the gap row starts).
    pub(crate) fn bytes(&self) -> usize {
        let values = match &self.values {
            ValueStore::F32(v) => v.bytes(),
            ValueStore::Int8 { q, scales } => q.bytes() + scales.bytes(),
            ValueStore::Codebook { codes, table, .. } => codes.bytes() + size_of_val(&**table),
        };
        values + self.column_bytes()
    }

    /// 2 or 4 for absolute U16 / U32 indices, 0 for gaps.
    pub(crate) fn index_bytes(&self) -> usize {
        match self.columns {
            ColumnStore::U16(_) => 2,
            ColumnStore::U32(_) => 4,
            ColumnStore::Gaps { .. } => 0,
        }
    }

    fn column_bytes(&self) -> usize {
        match &self.columns {
            ColumnStore::U16(i) => i.bytes(),
            ColumnStore::U32(i) => i.bytes(),
            ColumnStore::Gaps { stream, starts, heads, .. } => {
                stream.bytes() + 4 * starts.len() + heads.len()
            }
        }
    }

    /// How many of [`CompressedWeights::bytes`] are borrowed from the mapped file.
    pub(crate) fn mapped_bytes(&self) -> usize {
        let m = |mapped: bool, n: usize| if mapped { n } else { 0 };
        let values = match &self.values {
            ValueStore::F32(v) => m(v.is_mapped(), v.bytes()),
            ValueStore::Int8 { q, scales } => {
                m(q.is_mapped(), q.bytes()) + m(scales.is_mapped(), scales.bytes())
            }
            ValueStore::Codebook { codes, .. } => m(codes.is_mapped(), codes.bytes()),
        };
        let columns = match &self.columns {
            ColumnStore::U16(i) => m(i.is_mapped(), i.bytes()),
            ColumnStore::U32(i) => m(i.is_mapped(), i.bytes()),
            ColumnStore::Gaps { stream, .. } => m(stream.is_mapped(), stream.bytes()),
        };
        values + columns
    }

    /// Calls `f(row, column, value)` for every nonzero, rows and columns ascending.
    pub(crate) fn for_each(&self, indptr: &[u32], mut f: impl FnMut(usize, usize, f32)) {
        with_streams!(self, |v, c| {
            let mut cursor = v.at(0);
            for r in 0..self.rows {
                c.for_each(indptr, r, |col, real| {
                    if real == 1 {
                        f(r, col, v.get(&cursor, r));
                        v.skip(&mut cursor, 1);
                    }
                });
            }
        })
    }

    /// A batch-1 copy of the matrix (`kernels::sliced`, `kernels::coded_rows`) made by
    /// `build` from its shape, its value kind and its rows' entries: their values' codes,
    /// int8 bytes or f32 bits, and their columns absolute.
    pub(crate) fn batch1_copy<T>(
        &self,
        indptr: &[u32],
        build: impl FnOnce((usize, usize), ValueKind, &dyn Fn(usize, &mut Vec<(u32, u32)>)) -> T,
    ) -> T {
        let value_kind = match &self.values {
            ValueStore::F32(_) => ValueKind::F32,
            ValueStore::Int8 { scales, .. } => ValueKind::Int8(scales),
            ValueStore::Codebook { bits, table, .. } => ValueKind::Codebook(*bits, table),
        };
        // The raw value of nonzero k.
        let raw = |k: usize| match &self.values {
            ValueStore::F32(v) => v[k].to_bits(),
            ValueStore::Int8 { q, .. } => q[k] as u8 as u32,
            ValueStore::Codebook { bits, codes, .. } => ticket_core::packed::field(codes, k, *bits),
        };
        let (columns, _) = self.decoded(indptr);
        let entries = |r: usize, out: &mut Vec<(u32, u32)>| {
            let nonzeros = indptr[r] as usize..indptr[r + 1] as usize;
            out.extend(nonzeros.map(|k| (columns[k], raw(k))));
        };
        build((self.rows, self.cols), value_kind, &entries)
    }

    /// The whole matrix decoded at once with the decoders of this CPU: its column indices
    /// and values in CSR order (the rows are `indptr`'s). For the kernels that run from
    /// their own layout (conv taps), built once at load.
    pub(crate) fn decoded(&self, indptr: &[u32]) -> (Vec<u32>, Vec<f32>) {
        let mut buf = RowBuffer::default();
        self.decode_all(indptr, &mut buf);
        let nnz = indptr[self.rows] as usize;
        buf.cols.truncate(nnz);
        buf.vals.truncate(nnz);
        (buf.cols, buf.vals)
    }

    /// The whole matrix decoded into `buf` (reusing its room), with the decoders of this CPU.
    pub(crate) fn decode_all(&self, indptr: &[u32], buf: &mut RowBuffer) {
        if self.rows == 0 {
            buf.ptr.clear();
            buf.ptr.push(0);
            return;
        }
        self.decode_rows(Isa::detect(), indptr, (0, self.rows), usize::MAX, buf, true);
    }

    /// Bytes of [`CompressedWeights::decode_all`]'s buffer for this matrix.
    pub(crate) fn decoded_bytes(&self, indptr: &[u32]) -> usize {
        4 * (self.rows + 1) + 8 * (indptr[self.rows] as usize + SLACK)
    }

    /// Rows from `start` decoded into `buf` until at least `limit` nonzeros are in or row
    /// `until` is reached, with the decoders of `isa`; returns the end of the rows decoded.
    /// Absolute column indices are copied too when `absolute` is set (the AVX2 decoder skips
    /// them otherwise: a row kernel can read them from the file as they are).
    fn decode_rows(
        &self,
        isa: Isa,
        indptr: &[u32],
        (start, until): (usize, usize),
        limit: usize,
        buf: &mut RowBuffer,
        absolute: bool,
    ) -> usize {
        let base = indptr[start];
        let rest = &indptr[start + 1..=until];
        let end = start
            + 1
            + rest.partition_point(|&p| ((p - base) as usize) < limit).min(rest.len() - 1);
        let n = (indptr[end] - base) as usize;
        buf.ptr.clear();
        buf.ptr.extend(indptr[start..=end].iter().map(|&p| p - base));
        // The vector decoders store whole registers: room for one more past the rows.
        if buf.cols.len() < n + SLACK {
            buf.cols.resize(n + SLACK, 0);
            buf.vals.resize(n + SLACK, 0.0);
        }
        match isa {
            // SAFETY: the instruction set is present (Isa::detect; every AVX-512 CPU has
            // AVX2); the loader checked the streams.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => unsafe { self.decode_vector(indptr, start..end, buf, absolute, false) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { self.decode_vector(indptr, start..end, buf, absolute, true) },
            Isa::Portable => self.decode_scalar(indptr, start..end, buf),
        }
        end
    }

    /// [`CompressedWeights::decode_rows`] one nonzero at a time.
    fn decode_scalar(&self, indptr: &[u32], rows: Range<usize>, buf: &mut RowBuffer) {
        let base = indptr[rows.start] as usize;
        // Locals, not the buffer's fields, so that the loop keeps them in registers.
        let (cols, vals) = (&mut buf.cols[..], &mut buf.vals[..]);
        with_streams!(self, |v, c| {
            let mut cursor = v.at(base);
            let mut i = 0;
            for r in rows {
                c.for_each(indptr, r, |col, real| {
                    // A filler writes slot i too; the nonzero that follows it (a row never
                    // ends with one) overwrites it, and the value cursor points at that one.
                    cols[i] = col as u32;
                    vals[i] = v.get(&cursor, r);
                    i += real;
                    v.skip(&mut cursor, real);
                });
            }
        });
    }

    /// [`CompressedWeights::decode_rows`] with vector registers: eight fields at a time
    /// (see [`avx2`]: values of all the rows in one pass, then columns row by row), or with
    /// `wide` sixteen (see [`avx512`]: codebook values, then the columns of all the rows in
    /// one pass; int8 values as with AVX2).
    ///
    /// # Safety
    /// AVX2 available, and AVX-512 F and BW when `wide`; `buf.cols` and `buf.vals` hold the
    /// rows' nonzeros plus [`SLACK`].
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn decode_vector(
        &self,
        indptr: &[u32],
        rows: Range<usize>,
        buf: &mut RowBuffer,
        absolute: bool,
        wide: bool,
    ) {
        let base = indptr[rows.start] as usize;
        let n = indptr[rows.end] as usize - base;
        let (cols, vals) = (&mut buf.cols[..], &mut buf.vals[..]);
        let span = |r: usize| indptr[r] as usize..indptr[r + 1] as usize;
        // SAFETY (all calls): AVX2 available; each output slice starts at a row's first slot
        // and runs to the buffer's end, which holds the rest of the rows plus SLACK.
        unsafe {
            match &self.values {
                ValueStore::F32(v) => vals[..n].copy_from_slice(&v[base..base + n]),
                ValueStore::Int8 { q, scales } => {
                    for r in rows.clone() {
                        let k = span(r);
                        let out = &mut vals[k.start - base..];
                        avx2::int8_values(q, k.start, k.end, scales[r], out);
                    }
                }
                ValueStore::Codebook { bits, codes, table } => {
                    let book = CodebookValues { codes, bits: *bits, table };
                    if wide {
                        avx512::codebook_values(book, (base, n), vals)
                    } else {
                        avx2::codebook_values(book, (base, n), vals)
                    }
                }
            }
            match &self.columns {
                ColumnStore::U16(_) | ColumnStore::U32(_) if !absolute => {}
                ColumnStore::U16(i) => {
                    cols[..n].iter_mut().zip(&i[base..base + n]).for_each(|(c, &i)| *c = i as u32)
                }
                ColumnStore::U32(i) => cols[..n].copy_from_slice(&i[base..base + n]),
                ColumnStore::Gaps { bits, stream, starts, heads } if wide => {
                    let first = starts[rows.start] as usize;
                    let fields = starts[rows.end] as usize - first;
                    let entries = avx512::gap_columns(stream, *bits, heads, first, fields, cols);
                    debug_assert_eq!(entries, n);
                }
                ColumnStore::Gaps { bits, stream, starts, .. } => {
                    for r in rows {
                        let (first, fields) =
                            (starts[r] as usize, (starts[r + 1] - starts[r]) as usize);
                        let out = &mut cols[indptr[r] as usize - base..];
                        let entries = avx2::gap_columns(stream, *bits, first, fields, out);
                        debug_assert_eq!(entries, span(r).len());
                    }
                }
            }
        }
    }

    /// `y = act(W x + bias)` for `x` `[cols][batch]`, `y` `[rows][batch]`, both laid out in
    /// tiles of `tile` examples (see [`super::tiles`]), on this thread, with the row kernels
    /// of `isa`. Each chunk of rows is decoded once and run over every tile before the next
    /// is decoded, so a batch of many tiles pays for decoding the layer once.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn spmm_with(
        &self,
        isa: Isa,
        indptr: &[u32],
        bias: &[f32],
        x: TiledInput,
        y: &mut [f32],
        (batch, tile): (usize, usize),
        act: Activation,
    ) {
        self.check_shapes(indptr, bias, (x.len(), y.len()), batch);
        self.rows_with(isa, indptr, bias, 0..self.rows, x, y, (batch, tile), act);
    }

    /// [`CompressedWeights::spmm_with`] for a batch of one tile (`x` `[cols][batch]`), its
    /// rows split over `threads` threads in parts of equal nonzeros, each thread decoding its
    /// own: at batch 1 a large layer's decoding is the cost, and one core would do it all.
    /// Each row is computed as on one thread, so the result is the same bit for bit.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn spmm_split(
        &self,
        isa: Isa,
        indptr: &[u32],
        bias: &[f32],
        x: &[f32],
        y: &mut [f32],
        batch: usize,
        act: Activation,
        threads: usize,
    ) {
        self.check_shapes(indptr, bias, (x.len(), y.len()), batch);
        let chunks = threads.clamp(1, self.rows.max(1));
        super::for_row_parts(indptr, chunks, y, batch, |rows, part| {
            let x = TiledInput::Tiled(x);
            self.rows_with(isa, indptr, bias, rows, x, part, (batch, batch), act)
        });
    }

    /// Panics unless `x` and `y` (their lengths), `bias` and `indptr` fit this matrix and
    /// `batch`.
    fn check_shapes(&self, indptr: &[u32], bias: &[f32], (x, y): (usize, usize), batch: usize) {
        assert_eq!(x, self.cols * batch, "compressed spmm: x length");
        assert_eq!(y, self.rows * batch, "compressed spmm: y length");
        assert_eq!(bias.len(), self.rows, "compressed spmm: bias length");
        assert_eq!(indptr.len(), self.rows + 1, "compressed spmm: indptr length");
    }

    /// Rows `rows` of the product into `y`, which holds just those rows (`[rows.len()][t]`
    /// per tile of `t` examples).
    #[allow(clippy::too_many_arguments)]
    fn rows_with(
        &self,
        isa: Isa,
        indptr: &[u32],
        bias: &[f32],
        rows: Range<usize>,
        mut x: TiledInput,
        y: &mut [f32],
        (batch, tile): (usize, usize),
        act: Activation,
    ) {
        if batch == 0 {
            return;
        }
        let relu = act == Activation::Relu;
        let chunk = if batch > tile { TILED_CHUNK } else { CHUNK };
        let (height, cols) = (rows.len(), self.cols);
        ROWS.with_borrow_mut(|buf| {
            let mut start = rows.start;
            while start < rows.end {
                // Absolute indices are read where the file has them; only gaps are decoded.
                let end = self.decode_rows(isa, indptr, (start, rows.end), chunk, buf, false);
                let (base, n) = (indptr[start] as usize, buf.ptr[end - start] as usize);
                let (ptr, vals) = (&buf.ptr[..], &buf.vals[..n]);
                let bias = Some(&bias[start..end]);
                let local = (start - rows.start)..(end - rows.start);
                for examples in super::tiles(batch, tile) {
                    let t = examples.len();
                    let y = &mut y[examples.start * height..examples.end * height];
                    let x = x.tile(examples, cols);
                    let y = &mut y[local.start * t..local.end * t];
                    let chunk_rows = 0..end - start;
                    macro_rules! run {
                        ($indices:expr) => {{
                            let w =
                                CsrRef::new_prechecked(chunk_rows.len(), cols, ptr, $indices, vals);
                            super::spmm_rows(isa, w, chunk_rows, bias, x, y, t, relu)
                        }};
                    }
                    match &self.columns {
                        ColumnStore::U16(i) => run!(&i[base..][..n]),
                        ColumnStore::U32(i) => run!(&i[base..][..n]),
                        ColumnStore::Gaps { .. } => run!(&buf.cols[..n]),
                    }
                }
                start = end;
            }
        })
    }

    /// `y = act(conv(x, W) + bias)`: each output channel's row is decoded into a per-thread
    /// buffer (at most `in * kh * kw` entries) and convolved by the f32 direct kernel.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn conv2d(
        &self,
        indptr: &[u32],
        bias: &[f32],
        input: Image,
        window: Window,
        x: &[f32],
        y: &mut [f32],
        batch: usize,
        act: Activation,
    ) {
        let plane = y.len() / self.rows.max(1);
        let isa = Isa::detect();
        ROWS.with_borrow_mut(|buf| {
            for (r, yr) in y.chunks_exact_mut(plane.max(1)).enumerate().take(self.rows) {
                self.decode_rows(isa, indptr, (r, r + 1), 0, buf, true);
                let n = buf.ptr[1] as usize;
                let row =
                    CsrRef::new_prechecked(1, self.cols, &buf.ptr, &buf.cols[..n], &buf.vals[..n]);
                Conv2d::new(row, &bias[r..r + 1], input, window).run(x, yr, batch, act);
            }
        })
    }
}

#[cfg(test)]
pub(crate) mod tests;
