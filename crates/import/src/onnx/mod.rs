//! ONNX files: the protobuf decoded with prost ([`proto`]), constants folded
//! ([`constants`]), external data read from beside the model ([`external`]), the nodes walked
//! as a chain of ticket layers ([`chain`]); a file on disk is read through a memory map
//! ([`mapped`]).

pub mod chain;
pub mod constants;
pub mod external;
pub mod mapped;
pub mod proto;
pub mod tensor;

use prost::bytes::Bytes;
use prost::Message;
use std::path::Path;
use ticket_core::{Error, Graph, Network, Result};

/// The network an ONNX file describes, and what importing folded or dropped; `bytes` are
/// the file's, `path` names it and locates its external data.
pub fn read_onnx(bytes: &[u8], path: &Path) -> Result<(Network, Vec<String>)> {
    decode(Bytes::copy_from_slice(bytes), path, false)
}

/// [`read_onnx`] of the file at `path`, mapped rather than read: the weights are converted
/// from the mapping (and the model's external data, mapped too) and their pages released
/// one by one, so peak memory stays near the network's own size.
pub fn read_onnx_file(path: &Path) -> Result<(Network, Vec<String>)> {
    let bytes = mapped::map(path).map_err(|e| Error::io(path, e))?;
    decode(bytes, path, true)
}

/// Decodes and converts `bytes`; `mapped` says they (and the external data) are a file
/// mapping whose pages may be released once read.
pub(crate) fn decode(bytes: Bytes, path: &Path, mapped: bool) -> Result<(Network, Vec<String>)> {
    let mut model = proto::ModelProto::decode(bytes)
        .map_err(|e| Error::invalid(path, format!("not a valid ONNX file: {e}")))?;
    let graph = model.graph.as_mut().ok_or_else(|| Error::invalid(path, "has no graph"))?;
    external::load_external(graph, path, mapped)?;
    if let Some(set) =
        model.opset_import.iter().find(|s| s.domain.is_empty() || s.domain == "ai.onnx")
    {
        if set.version < 7 {
            return Err(Error::invalid(
                path,
                format!("uses opset {}; 7 or later is supported", set.version),
            ));
        }
    }
    let chain = chain::chain(graph, mapped).map_err(|p| Error::invalid(path, p))?;
    let graph = Graph::new(chain.input, chain.layers)
        .map_err(|e| Error::invalid(path, format!("does not make a ticket graph: {e}")))?;
    let mut net = Network { graph, layers: chain.params };
    net.apply_masks();
    Ok((net, chain.notes))
}
