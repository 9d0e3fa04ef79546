//! The mock's `POST /v1/embeddings`: `input` as a string, a list of strings, or token arrays;
//! deterministic unit vectors (`dimensions` long, 8 by default) as floats or base64, as the
//! official SDKs ask for by default; usage counts input words as tokens. The answer waits the
//! time-to-first-token draw plus one inter-token draw per input, so a bigger batch takes longer.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use rand::SeedableRng;
use serde_json::{json, Value};

use super::{
    admit, answer_with_fault, error_response, header_u64, json_response, scaled_input, wait_out,
    Admitted, Format, MockBody, ResetConnection,
};
use crate::mock::MockState;

/// Longest vector the mock returns.
const MAX_DIMENSIONS: u64 = 4096;

/// What an embeddings request asked for.
struct EmbeddingJob {
    model: String,
    /// Each input's token count (words of a string, length of a token array).
    inputs: Vec<u64>,
    dimensions: usize,
    base64: bool,
}

fn plan(body: &[u8]) -> Result<EmbeddingJob, String> {
    let request: Value =
        serde_json::from_slice(body).map_err(|e| format!("request body is not valid JSON: {e}"))?;
    let model = request
        .get("model")
        .and_then(Value::as_str)
        .ok_or("you must provide a model parameter")?
        .to_string();
    let words = |text: &str| text.split_whitespace().count() as u64;
    let inputs: Vec<u64> = match request.get("input") {
        Some(Value::String(text)) => vec![words(text)],
        Some(Value::Array(items)) if !items.is_empty() => {
            if items.iter().all(Value::is_number) {
                vec![items.len() as u64]
            } else {
                items
                    .iter()
                    .map(|item| match item {
                        Value::String(text) => Ok(words(text)),
                        Value::Array(tokens) => Ok(tokens.len() as u64),
                        _ => Err("'input' items must be strings or token arrays".to_string()),
                    })
                    .collect::<Result<_, _>>()?
            }
        }
        _ => return Err("'input' must be a non-empty string or array".into()),
    };
    if inputs.len() > 2048 {
        return Err("'input' may hold at most 2048 items".into());
    }
    let dimensions = match request.get("dimensions").map(Value::as_u64) {
        None => 8,
        Some(Some(n)) if (1..=MAX_DIMENSIONS).contains(&n) => n as usize,
        Some(_) => return Err(format!("'dimensions' must be 1 to {MAX_DIMENSIONS}")),
    };
    let base64 = match request.get("encoding_format").and_then(Value::as_str) {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(format!(
                "'encoding_format' \"{other}\" is not float or base64"
            ))
        }
    };
    Ok(EmbeddingJob {
        model,
        inputs,
        dimensions,
        base64,
    })
}

/// A deterministic unit vector for input `index`.
fn vector(index: usize, dimensions: usize) -> Vec<f32> {
    let raw: Vec<f32> = (0..dimensions)
        .map(|d| (((index * 31 + d * 17) % 97) as f32 / 97.0) - 0.5)
        .collect();
    let norm = raw
        .iter()
        .map(|x| x * x)
        .sum::<f32>()
        .sqrt()
        .max(f32::MIN_POSITIVE);
    raw.into_iter().map(|x| x / norm).collect()
}

pub(super) async fn handle(
    request: Request<Incoming>,
    state: Arc<MockState>,
    id: u64,
    received: Instant,
) -> Result<Response<MockBody>, ResetConnection> {
    let Admitted { headers, key, body } = match admit(request, &state, Format::OpenAi).await {
        Ok(admitted) => admitted,
        Err(response) => return Ok(response),
    };
    let job = match plan(&body) {
        Ok(job) => job,
        Err(message) => {
            return Ok(error_response(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                &message,
            ))
        }
    };
    let config = &state.config;
    let mut rng = rand::rngs::StdRng::seed_from_u64(config.seed ^ id.wrapping_mul(0xFA17));
    if let Some(fault) = config.faults.draw(&mut rng, false) {
        state.faults_injected.add(fault);
        // A reset drops the connection as on every other route; stream faults do not apply.
        if let Some(response) = answer_with_fault(fault, key.as_deref())? {
            return Ok(response);
        }
    }
    state.completions.fetch_add(1, Ordering::Relaxed);
    let fixed = |name: &str| header_u64(&headers, name).map(Duration::from_millis);
    let first = fixed("x-mock-ttft-ms").unwrap_or_else(|| config.ttft.sample(&mut rng));
    let per_input = fixed("x-mock-itl-ms").unwrap_or_else(|| config.itl.sample(&mut rng));
    let took = first + per_input * u32::try_from(job.inputs.len()).unwrap_or(u32::MAX);
    wait_out(&state, received + took).await;
    let data: Vec<Value> = (0..job.inputs.len())
        .map(|index| {
            let vector = vector(index, job.dimensions);
            let embedding = if job.base64 {
                let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(vector)
            };
            json!({ "object": "embedding", "index": index, "embedding": embedding })
        })
        .collect();
    let tokens = scaled_input(job.inputs.iter().sum(), config.input_usage_scale);
    Ok(json_response(
        StatusCode::OK,
        json!({
            "object": "list",
            "data": data,
            "model": job.model,
            "usage": { "prompt_tokens": tokens, "total_tokens": tokens },
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_dimensions_and_encodings_are_read_and_refused_clearly() {
        let job =
            plan(br#"{"model":"e","input":["a b","c"],"dimensions":4,"encoding_format":"base64"}"#)
                .unwrap();
        assert_eq!(job.inputs, vec![2, 1]);
        assert_eq!(job.dimensions, 4);
        assert!(job.base64);
        assert_eq!(
            plan(br#"{"model":"e","input":[1,2,3]}"#).unwrap().inputs,
            vec![3]
        );
        assert!(plan(br#"{"model":"e","input":[]}"#).is_err());
        assert!(plan(br#"{"model":"e","input":"x","dimensions":0}"#).is_err());
        assert!(plan(br#"{"input":"x"}"#).is_err());
        let v = vector(3, 8);
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>();
        assert!((norm - 1.0).abs() < 1e-4, "{norm}");
    }
}
