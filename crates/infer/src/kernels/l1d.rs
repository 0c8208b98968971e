//! The size of a core's first-level data cache, which the blocked convolution sizes the input
//! rows a register block reads by: 32 KiB on Zen 3 and Zen 4, 48 KiB on Zen 5 and on Intel's
//! cores since Ice Lake.

use std::sync::OnceLock;

/// Bytes of cpu0's level-1 data cache as Linux describes it in sysfs, else 32 KiB (the
/// smallest of current x86-64 cores). Read once per process.
pub(crate) fn l1d_bytes() -> usize {
    static BYTES: OnceLock<usize> = OnceLock::new();
    *BYTES.get_or_init(|| from_sysfs().unwrap_or(32 << 10))
}

fn from_sysfs() -> Option<usize> {
    (0..8).find_map(|index| {
        let dir = format!("/sys/devices/system/cpu/cpu0/cache/index{index}");
        let read = |file: &str| std::fs::read_to_string(format!("{dir}/{file}")).ok();
        let is_l1d = read("level")?.trim() == "1" && read("type")?.trim() == "Data";
        is_l1d.then(|| parse_size(read("size")?.trim())).flatten()
    })
}

/// A sysfs cache size: `48K`, `1024K`, `2M` or a plain number of bytes.
fn parse_size(size: &str) -> Option<usize> {
    let digits = size.find(|c: char| !c.is_ascii_digit()).unwrap_or(size.len());
    let n: usize = size[..digits].parse().ok()?;
    match &size[digits..] {
        "" => Some(n),
        "K" => n.checked_mul(1 << 10),
        "M" => n.checked_mul(1 << 20),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysfs_sizes_parse() {
        assert_eq!(parse_size("48K"), Some(48 << 10));
        assert_eq!(parse_size("2M"), Some(2 << 20));
        assert_eq!(parse_size("32768"), Some(32768));
        assert_eq!(parse_size("48 KiB"), None);
        assert_eq!(parse_size(""), None);
    }

    #[test]
    fn the_cache_is_at_least_a_few_kilobytes() {
        assert!(l1d_bytes() >= 8 << 10, "{}", l1d_bytes());
    }
}
