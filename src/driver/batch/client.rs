//! The client of one provider's batch API (OpenAI's Batch API or Anthropic's Message Batches):
//! submit a batch, read and cancel it, download its results, each call bounded and its errors
//! redacted. Each API's batch object is turned into one [`Snapshot`], so that the run loop does
//! not care which API it polls.

use bytes::Bytes;
use http::{header, HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::protocol::batch::{BatchApi, BatchApiError, BatchObject, LineOutcome};
use crate::protocol::message_batches::{self, MessageBatch};
use crate::protocol::Api;
use crate::record::BatchFailure;
use crate::redact::Redactor;

use crate::driver::HttpClient;

/// Largest response body read (an output file of a full batch can be large).
const MAX_DOWNLOAD_BYTES: usize = 1024 * 1024 * 1024;

/// A batch as drover tracks it, whichever API reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub id: String,
    /// The provider's own status word (`in_progress`, `completed`, `ended`, …).
    pub status: String,
    /// Whether it changes no more.
    pub ended: bool,
    /// Where its results are, once it ended: OpenAI's output and error file ids, or Message
    /// Batches' `results_url`.
    pub results: Vec<String>,
    /// Its request counts as the provider last reported them.
    pub reported_completed: u64,
    pub reported_failed: u64,
    /// The batch's own error messages (validation failures).
    pub problems: Vec<String>,
    /// What a request with no result line ended as.
    pub unanswered: BatchFailure,
}

impl From<BatchObject> for Snapshot {
    fn from(batch: BatchObject) -> Self {
        let counts = batch.request_counts.unwrap_or_default();
        Snapshot {
            ended: batch.is_terminal(),
            results: [batch.output_file_id.clone(), batch.error_file_id.clone()]
                .into_iter()
                .flatten()
                .collect(),
            reported_completed: counts.completed,
            reported_failed: counts.failed,
            problems: batch.error_messages(),
            unanswered: match batch.status.as_str() {
                "failed" => BatchFailure::Failed,
                "expired" => BatchFailure::Expired,
                "cancelled" => BatchFailure::Cancelled,
                _ => BatchFailure::Missing,
            },
            id: batch.id,
            status: batch.status,
        }
    }
}

impl From<MessageBatch> for Snapshot {
    fn from(batch: MessageBatch) -> Self {
        let counts = batch.request_counts;
        Snapshot {
            ended: batch.has_ended(),
            results: batch.results_url.clone().into_iter().collect(),
            reported_completed: counts.succeeded,
            reported_failed: counts.errored + counts.canceled + counts.expired,
            problems: Vec::new(),
            unanswered: if batch.cancel_initiated_at.is_some() {
                BatchFailure::Cancelled
            } else {
                BatchFailure::Missing
            },
            id: batch.id,
            status: batch.processing_status,
        }
    }
}

/// Calls the batch API of one provider.
pub struct BatchClient<'a> {
    pub client: &'a HttpClient,
    /// Which batch API, and the API of its requests.
    pub batch_api: BatchApi,
    pub api: Api,
    /// Base URL up to the version, without a trailing slash.
    pub base_url: &'a str,
    /// The target's key, API-version and scenario headers.
    pub headers: &'a [(HeaderName, HeaderValue)],
    pub redactor: &'a Redactor,
    /// Longest wait for one call.
    pub timeout: std::time::Duration,
}

impl BatchClient<'_> {
    async fn call(
        &self,
        what: &str,
        method: Method,
        path: &str,
        content_type: Option<String>,
        body: Bytes,
    ) -> Result<Bytes, BatchApiError> {
        let url = format!("{}{path}", self.base_url);
        self.call_url(what, method, &url, true, content_type, body)
            .await
    }

    /// One call to `url`, with the target's headers (its key among them) only when `with_headers`.
    async fn call_url(
        &self,
        what: &str,
        method: Method,
        url: &str,
        with_headers: bool,
        content_type: Option<String>,
        body: Bytes,
    ) -> Result<Bytes, BatchApiError> {
        let transport = |message: String| BatchApiError::Transport {
            what: what.to_string(),
            message: self
                .redactor
                .scrub_and_cut(&message, crate::redact::MESSAGE_CHARS),
        };
        let uri: Uri = url
            .parse()
            .map_err(|e| transport(format!("bad URL: {e}")))?;
        let mut builder = Request::builder().method(method).uri(uri);
        if with_headers {
            for (name, value) in self.headers {
                builder = builder.header(name, value);
            }
        }
        if let Some(content_type) = content_type {
            builder = builder.header(header::CONTENT_TYPE, content_type);
        }
        let request = builder
            .body(Full::new(body))
            .map_err(|e| transport(format!("cannot build request: {e}")))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| transport(format!("request failed: {e}")))?;
            let status = response.status();
            let bytes = http_body_util::Limited::new(response.into_body(), MAX_DOWNLOAD_BYTES)
                .collect()
                .await
                .map_err(|e| transport(format!("reading the response failed: {e}")))?
                .to_bytes();
            Ok::<_, BatchApiError>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| transport(format!("no answer within {:?}", self.timeout)))??;
        if status != StatusCode::OK && !status.is_success() {
            let text = String::from_utf8_lossy(&bytes);
            let message = serde_json::from_slice::<Value>(&bytes)
                .ok()
                .and_then(|v| {
                    v.pointer("/error/message")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
                .unwrap_or_else(|| text.into_owned());
            return Err(BatchApiError::Status {
                what: what.to_string(),
                status: status.as_u16(),
                message: self
                    .redactor
                    .scrub_and_cut(&message, crate::redact::MESSAGE_CHARS),
            });
        }
        Ok(bytes)
    }

    fn parse<T: for<'de> Deserialize<'de>>(
        &self,
        what: &str,
        bytes: &[u8],
    ) -> Result<T, BatchApiError> {
        serde_json::from_slice(bytes).map_err(|e| BatchApiError::Protocol {
            what: what.to_string(),
            message: e.to_string(),
        })
    }

    /// Submits one batch of `lines` (one request per line: OpenAI input lines, or Message
    /// Batches request entries): OpenAI's uploads them as a file and creates a batch from it; Message Batches
    /// creates the batch from them at once.
    pub async fn submit(
        &self,
        filename: &str,
        lines: Bytes,
        completion_window: &str,
    ) -> Result<Snapshot, BatchApiError> {
        match self.batch_api {
            BatchApi::OpenAi => {
                let file = self.upload(filename, lines).await?;
                let endpoint = self
                    .api
                    .openai_batch_url()
                    .unwrap_or("/v1/chat/completions");
                Ok(self
                    .create(&file, endpoint, completion_window)
                    .await?
                    .into())
            }
            BatchApi::MessageBatches => {
                let what = "creating the message batch (POST /messages/batches)";
                let bytes = self
                    .call(
                        what,
                        Method::POST,
                        "/messages/batches",
                        Some("application/json".into()),
                        Bytes::from(message_batches::create_body(&lines)),
                    )
                    .await?;
                Ok(self.parse::<MessageBatch>(what, &bytes)?.into())
            }
        }
    }

    /// Reads a batch's state.
    pub async fn status(&self, id: &str) -> Result<Snapshot, BatchApiError> {
        match self.batch_api {
            BatchApi::OpenAi => Ok(self.retrieve(id).await?.into()),
            BatchApi::MessageBatches => {
                let what = format!("reading message batch {id} (GET /messages/batches/{id})");
                let path = format!("/messages/batches/{id}");
                let bytes = self
                    .call(&what, Method::GET, &path, None, Bytes::new())
                    .await?;
                Ok(self.parse::<MessageBatch>(&what, &bytes)?.into())
            }
        }
    }

    /// Asks the provider to cancel a batch.
    pub async fn cancel_batch(&self, id: &str) -> Result<Snapshot, BatchApiError> {
        match self.batch_api {
            BatchApi::OpenAi => Ok(self.cancel(id).await?.into()),
            BatchApi::MessageBatches => {
                let what =
                    format!("cancelling message batch {id} (POST /messages/batches/{id}/cancel)");
                let path = format!("/messages/batches/{id}/cancel");
                let bytes = self
                    .call(&what, Method::POST, &path, None, Bytes::new())
                    .await?;
                Ok(self.parse::<MessageBatch>(&what, &bytes)?.into())
            }
        }
    }

    /// The command a user can run to cancel a batch drover could not cancel.
    pub fn cancel_command(&self, id: &str, auth: &crate::protocol::Auth, key_env: &str) -> String {
        let scheme = if auth.scheme.is_empty() {
            String::new()
        } else {
            format!("{} ", auth.scheme)
        };
        let key = format!("-H \"{}: {scheme}${key_env}\"", auth.header);
        match self.batch_api {
            BatchApi::OpenAi => format!("curl -X POST {}/batches/{id}/cancel {key}", self.base_url),
            BatchApi::MessageBatches => format!(
                "curl -X POST {}/messages/batches/{id}/cancel {key} -H \"anthropic-version: {}\"",
                self.base_url,
                crate::protocol::anthropic::API_VERSION
            ),
        }
    }

    /// Downloads one of a batch's results: an OpenAI file's content, or a `results_url`
    /// (relative to the base URL's origin, or absolute; the target's key goes only to its
    /// own origin).
    pub async fn download(&self, source: &str) -> Result<Bytes, BatchApiError> {
        match self.batch_api {
            BatchApi::OpenAi => self.content(source).await,
            BatchApi::MessageBatches => {
                let origin = crate::driver::request::origin_of(self.base_url);
                let (url, own_origin) = if source.starts_with('/') {
                    (format!("{origin}{source}"), true)
                } else {
                    let same =
                        crate::driver::request::origin_of(source).eq_ignore_ascii_case(origin);
                    (source.to_string(), same)
                };
                let what = format!("downloading the results (GET {url})");
                self.call_url(&what, Method::GET, &url, own_origin, None, Bytes::new())
                    .await
            }
        }
    }

    /// Reads one line of a batch's results.
    pub fn parse_line(&self, line: &str) -> Result<(String, LineOutcome), String> {
        match self.batch_api {
            BatchApi::OpenAi => crate::protocol::batch::parse_line(line, self.api),
            BatchApi::MessageBatches => message_batches::parse_result_line(line),
        }
    }

    /// Uploads a JSONL input file; returns its file id.
    async fn upload(&self, filename: &str, jsonl: Bytes) -> Result<String, BatchApiError> {
        let boundary = format!("drover-{:016x}", rand::random::<u64>());
        let mut body = Vec::with_capacity(jsonl.len() + 512);
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n\
                 --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\
                 Content-Type: application/jsonl\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(&jsonl);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let what = "uploading the batch input (POST /files)";
        let bytes = self
            .call(
                what,
                Method::POST,
                "/files",
                Some(format!("multipart/form-data; boundary={boundary}")),
                Bytes::from(body),
            )
            .await?;
        #[derive(Deserialize)]
        struct FileObject {
            id: String,
        }
        Ok(self.parse::<FileObject>(what, &bytes)?.id)
    }

    /// Creates a batch of chat completions from an uploaded file.
    async fn create(
        &self,
        input_file_id: &str,
        endpoint: &str,
        completion_window: &str,
    ) -> Result<BatchObject, BatchApiError> {
        let what = "creating the batch (POST /batches)";
        let body = json!({
            "input_file_id": input_file_id,
            "endpoint": endpoint,
            "completion_window": completion_window,
            "metadata": { "created_by": "drover" },
        });
        let bytes = self
            .call(
                what,
                Method::POST,
                "/batches",
                Some("application/json".into()),
                Bytes::from(body.to_string()),
            )
            .await?;
        self.parse(what, &bytes)
    }

    async fn retrieve(&self, id: &str) -> Result<BatchObject, BatchApiError> {
        let what = format!("reading batch {id} (GET /batches/{id})");
        let bytes = self
            .call(
                &what,
                Method::GET,
                &format!("/batches/{id}"),
                None,
                Bytes::new(),
            )
            .await?;
        self.parse(&what, &bytes)
    }

    async fn cancel(&self, id: &str) -> Result<BatchObject, BatchApiError> {
        let what = format!("cancelling batch {id} (POST /batches/{id}/cancel)");
        let bytes = self
            .call(
                &what,
                Method::POST,
                &format!("/batches/{id}/cancel"),
                None,
                Bytes::new(),
            )
            .await?;
        self.parse(&what, &bytes)
    }

    /// Downloads a file's content.
    async fn content(&self, file_id: &str) -> Result<Bytes, BatchApiError> {
        let what = format!("downloading file {file_id} (GET /files/{file_id}/content)");
        self.call(
            &what,
            Method::GET,
            &format!("/files/{file_id}/content"),
            None,
            Bytes::new(),
        )
        .await
    }
}
