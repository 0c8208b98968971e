//! The packed-stream decoders of compressed CSR layers (`ticket_core::packed`) on arbitrary
//! streams: the first bytes choose the field width, the matrix shape and each row's number of
//! kept weights, the rest is the stream. A gap stream that is accepted decodes to strictly
//! increasing columns below `cols`, exactly `indptr`'s count per row, and encodes back to the
//! same bytes; a codebook index stream that is accepted holds only indices below the
//! codebook's length. Anything else is refused with a message, never a panic. The bulk
//! unpacking the checks use gives every field as `field` reads it, and the bytes read as an
//! `index_bits` metadata entry either are refused or round-trip through their text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ticket_core::csr_format::IndexCodecs;
use ticket_core::packed::{check_codes, check_indptr, encode_gaps, field, pack, unpack, GapRows};

fuzz_target!(|data: &[u8]| {
    let [bits, rows, cols_lo, cols_hi, entries, rest @ ..] = data else { return };
    let bits = 3 + *bits as u32 % 6;
    let rows = *rows as usize % 16;
    let cols = 1 + u16::from_le_bytes([*cols_lo, *cols_hi]) as usize;
    if rest.len() < rows {
        return;
    }
    let (counts, stream) = rest.split_at(rows);
    let mut indptr = vec![0u32];
    for &c in counts {
        indptr.push(indptr.last().unwrap() + (c % 8) as u32);
    }
    assert!(check_indptr(&indptr).is_ok());
    if let Ok(gaps) = GapRows::check(rows, cols, &indptr, stream, bits) {
        let mut indices = Vec::new();
        for r in 0..rows {
            let row: Vec<u32> = gaps.columns(stream, r).collect();
            assert_eq!(row.len() as u32, indptr[r + 1] - indptr[r]);
            assert!(row.windows(2).all(|w| w[0] < w[1]));
            assert!(row.iter().all(|&c| (c as usize) < cols));
            indices.extend(row);
        }
        assert_eq!(pack(&encode_gaps(&indptr, &indices, bits), bits), stream);
    }
    let count = *indptr.last().unwrap() as usize;
    let book = 1 + *entries as usize % (1 << bits);
    if check_codes(stream, count, bits, book).is_ok() {
        assert!((0..count).all(|k| (field(stream, k, bits) as usize) < book));
    }
    let all = stream.len() * 8 / bits as usize;
    let unpacked = unpack(stream, all, bits);
    assert!((0..all).all(|i| unpacked[i] as u32 == field(stream, i, bits)));
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(codecs) = IndexCodecs::from_meta(Some(text)) {
            assert_eq!(IndexCodecs::from_meta(codecs.to_meta().as_deref()), Ok(codecs));
        }
    }
});
