//! The UCI optical-recognition handwritten digits (1,797 images of 8x8 pixels in 0..=16), as
//! shipped in scikit-learn's `digits.csv.gz`, compiled into the binary so that the main job and
//! the tests run on a machine with nothing downloaded. Licence: see `crates/core/data/README.md`.

use super::Dataset;
use crate::{Error, Result};
use flate2::read::GzDecoder;
use std::io::Read;

const DIGITS_CSV_GZ: &[u8] = include_bytes!("../../data/digits.csv.gz");
pub(super) const FEATURES: usize = 64;
const MAX_PIXEL: f32 = 16.0;

/// All 1,797 digits in file order, pixels scaled to [0, 1].
pub fn load_all() -> Result<Dataset> {
    parse_csv(DIGITS_CSV_GZ)
}

fn parse_csv(gz: &[u8]) -> Result<Dataset> {
    const ORIGIN: &str = "<embedded digits.csv.gz>";
    let mut text = String::new();
    GzDecoder::new(gz)
        .read_to_string(&mut text)
        .map_err(|e| Error::invalid(ORIGIN, format!("cannot decompress: {e}")))?;
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for (line_no, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split(',').collect();
        let bad = || Error::invalid(ORIGIN, format!("line {}: expected 65 integers", line_no + 1));
        if fields.len() != FEATURES + 1 {
            return Err(bad());
        }
        for f in &fields[..FEATURES] {
            let v: f32 = f.trim().parse().map_err(|_| bad())?;
            images.push(v / MAX_PIXEL);
        }
        labels.push(fields[FEATURES].trim().parse::<u8>().map_err(|_| bad())?);
    }
    Ok(Dataset { features: FEATURES, images, labels })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_digits_are_complete() {
        let d = load_all().unwrap();
        assert_eq!(d.len(), 1797);
        assert_eq!(d.features, 64);
        let mut hist = [0usize; 10];
        for &l in &d.labels {
            hist[l as usize] += 1;
        }
        // scikit-learn documents ~180 images per class.
        assert!(hist.iter().all(|&h| (170..=185).contains(&h)), "{hist:?}");
        assert_eq!(hist.iter().sum::<usize>(), 1797);
        assert!(d.images.iter().all(|&p| (0.0..=1.0).contains(&p)));
        assert!(d.images.contains(&1.0));
    }
}
