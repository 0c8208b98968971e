//! The whole export of one model: refuse what cannot be exported, write the CSR file, read it
//! back, and measure what it saved and (given data) what it cost in accuracy.

use crate::compressed::Codecs;
use crate::csr::{CsrModel, Provenance};
use crate::decode::read_csr_bytes;
use crate::report::{AccuracyReport, CompressionReport};
use crate::{Error, Result};
use safetensors::tensor::{Metadata, TensorInfo, TensorView};
use safetensors::Dtype;
use std::path::{Path, PathBuf};
use ticket_core::csr_format::ValueDtype;
use ticket_core::tensor_file::{file_len, TensorFile};
use ticket_core::{Dataset, Network, Par};

/// Data to measure accuracy on, and its name (as recorded in checkpoints).
#[derive(Clone, Copy, Debug)]
pub struct Evaluation<'a> {
    pub name: &'a str,
    pub data: &'a Dataset,
}

/// How to export.
#[derive(Clone, Debug)]
pub struct ExportOptions<'a> {
    pub out: PathBuf,
    /// How values and column indices are stored.
    pub codecs: Codecs,
    /// Replace an existing `out`.
    pub overwrite: bool,
    /// Recorded in the metadata. A measured source accuracy replaces `source_accuracy` when
    /// `eval` is the data set the source was trained on.
    pub provenance: Provenance,
    /// Measure source and exported accuracy on this test data.
    pub eval: Option<Evaluation<'a>>,
    /// Threads for the accuracy measurements.
    pub par: Par,
}

impl<'a> ExportOptions<'a> {
    /// f32 values, no overwriting, no evaluation, one thread.
    pub fn new(out: impl Into<PathBuf>) -> Self {
        ExportOptions {
            out: out.into(),
            codecs: Codecs::float(ValueDtype::F32),
            overwrite: false,
            provenance: Provenance::default(),
            eval: None,
            par: Par::Seq,
        }
    }
}

/// Exports `net` (its masks decide what is kept) as a CSR file and reports the compression.
/// Nothing is written when it fails.
pub fn export_checkpoint(net: &Network, opts: &ExportOptions) -> Result<CompressionReport> {
    export_replaced(net, net, opts)
}

/// Exports `written`, the weights of `net` replaced under the same masks (fine-tuned shared
/// weights), and reports it against `net`: the accuracy change and the baselines are those of
/// the source ticket.
pub fn export_replaced(
    net: &Network,
    written: &Network,
    opts: &ExportOptions,
) -> Result<CompressionReport> {
    assert!(
        net.graph == written.graph
            && net.layers.iter().zip(&written.layers).all(|(a, b)| a.mask == b.mask),
        "a replacement keeps the graph and the masks"
    );
    check_output(&opts.out, opts.overwrite)?;
    let model = CsrModel::from_net(written)?;
    let mut provenance = opts.provenance.clone();
    let source = match &opts.eval {
        Some(eval) => {
            check_fits(net, eval)?;
            let mut masked = net.clone();
            masked.apply_masks();
            let accuracy = masked.accuracy(eval.data, opts.par);
            if eval.name == provenance.dataset {
                provenance.source_accuracy = Some(accuracy);
            }
            Some(accuracy)
        }
        None => None,
    };
    let csr_f32_bytes = csr_f32_file_len(&model, &provenance)?;
    model.write(&opts.out, opts.codecs, &provenance)?;
    // The report is made from the file as read back: the model it was written from goes
    // first, so the two are never in memory at once beside the network.
    drop(model);

    let bytes = std::fs::read(&opts.out).map_err(|e| ticket_core::Error::io(&opts.out, e))?;
    let written = read_csr_bytes(&bytes, &opts.out)?;
    let file = TensorFile::parse(&bytes, &opts.out)?;
    let mut report = CompressionReport::new(
        &written.model,
        opts.codecs,
        opts.out.clone(),
        &file,
        bytes.len(),
        dense_f32_file_len(net),
        csr_f32_bytes,
    );
    if let (Some(eval), Some(source)) = (&opts.eval, source) {
        let exported = written.model.to_dense().accuracy(eval.data, opts.par);
        report.accuracy = Some(AccuracyReport {
            dataset: eval.name.to_string(),
            examples: eval.data.len(),
            source,
            exported,
            change_pp: 100.0 * (exported - source),
            recorded_in_file: eval.name == provenance.dataset,
        });
    }
    Ok(report)
}

/// Refuses an existing output (unless `overwrite`) and a missing directory, before any work.
fn check_output(out: &Path, overwrite: bool) -> Result<()> {
    if out.exists() && !overwrite {
        return Err(Error::OutputExists(out.to_path_buf()));
    }
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(
            ticket_core::Error::invalid(out, "the directory to write into does not exist").into()
        );
    }
    Ok(())
}

/// Refuses data whose examples or labels do not fit the model.
pub(crate) fn check_fits(net: &Network, eval: &Evaluation) -> Result<()> {
    let (inputs, outputs) = (net.graph.inputs(), net.graph.outputs());
    if eval.data.features != inputs {
        return Err(ticket_core::Error::usage(format!(
            "{} has {} features per example but the model ({}) takes {inputs}",
            eval.name, eval.data.features, net.graph
        ))
        .into());
    }
    if let Some(&label) = eval.data.labels.iter().find(|&&l| l as usize >= outputs) {
        return Err(ticket_core::Error::usage(format!(
            "{} has label {label} but the model ({}) has only {outputs} outputs",
            eval.name, net.graph
        ))
        .into());
    }
    Ok(())
}

/// Bytes of `model` as a CSR file with f32 values and absolute indices: the baseline the
/// compressed codecs are compared with, from its header alone (not encoded in memory).
pub(crate) fn csr_f32_file_len(model: &CsrModel, provenance: &Provenance) -> Result<usize> {
    let metadata = model.metadata(Codecs::float(ValueDtype::F32), provenance);
    Ok(file_len(Path::new("f32 CSR"), &model.f32_layout(), &metadata)?)
}

/// The length of [`dense_f32_file`] of `net`, from its header alone: a 244 MB AlexNet is not
/// written to memory a second time to be measured.
pub fn dense_f32_file_len(net: &Network) -> usize {
    let mut tensors: Vec<(String, Vec<usize>)> = net
        .graph
        .weighted()
        .iter()
        .zip(&net.layers)
        .flat_map(|(w, l)| {
            [
                (format!("{}.weight", w.name), w.dims.clone()),
                (format!("{}.bias", w.name), vec![l.shape.rows]),
            ]
        })
        .collect();
    // safetensors orders the tensors by dtype (all F32 here), then name.
    tensors.sort();
    let mut offset = 0;
    let infos = tensors
        .into_iter()
        .map(|(name, shape)| {
            let n = 4 * shape.iter().product::<usize>();
            let info = TensorInfo { dtype: Dtype::F32, shape, data_offsets: (offset, offset + n) };
            offset += n;
            (name, info)
        })
        .collect();
    let metadata = Metadata::new(None, infos).expect("distinct names with consecutive offsets");
    let header = serde_json::to_string(&metadata).expect("the header serialises").len();
    8 + header.next_multiple_of(8) + offset
}

/// `net` as a dense f32 safetensors file without masks or metadata (weights in their full
/// PyTorch shape and biases, what `safetensors.torch.save_file(model.state_dict())` writes):
/// the baseline of the report.
pub fn dense_f32_file(net: &Network) -> Vec<u8> {
    let to_bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let data: Vec<(String, Vec<usize>, Vec<u8>)> = net
        .graph
        .weighted()
        .iter()
        .zip(&net.layers)
        .flat_map(|(w, l)| {
            [
                (format!("{}.weight", w.name), w.dims.clone(), to_bytes(&l.weight)),
                (format!("{}.bias", w.name), vec![l.shape.rows], to_bytes(&l.bias)),
            ]
        })
        .collect();
    let views = data.iter().map(|(name, shape, bytes)| {
        let view = TensorView::new(Dtype::F32, shape.clone(), bytes).expect("shape matches data");
        (name.clone(), view)
    });
    safetensors::serialize(views, None).expect("f32 tensors serialize")
}
