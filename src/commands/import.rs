//! Models that ticket did not write (PyTorch state dicts, ONNX files) where a command takes a
//! checkpoint or a recipe: `ticket export model.onnx` and `ticket find --model model.onnx`.

use anyhow::Result;
use std::path::Path;
use ticket_core::recipe::RecipeLayers;
use ticket_core::{Graph, Layer, Recipe};
use ticket_import::{ImportOptions, Imported, SourceKind};

/// The imported model at `input`, or `None` when it is ticket's own (an experiment
/// directory or a dense checkpoint), which the caller reads as before.
pub fn open_foreign(
    input: &Path,
    layers: &Option<Vec<String>>,
    model: Option<&str>,
) -> Result<Option<Imported>> {
    if input.is_dir() {
        return Ok(None);
    }
    let bytes = std::fs::read(input).map_err(|e| ticket_core::Error::io(input, e))?;
    let kind = match ticket_import::detect(&bytes, input) {
        Ok(kind) => kind,
        Err(e) if ticket_import::is_torch_pickle(&bytes) => return Err(e.into()),
        // A damaged safetensors file: the checkpoint reader says what is wrong with it.
        Err(_) => return Ok(None),
    };
    if kind == SourceKind::TicketCheckpoint {
        if layers.is_some() || model.is_some() {
            anyhow::bail!(
                "{}: a ticket checkpoint records its graph; --layers and --model are for state dicts",
                input.display()
            );
        }
        return Ok(None);
    }
    let graph = match model {
        Some(recipe) => Some(Recipe::resolve(recipe)?.graph()?),
        None => None,
    };
    let opts = ImportOptions { layers: layers.clone(), graph };
    Ok(Some(ticket_import::from_bytes(&bytes, input, &opts)?))
}

/// A recipe for the architecture of the model file `model` (ONNX or a state dict), with a
/// fresh initialisation: the training settings of the shipped digits recipe of its kind,
/// the paper's pruning rates (conv 10%, hidden linear 20%, output 10% per level). `None`
/// when `model` is not such a file (a recipe file or a shipped recipe's name).
pub fn recipe_for(model: &str, layers: &Option<Vec<String>>) -> Result<Option<Recipe>> {
    let path = Path::new(model);
    let is_model = path.is_file()
        && path.extension().is_some_and(|e| {
            e.eq_ignore_ascii_case("onnx") || e.eq_ignore_ascii_case("safetensors")
        });
    if !is_model {
        return Ok(None);
    }
    let Some(imported) = open_foreign(path, layers, None)? else {
        anyhow::bail!(
            "{model}: a ticket checkpoint is not an architecture; pass its recipe as --model"
        );
    };
    let graph = imported.net.graph;
    let convolutional = graph.layers().iter().any(|l| matches!(l, Layer::Conv2d { .. }));
    let mut recipe = Recipe::resolve(if convolutional { "digits-conv" } else { "digits-mlp" })?;
    recipe.name = path.file_stem().map_or("imported".into(), |s| s.to_string_lossy().into_owned());
    recipe.input = Some(graph.input_shape().to_vec());
    recipe.layers = RecipeLayers::Graph(graph.layers().to_vec());
    recipe.prune.layer_rates = paper_rates(&graph);
    recipe.validate().map_err(|problem| anyhow::anyhow!("{model}: {problem}"))?;
    Ok(Some(recipe))
}

/// Pruning rates per level in the paper's pattern: conv 10%, linear 20%, the output 10%.
fn paper_rates(graph: &Graph) -> Vec<f32> {
    let weighted = graph.weighted();
    weighted
        .iter()
        .enumerate()
        .map(|(i, w)| match graph.layers()[w.index] {
            Layer::Conv2d { .. } => 0.1,
            _ if i + 1 == weighted.len() => 0.1,
            _ => 0.2,
        })
        .collect()
}
