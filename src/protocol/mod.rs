//! Wire formats: the OpenAI-compatible chat-completions API, the Anthropic Messages API, the
//! Server-Sent Events stream both use, and the asynchronous Batch API (whose few calls are made here; the timing of chat
//! requests lives in `driver`).

pub mod anthropic;
pub mod batch;
pub mod openai;
pub mod sse;
