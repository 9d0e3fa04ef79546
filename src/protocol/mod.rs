//! Wire formats: the OpenAI-compatible chat-completions API and the Server-Sent Events stream it
//! uses. Building requests and parsing responses only; sending and timing live in `driver`.

pub mod openai;
pub mod sse;
