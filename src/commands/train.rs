//! `ticket train`.

use crate::cli::TrainArgs;
use anyhow::Result;

pub fn run(args: TrainArgs) -> Result<()> {
    let recipe = args.run.recipe()?;
    let splits = args.run.data.source().load(recipe.train.validation_size)?;
    let _ = splits;
    super::not_built("train")
}
