//! Models that ticket did not write (PyTorch state dicts, ONNX files) as the architecture of
//! `ticket find --model model.onnx`; exporting them is `ticket_export::open_source`.

use anyhow::Result;
use std::path::Path;
use ticket_core::recipe::RecipeLayers;
use ticket_core::{Graph, Layer, Recipe};

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
    let Some(imported) = ticket_export::open::open_foreign(path, layers, None)? else {
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
