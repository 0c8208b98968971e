//! The forward pass against a layer-by-layer dense f64 reference, and the conversions to and
//! from the dense `Network`.

use super::*;
use crate::fixture::{
    assert_logits_close, file_contents, net_of, random_model, reference_forward, reference_logits,
    tensor_mut, CsrParts, Random,
};
use half::f16;
use proptest::prelude::*;
use ticket_core::tensor_file::{write_tensors, OwnedTensor};
use ticket_core::Layer;

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

/// A model whose linear layers are compressed decodes them once per thread's share of a
/// pass, or (forced here, as for models too large for that) runs spans of several tiles
/// layer by layer, each chunk of rows decoded once for all of them: either way its logits
/// are bit for bit those of the f32 model of the decoded weights, at one example, one tile,
/// several tiles and more than a span (a short last tile each time), on one thread and two,
/// for an MLP and for a conv net
/// (whose image steps run one example at a time into the tiles of the linear layers' input),
/// and at one example both through the CSR rows and through the sliced copies (where the CPU
/// chooses them).
#[test]
fn compressed_linear_layers_over_spans_equal_the_f32_model() {
    let conv = Graph::from_json(
        r#"{"input":[2,6,6],"layers":[
        {"op":"conv2d","name":"conv1","in":2,"out":4,"kernel":[3,3],"padding":[1,1]},
        {"op":"relu"},{"op":"maxpool2d","kernel":[2,2]},{"op":"flatten"},
        {"op":"linear","name":"fc1","in":36,"out":50},{"op":"relu"},
        {"op":"linear","name":"fc2","in":50,"out":10}]}"#,
    )
    .unwrap();
    compressed_over_spans(&"200-120-40-10".parse().unwrap(), &[0.05, 0.1, 0.3]);
    compressed_over_spans(&conv, &[0.5, 0.2, 0.3]);
}

fn compressed_over_spans(graph: &Graph, densities: &[f64]) {
    use crate::kernels::compressed::tests::layouts;
    let graph = graph.clone();
    let layers = random_model(&graph, densities, 4);
    let mut rng = Random::new(8);
    for codec in ["k6+gap5", "int8+u16", "k3+gap8", "f32+u32"] {
        let (mut compressed, mut decoded) = (vec![], vec![]);
        for (w, weighted) in layers.iter().zip(graph.weighted()) {
            let mut all = layouts(w, &mut rng);
            let (_, c, values) = all.swap_remove(all.iter().position(|l| l.0 == codec).unwrap());
            let (indptr, bias) = (w.indptr.clone().into(), w.bias.clone().into());
            compressed.push(SparseLayer::compressed(
                weighted.name.clone(),
                weighted.shape,
                indptr,
                c,
                bias,
            ));
            decoded.push(CsrParts { values, ..w.clone() });
        }
        let mut model = SparseModel::new(graph.clone(), compressed, ValueDtype::F32, 0, None);
        assert!(model.plan.decodes_per_pass(), "{codec}");
        assert_eq!(model.plan.span(), TILE, "{codec}");
        let f32_model = SparseModel::from_net(&net_of(&graph, &decoded));
        for (batch, decoding) in [1, 32, 75, 600].into_iter().flat_map(|b| [(b, true), (b, false)])
        {
            model.plan.set_decoding_per_pass(decoding);
            // Both graphs end in linear layers and ReLUs only.
            let span = if decoding { TILE } else { TILE * plan::TILES_PER_SPAN };
            assert_eq!(model.plan.span(), span, "{codec}");
            let x = rng.vec(batch * graph.inputs(), -1.0, 1.0);
            let paths = [Scratch::csr_rows_only, Scratch::without_zero_skipping];
            for (par, scratch) in
                [Par::Seq, Par::Rayon(2)].into_iter().flat_map(|p| paths.map(|s| (p, s)))
            {
                let (mut want, mut got) = (vec![0.0; batch * 10], vec![0.0; batch * 10]);
                f32_model.logits_into(&x, batch, &mut want, &mut scratch(), par).unwrap();
                model.logits_into(&x, batch, &mut got, &mut scratch(), par).unwrap();
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                let what = format!("{codec} batch {batch} {par:?} decoding per pass: {decoding}");
                assert_eq!(bits(&got), bits(&want), "{what}");
            }
        }
    }
}

/// LeNet-5, Conv-2 and a small AlexNet at the densities of published tickets (Han et al.'s
/// for AlexNet), every layer kind of the fast path at once (blocked convs strided or not,
/// with the max-pool fused or not, overlapping pools, per-example image steps, tiles,
/// threads; the small AlexNet's conv1, about 8 x 363 x 0.84 weights x 16 x 16 pixels =
/// 624,000 multiply-adds, splits over threads at batch 1), against the f64 reference; the
/// timed forward pass gives the same logits.
#[test]
fn lenet5_conv2_and_alexnet_tickets_match_reference() {
    let recipe = |name: &str| ticket_core::Recipe::resolve(name).unwrap().graph().unwrap();
    for (recipe, graph, densities) in [
        ("lenet-5", recipe("lenet-5"), vec![0.66, 0.12, 0.08, 0.19]),
        ("conv-2", recipe("conv-2"), vec![0.35, 0.35, 0.11, 0.11, 0.35]),
        ("small alexnet", small_alexnet(), vec![0.84, 0.38, 0.35, 0.37, 0.37, 0.09, 0.09, 0.25]),
    ] {
        let layers = random_model(&graph, &densities, 3);
        let model = SparseModel::from_net(&net_of(&graph, &layers));
        let mut rng = Random::new(8);
        for batch in [1, 3, 40] {
            let x = rng.vec(batch * graph.inputs(), 0.0, 1.0);
            let want: Vec<f64> = x
                .chunks_exact(graph.inputs())
                .flat_map(|e| reference_forward(&graph, &layers, e))
                .collect();
            // Conv-2's logits reach hundreds, and f32 sums of thousands of terms round at
            // that scale: the bound is relative to the largest logit (the dense sgemm path
            // lands as far from the f64 reference).
            let scale = 1.0 + want.iter().fold(0.0f64, |m, w| m.max(w.abs()));
            for par in [Par::Seq, Par::Rayon(2)] {
                let got = model.logits(&x, batch, par).unwrap();
                for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (g as f64 - w).abs() <= 1e-5 * scale,
                        "{recipe}: logit {i}: {g} vs {w}"
                    );
                }
                let clock = crate::timing::StepClock::new(model.step_names().len());
                let timed =
                    model.logits_timed((&x, batch), &mut Scratch::default(), par, &clock).unwrap();
                assert_eq!(timed, got, "{recipe}: timed");
                assert!(clock.micros().iter().all(|&us| us >= 0.0));
            }
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

/// AlexNet's shape at a small scale: an 11 x 11 stride-4 padded conv1, overlapping 3 x 3 / 2
/// max-pools, 5 x 5 and 3 x 3 padded convs, three linear layers.
fn small_alexnet() -> Graph {
    Graph::from_json(
        r#"{"input":[3,67,67],"layers":[
        {"op":"conv2d","name":"conv1","in":3,"out":8,"kernel":[11,11],"stride":[4,4],"padding":[2,2]},
        {"op":"relu"},{"op":"maxpool2d","kernel":[3,3],"stride":[2,2]},
        {"op":"conv2d","name":"conv2","in":8,"out":12,"kernel":[5,5],"padding":[2,2]},
        {"op":"relu"},{"op":"maxpool2d","kernel":[3,3],"stride":[2,2]},
        {"op":"conv2d","name":"conv3","in":12,"out":16,"kernel":[3,3],"padding":[1,1]},{"op":"relu"},
        {"op":"conv2d","name":"conv4","in":16,"out":12,"kernel":[3,3],"padding":[1,1]},{"op":"relu"},
        {"op":"conv2d","name":"conv5","in":12,"out":12,"kernel":[3,3],"padding":[1,1]},{"op":"relu"},
        {"op":"maxpool2d","kernel":[3,3],"stride":[2,2]},{"op":"flatten"},
        {"op":"linear","name":"fc6","in":12,"out":32},{"op":"relu"},
        {"op":"linear","name":"fc7","in":32,"out":32},{"op":"relu"},
        {"op":"linear","name":"fc8","in":32,"out":10}]}"#,
    )
    .unwrap()
}

/// A random image graph: sometimes a ReLU on the input, then one or two blocks of conv2d (kernels from 1x1 to 4x4, square or
/// not, stride 1 or 2, padding 0 to 2), maybe a ReLU, maybe a max or average pool (stride
/// from the kernel or its own), maybe a ReLU after the pool; then flatten, a hidden linear
/// layer half the time, and the linear output layer.
fn random_image_graph(rng: &mut Random) -> Graph {
    let mut pick = |lo: usize, hi: usize| lo + (rng.unit() * (hi - lo + 1) as f64) as usize;
    let mut shape = [pick(1, 3), pick(5, 13), pick(5, 13)];
    let input = shape.to_vec();
    let mut layers = Vec::new();
    if pick(0, 4) == 0 {
        layers.push(Layer::Relu);
    }
    for block in 0..pick(1, 2) {
        let kernel = [pick(1, 4).min(shape[1]), pick(1, 4).min(shape[2])];
        let (stride, padding) = ([pick(1, 2), pick(1, 2)], [pick(0, 2), pick(0, 2)]);
        let out = |d: usize| (shape[d] + 2 * padding[d - 1] - kernel[d - 1]) / stride[d - 1] + 1;
        let outputs = pick(1, 6);
        layers.push(Layer::Conv2d {
            name: format!("conv{block}"),
            inputs: shape[0],
            outputs,
            kernel,
            stride,
            padding,
        });
        shape = [outputs, out(1), out(2)];
        if pick(0, 3) > 0 {
            layers.push(Layer::Relu);
        }
        if pick(0, 1) == 1 {
            let kernel = [pick(1, 3).min(shape[1]), pick(1, 3).min(shape[2])];
            let stride = (pick(0, 1) == 1).then(|| [pick(1, 2), pick(1, 2)]);
            let s = stride.unwrap_or(kernel);
            shape =
                [shape[0], (shape[1] - kernel[0]) / s[0] + 1, (shape[2] - kernel[1]) / s[1] + 1];
            layers.push(if pick(0, 1) == 0 {
                Layer::Maxpool2d { kernel, stride }
            } else {
                Layer::Avgpool2d { kernel, stride }
            });
            if pick(0, 3) == 0 {
                layers.push(Layer::Relu);
            }
        }
    }
    layers.push(Layer::Flatten);
    let mut features = shape.iter().product();
    if pick(0, 1) == 1 {
        let hidden = pick(1, 16);
        layers.push(Layer::Linear { name: "fc1".into(), inputs: features, outputs: hidden });
        layers.push(Layer::Relu);
        features = hidden;
    }
    layers.push(Layer::Linear { name: "out".into(), inputs: features, outputs: pick(2, 5) });
    Graph::new(input, layers).expect("the shapes were computed as the graph does")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Image graphs from a file, with u16 or u32 indices and f32 or f16 values, against the
    /// f64 reference on the values as stored.
    #[test]
    fn image_graphs_match_dense_reference(
        seed in any::<u64>(),
        batch in prop_oneof![Just(1), (1usize..16).prop_map(|b| 2 * b + 1), 33..90usize],
        half in any::<bool>(),
        wide_indices in any::<bool>(),
        threads in 1usize..4,
    ) {
        let mut rng = Random::new(seed);
        let graph = random_image_graph(&mut rng);
        let densities: Vec<f64> = (0..graph.num_weighted())
            .map(|i| if i == 0 && rng.unit() < 0.2 { 1.0 } else { rng.unit() })
            .collect();
        let mut layers = random_model(&graph, &densities, seed ^ 5);
        let dtype = if half { ValueDtype::F16 } else { ValueDtype::F32 };
        let (mut tensors, meta) = file_contents(&graph, &layers, dtype);
        if wide_indices {
            for (l, name) in layers.iter().zip(graph.layer_names()) {
                *tensor_mut(&mut tensors, &csr_format::indices_name(&name)) =
                    OwnedTensor::u32(vec![l.nnz()], &l.indices);
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        write_tensors(&path, tensors, &meta).unwrap();
        let model = SparseModel::load(&path).unwrap();
        let index_bytes = if wide_indices { 4 } else { 2 };
        prop_assert!(model.layers().iter().all(|l| l.index_bytes() == index_bytes));
        if half {
            layers.iter_mut().flat_map(|l| &mut l.values).for_each(|v| *v = f16::from_f32(*v).to_f32());
        }
        let x = rng.vec(batch * graph.inputs(), -1.0, 1.0);
        let want: Vec<f64> = x
            .chunks_exact(graph.inputs())
            .flat_map(|e| reference_forward(&graph, &layers, e))
            .collect();
        let par = if threads == 1 { Par::Seq } else { Par::Rayon(threads) };
        assert_logits_close(&model.logits(&x, batch, par).unwrap(), &want, &graph.to_string());
        // The same weights converted in memory run the same, and convert back to the network.
        let net = net_of(&graph, &layers);
        let from_net = SparseModel::from_net(&net);
        assert_logits_close(&from_net.logits(&x, batch, par).unwrap(), &want, "from_net");
        prop_assert_eq!(model.to_dense(), net);
    }
}

/// A batch-1 pass run on a pool's worker keeps the pool's other worker polling for the layer
/// splits (`awake_pool`): the same logits as on one thread, and every pass ends.
#[test]
fn batch1_passes_on_a_pool_worker_match_one_thread_and_finish() {
    let graph = ticket_core::Recipe::resolve("conv-2").unwrap().graph().unwrap();
    let layers = random_model(&graph, &[0.35, 0.35, 0.11, 0.11, 0.35], 3);
    let model = SparseModel::from_net(&net_of(&graph, &layers));
    let x = Random::new(8).vec(graph.inputs(), 0.0, 1.0);
    let want = model.logits(&x, 1, Par::Seq).unwrap();
    let (send, passes) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let got: Vec<Vec<f32>> =
            pool.install(|| (0..50).map(|_| model.logits(&x, 1, Par::Rayon(2)).unwrap()).collect());
        send.send(got).unwrap();
    });
    let got = passes
        .recv_timeout(std::time::Duration::from_secs(300))
        .expect("50 batch-1 passes on a pool worker did not finish in 5 minutes");
    for (i, logits) in got.iter().enumerate() {
        assert_eq!(logits, &want, "pass {i}");
    }
}
