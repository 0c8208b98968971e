//! One module per subcommand, plus the glue they share (recipes, data, threads).

pub mod export;
pub mod find;
pub mod import;
pub mod infer;
pub mod observe;
pub mod report;
pub mod serve;
pub mod sweep;
pub mod train;

use crate::cli::{DataArgs, DatasetName, RunArgs};
use anyhow::Result;
use ticket_core::{DataSource, Par, Recipe};

/// Builds the global thread pool with `threads` workers (default: all cores), the calling
/// thread being worker 0, and returns the matching parallelism argument for the kernels.
/// A batch-1 pass, a batch's tiles and a training run then start on this thread, which works
/// beside the others, instead of being handed to a pool worker (woken for it) while this one
/// sleeps until it is done. Measured with `ticket infer --bench` on the Intel Xeon, alternating
/// builds: Conv-2 at batch 1 p50 200-206 -> 195-196 us and p99 380-400 -> 275-315 us;
/// LeNet-300-100 at batch 1024 0.205-0.222 -> 0.167-0.201 us per example.
pub fn thread_pool(threads: Option<usize>) -> Result<Par> {
    build_pool(threads, true)
}

/// [`thread_pool`] for a command whose thread then does something else (`ticket serve` runs
/// the HTTP runtime on it): its workers are all threads of their own, since a worker 0 that
/// never joins rayon's work would leave the others one short.
pub fn thread_pool_apart(threads: Option<usize>) -> Result<Par> {
    build_pool(threads, false)
}

fn build_pool(threads: Option<usize>, with_caller: bool) -> Result<Par> {
    let n = threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if n == 0 {
        anyhow::bail!("--threads must be at least 1");
    }
    let builder = rayon::ThreadPoolBuilder::new().num_threads(n);
    let builder = if with_caller { builder.use_current_thread() } else { builder };
    // Fails only if a pool exists already, which then keeps its size.
    let _ = builder.build_global();
    Ok(if n == 1 { Par::Seq } else { Par::Rayon(n) })
}

/// The data source named by `--dataset` / `--data`.
pub fn data_source(
    dataset: Option<DatasetName>,
    data: &Option<std::path::PathBuf>,
) -> Option<DataSource> {
    match (data, dataset) {
        (Some(dir), _) => Some(DataSource::Dir(dir.clone())),
        (None, Some(DatasetName::Digits)) => Some(DataSource::Digits),
        (None, Some(DatasetName::FashionMnist)) => Some(DataSource::FashionMnist),
        (None, None) => None,
    }
}

impl DataArgs {
    pub fn source(&self) -> DataSource {
        data_source(Some(self.dataset), &self.data).unwrap_or(DataSource::Digits)
    }
}

impl RunArgs {
    /// The recipe with command-line overrides applied.
    pub fn recipe(&self) -> Result<Recipe> {
        let mut recipe = match import::recipe_for(&self.model, &self.layers)? {
            Some(recipe) => recipe,
            None => Recipe::resolve(&self.model)?,
        };
        if let Some(n) = self.iterations {
            recipe.train.iterations = n;
        }
        if let Some(n) = self.eval_every {
            recipe.train.eval_every = n;
        }
        recipe.validate().map_err(|problem| anyhow::anyhow!("{}: {problem}", self.model))?;
        Ok(recipe)
    }
}
