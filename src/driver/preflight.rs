//! Preflight: one small request per real target before any load, so that a wrong key, a wrong
//! model name or an endpoint that cannot stream is reported once, clearly, instead of as
//! thousands of identical failures. Embedded mock targets need no preflight.

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};

use super::client;
use super::request::{execute, Job, TargetContext};
use crate::protocol::openai::Messages;
use crate::record::{ErrorClass, RequestRecord};
use crate::redact::Redactor;
use crate::scenario::{Endpoint, RunPlan, TargetMode, TargetPlan, Timeouts};

/// Longest a preflight request may take, whatever the target's own timeout.
const PREFLIGHT_TIMEOUT: Duration = Duration::from_secs(60);

/// Why the run must not start.
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    #[error("target \"{target}\": the endpoint rejected the API key{source_hint} ({message}). Check the key, or that it belongs to this endpoint.")]
    Auth {
        target: String,
        source_hint: String,
        message: String,
    },
    #[error("target \"{target}\": model \"{model}\" is not served ({message}). {models} Set the target's `model`, or map the class's model with `model_map`.")]
    UnknownModel {
        target: String,
        model: String,
        message: String,
        models: String,
    },
    #[error(
        "target \"{target}\": {url} answered 404 Not Found ({message}); {hint}. No load was sent."
    )]
    NotFound {
        target: String,
        url: String,
        hint: String,
        message: String,
    },
    #[error("target \"{target}\": the preflight request failed ({class}: {message}); no load was sent. Use --no-preflight to run anyway.")]
    Failed {
        target: String,
        class: String,
        message: String,
    },
    #[error("target \"{target}\": {message}")]
    Setup { target: String, message: String },
}

/// Checks every real target; returns warnings that do not stop the run.
pub async fn preflight(plan: &RunPlan) -> Result<Vec<String>, PreflightError> {
    let redactor = Redactor::new(plan.secrets());
    let mut warnings = Vec::new();
    for (index, target) in plan.targets.iter().enumerate() {
        let Endpoint::Url(base_url) = &target.endpoint else {
            continue;
        };
        let mut checked = target.clone();
        checked.timeouts = Timeouts {
            total: target.timeouts.total.min(PREFLIGHT_TIMEOUT),
            ..target.timeouts
        };
        let setup = |message: String| PreflightError::Setup {
            target: target.name.clone(),
            message,
        };
        let http = client::build(
            target.http,
            base_url.starts_with("https://"),
            target.timeouts.connect,
            &target.tls,
        )
        .map_err(|e| setup(e.to_string()))?;
        let context =
            TargetContext::new(index, checked, base_url, http, redactor.clone()).map_err(setup)?;
        let record = execute(&context, &probe_job(target)).await;
        check(&context, base_url, record, &mut warnings).await?;
    }
    Ok(warnings)
}

fn probe_job(target: &TargetPlan) -> Job {
    let messages = [json!({ "role": "user", "content": "Reply with the word OK." })];
    let body = super::chat_body(
        target,
        &target.model,
        Messages::Values(&messages),
        Some(8),
        None,
        None,
    );
    Job {
        index: 0,
        class: 0,
        stage: 0,
        intended: std::time::Instant::now(),
        body,
        warmup: true,
        shape: Default::default(),
        keep_answer: false,
        tools: None,
    }
}

async fn check(
    context: &TargetContext,
    base_url: &str,
    record: RequestRecord,
    warnings: &mut Vec<String>,
) -> Result<(), PreflightError> {
    let target = &context.plan;
    let failure = match record.outcome {
        Ok(()) => {
            if target.mode == TargetMode::Stream
                && !record.token_gaps.is_empty()
                && record.token_gaps.iter().all(|g| g.is_zero())
            {
                warnings.push(format!(
                    "target \"{}\": the preflight stream arrived in one piece; the endpoint or a proxy may buffer SSE, which makes TTFT read like E2E",
                    target.name
                ));
            }
            return Ok(());
        }
        Err(failure) => failure,
    };
    match failure.status {
        Some(401) | Some(403) => Err(PreflightError::Auth {
            target: target.name.clone(),
            source_hint: target
                .api_key_env
                .as_ref()
                .map_or(" (no api_key_env is set for this target)".into(), |var| {
                    format!(" read from {var}")
                }),
            message: failure.message,
        }),
        Some(400) | Some(404) if failure.message.to_lowercase().contains("model") => {
            let models = match list_models(context, base_url).await {
                Ok(models) if !models.is_empty() => {
                    format!("The endpoint serves: {}.", models.join(", "))
                }
                Ok(_) => "The endpoint's model list is empty.".into(),
                Err(why) => format!("Its model list could not be read ({why})."),
            };
            Err(PreflightError::UnknownModel {
                target: target.name.clone(),
                model: target.model.clone(),
                message: failure.message,
                models,
            })
        }
        Some(404) => Err(PreflightError::NotFound {
            target: target.name.clone(),
            url: context.url.to_string(),
            hint: if base_url.trim_end_matches('/').ends_with("/v1") {
                "check the base_url's path: drover appends chat/completions (or messages) to it"
                    .into()
            } else {
                format!(
                    "most APIs serve under /v1: try base_url = \"{}/v1\"",
                    base_url.trim_end_matches('/')
                )
            },
            message: failure.message,
        }),
        _ if failure.class == ErrorClass::Throttled => {
            warnings.push(format!(
                "target \"{}\": the preflight request was throttled (429); expect throttling under load",
                target.name
            ));
            Ok(())
        }
        _ => Err(PreflightError::Failed {
            target: target.name.clone(),
            class: failure.class.key(),
            message: failure.message,
        }),
    }
}

/// `GET {base}/models`, returning the model ids.
async fn list_models(context: &TargetContext, base_url: &str) -> Result<Vec<String>, String> {
    let mut request = Request::get(format!("{base_url}/models"));
    for (name, value) in context.api_headers() {
        request = request.header(name.clone(), value.clone());
    }
    let request = request
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    let response = tokio::time::timeout(PREFLIGHT_TIMEOUT, context.client.request(request))
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| context.redactor.redact(&e.to_string()))?;
    if !response.status().is_success() {
        return Err(format!("HTTP {}", response.status()));
    }
    let body = http_body_util::Limited::new(response.into_body(), 4 * 1024 * 1024)
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    let value: Value = serde_json::from_slice(&body).map_err(|e| format!("invalid JSON: {e}"))?;
    Ok(value
        .get("data")
        .and_then(Value::as_array)
        .map(|models| {
            models
                .iter()
                .filter_map(|m| m.get("id").and_then(Value::as_str))
                .map(|id| context.redactor.redact(id))
                .collect()
        })
        .unwrap_or_default())
}
