//! Runs a `batch-api` target through its provider's batch API (OpenAI's Batch API, or
//! Anthropic's Message Batches for an `api = "anthropic"` target): the same requests the
//! scenario would send live (request k has the same class and prompt as on every other target),
//! submitted at the start as batches split to the provider's limits, polled with backoff until
//! each batch ends, then matched back to their requests by `custom_id`. Every request becomes
//! one [`RequestRecord`] whose end-to-end latency is its batch's turnaround (submission start to
//! results downloaded).
//!
//! An interrupt cancels every batch still running (`POST …/{id}/cancel`), or prints the command
//! that does, and counts its requests as aborted.

mod client;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::protocol::batch::{input_line, BatchApi, BatchApiError, LineOutcome};
use crate::protocol::message_batches::request_entry;
use crate::record::{BatchFailure, ErrorClass, Failure, RequestRecord, TokenSource};
use crate::results::BatchResults;
use crate::spend::Reservation;
use crate::traffic::planned_requests;

use super::{single_request_body, stopped, Generator};
use client::{BatchClient, Snapshot};

/// Messages kept per batch about unknown or malformed lines.
const PROBLEMS_KEPT: usize = 5;

/// One request of a batch.
struct Pending {
    k: u64,
    class: usize,
    stage: usize,
    warmup: bool,
    /// The `max_tokens` it asked for.
    max_tokens: Option<u32>,
    /// Its projected cost, reserved under the spend caps.
    reservation: Option<Reservation>,
    /// Bytes of its line in the batch's input.
    request_bytes: u64,
}

/// Gives back the reservations of requests that were never answered.
fn release(generator: &Generator, pending: &mut [Pending]) {
    if let Some(guard) = &generator.guard {
        for request in pending {
            if let Some(reservation) = request.reservation.take() {
                guard.settle(reservation, 0.0);
            }
        }
    }
}

fn custom_id(k: u64) -> String {
    format!("drover-{k}")
}

/// A batch's input, split off the whole.
struct Chunk {
    pending: Vec<Pending>,
    jsonl: Vec<u8>,
}

/// Splits the input lines into batches of at most `max_requests` lines and `max_bytes` bytes.
fn chunks(lines: Vec<(Pending, String)>, max_requests: u64, max_bytes: u64) -> Vec<Chunk> {
    let mut chunks: Vec<Chunk> = Vec::new();
    for (pending, line) in lines {
        let size = line.len() as u64 + 1;
        let fits = chunks.last().is_some_and(|c| {
            (c.pending.len() as u64) < max_requests && c.jsonl.len() as u64 + size <= max_bytes
        });
        if !fits {
            chunks.push(Chunk {
                pending: Vec::new(),
                jsonl: Vec::new(),
            });
        }
        let chunk = chunks.last_mut().expect("just pushed");
        chunk.jsonl.extend_from_slice(line.as_bytes());
        chunk.jsonl.push(b'\n');
        chunk.pending.push(pending);
    }
    chunks
}

/// Runs the target's batches; the run's books count every request submitted, recorded or
/// aborted by an interrupt.
pub(super) async fn run(mut generator: Generator) -> Vec<BatchResults> {
    let target = generator.target.clone();
    let options = target.plan.batch.clone();
    let lines = batch_lines(&generator);
    generator.ledger.schedule(target.index, lines.len() as u64);
    let headers: Vec<_> = target.api_headers().collect();
    let client = BatchClient {
        client: &target.client,
        // Validation refuses the batch-api mode for an API without a batch API.
        batch_api: target.plan.api.batch_api().unwrap_or(BatchApi::OpenAi),
        api: target.plan.api,
        base_url: &target.base_url,
        headers: &headers,
        redactor: &target.redactor,
        timeout: target.plan.timeouts.total,
    };
    let (mut reports, mut running) = submit(&mut generator, &client, lines).await;
    let submitted_at = Instant::now();
    let show = |running: &[Running]| {
        let status = live_status(running, submitted_at.elapsed());
        generator.ledger.set_batch_status(target.index, status);
    };
    show(&running);

    // Poll every running batch until it ends, with one backoff for all.
    let mut wait = options.poll;
    let deadline = Instant::now() + options.timeout;
    while running.iter().any(|(batch, ..)| !batch.ended) {
        let interrupted = tokio::select! {
            biased;
            _ = stopped(&mut generator.stop) => true,
            _ = tokio::time::sleep(wait) => false,
        };
        if interrupted || Instant::now() >= deadline {
            cancel_unfinished(&generator, &client, &mut running, interrupted).await;
            if interrupted {
                generator.ledger.set_batch_status(target.index, None);
                for (_, _, report, _) in running {
                    reports.push(report);
                }
                return reports;
            }
            break;
        }
        for (batch, _, report, submitted) in running.iter_mut().filter(|(b, ..)| !b.ended) {
            match client.status(&batch.id).await {
                Ok(now) => {
                    report
                        .status_times_s
                        .entry(now.status.clone())
                        .or_insert_with(|| submitted.elapsed().as_secs_f64());
                    *batch = now;
                }
                // A failed status read is retried at the next poll; it is noted once.
                Err(error) => {
                    if report.problems.len() < PROBLEMS_KEPT {
                        report.problems.push(error.to_string());
                    }
                }
            }
        }
        show(&running);
        wait = (wait * 2).min(options.max_poll);
    }
    generator.ledger.set_batch_status(target.index, None);

    for (batch, pending, mut report, submitted) in running {
        finish(&generator, &client, &batch, pending, &mut report, submitted).await;
        reports.push(report);
    }
    reports
}

/// A batch that was created, with its requests, its report so far and when it was submitted.
type Running = (Snapshot, Vec<Pending>, BatchResults, Instant);

/// What the running batches are doing, for a live view: `2 batches (in_progress 2) for 12s:
/// 120 done, 2 failed of 500 as the provider counts`; `None` without a batch.
fn live_status(running: &[Running], elapsed: Duration) -> Option<String> {
    if running.is_empty() {
        return None;
    }
    let mut statuses: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for (batch, ..) in running {
        *statuses.entry(batch.status.as_str()).or_default() += 1;
    }
    let statuses: Vec<String> = statuses
        .iter()
        .map(|(status, count)| format!("{status} {count}"))
        .collect();
    let total: usize = running.iter().map(|(_, pending, ..)| pending.len()).sum();
    let completed: u64 = running
        .iter()
        .map(|(batch, ..)| batch.reported_completed)
        .sum();
    let failed: u64 = running
        .iter()
        .map(|(batch, ..)| batch.reported_failed)
        .sum();
    Some(format!(
        "{} batch{} ({}) for {}s: {completed} done, {failed} failed of {total} as the provider counts",
        running.len(),
        if running.len() == 1 { "" } else { "es" },
        statuses.join(", "),
        elapsed.as_secs()
    ))
}

/// Every request of the target that goes through its batch API, as one line (an OpenAI input
/// line, or a Message Batches request entry), each with its spend reservation (under a cap, only
/// the requests whose projected cost still fits).
fn batch_lines(generator: &Generator) -> Vec<(Pending, String)> {
    let target = &generator.target;
    // Under a spend cap, a batch holds only the requests whose projected cost still fits.
    let mut budget_left = true;
    // Validation refuses the Batch API for an API it does not carry.
    let batch_url = target
        .plan
        .api
        .openai_batch_url()
        .unwrap_or("/v1/chat/completions");
    // Validation makes sure a batch's closed loop has a request count, so the plan is known.
    let mut planned = Vec::new();
    planned_requests(
        &generator.load,
        generator.shard,
        generator.seed,
        |k, stage, warmup| {
            planned.push((k, stage, warmup));
            true
        },
    );
    planned
        .into_iter()
        .filter_map(|(k, stage, warmup)| {
            let (class, max_tokens, body) = single_request_body(generator, k);
            // A routed target sends only the classes its rules pick through the Batch API.
            if !target.plan.class_via_batch(class) || !budget_left {
                return None;
            }
            let reservation = match (&generator.guard, &generator.sizer) {
                (Some(guard), Some(sizer)) => {
                    let (_, usage) = sizer.size(
                        &generator.classes,
                        generator.trace.as_deref(),
                        generator.seed,
                        k,
                    );
                    let estimate = target
                        .plan
                        .price_for(class)
                        .map_or(0.0, |p| p.cost(&usage).total());
                    match guard.try_reserve(target.index, estimate) {
                        Some(reservation) => Some(reservation),
                        None => {
                            budget_left = false;
                            return None;
                        }
                    }
                }
                _ => None,
            };
            let mut body: serde_json::Value =
                serde_json::from_slice(&body).expect("drover's own request bodies are JSON");
            // A routed target's own mode may be streaming; a batch line never streams (and a
            // Message Batches request takes the non-streaming parameters only).
            if let Some(fields) = body.as_object_mut() {
                fields.insert("stream".into(), serde_json::Value::Bool(false));
                fields.remove("stream_options");
                if target.plan.api == crate::protocol::Api::Anthropic {
                    fields.remove("stream");
                }
            }
            let line = match target.plan.api.batch_api() {
                Some(BatchApi::MessageBatches) => request_entry(&custom_id(k), &body),
                _ => input_line(&custom_id(k), batch_url, &body),
            };
            Some((
                Pending {
                    k,
                    class,
                    stage,
                    warmup,
                    max_tokens,
                    reservation,
                    request_bytes: line.len() as u64,
                },
                line,
            ))
        })
        .collect()
}

/// Uploads and creates the batches (split to the provider's limits): those created are
/// returned running; those that could not be created are reported, their requests recorded as
/// failed (or aborted, on an interrupt).
async fn submit(
    generator: &mut Generator,
    client: &BatchClient<'_>,
    lines: Vec<(Pending, String)>,
) -> (Vec<BatchResults>, Vec<Running>) {
    let target = generator.target.clone();
    let options = target.plan.batch.clone();
    let mut reports = Vec::new();
    let mut running = Vec::new();
    for (number, chunk) in chunks(lines, options.max_requests, options.max_bytes)
        .into_iter()
        .enumerate()
    {
        let submitted = Instant::now();
        let filename = format!("drover-{}-{number}.jsonl", target.plan.name);
        let created = client.submit(
            &filename,
            Bytes::from(chunk.jsonl.clone()),
            &options.completion_window,
        );
        let created = tokio::select! {
            biased;
            _ = stopped(&mut generator.stop) => None,
            created = created => Some(created),
        };
        let mut report = BatchResults {
            requests: chunk.pending.len() as u64,
            submit_s: submitted.elapsed().as_secs_f64(),
            ..BatchResults::default()
        };
        let mut chunk = chunk;
        match created {
            None => {
                generator
                    .ledger
                    .abort(target.index, chunk.pending.len() as u64);
                release(generator, &mut chunk.pending);
                report.status = "not_created".into();
                report
                    .problems
                    .push("interrupted before the batch was created".into());
                reports.push(report);
            }
            Some(Err(error)) => {
                report.status = "not_created".into();
                report.problems.push(error.to_string());
                let done = Instant::now();
                for pending in &mut chunk.pending {
                    let failure = Failure {
                        class: ErrorClass::Batch(BatchFailure::Api),
                        status: match &error {
                            BatchApiError::Status { status, .. } => Some(*status),
                            _ => None,
                        },
                        message: error.to_string(),
                        retry_after: None,
                    };
                    send(generator, pending, submitted, done, Err(failure)).await;
                }
                reports.push(report);
            }
            Some(Ok(batch)) => {
                report.id = Some(batch.id.clone());
                report.status = batch.status.clone();
                report
                    .status_times_s
                    .insert(batch.status.clone(), report.submit_s);
                running.push((batch, chunk.pending, report, submitted));
            }
        }
    }
    (reports, running)
}

/// Cancels every batch still running: on an interrupt its requests are aborted; on the batch
/// timeout it is marked cancelled and finished like any other.
async fn cancel_unfinished(
    generator: &Generator,
    client: &BatchClient<'_>,
    running: &mut [Running],
    interrupted: bool,
) {
    let target = &generator.target;
    for (batch, pending, report, _) in running.iter_mut().filter(|(b, ..)| !b.ended) {
        let why = if interrupted {
            "interrupted"
        } else {
            "batch timeout reached"
        };
        match client.cancel_batch(&batch.id).await {
            Ok(cancelled) => {
                generator.notices.send(&format!(
                    "{why}: cancelled batch {} of target \"{}\" (status now {})",
                    batch.id, target.plan.name, cancelled.status
                ));
                report.status = cancelled.status;
            }
            Err(error) => {
                generator.notices.send(&format!(
                    "{why}: could not cancel batch {} of target \"{}\" ({error}); cancel it with:\n  {}",
                    batch.id,
                    target.plan.name,
                    client.cancel_command(
                        &batch.id,
                        &target.plan.auth,
                        target.plan.api_key_env.as_deref().unwrap_or("API_KEY")
                    )
                ));
                report.problems.push(error.to_string());
            }
        }
        report
            .problems
            .push(format!("{why}: batch cancelled before it ended"));
        if interrupted {
            generator.ledger.abort(target.index, pending.len() as u64);
            release(generator, pending);
            pending.clear();
        } else {
            // Its results are not waited for: what had no line is counted as cancelled.
            batch.ended = true;
            batch.results.clear();
            batch.unanswered = BatchFailure::Cancelled;
            batch.status = "cancelled".into();
        }
    }
}

/// Downloads an ended batch's files, matches their lines to its requests and records each one.
async fn finish(
    generator: &Generator,
    client: &BatchClient<'_>,
    batch: &Snapshot,
    mut pending: Vec<Pending>,
    report: &mut BatchResults,
    submitted: Instant,
) {
    report.status = batch.status.clone();
    report.reported_completed = batch.reported_completed;
    report.reported_failed = batch.reported_failed;
    report.problems.extend(batch.problems.iter().cloned());
    let mut outcomes: HashMap<String, LineOutcome> = HashMap::new();
    let known: HashMap<String, ()> = pending.iter().map(|p| (custom_id(p.k), ())).collect();
    for file in &batch.results {
        match client.download(file).await {
            Ok(bytes) => {
                for (number, line) in String::from_utf8_lossy(&bytes).lines().enumerate() {
                    if line.trim().is_empty() {
                        continue;
                    }
                    match client.parse_line(line) {
                        Ok((id, outcome)) if known.contains_key(&id) => {
                            outcomes.insert(id, outcome);
                        }
                        Ok((id, _)) => {
                            report.unknown_custom_ids += 1;
                            if report.problems.len() < PROBLEMS_KEPT {
                                report.problems.push(format!(
                                    "file {file} line {}: unknown custom_id \"{id}\"",
                                    number + 1
                                ));
                            }
                        }
                        Err(message) => {
                            report.malformed_lines += 1;
                            if report.problems.len() < PROBLEMS_KEPT {
                                report
                                    .problems
                                    .push(format!("file {file} line {}: {message}", number + 1));
                            }
                        }
                    }
                }
            }
            Err(error) => report.problems.push(error.to_string()),
        }
    }
    let done = Instant::now();
    report.turnaround_s = Some(done.duration_since(submitted).as_secs_f64());
    let unanswered = batch.unanswered;
    for request in &mut pending {
        let outcome = match outcomes.remove(&custom_id(request.k)) {
            Some(LineOutcome::Success { usage, text }) => {
                report.succeeded += 1;
                Ok((usage, text))
            }
            Some(LineOutcome::Failure { status, message }) => {
                report.failed += 1;
                Err(Failure {
                    class: match status {
                        Some(429) => ErrorClass::Throttled,
                        Some(status) => ErrorClass::HttpStatus(status),
                        None => ErrorClass::Batch(BatchFailure::LineError),
                    },
                    status,
                    message: generator.target.redactor.redact(&message),
                    retry_after: None,
                })
            }
            Some(LineOutcome::Unprocessed(why)) => {
                report.failed += 1;
                Err(Failure {
                    class: ErrorClass::Batch(why),
                    status: None,
                    message: format!(
                        "batch {}: {} was {} before it was processed",
                        batch.id,
                        custom_id(request.k),
                        why.name()
                    ),
                    retry_after: None,
                })
            }
            None => {
                report.missing += 1;
                Err(Failure {
                    class: ErrorClass::Batch(unanswered),
                    status: None,
                    message: format!(
                        "batch {} ended {}: no line for {} in its output or error file",
                        batch.id,
                        batch.status,
                        custom_id(request.k)
                    ),
                    retry_after: None,
                })
            }
        };
        send(generator, request, submitted, done, outcome).await;
    }
}

/// Hands one request's record to the recorder.
async fn send(
    generator: &Generator,
    request: &mut Pending,
    submitted: Instant,
    done: Instant,
    outcome: Result<(Option<crate::record::Usage>, String), Failure>,
) {
    let (usage, text, outcome) = match outcome {
        Ok((usage, text)) => (usage, text, Ok(())),
        Err(failure) => (None, String::new(), Err(failure)),
    };
    let (output_tokens, token_source) = match usage {
        Some(usage) => (usage.completion_tokens, TokenSource::Usage),
        None => (
            generator.target.plan.tokenizer.count(&text),
            TokenSource::Tokenizer,
        ),
    };
    let record = RequestRecord {
        index: request.k,
        target: generator.target.index,
        class: request.class,
        stage: request.stage,
        intended: submitted,
        started: submitted,
        sent: submitted,
        connection: Default::default(),
        connection_id: None,
        stream_wait: None,
        headers: None,
        first_event: None,
        first_token: None,
        first_answer: None,
        empty_preludes: 0,
        keepalive_comments: 0,
        reasoning_first: false,
        detail: Default::default(),
        done,
        token_gaps: Vec::new(),
        output_tokens,
        input_tokens: usage.map(|u| u.prompt_tokens),
        cached_input_tokens: usage.map_or(0, |u| u.cached_tokens),
        token_source,
        content_events: 0,
        client_tokens: None,
        warmup: request.warmup,
        outcome,
        retried: Vec::new(),
        retry_wait: Duration::ZERO,
        via_batch_api: true,
        request_bytes: request.request_bytes,
        shape: crate::record::RequestShape {
            max_tokens: request
                .max_tokens
                .filter(|_| generator.target.plan.output_limit.field().is_some()),
            inputs: if generator.target.plan.api == crate::protocol::Api::Embeddings {
                generator.classes[request.class].inputs_per_request.max(1)
            } else {
                0
            },
            ..Default::default()
        },
        answer: None,
    };
    super::settle(
        generator.guard.as_deref(),
        request.reservation.take(),
        &generator.target,
        &record,
    );
    if generator.records.send(record).await.is_ok() {
        generator.ledger.hand(generator.target.index, 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_split_by_count_and_by_bytes() {
        let lines = |n: u64, size: usize| -> Vec<(Pending, String)> {
            (0..n)
                .map(|k| {
                    (
                        Pending {
                            k,
                            class: 0,
                            stage: 0,
                            warmup: false,
                            max_tokens: None,
                            reservation: None,
                            request_bytes: size as u64,
                        },
                        "x".repeat(size),
                    )
                })
                .collect()
        };
        let by_count = chunks(lines(10, 9), 4, 1_000_000);
        assert_eq!(
            by_count.iter().map(|c| c.pending.len()).collect::<Vec<_>>(),
            vec![4, 4, 2]
        );
        // Lines of 9 bytes plus a newline: three fit in 30 bytes, not four.
        let by_bytes = chunks(lines(10, 9), 100, 30);
        assert_eq!(
            by_bytes.iter().map(|c| c.pending.len()).collect::<Vec<_>>(),
            vec![3, 3, 3, 1]
        );
        assert!(by_bytes.iter().all(|c| c.jsonl.len() <= 30));
        let ids: Vec<u64> = by_bytes
            .iter()
            .flat_map(|c| c.pending.iter().map(|p| p.k))
            .collect();
        assert_eq!(ids, (0..10).collect::<Vec<_>>());
    }
}
