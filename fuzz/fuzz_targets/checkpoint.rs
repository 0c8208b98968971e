//! The dense checkpoint loader on arbitrary bytes. A checkpoint it accepts has layers that fit
//! its architecture and masks of 0 and 1; a small one runs forward, and (when its kept weights
//! are finite) its export to CSR, read back by the sparse loader, is the masked checkpoint
//! exactly. Anything else is a one-line error naming the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use safetensors::tensor::TensorView;
use std::collections::HashMap;
use ticket_core::checkpoint::load_bytes;
use ticket_core::csr_format::ValueDtype;
use ticket_core::{Network, Par};
use ticket_export::{Codecs, CsrModel, Provenance};
use ticket_infer::SparseModel;

/// Models above this many weights are only loaded, not run (the file holds every weight, so
/// this only skips inputs larger than the fuzzer's usual lengths).
const RUN_LIMIT: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let checkpoint = match load_bytes(data, ticket_fuzz::path()) {
        Ok(c) => c,
        Err(err) => return ticket_fuzz::check_error(err),
    };
    let net = checkpoint.net;
    ticket_fuzz::check_network(&net);
    if net.graph.dense_params() > RUN_LIMIT {
        return;
    }
    let batch = 3;
    let logits = net.logits(&ticket_fuzz::inputs(batch * net.graph.inputs()), batch, Par::Seq);
    assert_eq!(logits.len(), batch * net.graph.outputs());
    round_trip_through_csr(&net);
});

/// Exports `net` to CSR bytes in memory and loads them with the sparse loader.
fn round_trip_through_csr(net: &Network) {
    let Ok(csr) = CsrModel::from_net(net) else { return }; // NaN or infinite kept weights
    let tensors = csr.tensors(Codecs::float(ValueDtype::F32)).expect("finite f32 values encode");
    let views = tensors.iter().map(|(name, t)| {
        (name.clone(), TensorView::new(t.dtype, t.shape.clone(), &t.data).expect("consistent"))
    });
    let meta: HashMap<String, String> =
        csr.metadata(Codecs::float(ValueDtype::F32), &Provenance::default()).into_iter().collect();
    let bytes = safetensors::serialize(views, Some(meta)).expect("serializes");
    let model = SparseModel::from_bytes(bytes, ticket_fuzz::path())
        .unwrap_or_else(|e| panic!("an exported checkpoint does not load: {e}"));
    let mut masked = net.clone();
    masked.apply_masks();
    assert!(model.to_dense() == masked, "the export does not round-trip");
}
