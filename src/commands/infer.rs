//! `ticket infer`: accuracy of a CSR model on a data set (sparse and dense paths side by
//! side), logits of a batch read from a file, or latency and throughput (`--bench`).

use crate::cli::InferArgs;
use anyhow::{bail, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Map, Value};
use std::cell::OnceCell;
use std::path::Path;
use std::time::Instant;
use ticket_core::network::argmax;
use ticket_core::{DataSource, Dataset, Network, Par};
use ticket_infer::{batch_file, bench, peak_rss_bytes, SparseModel};

pub fn run(args: InferArgs) -> Result<()> {
    let par = super::thread_pool(args.threads)?;
    let opened = Instant::now();
    let model = SparseModel::load(&args.model)?;
    let load_ms = opened.elapsed().as_secs_f64() * 1e3;
    // Measured before anything else runs, so that the sparse peak holds no dense copy.
    let sparse_memory = args.bench.then(|| sparse_footprint(&model, load_ms, par)).transpose()?;
    // Built when first needed, after the data was checked against the model: the dense copy
    // of a valid model can be far larger than its file.
    let dense_copy = OnceCell::new();
    let dense = || dense_copy.get_or_init(|| model.to_dense());
    let mut report = Map::new();
    if !args.json {
        println!("{}", describe(&args.model, &model));
    }

    if let (Some(input), Some(output)) = (&args.input, &args.output) {
        let (x, batch) = batch_file::read_inputs(input, model.graph().input_shape())?;
        let logits = model.logits(&x, batch, par)?;
        batch_file::write_logits(output, &logits, batch, model.outputs())?;
        if !args.json {
            println!("wrote logits [{batch}, {}] to {}", model.outputs(), output.display());
        }
        report.insert("logits".into(), json!({"path": output, "batch": batch}));
    }

    let named = super::data_source(args.dataset, &args.data);
    let mut test_set = None;
    // Nothing asked: the built-in data set the model was trained on, else the digits, when
    // its images fit the model (an ImageNet-size one gets a hint instead of an error).
    let evaluated = match named {
        Some(source) => Some(source),
        None if !args.bench && args.input.is_none() => {
            let fits = |s: &DataSource| s.features() == Some(model.inputs());
            let source = Some(default_source(&model)).filter(fits);
            if source.is_none() && !args.json {
                println!(
                    "no built-in data set has this model's input shape {:?}: evaluate with \
                     --data DIR (IDX files), time it with --bench, or run a batch with \
                     --input FILE --output FILE",
                    model.graph().input_shape()
                );
            }
            source
        }
        None => None,
    };
    if let Some(source) = evaluated {
        let data = test_split(&source, &model)?;
        let result = evaluate(&model, dense(), &data, par)?;
        if !args.json {
            println!(
                "accuracy on {source} test ({} examples): sparse {:.4}, dense {:.4}; \
                 predictions agree on {} of {}",
                data.len(),
                result["sparse"].as_f64().unwrap_or(f64::NAN),
                result["dense"].as_f64().unwrap_or(f64::NAN),
                result["agree"],
                data.len()
            );
        }
        report.insert("dataset".into(), json!(source.to_string()));
        report.insert("accuracy".into(), result);
        test_set = Some(data);
    }

    if args.bench {
        let (pool, inputs) = match (&args.bench_data, &test_set) {
            (Some(name), _) => {
                let source = bench_data_source(name);
                (test_split(&source, &model)?.images, format!("{source} test"))
            }
            (None, Some(data)) => {
                let name = report["dataset"].as_str().unwrap_or("data set");
                (data.images.clone(), format!("{name} test"))
            }
            (None, None) => (bench::synthetic_inputs(1024, model.inputs()), "synthetic".into()),
        };
        let built = Instant::now();
        let dense = dense();
        let dense_build_ms = built.elapsed().as_secs_f64() * 1e3;
        let mut bench = bench(&model, dense, &pool, par)?;
        bench.insert("inputs".into(), bench::describe_inputs(&inputs, &pool, model.inputs()));
        if let Some(mut memory) = sparse_memory {
            memory["dense"] = json!({
                "build_from_sparse_ms": dense_build_ms,
                "weight_bytes": 4 * model.graph().dense_params(),
                "peak_rss_bytes_after_dense_runs": peak_rss_bytes(),
            });
            bench.insert("memory".into(), memory);
        }
        if !args.json {
            print_bench(&bench);
        }
        report.extend(bench);
    }

    if args.json {
        println!("{}", serde_json::to_string_pretty(&Value::Object(report))?);
    }
    Ok(())
}

/// One line about the model: shape, how many weights it keeps, how it stores them.
fn describe(path: &Path, model: &SparseModel) -> String {
    let dense = model.graph().dense_weights();
    format!(
        "{}: {}, {} of {} weights kept ({:.2}%), values {}, indices {}",
        path.display(),
        model.graph(),
        model.nnz(),
        dense,
        100.0 * model.nnz() as f64 / dense as f64,
        model.codecs().0,
        model.codecs().1
    )
}

/// `--bench-data`: a built-in data set by name, else an IDX directory.
fn bench_data_source(name: &str) -> DataSource {
    match name {
        "digits" => DataSource::Digits,
        "fashion-mnist" => DataSource::FashionMnist,
        dir => DataSource::Dir(dir.into()),
    }
}

/// The data set the model was trained on when it is a built-in one, else the digits.
fn default_source(model: &SparseModel) -> DataSource {
    match model.dataset() {
        Some("fashion-mnist") => DataSource::FashionMnist,
        _ => DataSource::Digits,
    }
}

fn test_split(source: &DataSource, model: &SparseModel) -> Result<Dataset> {
    let splits = source.load(0)?;
    if splits.test.features != model.inputs() {
        bail!(
            "{source} has {} features per example, but the model takes {}",
            splits.test.features,
            model.inputs()
        );
    }
    Ok(splits.test)
}

/// Accuracy of both paths and on how many examples their predictions agree.
fn evaluate(model: &SparseModel, dense: &Network, data: &Dataset, par: Par) -> Result<Value> {
    let sparse_logits = model.logits(&data.images, data.len(), par)?;
    let dense_logits = dense.logits(&data.images, data.len(), par);
    let classes = model.outputs();
    let predictions = |logits: &[f32]| -> Vec<usize> {
        logits.chunks_exact(classes).map(argmax).collect::<Vec<_>>()
    };
    let (s, d) = (predictions(&sparse_logits), predictions(&dense_logits));
    let hits = |p: &[usize]| p.iter().zip(&data.labels).filter(|(&p, &l)| p == l as usize).count();
    let n = data.len().max(1) as f64;
    Ok(json!({
        "sparse": hits(&s) as f64 / n,
        "dense": hits(&d) as f64 / n,
        "agree": s.iter().zip(&d).filter(|(a, b)| a == b).count(),
        "examples": data.len(),
    }))
}

/// The sparse path's memory: open + validate time, weights resident, activation workspace per
/// batch size, and the process's peak resident set after loading and after running each batch
/// size once (no dense copy exists yet).
fn sparse_footprint(model: &SparseModel, load_ms: f64, par: Par) -> Result<Value> {
    let after_load = peak_rss_bytes();
    let probe = bench::synthetic_inputs(1, model.inputs());
    let batches = bench::batch_sizes(model, &probe, par)?;
    let x = bench::synthetic_inputs(batches.iter().max().copied().unwrap_or(1), model.inputs());
    let mut workspace = Map::new();
    for batch in std::iter::once(1).chain(batches) {
        std::hint::black_box(model.logits(&x[..batch * model.inputs()], batch, par)?);
        workspace
            .insert(format!("batch{batch}"), json!(model.workspace_bytes(batch, par.threads())));
    }
    Ok(json!({
        "sparse": {
            "load_ms": load_ms,
            "weight_bytes": model.weight_bytes(),
            "file_bytes_mapped": model.mapped_file_bytes(),
            "workspace_bytes": workspace,
            "peak_rss_bytes_after_load": after_load,
            "peak_rss_bytes_after_runs": peak_rss_bytes(),
        }
    }))
}

/// [`bench::bench`] with a progress bar.
pub fn bench(
    model: &SparseModel,
    dense: &Network,
    pool: &[f32],
    par: Par,
) -> Result<Map<String, Value>> {
    let progress = ProgressBar::new(bench::MEASUREMENTS as u64).with_style(
        ProgressStyle::with_template("benchmarking {bar:30} {pos}/{len} {msg}")
            .expect("valid template"),
    );
    let figures = bench::bench(model, dense, pool, par, |what| {
        progress.set_message(what.to_string());
        progress.inc(1);
    });
    progress.finish_and_clear();
    Ok(figures?)
}

fn print_bench(bench: &Map<String, Value>) {
    let get = |path: &str, key: &str| bench[path][key].as_f64().unwrap_or(f64::NAN);
    let batches: Vec<u64> = bench["batches"]
        .as_array()
        .map_or(vec![], |b| b.iter().filter_map(Value::as_u64).collect());
    let key = |b: u64| format!("batch{b}_us_per_sample");
    let mut header = format!("{:<8} {:>13} {:>13}", "path", "batch 1 p50", "batch 1 p99");
    batches.iter().for_each(|b| header += &format!(" {:>17}", format!("batch {b} /ex")));
    println!("{header} {:>12}", "weights");
    for path in ["sparse", "dense"] {
        let mut line = format!(
            "{path:<8} {:>10.2} us {:>10.2} us",
            get(path, "batch1_us_p50"),
            get(path, "batch1_us_p99")
        );
        batches.iter().for_each(|&b| line += &format!(" {:>14.3} us", get(path, &key(b))));
        println!("{line} {:>9.1} KB", get("weight_bytes", path) / 1000.0);
    }
    let ratio = |key: &str| get("dense", key) / get("sparse", key);
    let mut line = format!(
        "{:<8} {:>12.1}x {:>12.1}x",
        "speed-up",
        ratio("batch1_us_p50"),
        ratio("batch1_us_p99")
    );
    batches.iter().for_each(|&b| line += &format!(" {:>16.1}x", ratio(&key(b))));
    println!("{line} {:>11.1}x", get("weight_bytes", "dense") / get("weight_bytes", "sparse"));
    // Copies built for batch 1 (absent from older JSON: 0).
    let copies = |key: &str| bench["weight_bytes"][key].as_f64().unwrap_or(0.0) / 1000.0;
    println!(
        "({} threads; sparse weights: {:.1} KB borrowed from the mapped file, plus batch-1 \
         copies built: {:.1} KB in slices of 16 rows, {:.1} KB in coded rows, {:.1} KB \
         column-ordered; inputs: {}, {:.1}% zeros)",
        bench["threads"],
        get("weight_bytes", "sparse_borrowed_from_file") / 1000.0,
        copies("sparse_sliced_copies"),
        copies("sparse_coded_rows_copies"),
        copies("sparse_column_copies"),
        bench["inputs"]["source"].as_str().unwrap_or("?"),
        100.0 * get("inputs", "zero_fraction")
    );
    if let Some(peak) = bench.get("peak") {
        let pair = |key: &str| {
            let v = |i: usize| peak[key][i].as_f64().unwrap_or(f64::NAN);
            (v(0), v(1))
        };
        let ((one, _), (all, all_after), (cores, cores_after)) = (
            pair("one_thread_macs_per_us"),
            pair("all_threads_macs_per_us"),
            pair("cores_reached"),
        );
        let fraction = &bench["sparse"]["fraction_of_peak"];
        println!(
            "peak ({}, measured): {:.1} multiply-adds/ns on 1 thread, {:.1} / {:.1} on {} \
             ({:.2} / {:.2} cores' worth, before / after the timings)",
            peak["isa"].as_str().unwrap_or("?"),
            one / 1e3,
            all / 1e3,
            all_after / 1e3,
            peak["threads"],
            cores,
            cores_after,
        );
        let share = |b: u64| {
            let f = fraction[format!("batch{b}")].as_f64().unwrap_or(f64::NAN);
            format!("{:.1}% at batch {b}", 100.0 * f)
        };
        let shares: Vec<String> =
            std::iter::once(1).chain(batches.iter().copied()).map(share).collect();
        println!("sparse path: {} of that peak (kept multiply-adds)", shares.join(", "));
    }
    if let Some(Value::Array(steps)) = bench["sparse"].get("layers") {
        println!("sparse path per step, us per example (threads' time added up):");
        let mut header = format!("  {:<12} {:>10}", "step", "batch 1");
        let larger: Vec<u64> = batches.iter().copied().filter(|&b| b > 1).collect();
        larger.iter().for_each(|b| header += &format!(" {:>10}", format!("batch {b}")));
        println!("{header}");
        for step in steps {
            let us = |key: &str| step[key].as_f64().unwrap_or(f64::NAN);
            let mut line =
                format!("  {:<12} {:>10.3}", step["step"].as_str().unwrap_or("?"), us("batch1_us"));
            larger.iter().for_each(|&b| line += &format!(" {:>10.3}", us(&key(b))));
            println!("{line}");
        }
    }
    if let Some(m) = bench.get("memory") {
        let kb =
            |v: &Value| v.as_f64().map_or("-".to_string(), |b| format!("{:.1} KB", b / 1000.0));
        let mb = |v: &Value| v.as_f64().map_or("-".to_string(), |b| format!("{:.1} MB", b / 1e6));
        let (s, d) = (&m["sparse"], &m["dense"]);
        let w = &s["workspace_bytes"];
        println!(
            "memory   sparse: open+validate {:.2} ms, weights {}, workspace {} / {} / {} \
             (batch 1 / 64 / 1024), peak RSS {} after load, {} after running",
            s["load_ms"].as_f64().unwrap_or(f64::NAN),
            kb(&s["weight_bytes"]),
            kb(&w["batch1"]),
            kb(&w["batch64"]),
            kb(&w["batch1024"]),
            mb(&s["peak_rss_bytes_after_load"]),
            mb(&s["peak_rss_bytes_after_runs"]),
        );
        println!(
            "memory   dense: built from the sparse model in {:.2} ms, weights {}, peak RSS {} \
             after its runs",
            d["build_from_sparse_ms"].as_f64().unwrap_or(f64::NAN),
            kb(&d["weight_bytes"]),
            mb(&d["peak_rss_bytes_after_dense_runs"]),
        );
    }
}
