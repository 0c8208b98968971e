//! Trained quantization (Deep Compression, Han et al. 2016, section 3.3): after the k-means
//! codebook of each layer is fixed, its centroids are trained on the training data while every
//! kept weight stays tied to its centroid. The forward pass uses the shared weights, the
//! backward pass gives each weight's gradient (pruned weights are outside every cluster, so
//! masks hold), the gradients of a cluster are summed into its centroid's, and the optimizer
//! moves the centroids. Cluster assignments never change, so the model written afterwards is
//! still `kN` with the same codes and only the codebook differs.
//!
//! Biases stay as they are (the paper trains the shared weights only). int8 has per-row scales
//! rather than a codebook and is not fine-tuned.

use crate::export::{check_fits, Evaluation};
use crate::quantize::kmeans;
use crate::{Error, Result};
use serde::Serialize;
use std::ops::ControlFlow;
use ticket_core::recipe::{Optimizer as OptimizerKind, TrainRecipe};
use ticket_core::{Network, Par};
use ticket_train::engine::EVAL_BATCH;
use ticket_train::network::{Gradients, Workspace};
use ticket_train::optim::Optimizer;
use ticket_train::trainer::BatchOrder;

/// Adam's step for the centroids when none is given. Adam moves each centroid by about the
/// learning rate per step whatever the size of its cluster, so this is a distance in weight
/// units, small against the spacing of a 16-entry codebook of LeNet weights (~0.02). On the
/// LeNet-300-100 Fashion-MNIST ticket (2.9% kept, 1000 steps, k2/k3/k4) the training loss
/// after fine-tuning was 0.3003/0.2945/0.2878 at 1e-4, 0.2958/0.2921/0.2857 at 3e-4 and
/// 0.2944/0.2912/0.2846 at 1e-3; SGD (momentum 0.9) reached 0.2960/0.2935/0.2867 at its best
/// rate (1e-3) and diverged at 1e-2. 3e-4 takes most of the gain while keeping the step below
/// the centroid spacing of the finer codebooks.
pub const DEFAULT_LEARNING_RATE: f32 = 3e-4;

/// SGD's momentum (the paper trained with Caffe's SGD, momentum 0.9).
pub const SGD_MOMENTUM: f32 = 0.9;

/// Examples per fine-tuning step (the batch of the paper's LeNet runs).
pub const BATCH_SIZE: usize = 60;

/// How to fine-tune.
#[derive(Clone, Copy, Debug)]
pub struct FinetuneOptions {
    /// Optimizer steps.
    pub iterations: usize,
    /// Adam (default) or SGD with momentum [`SGD_MOMENTUM`].
    pub optimizer: OptimizerKind,
    pub learning_rate: f32,
    pub batch_size: usize,
    /// Keys the batch order.
    pub seed: u64,
    pub par: Par,
}

impl FinetuneOptions {
    /// `iterations` steps at [`DEFAULT_LEARNING_RATE`], batches of [`BATCH_SIZE`], seed 0.
    pub fn new(iterations: usize, par: Par) -> Self {
        FinetuneOptions {
            iterations,
            optimizer: OptimizerKind::Adam,
            learning_rate: DEFAULT_LEARNING_RATE,
            batch_size: BATCH_SIZE,
            seed: 0,
            par,
        }
    }
}

/// One layer's kept weights tied to a codebook.
#[derive(Clone, Debug, PartialEq)]
pub struct SharedLayer {
    /// Index in the layer's weight array of each kept weight, ascending.
    pub positions: Vec<usize>,
    /// The centroid of each kept weight (fixed).
    pub codes: Vec<u32>,
    /// The trained values.
    pub centroids: Vec<f32>,
}

/// Every weighted layer's codebook and assignments.
#[derive(Clone, Debug, PartialEq)]
pub struct SharedWeights {
    pub layers: Vec<SharedLayer>,
}

impl SharedWeights {
    /// The k-means codebook of at most `2^bits` centroids of each layer's kept weights, the
    /// one a `kN` export writes.
    pub fn kmeans(net: &Network, bits: u32) -> Self {
        let layers = net
            .layers
            .iter()
            .map(|layer| {
                let positions: Vec<usize> =
                    (0..layer.mask.len()).filter(|&i| layer.mask[i] != 0).collect();
                let values: Vec<f32> = positions.iter().map(|&i| layer.weight[i]).collect();
                let book = kmeans(&values, bits);
                SharedLayer { positions, codes: book.codes, centroids: book.centroids }
            })
            .collect();
        SharedWeights { layers }
    }

    /// Sets each kept weight of `net` to its centroid (pruned weights are not touched).
    pub fn apply(&self, net: &mut Network) {
        for (shared, layer) in self.layers.iter().zip(&mut net.layers) {
            for (&i, &c) in shared.positions.iter().zip(&shared.codes) {
                layer.weight[i] = shared.centroids[c as usize];
            }
        }
    }

    /// The gradient of the loss with respect to each centroid: the sum of the gradients of
    /// the weights tied to it (`weight[l]` is layer `l`'s per-weight gradient).
    pub fn centroid_gradients(&self, weight: &[Vec<f32>]) -> Vec<Vec<f32>> {
        self.layers
            .iter()
            .zip(weight)
            .map(|(shared, grad)| {
                let mut sum = vec![0.0f64; shared.centroids.len()];
                for (&i, &c) in shared.positions.iter().zip(&shared.codes) {
                    sum[c as usize] += grad[i] as f64;
                }
                sum.into_iter().map(|g| g as f32).collect()
            })
            .collect()
    }
}

/// What fine-tuning did.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FinetuneReport {
    pub bits: u32,
    pub iterations: usize,
    pub learning_rate: f32,
    pub batch_size: usize,
    pub optimizer: &'static str,
    pub train_examples: usize,
    /// Mean cross-entropy on the whole training split with the k-means codebook.
    pub train_loss_before: f64,
    /// The same after fine-tuning.
    pub train_loss_after: f64,
    /// Accuracy on the evaluation data with the k-means codebook, when data was given (after
    /// fine-tuning it is the export's accuracy).
    pub accuracy_before: Option<f64>,
}

/// The fine-tuned model and what fine-tuning did.
#[derive(Clone, Debug)]
pub struct Finetuned {
    /// The source with every kept weight replaced by its trained centroid; masks and biases
    /// unchanged.
    pub net: Network,
    pub shared: SharedWeights,
    pub report: FinetuneReport,
}

/// Builds the `2^bits`-entry codebooks of `net` and trains their centroids on `train` for
/// `opts.iterations` optimizer steps. `eval`, if given, is only measured (accuracy before).
/// `progress` sees each step's iteration (1-based) and batch loss; breaking stops with
/// [`Error::Interrupted`] and nothing is kept.
pub fn finetune(
    net: &Network,
    bits: u32,
    train: Evaluation,
    eval: Option<Evaluation>,
    opts: &FinetuneOptions,
    progress: &mut dyn FnMut(usize, f64) -> ControlFlow<()>,
) -> Result<Finetuned> {
    check_fits(net, &train)?;
    if let Some(eval) = &eval {
        check_fits(net, eval)?;
    }
    if train.data.is_empty() {
        return Err(ticket_core::Error::usage(format!(
            "{}: the training split is empty; there is nothing to fine-tune on",
            train.name
        ))
        .into());
    }
    let par = opts.par;
    let mut shared = SharedWeights::kmeans(net, bits);
    let mut tuned = net.clone();
    tuned.apply_masks();
    shared.apply(&mut tuned);

    let mut eval_ws = Workspace::new(&tuned, Workspace::eval_capacity(&tuned, EVAL_BATCH));
    let train_loss_before = eval_ws.evaluate(&tuned, train.data, par).mean_loss();
    // Measured like the export report measures the written model.
    let accuracy_before = eval.map(|e| tuned.accuracy(e.data, par));

    let recipe = optimizer_recipe(opts);
    let mut optimizer =
        Optimizer::new(&recipe, shared.layers.iter().map(|l| (l.centroids.len(), None)).collect());
    let mut ws = Workspace::new(&tuned, opts.batch_size);
    let mut grads = Gradients::zeros(&tuned);
    let mut order = BatchOrder::new(train.data.len(), opts.seed);
    let features = train.data.features;
    let mut x = vec![0.0f32; opts.batch_size * features];
    let mut labels = vec![0u8; opts.batch_size];
    for iteration in 1..=opts.iterations {
        for (slot, &example) in order.next_batch(opts.batch_size).iter().enumerate() {
            x[slot * features..(slot + 1) * features].copy_from_slice(train.data.image(example));
            labels[slot] = train.data.labels[example];
        }
        let stats = ws.backward(&tuned, &x, &labels, &mut grads, par);
        let centroid_grads = shared.centroid_gradients(&grads.weight);
        let params = shared
            .layers
            .iter_mut()
            .zip(&centroid_grads)
            .map(|(l, g)| (l.centroids.as_mut_slice(), g.as_slice()))
            .collect();
        optimizer.step(params, par);
        shared.apply(&mut tuned);
        if progress(iteration, stats.mean_loss()).is_break() {
            return Err(Error::Interrupted { iteration });
        }
    }
    let train_loss_after = eval_ws.evaluate(&tuned, train.data, par).mean_loss();
    let report = FinetuneReport {
        bits,
        iterations: opts.iterations,
        learning_rate: opts.learning_rate,
        batch_size: opts.batch_size,
        optimizer: match opts.optimizer {
            OptimizerKind::Adam => "adam",
            OptimizerKind::Sgd => "sgd",
        },
        train_examples: train.data.len(),
        train_loss_before,
        train_loss_after,
        accuracy_before,
    };
    Ok(Finetuned { net: tuned, shared, report })
}

/// The optimizer of `opts` (Adam with PyTorch's defaults), no dropout or weight decay.
fn optimizer_recipe(opts: &FinetuneOptions) -> TrainRecipe {
    TrainRecipe {
        optimizer: opts.optimizer,
        learning_rate: opts.learning_rate,
        batch_size: opts.batch_size,
        iterations: opts.iterations,
        eval_every: opts.iterations.max(1),
        validation_size: 0,
        beta1: 0.9,
        beta2: 0.999,
        epsilon: 1e-8,
        momentum: SGD_MOMENTUM,
        weight_decay: 0.0,
        dropout: 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::read_csr;
    use crate::export::{export_replaced, ExportOptions};
    use crate::Codecs;
    use ticket_core::csr_format::{IndexCodec, ValueCodec};
    use ticket_core::recipe::Init;
    use ticket_core::{DataSource, Dataset, Graph};
    use ticket_train::init::init_net;
    use ticket_train::network::softmax_cross_entropy;
    use ticket_train::rng::SeededRng;

    /// A digits-shaped conv net (conv, pools, flatten, linear) and an MLP, about a third of
    /// every layer's weights kept, biases nonzero.
    fn nets() -> Vec<Network> {
        let conv = Graph::from_json(
            r#"{"input": [1, 8, 8], "layers": [
                {"op": "conv2d", "name": "conv1", "in": 1, "out": 4, "kernel": [3, 3],
                 "padding": [1, 1]},
                {"op": "relu"},
                {"op": "maxpool2d", "kernel": [2, 2]},
                {"op": "conv2d", "name": "conv2", "in": 4, "out": 6, "kernel": [3, 3]},
                {"op": "relu"},
                {"op": "avgpool2d", "kernel": [2, 2]},
                {"op": "flatten"},
                {"op": "linear", "name": "fc", "in": 6, "out": 10}]}"#,
        )
        .unwrap();
        let mlp: Graph = "64-20-12-10".parse().unwrap();
        [conv, mlp]
            .iter()
            .enumerate()
            .map(|(seed, graph)| {
                let mut rng = SeededRng::new(seed as u64, "init");
                let mut net = init_net(graph, Init::KaimingNormal, &mut rng);
                for layer in &mut net.layers {
                    layer.bias.iter_mut().for_each(|b| *b = (rng.normal() * 0.1) as f32);
                    layer.mask.iter_mut().for_each(|m| *m = (rng.uniform() < 0.35) as u8);
                    layer.apply_mask();
                }
                net
            })
            .collect()
    }

    /// The digits recipe `name` trained for a few hundred steps under random masks keeping
    /// about a third of each layer: a small ticket whose k2 codebook costs accuracy.
    fn trained(name: &str, splits: &ticket_core::Splits) -> Network {
        let mut recipe = ticket_core::Recipe::resolve(name).unwrap();
        recipe.train.iterations = 300;
        let graph = recipe.graph().unwrap();
        let mut rng = SeededRng::new(4, "init");
        let mut net = init_net(&graph, Init::GlorotNormal, &mut rng);
        for layer in &mut net.layers {
            layer.mask.iter_mut().for_each(|m| *m = (rng.uniform() < 0.35) as u8);
            layer.apply_mask();
        }
        let opts = ticket_train::TrainOptions::new(1, Par::Seq);
        ticket_train::train(net, splits, &recipe.train, &opts, &mut ticket_train::trainer::Silent)
            .unwrap()
            .net
    }

    fn digits() -> ticket_core::Splits {
        DataSource::Digits.load(0).unwrap()
    }

    fn mean_loss(net: &Network, data: &Dataset) -> f64 {
        let logits = net.logits(&data.images, data.len(), Par::Seq);
        softmax_cross_entropy(&logits, &data.labels, 10, None).mean_loss()
    }

    fn batch(data: &Dataset, n: usize) -> Dataset {
        data.select(&(0..n).collect::<Vec<_>>())
    }

    /// Each centroid's gradient is the sum of the gradients of the kept weights holding its
    /// value, found by scanning the whole layer, and the derivative of the loss along the
    /// centroid (central finite differences of the shared model).
    #[test]
    fn centroid_gradients_are_cluster_sums_and_the_loss_derivative() {
        let data = batch(&digits().train, 40);
        for net in nets() {
            let shared = SharedWeights::kmeans(&net, 2);
            let mut tuned = net.clone();
            shared.apply(&mut tuned);
            let mut ws = Workspace::new(&tuned, data.len());
            let mut grads = Gradients::zeros(&tuned);
            ws.backward(&tuned, &data.images, &data.labels, &mut grads, Par::Seq);
            let ours = shared.centroid_gradients(&grads.weight);
            for (l, layer) in tuned.layers.iter().enumerate() {
                let centroids = &shared.layers[l].centroids;
                assert!(centroids.len() > 1, "layer {l} has a codebook");
                for (j, &c) in centroids.iter().enumerate() {
                    let naive: f64 = (0..layer.weight.len())
                        .filter(|&i| layer.mask[i] == 1 && layer.weight[i] == c)
                        .map(|i| grads.weight[l][i] as f64)
                        .sum();
                    let got = ours[l][j] as f64;
                    assert!((got - naive).abs() <= 1e-6 * (1.0 + naive.abs()), "{got} vs {naive}");

                    let h = 1e-3f32;
                    let moved = |d: f32| {
                        let mut s = shared.clone();
                        s.layers[l].centroids[j] += d;
                        let mut n = tuned.clone();
                        s.apply(&mut n);
                        mean_loss(&n, &data)
                    };
                    let numeric = (moved(h) - moved(-h)) / (2.0 * h as f64);
                    assert!(
                        (numeric - got).abs() < 5e-3 * (1.0 + numeric.abs()),
                        "{} layer {l} centroid {j}: numeric {numeric} analytic {got}",
                        net.graph
                    );
                }
            }
        }
    }

    /// A short run on digits lowers the training loss and leaves masks, assignments and biases
    /// as they were; the export is kN, reads back to exactly the fine-tuned weights and keeps
    /// the reported codes.
    #[test]
    fn finetuning_lowers_the_loss_and_keeps_masks_and_assignments() {
        let splits = digits();
        let train = Evaluation { name: "digits", data: &splits.train };
        let test = Evaluation { name: "digits", data: &splits.test };
        for net in [trained("digits-mlp", &splits), trained("digits-conv", &splits)] {
            let mut opts = FinetuneOptions::new(150, Par::Seq);
            opts.learning_rate = 1e-3;
            let mut seen = 0;
            let tuned = finetune(&net, 2, train, Some(test), &opts, &mut |i, loss| {
                assert_eq!(i, seen + 1);
                assert!(loss.is_finite());
                seen = i;
                ControlFlow::Continue(())
            })
            .unwrap();
            assert_eq!(seen, 150);
            let r = &tuned.report;
            assert!(r.train_loss_after < 0.9 * r.train_loss_before, "{r:?}");
            assert_eq!(r.train_examples, splits.train.len());
            let kmeans = SharedWeights::kmeans(&net, 2);
            let mut before = net.clone();
            kmeans.apply(&mut before);
            assert_eq!(r.accuracy_before, Some(before.accuracy(&splits.test, Par::Seq)));
            assert!((r.train_loss_before - mean_loss(&before, &splits.train)).abs() < 1e-4);
            assert!((r.train_loss_after - mean_loss(&tuned.net, &splits.train)).abs() < 1e-4);
            for (l, (shared, start)) in tuned.shared.layers.iter().zip(&kmeans.layers).enumerate() {
                assert_eq!((&shared.positions, &shared.codes), (&start.positions, &start.codes));
                assert_ne!(shared.centroids, start.centroids, "layer {l} trained");
                let (a, b) = (&tuned.net.layers[l], &net.layers[l]);
                assert_eq!((&a.mask, &a.bias), (&b.mask, &b.bias));
                for i in 0..a.weight.len() {
                    match shared.positions.binary_search(&i) {
                        Ok(k) => {
                            assert_eq!(a.weight[i], shared.centroids[shared.codes[k] as usize])
                        }
                        Err(_) => assert_eq!(a.weight[i], 0.0),
                    }
                }
            }

            let dir = tempfile::tempdir().unwrap();
            let mut export = ExportOptions::new(dir.path().join("k2.safetensors"));
            export.codecs = Codecs {
                value: ValueCodec::Codebook { bits: 2 }.into(),
                index: IndexCodec::Gaps { bits: 4 }.into(),
            };
            export.eval = Some(test);
            let report = export_replaced(&net, &tuned.net, &export).unwrap();
            let file = read_csr(&export.out).unwrap();
            assert_eq!(file.codecs, export.codecs);
            assert_eq!(file.model.to_dense(), tuned.net);
            let accuracy = report.accuracy.unwrap();
            assert_eq!(accuracy.exported, tuned.net.accuracy(&splits.test, Par::Seq));
            let mut masked = net.clone();
            masked.apply_masks();
            assert_eq!(accuracy.source, masked.accuracy(&splits.test, Par::Seq));
        }
    }

    #[test]
    fn stopping_returns_interrupted_and_bad_data_is_refused() {
        let splits = digits();
        let net = nets().remove(1);
        let train = Evaluation { name: "digits", data: &splits.train };
        let opts = FinetuneOptions::new(50, Par::Seq);
        let stop_at_3 =
            &mut |i, _| if i == 3 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) };
        let err = finetune(&net, 4, train, None, &opts, stop_at_3).unwrap_err();
        assert!(matches!(err, Error::Interrupted { iteration: 3 }), "{err}");

        let narrow = Dataset { features: 10, images: vec![0.0; 20], labels: vec![0, 1] };
        let go = &mut |_, _| ControlFlow::Continue(());
        let bad = Evaluation { name: "narrow", data: &narrow };
        let err = finetune(&net, 4, bad, None, &opts, go).unwrap_err().to_string();
        assert!(err.contains("narrow has 10 features per example") && err.contains("64"), "{err}");
        let empty = Dataset { features: 64, images: vec![], labels: vec![] };
        let err = finetune(&net, 4, Evaluation { name: "none", data: &empty }, None, &opts, go)
            .unwrap_err()
            .to_string();
        assert!(err.contains("none: the training split is empty"), "{err}");
    }
}
