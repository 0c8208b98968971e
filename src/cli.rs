//! Command-line interface: the clap definitions of every subcommand and its flags.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "ticket",
    version,
    about = "Find lottery tickets by iterative magnitude pruning, export them as CSR safetensors, run them sparse.",
    long_about = "Find lottery tickets by iterative magnitude pruning (Frankle & Carbin, ICLR 2019), \
export them as CSR safetensors, and run them with sparse CPU kernels.\n\n\
The whole pipeline on the embedded digits data, with nothing to download:\n  ticket find\n\n\
Each step on its own:\n  ticket train   --model models/lenet-300-100.toml --dataset fashion-mnist\n  \
ticket find    --model models/lenet-300-100.toml --dataset fashion-mnist --out runs/lenet --reinit-control\n  \
ticket report  runs/lenet\n  ticket export  runs/lenet --level 12 --dtype f16 --out lenet-7pct.safetensors\n  \
ticket infer   lenet-7pct.safetensors --dataset fashion-mnist --bench",
    after_help = "Run `ticket <command> --help` for the flags of each command."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Iterative magnitude pruning: train, prune, reset, retrain; then export the ticket.
    #[command(
        after_help = "Examples:\n  ticket find\n  ticket find --model models/lenet-300-100.toml --dataset fashion-mnist \\\n      --out runs/lenet --iterations 3000 --reinit-control\n\nRe-running the same command resumes after the last completed level."
    )]
    Find(FindArgs),
    /// Train one network, dense or under the mask of a checkpoint.
    #[command(
        after_help = "Examples:\n  ticket train\n  ticket train --model models/lenet-300-100.toml --dataset fashion-mnist --iterations 3000\n  ticket train --mask runs/lenet/level_05/final.safetensors --out runs/retrain"
    )]
    Train(TrainArgs),
    /// Convert a masked checkpoint (or a level of an experiment) to CSR safetensors.
    #[command(
        after_help = "Examples:\n  ticket export runs/lenet --out lenet.safetensors\n  ticket export runs/lenet --level 12 --dtype f16 --out lenet-f16.safetensors --dataset fashion-mnist\n  ticket export some/checkpoint.safetensors --out sparse.safetensors --json"
    )]
    Export(ExportArgs),
    /// Evaluate, run or benchmark a CSR model on the CPU.
    #[command(
        after_help = "Examples:\n  ticket infer lenet.safetensors --dataset fashion-mnist\n  ticket infer lenet.safetensors --bench --json\n  ticket infer lenet.safetensors --input batch.safetensors --output logits.safetensors"
    )]
    Infer(InferArgs),
    /// Tables and plots (SVG and PNG) of an experiment directory.
    #[command(
        after_help = "Examples:\n  ticket report runs/lenet\n  ticket report runs/lenet --json"
    )]
    Report(ReportArgs),
}

/// Which examples to use.
#[derive(Args, Debug, Clone)]
pub struct DataArgs {
    /// Built-in data set: the embedded UCI digits, or Fashion-MNIST from the Debian package
    /// `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist).
    #[arg(long, value_enum, default_value_t = DatasetName::Digits)]
    pub dataset: DatasetName,
    /// A directory of MNIST-style IDX files ({train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]);
    /// overrides --dataset.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatasetName {
    Digits,
    FashionMnist,
}

/// Training knobs shared by `find` and `train`.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Recipe file, or the name of a shipped one (digits-mlp, digits-conv, lenet-300-100,
    /// lenet-5, conv-2, conv-4, conv-6).
    #[arg(long, value_name = "FILE", default_value = "digits-mlp")]
    pub model: String,
    #[command(flatten)]
    pub data: DataArgs,
    /// Training iterations per run (overrides the recipe).
    #[arg(long, value_name = "N")]
    pub iterations: Option<usize>,
    /// Evaluate on validation and test every N iterations (overrides the recipe; the early-stop
    /// iteration is found on this grid, and evaluation of conv nets costs as much as training).
    #[arg(long, value_name = "N")]
    pub eval_every: Option<usize>,
    /// Seed of initialisation, batch order and controls; same seed and threads, same result.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Worker threads (default: all cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Train networks keeping fewer than this fraction of their weights with the sparse
    /// kernels (0: never, 1.01: always). Same numbers as dense up to float rounding.
    #[arg(long, value_name = "FRACTION", default_value_t = ticket_train::engine::SPARSE_BELOW)]
    pub sparse_below: f64,
}

#[derive(Args, Debug)]
pub struct FindArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Experiment directory (default: runs/<model>-<dataset>-s<seed>). Re-running resumes it.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Pruning levels after the dense one (overrides the recipe).
    #[arg(long, value_name = "N")]
    pub levels: Option<usize>,
    /// Also retrain each level's mask from a fresh random initialisation.
    #[arg(long)]
    pub reinit_control: bool,
    /// Also train a random mask of the same per-layer sparsity from the original initialisation.
    #[arg(long)]
    pub random_prune_control: bool,
    /// Levels that get the controls (default: all), e.g. 3,6,9,12.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub control_levels: Option<Vec<usize>>,
    /// Magnitude pruning per layer (paper) or with one global threshold (open_lth).
    #[arg(long, value_enum)]
    pub pruning: Option<PruningName>,
    /// Rewind survivors to their values at iteration K instead of the initial ones.
    #[arg(long, value_name = "K")]
    pub rewind: Option<usize>,
    /// Prune once, straight to this fraction of weights kept (e.g. 0.036), instead of iteratively.
    #[arg(long, value_name = "FRACTION")]
    pub one_shot: Option<f64>,
    /// End each run when the validation loss has not improved for N evaluations (off by
    /// default, as in the paper).
    #[arg(long, value_name = "N", num_args = 0..=1, default_missing_value = "5")]
    pub early_stop: Option<usize>,
    /// End each run when the mask pruning would draw changes in less than FRACTION of the
    /// weights for 3 evaluations in a row: an early-bird ticket (You et al. 2020).
    #[arg(long, value_name = "FRACTION", num_args = 0..=1, default_missing_value = "0.01")]
    pub early_bird: Option<f64>,
    /// Stop after the experiment; do not export the ticket.
    #[arg(long)]
    pub no_export: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PruningName {
    Layerwise,
    Global,
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Output directory for checkpoints and metrics (default: runs/train-<model>-<dataset>-s<seed>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Train under the masks of this checkpoint (its pruned weights stay exactly zero).
    #[arg(long, value_name = "CHECKPOINT")]
    pub mask: Option<PathBuf>,
    /// Also save checkpoints at these iterations (for rewinding), e.g. 100,500.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub save_at: Vec<usize>,
    /// Print the final metrics as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// A masked dense checkpoint (.safetensors) or an experiment directory.
    pub input: PathBuf,
    /// Level of the experiment directory to export (default: its chosen ticket).
    #[arg(long, value_name = "N")]
    pub level: Option<usize>,
    /// Output file (default: <input stem>.csr.safetensors beside the input).
    #[arg(long, short, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Type of the stored nonzero values.
    #[arg(long, value_enum, default_value_t = ValueDtype::F32)]
    pub dtype: ValueDtype,
    /// Overwrite an existing output file.
    #[arg(long)]
    pub force: bool,
    /// Measure the accuracy of the exported model on this data (optional).
    #[arg(long, value_enum)]
    pub dataset: Option<DatasetName>,
    /// IDX directory to measure accuracy on (overrides --dataset).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Print the compression report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueDtype {
    F32,
    F16,
    Bf16,
}

#[derive(Args, Debug)]
pub struct InferArgs {
    /// A CSR safetensors model written by `ticket export`.
    pub model: PathBuf,
    /// Evaluate accuracy on a built-in data set.
    #[arg(long, value_enum)]
    pub dataset: Option<DatasetName>,
    /// Evaluate accuracy on an IDX directory (overrides --dataset).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Latency at batch 1 (p50/p99) and throughput at batch 64 and 1024, sparse vs dense,
    /// then the sparse path's time per step (layer) at each batch size.
    #[arg(long)]
    pub bench: bool,
    /// Inputs: a safetensors file with tensor `input` F32 [batch, features].
    #[arg(long, value_name = "FILE", requires = "output")]
    pub input: Option<PathBuf>,
    /// Where to write tensor `logits` F32 [batch, classes].
    #[arg(long, value_name = "FILE", requires = "input")]
    pub output: Option<PathBuf>,
    /// Worker threads (default: all cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Print results as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Experiment directory written by `ticket find`.
    pub dir: PathBuf,
    /// Print the table as JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Levels whose accuracy curves are plotted (default: a spread of levels).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub curves: Option<Vec<usize>>,
}
