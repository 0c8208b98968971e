//! ticket-train: forward and backward passes of model graphs (one module per layer kind), Adam and SGD, the trainer, the
//! iterative-magnitude-pruning driver that finds winning tickets, and the charts of its reports.

pub mod engine;
pub mod error;
pub mod experiment;
pub mod imp;
pub mod init;
pub mod layers;
pub mod network;
pub mod optim;
pub mod plot;
pub mod prune;
pub mod replicates;
pub mod report;
pub mod rng;
pub mod run_files;
pub mod sparse;
pub mod sweep;
pub mod tiled_eval;
pub mod trainer;

pub use error::{Error, Result};
pub use trainer::{train, Ending, EvalRecord, Observer, TrainOptions, TrainOutcome};
