//! `ticket export --dtype kN --finetune N` end to end: the fine-tuned file is still kN with the
//! source's masks, its accuracy in `ticket infer` is the one reported, fine-tuning lowered the
//! training loss, and what cannot be fine-tuned is refused before any work.

mod common;
use common::*;
use std::path::Path;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn json(out: &std::process::Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", stderr(out));
    serde_json::from_str(&stdout(out)).unwrap()
}

#[test]
fn finetuned_codebooks_are_kn_files_with_the_reported_accuracy() {
    let tmp = tempfile::tempdir().unwrap();
    let run = train_small(tmp.path(), "run", &[]).join("final.safetensors");
    let out = tmp.path().join("k2.safetensors");
    let args = [
        "export",
        s(&run),
        "--keep",
        "0.3",
        "--dtype",
        "k2",
        "--index-bits",
        "5",
        "--dataset",
        "digits",
        "--finetune",
        "150",
        "--finetune-lr",
        "1e-3",
        "--out",
        s(&out),
        "--json",
    ];
    let report = json(&ticket(&args));
    assert_eq!(report["value_dtype"], "k2");
    let ft = &report["finetune"];
    assert_eq!((ft["bits"].as_u64(), ft["iterations"].as_u64()), (Some(2), Some(150)));
    assert_eq!(ft["learning_rate"].as_f64().unwrap() as f32, 1e-3);
    let (before, after) =
        (ft["train_loss_before"].as_f64().unwrap(), ft["train_loss_after"].as_f64().unwrap());
    assert!(after < before, "training loss {before} -> {after}");

    // The same export without fine-tuning has the k-means accuracy the report gives as
    // "before", and the same masks.
    let plain = tmp.path().join("plain.safetensors");
    let mut plain_args = args[..args.len() - 7].to_vec();
    plain_args.extend(["--out", s(&plain), "--json"]);
    let plain_report = json(&ticket(&plain_args));
    assert!(plain_report.get("finetune").is_none());
    assert_eq!(ft["accuracy_before"], plain_report["accuracy"]["exported"]);
    assert_eq!(report["accuracy"]["source"], plain_report["accuracy"]["source"]);
    let tuned = ticket_export::read_csr(&out).unwrap();
    let kmeans = ticket_export::read_csr(&plain).unwrap();
    assert_eq!(tuned.codecs, kmeans.codecs);
    for (a, b) in tuned.model.layers.iter().zip(&kmeans.model.layers) {
        assert_eq!(a.matrix.indptr(), b.matrix.indptr(), "{}", a.name);
        assert_eq!(a.matrix.indices(), b.matrix.indices(), "{}", a.name);
        assert_eq!(a.bias, b.bias, "{}", a.name);
        assert_ne!(a.matrix.data(), b.matrix.data(), "{}: centroids trained", a.name);
    }

    let exported = report["accuracy"]["exported"].as_f64().unwrap();
    let infer = json(&ticket(&["infer", s(&out), "--dataset", "digits", "--json"]));
    assert_eq!(infer["accuracy"]["sparse"].as_f64().unwrap(), exported);

    let text = ticket_ok(&[&args[..args.len() - 1], &["--force"]].concat());
    assert!(text.contains("fine-tuned the k2 codebooks: 150 Adam steps"), "{text}");
}

#[test]
fn what_cannot_be_finetuned_is_refused_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let run = train_small(tmp.path(), "run", &["--iterations", "100"]).join("final.safetensors");
    let out = tmp.path().join("x.safetensors");
    let export = |extra: &[&str]| {
        let mut args = vec!["export", s(&run), "--out", s(&out)];
        args.extend(extra);
        ticket(&args)
    };
    let cases: [(&[&str], &str); 7] = [
        (&["--dtype", "k4", "--finetune", "10"], "--finetune trains on data: pass --dataset"),
        (&["--dtype", "f32", "--finetune", "10", "--dataset", "digits"], "--dtype f32 has none"),
        (&["--dtype", "int8", "--finetune", "10", "--dataset", "digits"], "int8's per-row scales"),
        (
            &["--dtype", "conv=k8,linear=k5", "--finetune", "10", "--dataset", "digits"],
            "gives each layer kind its own",
        ),
        (&["--dtype", "k4", "--finetune", "0", "--dataset", "digits"], "0 is not in 1.."),
        (&["--dtype", "k4", "--finetune-lr", "0.1", "--dataset", "digits"], "required arguments"),
        (
            &["--dtype", "k4", "--finetune", "5", "--finetune-lr=-1", "--dataset", "digits"],
            "--finetune-lr must be a positive number",
        ),
    ];
    for (extra, needle) in cases {
        assert_clean_failure(&export(extra), needle);
        assert!(!out.exists(), "{extra:?} wrote a file");
    }
}

/// `--sweep --finetune` fine-tunes every kN codebook once; its rows are what the single
/// fine-tuned exports write and measure.
#[test]
fn sweep_rows_of_finetuned_codebooks_match_finetuned_exports() {
    let tmp = tempfile::tempdir().unwrap();
    let run = train_small(tmp.path(), "run", &["--iterations", "100"]).join("final.safetensors");
    let common = ["--keep", "0.3", "--dataset", "digits", "--finetune", "30", "--json"];
    let table = json(&ticket(&[&["export", s(&run), "--sweep"], &common[..]].concat()));
    let tuned = table["finetune"].as_object().unwrap();
    let names: Vec<&str> = tuned.keys().map(String::as_str).collect();
    assert_eq!(names, ["k2", "k3", "k4", "k5", "k6", "k7", "k8"]);
    let plain = json(&ticket(&[
        "export",
        s(&run),
        "--sweep",
        "--keep",
        "0.3",
        "--dataset",
        "digits",
        "--json",
    ]));
    assert!(plain.get("finetune").is_none());
    for (dtype, gaps) in [("k3", "6"), ("k5", "4")] {
        let out = tmp.path().join(format!("{dtype}.safetensors"));
        let report = json(&ticket(
            &[
                &["export", s(&run), "--dtype", dtype, "--index-bits", gaps, "--out", s(&out)],
                &common[..],
            ]
            .concat(),
        ));
        let name = format!("{dtype}+gap{gaps}");
        let row = table["rows"].as_array().unwrap().iter().find(|r| r["codecs"] == name).unwrap();
        // The sweep's files carry no provenance: same tensors, a shorter header.
        assert_eq!(row["bits"]["values"], report["total"]["bits"]["values"], "{name}");
        assert_eq!(row["bits"]["indices"], report["total"]["bits"]["indices"], "{name}");
        assert_eq!(row["accuracy"], report["accuracy"]["exported"], "{name}");
        assert_eq!(tuned[dtype], report["finetune"], "{name}");
        let untuned =
            plain["rows"].as_array().unwrap().iter().find(|r| r["codecs"] == name).unwrap();
        assert_eq!(tuned[dtype]["accuracy_before"], untuned["accuracy"], "{name}");
    }
    // Float and int8 rows are those of the plain sweep.
    for (a, b) in table["rows"].as_array().unwrap().iter().zip(plain["rows"].as_array().unwrap()) {
        if !a["codecs"].as_str().unwrap().starts_with('k') {
            assert_eq!(a, b);
        }
    }
}
