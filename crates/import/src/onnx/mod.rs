//! ONNX files: the protobuf decoded with prost ([`proto`]), constants folded
//! ([`constants`]), external data read from beside the model ([`external`]), the nodes walked
//! as a chain of ticket layers ([`chain`]).

pub mod chain;
pub mod constants;
pub mod external;
pub mod proto;
pub mod tensor;

use prost::Message;
use std::path::Path;
use ticket_core::{Error, Graph, Network, Result};

/// The network an ONNX file describes, and what importing folded or dropped.
pub fn read_onnx(bytes: &[u8], path: &Path) -> Result<(Network, Vec<String>)> {
    let mut model = proto::ModelProto::decode(bytes)
        .map_err(|e| Error::invalid(path, format!("not a valid ONNX file: {e}")))?;
    let graph = model.graph.as_mut().ok_or_else(|| Error::invalid(path, "has no graph"))?;
    external::load_external(graph, path)?;
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
    let chain = chain::chain(graph).map_err(|p| Error::invalid(path, p))?;
    let graph = Graph::new(chain.input, chain.layers)
        .map_err(|e| Error::invalid(path, format!("does not make a ticket graph: {e}")))?;
    let mut net = Network { graph, layers: chain.params };
    net.apply_masks();
    Ok((net, chain.notes))
}
