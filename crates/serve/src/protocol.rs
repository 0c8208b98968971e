//! The Open Inference Protocol's infer request and response (KServe v2 REST, as Triton speaks
//! it), JSON tensors and the binary tensor data extension: the body is a JSON header of
//! `Inference-Header-Content-Length` bytes followed by the raw tensors, each input naming its
//! byte count in `parameters.binary_data_size`, each output asking for binary with
//! `parameters.binary_data` (or all of them with the request's `binary_data_output`).
//!
//! Everything a client sends is checked here, before it reaches a model: a request that lies
//! about its shape or byte counts, names another datatype or carries NaN or infinity is a
//! [`RequestError`] naming the input and the problem.

use crate::error::RequestError;
use crate::signature::{Signature, CLASS, INPUT, LOGITS};
use serde::de;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

/// The header that tells the JSON part of a body from its binary part.
pub const HEADER_LENGTH: &str = "inference-header-content-length";

/// A checked infer request for one model.
#[derive(Debug, PartialEq)]
pub struct InferRequest {
    /// The client's `id`, echoed in the response.
    pub id: Option<Value>,
    /// Examples in `data`.
    pub batch: usize,
    /// `[batch][features]`, row-major, finite.
    pub data: Vec<f32>,
    /// The outputs to return, in the order asked.
    pub outputs: Vec<Output>,
}

/// One requested output tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Output {
    pub tensor: OutputTensor,
    /// Raw little-endian bytes after the JSON header instead of a JSON array.
    pub binary: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputTensor {
    /// FP32 `[batch, classes]`.
    Logits,
    /// INT64 `[batch]`: the index of the largest logit.
    Class,
}

#[derive(Deserialize)]
struct RequestHeader {
    #[serde(default)]
    id: Option<Value>,
    inputs: Vec<RequestInput>,
    #[serde(default)]
    outputs: Option<Vec<RequestOutput>>,
    #[serde(default)]
    parameters: Parameters,
}

#[derive(Deserialize)]
struct RequestInput {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    #[serde(default)]
    parameters: Parameters,
    #[serde(default)]
    data: Option<FlatData>,
}

#[derive(Deserialize)]
struct RequestOutput {
    name: String,
    #[serde(default)]
    parameters: Parameters,
}

#[derive(Deserialize, Default)]
struct Parameters {
    #[serde(default)]
    binary_data_size: Option<u64>,
    #[serde(default)]
    binary_data: Option<bool>,
    #[serde(default)]
    binary_data_output: Option<bool>,
}

/// The numbers of a (possibly nested) JSON array, flattened in row-major order.
struct FlatData(Vec<f32>);

impl<'de> Deserialize<'de> for FlatData {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Data the fast pass left in the body (`tensor_data::cut_data`): serde_json has
        // checked the syntax, the numbers are parsed the same way, to report what is wrong.
        let raw = <&'de RawValue>::deserialize(d)?.get().as_bytes();
        match tensor_data::parse_data(raw, 0) {
            Ok((values, end)) if end == raw.len() => Ok(FlatData(values)),
            Ok(_) => Err(de::Error::custom("data must be an array of numbers")),
            Err(message) => Err(de::Error::custom(message)),
        }
    }
}

/// Parses and checks an infer request against `signature`. `header_length` is the
/// `Inference-Header-Content-Length` header, if the body has a binary part.
pub fn parse_request(
    body: &[u8],
    header_length: Option<usize>,
    signature: &Signature,
) -> Result<InferRequest, RequestError> {
    let (json, mut binary) = match header_length {
        None => (body, &[][..]),
        Some(n) if n <= body.len() => body.split_at(n),
        Some(n) => {
            return Err(RequestError::bad(format!(
                "Inference-Header-Content-Length is {n} but the body has only {} bytes",
                body.len()
            )))
        }
    };
    let invalid = |e| RequestError::bad(format!("request is not a valid infer request: {e}"));
    let whole = || serde_json::from_slice::<RequestHeader>(json).map_err(invalid);
    let header = match tensor_data::cut_data(json) {
        None => whole()?,
        // Anything amiss with the rest is reported at its place in the body as sent.
        Some(cut) => match serde_json::from_slice::<RequestHeader>(&cut.json) {
            Ok(mut header)
                if cut.data.iter().all(|&(i, _)| {
                    header.inputs.get(i).is_some_and(|input| input.data.is_none())
                }) =>
            {
                for (i, values) in cut.data {
                    header.inputs[i].data = Some(FlatData(values));
                }
                header
            }
            _ => whole()?,
        },
    };
    let [input] = <[RequestInput; 1]>::try_from(header.inputs).map_err(|inputs| {
        RequestError::bad(format!(
            "request has {} inputs; the model takes one, '{INPUT}'",
            inputs.len()
        ))
    })?;
    let (batch, data) = check_input(input, &mut binary, signature)?;
    if !binary.is_empty() {
        return Err(RequestError::bad(format!(
            "{} bytes of binary data follow the inputs that no input claims",
            binary.len()
        )));
    }
    let all_binary = header.parameters.binary_data_output.unwrap_or(false);
    let outputs = match header.outputs {
        None => vec![Output { tensor: OutputTensor::Logits, binary: all_binary }],
        Some(asked) if asked.is_empty() => {
            vec![Output { tensor: OutputTensor::Logits, binary: all_binary }]
        }
        Some(asked) => asked
            .into_iter()
            .map(|o| {
                let tensor = match o.name.as_str() {
                    LOGITS => OutputTensor::Logits,
                    CLASS => OutputTensor::Class,
                    other => {
                        return Err(RequestError::bad(format!(
                            "unknown output '{other}'; the model gives '{LOGITS}' and '{CLASS}'"
                        )))
                    }
                };
                Ok(Output { tensor, binary: o.parameters.binary_data.unwrap_or(all_binary) })
            })
            .collect::<Result<_, _>>()?,
    };
    Ok(InferRequest { id: header.id, batch, data, outputs })
}

/// The batch and values of the one input, its binary bytes taken from the front of `binary`.
fn check_input(
    input: RequestInput,
    binary: &mut &[u8],
    signature: &Signature,
) -> Result<(usize, Vec<f32>), RequestError> {
    let name = &input.name;
    if name != INPUT {
        return Err(RequestError::bad(format!(
            "unknown input '{name}'; the model takes '{INPUT}'"
        )));
    }
    if input.datatype != "FP32" {
        return Err(RequestError::bad(format!(
            "input '{name}' has datatype {}; the model takes FP32",
            input.datatype
        )));
    }
    let wanted = || format!("{:?}", signature.input_dims());
    let shape =
        input.shape.iter().map(|&d| usize::try_from(d)).collect::<Result<Vec<_>, _>>().map_err(
            |_| {
                RequestError::bad(format!(
                    "input '{name}' has shape {:?}, with a negative dimension; the model takes {}",
                    input.shape,
                    wanted()
                ))
            },
        )?;
    let Some(batch) = signature.batch_of(&shape) else {
        return Err(RequestError::bad(format!(
            "input '{name}' has shape {shape:?}; the model takes {}",
            wanted()
        )));
    };
    if batch == 0 {
        return Err(RequestError::bad(format!(
            "input '{name}' has shape {shape:?}, an empty batch"
        )));
    }
    let values = batch.checked_mul(signature.features).ok_or_else(|| {
        RequestError::bad(format!("input '{name}' has shape {shape:?}, too large"))
    })?;
    let data = match (input.data, input.parameters.binary_data_size) {
        (Some(_), Some(_)) => {
            return Err(RequestError::bad(format!(
                "input '{name}' has both data and binary_data_size"
            )))
        }
        (None, None) => {
            return Err(RequestError::bad(format!(
                "input '{name}' has neither data nor binary_data_size"
            )))
        }
        (Some(FlatData(data)), None) => {
            if data.len() != values {
                return Err(RequestError::bad(format!(
                    "input '{name}' has shape {shape:?} ({values} values) but its data holds {}",
                    data.len()
                )));
            }
            data
        }
        (None, Some(size)) => take_binary(name, &shape, values, size, binary)?,
    };
    Ok((batch, data))
}

/// `values` little-endian FP32 numbers from the front of `binary`, whose byte count the input
/// declared as `size`.
fn take_binary(
    name: &str,
    shape: &[usize],
    values: usize,
    size: u64,
    binary: &mut &[u8],
) -> Result<Vec<f32>, RequestError> {
    let bytes = values as u64 * 4;
    if size != bytes {
        return Err(RequestError::bad(format!(
            "input '{name}' has shape {shape:?} ({bytes} bytes of FP32) but binary_data_size {size}"
        )));
    }
    if (binary.len() as u64) < size {
        return Err(RequestError::bad(format!(
            "input '{name}' has binary_data_size {size} but only {} bytes of binary data follow the header",
            binary.len()
        )));
    }
    let (raw, rest) = binary.split_at(size as usize);
    *binary = rest;
    let data: Vec<f32> =
        raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        return Err(RequestError::bad(format!(
            "input '{name}' value {} at index {i} is not a finite FP32 number",
            data[i]
        )));
    }
    Ok(data)
}

#[derive(Serialize)]
struct ResponseHeader<'a> {
    model_name: &'a str,
    model_version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a Value>,
    outputs: Vec<ResponseOutput<'a>>,
}

#[derive(Serialize)]
struct ResponseOutput<'a> {
    name: &'static str,
    datatype: &'static str,
    shape: Vec<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<BinarySize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Data<'a>>,
}

#[derive(Serialize)]
struct BinarySize {
    binary_data_size: usize,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Data<'a> {
    F32(&'a [f32]),
    I64(&'a [i64]),
}

/// An encoded infer response: the body and, when it has a binary part, the length of its JSON
/// header (the response's `Inference-Header-Content-Length`).
#[derive(Debug)]
pub struct Encoded {
    pub body: Vec<u8>,
    pub header_length: Option<usize>,
}

/// The response to `request` given its `logits` (`[batch][classes]`).
pub fn encode_response(
    model_name: &str,
    request: &InferRequest,
    logits: &[f32],
    classes: usize,
) -> Encoded {
    let batch = request.batch;
    let class: Vec<i64> = if request.outputs.iter().any(|o| o.tensor == OutputTensor::Class) {
        logits.chunks_exact(classes).map(|row| ticket_core::network::argmax(row) as i64).collect()
    } else {
        Vec::new()
    };
    let mut binary = Vec::new();
    let outputs = request
        .outputs
        .iter()
        .map(|o| {
            let (name, datatype, shape, data) = match o.tensor {
                OutputTensor::Logits => ("logits", "FP32", vec![batch, classes], Data::F32(logits)),
                OutputTensor::Class => ("class", "INT64", vec![batch], Data::I64(&class)),
            };
            if !o.binary {
                return ResponseOutput {
                    name,
                    datatype,
                    shape,
                    parameters: None,
                    data: Some(data),
                };
            }
            let start = binary.len();
            match data {
                Data::F32(v) => v.iter().for_each(|x| binary.extend_from_slice(&x.to_le_bytes())),
                Data::I64(v) => v.iter().for_each(|x| binary.extend_from_slice(&x.to_le_bytes())),
            }
            let parameters = Some(BinarySize { binary_data_size: binary.len() - start });
            ResponseOutput { name, datatype, shape, parameters, data: None }
        })
        .collect();
    let header = ResponseHeader {
        model_name,
        model_version: crate::signature::VERSION,
        id: request.id.as_ref(),
        outputs,
    };
    let mut body = serde_json::to_vec(&header).expect("a response header serializes");
    if request.outputs.iter().any(|o| o.binary) {
        let header_length = body.len();
        body.extend_from_slice(&binary);
        Encoded { body, header_length: Some(header_length) }
    } else {
        Encoded { body, header_length: None }
    }
}

mod tensor_data;

#[cfg(test)]
mod tests;
