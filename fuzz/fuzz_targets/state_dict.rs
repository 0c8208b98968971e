//! The PyTorch state-dict importer on arbitrary bytes (an MLP inferred from the tensors). A
//! model it accepts has layers that chain, masks of 0 and 1 with pruned weights at zero, and
//! (when small) a forward pass with logits of the right length. Anything else is a one-line
//! error naming the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ticket_core::Par;
use ticket_import::{state_dict::read_state_dict, ImportOptions};

/// Models above this many weights are only imported, not run.
const RUN_LIMIT: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let net = match read_state_dict(data, ticket_fuzz::path(), &ImportOptions::default()) {
        Ok((net, _pruned)) => net,
        Err(err) => return ticket_fuzz::check_error(err),
    };
    ticket_fuzz::check_network(&net);
    if net.graph.dense_params() <= RUN_LIMIT {
        let logits = net.logits(&ticket_fuzz::inputs(2 * net.graph.inputs()), 2, Par::Seq);
        assert_eq!(logits.len(), 2 * net.graph.outputs());
    }
});
