//! A model recipe: the architecture plus how to train and prune it, read from `models/*.toml`.
//!
//! ```
//! let recipe = ticket_core::Recipe::from_toml_str(r#"
//!     name = "tiny"
//!     layers = [4, 3, 2]
//!     [train]
//!     iterations = 10
//!     [prune]
//!     layer_rates = [0.2, 0.1]
//! "#, "tiny.toml").unwrap();
//! assert_eq!(recipe.train.batch_size, 60);
//! assert_eq!(recipe.graph().unwrap().to_string(), "4-3-2");
//! ```

use crate::{Error, Graph, Layer, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Everything needed to reproduce an experiment apart from the data and the seed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    pub name: String,
    /// The shape of one example, `[channels, height, width]`, for a graph of layers; an MLP
    /// given by its widths needs none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Vec<usize>>,
    /// Layer widths of an MLP, input first (`[784, 300, 100, 10]`), or the layers of a graph
    /// (`[[layers]]` tables with `op = "conv2d"`, ...).
    pub layers: RecipeLayers,
    #[serde(default)]
    pub activation: Activation,
    #[serde(default)]
    pub init: Init,
    pub train: TrainRecipe,
    pub prune: PruneRecipe,
}

/// The two ways a recipe gives its model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RecipeLayers {
    /// An MLP's widths, `[784, 300, 100, 10]`.
    Widths(Vec<usize>),
    /// A graph's layers, as in files (`docs/FORMAT.md`).
    Graph(Vec<Layer>),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Activation {
    #[default]
    Relu,
}

/// Weight initialisation; biases start at zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Init {
    /// N(0, 2 / (fan_in + fan_out)), the paper's choice.
    #[default]
    GlorotNormal,
    /// N(0, 2 / fan_in).
    KaimingNormal,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Optimizer {
    #[default]
    Adam,
    /// SGD with (optional) momentum and weight decay.
    Sgd,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainRecipe {
    #[serde(default)]
    pub optimizer: Optimizer,
    #[serde(default = "defaults::learning_rate")]
    pub learning_rate: f32,
    #[serde(default = "defaults::batch_size")]
    pub batch_size: usize,
    /// Optimizer steps per training run (the paper counts iterations, not epochs).
    pub iterations: usize,
    /// Evaluate on validation and test every this many iterations.
    #[serde(default = "defaults::eval_every")]
    pub eval_every: usize,
    /// Examples held out of the training set for early stopping.
    #[serde(default = "defaults::validation_size")]
    pub validation_size: usize,
    #[serde(default = "defaults::beta1")]
    pub beta1: f32,
    #[serde(default = "defaults::beta2")]
    pub beta2: f32,
    #[serde(default = "defaults::epsilon")]
    pub epsilon: f32,
    /// SGD only.
    #[serde(default)]
    pub momentum: f32,
    /// SGD only: L2 penalty added to the gradient.
    #[serde(default)]
    pub weight_decay: f32,
    /// Probability of dropping each input of the linear layers after the model's first weighted
    /// layer, during training only (inverted dropout; 0 = none).
    #[serde(default)]
    pub dropout: f32,
}

/// How pruning picks weights.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PruneMethod {
    /// Each layer loses its own fraction of its remaining weights (the paper).
    #[default]
    Layerwise,
    /// One magnitude threshold across all layers (open_lth).
    Global,
}

/// What the surviving weights are reset to before retraining.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reset {
    /// Their values at initialisation (the paper).
    #[default]
    Init,
    /// Their values at iteration `rewind_iteration` of the dense run (Frankle et al. 2020).
    Rewind,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PruneRecipe {
    #[serde(default)]
    pub method: PruneMethod,
    /// Layer-wise: fraction of each layer's remaining weights removed per level.
    pub layer_rates: Vec<f32>,
    /// Global: fraction of all remaining weights removed per level.
    #[serde(default = "defaults::global_rate")]
    pub global_rate: f32,
    /// Number of pruning levels after the dense one.
    #[serde(default = "defaults::levels")]
    pub levels: usize,
    #[serde(default)]
    pub reset: Reset,
    #[serde(default)]
    pub rewind_iteration: usize,
}

mod defaults {
    pub fn learning_rate() -> f32 {
        1.2e-3
    }
    pub fn batch_size() -> usize {
        60
    }
    pub fn eval_every() -> usize {
        100
    }
    pub fn validation_size() -> usize {
        5000
    }
    pub fn beta1() -> f32 {
        0.9
    }
    pub fn beta2() -> f32 {
        0.999
    }
    pub fn epsilon() -> f32 {
        1e-8
    }
    pub fn global_rate() -> f32 {
        0.2
    }
    pub fn levels() -> usize {
        15
    }
}

/// Recipes shipped in `models/`, compiled in so they work from any directory.
pub const SHIPPED: [(&str, &str); 8] = [
    ("digits-mlp", include_str!("../../../models/digits-mlp.toml")),
    ("digits-conv", include_str!("../../../models/digits-conv.toml")),
    ("lenet-300-100", include_str!("../../../models/lenet-300-100.toml")),
    ("lenet-5", include_str!("../../../models/lenet-5.toml")),
    ("conv-2", include_str!("../../../models/conv-2.toml")),
    ("conv-4", include_str!("../../../models/conv-4.toml")),
    ("conv-6", include_str!("../../../models/conv-6.toml")),
    ("alexnet", include_str!("../../../models/alexnet.toml")),
];

impl Recipe {
    /// A recipe file, or the name of a shipped recipe ([`SHIPPED`]) when no such file exists.
    pub fn resolve(name_or_path: &str) -> Result<Self> {
        let path = Path::new(name_or_path);
        if path.exists() {
            return Self::from_file(path);
        }
        let stem = name_or_path.trim_start_matches("models/").trim_end_matches(".toml");
        match SHIPPED.iter().find(|(name, _)| *name == stem) {
            Some((name, text)) => Self::from_toml_str(text, format!("<shipped {name}.toml>")),
            None => {
                let names: Vec<&str> = SHIPPED.iter().map(|(name, _)| *name).collect();
                Err(Error::usage(format!(
                    "no recipe file `{name_or_path}` and no shipped recipe of that name \
                     (shipped: {})",
                    names.join(", ")
                )))
            }
        }
    }

    /// Reads and validates a recipe file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_toml_str(&text, path)
    }

    /// Parses and validates recipe text; `origin` names it in errors.
    pub fn from_toml_str(text: &str, origin: impl AsRef<Path>) -> Result<Self> {
        let origin = origin.as_ref();
        let recipe: Recipe =
            toml::from_str(text).map_err(|e| Error::invalid(origin, one_line(&e.to_string())))?;
        recipe.validate().map_err(|problem| Error::invalid(origin, problem))?;
        Ok(recipe)
    }

    /// The model graph the recipe describes.
    pub fn graph(&self) -> Result<Graph> {
        match (&self.layers, &self.input) {
            (RecipeLayers::Widths(sizes), None) => Graph::mlp(sizes),
            (RecipeLayers::Widths(_), Some(_)) => Err(Error::usage(
                "`input` goes with a graph of layers; an MLP's widths start with its input size",
            )),
            (RecipeLayers::Graph(layers), Some(input)) => Graph::new(input.clone(), layers.clone()),
            (RecipeLayers::Graph(_), None) => {
                Err(Error::usage("a graph of layers needs `input`, e.g. input = [1, 28, 28]"))
            }
        }
    }

    /// Checks every field a run depends on; returns the first problem found.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let graph = self.graph().map_err(|e| e.to_string())?;
        let t = &self.train;
        let p = &self.prune;
        let positive = |name: &str, v: f32| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(format!("train.{name} must be a positive number, got {v}"))
            }
        };
        positive("learning_rate", t.learning_rate)?;
        positive("epsilon", t.epsilon)?;
        for (name, v) in [
            ("beta1", t.beta1),
            ("beta2", t.beta2),
            ("momentum", t.momentum),
            ("dropout", t.dropout),
        ] {
            if !(0.0..1.0).contains(&v) {
                return Err(format!("train.{name} must be in [0, 1), got {v}"));
            }
        }
        if !(t.weight_decay.is_finite() && t.weight_decay >= 0.0) {
            return Err(format!("train.weight_decay must be >= 0, got {}", t.weight_decay));
        }
        for (name, v) in [
            ("batch_size", t.batch_size),
            ("iterations", t.iterations),
            ("eval_every", t.eval_every),
        ] {
            if v == 0 {
                return Err(format!("train.{name} must be at least 1"));
            }
        }
        if p.layer_rates.len() != graph.num_weighted() {
            return Err(format!(
                "prune.layer_rates has {} entries but the model has {} weighted layers",
                p.layer_rates.len(),
                graph.num_weighted()
            ));
        }
        for (i, &r) in p.layer_rates.iter().chain([&p.global_rate]).enumerate() {
            if !(0.0..1.0).contains(&r) {
                let which = if i < p.layer_rates.len() {
                    format!("prune.layer_rates[{i}]")
                } else {
                    "prune.global_rate".to_string()
                };
                return Err(format!(
                    "{which} = {r} is impossible: a pruning rate is a fraction in [0, 1)"
                ));
            }
        }
        if p.reset == Reset::Rewind && p.rewind_iteration > t.iterations {
            return Err(format!(
                "prune.rewind_iteration = {} is past the end of training ({} iterations)",
                p.rewind_iteration, t.iterations
            ));
        }
        Ok(())
    }
}

/// TOML errors span several lines with a caret diagram; the CLI wants one line.
pub fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
        name = "t"
        layers = [4, 3, 2]
        [train]
        iterations = 10
        [prune]
        layer_rates = [0.2, 0.1]
    "#;

    fn parse(text: &str) -> Result<Recipe> {
        Recipe::from_toml_str(text, "r.toml")
    }

    #[test]
    fn shipped_recipes_parse() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
        let lenet = Recipe::from_file(&root.join("lenet-300-100.toml")).unwrap();
        assert_eq!(lenet.layers, RecipeLayers::Widths(vec![784, 300, 100, 10]));
        assert_eq!(lenet.train.learning_rate, 1.2e-3);
        assert_eq!(lenet.train.batch_size, 60);
        assert_eq!(lenet.prune.layer_rates, [0.2, 0.2, 0.1]);
        let digits = Recipe::from_file(&root.join("digits-mlp.toml")).unwrap();
        assert_eq!(digits.layers, RecipeLayers::Widths(vec![64, 300, 100, 10]));
    }

    #[test]
    fn shipped_recipes_resolve_by_name_and_match_the_files() {
        let by_name = Recipe::resolve("lenet-300-100").unwrap();
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/lenet-300-100.toml");
        assert_eq!(by_name, Recipe::from_file(&root).unwrap());
        let err = Recipe::resolve("no-such-model.toml").unwrap_err().to_string();
        assert!(err.contains("no-such-model.toml"), "{err}");
        // The error lists every shipped recipe, and each of them resolves by name and builds.
        for (name, _) in SHIPPED {
            assert!(err.contains(name), "{err} lacks {name}");
            let recipe = Recipe::resolve(name).unwrap();
            assert_eq!(recipe.name, name);
            recipe.graph().unwrap();
        }
    }

    #[test]
    fn shipped_conv_recipes_have_the_papers_sizes() {
        // Han et al. 2015, Table 2: LeNet-5 has 430,500 weights (0.5K + 25K + 400K + 5K).
        let lenet5 = Recipe::resolve("lenet-5").unwrap().graph().unwrap();
        assert_eq!(lenet5.dense_weights(), 500 + 25_000 + 400_000 + 5_000);
        // Frankle & Carbin's Conv-2/4/6 on 28x28x1: 3x3 convs with padding 1, a 2x2 pool per
        // pair, then fc 256-256-10; fc1 takes what the last pool leaves.
        for (name, convs, fc1_in) in
            [("conv-2", 2, 64 * 14 * 14), ("conv-4", 4, 128 * 7 * 7), ("conv-6", 6, 256 * 3 * 3)]
        {
            let recipe = Recipe::resolve(name).unwrap();
            let graph = recipe.graph().unwrap();
            let weighted = graph.weighted();
            assert_eq!(weighted.len(), convs + 3, "{name}");
            assert!(weighted[..convs].iter().all(|w| w.dims[2..] == [3, 3]), "{name}");
            assert_eq!(weighted[convs].dims, [256, fc1_in], "{name}");
            assert_eq!(weighted[convs + 2].dims, [10, 256], "{name}");
            let conv_rate = if name == "conv-6" { 0.15 } else { 0.1 };
            let mut rates = vec![conv_rate; convs];
            rates.extend([0.2, 0.2, 0.1]);
            assert_eq!(recipe.prune.layer_rates, rates, "{name}");
        }
    }

    #[test]
    fn alexnet_has_torchvisions_weights_and_hans_fractions() {
        // torchvision's AlexNet: 61,100,840 parameters, of which 10,344 are biases.
        let recipe = Recipe::resolve("alexnet").unwrap();
        let graph = recipe.graph().unwrap();
        assert_eq!(graph.dense_weights(), 61_100_840 - 10_344);
        let fc6 = &graph.weighted()[5];
        assert_eq!(
            (fc6.name.as_str(), fc6.dims.as_slice()),
            ("fc6", [4096, 256 * 6 * 6].as_slice())
        );
        // Han et al. 2015, Table 4: the fraction of weights each layer keeps.
        let kept: Vec<f64> = recipe.prune.layer_rates.iter().map(|&r| 1.0 - f64::from(r)).collect();
        for (k, want) in kept.iter().zip([0.84, 0.38, 0.35, 0.37, 0.37, 0.09, 0.09, 0.25]) {
            assert!((k - want).abs() < 1e-6, "{kept:?}");
        }
    }

    #[test]
    fn impossible_rates_are_rejected_with_the_file_name() {
        for bad in ["[1.0, 0.1]", "[-0.1, 0.1]", "[0.2]", "[0.2, 0.1, 0.1]"] {
            let text = BASE.replace("[0.2, 0.1]", bad);
            let err = parse(&text).unwrap_err().to_string();
            assert!(err.starts_with("r.toml: "), "{err}");
            assert!(err.contains("layer_rates"), "{err}");
        }
    }

    #[test]
    fn typos_and_bad_values_are_rejected() {
        assert!(parse(&BASE.replace("iterations", "iteratons")).is_err());
        assert!(parse(&BASE.replace("iterations = 10", "iterations = 0")).is_err());
        assert!(parse(&BASE.replace("[train]", "[train]\nlearning_rate = -1.0")).is_err());
        assert!(parse(&BASE.replace("[4, 3, 2]", "[4, 0, 2]")).is_err());
        let err = parse(&BASE.replace("[train]", "[train]\noptimizer = \"lbfgs\"")).unwrap_err();
        assert!(!err.to_string().contains('\n'), "{err}");
    }
}
