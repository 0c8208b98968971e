//! `ticket infer`.

use crate::cli::InferArgs;
use anyhow::Result;

pub fn run(_args: InferArgs) -> Result<()> {
    super::not_built("infer")
}
