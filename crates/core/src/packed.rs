//! The packed bit streams of the compressed CSR codecs (docs/FORMAT.md, "Compressed layers"),
//! shared by the writer (ticket-export) and the readers (ticket-export, ticket-infer) so the
//! bit layout exists once.
//!
//! A stream of `N`-bit fields (`1 <= N <= 8`) is stored least significant bit first: field
//! `i` occupies stream bits `i*N .. (i+1)*N`, stream bit `b` is bit `b % 8` of byte `b / 8`,
//! and the bits after the last field (fewer than 8) are zero.
//!
//! Gap-coded column indices: within a row, `next` starts at 0; a field `f < 2^N - 1` is an
//! entry at column `next + f` (then `next = column + 1`), the all-ones field is a filler that
//! advances `next` by `2^N - 1` without an entry. A row holds exactly as many entries as its
//! `indptr` span (fillers are not counted there) and never ends with a filler.
//!
//! ```
//! use ticket_core::packed::{encode_gaps, pack, GapRows};
//! // One row with columns 0, 1 and 20, in 3-bit fields (fields 0..=6 place, 7 skips 7).
//! let fields = encode_gaps(&[0, 3], &[0, 1, 20], 3);
//! assert_eq!(fields, [0, 0, 7, 7, 4]);
//! let bytes = pack(&fields, 3);
//! let rows = GapRows::check(1, 21, &[0, 3], &bytes, 3).unwrap();
//! assert_eq!(rows.columns(&bytes, 0).collect::<Vec<_>>(), [0, 1, 20]);
//! ```

/// Bytes of a stream of `count` fields of `bits` bits.
pub fn packed_len(count: usize, bits: u32) -> usize {
    (count * bits as usize).div_ceil(8)
}

/// `fields` (each below `2^bits`) packed least significant bit first.
pub fn pack(fields: &[u32], bits: u32) -> Vec<u8> {
    debug_assert!((1..=8).contains(&bits));
    let mut out = vec![0u8; packed_len(fields.len(), bits)];
    for (i, &f) in fields.iter().enumerate() {
        debug_assert!(f < 1 << bits, "field {f} does not fit {bits} bits");
        let bit = i * bits as usize;
        let word = (f as u16) << (bit % 8);
        out[bit / 8] |= word as u8;
        if let Some(next) = out.get_mut(bit / 8 + 1) {
            *next |= (word >> 8) as u8;
        }
    }
    out
}

/// Field `i` of a stream of `bits`-bit fields. Panics when the field lies past `bytes`.
#[inline(always)]
pub fn field(bytes: &[u8], i: usize, bits: u32) -> u32 {
    let bit = i * bits as usize;
    let lo = bytes[bit / 8] as u16;
    let hi = bytes.get(bit / 8 + 1).map_or(0, |&b| b as u16);
    (((hi << 8 | lo) >> (bit % 8)) & ((1 << bits) - 1)) as u32
}

/// The first `count` fields of a stream of `bits`-bit fields (`count * bits` bits must lie
/// within `bytes`), one byte each: 8-bit streams are borrowed, narrower ones unpacked eight
/// fields (`bits` bytes) per 64-bit load (the checks below do the same a window at a time).
pub fn unpack(bytes: &[u8], count: usize, bits: u32) -> std::borrow::Cow<'_, [u8]> {
    debug_assert!((1..=8).contains(&bits) && count * bits as usize <= bytes.len() * 8);
    if bits == 8 {
        return std::borrow::Cow::Borrowed(&bytes[..count]);
    }
    let mut out = vec![0u8; count];
    unpack_into(bytes, bits, &mut out);
    std::borrow::Cow::Owned(out)
}

/// The first `out.len()` fields of `bytes` into `out`, one byte each (`bits < 8`).
fn unpack_into(bytes: &[u8], bits: u32, out: &mut [u8]) {
    match bits {
        1 => unpack_width::<1>(bytes, out),
        2 => unpack_width::<2>(bytes, out),
        3 => unpack_width::<3>(bytes, out),
        4 => unpack_width::<4>(bytes, out),
        5 => unpack_width::<5>(bytes, out),
        6 => unpack_width::<6>(bytes, out),
        _ => unpack_width::<7>(bytes, out),
    }
}

/// Fields unpacked a window at a time (about [`WINDOW`] fields, 64 KB, in the second-level
/// cache), for passes that walk a stream forward: a 9 MB file's streams are checked without
/// unpacking each whole into a fresh allocation, whose page faults cost as much as the check.
struct Window<'a> {
    bytes: &'a [u8],
    bits: u32,
    /// Fields in the stream.
    total: usize,
    /// Fields `base..base + fields.len()` unpacked (unused for 8-bit streams).
    base: usize,
    fields: Vec<u8>,
}

/// Fields a [`Window`] unpacks at once, at least.
const WINDOW: usize = 1 << 16;

impl<'a> Window<'a> {
    fn new(bytes: &'a [u8], total: usize, bits: u32) -> Self {
        Window { bytes, bits, total, base: 0, fields: Vec::new() }
    }

    /// Fields `range` of the stream (within `total`), unpacking the window from the eighth
    /// field at or before `range.start` on when they are not in it.
    fn get(&mut self, range: std::ops::Range<usize>) -> &[u8] {
        debug_assert!(range.start <= range.end && range.end <= self.total);
        if self.bits == 8 {
            return &self.bytes[range];
        }
        let held = self.base..self.base + self.fields.len();
        if range.start < held.start || range.end > held.end {
            // Eight fields take `bits` whole bytes, so the window starts on a byte.
            self.base = range.start / 8 * 8;
            let n = (range.end - self.base).max(WINDOW).min(self.total - self.base);
            self.fields.resize(n, 0);
            let from = self.base / 8 * self.bits as usize;
            unpack_into(&self.bytes[from..], self.bits, &mut self.fields);
        }
        &self.fields[range.start - self.base..range.end - self.base]
    }
}

/// [`unpack`] into `out` at a width known when compiling, so the shifts are constants.
fn unpack_width<const BITS: usize>(bytes: &[u8], out: &mut [u8]) {
    let mask = (1u64 << BITS) - 1;
    let (b, count) = (BITS, out.len());
    // Chunks of 8 fields whose 8-byte load stays inside `bytes`.
    let loadable = if bytes.len() >= 8 { (bytes.len() - 8) / b + 1 } else { 0 };
    let fast = (count / 8).min(loadable);
    for (c, chunk) in out[..8 * fast].chunks_exact_mut(8).enumerate() {
        let word = u64::from_le_bytes(bytes[c * b..c * b + 8].try_into().expect("8 bytes"));
        for (j, f) in chunk.iter_mut().enumerate() {
            *f = ((word >> (j * b)) & mask) as u8;
        }
    }
    for (i, f) in out.iter_mut().enumerate().skip(8 * fast) {
        *f = field(bytes, i, BITS as u32) as u8;
    }
}

/// The filler field of `bits`-bit gaps: all ones, advancing the column by `2^bits - 1`.
pub fn filler(bits: u32) -> u32 {
    (1 << bits) - 1
}

/// The gap fields of CSR column indices (`indptr` rows, columns strictly increasing within
/// each row), fillers included.
pub fn encode_gaps(indptr: &[u32], indices: &[u32], bits: u32) -> Vec<u32> {
    let fill = filler(bits);
    let mut fields = Vec::with_capacity(indices.len());
    for row in indptr.windows(2) {
        let mut next = 0u32;
        for &col in &indices[row[0] as usize..row[1] as usize] {
            let mut gap = col - next;
            while gap >= fill {
                fields.push(fill);
                gap -= fill;
            }
            fields.push(gap);
            next = col + 1;
        }
    }
    fields
}

/// The number of fields [`encode_gaps`] writes at `bits` bits for entries whose gaps (columns
/// skipped since the previous entry of the row, or the row start) have the histogram
/// `counts` (`counts[g]` entries have gap `g`): a gap `g` takes `g / (2^bits - 1)` fillers and
/// one entry. What `--index-bits auto` compares the widths by, exactly.
pub fn gap_fields(counts: &[usize], bits: u32) -> usize {
    let fill = filler(bits) as usize;
    counts.iter().enumerate().map(|(gap, &n)| n * (gap / fill + 1)).sum()
}

/// Checks that the last `bits_used % 8` bits of a stream of `bytes` bytes are zero and that
/// the stream has exactly the bytes its fields need.
fn check_length(bytes: &[u8], fields: usize, bits: u32, what: &str) -> Result<(), String> {
    let want = packed_len(fields, bits);
    if bytes.len() != want {
        return Err(format!(
            "{what} has {} bytes, but {fields} fields of {bits} bits take {want}",
            bytes.len()
        ));
    }
    let used = fields * bits as usize % 8;
    if used != 0 && bytes[want - 1] >> used != 0 {
        return Err(format!("{what} has nonzero padding bits after its last field"));
    }
    Ok(())
}

/// Checks that a (non-empty) `indptr` starts at 0 and never decreases, so that its spans can
/// be used to walk the streams.
pub fn check_indptr(indptr: &[u32]) -> Result<(), String> {
    match indptr.first() {
        None => return Err("indptr is empty".to_string()),
        Some(&start) if start != 0 => return Err(format!("indptr starts at {start}, expected 0")),
        _ => {}
    }
    match indptr.windows(2).position(|w| w[1] < w[0]) {
        Some(r) => {
            Err(format!("indptr decreases at row {r} ({} then {})", indptr[r], indptr[r + 1]))
        }
        None => Ok(()),
    }
}

/// A validated gap stream: where each row's fields start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GapRows {
    /// `rows + 1` field offsets: row `r` is fields `starts[r] .. starts[r + 1]`.
    pub starts: Vec<u32>,
    pub bits: u32,
}

impl GapRows {
    /// Decodes the structure of a gap stream once: every row finds its `indptr` span of
    /// entries, every column is below `cols`, no row ends in a filler, and the stream ends
    /// exactly after the last row (zero padding). `indptr` must already be a valid indptr
    /// (from 0, non-decreasing, `rows + 1` entries). Returns the first problem found.
    pub fn check(
        rows: usize,
        cols: usize,
        indptr: &[u32],
        bytes: &[u8],
        bits: u32,
    ) -> Result<GapRows, String> {
        match Self::check_unpacked(rows, cols, indptr, bytes, bits) {
            Some(gaps) => Ok(gaps),
            // Something is wrong: the field-by-field walk names the first problem.
            None => Self::check_each_field(rows, cols, indptr, bytes, bits),
        }
    }

    /// [`GapRows::check`] on the unpacked fields, a row at a time with slice counts and sums
    /// the compiler vectorises: a row of `s` entries ends just after its `s`-th non-filler
    /// field, and (a filler adding `2^bits - 1` columns, an entry `f + 1`) its last column is
    /// the sum of its fields plus `s - 1`; columns increase, so only the last is compared
    /// with `cols`. `None` on any problem, which [`GapRows::check_each_field`] then names.
    fn check_unpacked(
        rows: usize,
        cols: usize,
        indptr: &[u32],
        bytes: &[u8],
        bits: u32,
    ) -> Option<GapRows> {
        let total = bytes.len() * 8 / bits as usize;
        let mut fields = Window::new(bytes, total, bits);
        let fill = filler(bits) as u8;
        let mut starts = Vec::with_capacity(rows + 1);
        let mut i = 0usize;
        for r in 0..rows {
            starts.push(u32::try_from(i).ok()?);
            let span = (indptr[r + 1] - indptr[r]) as usize;
            let (mut end, mut need) = (i, span);
            while need > 0 {
                let stop = end.checked_add(need).filter(|&stop| stop <= total)?;
                need = fields.get(end..stop).iter().filter(|&&f| f == fill).count();
                end = stop;
            }
            if span > 0 {
                let sum: usize = fields.get(i..end).iter().map(|&f| f as usize).sum();
                if sum + span > cols {
                    return None;
                }
            }
            i = end;
        }
        starts.push(u32::try_from(i).ok()?);
        check_length(bytes, i, bits, "the gap stream").ok()?;
        Some(GapRows { starts, bits })
    }

    /// [`GapRows::check`] one field at a time, naming the first problem.
    fn check_each_field(
        rows: usize,
        cols: usize,
        indptr: &[u32],
        bytes: &[u8],
        bits: u32,
    ) -> Result<GapRows, String> {
        let total = bytes.len() * 8 / bits as usize;
        let fill = filler(bits);
        let mut starts = Vec::with_capacity(rows + 1);
        let mut i = 0usize;
        for r in 0..rows {
            starts.push(u32::try_from(i).map_err(|_| "gap stream too long".to_string())?);
            let mut next = 0usize;
            let mut left = (indptr[r + 1] - indptr[r]) as usize;
            while left > 0 {
                if i >= total {
                    return Err(format!(
                        "gap stream ends in row {r}, {left} of its entries missing \
                         (the stream is shorter than indptr's nnz)"
                    ));
                }
                let f = field(bytes, i, bits);
                i += 1;
                if f == fill {
                    next += fill as usize;
                    continue;
                }
                let col = next + f as usize;
                if col >= cols {
                    return Err(format!(
                        "gap stream places row {r} at column {col}, but the matrix has {cols} columns"
                    ));
                }
                next = col + 1;
                left -= 1;
            }
        }
        starts.push(u32::try_from(i).map_err(|_| "gap stream too long".to_string())?);
        check_length(bytes, i, bits, "the gap stream")?;
        Ok(GapRows { starts, bits })
    }

    /// The columns of row `r` of the (checked) stream `bytes`, ascending.
    pub fn columns<'a>(&self, bytes: &'a [u8], r: usize) -> impl Iterator<Item = u32> + 'a {
        let (bits, fill) = (self.bits, filler(self.bits));
        let mut next = 0u32;
        (self.starts[r] as usize..self.starts[r + 1] as usize).filter_map(move |i| {
            let f = field(bytes, i, bits);
            if f == fill {
                next += fill;
                None
            } else {
                let col = next + f;
                next = col + 1;
                Some(col)
            }
        })
    }
}

/// Checks a stream of `count` codebook indices of `bits` bits: exact length, zero padding,
/// every index below `entries` (the codebook's length). Returns the first problem found.
pub fn check_codes(bytes: &[u8], count: usize, bits: u32, entries: usize) -> Result<(), String> {
    check_length(bytes, count, bits, "the codebook index stream")?;
    // The largest code (a branch-free pass), then the first culprit only when one exists.
    let in_range = || {
        let mut fields = Window::new(bytes, count, bits);
        (0..count).step_by(WINDOW).all(|k| {
            let window = fields.get(k..(k + WINDOW).min(count));
            window.iter().max().is_none_or(|&c| (c as usize) < entries)
        })
    };
    if entries < 1 << bits && !in_range() {
        if let Some(k) = (0..count).find(|&k| field(bytes, k, bits) as usize >= entries) {
            return Err(format!(
                "codebook index {} of value {k} is out of range (the codebook has {entries} entries)",
                field(bytes, k, bits)
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Columns of every row, decoded with `GapRows`.
    fn round_trip(cols: usize, rows: &[Vec<u32>], bits: u32) -> Vec<Vec<u32>> {
        let mut indptr = vec![0u32];
        let mut indices = vec![];
        for row in rows {
            indices.extend_from_slice(row);
            indptr.push(indices.len() as u32);
        }
        let bytes = pack(&encode_gaps(&indptr, &indices, bits), bits);
        let gaps = GapRows::check(rows.len(), cols, &indptr, &bytes, bits).unwrap();
        (0..rows.len()).map(|r| gaps.columns(&bytes, r).collect()).collect()
    }

    /// Streams longer than one unpacking window, rows straddling its edges: the windowed
    /// checks agree with the field-by-field walk, and a bad field past the first window is
    /// still found.
    #[test]
    fn checks_of_streams_longer_than_a_window_match_the_field_walk() {
        let (rows, cols) = (700usize, 3000usize);
        let mut state = 12345u64;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 33) as usize
        };
        let mut indptr = vec![0u32];
        let mut indices = vec![];
        for _ in 0..rows {
            let mut row: Vec<u32> = (0..next() % 400).map(|_| (next() % cols) as u32).collect();
            row.sort_unstable();
            row.dedup();
            indices.extend(row);
            indptr.push(indices.len() as u32);
        }
        for bits in [3, 5, 8] {
            let fields = encode_gaps(&indptr, &indices, bits);
            assert!(fields.len() > 2 * WINDOW, "{} fields", fields.len());
            let bytes = pack(&fields, bits);
            let windowed = GapRows::check_unpacked(rows, cols, &indptr, &bytes, bits);
            let walked = GapRows::check_each_field(rows, cols, &indptr, &bytes, bits).unwrap();
            assert_eq!(windowed.as_ref(), Some(&walked), "{bits} bits");
            // The widest column decides which matrix widths the stream fits.
            let widest = *indices.iter().max().unwrap() as usize;
            assert!(GapRows::check_unpacked(rows, widest, &indptr, &bytes, bits).is_none());
            assert!(GapRows::check_unpacked(rows, widest + 1, &indptr, &bytes, bits).is_some());
            let codes: Vec<u32> = (0..fields.len()).map(|k| (k % 5) as u32).collect();
            let mut codes = codes.iter().map(|&c| c.min(filler(bits))).collect::<Vec<_>>();
            assert_eq!(check_codes(&pack(&codes, bits), codes.len(), bits, 5), Ok(()));
            let late = codes.len() - 3;
            codes[late] = 5;
            let err = check_codes(&pack(&codes, bits), codes.len(), bits, 5).unwrap_err();
            assert!(err.contains(&format!("of value {late} is out of range")), "{err}");
        }
    }

    #[test]
    fn fields_pack_and_unpack_at_every_width() {
        for bits in 1..=8 {
            let fields: Vec<u32> = (0..37).map(|i| (i * 7 + 3) % (1 << bits)).collect();
            let bytes = pack(&fields, bits);
            assert_eq!(bytes.len(), packed_len(37, bits));
            let back: Vec<u32> = (0..37).map(|i| field(&bytes, i, bits)).collect();
            assert_eq!(back, fields, "{bits} bits");
        }
        // 3-bit fields 5, 2, 7: bits 101 010 111 from the least significant end.
        assert_eq!(pack(&[5, 2, 7], 3), [0b11_010_101, 0b1]);
    }

    #[test]
    fn gaps_round_trip_with_fillers_empty_rows_and_the_last_column() {
        let cols = 1100;
        for bits in 3..=8 {
            let fill = filler(bits);
            let rows = vec![
                vec![],
                vec![cols as u32 - 1],
                vec![0, 1, 2],
                vec![fill - 1, fill, 2 * fill, 2 * fill + 1, 3 * fill + fill - 1],
                vec![],
                (0..cols as u32).step_by(97).collect(),
                vec![0, cols as u32 - 1],
            ];
            assert_eq!(round_trip(cols, &rows, bits), rows, "{bits} bits");
        }
    }

    #[test]
    fn unpack_matches_field_at_every_width_and_length() {
        for bits in 1..=8 {
            for count in [0, 1, 7, 8, 9, 63, 64, 65, 200] {
                let fields: Vec<u32> =
                    (0..count).map(|i| (i * 5 + 1) as u32 % (1 << bits)).collect();
                let bytes = pack(&fields, bits);
                let got: Vec<u32> = unpack(&bytes, count, bits).iter().map(|&f| f as u32).collect();
                assert_eq!(got, fields, "{bits} bits, {count} fields");
            }
        }
    }

    /// A deterministic xorshift stream for the differential test below.
    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn the_fast_gap_check_agrees_with_the_field_by_field_walk() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut accepted = 0;
        for case in 0..4000 {
            let bits = 3 + (case % 6) as u32;
            let (rows, cols) =
                (1 + xorshift(&mut state) as usize % 6, 1 + xorshift(&mut state) as usize % 40);
            let mut indptr = vec![0u32];
            let mut indices = vec![];
            for _ in 0..rows {
                let density = xorshift(&mut state) % 100;
                indices.extend((0..cols as u32).filter(|_| xorshift(&mut state) % 100 < density));
                indptr.push(indices.len() as u32);
            }
            let mut bytes = pack(&encode_gaps(&indptr, &indices, bits), bits);
            // Most cases are corrupted: a flipped bit, a changed row span, a cut or longer stream.
            match xorshift(&mut state) % 5 {
                0 if !bytes.is_empty() => {
                    let bit = xorshift(&mut state) as usize % (8 * bytes.len());
                    bytes[bit / 8] ^= 1 << (bit % 8);
                }
                1 => {
                    let r = 1 + xorshift(&mut state) as usize % rows;
                    indptr[r..].iter_mut().for_each(|p| *p += 1);
                }
                2 => {
                    bytes.pop();
                }
                3 => bytes.push(xorshift(&mut state) as u8),
                _ => {}
            }
            let fast = GapRows::check_unpacked(rows, cols, &indptr, &bytes, bits);
            let walk = GapRows::check_each_field(rows, cols, &indptr, &bytes, bits);
            assert_eq!(fast, walk.clone().ok(), "case {case}: {walk:?}");
            accepted += usize::from(fast.is_some());
        }
        assert!((800..3800).contains(&accepted), "{accepted} of 4000 streams accepted");
    }

    #[test]
    fn gap_fields_counts_what_encode_gaps_writes() {
        let indptr = [0, 3, 3, 7];
        let indices = [0, 1, 20, 6, 7, 300, 1099];
        // Gaps 0, 0, 18 | - | 6, 0, 292, 798.
        let mut counts = vec![0; 799];
        for gap in [0, 0, 18, 6, 0, 292, 798] {
            counts[gap] += 1;
        }
        for bits in 1..=8 {
            let written = encode_gaps(&indptr, &indices, bits).len();
            assert_eq!(gap_fields(&counts, bits), written, "{bits} bits");
        }
    }

    #[test]
    fn a_gap_of_exactly_the_filler_needs_one_filler() {
        // Column 7 in 3 bits: a filler (next = 7) then field 0.
        assert_eq!(encode_gaps(&[0, 1], &[7], 3), [7, 0]);
        assert_eq!(encode_gaps(&[0, 1], &[6], 3), [6]);
        assert_eq!(encode_gaps(&[0, 2], &[0, 14], 3), [0, 7, 6]);
    }

    #[test]
    fn corrupt_streams_are_refused() {
        let bytes = pack(&[0, 0, 7, 7, 4], 3);
        let short = &bytes[..1];
        let err = GapRows::check(1, 21, &[0, 3], short, 3).unwrap_err();
        assert!(err.contains("shorter than indptr's nnz"), "{err}");
        let err = GapRows::check(1, 20, &[0, 3], &bytes, 3).unwrap_err();
        assert!(err.contains("column 20, but the matrix has 20 columns"), "{err}");
        let mut long = bytes.clone();
        long.push(0);
        assert!(GapRows::check(1, 21, &[0, 3], &long, 3).unwrap_err().contains("bytes"));
        let mut dirty = bytes.clone();
        *dirty.last_mut().unwrap() |= 0x80;
        assert!(GapRows::check(1, 21, &[0, 3], &dirty, 3).unwrap_err().contains("padding"));
        let codes = pack(&[0, 3, 1], 2);
        assert!(check_codes(&codes, 3, 2, 4).is_ok());
        let err = check_codes(&codes, 3, 2, 3).unwrap_err();
        assert_eq!(err, "codebook index 3 of value 1 is out of range (the codebook has 3 entries)");
        assert!(check_codes(&codes, 4, 2, 4).is_ok(), "4 fields of 2 bits fit the same byte");
        assert!(check_codes(&codes, 5, 2, 4).is_err());
    }
}
