//! `ticket export --sweep`: the same model under every value and index codec, encoded in
//! memory, with file bytes, bits per kept weight (split) and, given data, the accuracy of the
//! decoded model, so that a user can pick a codec. Accuracy depends only on the value codec,
//! so it is measured once per value codec. Codebooks may be fine-tuned first
//! ([`sweep_replacing`]).

use crate::compressed::{smallest_index_codecs, Codecs};
use crate::csr::{CsrModel, Provenance};
use crate::decode::read_csr_bytes;
use crate::export::{csr_f32_file_len, dense_f32_file_len, Evaluation};
use crate::report::{BitsSplit, CompressionReport};
use crate::Result;
use serde::Serialize;
use std::fmt;
use std::path::{Path, PathBuf};
use ticket_core::csr_format::{
    IndexCodec, ValueCodec, ValueCodecs, ValueDtype, CODEBOOK_BITS, GAP_BITS,
};
use ticket_core::tensor_file::{serialize_tensors, TensorFile};
use ticket_core::{Network, Par};

/// Accuracy within this many percentage points of the f32 ticket counts as no loss when the
/// sweep names the smallest file.
pub const TOLERANCE_PP: f64 = 0.5;

/// One codec.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SweepRow {
    /// `k6+gap5`, `f32`...
    pub codecs: String,
    pub file_bytes: usize,
    /// Dense f32 file bytes / file bytes.
    pub ratio_vs_dense: f64,
    /// f32 CSR file bytes / file bytes.
    pub ratio_vs_csr_f32: f64,
    pub bits_per_kept_weight: Option<f64>,
    pub bits: BitsSplit,
    /// Test accuracy of the decoded model, when data was given.
    pub accuracy: Option<f64>,
    /// Against the f32 ticket, in percentage points.
    pub change_pp: Option<f64>,
}

/// The whole sweep.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Sweep {
    pub graph: String,
    pub kept_weights: usize,
    pub dense_file_bytes: usize,
    pub csr_f32_file_bytes: usize,
    /// Data set and test accuracy of the masked f32 source.
    pub dataset: Option<String>,
    pub source_accuracy: Option<f64>,
    pub rows: Vec<SweepRow>,
    /// The smallest file whose accuracy is within [`TOLERANCE_PP`] of the source (the
    /// smallest file when no data was given).
    pub best: Option<String>,
}

/// Every codec the format has: f32, f16, bf16, int8, k8..k2, each with absolute indices and
/// with 3..8-bit gaps.
pub fn all_codecs() -> Vec<Codecs> {
    let mut values: Vec<ValueCodec> = [ValueDtype::F32, ValueDtype::F16, ValueDtype::Bf16]
        .into_iter()
        .map(ValueCodec::Float)
        .collect();
    values.push(ValueCodec::Int8);
    values.extend(CODEBOOK_BITS.rev().map(|bits| ValueCodec::Codebook { bits }));
    let indices: Vec<IndexCodec> = std::iter::once(IndexCodec::Absolute)
        .chain(GAP_BITS.map(|bits| IndexCodec::Gaps { bits }))
        .collect();
    values
        .iter()
        .flat_map(|&value| {
            indices.iter().map(move |&index| Codecs { value: value.into(), index: index.into() })
        })
        .collect()
}

/// [`all_codecs`] for `net`, and when its conv and linear layers each take the fewest index
/// bytes at a different gap width, every value codec with those per-kind widths too: what
/// `--index-bits auto` would write (a model of one kind has its width among the others).
pub fn codecs_for(net: &Network) -> Vec<Codecs> {
    let mut codecs = all_codecs();
    let auto = smallest_index_codecs(net);
    if auto.single().is_none() {
        let mut values: Vec<ValueCodecs> = codecs.iter().map(|c| c.value).collect();
        values.dedup();
        codecs.extend(values.into_iter().map(|value| Codecs { value, index: auto }));
    }
    codecs
}

/// Encodes `net` with each of `codecs` in memory and measures it.
pub fn sweep(
    net: &Network,
    codecs: &[Codecs],
    eval: Option<Evaluation>,
    par: Par,
) -> Result<Sweep> {
    sweep_replacing(net, codecs, eval, par, &mut |_| Ok(None))
}

/// [`sweep`] where `replace` may give, once per value codec, other weights under the same
/// masks to encode with it (fine-tuned codebooks); baselines and the source accuracy stay
/// those of `net`.
pub fn sweep_replacing(
    net: &Network,
    codecs: &[Codecs],
    eval: Option<Evaluation>,
    par: Par,
    replace: &mut dyn FnMut(ValueCodec) -> Result<Option<Network>>,
) -> Result<Sweep> {
    let source_model = CsrModel::from_net(net)?;
    let provenance = Provenance::default();
    let dense_file_bytes = dense_f32_file_len(net);
    let csr_f32_file_bytes = csr_f32_file_len(&source_model, &provenance)?;
    let source_accuracy = eval.map(|e| {
        let mut masked = net.clone();
        masked.apply_masks();
        masked.accuracy(e.data, par)
    });
    let mut accuracy_of: Vec<(ValueCodecs, f64)> = Vec::new();
    let mut replaced: Vec<(ValueCodecs, Option<CsrModel>)> = Vec::new();
    let mut rows = Vec::with_capacity(codecs.len());
    for &c in codecs {
        if !replaced.iter().any(|(v, _)| *v == c.value) {
            // Sweeps use one codec for every layer; only such a codec can be fine-tuned.
            let net = match c.value.single() {
                Some(value) => replace(value)?,
                None => None,
            };
            let model = net.map(|n| CsrModel::from_net(&n)).transpose()?;
            replaced.push((c.value, model));
        }
        let model = match replaced.iter().find(|(v, _)| *v == c.value) {
            Some((_, Some(m))) => m,
            _ => &source_model,
        };
        let name = PathBuf::from(format!("<{c}>"));
        let bytes = serialize_tensors(&name, model.tensors(c)?, &model.metadata(c, &provenance))?;
        let written = read_csr_bytes(&bytes, &name)?;
        let file = TensorFile::parse(&bytes, Path::new(&name))?;
        let report = CompressionReport::new(
            &written.model,
            c,
            name.clone(),
            &file,
            bytes.len(),
            dense_file_bytes,
            csr_f32_file_bytes,
        );
        let accuracy = match (eval, accuracy_of.iter().find(|(v, _)| *v == c.value)) {
            (Some(_), Some(&(_, a))) => Some(a),
            (Some(e), None) => {
                let a = written.model.to_dense().accuracy(e.data, par);
                accuracy_of.push((c.value, a));
                Some(a)
            }
            (None, _) => None,
        };
        let t = &report.total;
        rows.push(SweepRow {
            codecs: c.to_string(),
            file_bytes: bytes.len(),
            ratio_vs_dense: t.file_ratio,
            ratio_vs_csr_f32: t.ratio_vs_csr_f32,
            bits_per_kept_weight: t.bits_per_kept_weight,
            bits: t.bits.clone(),
            accuracy,
            change_pp: accuracy.zip(source_accuracy).map(|(a, s)| 100.0 * (a - s)),
        });
    }
    let best = rows
        .iter()
        .filter(|r| r.change_pp.is_none_or(|d| d >= -TOLERANCE_PP))
        .min_by_key(|r| r.file_bytes)
        .map(|r| r.codecs.clone());
    Ok(Sweep {
        graph: source_model.graph.to_string(),
        kept_weights: source_model.kept_weights(),
        dense_file_bytes,
        csr_f32_file_bytes,
        dataset: eval.map(|e| e.name.to_string()),
        source_accuracy,
        rows,
        best,
    })
}

impl fmt::Display for Sweep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let opt = |v: Option<f64>, p: usize| v.map_or("-".to_string(), |v| format!("{v:.p$}"));
        writeln!(
            f,
            "{} ({} kept weights): dense f32 file {} bytes, f32 CSR file {} bytes",
            self.graph, self.kept_weights, self.dense_file_bytes, self.csr_f32_file_bytes
        )?;
        if let (Some(d), Some(a)) = (&self.dataset, self.source_accuracy) {
            writeln!(f, "accuracy on {d} test of the f32 ticket: {:.2}%", 100.0 * a)?;
        }
        // As wide as the longest name (per-kind ones: `k5+conv=gap3,linear=gap4`).
        let w = self.rows.iter().map(|r| r.codecs.len() + 1).max().unwrap_or(0).max(12);
        writeln!(
            f,
            "{:<w$}{:>10}{:>10}{:>10}{:>8}{:>8}{:>8}{:>8}{:>10}{:>9}",
            "codecs",
            "bytes",
            "vs dense",
            "vs CSR32",
            "bits/w",
            "values",
            "indices",
            "other",
            "accuracy",
            "change"
        )?;
        for r in &self.rows {
            writeln!(
                f,
                "{:<w$}{:>10}{:>9.1}x{:>9.2}x{:>8}{:>8}{:>8}{:>8}{:>10}{:>9}{}",
                r.codecs,
                r.file_bytes,
                r.ratio_vs_dense,
                r.ratio_vs_csr_f32,
                opt(r.bits_per_kept_weight, 1),
                opt(r.bits.values, 1),
                opt(r.bits.indices, 1),
                opt(r.bits.other, 1),
                opt(r.accuracy.map(|a| 100.0 * a), 2),
                opt(r.change_pp, 2),
                if self.best.as_deref() == Some(&r.codecs) { "  <- smallest" } else { "" }
            )?;
        }
        match &self.best {
            Some(b) if self.dataset.is_some() => write!(
                f,
                "smallest file within {TOLERANCE_PP} pp of the f32 ticket: {b} (ticket export --dtype {})",
                b.replace("+gap", " --index-bits ")
            ),
            Some(b) => write!(f, "smallest file: {b} (no data given: accuracy not measured)"),
            None => write!(f, "no codec keeps the accuracy within {TOLERANCE_PP} pp"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ticket_core::Graph;

    /// A conv net whose conv layer is dense (gaps of 0: 3 bits are fewest) and whose linear
    /// layer keeps every 20th column (gaps of 19: 5 bits): the sweep adds each value codec
    /// with those widths per kind, and the row measures what such a file holds.
    #[test]
    fn per_kind_gap_widths_join_a_conv_nets_sweep() {
        let graph = Graph::from_json(
            r#"{"input":[1,6,6],"layers":[
            {"op":"conv2d","name":"c","in":1,"out":2,"kernel":[3,3]},{"op":"relu"},
            {"op":"flatten"},{"op":"linear","name":"fc","in":32,"out":40}]}"#,
        )
        .unwrap();
        let mut net = Network::zeros(&graph);
        for layer in &mut net.layers {
            for (i, w) in layer.weight.iter_mut().enumerate() {
                *w = 0.01 * (i % 13) as f32 + 0.1;
            }
        }
        let fc = &mut net.layers[1];
        for (i, m) in fc.mask.iter_mut().enumerate() {
            *m = u8::from(i % 20 == 19);
        }
        let auto = smallest_index_codecs(&net);
        assert_eq!(
            (auto.conv, auto.linear),
            (IndexCodec::Gaps { bits: 3 }, IndexCodec::Gaps { bits: 5 })
        );
        let codecs = codecs_for(&net);
        assert_eq!(codecs.len(), all_codecs().len() + 11, "11 value codecs with the auto widths");
        let table = sweep(&net, &codecs, None, Par::Seq).unwrap();
        // Its index bits are the fewest of all widths (the header, which names the widths
        // per kind, is a few bytes longer).
        let index_bits = |name: &str| {
            let row = table.rows.iter().find(|r| r.codecs == name).unwrap();
            row.bits.indices.unwrap()
        };
        let per_kind = Codecs { value: ValueCodec::Codebook { bits: 4 }.into(), index: auto };
        let best = index_bits(&per_kind.to_string());
        for bits in GAP_BITS {
            assert!(best < index_bits(&format!("k4+gap{bits}")), "{bits} bits");
        }
    }
}
