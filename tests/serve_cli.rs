//! `ticket serve` end to end: the real server on a free loopback port, called with a real
//! HTTP client (ureq). Logits are checked against the fixture's naive f64 reference forward
//! pass, bad requests against the answer they must get, and shutdown with real signals.

mod common;
use common::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use ticket_core::csr_format::ValueDtype;
use ticket_core::Graph;
use ticket_infer::fixture::{random_model, reference_forward, write_model, CsrParts};

/// A two-channel conv model on 6x6 images: conv, max pool, flatten, linear.
const CONV: &str = r#"{"input":[2,6,6],"layers":[
  {"op":"conv2d","name":"conv","in":2,"out":3,"kernel":[3,3],"stride":[1,1],"padding":[1,1]},
  {"op":"relu"},{"op":"maxpool2d","kernel":[2,2]},{"op":"flatten"},
  {"op":"linear","name":"fc","in":27,"out":5}]}"#;

/// A model written to a file, with what it takes to compute its reference logits.
struct Model {
    graph: Graph,
    layers: Vec<CsrParts>,
}

impl Model {
    fn mlp() -> Self {
        let graph: Graph = "64-24-10".parse().unwrap();
        Model { layers: random_model(&graph, &[0.4, 0.6], 3), graph }
    }

    fn conv() -> Self {
        let graph = Graph::from_json(CONV).unwrap();
        Model { layers: random_model(&graph, &[0.7, 0.5], 4), graph }
    }

    fn write(&self, path: &Path) {
        write_model(path, &self.graph, &self.layers, ValueDtype::F32).unwrap();
    }

    fn features(&self) -> usize {
        self.graph.inputs()
    }

    /// `batch` examples that differ with `seed`.
    fn inputs(&self, batch: usize, seed: usize) -> Vec<f32> {
        (0..batch * self.features())
            .map(|i| ((i * 37 + seed * 101) % 97) as f32 / 97.0 - 0.25)
            .collect()
    }

    fn reference(&self, x: &[f32]) -> Vec<Vec<f64>> {
        x.chunks(self.features()).map(|e| reference_forward(&self.graph, &self.layers, e)).collect()
    }
}

fn argmax(row: &[f64]) -> i64 {
    (0..row.len()).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap() as i64
}

fn assert_close(got: &[f32], want: &[Vec<f64>], what: &str) {
    let want: Vec<f64> = want.concat();
    assert_eq!(got.len(), want.len(), "{what}: logits");
    for (i, (&g, w)) in got.iter().zip(&want).enumerate() {
        assert!((g as f64 - w).abs() <= 1e-4 * (1.0 + w.abs()), "{what}: logit {i}: {g} vs {w}");
    }
}

/// A running `ticket serve`, killed when dropped.
struct Server {
    child: Child,
    base: String,
    agent: ureq::Agent,
}

/// An answer: status, headers we look at, body.
struct Answer {
    status: u16,
    header_length: Option<usize>,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    /// The `error` of an error answer, checking that it is one.
    fn error(&self) -> String {
        self.json()["error"].as_str().expect("an error message").to_string()
    }
}

impl Server {
    fn start(args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ticket"))
            .args(["serve", "--port", "0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).expect("the start-up line");
        let base = if line.starts_with('{') {
            let v: Value = serde_json::from_str(&line).unwrap();
            v["listening"].as_str().unwrap().to_string()
        } else {
            let address = line.split_whitespace().find(|w| w.starts_with("http://"));
            address.unwrap_or_else(|| panic!("no address in {line:?}")).to_string()
        };
        let agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        Server { child, base, agent }
    }

    fn port(&self) -> u16 {
        self.base.rsplit(':').next().unwrap().parse().unwrap()
    }

    fn get(&self, path: &str) -> Answer {
        let response = self.agent.get(&format!("{}{path}", self.base)).call().unwrap();
        Self::answer(response)
    }

    fn post(&self, path: &str, body: &[u8], header_length: Option<usize>) -> Answer {
        self.post_raw(path, body, header_length.map(|n| n.to_string()).as_deref())
    }

    /// [`Server::post`] with the `Inference-Header-Content-Length` header as given.
    fn post_raw(&self, path: &str, body: &[u8], header_length: Option<&str>) -> Answer {
        let mut request = self.agent.post(&format!("{}{path}", self.base));
        if let Some(n) = header_length {
            request = request.header("Inference-Header-Content-Length", n);
        }
        Self::answer(request.send(body).unwrap())
    }

    fn answer(mut response: ureq::http::Response<ureq::Body>) -> Answer {
        let status = response.status().as_u16();
        let header_length = response
            .headers()
            .get("inference-header-content-length")
            .map(|v| v.to_str().unwrap().parse().unwrap());
        let body = response.body_mut().read_to_vec().unwrap();
        Answer { status, header_length, body }
    }

    fn infer_json(&self, model: &str, shape: &[usize], x: &[f32], outputs: Value) -> Answer {
        let body = json!({
            "id": "req-1",
            "inputs": [{"name": "input", "datatype": "FP32", "shape": shape, "data": x}],
            "outputs": outputs,
        });
        self.post(&format!("/v2/models/{model}/infer"), body.to_string().as_bytes(), None)
    }

    fn metrics(&self) -> String {
        String::from_utf8(self.get("/metrics").body).unwrap()
    }

    /// The value of the sample `name{labels}` in `/metrics`.
    fn metric(&self, sample: &str) -> f64 {
        let metrics = self.metrics();
        let value = metrics.lines().find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '));
        value.unwrap_or_else(|| panic!("no {sample} in {metrics}")).parse().unwrap()
    }

    /// Polls `/metrics` until `sample` has `value` (within a minute).
    fn await_metric(&self, sample: &str, value: f64) {
        let start = Instant::now();
        while self.metric(sample) != value {
            assert!(start.elapsed() < Duration::from_secs(60), "{sample} never became {value}");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn signal(&self, name: &str) {
        let status =
            Command::new("kill").args([&format!("-{name}"), &self.child.id().to_string()]).status();
        assert!(status.unwrap().success(), "kill -{name}");
    }

    /// Waits for the process to exit and returns its exit code and stderr.
    fn wait(mut self, limit: Duration) -> (Option<i32>, String) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut err = String::new();
                self.child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
                return (status.code(), err);
            }
            assert!(start.elapsed() < limit, "the server did not exit within {limit:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A body of a binary request: JSON header then the inputs as little-endian FP32.
fn binary_request(shape: &[usize], x: &[f32], binary_outputs: bool) -> (Vec<u8>, usize) {
    let mut header = json!({
        "inputs": [{"name": "input", "datatype": "FP32", "shape": shape,
                    "parameters": {"binary_data_size": x.len() * 4}}],
        "outputs": [{"name": "logits", "parameters": {"binary_data": binary_outputs}},
                    {"name": "class", "parameters": {"binary_data": binary_outputs}}],
    })
    .to_string()
    .into_bytes();
    let n = header.len();
    x.iter().for_each(|v| header.extend_from_slice(&v.to_le_bytes()));
    (header, n)
}

fn f32s(raw: &[u8]) -> Vec<f32> {
    raw.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

/// Two models served from one directory: `mlp` and `conv` (from `conv.csr.safetensors`).
fn two_models(dir: &Path) -> (Model, Model) {
    let (mlp, conv) = (Model::mlp(), Model::conv());
    mlp.write(&dir.join("mlp.safetensors"));
    conv.write(&dir.join("conv.csr.safetensors"));
    (mlp, conv)
}

#[test]
fn serves_health_metadata_and_the_reference_logits_in_json_and_binary() {
    let dir = tempfile::tempdir().unwrap();
    let (mlp, conv) = two_models(dir.path());
    let server = Server::start(&["--model", dir.path().to_str().unwrap()]);

    assert_eq!(server.get("/v2/health/live").status, 200);
    assert_eq!(server.get("/v2/health/ready").status, 200);
    assert_eq!(server.get("/v2/models/mlp/ready").status, 200);
    assert_eq!(server.get("/v2").json()["extensions"], json!(["binary_tensor_data"]));
    let meta = server.get("/v2/models/mlp").json();
    assert_eq!(meta["inputs"][0], json!({"name": "input", "datatype": "FP32", "shape": [-1, 64]}));
    assert_eq!(meta["outputs"][0]["shape"], json!([-1, 10]));
    assert_eq!(server.get("/v2/models/conv").json()["inputs"][0]["shape"], json!([-1, 2, 6, 6]));

    // JSON tensors in and out, both outputs.
    let x = mlp.inputs(3, 1);
    let want = mlp.reference(&x);
    let outputs = json!([{"name": "logits"}, {"name": "class"}]);
    let answer = server.infer_json("mlp", &[3, 64], &x, outputs.clone());
    assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
    let v = answer.json();
    assert_eq!((v["model_name"].as_str(), v["id"].as_str()), (Some("mlp"), Some("req-1")));
    assert_eq!(v["outputs"][0]["shape"], json!([3, 10]));
    assert_close(&floats(&v["outputs"][0]["data"]), &want, "JSON logits");
    let classes: Vec<i64> = want.iter().map(|r| argmax(r)).collect();
    assert_eq!(v["outputs"][1]["data"], json!(classes));

    // Binary tensors in, binary and JSON out.
    let (body, n) = binary_request(&[3, 64], &x, true);
    let answer = server.post("/v2/models/mlp/infer", &body, Some(n));
    assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
    let n = answer.header_length.expect("a binary answer");
    let header: Value = serde_json::from_slice(&answer.body[..n]).unwrap();
    assert_eq!(header["outputs"][0]["parameters"]["binary_data_size"], 120);
    assert_eq!(header["outputs"][1]["parameters"]["binary_data_size"], 24);
    assert_close(&f32s(&answer.body[n..n + 120]), &want, "binary logits");
    let class: Vec<i64> = answer.body[n + 120..]
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(class, classes);
    let (body, n) = binary_request(&[3, 64], &x, false);
    let answer = server.post("/v2/models/mlp/infer", &body, Some(n));
    assert_eq!(answer.header_length, None);
    assert_close(&floats(&answer.json()["outputs"][0]["data"]), &want, "binary in, JSON out");

    // A conv model takes [batch, C, H, W] or its images flattened; versioned paths work.
    let x = conv.inputs(2, 2);
    let want = conv.reference(&x);
    for (shape, path) in [
        (vec![2, 2, 6, 6], "/v2/models/conv/infer"),
        (vec![2, 72], "/v2/models/conv/versions/1/infer"),
    ] {
        let answer = server.infer_json("conv", &shape, &x, json!([{"name": "logits"}]));
        assert_eq!(answer.status, 200, "{shape:?}: {}", String::from_utf8_lossy(&answer.body));
        assert_close(&floats(&answer.json()["outputs"][0]["data"]), &want, &format!("{shape:?}"));
        let body =
            json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": shape, "data": x}]});
        let answer = server.post(path, body.to_string().as_bytes(), None);
        assert_close(&floats(&answer.json()["outputs"][0]["data"]), &want, path);
    }
    assert_eq!(server.get("/v2/models/conv/versions/2").status, 404);
}

/// `ticket serve` of [`Model::mlp`] as model `m`, with `args`; the directory holds its file.
fn serve_mlp(args: &[&str]) -> (tempfile::TempDir, Model, Server) {
    let dir = tempfile::tempdir().unwrap();
    let mlp = Model::mlp();
    let path = dir.path().join("m.safetensors");
    mlp.write(&path);
    let spec = format!("m={}", path.display());
    let server = Server::start(&[&["--model", spec.as_str()], args].concat());
    (dir, mlp, server)
}

/// Path, body, `Inference-Header-Content-Length`, the status it must get, a part of its error.
type BadRequest = (&'static str, Vec<u8>, Option<usize>, u16, &'static str);

#[test]
fn bad_requests_get_a_4xx_with_an_error_and_the_server_stays_up() {
    let (_dir, mlp, server) = serve_mlp(&["--max-body", "8000", "--max-batch", "4"]);
    let x = mlp.inputs(1, 0);
    let good =
        json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 64], "data": x}]});
    let with = |edit: &dyn Fn(&mut Value)| {
        let mut v = good.clone();
        edit(&mut v);
        v.to_string().into_bytes()
    };
    let (binary, n) = binary_request(&[1, 64], &x, true);
    let mut nan = binary.clone();
    nan[n + 8..n + 12].copy_from_slice(&f32::NAN.to_le_bytes());
    let infer = "/v2/models/m/infer";
    let cases: Vec<BadRequest> = vec![
        (infer, b"{\"inputs\": [".to_vec(), None, 400, "not a valid infer request"),
        (infer, b"\xff\xfe".to_vec(), None, 400, "not a valid infer request"),
        (
            infer,
            with(&|v| v["inputs"][0]["shape"] = json!([1, 63])),
            None,
            400,
            "the model takes [-1, 64]",
        ),
        (
            infer,
            with(&|v| v["inputs"][0]["shape"] = json!([2, 64])),
            None,
            400,
            "(128 values) but its data holds 64",
        ),
        (
            infer,
            with(&|v| v["inputs"][0]["datatype"] = json!("INT32")),
            None,
            400,
            "datatype INT32",
        ),
        (
            infer,
            with(&|v| v["inputs"][0]["data"][5] = json!(1e300)),
            None,
            400,
            "not a finite FP32",
        ),
        (
            infer,
            with(&|v| v["outputs"] = json!([{"name": "probs"}])),
            None,
            400,
            "unknown output 'probs'",
        ),
        (infer, nan, Some(n), 400, "value NaN at index 2"),
        (infer, [&binary[..], &[0; 4]].concat(), Some(n), 400, "4 bytes of binary data follow"),
        (infer, binary.clone(), Some(binary.len() + 5), 400, "Inference-Header-Content-Length is"),
        (infer, binary[..binary.len() - 4].to_vec(), Some(n), 400, "only 252 bytes of binary data"),
        (infer, vec![b' '; 8001], None, 413, "larger than --max-body 8000"),
        (
            infer,
            with(&|v| {
                v["inputs"][0]["shape"] = json!([5, 64]);
                v["inputs"][0]["data"] = json!(vec![0.5; 320]);
            }),
            None,
            400,
            "larger than --max-batch 4",
        ),
        ("/v2/models/other/infer", with(&|_| ()), None, 404, "unknown model 'other'; served: m"),
        ("/v2/models/m/versions/7/infer", with(&|_| ()), None, 404, "no version '7'"),
        ("/v3/anything", Vec::new(), None, 404, "no endpoint POST /v3/anything"),
    ];
    for (path, body, header_length, status, needle) in &cases {
        let answer = server.post(path, body, *header_length);
        let error = answer.error();
        assert_eq!(answer.status, *status, "{needle}: got {} `{error}`", answer.status);
        assert!(error.contains(needle), "`{error}` does not contain `{needle}`");
        assert!(!error.contains('\n'), "{error}");
    }
    assert_eq!(server.get("/v2/models/other").status, 404);
    // Still up, and still right.
    let answer = server.post(infer, &with(&|_| ()), None);
    assert_eq!(answer.status, 200);
    assert_close(&floats(&answer.json()["outputs"][0]["data"]), &mlp.reference(&x), "after");
    let metrics = server.metrics();
    let count = |line: &str| -> u64 {
        let found = metrics.lines().find_map(|l| l.strip_prefix(line));
        found.unwrap_or_else(|| panic!("no {line} in\n{metrics}")).trim().parse().unwrap()
    };
    assert_eq!(count("ticket_request_errors_total{model=\"m\",kind=\"bad_request\"}"), 12);
    assert_eq!(count("ticket_request_errors_total{model=\"m\",kind=\"body_too_large\"}"), 1);
    assert_eq!(count("ticket_request_errors_total{model=\"\",kind=\"unknown_model\"}"), 3);
    assert_eq!(count("ticket_infer_requests_total{model=\"m\"}"), 14);
    assert_eq!(count("ticket_infer_request_duration_seconds_count{model=\"m\"}"), 1);
}

/// The requests of the bad-input corpus (`tests/corpus/request/`, written by
/// `tests/corpus/generate.rs`) against its valid MLP: each gets a 400 whose error contains the
/// text `tests/corpus/expected.tsv` records for it.
#[test]
fn the_corpus_of_bad_requests_gets_400s_that_name_each_problem() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let manifest = std::fs::read_to_string(corpus.join("expected.tsv")).unwrap();
    let cases: Vec<(&str, &str)> = manifest
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .filter(|(file, _)| file.starts_with("request/"))
        .collect();
    assert!(cases.len() >= 20, "{} request cases", cases.len());
    let model = format!("m={}", corpus.join("valid/model.safetensors").display());
    let server = Server::start(&["--model", &model]);
    for (file, needle) in cases {
        let bytes = std::fs::read(corpus.join(file)).unwrap();
        let (header_length, body) = if file.ends_with(".bin") {
            let newline = bytes.iter().position(|&b| b == b'\n').expect("a header length line");
            (Some(std::str::from_utf8(&bytes[..newline]).unwrap()), &bytes[newline + 1..])
        } else {
            (None, &bytes[..])
        };
        let answer = server.post_raw("/v2/models/m/infer", body, header_length);
        let error = answer.error();
        assert_eq!(answer.status, 400, "{file}: {error}");
        assert!(error.contains(needle), "{file}: `{error}` does not contain `{needle}`");
        assert!(!error.contains('\n'), "{file}: {error}");
    }
    assert_eq!(server.get("/v2/health/live").status, 200);
}

#[test]
fn concurrent_requests_each_get_their_own_logits_and_every_example_is_run_once() {
    let (_dir, mlp, server) = serve_mlp(&["--max-batch", "16", "--max-queue-delay-us", "2000"]);
    let (clients, each) = (16, 12);
    std::thread::scope(|s| {
        for c in 0..clients {
            let (server, mlp) = (&server, &mlp);
            s.spawn(move || {
                for r in 0..each {
                    let seed = c * each + r;
                    let batch = 1 + seed % 3;
                    let x = mlp.inputs(batch, seed);
                    let answer = if seed % 2 == 0 {
                        server.infer_json("m", &[batch, 64], &x, json!([{"name": "logits"}]))
                    } else {
                        let (body, n) = binary_request(&[batch, 64], &x, false);
                        server.post("/v2/models/m/infer", &body, Some(n))
                    };
                    assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
                    let got = floats(&answer.json()["outputs"][0]["data"]);
                    assert_close(&got, &mlp.reference(&x), &format!("client {c} request {r}"));
                }
            });
        }
    });
    let examples: usize = (0..clients * each).map(|seed| 1 + seed % 3).sum();
    assert_eq!(server.metric("ticket_batch_size_sum{model=\"m\"}") as usize, examples);
    assert_eq!(server.metric("ticket_queued_requests{model=\"m\"}"), 0.0);
}

/// A conv model whose batches take long: 48x48 images through four 3x3 convolutions of up
/// to 32 channels (about 48 M multiply-adds an example).
const SLOW: &str = r#"{"input":[1,48,48],"layers":[
  {"op":"conv2d","name":"c1","in":1,"out":8,"kernel":[3,3],"stride":[1,1],"padding":[1,1]},
  {"op":"relu"},
  {"op":"conv2d","name":"c2","in":8,"out":32,"kernel":[3,3],"stride":[1,1],"padding":[1,1]},
  {"op":"relu"},
  {"op":"conv2d","name":"c3","in":32,"out":32,"kernel":[3,3],"stride":[1,1],"padding":[1,1]},
  {"op":"relu"},
  {"op":"conv2d","name":"c4","in":32,"out":32,"kernel":[3,3],"stride":[1,1],"padding":[1,1]},
  {"op":"relu"},{"op":"avgpool2d","kernel":[8,8]},{"op":"flatten"},
  {"op":"linear","name":"fc","in":1152,"out":10}]}"#;

#[test]
fn a_full_queue_answers_503_with_an_error_and_the_queued_requests_their_logits() {
    let dir = tempfile::tempdir().unwrap();
    let graph = Graph::from_json(SLOW).unwrap();
    let slow = Model { layers: random_model(&graph, &[1.0, 1.0, 1.0, 1.0, 1.0], 6), graph };
    let path = dir.path().join("slow.safetensors");
    slow.write(&path);
    let spec = format!("slow={}", path.display());
    // A queue of one request behind a batch of 256 examples (seconds of one kernel thread).
    let args = ["--model", &spec, "--max-queue", "1", "--max-batch", "256", "--threads", "1"];
    let server = Server::start(&args);
    let infer = |batch: usize, seed: usize| {
        let x = slow.inputs(batch, seed);
        let (body, n) = binary_request(&[batch, 1, 48, 48], &x, true);
        let answer = server.post("/v2/models/slow/infer", &body, Some(n));
        (x, answer, Instant::now())
    };
    let check = |x: &[f32], answer: &Answer, examples: &[usize], what: &str| {
        assert_eq!(answer.status, 200, "{what}: {}", String::from_utf8_lossy(&answer.body));
        let logits = f32s(&answer.body[answer.header_length.unwrap()..][..x.len() / 2304 * 40]);
        for &e in examples {
            let want = slow.reference(&x[e * 2304..(e + 1) * 2304]);
            assert_close(&logits[e * 10..(e + 1) * 10], &want, &format!("{what} example {e}"));
        }
    };
    std::thread::scope(|s| {
        let big = s.spawn(|| infer(256, 0));
        // Its batch has begun (the histogram counts a batch as it starts): the model's thread
        // is busy for as long as the batch runs.
        server.await_metric("ticket_batch_size_count{model=\"slow\"}", 1.0);
        let queued = s.spawn(|| infer(1, 1));
        server.await_metric("ticket_queued_requests{model=\"slow\"}", 1.0);
        let (_, refused, refused_at) = infer(1, 2);
        assert_eq!(refused.status, 503, "{}", String::from_utf8_lossy(&refused.body));
        let error = refused.error();
        assert!(error.contains("model 'slow' has 1 requests queued; retry later"), "{error}");
        assert_eq!(
            server.metric("ticket_request_errors_total{model=\"slow\",kind=\"queue_full\"}"),
            1.0
        );
        let (x, answer, big_done) = big.join().unwrap();
        assert!(big_done > refused_at, "the big batch ended before the queue was full");
        check(&x, &answer, &[0, 255], "the big batch");
        let (x, answer, _) = queued.join().unwrap();
        check(&x, &answer, &[0], "the queued request");
    });
    assert_eq!(server.metric("ticket_queued_requests{model=\"slow\"}"), 0.0);
    assert_eq!(server.metric("ticket_infer_requests_total{model=\"slow\"}"), 3.0);
}

/// CPU time (user + system) the process `pid` has used, in clock ticks, from /proc.
#[cfg(target_os = "linux")]
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name (which is in parentheses): utime and stime are the
    // 14th and 15th of the line.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[cfg(target_os = "linux")]
#[test]
fn an_idle_server_stops_spinning_and_uses_no_cpu() {
    // A long spin, so that spinning would show in the CPU time if it did not stop.
    let (_dir, mlp, server) = serve_mlp(&["--spin-us", "20000"]);
    let x = mlp.inputs(1, 0);
    for _ in 0..20 {
        let answer = server.infer_json("m", &[1, 64], &x, json!([{"name": "logits"}]));
        assert_close(&floats(&answer.json()["outputs"][0]["data"]), &mlp.reference(&x), "answer");
    }
    std::thread::sleep(Duration::from_millis(200));
    let before = cpu_ticks(server.child.id());
    std::thread::sleep(Duration::from_millis(1000));
    let used = cpu_ticks(server.child.id()) - before;
    // A thread still spinning would use about 100 ticks of the second (at 100 a second).
    assert!(used <= 5, "{used} clock ticks of CPU time in a second of idleness");
}

/// Reads from `stream` until the end of a response's head; `None` if nothing came in time.
fn response_head(stream: &mut TcpStream, wait: Duration) -> Option<String> {
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            Ok(_) => break,
            Err(e) if head.is_empty() && e.kind() == std::io::ErrorKind::WouldBlock => return None,
            Err(e) => panic!("{e}"),
        }
    }
    Some(String::from_utf8(head).unwrap())
}

#[test]
fn connections_past_max_connections_wait_until_one_closes() {
    let (_dir, _mlp, server) = serve_mlp(&["--max-connections", "1"]);
    let request = b"GET /v2/health/live HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let connect = || {
        let mut stream = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
        stream.write_all(request).unwrap();
        stream
    };
    // The first connection is accepted, answered and kept open.
    let mut first = connect();
    let head = response_head(&mut first, Duration::from_secs(10)).expect("an answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // The second waits in the backlog, unanswered, while the first is open...
    let mut second = connect();
    assert_eq!(response_head(&mut second, Duration::from_millis(500)), None);
    first.write_all(request).unwrap();
    let head = response_head(&mut first, Duration::from_secs(10)).expect("an answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // ... and is served once it closes.
    drop(first);
    let head = response_head(&mut second, Duration::from_secs(10)).expect("an answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
}

/// Writes the head of an infer request and half its body: the server is then reading it.
fn half_sent_request(port: u16, body: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let head = format!(
        "POST /v2/models/m/infer HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&body[..body.len() / 2]).unwrap();
    stream.flush().unwrap();
    stream
}

#[test]
fn sigterm_answers_the_requests_in_flight_then_exits_0() {
    // A long queue delay: the request below waits in its batch for the half-sent one.
    let (_dir, mlp, server) = serve_mlp(&["--max-queue-delay-us", "1500000"]);
    let x = mlp.inputs(1, 5);
    let body =
        json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 64], "data": x}]})
            .to_string()
            .into_bytes();
    let mut slow = half_sent_request(server.port(), &body);
    std::thread::sleep(Duration::from_millis(200));
    std::thread::scope(|s| {
        let waiting = s.spawn(|| server.post("/v2/models/m/infer", &body, None));
        std::thread::sleep(Duration::from_millis(300));
        server.signal("TERM");
        std::thread::sleep(Duration::from_millis(300));
        // Draining: new connections are refused, the two requests in flight are answered.
        assert!(TcpStream::connect(("127.0.0.1", server.port())).is_err(), "still accepting");
        slow.write_all(&body[body.len() / 2..]).unwrap();
        let mut answer = String::new();
        slow.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        let json_part = &answer[answer.find("\r\n\r\n").unwrap() + 4..];
        let v: Value = serde_json::from_str(json_part).unwrap();
        assert_close(&floats(&v["outputs"][0]["data"]), &mlp.reference(&x), "half-sent request");
        let waiting = waiting.join().unwrap();
        assert_eq!(waiting.status, 200);
        assert_close(&floats(&waiting.json()["outputs"][0]["data"]), &mlp.reference(&x), "queued");
    });
    let (code, err) = server.wait(Duration::from_secs(20));
    assert_eq!(code, Some(0), "stderr: {err}");
    assert!(err.contains("every request in flight was answered"), "{err}");
}

#[test]
fn a_request_that_never_finishes_does_not_hold_the_shutdown_past_the_drain_timeout() {
    let (_dir, mlp, server) = serve_mlp(&["--drain-timeout-s", "1"]);
    let x = mlp.inputs(1, 0);
    let body =
        json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 64], "data": x}]});
    let _stuck = half_sent_request(server.port(), body.to_string().as_bytes());
    std::thread::sleep(Duration::from_millis(200));
    let start = Instant::now();
    server.signal("TERM");
    let (code, err) = server.wait(Duration::from_secs(20));
    assert_eq!(code, Some(1), "stderr: {err}");
    assert!(err.contains("error: requests still in flight 1s after shutdown began"), "{err}");
    assert!(start.elapsed() >= Duration::from_millis(900), "{:?}", start.elapsed());
}

#[test]
fn ctrl_c_stops_an_idle_server_with_exit_0() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    Model::mlp().write(&path);
    let server = Server::start(&["--model", path.to_str().unwrap(), "--json"]);
    assert_eq!(server.get("/v2/models/m/ready").status, 200, "named after its file");
    server.signal("INT");
    let (code, err) = server.wait(Duration::from_secs(20));
    assert_eq!(code, Some(0), "stderr: {err}");
}

#[test]
fn models_that_do_not_load_stop_the_start_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.safetensors");
    Model::mlp().write(&good);
    let broken = dir.path().join("broken.safetensors");
    std::fs::write(&broken, b"not a model").unwrap();
    let missing = dir.path().join("missing.safetensors");
    let g = good.to_str().unwrap();
    let cases = [
        (vec![format!("m={}", missing.display())], missing.display().to_string()),
        (vec![format!("m={}", broken.display())], broken.display().to_string()),
        (vec![format!("a={g}"), format!("a={g}")], "model name 'a' is taken".to_string()),
        (vec![format!("a/b={g}")], "model name 'a/b' must be".to_string()),
    ];
    for (specs, needle) in cases {
        let mut args = vec!["serve", "--port", "0"];
        specs.iter().for_each(|s| args.extend(["--model", s.as_str()]));
        assert_clean_failure(&ticket(&args), &needle);
    }
}
