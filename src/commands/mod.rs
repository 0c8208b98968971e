//! One module per subcommand, plus the glue they share (recipes, data, threads).

pub mod export;
pub mod find;
pub mod infer;
pub mod report;
pub mod train;

use crate::cli::{DataArgs, DatasetName, RunArgs};
use anyhow::Result;
use ticket_core::{DataSource, Recipe};

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
        let mut recipe = Recipe::resolve(&self.model)?;
        if let Some(n) = self.iterations {
            recipe.train.iterations = n;
        }
        recipe.validate().map_err(|problem| anyhow::anyhow!("{}: {problem}", self.model))?;
        Ok(recipe)
    }
}

/// The answer of a command that is not built yet: a clear message and a non-zero exit.
pub fn not_built(command: &str) -> Result<()> {
    anyhow::bail!("`ticket {command}` is not built yet in this version")
}
