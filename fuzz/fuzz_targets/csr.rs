//! The CSR model loaders (inference's, and export's for re-encoding) on arbitrary bytes, and a
//! forward pass on whatever the first accepts: batch 0,
//! 1 (the scalar row kernel), 9 (one full and one masked AVX2 block) and 70 (64-example blocks,
//! two tiles on two threads), then the dense path on the same weights. Anything refused is a
//! one-line error naming the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ticket_core::Par;
use ticket_infer::SparseModel;

/// Models above this many dense weights (or inputs) are loaded but not run.
const RUN_LIMIT: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    // The reader `ticket export` re-encodes a CSR file with: no panic, one-line errors, and
    // the same kept weights as the inference loader where both accept the bytes.
    let exported = ticket_export::read_csr_bytes(data, ticket_fuzz::path());
    if let Err(err) = &exported {
        ticket_fuzz::check_error(err);
    }
    let model = match SparseModel::from_bytes(data.to_vec(), ticket_fuzz::path()) {
        Ok(m) => m,
        Err(err) => return ticket_fuzz::check_error(err),
    };
    if let Ok(file) = &exported {
        assert_eq!(file.model.kept_weights(), model.nnz());
    }
    let (inputs, outputs) = (model.inputs(), model.outputs());
    assert!(model.nnz() <= model.graph().dense_weights());
    if inputs > RUN_LIMIT / 128 || model.graph().dense_weights() > RUN_LIMIT {
        return;
    }
    let x = ticket_fuzz::inputs(70 * inputs);
    for (batch, par) in [(0, Par::Seq), (1, Par::Seq), (9, Par::Seq), (70, Par::Rayon(2))] {
        let logits = model.logits(&x[..batch * inputs], batch, par).expect("inputs fit");
        assert_eq!(logits.len(), batch * outputs);
    }
    let dense = model.to_dense();
    assert_eq!(dense.kept_weights(), model.nnz());
    assert_eq!(dense.logits(&x[..inputs], 1, Par::Seq).len(), outputs);
});
