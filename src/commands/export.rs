//! `ticket export`.

use crate::cli::ExportArgs;
use anyhow::Result;

pub fn run(args: ExportArgs) -> Result<()> {
    if args.input.is_file() {
        ticket_core::checkpoint::load(&args.input)?;
    }
    super::not_built("export")
}
