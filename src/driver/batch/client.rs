//! The Batch API client of one provider: upload the input file, create the batch, poll its
//! status and download its output and error files, each call bounded and its errors redacted.

use bytes::Bytes;
use http::{header, HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::protocol::batch::{BatchApiError, BatchObject};
use crate::redact::Redactor;

use crate::driver::HttpClient;

/// Largest response body read (an output file of a full batch can be large).
const MAX_DOWNLOAD_BYTES: usize = 1024 * 1024 * 1024;

/// Calls the Batch API of one provider.
pub struct BatchClient<'a> {
    pub client: &'a HttpClient,
    /// Base URL up to the version, without a trailing slash.
    pub base_url: &'a str,
    pub authorization: Option<&'a HeaderValue>,
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
        let transport = |message: String| BatchApiError::Transport {
            what: what.to_string(),
            message: self
                .redactor
                .scrub_and_cut(&message, crate::redact::MESSAGE_CHARS),
        };
        let uri: Uri = format!("{}{path}", self.base_url)
            .parse()
            .map_err(|e| transport(format!("bad URL: {e}")))?;
        let mut builder = Request::builder().method(method).uri(uri);
        for (name, value) in self.headers {
            builder = builder.header(name, value);
        }
        if let Some(auth) = self.authorization {
            builder = builder.header(header::AUTHORIZATION, auth);
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

    /// Uploads a JSONL input file; returns its file id.
    pub async fn upload(&self, filename: &str, jsonl: Bytes) -> Result<String, BatchApiError> {
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
    pub async fn create(
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

    pub async fn retrieve(&self, id: &str) -> Result<BatchObject, BatchApiError> {
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

    pub async fn cancel(&self, id: &str) -> Result<BatchObject, BatchApiError> {
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
    pub async fn content(&self, file_id: &str) -> Result<Bytes, BatchApiError> {
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
