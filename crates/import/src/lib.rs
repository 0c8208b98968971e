//! ticket-import: models that ticket did not write, as a [`Network`] (graph, weights, biases,
//! masks) that every other part of ticket takes as it takes its own checkpoints.
//!
//! - PyTorch state dicts in safetensors ([`state_dict`]): `nn.Linear` / `nn.Conv2d` weights and
//!   biases, `torch.nn.utils.prune`'s `weight_orig` + `weight_mask`, or plain weights whose
//!   zeros are the mask; MLP graphs inferred ([`order`]), conv graphs from a recipe.
//! - ONNX files ([`onnx`]): a chain of Gemm / MatMul+Add / Conv / Relu / pooling / Flatten /
//!   Reshape, BatchNormalization folded, Dropout and Identity dropped; zeros are the mask.
//!
//! ```no_run
//! let imported = ticket_import::open("model.onnx".as_ref(), &Default::default()).unwrap();
//! println!("{} ({:?}), {} weights kept", imported.net.graph, imported.kind, imported.net.kept_weights());
//! ```

pub mod onnx;
pub mod order;
pub mod state_dict;

use std::path::Path;
use ticket_core::{Error, Graph, Network, Result};

/// What the user may say about a file that the file does not.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// A state dict's module names in network order (`--layers`).
    pub layers: Option<Vec<String>>,
    /// The graph of a state dict (a recipe's), needed for conv nets; its weighted layers'
    /// names are matched to the modules.
    pub graph: Option<Graph>,
}

/// What a file turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    /// A dense checkpoint written by ticket itself (not imported: `checkpoint::load` reads it).
    TicketCheckpoint,
    /// A safetensors state dict with plain weights (zeros are the mask).
    StateDict,
    /// A safetensors state dict with `torch.nn.utils.prune` masks.
    PrunedStateDict,
    Onnx,
}

impl SourceKind {
    /// The name used in reports and JSON.
    pub fn name(self) -> &'static str {
        match self {
            SourceKind::TicketCheckpoint => "ticket-dense",
            SourceKind::StateDict => "pytorch-state-dict",
            SourceKind::PrunedStateDict => "pytorch-pruned-state-dict",
            SourceKind::Onnx => "onnx",
        }
    }
}

/// An imported model.
#[derive(Clone, Debug)]
pub struct Imported {
    pub net: Network,
    pub kind: SourceKind,
    /// What importing assumed, folded or dropped, one line each.
    pub notes: Vec<String>,
}

/// Metadata keys that only ticket's own files carry.
const TICKET_KEYS: [&str; 6] = ["format_version", "graph", "arch", "iteration", "seed", "dataset"];

/// Which kind of file `bytes` hold: ONNX when named `.onnx` (or, unless named
/// `.safetensors`, when it starts like a protobuf rather than a safetensors header); a ticket
/// checkpoint when its metadata is ticket's (a `format` of `ticket-*`, or ticket's keys); else
/// a state dict. A damaged safetensors file fails here with the safetensors problem.
pub fn detect(bytes: &[u8], path: &Path) -> Result<SourceKind> {
    if is_torch_pickle(bytes) {
        return Err(Error::invalid(
            path,
            "is a PyTorch pickle (torch.save), which ticket does not read (pickles run code): \
             save the weights with safetensors.torch.save_file(model.state_dict(), \"model.safetensors\") \
             or export the model with torch.onnx.export",
        ));
    }
    let extension = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    let looks_safetensors = bytes.len() >= 9 && bytes[8] == b'{';
    // An ONNX ModelProto starts with field 1 (ir_version, a varint): byte 0x08.
    let looks_onnx = bytes.first() == Some(&0x08) && !looks_safetensors;
    match extension.as_deref() {
        Some("onnx") => return Ok(SourceKind::Onnx),
        Some("safetensors") => {}
        _ if looks_onnx => return Ok(SourceKind::Onnx),
        _ => {}
    }
    let file = ticket_core::tensor_file::TensorFile::parse(bytes, path)?;
    let meta = file.metadata();
    let ticket = meta.get("format").is_some_and(|f| f.starts_with("ticket"))
        || TICKET_KEYS.iter().any(|k| meta.contains_key(*k));
    Ok(if ticket {
        SourceKind::TicketCheckpoint
    } else if file.names().iter().any(|n| n.ends_with("weight_mask")) {
        SourceKind::PrunedStateDict
    } else {
        SourceKind::StateDict
    })
}

/// Whether `bytes` are what `torch.save` writes: a zip archive (the default since PyTorch
/// 1.6) or a bare pickle.
pub fn is_torch_pickle(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04")
        || (bytes.len() > 1 && bytes[0] == 0x80 && (2..=5).contains(&bytes[1]))
}

/// Reads and converts the model at `path` (through a memory map: see [`from_mapped`]).
pub fn open(path: &Path, opts: &ImportOptions) -> Result<Imported> {
    from_mapped(map_file(path)?, path, opts)
}

pub use prost::bytes::Bytes;

/// The file at `path`, mapped read-only, for [`from_mapped`].
pub fn map_file(path: &Path) -> Result<Bytes> {
    onnx::mapped::map(path).map_err(|e| Error::io(path, e))
}

/// [`from_bytes`] on the mapping [`map_file`] made of `path`: an ONNX model's weights are
/// converted straight from the mapping and their pages released one by one, so a large
/// model is not held as file, protobuf and network at once.
pub fn from_mapped(bytes: Bytes, path: &Path, opts: &ImportOptions) -> Result<Imported> {
    convert(&bytes.clone(), path, opts, || onnx::decode(bytes, path, true))
}

/// [`open`] on bytes already in memory; `path` names the file in errors (and `.onnx` says
/// ONNX).
pub fn from_bytes(bytes: &[u8], path: &Path, opts: &ImportOptions) -> Result<Imported> {
    convert(bytes, path, opts, || onnx::read_onnx(bytes, path))
}

/// The model in `bytes`, of the kind [`detect`] finds; `read_onnx` converts an ONNX file.
fn convert(
    bytes: &[u8],
    path: &Path,
    opts: &ImportOptions,
    read_onnx: impl FnOnce() -> Result<(Network, Vec<String>)>,
) -> Result<Imported> {
    match detect(bytes, path)? {
        SourceKind::Onnx => {
            if opts.layers.is_some() || opts.graph.is_some() {
                return Err(Error::usage(format!(
                    "{}: an ONNX file gives its own layers and order; --layers and --model are for state dicts",
                    path.display()
                )));
            }
            let (net, notes) = read_onnx()?;
            Ok(Imported { net, kind: SourceKind::Onnx, notes })
        }
        SourceKind::TicketCheckpoint => {
            let checkpoint = ticket_core::checkpoint::load_bytes(bytes, path)?;
            Ok(Imported { net: checkpoint.net, kind: SourceKind::TicketCheckpoint, notes: vec![] })
        }
        SourceKind::StateDict | SourceKind::PrunedStateDict => {
            let (net, pruned) = state_dict::read_state_dict(bytes, path, opts)?;
            let kind = if pruned { SourceKind::PrunedStateDict } else { SourceKind::StateDict };
            let mut notes = Vec::new();
            if opts.graph.is_none() {
                notes.push(format!(
                    "a state dict records no activations: ReLU assumed between the layers ({})",
                    net.graph
                ));
            }
            Ok(Imported { net, kind, notes })
        }
    }
}
