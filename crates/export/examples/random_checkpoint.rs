//! Writes a dense checkpoint (current format version) of any recipe's graph with random weights,
//! biases and masks: model files of every layer kind for the format checks
//! (`benches/check_formats.sh`) and fuzz seeds, without training.
//!
//! ```sh
//! cargo run --release -p ticket-export --example random_checkpoint -- digits-conv out.safetensors 0.3 7
//! cargo run --release -p ticket-export --example random_checkpoint -- digits-conv --graph
//! ```
//!
//! `--graph` prints the recipe's graph as the files store it (`__metadata__["graph"]`) instead.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use ticket_core::checkpoint::{save, CheckpointMeta};
use ticket_core::Recipe;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [recipe, out, rest @ ..] = args.as_slice() else {
        return Err("usage: random_checkpoint RECIPE (OUT [DENSITY] [SEED] | --graph)".into());
    };
    let graph = Recipe::resolve(recipe)?.graph()?;
    if out == "--graph" {
        println!("{}", graph.to_json());
        return Ok(());
    }
    let density: f64 = rest.first().map_or(Ok(0.3), |d| d.parse())?;
    let seed: u64 = rest.get(1).map_or(Ok(1), |s| s.parse())?;
    let net = common::random_net_of(&graph, density, seed);
    let meta = CheckpointMeta { iteration: 0, dataset: "digits".into(), seed };
    save(Path::new(out), &net, &meta)?;
    println!("{out}: {graph}, {} of {} weights kept", net.kept_weights(), graph.dense_weights());
    Ok(())
}
