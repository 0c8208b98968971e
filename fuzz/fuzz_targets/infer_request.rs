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
