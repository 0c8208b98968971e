//! Reads the real Fashion-MNIST IDX files installed by the Debian package
//! `dataset-fashion-mnist`. Skipped (with a notice) when they are absent, unless
//! `TICKET_REQUIRE_FASHION_MNIST=1` (CI sets it) turns absence into a failure.

use std::path::Path;
use ticket_core::dataset::{read_idx_pair, FASHION_MNIST_DIR};
use ticket_core::DataSource;

fn available() -> bool {
    let present = Path::new(FASHION_MNIST_DIR).join("train-labels-idx1-ubyte.gz").exists();
    if !present {
        assert!(
            std::env::var("TICKET_REQUIRE_FASHION_MNIST").is_err(),
            "Fashion-MNIST is required but missing from {FASHION_MNIST_DIR}"
        );
        eprintln!("skipping: Fashion-MNIST not installed in {FASHION_MNIST_DIR}");
    }
    present
}

#[test]
fn idx_files_have_the_published_sizes_and_balanced_labels() {
    if !available() {
        return;
    }
    let dir = Path::new(FASHION_MNIST_DIR);
    for (prefix, n) in [("train", 60_000), ("t10k", 10_000)] {
        let d = read_idx_pair(dir, prefix).unwrap();
        assert_eq!(d.len(), n);
        assert_eq!(d.features, 784);
        let mut hist = [0usize; 10];
        for &l in &d.labels {
            hist[l as usize] += 1;
        }
        // Fashion-MNIST has exactly n/10 examples of each class.
        assert_eq!(hist, [n / 10; 10], "{prefix}");
        assert!(d.images.iter().all(|&p| (0.0..=1.0).contains(&p)));
    }
}

#[test]
fn fashion_mnist_source_holds_out_validation() {
    if !available() {
        return;
    }
    let s = DataSource::FashionMnist.load(5000).unwrap();
    assert_eq!((s.train.len(), s.validation.len(), s.test.len()), (55_000, 5_000, 10_000));
    assert_eq!(s.classes, 10);
}
