//! The `data` of JSON tensors, parsed in one pass straight to f32.
//!
//! A JSON request is mostly its numbers: 784 of them make 16 KB of a 16.2 KB body. Parsed
//! through serde (which checks and skips them) and then again to f32, they cost 60-70 us a
//! request, more than the server's whole answer to the same request in binary; this way
//! 13-21 us (`cargo bench --bench serve_request`). So [`cut_data`] finds each
//! `inputs[i].data` array in one structural pass, parses it here and hands serde the rest of
//! the body with `null` in its place; anything it is unsure of stays in the body for serde,
//! whose [`parse_data`] call then reports what is wrong with it.
//!
//! The digits are read sixteen at a time with SSE2 (eight at a time in a u64 where there is
//! no SSE2, and near a body's ends). Each number goes straight to the nearest f32 (through
//! f64 it would be rounded twice): the decimal mantissa is converted with at most three
//! roundings in f64, each off by at most half an ulp, so unless that f64 lies within a few
//! ulps of a point halfway between two f32 values its nearest f32 is the exact number's; near
//! a halfway point (about one number in 2^24) the token goes to the standard library's
//! correctly rounded parser.

/// The `data` arrays of a request cut out of its JSON.
#[derive(Debug, PartialEq)]
pub(super) struct Cut {
    /// The JSON with `null` in place of each cut array.
    pub json: Vec<u8>,
    /// `(input index, values)` of each cut array, in order.
    pub data: Vec<(usize, Vec<f32>)>,
}

/// Arrays nest at most this deep in `data` (a batch of 3-D images is 4).
const MAX_DEPTH: usize = 32;
/// Objects and arrays the structural pass follows into before it leaves the body to serde.
const MAX_FRAMES: usize = 128;

/// Cuts each `inputs[i].data` array that holds only numbers out of the request `json`; `None`
/// when there is none (a binary request, or a body this pass is unsure of: serde then reads
/// it whole).
pub(super) fn cut_data(json: &[u8]) -> Option<Cut> {
    let mut frames: Vec<Frame> = Vec::with_capacity(4);
    let mut rest = Vec::new();
    let mut data = Vec::new();
    let mut copied = 0;
    let mut i = 0;
    while i < json.len() {
        match json[i] {
            // Deeper than serde_json reads (its recursion limit is 128): serde's to reject,
            // and a body of brackets does not make this pass hold a frame per byte.
            b'{' | b'[' if frames.len() >= MAX_FRAMES => return None,
            b'{' => frames.push(Frame::Object { key: Key::Other, expect_key: true }),
            b'[' => frames.push(Frame::Array { index: 0 }),
            b'}' | b']' => {
                frames.pop()?;
            }
            b',' => match frames.last_mut()? {
                Frame::Object { expect_key, .. } => *expect_key = true,
                Frame::Array { index } => *index += 1,
            },
            b'"' => {
                let end = string_end(json, i)?;
                if let Some(Frame::Object { key, expect_key: expect @ true }) = frames.last_mut() {
                    *key = Key::of(&json[i + 1..end - 1]);
                    *expect = false;
                }
                i = end;
                continue;
            }
            b':' => {
                if let Some(input) = data_of_input(&frames) {
                    let start = skip_whitespace(json, i + 1);
                    if json.get(start) == Some(&b'[') {
                        if let Ok((values, end)) = parse_data(json, start) {
                            rest.extend_from_slice(&json[copied..start]);
                            rest.extend_from_slice(b"null");
                            copied = end;
                            data.push((input, values));
                            i = end;
                            continue;
                        }
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    if data.is_empty() {
        return None;
    }
    rest.extend_from_slice(&json[copied..]);
    Some(Cut { json: rest, data })
}

/// Where the structural pass is: inside an object (at its key, or at its value after `key`),
/// or inside an array at element `index`.
enum Frame {
    Object { key: Key, expect_key: bool },
    Array { index: usize },
}

/// The object keys the pass looks for.
#[derive(Clone, Copy, PartialEq)]
enum Key {
    Inputs,
    Data,
    Other,
}

impl Key {
    /// A key written with escapes is `Other`: serde reads it.
    fn of(raw: &[u8]) -> Key {
        match raw {
            b"inputs" => Key::Inputs,
            b"data" => Key::Data,
            _ => Key::Other,
        }
    }
}

/// The input index, when `frames` are at the value of `data` in an element of the top-level
/// object's `inputs` array.
fn data_of_input(frames: &[Frame]) -> Option<usize> {
    match frames {
        [Frame::Object { key: Key::Inputs, .. }, Frame::Array { index }, Frame::Object { key: Key::Data, expect_key: false }] => {
            Some(*index)
        }
        _ => None,
    }
}

/// The index just past the string that opens at `json[start]` (a `"`).
fn string_end(json: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    loop {
        match json.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
}

fn skip_whitespace(json: &[u8], mut i: usize) -> usize {
    while matches!(json.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// The numbers of the JSON value at `json[start..]` (a number, or arrays of numbers nested at
/// most [`MAX_DEPTH`] deep) in row-major order, and the index just past the value; an error
/// naming the first value that is not a finite FP32 number.
pub(super) fn parse_data(json: &[u8], start: usize) -> Result<(Vec<f32>, usize), String> {
    let mut values = Vec::with_capacity(json.len().saturating_sub(start) / 8);
    let end = value(json, start, 0, &mut values)?;
    Ok((values, end))
}

/// Parses one element at `json[i..]` into `values`; the index past it.
fn value(json: &[u8], i: usize, depth: usize, values: &mut Vec<f32>) -> Result<usize, String> {
    match json.get(i) {
        Some(b'[') if depth < MAX_DEPTH => array(json, i, depth, values),
        Some(b'-' | b'0'..=b'9') => push_number(json, i, values),
        Some(b'[') => Err(format!("data nests arrays more than {MAX_DEPTH} deep")),
        _ => Err(format!(
            "data value at index {} is not a number: data must be an array of numbers",
            values.len()
        )),
    }
}

/// Parses the array that opens at `json[start]` into `values`; the index past it.
fn array(json: &[u8], start: usize, depth: usize, values: &mut Vec<f32>) -> Result<usize, String> {
    let mut i = skip_whitespace(json, start + 1);
    if json.get(i) == Some(&b']') {
        return Ok(i + 1);
    }
    loop {
        // Numbers inline, the rest (nested arrays, errors) through `value`.
        i = match json.get(i) {
            Some(b'-' | b'0'..=b'9') => push_number(json, i, values)?,
            _ => value(json, i, depth + 1, values)?,
        };
        i = skip_whitespace(json, i);
        match json.get(i) {
            Some(b',') => i = skip_whitespace(json, i + 1),
            Some(b']') => return Ok(i + 1),
            _ => return Err(format!("data array at index {} is not closed", values.len())),
        }
    }
}

/// Parses the number at `json[i..]` into `values`; the index past it.
#[inline(always)]
fn push_number(json: &[u8], i: usize, values: &mut Vec<f32>) -> Result<usize, String> {
    let mut end = i;
    match number(json, &mut end) {
        Some(value) if value.is_finite() => {
            values.push(value);
            Ok(end)
        }
        Some(_) => Err(not_finite(json, i, values.len())),
        None => Err(not_a_number(json, i)),
    }
}

#[cold]
fn not_finite(json: &[u8], i: usize, index: usize) -> String {
    format!("data value {} at index {index} is not a finite FP32 number", token(json, i))
}

#[cold]
fn not_a_number(json: &[u8], i: usize) -> String {
    format!("data value {} is not a number", token(json, i))
}

/// The number-like run of characters at `json[start..]`, for messages.
fn token(json: &[u8], start: usize) -> String {
    let len = json[start..]
        .iter()
        .take_while(|b| matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
        .count();
    String::from_utf8_lossy(&json[start..start + len]).into_owned()
}

/// The JSON number (RFC 8259 grammar) at `json[*i..]`, rounded to the nearest f32 (infinite
/// past f32's range), with `*i` moved past it; `None` when no JSON number starts there.
#[inline(always)]
fn number(json: &[u8], i: &mut usize) -> Option<f32> {
    let start = *i;
    let mut j = start;
    let negative = json.get(j) == Some(&b'-');
    j += usize::from(negative);
    let mut digits = Digits::default();
    let mut exponent = 0i64;
    match json.get(j) {
        Some(b'0') => j += 1,
        Some(b'1'..=b'9') => j = digits.read(json, j),
        _ => return None,
    }
    if json.get(j) == Some(&b'.') {
        let fraction = j + 1;
        j = fraction;
        if digits.mantissa == 0 {
            while json.get(j) == Some(&b'0') {
                j += 1;
            }
        }
        j = digits.read(json, j);
        if j == fraction {
            return None;
        }
        exponent -= (j - fraction) as i64;
    }
    if matches!(json.get(j), Some(b'e' | b'E')) {
        j += 1;
        let sign = match json.get(j) {
            Some(b'-') => {
                j += 1;
                -1
            }
            Some(b'+') => {
                j += 1;
                1
            }
            _ => 1,
        };
        let first = j;
        let mut written = 0i64;
        while let Some(d) = json.get(j).filter(|b| b.is_ascii_digit()) {
            written = (written * 10 + i64::from(d - b'0')).min(1 << 40);
            j += 1;
        }
        if j == first {
            return None;
        }
        exponent += sign * written;
    }
    *i = j;
    let fast = match digits {
        Digits { count: 19.., .. } => None,
        Digits { mantissa: 0, .. } => Some(0.0),
        Digits { mantissa, .. } => nearest_f32(mantissa, exponent),
    };
    match fast {
        Some(v) => Some(if negative { -v } else { v }),
        None => correctly_rounded(&json[start..j]),
    }
}

/// The standard library's parse of a number token the fast path leaves.
#[cold]
fn correctly_rounded(token: &[u8]) -> Option<f32> {
    // The token is ASCII: the grammar admits nothing else.
    std::str::from_utf8(token).ok()?.parse().ok()
}

/// The decimal digits of a number read so far, from its first nonzero digit.
#[derive(Default)]
struct Digits {
    /// The digits as an integer; only exact while `count` <= 19 (and below 2^63 while
    /// `count` <= 18).
    mantissa: u64,
    count: usize,
}

impl Digits {
    /// Appends the run of digits at `json[j..]`; the index past the run.
    #[inline(always)]
    fn read(&mut self, json: &[u8], j: usize) -> usize {
        #[cfg(target_arch = "x86_64")]
        if let Some(end) = self.read_sse2(json, j) {
            return end;
        }
        self.read_swar(json, j)
    }

    /// [`Digits::read`] sixteen digits at a time with SSE2 (every x86-64 has it); `None`
    /// within 16 bytes of either end of `json`.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn read_sse2(&mut self, json: &[u8], j: usize) -> Option<usize> {
        use std::arch::x86_64::*;
        if j < 16 || json.len().checked_sub(32)? < j {
            return None;
        }
        // SAFETY: SSE2 is part of x86-64; the loads read json[j - 16..j + 32], inside json.
        unsafe {
            let at = |k: usize| _mm_loadu_si128(json.as_ptr().add(k).cast());
            let zero = _mm_set1_epi8(b'0' as i8);
            let nine = _mm_set1_epi8(9);
            // A byte is a digit iff byte - '0' <= 9 unsigned.
            let digits = |v: __m128i| {
                let d = _mm_sub_epi8(v, zero);
                _mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(d, nine), d)) as u32
            };
            let mask = digits(at(j)) | digits(at(j + 16)) << 16;
            let run = (!mask).trailing_zeros() as usize;
            let (last, taken) = if run <= 16 { (j + run, run) } else { (j + 16, 16) };
            // The sixteen bytes that end with the digits taken, those before them zeroed:
            // leading zeros of a 16-digit number, first byte the most significant.
            let keep = _mm_loadu_si128(KEEP_LAST[taken..].as_ptr().cast());
            let d = _mm_and_si128(keep, _mm_sub_epi8(at(last - 16), zero));
            // Pairs, fours, eights: multiply-adds of neighbouring lanes.
            let z = _mm_setzero_si128();
            let tens = _mm_set1_epi32(0x0001_000a);
            let pairs = _mm_packs_epi32(
                _mm_madd_epi16(_mm_unpacklo_epi8(d, z), tens),
                _mm_madd_epi16(_mm_unpackhi_epi8(d, z), tens),
            );
            let fours = _mm_madd_epi16(pairs, _mm_set1_epi32(0x0001_0064));
            let eights = _mm_madd_epi16(_mm_packs_epi32(fours, fours), _mm_set1_epi32(0x0001_2710));
            let high = _mm_cvtsi128_si32(eights) as u64;
            let low = _mm_cvtsi128_si32(_mm_srli_si128(eights, 4)) as u64;
            self.mantissa =
                self.mantissa.wrapping_mul(POWERS[taken]).wrapping_add(high * 100_000_000 + low);
            self.count += taken;
            Some(if run <= 16 { last } else { self.read_swar(json, last) })
        }
    }

    /// [`Digits::read`] eight digits at a time in a u64.
    #[inline(always)]
    fn read_swar(&mut self, json: &[u8], mut j: usize) -> usize {
        while let Some(chunk) = json.get(j..).and_then(|rest| rest.first_chunk::<8>()) {
            let bytes = u64::from_le_bytes(*chunk);
            // Each byte is 0x33 here iff it is an ASCII digit (a carry out of a byte that is
            // not one only reaches the bytes after it).
            let classes = (bytes & 0xf0f0_f0f0_f0f0_f0f0)
                | ((bytes.wrapping_add(0x0606_0606_0606_0606) & 0xf0f0_f0f0_f0f0_f0f0) >> 4);
            let others = classes ^ 0x3333_3333_3333_3333;
            let values = bytes.wrapping_sub(0x3030_3030_3030_3030);
            if others == 0 {
                // Eight digits: the next load's address does not wait for this one's bytes.
                self.mantissa =
                    self.mantissa.wrapping_mul(100_000_000).wrapping_add(eight_digits(values));
                self.count += 8;
                j += 8;
                continue;
            }
            // The run's digits moved to the low end of the eight, zeros (leading) above; no
            // branch on an empty run, whose length varies from number to number.
            let run = (others.trailing_zeros() / 8) as usize;
            let values = values.checked_shl(8 * (8 - run as u32)).unwrap_or(0);
            self.mantissa =
                self.mantissa.wrapping_mul(POWERS[run]).wrapping_add(eight_digits(values));
            self.count += run;
            return j + run;
        }
        // The last bytes of a body, one at a time.
        while let Some(d) = json.get(j).filter(|b| b.is_ascii_digit()) {
            self.mantissa = self.mantissa.wrapping_mul(10).wrapping_add(u64::from(d - b'0'));
            self.count += 1;
            j += 1;
        }
        j
    }
}

/// Sixteen bytes from `KEEP_LAST[n..]` keep the last `n` lanes of a vector (0 <= n <= 16).
#[cfg(target_arch = "x86_64")]
const KEEP_LAST: [u8; 32] = {
    let mut keep = [0u8; 32];
    let mut k = 16;
    while k < 32 {
        keep[k] = 0xff;
        k += 1;
    }
    keep
};

/// 10^0 to 10^16: a mantissa shifted by a run of up to 16 digits.
const POWERS: [u64; 17] = {
    let mut powers = [1u64; 17];
    let mut k = 1;
    while k < 17 {
        powers[k] = powers[k - 1] * 10;
        k += 1;
    }
    powers
};

/// The integer written by eight digit values (0-9) in little-endian byte order, the first
/// byte the most significant digit: pairs, then fours, then all eight.
fn eight_digits(values: u64) -> u64 {
    let pairs = (values.wrapping_mul(10) + (values >> 8)) & 0x00ff_00ff_00ff_00ff;
    let fours = (pairs.wrapping_mul(100) + (pairs >> 16)) & 0x0000_ffff_0000_ffff;
    (fours.wrapping_mul(10_000) + (fours >> 32)) & 0xffff_ffff
}

/// 10^-44 to 10^44, each the nearest f64.
const POWERS_OF_TEN: [f64; 89] = [
    1e-44, 1e-43, 1e-42, 1e-41, 1e-40, 1e-39, 1e-38, 1e-37, 1e-36, 1e-35, 1e-34, 1e-33, 1e-32,
    1e-31, 1e-30, 1e-29, 1e-28, 1e-27, 1e-26, 1e-25, 1e-24, 1e-23, 1e-22, 1e-21, 1e-20, 1e-19,
    1e-18, 1e-17, 1e-16, 1e-15, 1e-14, 1e-13, 1e-12, 1e-11, 1e-10, 1e-9, 1e-8, 1e-7, 1e-6, 1e-5,
    1e-4, 1e-3, 1e-2, 1e-1, 1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12,
    1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22, 1e23, 1e24, 1e25, 1e26, 1e27, 1e28,
    1e29, 1e30, 1e31, 1e32, 1e33, 1e34, 1e35, 1e36, 1e37, 1e38, 1e39, 1e40, 1e41, 1e42, 1e43, 1e44,
];

/// The f32 nearest `mantissa * 10^exponent` (0 < mantissa < 10^18), when f64 arithmetic
/// settles it; `None` near a halfway point, outside f32's normal range or past 10^±44.
#[inline(always)]
fn nearest_f32(mantissa: u64, exponent: i64) -> Option<f32> {
    let power = POWERS_OF_TEN.get(usize::try_from(exponent + 44).ok()?)?;
    // Three roundings (the mantissa, the power, the product), each within half an ulp: the
    // product is within 2 ulps of the exact number.
    let y = mantissa as i64 as f64 * power;
    // Normal f32 values well inside the range, so that rounding keeps 24 bits and stays finite.
    if !(f64::from(f32::MIN_POSITIVE) * 2.0..f64::from(f32::MAX) / 2.0).contains(&y) {
        return None;
    }
    // The 29 bits f32 drops: 2^28 is halfway between two f32 values.
    let dropped = y.to_bits() & ((1 << 29) - 1);
    if dropped.abs_diff(1 << 28) <= 16 {
        return None;
    }
    Some(y as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `text` parsed alone (the digits read eight at a time) and inside a body (sixteen at a
    /// time with SSE2 on x86-64), which must agree bit for bit.
    fn parsed(text: &str) -> f32 {
        let mut i = 0;
        let alone = number(text.as_bytes(), &mut i).unwrap_or_else(|| panic!("{text} parses"));
        assert_eq!(i, text.len(), "{text} is read whole");
        let body = format!("{}{text}, {}", " ".repeat(20), " ".repeat(40));
        let mut i = 20;
        let inside = number(body.as_bytes(), &mut i).unwrap_or_else(|| panic!("{text} parses"));
        assert_eq!(i, 20 + text.len(), "{text} is read whole inside a body");
        assert_eq!(alone.to_bits(), inside.to_bits(), "{text}");
        alone
    }

    /// Random f32 values written as f64 reprs (what Python clients send) and as f32 reprs, and
    /// random decimals of 1-19 digits at exponents -45..38: all parse to the standard
    /// library's correctly rounded f32, bit for bit.
    #[test]
    fn numbers_round_like_the_standard_parser() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..200_000 {
            let bits = next() as u32;
            let v = f32::from_bits(bits);
            if !v.is_finite() {
                continue;
            }
            for text in [format!("{:?}", v as f64), format!("{v:?}"), format!("{v:e}")] {
                assert_eq!(
                    parsed(&text).to_bits(),
                    text.parse::<f32>().unwrap().to_bits(),
                    "{text}"
                );
            }
            let r = next();
            let digits = (r % 19 + 1) as u32;
            let mantissa = next() % 10u64.pow(digits);
            let exponent = (r >> 8) as i32 % 84 - 45;
            let text = format!("{mantissa}e{exponent}");
            assert_eq!(parsed(&text).to_bits(), text.parse::<f32>().unwrap().to_bits(), "{text}");
        }
    }

    /// Decimals at and beside the halfway points between f32 neighbours, which one rounding
    /// too many would get wrong, and the edges of the range.
    #[test]
    fn halfway_points_and_range_edges() {
        for bits in
            [0x3f80_0000u32, 0x3f80_0001, 0x4b7f_ffff, 0x0080_0000, 0x7f7f_fffe, 0x3dcc_cccd]
        {
            let low = f64::from(f32::from_bits(bits));
            let high = f64::from(f32::from_bits(bits + 1));
            let half = (low + high) / 2.0;
            for y in [half, f64::from_bits(half.to_bits() - 1), f64::from_bits(half.to_bits() + 1)]
            {
                for text in [format!("{y:?}"), format!("{y:.30e}"), format!("{y:.17e}")] {
                    assert_eq!(
                        parsed(&text).to_bits(),
                        text.parse::<f32>().unwrap().to_bits(),
                        "{text}"
                    );
                }
            }
        }
        for text in
            ["0", "-0", "0.0", "-0.0e5", "1e-46", "1e-39", "3.4028235e38", "3.5e38", "1e400"]
        {
            assert_eq!(parsed(text).to_bits(), text.parse::<f32>().unwrap().to_bits(), "{text}");
        }
        let long = format!("0.{}1", "0".repeat(400));
        assert_eq!(parsed(&long), 0.0);
        let many = format!("{}.5", "1".repeat(30));
        assert_eq!(parsed(&many), many.parse::<f32>().unwrap());
    }

    #[test]
    fn only_json_numbers_parse() {
        for text in ["", "-", "+1", ".5", "1.", "01", "1e", "1e+", "-.5", "1.e5", "e5", "0x10"] {
            let mut i = 0;
            let whole = number(text.as_bytes(), &mut i).is_some() && i == text.len();
            assert!(!whole, "{text:?} is not a JSON number");
        }
        // A number stops where the grammar does.
        let mut i = 0;
        assert_eq!(number(b"12]", &mut i), Some(12.0));
        assert_eq!(i, 2);
    }

    #[test]
    fn data_is_flattened_in_row_major_order() {
        let (values, end) = parse_data(b"[[1, 2.5],\n [ -3e0 ,4]] tail", 0).unwrap();
        assert_eq!((values, end), (vec![1.0, 2.5, -3.0, 4.0], 23));
        assert_eq!(parse_data(b"[]", 0).unwrap(), (vec![], 2));
        assert_eq!(parse_data(b"7", 0).unwrap(), (vec![7.0], 1));
        let err = |text: &str| parse_data(text.as_bytes(), 0).unwrap_err();
        assert!(err("[1, \"2\"]").contains("index 1 is not a number"), "{}", err("[1, \"2\"]"));
        assert!(err("[1, 1e39]").contains("1e39 at index 1 is not a finite"));
        assert!(err("[1, 2").contains("not closed"));
        assert!(err("[1 2]").contains("not closed"));
        assert!(err("[1,]").contains("not a number"));
        assert!(err(&format!("{}1{}", "[".repeat(40), "]".repeat(40))).contains("deep"));
    }

    #[test]
    fn cuts_only_the_data_of_inputs() {
        let json = br#"{"id":{"inputs":[{"data":[9]}]},"inputs":[{"name":"a","data":[1,2]},{"data" : [[3]],"shape":[1]}],"outputs":[{"data":[5]}]}"#;
        let cut = cut_data(json).expect("two arrays are cut");
        assert_eq!(cut.data, vec![(0, vec![1.0, 2.0]), (1, vec![3.0])]);
        assert_eq!(
            String::from_utf8(cut.json).unwrap(),
            r#"{"id":{"inputs":[{"data":[9]}]},"inputs":[{"name":"a","data":null},{"data" : null,"shape":[1]}],"outputs":[{"data":[5]}]}"#
        );
        // Left for serde: escaped keys, a key inside a string, data that is not all numbers,
        // broken structure.
        for json in [
            r#"{"inputs":[{"d\u0061ta":[1]}]}"#,
            r#"{"inputs":[{"name":"\"data\":[1]"}]}"#,
            r#"{"inputs":[{"data":[1,"2"]}]}"#,
            r#"{"inputs":[{"data":7}]}"#,
            r#"]{"inputs":[{"data":[1]}]}"#,
            r#"{"inputs":[{"name":"a"}]}"#,
            &format!(r#"{{"inputs":[{{"data":[1]}}],"x":{}{}}}"#, "[".repeat(200), "]".repeat(200)),
        ] {
            assert_eq!(cut_data(json.as_bytes()), None, "{json}");
        }
    }
}
