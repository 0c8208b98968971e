//! The ONNX importer on arbitrary bytes. A model it accepts is a checked graph with parameters
//! that fit it, masks that are exactly the nonzero weights, and (when small) a forward pass
//! with logits of the right length. Anything else is a one-line error naming the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ticket_core::Par;

/// Models above this many weights are only imported, not run.
const RUN_LIMIT: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let net = match ticket_import::onnx::read_onnx(data, ticket_fuzz::path()) {
        Ok((net, _notes)) => net,
        Err(err) => return ticket_fuzz::check_error(err),
    };
    ticket_fuzz::check_network(&net);
    for layer in &net.layers {
        assert!(layer.weight.iter().zip(&layer.mask).all(|(&w, &m)| (w != 0.0) == (m == 1)));
    }
    if net.graph.dense_params() <= RUN_LIMIT {
        let logits = net.logits(&ticket_fuzz::inputs(2 * net.graph.inputs()), 2, Par::Seq);
        assert_eq!(logits.len(), 2 * net.graph.outputs());
    }
});
