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

/// Builds the global thread pool with `threads` workers (default: all cores) and returns the
/// matching parallelism argument for the kernels.
pub fn thread_pool(threads: Option<usize>) -> Result<Par> {
    let n = threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if n == 0 {
        anyhow::bail!("--threads must be at least 1");
    }
    // Fails only if a pool exists already, which then keeps its size.
    let _ = rayon::ThreadPoolBuilder::new().num_threads(n).build_global();
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
