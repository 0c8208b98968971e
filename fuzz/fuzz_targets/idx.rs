//! The IDX reader (raw or gzip, detected from the first bytes) on arbitrary bytes: it either
//! returns an array whose data fills its dimensions exactly, or refuses with a one-line error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ticket_core::dataset::idx::parse_idx_bytes;

fuzz_target!(|data: &[u8]| {
    match parse_idx_bytes(data, ticket_fuzz::path()) {
        Ok(array) => {
            assert!(!array.dims.is_empty());
            assert_eq!(array.dims.iter().product::<usize>(), array.data.len());
        }
        Err(err) => ticket_fuzz::check_error(err),
    }
});
