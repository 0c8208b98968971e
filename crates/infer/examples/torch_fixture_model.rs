//! Writes the small LeNet-like conv model of `tests/fixtures/` (random sparse weights, fixed
//! seed) with the fixture writer; `tests/fixtures/torch_conv.py` then runs it through PyTorch.
//!
//!     cargo run -p ticket-infer --features fixture --example torch_fixture_model -- \
//!         crates/infer/tests/fixtures/torch-conv.safetensors

use std::path::PathBuf;
use ticket_core::csr_format::ValueDtype;
use ticket_core::Graph;
use ticket_infer::fixture::{random_model, write_model};

/// Input 1x12x12; conv 3x3 with padding, max pool, conv with a non-square kernel, a stride
/// of 2 down the rows and padding only there, average pool with its own stride, two linear
/// layers.
const GRAPH: &str = r#"{"input":[1,12,12],"layers":[
  {"op":"conv2d","name":"conv1","in":1,"out":4,"kernel":[3,3],"stride":[1,1],"padding":[1,1]},
  {"op":"relu"},{"op":"maxpool2d","kernel":[2,2]},
  {"op":"conv2d","name":"conv2","in":4,"out":6,"kernel":[3,2],"stride":[2,1],"padding":[1,0]},
  {"op":"relu"},{"op":"avgpool2d","kernel":[2,2],"stride":[1,2]},{"op":"flatten"},
  {"op":"linear","name":"fc1","in":24,"out":16},{"op":"relu"},
  {"op":"linear","name":"fc2","in":16,"out":10}]}"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path: PathBuf = std::env::args_os().nth(1).ok_or("usage: torch_fixture_model OUT")?.into();
    let graph = Graph::from_json(GRAPH)?;
    let layers = random_model(&graph, &[0.6, 0.4, 0.3, 0.5], 2026);
    write_model(&path, &graph, &layers, ValueDtype::F32)?;
    println!("wrote {} ({graph})", path.display());
    Ok(())
}
