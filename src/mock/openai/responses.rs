//! The mock's Responses API answers: the whole response object, and its stream of typed events
//! on the same token schedule as every other format (reasoning as a reasoning item's summary,
//! then the message's output text, then `response.completed` or `response.incomplete`).

use bytes::Bytes;
use serde_json::{json, Value};

use super::{answer_parts, unix_now, Job, Step, StreamState};
use crate::mock::faults::Fault;

/// The usage object of a response.
fn usage(job: &Job) -> Value {
    json!({
        "input_tokens": job.prompt_tokens,
        "input_tokens_details": { "cached_tokens": job.cached_tokens.unwrap_or(0) },
        "output_tokens": job.tokens,
        "output_tokens_details": { "reasoning_tokens": job.reasoning_tokens },
        "total_tokens": job.prompt_tokens + u64::from(job.tokens),
    })
}

fn reasoning_item(id: u64, summary: &str) -> Value {
    json!({
        "id": format!("rs_mock_{id}"),
        "type": "reasoning",
        "summary": [{ "type": "summary_text", "text": summary }],
    })
}

fn message_item(id: u64, text: &str, status: &str) -> Value {
    json!({
        "id": format!("msg_mock_{id}"),
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [{ "type": "output_text", "text": text, "annotations": [], "logprobs": [] }],
    })
}

/// The response object: `status` `completed`, or `incomplete` when the output cap cut it;
/// `output` empty while in progress.
fn response_object(job: &Job, id: u64, created: u64, done: bool) -> Value {
    let (reasoning, answer) = answer_parts(job);
    let incomplete = job.finish_reason == "length";
    let mut output = Vec::new();
    if done {
        if job.reasoning_tokens > 0 {
            output.push(reasoning_item(id, &reasoning));
        }
        if job.tokens > job.reasoning_tokens {
            let status = if incomplete {
                "incomplete"
            } else {
                "completed"
            };
            output.push(message_item(id, &answer, status));
        }
    }
    let status = match (done, incomplete) {
        (false, _) => "in_progress",
        (true, false) => "completed",
        (true, true) => "incomplete",
    };
    json!({
        "id": format!("resp_mock_{id}"),
        "object": "response",
        "created_at": created,
        "status": status,
        "error": null,
        "incomplete_details": if done && incomplete { json!({ "reason": "max_output_tokens" }) } else { Value::Null },
        "instructions": null,
        "max_output_tokens": null,
        "model": job.model,
        "output": output,
        "parallel_tool_calls": true,
        "previous_response_id": null,
        "reasoning": { "effort": null, "summary": null },
        "store": false,
        "temperature": 1.0,
        "text": { "format": { "type": "text" } },
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": if done { usage(job) } else { Value::Null },
        "metadata": {},
    })
}

/// A non-streamed response.
pub(super) fn whole_response(job: &Job, id: u64) -> Value {
    response_object(job, id, unix_now(), true)
}

impl StreamState {
    /// One event: `event:` named as its `type`, with the next sequence number.
    fn responses_event(&mut self, kind: &str, mut fields: Value) -> String {
        fields["type"] = json!(kind);
        fields["sequence_number"] = json!(self.sequence);
        self.sequence += 1;
        format!("event: {kind}\ndata: {fields}\n\n")
    }

    /// `response.created` and `response.in_progress`.
    fn responses_opening(&mut self) -> String {
        let response = response_object(&self.job, self.id, self.created, false);
        let mut out = self.responses_event("response.created", json!({ "response": response }));
        let response = response_object(&self.job, self.id, self.created, false);
        out.push_str(
            &self.responses_event("response.in_progress", json!({ "response": response })),
        );
        out
    }

    /// The events that open output item `index`: the reasoning item, or the message and its
    /// text part.
    fn responses_open_item(&mut self, reasoning: bool) -> String {
        let index = u32::from(!reasoning && self.job.reasoning_tokens > 0);
        let id = self.id;
        if reasoning {
            let mut out = self.responses_event(
                "response.output_item.added",
                json!({ "output_index": 0, "item": { "id": format!("rs_mock_{id}"), "type": "reasoning", "summary": [] } }),
            );
            out.push_str(&self.responses_event(
                "response.reasoning_summary_part.added",
                json!({ "item_id": format!("rs_mock_{id}"), "output_index": 0, "summary_index": 0, "part": { "type": "summary_text", "text": "" } }),
            ));
            return out;
        }
        let mut out = self.responses_event(
            "response.output_item.added",
            json!({ "output_index": index, "item": { "id": format!("msg_mock_{id}"), "type": "message", "status": "in_progress", "role": "assistant", "content": [] } }),
        );
        out.push_str(&self.responses_event(
            "response.content_part.added",
            json!({ "item_id": format!("msg_mock_{id}"), "output_index": index, "content_index": 0, "part": { "type": "output_text", "text": "", "annotations": [], "logprobs": [] } }),
        ));
        out
    }

    /// The events that close the reasoning item or the message.
    fn responses_close_item(&mut self, reasoning: bool) -> String {
        let (summary, answer) = answer_parts(&self.job);
        let id = self.id;
        if reasoning {
            let mut out = self.responses_event(
                "response.reasoning_summary_text.done",
                json!({ "item_id": format!("rs_mock_{id}"), "output_index": 0, "summary_index": 0, "text": summary }),
            );
            out.push_str(&self.responses_event(
                "response.reasoning_summary_part.done",
                json!({ "item_id": format!("rs_mock_{id}"), "output_index": 0, "summary_index": 0, "part": { "type": "summary_text", "text": summary } }),
            ));
            out.push_str(&self.responses_event(
                "response.output_item.done",
                json!({ "output_index": 0, "item": reasoning_item(id, &summary) }),
            ));
            return out;
        }
        let index = u32::from(self.job.reasoning_tokens > 0);
        let status = if self.job.finish_reason == "length" {
            "incomplete"
        } else {
            "completed"
        };
        let mut out = self.responses_event(
            "response.output_text.done",
            json!({ "item_id": format!("msg_mock_{id}"), "output_index": index, "content_index": 0, "text": answer, "logprobs": [] }),
        );
        out.push_str(&self.responses_event(
            "response.content_part.done",
            json!({ "item_id": format!("msg_mock_{id}"), "output_index": index, "content_index": 0, "part": { "type": "output_text", "text": answer, "annotations": [], "logprobs": [] } }),
        ));
        out.push_str(&self.responses_event(
            "response.output_item.done",
            json!({ "output_index": index, "item": message_item(id, &answer, status) }),
        ));
        out
    }

    /// The next frame of a Responses API stream.
    pub(super) async fn next_responses_frame(&mut self) -> Option<Result<Bytes, std::io::Error>> {
        let reasoning = self.job.reasoning_tokens as usize;
        let frame = match self.step {
            Step::Prelude => {
                self.pass_prelude().await;
                self.responses_opening()
            }
            Step::Token(i) => {
                self.emit_token(i).await;
                let mut out = String::new();
                if i == 0 && self.job.prelude.is_none() {
                    out.push_str(&self.responses_opening());
                }
                if i == 0 {
                    out.push_str(&self.responses_open_item(reasoning > 0));
                } else if i == reasoning {
                    out.push_str(&self.responses_close_item(true));
                    out.push_str(&self.responses_open_item(false));
                }
                let word = self.job.vocabulary.word(i).to_string();
                let id = self.id;
                let delta = if i < reasoning {
                    self.responses_event(
                        "response.reasoning_summary_text.delta",
                        json!({ "item_id": format!("rs_mock_{id}"), "output_index": 0, "summary_index": 0, "delta": word }),
                    )
                } else {
                    let index = u32::from(reasoning > 0);
                    self.responses_event(
                        "response.output_text.delta",
                        json!({ "item_id": format!("msg_mock_{id}"), "output_index": index, "content_index": 0, "delta": word, "logprobs": [] }),
                    )
                };
                out.push_str(&delta);
                out
            }
            Step::Finish | Step::Usage | Step::Done => {
                self.step = Step::End;
                let mut out = String::new();
                if self.job.tokens > 0 {
                    let last_was_reasoning = reasoning >= self.job.tokens as usize;
                    out.push_str(&self.responses_close_item(last_was_reasoning));
                }
                if self.fault != Some(Fault::NoDone) {
                    let kind = if self.job.finish_reason == "length" {
                        "response.incomplete"
                    } else {
                        "response.completed"
                    };
                    let response = response_object(&self.job, self.id, self.created, true);
                    out.push_str(&self.responses_event(kind, json!({ "response": response })));
                }
                out
            }
            Step::End => return None,
        };
        Some(Ok(Bytes::from(frame)))
    }
}
