//! The Open Inference Protocol request parser of `ticket serve` on arbitrary bodies, JSON and
//! binary. The first byte picks the model signature (an MLP or a conv model's image shape) and
//! whether the next two bytes are an `Inference-Header-Content-Length`. Anything accepted
//! must hold exactly batch x features finite values, and its response must encode to valid
//! JSON (plus binary tensors of the sizes it declares); anything refused is a one-line 400.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ticket_serve::protocol::{encode_response, parse_request};
use ticket_serve::signature::Signature;
use ticket_serve::ErrorKind;

const CLASSES: usize = 3;

fuzz_target!(|data: &[u8]| {
    let Some((&select, rest)) = data.split_first() else { return };
    let input_shape = if select & 1 == 0 { vec![4] } else { vec![1, 2, 2] };
    let signature = Signature { input_shape, features: 4, classes: CLASSES };
    let (header_length, body) = match rest {
        [a, b, body @ ..] if select & 2 != 0 => (Some(u16::from_le_bytes([*a, *b]) as usize), body),
        _ => (None, rest),
    };
    let request = match parse_request(body, header_length, &signature) {
        Ok(r) => r,
        Err(e) => {
            assert_eq!(e.kind, ErrorKind::BadRequest);
            assert!(!e.message.contains('\n'), "error spans several lines: {}", e.message);
            return;
        }
    };
    assert!(request.batch > 0);
    if header_length.is_none() {
        same_data_as_serde(body, &request.data);
    }
    assert_eq!(request.data.len(), request.batch * signature.features);
    assert!(request.data.iter().all(|v| v.is_finite()));
    assert!(!request.outputs.is_empty());
    let logits = ticket_fuzz::inputs(request.batch * CLASSES);
    let encoded = encode_response("m", &request, &logits, CLASSES);
    let json_end = encoded.header_length.unwrap_or(encoded.body.len());
    let header: serde_json::Value =
        serde_json::from_slice(&encoded.body[..json_end]).expect("the response header is JSON");
    let binary: u64 = header["outputs"]
        .as_array()
        .expect("outputs")
        .iter()
        .filter_map(|o| o["parameters"]["binary_data_size"].as_u64())
        .sum();
    assert_eq!(binary as usize, encoded.body.len() - json_end);
});

/// The data of an accepted JSON request are the numbers serde_json reads there, in order: each
/// the f32 nearest the decimal, which is within one f32 ulp of serde's f64 rounded to f32 (the
/// request parser cuts the data out and parses it itself). Bodies that only serde's skipping
/// of unknown fields accepts (invalid UTF-8 in an ignored string) are left out.
fn same_data_as_serde(body: &[u8], data: &[f32]) {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else { return };
    let mut numbers = Vec::new();
    flatten(&value["inputs"][0]["data"], &mut numbers);
    assert_eq!(numbers.len(), data.len(), "serde reads another number of data values");
    for (&want, &got) in numbers.iter().zip(data) {
        let near = want as f32;
        let ulp = (near.abs().max(f32::MIN_POSITIVE) * f32::EPSILON).max(f32::from_bits(1));
        assert!((got - near).abs() <= ulp, "data value {got} where serde reads {want}");
    }
}

fn flatten(value: &serde_json::Value, out: &mut Vec<f64>) {
    match value {
        serde_json::Value::Array(items) => items.iter().for_each(|v| flatten(v, out)),
        v => out.push(v.as_f64().expect("accepted data are numbers")),
    }
}
