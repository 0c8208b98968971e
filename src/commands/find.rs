//! `ticket find`.

use crate::cli::FindArgs;
use anyhow::Result;

pub fn run(args: FindArgs) -> Result<()> {
    let recipe = args.run.recipe()?;
    let splits = args.run.data.source().load(recipe.train.validation_size)?;
    let _ = splits;
    super::not_built("find")
}
