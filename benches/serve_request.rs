//! Parsing one Open Inference Protocol infer request for a 784-input model, the way a
//! Python client writes it (`json.dumps` of `tolist()`: every FP32 value as the shortest f64
//! repr, 16-17 digits, ~20 bytes a number), beside the binary tensor extension's body for the
//! same tensor. Serving a JSON request costs this on top of the binary one.
//!
//!     cargo bench --bench serve_request            # or: just bench-serve-request

use criterion::{Criterion, Throughput};
use std::hint::black_box;
use ticket_serve::protocol::parse_request;
use ticket_serve::signature::Signature;

const FEATURES: usize = 784;

/// `FEATURES` values in [0, 1), as a seeded xorshift draws them.
fn values() -> Vec<f32> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    (0..FEATURES)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect()
}

fn json_body(x: &[f32]) -> Vec<u8> {
    let data: Vec<String> = x.iter().map(|&v| format!("{:?}", v as f64)).collect();
    format!(
        r#"{{"id": "bench", "inputs": [{{"name": "input", "datatype": "FP32", "shape": [1, {FEATURES}], "data": [{}]}}]}}"#,
        data.join(", ")
    )
    .into_bytes()
}

fn binary_body(x: &[f32]) -> (Vec<u8>, usize) {
    let mut body = format!(
        r#"{{"id": "bench", "inputs": [{{"name": "input", "datatype": "FP32", "shape": [1, {FEATURES}], "parameters": {{"binary_data_size": {}}}}}], "outputs": [{{"name": "logits", "parameters": {{"binary_data": true}}}}]}}"#,
        FEATURES * 4
    )
    .into_bytes();
    let header = body.len();
    body.extend(x.iter().flat_map(|v| v.to_le_bytes()));
    (body, header)
}

fn main() {
    let signature = Signature { input_shape: vec![FEATURES], features: FEATURES, classes: 10 };
    let x = values();
    let json = json_body(&x);
    let (binary, header) = binary_body(&x);
    for (body, header) in [(&json, None), (&binary, Some(header))] {
        let parsed = parse_request(body, header, &signature).expect("the bench request parses");
        assert_eq!(parsed.data, x, "the parsed values are the ones written");
    }
    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("parse_request");
    group.throughput(Throughput::Bytes(json.len() as u64));
    group.bench_function("json", |b| {
        b.iter(|| parse_request(black_box(&json), None, &signature).unwrap())
    });
    group.throughput(Throughput::Bytes(binary.len() as u64));
    group.bench_function("binary", |b| {
        b.iter(|| parse_request(black_box(&binary), Some(header), &signature).unwrap())
    });
    group.finish();
    c.final_summary();
}
