//! Writes a dense checkpoint (current format version) of any recipe's graph with random weights,
//! biases and masks: model files of every layer kind for the format checks
//! (`benches/check_formats.sh`) and fuzz seeds, without training.
//!
//! ```sh
//! cargo run --release -p ticket-export --example random_checkpoint -- digits-conv out.safetensors 0.3 7
//! cargo run --release -p ticket-export --example random_checkpoint -- lenet-5 out.safetensors 0.66,0.12,0.08,0.19
//! cargo run --release -p ticket-export --example random_checkpoint -- digits-conv --graph
//! ```
//!
//! DENSITY is one fraction for every weighted layer or a comma-separated one per layer.
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
    let layers = graph.weighted().len();
    let mut densities: Vec<f64> = match rest.first() {
        Some(d) => d.split(',').map(str::parse).collect::<Result<_, _>>()?,
        None => vec![0.3],
    };
    if densities.len() == 1 {
        densities = vec![densities[0]; layers];
    }
    if densities.len() != layers {
        return Err(format!("{} densities for {layers} weighted layers", densities.len()).into());
    }
    let seed: u64 = rest.get(1).map_or(Ok(1), |s| s.parse())?;
    let net = common::random_net_per_layer(&graph, &densities, seed);
    let meta = CheckpointMeta { iteration: 0, dataset: "digits".into(), seed };
    save(Path::new(out), &net, &meta)?;
    println!("{out}: {graph}, {} of {} weights kept", net.kept_weights(), graph.dense_weights());
    Ok(())
}
