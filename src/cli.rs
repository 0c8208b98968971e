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
        after_help = "Examples:\n  ticket find\n  ticket find --model models/lenet-300-100.toml --dataset fashion-mnist \\\n      --out runs/lenet --iterations 3000 --reinit-control\n  ticket find --model model.onnx --dataset fashion-mnist    # the file's architecture, fresh weights\n\nRe-running the same command resumes after the last completed level."
    )]
    Find(FindArgs),
    /// Train one network, dense or under the mask of a checkpoint.
    #[command(
        after_help = "Examples:\n  ticket train\n  ticket train --model models/lenet-300-100.toml --dataset fashion-mnist --iterations 3000\n  ticket train --mask runs/lenet/level_05/final.safetensors --out runs/retrain"
    )]
    Train(TrainArgs),
    /// Convert a masked checkpoint (or a level of an experiment), a PyTorch state dict or an
    /// ONNX model to CSR safetensors, optionally pruning it on the way; or re-encode a CSR
    /// file in other codecs.
    #[command(
        after_help = "Examples:\n  ticket export runs/lenet --out lenet.safetensors\n  ticket export runs/lenet --level 12 --dtype f16 --out lenet-f16.safetensors --dataset fashion-mnist\n  ticket export some/checkpoint.safetensors --out sparse.safetensors --json\n  ticket export runs/lenet --dtype k5 --index-bits 5 --dataset fashion-mnist --out lenet-k5.safetensors\n  ticket export runs/lenet --sweep --dataset fashion-mnist   (compare every codec, write nothing)\n  ticket export lenet.safetensors --dtype k6 --index-bits 5 --out lenet-k6.safetensors   (re-encode a CSR file)\n\nModels from PyTorch (README: \"Bring your own model\"); --keep prunes on export:\n  ticket export model.onnx --keep 0.1 --dataset fashion-mnist\n  ticket export state_dict.safetensors --out sparse.safetensors\n  ticket export state_dict.safetensors --layers input_layer,hidden,head\n  ticket export conv_state_dict.safetensors --model lenet-5\n\nAlexNet as Han et al. prune it, with Deep Compression's codecs:\n  ticket export alexnet.onnx --keep-layers conv1=0.84,conv2=0.38,conv3=0.35,conv4=0.37,conv5=0.37,fc6=0.09,fc7=0.09,fc8=0.25 --dtype conv=k8,linear=k5 --index-bits 5"
    )]
    Export(ExportArgs),
    /// Evaluate, run or benchmark a CSR model on the CPU.
    #[command(
        after_help = "Examples:\n  ticket infer lenet.safetensors --dataset fashion-mnist\n  ticket infer lenet.safetensors --bench --json\n  ticket infer lenet.safetensors --input batch.safetensors --output logits.safetensors"
    )]
    Infer(InferArgs),
    /// Serve CSR models over HTTP (Open Inference Protocol: KServe v2 / Triton clients), with
    /// dynamic batching.
    #[command(
        long_about = "Serve CSR models over HTTP with the Open Inference Protocol (KServe v2 REST, as \
Triton, KServe and Seldon MLServer speak it), so that their clients (e.g. tritonclient[http], \
JSON or binary tensors) can call them.\n\n\
Endpoints: GET /v2/health/live, /v2/health/ready, /v2, /v2/models/NAME, /v2/models/NAME/ready, \
/metrics (Prometheus); POST /v2/models/NAME/infer with input tensor `input` FP32 [batch, *input \
shape] and outputs `logits` FP32 [batch, classes] and `class` INT64 [batch].\n\n\
Concurrent requests to one model are merged into one batched kernel call of up to --max-batch \
examples; a batch waits up to --max-queue-delay-us for more only while more requests are \
arriving, so a lone request runs at once. A full queue answers 503. SIGTERM or Ctrl-C stops \
accepting connections, answers the requests in flight and exits 0.",
        after_help = "Examples:\n  ticket serve --model lenet=lenet.safetensors\n  ticket serve --model models/ --port 8080 --max-batch 128 --max-queue-delay-us 200\n  curl -s localhost:8000/v2/models/lenet\n  curl -s localhost:8000/v2/models/lenet/infer -d '{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,784],\"data\":[...]}]}'"
    )]
    Serve(ServeArgs),
    /// Tables and plots (SVG and PNG) of an experiment directory.
    #[command(
        after_help = "Examples:\n  ticket report runs/lenet\n  ticket report runs/lenet --json\n  ticket report runs/lenet-fmnist-s0        # its replicate_K/ directories: mean, min, max per level\n\nOver replicates, every accuracy, the early-stop iteration and the controls get n, mean, min\nand max per level, and the plots draw the means with min-max error bars."
    )]
    Report(ReportArgs),
    /// A grid of recipes x data x options x seeds x replicates as independent `find` jobs,
    /// run here N at a time or as a Slurm job array.
    #[command(
        after_help = "Examples:\n  ticket sweep sweep.toml                    # list the jobs\n  ticket sweep sweep.toml --local 2          # run them here, 2 at a time\n  ticket sweep sweep.toml --slurm            # write OUT/slurm/sweep.sbatch (one array task per job)\n  ticket sweep sweep.toml --slurm --submit   # ... and submit it with sbatch\n  ticket sweep sweep.toml --status           # done, running, failed per job\n  ticket report OUT/digits-mlp-digits-default-s0   # mean, min, max over its replicates\n\nsweep.toml:\n  out = \"runs/sweep\"            # relative to the file\n  models = [\"digits-mlp\"]       # shipped recipes or recipe files\n  datasets = [\"digits\"]         # digits, fashion-mnist or an IDX directory\n  seeds = [0]\n  replicates = 3\n  [find]                        # options of every job, named as find's flags\n  iterations = 300\n  levels = 4\n  [variants.reset]              # one experiment per variant, overriding [find]\n  [variants.rewind]\n  rewind = 50\n  reinit_control = true\n  [slurm]\n  time = \"02:00:00\"\n  cpus_per_task = 2\n  mem = \"4G\"\n\nEvery job is a `ticket find` of one replicate directory, which resumes: re-running a sweep,\nor Slurm requeueing a killed or pre-empted task, continues where it stopped."
    )]
    Sweep(SweepArgs),
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
    /// lenet-5, conv-2, conv-4, conv-6, alexnet), or a model file (.onnx, or a PyTorch state dict in
    /// .safetensors) whose architecture is trained from a fresh initialisation.
    #[arg(long, value_name = "FILE", default_value = "digits-mlp")]
    pub model: String,
    /// With a state dict as --model: its modules in network order, e.g. fc1,fc2,out.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub layers: Option<Vec<String>>,
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
    /// Run replicate K of the experiment in <out>/replicate_K/, seeded with a pure function
    /// of --seed and K (SplitMix64; see `ticket report` for the statistics over replicates).
    #[arg(long, value_name = "K")]
    pub replicate: Option<usize>,
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
    /// A masked dense checkpoint (.safetensors), an experiment directory, a ticket CSR file
    /// (re-encoded from its stored weights), a PyTorch state dict saved with safetensors, or
    /// an ONNX model (.onnx).
    pub input: PathBuf,
    /// State dicts: the modules in network order, e.g. fc1,fc2,out (default: from their
    /// names, numbers compared as numbers, or the one order in which the shapes chain).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub layers: Option<Vec<String>>,
    /// State dicts: the recipe (file or shipped name) whose graph the weights belong to, with
    /// matching layer names; needed for conv nets, whose strides, padding and pooling a state
    /// dict does not record.
    #[arg(long, value_name = "RECIPE")]
    pub model: Option<String>,
    /// Prune on export to this fraction of the weights kept (one-shot magnitude pruning of
    /// the trained weights; biases are never pruned). With --dataset/--data the report shows
    /// the accuracy before and after.
    #[arg(long, value_name = "FRACTION")]
    pub keep: Option<f64>,
    /// With --keep: each layer keeps FRACTION of its weights (layerwise), or one magnitude
    /// threshold over all layers (global).
    #[arg(long, value_enum, default_value_t = PruningName::Layerwise, requires = "keep")]
    pub pruning: PruningName,
    /// Prune on export layer by layer, keeping FRACTION of each named layer's weights (Han et
    /// al.'s per-layer one-shot magnitude pruning), e.g. for torchvision's AlexNet
    /// conv1=0.84,conv2=0.38,conv3=0.35,conv4=0.37,conv5=0.37,fc6=0.09,fc7=0.09,fc8=0.25.
    /// A layer is named as the model names it (an ONNX file's weights, e.g. features.0 or
    /// classifier.1; `ticket export` prints them) or, Han's way, convP / fcP for the conv or
    /// linear layer at position P (from 1) among the weighted layers. Layers not named keep
    /// --keep of their weights, or all of them.
    #[arg(long, value_name = "NAME=FRACTION,...", value_parser = parse_layer_keep, value_delimiter = ',')]
    pub keep_layers: Vec<(String, f64)>,
    /// Level of the experiment directory to export (default: its chosen ticket).
    #[arg(long, value_name = "N")]
    pub level: Option<usize>,
    /// Output file (default: <input stem>.csr.safetensors beside the input).
    #[arg(long, short, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// How the kept values are stored: f32, f16, bf16 (floats), int8 (symmetric, one f32
    /// scale per output row/channel) or k2..k8 (a per-layer k-means codebook of up to 2^N f32
    /// centroids, N-bit indices into it); one for every layer, or one per layer kind, e.g.
    /// conv=k8,linear=k5 (Deep Compression's AlexNet setting; a kind not named stays f32).
    #[arg(long, default_value = "f32", value_parser = parse_value_codecs, value_name = "DTYPE")]
    pub dtype: ValueCodecs,
    /// Store each row's column indices as gaps of N bits (3..8; a gap too long for N bits
    /// takes filler entries) instead of absolute u16/u32 indices: one width for every layer,
    /// one per layer kind, e.g. conv=4,linear=5 (a kind not named stays absolute), or auto
    /// (per kind the width giving the fewest bytes, computed exactly from the kept weights).
    #[arg(long, value_name = "N|conv=N,linear=M|auto", value_parser = parse_index_request)]
    pub index_bits: Option<IndexRequest>,
    /// Export with every value codec, absolute and 3..8-bit gap indices (and, for a conv net
    /// whose layer kinds are best served by different widths, those per kind, as
    /// `--index-bits auto` writes), in memory, and print a table of file bytes, bits per kept
    /// weight and (with --dataset/--data) accuracy, to pick a codec; writes no file.
    #[arg(long, conflicts_with_all = ["out", "force"])]
    pub sweep: bool,
    /// Fine-tune the k2..k8 codebooks for ITERATIONS Adam steps on the training split of
    /// --dataset/--data (Deep Compression's trained quantization): the network runs with
    /// the shared weights, each centroid's gradient is the sum of its weights' gradients,
    /// masks, cluster assignments and biases stay fixed. The report shows the test accuracy
    /// with the k-means centroids and fine-tuned. With --sweep, every kN row is fine-tuned.
    /// Not for float or int8 values. Example:
    /// `ticket export run/ --dtype k4 --dataset fashion-mnist --finetune 2000`.
    #[arg(long, value_name = "ITERATIONS", value_parser = clap::value_parser!(u64).range(1..))]
    pub finetune: Option<u64>,
    /// The learning rate of --finetune (default 3e-4; with Adam it is about how far a
    /// centroid moves per step).
    #[arg(long, value_name = "LR", requires = "finetune")]
    pub finetune_lr: Option<f32>,
    /// The optimizer of --finetune: adam, or sgd (momentum 0.9, as Deep Compression; its
    /// step scales with the summed gradient, and 1e-3 was its best rate on LeNet-300-100).
    #[arg(long, value_name = "NAME", requires = "finetune", value_parser = parse_optimizer)]
    pub finetune_optimizer: Option<OptimizerKind>,
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

pub use ticket_core::csr_format::ValueCodecs;

fn parse_value_codecs(text: &str) -> Result<ValueCodecs, String> {
    text.parse()
}

pub use ticket_export::IndexRequest;

fn parse_index_request(text: &str) -> Result<IndexRequest, String> {
    text.parse()
}

pub use ticket_core::recipe::Optimizer as OptimizerKind;

fn parse_optimizer(text: &str) -> Result<OptimizerKind, String> {
    match text {
        "adam" => Ok(OptimizerKind::Adam),
        "sgd" => Ok(OptimizerKind::Sgd),
        other => Err(format!("`{other}` is not adam or sgd")),
    }
}

/// One `NAME=FRACTION` of `--keep-layers`.
fn parse_layer_keep(text: &str) -> Result<(String, f64), String> {
    let (name, keep) =
        text.split_once('=').ok_or_else(|| format!("`{text}` is not NAME=FRACTION"))?;
    let keep: f64 =
        keep.trim().parse().map_err(|_| format!("`{text}`: `{keep}` is not a number"))?;
    if !(keep > 0.0 && keep <= 1.0) {
        return Err(format!("`{text}`: give the fraction of weights to keep, in (0, 1]"));
    }
    Ok((name.trim().to_string(), keep))
}

#[derive(Args, Debug)]
pub struct InferArgs {
    /// A CSR safetensors model written by `ticket export`.
    pub model: PathBuf,
    /// Evaluate accuracy on a built-in data set. With no data, --bench or --input named, the
    /// model is evaluated on the built-in set it was trained on (else the digits) when that
    /// set's images fit it.
    #[arg(long, value_enum)]
    pub dataset: Option<DatasetName>,
    /// Evaluate accuracy on an IDX directory (overrides --dataset).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Latency at batch 1 (p50/p99) and throughput at batch 64 and 1024, sparse vs dense, the
    /// sparse path's time per step (layer) at each batch size, its share of the machine's
    /// peak multiply-add rate (measured before and after, on one thread and all), and
    /// memory: open + validate time, weight and activation workspace bytes, and the
    /// process's peak resident set (getrusage) after loading, after the sparse runs and
    /// after the dense.
    #[arg(long)]
    pub bench: bool,
    /// Benchmark on the test images of a data set (`digits`, `fashion-mnist` or an IDX
    /// directory) instead of synthetic inputs, which have no zeros: real pixels and the ReLU
    /// outputs they produce are partly zero, which the batch-1 sparse path exploits.
    /// Example: `ticket infer m.safetensors --bench --bench-data fashion-mnist`.
    #[arg(long, value_name = "DATASET|DIR", requires = "bench")]
    pub bench_data: Option<String>,
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
    /// Experiment directory written by `ticket find`, or a directory of replicates
    /// (`replicate_K/` experiments written by `ticket find --replicate K`).
    pub dir: PathBuf,
    /// Print the table as JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Levels whose accuracy curves are plotted (default: a spread of levels).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub curves: Option<Vec<usize>>,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// A model to serve: NAME=PATH, a PATH (served under its file name without
    /// .safetensors) or a directory (every *.safetensors file in it). Repeatable.
    #[arg(long = "model", value_name = "NAME=PATH", required = true)]
    pub models: Vec<String>,
    /// Address to listen on (0.0.0.0: every interface).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: std::net::IpAddr,
    /// Port to listen on (0: any free port, printed at start).
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// Most examples per batched kernel call (and per request).
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub max_batch: usize,
    /// Longest a batch waits for more requests, in microseconds (only while more are arriving).
    #[arg(long, value_name = "US", default_value_t = 100)]
    pub max_queue_delay_us: u64,
    /// How long, in microseconds, the model's thread polls for the next request after a batch,
    /// a lone request waits awake for its answer, and (with one --http-threads) the HTTP
    /// thread polls the sockets after a request, before they sleep. Saves the wake-ups that
    /// dominate a small model's latency at low load, for at most this much CPU time when the
    /// server goes idle; 0 sleeps at once.
    #[arg(long, value_name = "US", default_value_t = ticket_serve::DEFAULT_SPIN.as_micros() as u64)]
    pub spin_us: u64,
    /// Threads that read, parse and answer HTTP requests (the forward passes run on the
    /// kernels' threads). One keeps the lowest latency: it can poll the sockets between
    /// requests (--spin-us); more parse JSON bodies in parallel under heavy load.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub http_threads: usize,
    /// Requests that may wait per model; beyond that the answer is 503.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub max_queue: usize,
    /// Largest request body in bytes; beyond that the answer is 413.
    #[arg(long, value_name = "BYTES", default_value_t = ticket_serve::DEFAULT_MAX_BODY)]
    pub max_body: usize,
    /// Most client connections open at once; further ones wait in the listen backlog until
    /// one closes (each holds a task and buffers: this bounds the memory clients can take).
    #[arg(long, value_name = "N", default_value_t = ticket_serve::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// After SIGTERM or Ctrl-C, longest wait for the requests in flight, in seconds; past it
    /// the server stops without them and exits 1.
    #[arg(long, value_name = "S", default_value_t = ticket_serve::DEFAULT_DRAIN_TIMEOUT.as_secs())]
    pub drain_timeout_s: u64,
    /// Kernel threads (default: all cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Print the start-up line (address and models) as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct SweepArgs {
    /// The sweep file (TOML; see the examples below).
    pub spec: PathBuf,
    /// Run the jobs on this machine, N at a time, skipping those already complete.
    #[arg(long, value_name = "N", conflicts_with_all = ["slurm", "status"])]
    pub local: Option<usize>,
    /// Threads of each local job (default: the cores divided by N).
    #[arg(long, value_name = "T", requires = "local")]
    pub threads: Option<usize>,
    /// Write an sbatch job-array script, OUT/slurm/sweep.sbatch, with one task per job.
    #[arg(long, conflicts_with = "status")]
    pub slurm: bool,
    /// Submit the script with `sbatch` and remember the job id for --status.
    #[arg(long, requires = "slurm")]
    pub submit: bool,
    /// The ticket binary the script runs (default: this one).
    #[arg(long, value_name = "PATH", requires = "slurm")]
    pub ticket_binary: Option<PathBuf>,
    /// Which jobs are done, running or pending (from `squeue`), failed or not started.
    #[arg(long)]
    pub status: bool,
    /// Print results as JSON.
    #[arg(long)]
    pub json: bool,
}
