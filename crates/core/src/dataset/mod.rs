//! Data sets as flat `f32` pixel rows in [0, 1] with `u8` labels, and their deterministic
//! train / validation / test splits.
//!
//! Three sources: the embedded UCI digits (default; nothing to install), Fashion-MNIST from the
//! Debian package `dataset-fashion-mnist`, and any directory of MNIST-style IDX files.

mod digits;
pub mod idx;

use crate::{Error, Par, Result};
use rayon::prelude::*;
use std::fmt;
use std::path::{Path, PathBuf};

pub use idx::{read_idx, IdxArray};

/// Bytes of a batch from which reading it is split over threads ([`Dataset::batch_par`]).
pub const PARALLEL_COPY_MIN_BYTES: usize = 64 << 10;
/// Where `dataset-fashion-mnist` installs the IDX files.
pub const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";
/// Share of the embedded digits held out as the test set (they come as one file).
const DIGITS_TEST_SHARE: f64 = 0.2;
/// Seed of the fixed shuffle that makes splits; it is not the run seed, so every run of every
/// experiment sees the same validation and test examples.
const SPLIT_SEED: u64 = 0x7469_636b_6574; // "ticket"

/// Examples as rows: `images[i * features .. (i + 1) * features]` has label `labels[i]`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dataset {
    pub features: usize,
    pub images: Vec<f32>,
    pub labels: Vec<u8>,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn image(&self, i: usize) -> &[f32] {
        &self.images[i * self.features..(i + 1) * self.features]
    }

    /// Copies the examples at `indices` into `images` (row after row) and `labels`: a training
    /// batch, 60 random rows of a 188 MB split, read from memory. On `par`'s threads once the
    /// batch is [`PARALLEL_COPY_MIN_BYTES`] or more, which halves a latency-bound gather:
    /// LeNet-300-100 on Fashion-MNIST, 38 -> 25 us a batch (Intel Xeon, 2 threads).
    /// Prefetching the next batch's rows instead made the copy slower there (54 us: 2,940
    /// prefetch instructions), and no faster at the sparse levels.
    pub fn copy_batch(&self, indices: &[usize], images: &mut [f32], labels: &mut [u8], par: Par) {
        let f = self.features;
        let images = &mut images[..indices.len() * f];
        if self.batch_par(indices.len(), par).threads() > 1 {
            images
                .par_chunks_mut(f)
                .zip(indices.par_iter())
                .with_min_len(par.min_len(indices.len()))
                .for_each(|(row, &i)| row.copy_from_slice(self.image(i)));
        } else {
            for (row, &i) in images.chunks_exact_mut(f).zip(indices) {
                row.copy_from_slice(self.image(i));
            }
        }
        for (label, &i) in labels.iter_mut().zip(indices) {
            *label = self.labels[i];
        }
    }

    /// The threads of `par` that reading a batch of `examples` rows should use: all of them
    /// from [`PARALLEL_COPY_MIN_BYTES`] on, else this one.
    pub fn batch_par(&self, examples: usize, par: Par) -> Par {
        let bytes = std::mem::size_of::<f32>() * examples * self.features;
        if par.threads() > 1 && bytes >= PARALLEL_COPY_MIN_BYTES {
            par
        } else {
            Par::Seq
        }
    }

    /// The examples at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Dataset {
        let mut images = Vec::with_capacity(indices.len() * self.features);
        for &i in indices {
            images.extend_from_slice(self.image(i));
        }
        Dataset {
            features: self.features,
            images,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
        }
    }
}

/// The three splits every run uses, plus the number of classes.
#[derive(Clone, Debug)]
pub struct Splits {
    /// Human-readable name recorded in checkpoints (`digits`, `fashion-mnist`, a directory).
    pub name: String,
    pub classes: usize,
    pub train: Dataset,
    pub validation: Dataset,
    pub test: Dataset,
}

/// Where the examples come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataSource {
    /// The embedded UCI digits.
    Digits,
    /// Fashion-MNIST from [`FASHION_MNIST_DIR`].
    FashionMnist,
    /// A directory with `{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`.
    Dir(PathBuf),
}

impl fmt::Display for DataSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataSource::Digits => f.write_str("digits"),
            DataSource::FashionMnist => f.write_str("fashion-mnist"),
            DataSource::Dir(dir) => write!(f, "{}", dir.display()),
        }
    }
}

/// Pixels of a Fashion-MNIST image (28 x 28).
const FASHION_MNIST_FEATURES: usize = 28 * 28;

impl DataSource {
    /// Features per example of a built-in source, known without loading it (`None` for a
    /// directory, whose files tell).
    pub fn features(&self) -> Option<usize> {
        match self {
            DataSource::Digits => Some(digits::FEATURES),
            DataSource::FashionMnist => Some(FASHION_MNIST_FEATURES),
            DataSource::Dir(_) => None,
        }
    }

    /// Loads the source and splits it; `validation_size` examples of the training data are
    /// held out for early stopping.
    pub fn load(&self, validation_size: usize) -> Result<Splits> {
        let (train_all, test) = match self {
            DataSource::Digits => {
                let all = digits::load_all()?;
                let order = permutation(all.len(), SPLIT_SEED);
                let n_test = (all.len() as f64 * DIGITS_TEST_SHARE).round() as usize;
                (all.select(&order[n_test..]), all.select(&order[..n_test]))
            }
            DataSource::FashionMnist => {
                let dir = Path::new(FASHION_MNIST_DIR);
                if !dir.join("train-images-idx3-ubyte.gz").exists()
                    && !dir.join("train-images-idx3-ubyte").exists()
                {
                    return Err(Error::invalid(
                        dir,
                        "Fashion-MNIST is not installed: run `sudo apt-get install \
                         dataset-fashion-mnist` (Debian/Ubuntu), or pass --data DIR with the IDX files",
                    ));
                }
                (read_idx_pair(dir, "train")?, read_idx_pair(dir, "t10k")?)
            }
            DataSource::Dir(dir) => (read_idx_pair(dir, "train")?, read_idx_pair(dir, "t10k")?),
        };
        if train_all.features != test.features {
            return Err(Error::usage(format!(
                "{self}: train images have {} pixels but test images have {}",
                train_all.features, test.features
            )));
        }
        if validation_size >= train_all.len() {
            return Err(Error::usage(format!(
                "validation size {validation_size} leaves no training data ({self} has {} training examples)",
                train_all.len()
            )));
        }
        let order = permutation(train_all.len(), SPLIT_SEED ^ 1);
        let validation = train_all.select(&order[..validation_size]);
        let train = train_all.select(&order[validation_size..]);
        let classes = train_all.labels.iter().chain(&test.labels).map(|&l| l as usize + 1).max();
        Ok(Splits {
            name: self.to_string(),
            classes: classes.unwrap_or(0),
            train,
            validation,
            test,
        })
    }
}

/// Reads `{prefix}-images-idx3-ubyte[.gz]` and `{prefix}-labels-idx1-ubyte[.gz]` from `dir`.
pub fn read_idx_pair(dir: &Path, prefix: &str) -> Result<Dataset> {
    let images_path = find_idx(dir, &format!("{prefix}-images-idx3-ubyte"))?;
    let labels_path = find_idx(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
    let images = read_idx(&images_path)?;
    let labels = read_idx(&labels_path)?;
    if images.dims.len() != 3 {
        return Err(Error::invalid(
            &images_path,
            format!("images must have 3 dimensions [n, rows, cols], found {:?}", images.dims),
        ));
    }
    if labels.dims.len() != 1 {
        return Err(Error::invalid(
            &labels_path,
            format!("labels must have 1 dimension [n], found {:?}", labels.dims),
        ));
    }
    if images.dims[0] != labels.dims[0] {
        return Err(Error::invalid(
            &labels_path,
            format!(
                "{} labels for {} images in {}",
                labels.dims[0],
                images.dims[0],
                images_path.display()
            ),
        ));
    }
    Ok(Dataset {
        features: images.dims[1] * images.dims[2],
        images: images.data.iter().map(|&p| p as f32 / 255.0).collect(),
        labels: labels.data,
    })
}

fn find_idx(dir: &Path, stem: &str) -> Result<PathBuf> {
    let raw = dir.join(stem);
    let gz = dir.join(format!("{stem}.gz"));
    match (raw.exists(), gz.exists()) {
        (true, _) => Ok(raw),
        (false, true) => Ok(gz),
        _ => Err(Error::invalid(dir, format!("no {stem} or {stem}.gz in this directory"))),
    }
}

/// A seeded Fisher-Yates shuffle of `0..n` (splitmix64), fixed forever so splits never move.
pub fn permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch large enough to be copied on two threads, and a small one copied on this
    /// thread, both equal to `select` of the same examples.
    #[test]
    fn copy_batch_equals_select_on_any_threads() {
        let features = 784;
        let n = 100;
        let data = Dataset {
            features,
            images: (0..n * features).map(|i| (i % 251) as f32 / 250.0).collect(),
            labels: (0..n).map(|i| (i % 10) as u8).collect(),
        };
        for indices in [[7, 3, 99, 3, 0, 42].repeat(10), [5, 1].to_vec()] {
            assert_eq!(
                indices.len() * features * 4 >= PARALLEL_COPY_MIN_BYTES,
                indices.len() > 2,
                "one batch of each kind"
            );
            let want = data.select(&indices);
            for par in [Par::Seq, Par::Rayon(2)] {
                let mut images = vec![f32::NAN; (indices.len() + 1) * features];
                let mut labels = vec![255u8; indices.len()];
                data.copy_batch(&indices, &mut images, &mut labels, par);
                assert_eq!(images[..indices.len() * features], want.images[..], "{par:?}");
                assert!(images[indices.len() * features..].iter().all(|v| v.is_nan()));
                assert_eq!(labels, want.labels, "{par:?}");
            }
        }
    }

    #[test]
    fn digits_splits_are_disjoint_and_complete() {
        let s = DataSource::Digits.load(180).unwrap();
        assert_eq!((s.train.len(), s.validation.len(), s.test.len()), (1258, 180, 359));
        assert_eq!(s.classes, 10);
        assert_eq!(s.name, "digits");
        // Every embedded image lands in exactly one split.
        let all = digits::load_all().unwrap();
        let mut seen: Vec<&[f32]> = [&s.train, &s.validation, &s.test]
            .iter()
            .flat_map(|d| (0..d.len()).map(|i| d.image(i)))
            .collect();
        let mut expected: Vec<&[f32]> = (0..all.len()).map(|i| all.image(i)).collect();
        let key = |a: &&[f32], b: &&[f32]| a.partial_cmp(b).unwrap();
        seen.sort_by(key);
        expected.sort_by(key);
        assert_eq!(seen, expected);
    }

    /// splitmix64 (Steele, Lea & Flood 2014) written out separately from [`permutation`],
    /// checked against the published outputs for seed 1234567.
    struct SplitMix64(u64);

    impl SplitMix64 {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let z = self.0;
            let z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
    }

    /// Fisher-Yates from the last position down, drawing `next() % (i + 1)`.
    fn reference_shuffle(n: usize, seed: u64) -> Vec<usize> {
        let mut rng = SplitMix64(seed);
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            order.swap(i, (rng.next() % (i as u64 + 1)) as usize);
        }
        order
    }

    /// FNV-1a over the little-endian u64 bytes of `indices`, in order.
    fn fnv1a(indices: &[usize]) -> u64 {
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        for b in indices.iter().flat_map(|&i| (i as u64).to_le_bytes()) {
            h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
        h
    }

    /// One split of the embedded digits as recorded: the first file indices, the FNV-1a hash
    /// of all of them in order, the count of each class. Computed once by a Python
    /// implementation of the same shuffle over `digits.csv.gz`.
    struct RecordedSplit {
        len: usize,
        first: [usize; 8],
        hash: u64,
        classes: [usize; 10],
    }

    const TRAIN: RecordedSplit = RecordedSplit {
        len: 1258,
        first: [209, 223, 915, 1004, 1183, 576, 888, 202],
        hash: 0xc069_97d8_f381_3df0,
        classes: [132, 131, 113, 123, 124, 138, 119, 129, 118, 131],
    };
    const VALIDATION: RecordedSplit = RecordedSplit {
        len: 180,
        first: [1292, 838, 693, 116, 310, 1792, 796, 438],
        hash: 0xe8f7_a680_3176_6f9f,
        classes: [18, 16, 22, 20, 24, 17, 21, 11, 15, 16],
    };
    const TEST: RecordedSplit = RecordedSplit {
        len: 359,
        first: [932, 1659, 922, 1300, 787, 248, 166, 1470],
        hash: 0xd815_916f_be67_2ef7,
        classes: [28, 35, 42, 40, 33, 27, 41, 39, 41, 33],
    };

    #[test]
    fn reference_splitmix64_gives_the_published_outputs() {
        let mut rng = SplitMix64(1_234_567);
        let got = [rng.next(), rng.next(), rng.next()];
        assert_eq!(
            got,
            [6_457_827_717_110_365_317, 3_203_168_211_198_807_973, 9_817_491_932_198_370_423]
        );
    }

    #[test]
    fn permutation_is_the_reference_shuffle() {
        for (n, seed) in [(1797, SPLIT_SEED), (1438, SPLIT_SEED ^ 1), (10, 0), (1, 5), (0, 5)] {
            assert_eq!(permutation(n, seed), reference_shuffle(n, seed), "n {n}, seed {seed}");
        }
    }

    /// The digits split with 180 validation examples is the recorded one, example for
    /// example: a change of seed, shuffle, test share or selection order moves it.
    #[test]
    fn digits_split_is_the_recorded_one() {
        let all = digits::load_all().unwrap();
        let order = reference_shuffle(all.len(), SPLIT_SEED);
        let n_test = 359; // 20% of 1,797, rounded
        let (test, train_all) = order.split_at(n_test);
        let order = reference_shuffle(train_all.len(), SPLIT_SEED ^ 1);
        let validation: Vec<usize> = order[..180].iter().map(|&k| train_all[k]).collect();
        let train: Vec<usize> = order[180..].iter().map(|&k| train_all[k]).collect();

        // Disjoint and complete: every file index in exactly one split.
        let mut every: Vec<usize> = [&train[..], &validation, test].concat();
        every.sort();
        assert_eq!(every, (0..all.len()).collect::<Vec<_>>());

        let s = DataSource::Digits.load(180).unwrap();
        let splits = [("train", &s.train, &train[..]), ("validation", &s.validation, &validation)];
        for ((name, loaded, indices), recorded) in
            splits.into_iter().chain([("test", &s.test, test)]).zip([&TRAIN, &VALIDATION, &TEST])
        {
            assert_eq!(indices.len(), recorded.len, "{name}");
            assert_eq!(indices[..8], recorded.first, "{name}: first indices");
            assert_eq!(fnv1a(indices), recorded.hash, "{name}: membership hash");
            assert!(*loaded == all.select(indices), "{name}: loaded split differs from the record");
            let mut classes = [0usize; 10];
            for &l in &loaded.labels {
                classes[l as usize] += 1;
            }
            assert_eq!(classes, recorded.classes, "{name}: class counts");
        }
    }

    #[test]
    fn permutation_is_a_permutation() {
        let mut p = permutation(1000, 3);
        assert_ne!(p, (0..1000).collect::<Vec<_>>());
        p.sort();
        assert_eq!(p, (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn too_large_validation_is_a_usage_error() {
        let err = DataSource::Digits.load(5000).unwrap_err().to_string();
        assert!(err.contains("validation size 5000"), "{err}");
    }
}
