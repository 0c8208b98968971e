//! Any model `ticket export` takes (an experiment directory, a ticket checkpoint, a ticket
//! CSR file to re-encode, a PyTorch state dict, an ONNX file) as the network to export,
//! pruned by magnitude on the way when asked. The command line and the Python package both
//! go through [`open_source`], so they accept the same inputs and report the same things.

use crate::{CompressionReport, Evaluation, Result};
use serde_json::{json, Value};
use std::fmt::Write;
use std::path::{Path, PathBuf};
use ticket_core::csr_format::{self, meta};
use ticket_core::recipe::PruneMethod;
use ticket_core::tensor_file::TensorFile;
use ticket_core::{checkpoint, Error, Network, Par, Recipe};
use ticket_import::{ImportOptions, Imported, SourceKind};

/// How to read a source, and what to do to it before exporting.
#[derive(Clone, Debug, Default)]
pub struct SourceOptions {
    /// The level of an experiment directory (default: its chosen ticket).
    pub level: Option<usize>,
    /// A state dict's module names in network order (`--layers`).
    pub layers: Option<Vec<String>>,
    /// A recipe (shipped name or file) whose graph a conv state dict takes (`--model`).
    pub recipe: Option<String>,
    /// Prune on export: the fraction of weights kept, per layer or with one global threshold.
    pub keep: Option<(f64, PruneMethod)>,
    /// Prune on export, layer by layer: `(layer, fraction kept)` (`--keep-layers`); layers
    /// not named keep `keep` (layer-wise) or every weight. See [`layer_keeps`] for the names.
    pub keep_layers: Vec<(String, f64)>,
}

/// What pruning on export did.
#[derive(Clone, Debug)]
pub struct Pruned {
    /// `--keep`, or with `--keep-layers` the fraction of all weights kept afterwards.
    pub keep: f64,
    pub method: PruneMethod,
    /// Each layer's fraction kept, when `--keep-layers` set them: `(layer, fraction)`.
    pub layers: Vec<(String, f64)>,
    /// Accuracy of the unpruned network on the evaluation data, when there was some.
    pub accuracy_before: Option<f64>,
}

/// What importing a file ticket did not write found: its kind, and what was assumed, folded
/// or dropped (one line each).
#[derive(Clone, Debug)]
pub struct ImportInfo {
    pub kind: SourceKind,
    pub notes: Vec<String>,
}

/// A source read and ready to export.
#[derive(Clone, Debug)]
pub struct Source {
    /// The file the network came from (a level's checkpoint for an experiment directory).
    pub input: PathBuf,
    pub net: Network,
    /// The data set the file records ("" when it records none).
    pub dataset: String,
    /// False when the file had no masks (every weight is then kept, unless pruned here).
    pub has_masks: bool,
    /// How a file ticket did not write was read.
    pub import: Option<ImportInfo>,
    pub pruned: Option<Pruned>,
}

/// A CSR file's refusal, saying that the file was read as one (its metadata names the
/// format): a dense checkpoint's loader would have said something else.
fn as_csr_problem(err: crate::Error) -> crate::Error {
    match err {
        crate::Error::Core(Error::Invalid { path, problem }) => {
            let problem =
                format!("read as a `{}` file to re-encode: {problem}", csr_format::FORMAT);
            Error::Invalid { path, problem }.into()
        }
        err => err,
    }
}

/// Whether `bytes` are a safetensors file whose metadata names ticket's CSR format.
fn is_csr_file(bytes: &[u8], path: &Path) -> bool {
    let file = TensorFile::parse(bytes, path);
    file.is_ok_and(|f| f.meta(meta::FORMAT).is_ok_and(|format| format == csr_format::FORMAT))
}

/// Reads `input` as `opts` say and prunes it when asked (measuring the accuracy before
/// pruning on `eval`, when given and it fits).
pub fn open_source(
    input: &Path,
    opts: &SourceOptions,
    eval: Option<Evaluation>,
    par: Par,
) -> Result<Source> {
    let input = crate::resolve_checkpoint(input, opts.level)?;
    // Read once, through a mapping: detecting the kind and reading the model share the
    // bytes, and an ONNX model's weights are converted from the mapping without a copy.
    let bytes = ticket_import::map_file(&input)?;
    let imported = import_bytes(&bytes, &input, &opts.layers, opts.recipe.as_deref())?;
    let mut source = match imported {
        Some(Imported { net, kind, notes }) => Source {
            input,
            net,
            dataset: String::new(),
            has_masks: true,
            import: Some(ImportInfo { kind, notes }),
            pruned: None,
        },
        None if opts.layers.is_some() || opts.recipe.is_some() => {
            let problem = "--layers and --model are for state dicts";
            return Err(Error::usage(format!("{}: {problem}", input.display())).into());
        }
        None if is_csr_file(&bytes, &input) => {
            // A ticket CSR file (any codec) is re-encoded from its stored weights: the kept
            // ones with their decoded values, the rest pruned.
            let file = crate::read_csr_bytes(&bytes, &input).map_err(as_csr_problem)?;
            let dataset = file.metadata.get(meta::DATASET).cloned().unwrap_or_default();
            Source {
                input,
                net: file.model.to_dense(),
                dataset,
                has_masks: true,
                import: None,
                pruned: None,
            }
        }
        None => {
            let checkpoint = checkpoint::load_bytes(&bytes, &input)?;
            Source {
                input,
                net: checkpoint.net,
                dataset: checkpoint.meta.dataset,
                has_masks: checkpoint.has_masks,
                import: None,
                pruned: None,
            }
        }
    };
    if opts.keep.is_some() || !opts.keep_layers.is_empty() {
        if let Some((keep, _)) = opts.keep.filter(|&(k, _)| !(k > 0.0 && k <= 1.0)) {
            let problem = format!("--keep {keep}: give the fraction of weights to keep, in (0, 1]");
            return Err(Error::usage(problem).into());
        }
        let accuracy_before = eval
            .filter(|e| e.data.features == source.net.graph.inputs())
            .map(|e| source.net.accuracy(e.data, par));
        let net = &mut source.net;
        let (keep, method, layers) = if opts.keep_layers.is_empty() {
            let (keep, method) = opts.keep.expect("checked above");
            ticket_core::prune::prune_to_fraction(net, keep, method)?;
            (keep, method, Vec::new())
        } else {
            if let Some((_, PruneMethod::Global)) = opts.keep {
                let problem =
                    "--keep-layers sets each layer's fraction: it takes --pruning layerwise";
                return Err(Error::usage(problem).into());
            }
            let keeps = layer_keeps(&net.graph, &opts.keep_layers, opts.keep.map(|k| k.0))?;
            ticket_core::prune::prune_layers_to_fractions(net, &keeps)?;
            let names = net.graph.weighted().iter().map(|w| w.name.clone());
            let layers = names.zip(&keeps).filter_map(|(n, k)| Some((n, (*k)?))).collect();
            (net.density(), PruneMethod::Layerwise, layers)
        };
        source.pruned = Some(Pruned { keep, method, layers, accuracy_before });
    }
    Ok(source)
}

/// Each weighted layer's fraction kept from `--keep-layers` entries `(name, fraction)`, or
/// `default` (`--keep`) for a layer not named. A layer is named as its graph names it (an
/// ONNX file's initializer, e.g. `features.0`) or, when that name is not taken, Han et al.'s
/// way: `conv<p>` or `fc<p>` for the conv or linear layer at position `p` (from 1) among the
/// weighted layers, so AlexNet's are conv1..conv5, fc6..fc8.
pub fn layer_keeps(
    graph: &ticket_core::Graph,
    entries: &[(String, f64)],
    default: Option<f64>,
) -> Result<Vec<Option<f64>>> {
    let weighted = graph.weighted();
    let real: Vec<&str> = weighted.iter().map(|w| w.name.as_str()).collect();
    let alias =
        |p: usize, dims: usize| format!("{}{}", if dims == 4 { "conv" } else { "fc" }, p + 1);
    let aliases: Vec<String> =
        weighted.iter().enumerate().map(|(p, w)| alias(p, w.dims.len())).collect();
    let mut keeps = vec![default; weighted.len()];
    let mut named = vec![false; weighted.len()];
    for (name, keep) in entries {
        let found = real.iter().position(|r| r == name).or_else(|| {
            aliases.iter().position(|a| a == name).filter(|_| !real.contains(&name.as_str()))
        });
        let Some(l) = found else {
            let valid: Vec<String> = real
                .iter()
                .zip(&aliases)
                .map(|(r, a)| {
                    if r == a || real.contains(&a.as_str()) {
                        r.to_string()
                    } else {
                        format!("{r} ({a})")
                    }
                })
                .collect();
            let problem = format!(
                "--keep-layers: the model has no layer `{name}`; its layers are {}",
                valid.join(", ")
            );
            return Err(Error::usage(problem).into());
        };
        if !(*keep > 0.0 && *keep <= 1.0) {
            let problem = format!(
                "--keep-layers {name}={keep}: give the fraction of weights to keep, in (0, 1]"
            );
            return Err(Error::usage(problem).into());
        }
        if std::mem::replace(&mut named[l], true) {
            let problem = format!("--keep-layers names layer {} twice", real[l]);
            return Err(Error::usage(problem).into());
        }
        keeps[l] = Some(*keep);
    }
    Ok(keeps)
}

/// The imported model at `input`, or `None` when it is ticket's own (an experiment directory
/// or a dense checkpoint), which [`checkpoint::load`] reads. `recipe` gives a state dict its
/// graph.
pub fn open_foreign(
    input: &Path,
    layers: &Option<Vec<String>>,
    recipe: Option<&str>,
) -> Result<Option<Imported>> {
    if input.is_dir() {
        return Ok(None);
    }
    let bytes = ticket_import::map_file(input)?;
    import_bytes(&bytes, input, layers, recipe)
}

/// [`open_foreign`] on the file `input`, already mapped.
fn import_bytes(
    bytes: &ticket_import::Bytes,
    input: &Path,
    layers: &Option<Vec<String>>,
    recipe: Option<&str>,
) -> Result<Option<Imported>> {
    let kind = match ticket_import::detect(bytes, input) {
        Ok(kind) => kind,
        Err(e) if ticket_import::is_torch_pickle(bytes) => return Err(e.into()),
        // A damaged safetensors file: the checkpoint reader says what is wrong with it.
        Err(_) => return Ok(None),
    };
    if kind == SourceKind::TicketCheckpoint {
        if layers.is_some() || recipe.is_some() {
            let problem =
                "a ticket checkpoint records its graph; --layers and --model are for state dicts";
            return Err(Error::usage(format!("{}: {problem}", input.display())).into());
        }
        return Ok(None);
    }
    let graph = recipe.map(|r| Recipe::resolve(r)?.graph()).transpose()?;
    let opts = ImportOptions { layers: layers.clone(), graph };
    Ok(Some(ticket_import::from_mapped(bytes.clone(), input, &opts)?))
}

impl Source {
    /// `report` as JSON, with what was read and done before exporting: `input`,
    /// `input_has_masks`, `import` (kind, graph, notes) and `pruned_on_export`.
    pub fn report_json(&self, report: &CompressionReport) -> Value {
        let mut json = serde_json::to_value(report).expect("the report serialises");
        json["input"] = self.input.display().to_string().into();
        json["input_has_masks"] = self.has_masks.into();
        if let Some(import) = &self.import {
            // Pruning keeps the graph: this is the imported one.
            let graph: Value =
                serde_json::from_str(&self.net.graph.to_json()).expect("graphs are JSON");
            json["import"] =
                json!({"kind": import.kind.name(), "graph": graph, "notes": import.notes});
        }
        if let Some(p) = &self.pruned {
            let layers: serde_json::Map<String, Value> =
                p.layers.iter().map(|(n, k)| (n.clone(), (*k).into())).collect();
            json["pruned_on_export"] = json!({
                "keep": p.keep,
                "pruning": method_name(p.method),
                "layers": layers,
                "accuracy_before": p.accuracy_before,
            });
        }
        json
    }

    /// The lines printed above the report: what was imported, notes, what pruning did.
    pub fn describe(&self, report: &CompressionReport) -> String {
        let mut text = format!("exported {}\n", self.input.display());
        if let Some(import) = &self.import {
            let _ = writeln!(text, "imported {} as {}", import.kind.name(), self.net.graph);
            for note in &import.notes {
                let _ = writeln!(text, "note: {note}");
            }
        }
        if !self.has_masks {
            let path = self.input.display();
            let _ = writeln!(
                text,
                "note: {path} has no masks: every weight was exported (density 1.0)"
            );
        }
        if let Some(p) = &self.pruned {
            let method = method_name(p.method);
            let _ = write!(
                text,
                "pruned on export to {:.1}% of the weights ({method})",
                100.0 * p.keep
            );
            if !p.layers.is_empty() {
                let each: Vec<String> =
                    p.layers.iter().map(|(n, k)| format!("{n} {:.1}%", 100.0 * k)).collect();
                let _ = write!(text, ", layers kept {}", each.join(", "));
            }
            if let (Some(before), Some(after)) = (p.accuracy_before, &report.accuracy) {
                let (before, data) = (100.0 * before, &after.dataset);
                let after = 100.0 * after.exported;
                let _ = write!(text, ": accuracy {before:.2}% before, {after:.2}% after on {data}");
            }
            text.push('\n');
        }
        text
    }
}

fn method_name(method: PruneMethod) -> &'static str {
    match method {
        PruneMethod::Layerwise => "layerwise",
        PruneMethod::Global => "global",
    }
}
