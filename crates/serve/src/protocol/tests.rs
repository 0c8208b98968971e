use super::*;

fn mlp() -> Signature {
    Signature { input_shape: vec![3], features: 3, classes: 2 }
}

fn conv() -> Signature {
    Signature { input_shape: vec![1, 2, 2], features: 4, classes: 2 }
}

fn parse(body: &str) -> Result<InferRequest, RequestError> {
    parse_request(body.as_bytes(), None, &mlp())
}

fn message(body: &str) -> String {
    parse(body).unwrap_err().message
}

/// A binary request: JSON header, then `values` as little-endian FP32.
fn binary(header: &str, values: &[f32]) -> (Vec<u8>, usize) {
    let mut body = header.as_bytes().to_vec();
    values.iter().for_each(|v| body.extend_from_slice(&v.to_le_bytes()));
    (body, header.len())
}

#[test]
fn json_tensors_flat_or_nested() {
    let flat = parse(
        r#"{"id":"7","inputs":[{"name":"input","datatype":"FP32","shape":[2,3],"data":[1,2,3,4.5,5,6]}]}"#,
    )
    .unwrap();
    assert_eq!(flat.batch, 2);
    assert_eq!(flat.data, [1.0, 2.0, 3.0, 4.5, 5.0, 6.0]);
    assert_eq!(flat.id, Some(Value::from("7")));
    assert_eq!(flat.outputs, [Output { tensor: OutputTensor::Logits, binary: false }]);
    let nested = parse(
        r#"{"inputs":[{"name":"input","datatype":"FP32","shape":[2,3],"data":[[1,2,3],[4.5,5,6]]}]}"#,
    )
    .unwrap();
    assert_eq!(nested.data, flat.data);
}

#[test]
fn conv_inputs_take_the_image_shape_or_flat_features() {
    for shape in ["[1,1,2,2]", "[1,4]"] {
        let body = format!(
            r#"{{"inputs":[{{"name":"input","datatype":"FP32","shape":{shape},"data":[1,2,3,4]}}]}}"#
        );
        assert_eq!(parse_request(body.as_bytes(), None, &conv()).unwrap().batch, 1, "{shape}");
    }
    let body =
        r#"{"inputs":[{"name":"input","datatype":"FP32","shape":[1,2,2],"data":[1,2,3,4]}]}"#;
    let err = parse_request(body.as_bytes(), None, &conv()).unwrap_err().message;
    assert!(err.contains("the model takes [-1, 1, 2, 2]"), "{err}");
}

#[test]
fn outputs_by_name_with_binary_per_output_or_for_all() {
    let r = parse(
        r#"{"inputs":[{"name":"input","datatype":"FP32","shape":[1,3],"data":[1,2,3]}],
            "outputs":[{"name":"class"},{"name":"logits","parameters":{"binary_data":true}}]}"#,
    )
    .unwrap();
    assert_eq!(
        r.outputs,
        [
            Output { tensor: OutputTensor::Class, binary: false },
            Output { tensor: OutputTensor::Logits, binary: true }
        ]
    );
    let all = parse(
        r#"{"inputs":[{"name":"input","datatype":"FP32","shape":[1,3],"data":[1,2,3]}],
            "parameters":{"binary_data_output":true}}"#,
    )
    .unwrap();
    assert_eq!(all.outputs, [Output { tensor: OutputTensor::Logits, binary: true }]);
}

#[test]
fn binary_tensor_data() {
    let header = r#"{"inputs":[{"name":"input","datatype":"FP32","shape":[2,3],"parameters":{"binary_data_size":24}}]}"#;
    let values = [1.0, -2.0, 3.25, 0.0, 5.0, 1e-3];
    let (body, n) = binary(header, &values);
    let r = parse_request(&body, Some(n), &mlp()).unwrap();
    assert_eq!((r.batch, r.data.as_slice()), (2, values.as_slice()));
}

#[test]
fn lies_and_bad_values_are_named() {
    let one = |datatype: &str, shape: &str, data: &str| {
        format!(
            r#"{{"inputs":[{{"name":"input","datatype":"{datatype}","shape":{shape},"data":{data}}}]}}"#
        )
    };
    let fp32 = |shape: &str, data: &str| one("FP32", shape, data);
    let good = fp32("[1,3]", "[1,2,3]");
    let cases = [
        ("{bad".to_string(), "not a valid infer request"),
        (r#"{"inputs":[]}"#.to_string(), "has 0 inputs"),
        (good.replace(r#""name":"input""#, r#""name":"x""#), "unknown input 'x'"),
        (one("FP64", "[1,3]", "[1,2,3]"), "datatype FP64"),
        (fp32("[1,4]", "[1,2,3,4]"), "shape [1, 4]; the model takes [-1, 3]"),
        (fp32("[-1,3]", "[1,2,3]"), "negative dimension"),
        (fp32("[0,3]", "[]"), "an empty batch"),
        (fp32("[2,3]", "[1,2,3]"), "(6 values) but its data holds 3"),
        (fp32("[1,3]", "[1,2,1e39]"), "data value 1e39 at index 2 is not a finite FP32"),
        (fp32("[1,3]", r#"[1,"a",3]"#), "data value at index 1 is not a number"),
        (good.replace(r#","data":[1,2,3]"#, ""), "neither data nor binary_data_size"),
        (good.replace("]}]}", r#"]}],"outputs":[{"name":"probs"}]}"#), "unknown output 'probs'"),
        (
            good.replace("]}]}", r#"],"parameters":{"binary_data_size":12}}]}"#),
            "both data and binary_data_size",
        ),
        (
            good.replace(r#""data":[1,2,3]"#, r#""parameters":{"binary_data_size":12}"#),
            "only 0 bytes of binary data",
        ),
    ];
    for (body, needle) in &cases {
        let m = message(body);
        assert!(m.contains(needle), "{body}: `{m}` lacks `{needle}`");
        assert!(!m.contains('\n'), "{m}");
    }
    let header = r#"{"inputs":[{"name":"input","datatype":"FP32","shape":[1,3],"parameters":{"binary_data_size":12}}]}"#;
    let (body, n) = binary(header, &[1.0, f32::NAN, 2.0]);
    let m = parse_request(&body, Some(n), &mlp()).unwrap_err().message;
    assert!(m.contains("value NaN at index 1"), "{m}");
    let (body, n) = binary(header, &[1.0, 2.0, 3.0, 4.0]);
    let m = parse_request(&body, Some(n), &mlp()).unwrap_err().message;
    assert!(m.contains("4 bytes of binary data follow the inputs"), "{m}");
    let m = parse_request(&body, Some(body.len() + 1), &mlp()).unwrap_err().message;
    assert!(m.contains(&format!("only {} bytes", body.len())), "{m}");
    let lying = header.replace("12}", "8}");
    let (body, n) = binary(&lying, &[1.0, 2.0]);
    let m = parse_request(&body, Some(n), &mlp()).unwrap_err().message;
    assert!(m.contains("(12 bytes of FP32) but binary_data_size 8"), "{m}");
}

#[test]
fn responses_in_json_and_binary() {
    let logits = [0.5, -1.0, 2.0, 3.0];
    let mut request = InferRequest {
        id: Some(Value::from("q")),
        batch: 2,
        data: vec![],
        outputs: vec![
            Output { tensor: OutputTensor::Logits, binary: false },
            Output { tensor: OutputTensor::Class, binary: false },
        ],
    };
    let json = encode_response("m", &request, &logits, 2);
    assert_eq!(json.header_length, None);
    let v: Value = serde_json::from_slice(&json.body).unwrap();
    assert_eq!(v["model_name"], "m");
    assert_eq!(v["id"], "q");
    assert_eq!(v["outputs"][0]["shape"], serde_json::json!([2, 2]));
    assert_eq!(v["outputs"][0]["data"], serde_json::json!([0.5, -1.0, 2.0, 3.0]));
    assert_eq!(v["outputs"][1]["datatype"], "INT64");
    assert_eq!(v["outputs"][1]["data"], serde_json::json!([0, 1]));

    request.outputs.iter_mut().for_each(|o| o.binary = true);
    let bin = encode_response("m", &request, &logits, 2);
    let n = bin.header_length.unwrap();
    let v: Value = serde_json::from_slice(&bin.body[..n]).unwrap();
    assert_eq!(v["outputs"][0]["parameters"]["binary_data_size"], 16);
    assert_eq!(v["outputs"][1]["parameters"]["binary_data_size"], 16);
    assert!(v["outputs"][0].get("data").is_none());
    let raw = &bin.body[n..];
    assert_eq!(raw.len(), 32);
    let f: Vec<f32> =
        raw[..16].chunks(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
    assert_eq!(f, logits);
    let c: Vec<i64> =
        raw[16..].chunks(8).map(|b| i64::from_le_bytes(b.try_into().unwrap())).collect();
    assert_eq!(c, [0, 1]);
}

#[test]
fn json_numbers_are_rounded_once_to_the_nearest_f32() {
    // 1 + 2^-24 + 2^-60: just above the midpoint between the f32s 1 and 1 + 2^-23, so the
    // nearest f32 is 1 + 2^-23; rounded to f64 first it would land on the midpoint and then
    // tie to even, 1.
    let above_midpoint = "1.000000059604644776257986737988403547205962240695953369140625";
    let body = format!(
        r#"{{"inputs":[{{"name":"input","datatype":"FP32","shape":[1,3],"data":[{above_midpoint},-0.5,1e-46]}}]}}"#
    );
    let r = parse(&body).unwrap();
    assert_eq!(r.data, [f32::from_bits(0x3f80_0001), -0.5, 0.0]);
    assert_eq!((above_midpoint.parse::<f64>().unwrap() as f32), 1.0, "the detour would differ");
}

/// Bodies whose data the fast pass cuts out parse as serde alone reads them, and an error in
/// the rest names its line and column in the body as sent.
#[test]
fn cut_data_agrees_with_serde_alone() {
    let body = r#"{"id": {"inputs": [{"data": [9]}]}, "inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3], "data": [[1.5, -2e-3, 3]]}]}"#;
    let fast = parse(body).unwrap();
    let header: RequestHeader = serde_json::from_str(body).unwrap();
    let [input] = <[RequestInput; 1]>::try_from(header.inputs).ok().unwrap();
    assert_eq!(fast.data, input.data.unwrap().0);
    assert_eq!(fast.id, header.id);
    let broken = body.replace("]}]}", "]},]}");
    let column = broken.find("},]").unwrap() + 2;
    let m = message(&broken);
    assert!(m.contains(&format!("line 1 column {}", column + 1)), "{m}");
    // A second, escaped `data` key is serde's to find.
    let twice = body.replace(r#""shape""#, r#""d\u0061ta": [1, 2, 3], "shape""#);
    assert!(message(&twice).contains("duplicate field `data`"), "{}", message(&twice));
}
