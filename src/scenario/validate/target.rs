//! One `[[targets]]` table: name, endpoint, key, headers, retry, TLS, timeouts, Batch API options
//! and prices.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use http::{HeaderName, HeaderValue};

use crate::cost::{Currencies, PricedMode, PricingTable, TargetPricing};
use crate::scenario::locate::KeyPath;
use crate::scenario::schema::TargetMode;
use crate::scenario::{
    is_sensitive_header, BatchOptions, Endpoint, Http2Shape, HttpVersion, RetryPolicy, Secret,
    ServerMetricsPlan, TargetPlan, Timeouts, TlsOptions,
};

use super::*;
use crate::cost::Price;
use crate::scenario::schema::TargetSpec;

/// What every target's checks share: where relative paths start, the scenario seed, the
/// environment, and the pricing table and currencies of `[cost]`.
pub(super) struct TargetContext<'a> {
    pub base_dir: &'a Path,
    pub seed: u64,
    pub env: &'a dyn Fn(&str) -> Option<String>,
    pub table: &'a PricingTable,
    pub currencies: &'a Currencies,
}

/// Checks one `[[targets]]` table (`names`: the target names seen so far) into its plan.
pub(super) fn target_plan(
    checker: &mut Checker,
    key: &KeyPath,
    index: usize,
    spec: &TargetSpec,
    names: &mut HashSet<String>,
    ctx: &TargetContext,
) -> Option<TargetPlan> {
    let TargetContext {
        base_dir,
        seed,
        env,
        table,
        currencies,
    } = *ctx;
    if spec.name.trim().is_empty() {
        checker.fail(&key.key("name"), "must not be empty");
    } else if !names.insert(spec.name.clone()) {
        checker.fail(
            &key.key("name"),
            format!("\"{}\" is used by another target", spec.name),
        );
    }
    if spec.model.trim().is_empty() {
        checker.fail(&key.key("model"), "must not be empty");
    }
    let endpoint = match (&spec.base_url, &spec.mock) {
        (Some(_), Some(_)) => {
            checker.fail(&key.key("mock"), "set either base_url or mock, not both");
            None
        }
        (None, None) => {
            checker.fail(
                key,
                format!(
                    "target \"{}\" needs base_url (a real endpoint) or a [targets.mock] table",
                    spec.name
                ),
            );
            None
        }
        (Some(url), None) => check_base_url(checker, &key.key("base_url"), url),
        // Each embedded mock draws its own latencies and faults: two mocks with the same
        // settings behave alike but not identically, as two providers would.
        (None, Some(mock)) => Some(Endpoint::Mock(Box::new(mock_config(
            checker,
            &key.key("mock"),
            mock,
            seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            base_dir,
        )))),
    };
    let api_key = api_key(checker, key, spec, env);
    let shape = api_shape(checker, key, spec);
    let headers = headers(checker, key, spec);
    check_body_and_retry(checker, key, spec);
    let tls = TlsOptions {
        extra_roots: spec.ca_file.as_ref().map_or_else(Vec::new, |file| {
            load_ca_file(checker, &key.key("ca_file"), &base_dir.join(file))
        }),
        insecure: spec.insecure_skip_verify.unwrap_or(false),
    };
    let timeouts = timeouts(checker, key, spec);
    let http2 = http2_shape(checker, &key.key("http2"), spec);
    let batch = batch_options(checker, &key.key("batch"), spec);
    let batch_price = routed_batch_price(checker, key, spec, table, currencies);
    let price = target_price(checker, &key.key("pricing"), table, currencies, spec);
    let server_metrics = server_metrics(checker, &key.key("server_metrics"), spec);
    let endpoint = endpoint?;
    Some(TargetPlan {
        name: spec.name.clone(),
        endpoint,
        api_key_env: spec.api_key_env.clone(),
        api_key,
        model: spec.model.clone(),
        api: spec.api,
        output_limit: shape.output_limit,
        auth: shape.auth,
        query: shape.query,
        url: shape.url,
        mode: spec.mode(),
        headers,
        extra_body: spec.extra_body.clone(),
        model_map: spec.model_map.clone(),
        timeouts,
        http: spec.http,
        http2,
        tls,
        retry: spec.retry.as_ref().map(|r| RetryPolicy {
            max_retries: r.max,
            base: r.base.map_or(Duration::from_millis(250), |d| d.0),
            max_backoff: r.max_backoff.map_or(Duration::from_secs(8), |d| d.0),
            max_retry_after: r.max_retry_after.map_or(Duration::from_secs(60), |d| d.0),
        }),
        stream_usage: spec.stream_usage.unwrap_or(true),
        price,
        batch,
        tokenizer: super::tokenizer::tokenizer(
            checker,
            &key.key("tokenizer"),
            spec.tokenizer.as_ref(),
            base_dir,
        )
        .unwrap_or_default(),
        batch_classes: Vec::new(),
        batch_price,
        budget: spec.pricing.as_ref().and_then(|p| p.budget),
        server_metrics,
    })
}

/// `server_metrics`: a URL (unless the target is an embedded mock, which serves its own), and
/// bounds within reason.
fn server_metrics(
    checker: &mut Checker,
    key: &KeyPath,
    spec: &TargetSpec,
) -> Option<ServerMetricsPlan> {
    let metrics = spec.server_metrics.as_ref()?;
    match &metrics.url {
        Some(url) => {
            let valid = url.parse::<http::Uri>().is_ok_and(|uri| {
                matches!(uri.scheme_str(), Some("http") | Some("https")) && uri.host().is_some()
            });
            if !valid {
                checker.fail(
                    &key.key("url"),
                    format!(
                        "\"{url}\" is not an http:// or https:// URL (e.g. http://10.0.0.5:8000/metrics)"
                    ),
                );
            }
        }
        None if spec.mock.is_some() => {}
        None => checker.fail(
            key,
            "needs url (the server's Prometheus page, e.g. http://10.0.0.5:8000/metrics); only an embedded mock serves its own",
        ),
    }
    let every = metrics
        .every
        .map_or(ServerMetricsPlan::DEFAULT_EVERY, |d| d.0);
    if every < Duration::from_millis(100) || every > Duration::from_secs(3600) {
        checker.fail(&key.key("every"), "must be from 100ms to 1h");
    }
    let timeout = metrics.timeout.map_or(every, |d| d.0);
    if timeout.is_zero() || timeout > every {
        checker.fail(
            &key.key("timeout"),
            format!(
                "must be more than 0 and at most every ({}): one scrape at a time",
                humantime::format_duration(every)
            ),
        );
    }
    let max_bytes = metrics
        .max_bytes
        .map_or(ServerMetricsPlan::DEFAULT_MAX_BYTES as u64, |b| b);
    if !(1024..=64 * 1024 * 1024).contains(&max_bytes) {
        checker.fail(
            &key.key("max_bytes"),
            "must be from 1024 to 67108864 (64 MiB)",
        );
    }
    let max_samples = metrics
        .max_samples
        .map_or(ServerMetricsPlan::DEFAULT_MAX_SAMPLES as u32, |n| n);
    if !(1..=1_000_000).contains(&max_samples) {
        checker.fail(&key.key("max_samples"), "must be from 1 to 1000000");
    }
    for (i, pattern) in metrics.keep.iter().enumerate() {
        let valid = !pattern.is_empty()
            && pattern
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '*'));
        if !valid {
            checker.fail(
                &key.key("keep").index(i),
                format!(
                    "\"{pattern}\" is not a metric name or a pattern of one (letters, digits, _, : and *)"
                ),
            );
        }
    }
    Some(ServerMetricsPlan {
        url: metrics.url.clone(),
        every,
        timeout,
        max_bytes: max_bytes as usize,
        max_samples: max_samples as usize,
        keep: metrics.keep.clone(),
    })
}

/// The target's API key, read from the environment variable it names.
fn api_key(
    checker: &mut Checker,
    key: &KeyPath,
    spec: &TargetSpec,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<Secret> {
    match &spec.api_key_env {
        Some(var) if var.trim().is_empty() => {
            checker.fail(&key.key("api_key_env"), "must name an environment variable");
            None
        }
        Some(var) => match env(var) {
            Some(value) if !value.is_empty() => Some(Secret::new(value)),
            // An embedded mock runs without a key; with one, it requires it.
            _ if spec.mock.is_some() => None,
            _ => {
                checker.fail(
                    &key.key("api_key_env"),
                    format!(
                        "environment variable {var} is not set (target \"{}\" reads its API key from it)",
                        spec.name
                    ),
                );
                None
            }
        },
        None => None,
    }
}

/// How a target's requests are shaped for its API: the output cap's field, the key's header,
/// query parameters and a URL override.
struct ApiShape {
    output_limit: crate::protocol::OutputLimit,
    auth: crate::protocol::Auth,
    query: Vec<(String, String)>,
    url: Option<String>,
}

/// The API's request shape from `max_tokens_field`, `auth`, `query`, `url` and `mode`, each
/// checked against what the API can carry.
fn api_shape(checker: &mut Checker, key: &KeyPath, spec: &TargetSpec) -> ApiShape {
    use crate::protocol::{Api, OutputLimit};
    let api = spec.api;
    let output_limit = spec.max_tokens_field.unwrap_or(api.default_output_limit());
    match (api, output_limit) {
        (Api::Anthropic, OutputLimit::None) => checker.fail(
            &key.key("max_tokens_field"),
            "the Messages API requires max_tokens: use \"max_tokens\" (the default)",
        ),
        (Api::Anthropic, limit) if limit != OutputLimit::MaxTokens => checker.fail(
            &key.key("max_tokens_field"),
            "the Messages API takes max_tokens only",
        ),
        (Api::Embeddings, limit) if limit != OutputLimit::None => checker.fail(
            &key.key("max_tokens_field"),
            "embeddings generate no tokens: leave max_tokens_field out",
        ),
        _ => {}
    }
    if !api.streams() && spec.mode() == TargetMode::Stream {
        checker.fail(
            &key.key("mode"),
            format!(
                "api = \"{}\" does not stream: use mode = \"complete\" or \"batch-api\"",
                api.name()
            ),
        );
    }
    let auth = match &spec.auth {
        None => api.default_auth(),
        Some(auth) => match HeaderName::from_bytes(auth.header.as_bytes()) {
            Ok(header) => crate::protocol::Auth {
                header,
                scheme: auth.scheme.clone().unwrap_or_default().trim().to_string(),
            },
            Err(_) => {
                checker.fail(
                    &key.key("auth").key("header"),
                    format!("\"{}\" is not a valid HTTP header name", auth.header),
                );
                api.default_auth()
            }
        },
    };
    if spec.auth.is_some() && spec.api_key_env.is_none() {
        checker.fail(
            &key.key("auth"),
            "says how the key is sent, but the target has no api_key_env to read it from",
        );
    }
    for name in spec.query.keys() {
        if name.trim().is_empty() {
            checker.fail(&key.key("query"), "has a parameter without a name");
        }
    }
    let url = spec.url.as_ref().and_then(|url| {
        let from_origin = url.starts_with('/') && !url.starts_with("//");
        let absolute = url
            .parse::<http::Uri>()
            .is_ok_and(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some());
        if spec.mock.is_some() && !from_origin {
            checker.fail(
                &key.key("url"),
                "on a mock target must be a path from its address, starting with / (e.g. \"/openai/deployments/gpt-4o/chat/completions\")",
            );
            return None;
        }
        if !from_origin && !absolute {
            checker.fail(
                &key.key("url"),
                format!("\"{url}\" is neither an http(s):// URL nor a path starting with /"),
            );
            return None;
        }
        if from_origin && url.parse::<http::uri::PathAndQuery>().is_err() {
            checker.fail(&key.key("url"), format!("\"{url}\" is not a valid URL path"));
            return None;
        }
        Some(url.clone())
    });
    ApiShape {
        output_limit,
        auth,
        query: spec
            .query
            .iter()
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect(),
        url,
    }
}

/// The target's extra headers, each a valid name and value (secrets marked sensitive).
fn headers(
    checker: &mut Checker,
    key: &KeyPath,
    spec: &TargetSpec,
) -> Vec<(HeaderName, HeaderValue)> {
    let mut headers = Vec::new();
    for (header, value) in &spec.headers {
        let header_key = key.key("headers").key(header);
        match (
            HeaderName::from_bytes(header.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(name), Ok(mut value)) => {
                value.set_sensitive(is_sensitive_header(header));
                headers.push((name, value));
            }
            (Err(_), _) => checker.fail(&header_key, "is not a valid HTTP header name"),
            (_, Err(_)) => checker.fail(&header_key, "is not a valid HTTP header value"),
        }
    }
    headers
}

/// `extra_body` sets nothing drover sets itself; `retry` stays within its bounds.
fn check_body_and_retry(checker: &mut Checker, key: &KeyPath, spec: &TargetSpec) {
    let limit = spec
        .max_tokens_field
        .unwrap_or(spec.api.default_output_limit())
        .field();
    let reserved_fields = [
        "model",
        "messages",
        "stream",
        "max_tokens",
        "input",
        "prompt",
    ]
    .into_iter()
    .chain(limit);
    for reserved in reserved_fields {
        if spec.extra_body.contains_key(reserved) {
            checker.fail(
                &key.key("extra_body").key(reserved),
                "is set by drover; use the target's model/mode or the class's max_tokens",
            );
        }
    }
    if let Some(retry) = &spec.retry {
        if retry.max > 10 {
            checker.fail(&key.key("retry").key("max"), "must be at most 10");
        }
        if retry
            .max_retry_after
            .is_some_and(|d| d.0 > crate::retry_after::CEILING)
        {
            checker.fail(
                &key.key("retry").key("max_retry_after"),
                "must be at most 24h (the longest Retry-After drover reads)",
            );
        }
    }
}

/// The four timeouts, defaults filled in, none zero.
fn timeouts(checker: &mut Checker, key: &KeyPath, spec: &TargetSpec) -> Timeouts {
    let defaults = Timeouts::default();
    let mut timeout =
        |name: &str, value: Option<crate::scenario::schema::HumanDuration>, default| {
            let value = value.map_or(default, |t| t.0);
            checker.non_zero(&key.key(name), value);
            value
        };
    Timeouts {
        connect: timeout("connect_timeout", spec.connect_timeout, defaults.connect),
        first_byte: timeout(
            "first_byte_timeout",
            spec.first_byte_timeout,
            defaults.first_byte,
        ),
        idle: timeout("idle_timeout", spec.idle_timeout, defaults.idle),
        total: timeout("timeout", spec.timeout, defaults.total),
    }
}

/// Most connections an `http2` pool may open: each is a file descriptor (two with an embedded
/// mock), and a pool of more would be a misprint.
const MAX_HTTP2_CONNECTIONS: u32 = 10_000;

/// The HTTP/2 pool's shape, checked.
fn http2_shape(checker: &mut Checker, key: &KeyPath, spec: &TargetSpec) -> Http2Shape {
    let defaults = Http2Shape::default();
    let Some(http2) = &spec.http2 else {
        return defaults;
    };
    if spec.http == HttpVersion::Http1 {
        checker.fail(
            key,
            "shapes HTTP/2 connections, but this target speaks HTTP/1.1 (http = \"http1\"); \
             use http = \"http2\" or \"auto\", or remove http2",
        );
    }
    if let Some(connections) = http2.connections {
        if connections == 0 || connections > MAX_HTTP2_CONNECTIONS {
            checker.fail(
                &key.key("connections"),
                format!("must be from 1 to {MAX_HTTP2_CONNECTIONS}, not {connections}"),
            );
        }
    }
    if http2.max_streams_per_connection == Some(0) {
        checker.fail(
            &key.key("max_streams_per_connection"),
            "must be at least 1 (leave it out to use the server's limit)",
        );
    }
    Http2Shape {
        connections: http2.connections.unwrap_or(defaults.connections).max(1),
        max_streams_per_connection: http2.max_streams_per_connection,
    }
}

/// The Batch API price of a routed target's routed classes.
fn routed_batch_price(
    checker: &mut Checker,
    key: &KeyPath,
    spec: &TargetSpec,
    table: &PricingTable,
    currencies: &Currencies,
) -> Option<Price> {
    match &spec.routing {
        Some(_) if spec.mode() == TargetMode::BatchApi => {
            checker.fail(
                &key.key("routing"),
                "is for stream or complete targets (a batch-api target sends everything through the Batch API)",
            );
            None
        }
        Some(_) => {
            // Routed requests are priced at the Batch API discount; errors were reported
            // for the target's own price already.
            let choices = TargetPricing {
                model: spec.pricing.as_ref().and_then(|p| p.model.clone()),
                bill_currency: spec.pricing.as_ref().and_then(|p| p.bill_currency.clone()),
                bill_rate: spec.pricing.as_ref().and_then(|p| p.bill_rate),
                discount: None,
            };
            crate::cost::resolve(
                table,
                currencies,
                &spec.model,
                &choices,
                PricedMode::BatchApi,
            )
            .ok()
            .flatten()
        }
        None => None,
    }
}

/// A target's Batch API settings, checked.
pub(super) fn batch_options(
    checker: &mut Checker,
    key: &KeyPath,
    spec: &crate::scenario::schema::TargetSpec,
) -> BatchOptions {
    let batch_api = spec.api.batch_api();
    let defaults = batch_api.map_or_else(BatchOptions::default, BatchOptions::for_api);
    let Some(batch) = &spec.batch else {
        return defaults;
    };
    if batch.completion_window.is_some()
        && batch_api == Some(crate::protocol::batch::BatchApi::MessageBatches)
    {
        checker.fail(
            &key.key("completion_window"),
            "is OpenAI's; Anthropic's Message Batches always have 24 hours",
        );
    }
    if spec.mode() != TargetMode::BatchApi && spec.routing.is_none() {
        checker.fail(
            key,
            "is only used with mode = \"batch-api\" or with routing rules",
        );
    }
    let mut duration =
        |name: &str, value: Option<crate::scenario::schema::HumanDuration>, default| {
            let value = value.map_or(default, |d| d.0);
            checker.non_zero(&key.key(name), value);
            value
        };
    let options = BatchOptions {
        poll: duration("poll", batch.poll, defaults.poll),
        max_poll: duration("max_poll", batch.max_poll, defaults.max_poll),
        timeout: duration("timeout", batch.timeout, defaults.timeout),
        max_requests: batch.max_requests.unwrap_or(defaults.max_requests),
        max_bytes: batch.max_bytes.unwrap_or(defaults.max_bytes),
        completion_window: batch
            .completion_window
            .clone()
            .unwrap_or(defaults.completion_window),
    };
    if options.max_requests == 0 {
        checker.fail(&key.key("max_requests"), "must be at least 1");
    }
    if options.max_bytes < 1024 {
        checker.fail(&key.key("max_bytes"), "must be at least 1024");
    }
    if options.max_poll < options.poll {
        checker.fail(&key.key("max_poll"), "must not be shorter than poll");
    }
    options
}

/// A target's price from the table, its `pricing` choices and its mode.
pub(super) fn target_price(
    checker: &mut Checker,
    key: &KeyPath,
    table: &PricingTable,
    currencies: &Currencies,
    spec: &crate::scenario::schema::TargetSpec,
) -> Option<crate::cost::Price> {
    let pricing = spec.pricing.clone().unwrap_or_default();
    if let Some(budget) = pricing.budget {
        if !(budget.is_finite() && budget > 0.0) {
            checker.fail(&key.key("budget"), format!("must be > 0 (got {budget})"));
        }
    }
    if let Some(rate) = pricing.bill_rate {
        if !(rate.is_finite() && rate > 0.0) {
            checker.fail(&key.key("bill_rate"), format!("must be > 0 (got {rate})"));
            return None;
        }
    }
    if let Some(discount) = pricing.discount {
        if !(0.0..=1.0).contains(&discount) {
            checker.fail(
                &key.key("discount"),
                format!("must be a fraction between 0 and 1 (got {discount})"),
            );
            return None;
        }
    }
    let mode = if spec.mode() == TargetMode::BatchApi {
        PricedMode::BatchApi
    } else if spec.extra_body.get("mode").and_then(|m| m.as_str()) == Some("batch") {
        PricedMode::BatchMode
    } else {
        PricedMode::Standard
    };
    let choices = TargetPricing {
        model: pricing.model.clone(),
        bill_currency: pricing.bill_currency.clone(),
        bill_rate: pricing.bill_rate,
        discount: pricing.discount,
    };
    match crate::cost::resolve(table, currencies, &spec.model, &choices, mode) {
        Ok(price) => price,
        Err(error) => {
            let at = if pricing.model.is_some() && error.0.contains("not in the pricing table") {
                key.key("model")
            } else {
                key.clone()
            };
            checker.fail(&at, error.0);
            None
        }
    }
}

pub(super) fn check_base_url(checker: &mut Checker, key: &KeyPath, url: &str) -> Option<Endpoint> {
    let trimmed = url.trim_end_matches('/');
    match trimmed.parse::<http::Uri>() {
        Ok(uri)
            if matches!(uri.scheme_str(), Some("http") | Some("https")) && uri.host().is_some() =>
        {
            Some(Endpoint::Url(trimmed.to_string()))
        }
        _ => {
            checker.fail(
                key,
                format!(
                    "\"{url}\" is not an http:// or https:// URL (e.g. https://api.openai.com/v1)"
                ),
            );
            None
        }
    }
}

/// Reads a PEM file of CA certificates; reports an unreadable file or one without certificates.
pub(super) fn load_ca_file(checker: &mut Checker, key: &KeyPath, path: &Path) -> Vec<Vec<u8>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) => {
            checker.fail(key, format!("cannot read {}: {error}", path.display()));
            return Vec::new();
        }
    };
    let certificates: Result<Vec<Vec<u8>>, _> = CertificateDer::pem_slice_iter(&bytes)
        .map(|cert| cert.map(|c| c.as_ref().to_vec()))
        .collect();
    match certificates {
        Ok(certificates) if !certificates.is_empty() => certificates,
        Ok(_) => {
            checker.fail(key, format!("{} holds no PEM certificate", path.display()));
            Vec::new()
        }
        Err(error) => {
            checker.fail(
                key,
                format!("{} is not valid PEM: {error:?}", path.display()),
            );
            Vec::new()
        }
    }
}
