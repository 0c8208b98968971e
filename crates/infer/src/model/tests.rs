//! The forward pass against a layer-by-layer dense f64 reference, and the conversions to and
//! from the dense `Network`.

use super::*;
use crate::fixture::{
    assert_logits_close, net_of, random_model, reference_logits, CsrParts, Random,
};
use proptest::prelude::*;

fn arch_strategy() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..48, 2..5)
}

#[test]
fn an_empty_batch_has_no_logits() {
    let graph: Graph = "5-3-2".parse().unwrap();
    let model = SparseModel::from_net(&net_of(&graph, &random_model(&graph, &[0.5, 1.0], 4)));
    for par in [Par::Seq, Par::Rayon(2)] {
        assert_eq!(model.logits(&[], 0, par).unwrap(), Vec::<f32>::new());
        assert_eq!(
            model.accuracy(&Dataset { features: 5, ..Dataset::default() }, par).unwrap(),
            0.0
        );
    }
    assert!(model.logits(&[1.0], 0, Par::Seq).is_err(), "inputs for no examples");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn forward_matches_dense_reference(
        sizes in arch_strategy(),
        densities in prop::collection::vec(prop_oneof![Just(0.0), Just(1.0), 0.0..1.0f64], 4),
        batch in prop_oneof![Just(1), 2..64usize, Just(64), 65..200usize],
        threads in 1usize..4,
        seed in any::<u64>(),
    ) {
        let graph = Graph::mlp(&sizes).unwrap();
        let layers = random_model(&graph, &densities[..graph.num_weighted()], seed);
        let model = SparseModel::from_net(&net_of(&graph, &layers));
        let mut rng = Random::new(seed ^ 3);
        let x = rng.vec(batch * graph.inputs(), -1.0, 1.0);
        let par = if threads == 1 { Par::Seq } else { Par::Rayon(threads) };
        let got = model.logits(&x, batch, par).unwrap();
        let want: Vec<f64> = x
            .chunks_exact(graph.inputs())
            .flat_map(|e| reference_logits(&layers, e))
            .collect();
        assert_logits_close(&got, &want, "sparse");
        // The dense path on the decoded weights agrees as well.
        let dense = model.to_dense().logits(&x, batch, par);
        assert_logits_close(&dense, &want, "dense");
    }
}

#[test]
fn lenet_batches_across_tiles_and_threads() {
    let graph: Graph = "784-300-100-10".parse().unwrap();
    let layers = random_model(&graph, &[0.035, 0.035, 0.2], 11);
    let model = SparseModel::from_net(&net_of(&graph, &layers));
    let mut rng = Random::new(5);
    for batch in [1, 8, 200] {
        let x = rng.vec(batch * 784, 0.0, 1.0);
        let want: Vec<f64> =
            x.chunks_exact(784).flat_map(|e| reference_logits(&layers, e)).collect();
        for par in [Par::Seq, Par::Rayon(2)] {
            assert_logits_close(&model.logits(&x, batch, par).unwrap(), &want, "lenet");
        }
    }
}

#[test]
fn conversions_round_trip_and_count() {
    let graph: Graph = "70000-3-2".parse().unwrap();
    let layers = random_model(&graph, &[0.001, 0.5], 2);
    let net = net_of(&graph, &layers);
    let model = SparseModel::from_net(&net);
    assert_eq!(model.to_dense(), net);
    assert_eq!(model.nnz(), layers.iter().map(CsrParts::nnz).sum::<usize>());
    // 70,000 columns need u32 indices, 3 columns fit u16.
    assert_eq!(model.layers()[0].index_bytes(), 4);
    assert_eq!(model.layers()[1].index_bytes(), 2);
    let l = &layers[0];
    assert_eq!(model.layers()[0].weight_bytes(), 4 * (l.rows + 1) + 8 * l.nnz() + 4 * l.rows);
    assert_eq!(model.borrowed_bytes(), 0);
}

#[test]
fn accuracy_counts_argmax_hits() {
    let graph: Graph = "6-5-3".parse().unwrap();
    let layers = random_model(&graph, &[0.7, 0.9], 4);
    let model = SparseModel::from_net(&net_of(&graph, &layers));
    let mut rng = Random::new(9);
    let images = rng.vec(50 * 6, 0.0, 1.0);
    // Label half the examples with their reference argmax, the other half with another class.
    let labels: Vec<u8> = images
        .chunks_exact(6)
        .enumerate()
        .map(|(i, e)| {
            let l = reference_logits(&layers, e);
            let best = (0..3).max_by(|&a, &b| l[a].total_cmp(&l[b])).unwrap();
            (if i % 2 == 0 { best } else { (best + 1) % 3 }) as u8
        })
        .collect();
    let data = Dataset { features: 6, images, labels };
    assert_eq!(model.accuracy(&data, Par::Rayon(2)).unwrap(), 0.5);
    assert_eq!(model.to_dense().accuracy(&data, Par::Seq), 0.5);
}

#[test]
fn wrong_input_length_is_an_error() {
    let graph: Graph = "4-2".parse().unwrap();
    let model = SparseModel::from_net(&Network::zeros(&graph));
    let err = model.logits(&[0.0; 7], 2, Par::Seq).unwrap_err().to_string();
    assert_eq!(err, "7 input values for 2 examples of 4 features");
}
