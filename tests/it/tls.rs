//! TLS: certificates are verified by default, a scenario can trust an extra CA, and skipping
//! verification works only when asked for and is warned about; a slow handshake is attributed to
//! TLS in the timing breakdown, not to the server's TTFT. The server is a self-signed TLS
//! endpoint on 127.0.0.1 started by the test.

use crate::common;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use common::{run_scenario_in, summary};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

const STREAM: &str = "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":1}}\n\ndata: [DONE]\n\n";

/// Starts an HTTPS server with a fresh self-signed certificate for 127.0.0.1; returns its port
/// and the certificate in PEM.
async fn start_tls_server() -> (u16, String) {
    start_tls_server_holding_handshakes(std::time::Duration::ZERO).await
}

/// [`start_tls_server`], holding each TLS handshake for `hold` after the TCP accept.
async fn start_tls_server_holding_handshakes(hold: std::time::Duration) -> (u16, String) {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![certified.cert.der().clone()], key)
    .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                tokio::time::sleep(hold).await;
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let service = service_fn(|_request| async {
                    Ok::<_, Infallible>(
                        http::Response::builder()
                            .header("content-type", "text/event-stream")
                            .body(Full::new(Bytes::from_static(STREAM.as_bytes())))
                            .unwrap(),
                    )
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (port, certified.cert.pem())
}

fn scenario(port: u16, tls_line: &str) -> String {
    format!(
        "[[targets]]\nname = \"tls\"\nmodel = \"m\"\nbase_url = \"https://127.0.0.1:{port}/v1\"\n{tls_line}\n\n[[classes]]\nname = \"c\"\ninput_tokens = 4\n\n[load]\nkind = \"closed\"\nusers = 2\nrequests = 6\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_certificate_is_rejected_by_default() {
    let (port, _) = start_tls_server().await;
    let dir = tempfile::tempdir().unwrap();
    let results = run_scenario_in(dir.path(), &scenario(port, "")).await;
    let all = summary(&results);
    assert_eq!(all.errors.get("connect"), Some(&6), "{:?}", all.errors);
    let sample = &all.error_samples["connect"][0];
    assert!(sample.contains("certificate"), "{sample}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_file_makes_the_certificate_trusted() {
    let (port, pem) = start_tls_server().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), pem).unwrap();
    let results = run_scenario_in(dir.path(), &scenario(port, "ca_file = \"ca.pem\"")).await;
    let all = summary(&results);
    assert_eq!(all.requests.succeeded, 6, "{:?}", all.error_samples);
    assert_eq!(all.tokens.output, 6);
    assert!(results.warnings.is_empty(), "{:?}", results.warnings);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skipping_verification_is_explicit_and_warned_about() {
    let (port, _) = start_tls_server().await;
    let dir = tempfile::tempdir().unwrap();
    let results = run_scenario_in(dir.path(), &scenario(port, "insecure_skip_verify = true")).await;
    assert_eq!(summary(&results).requests.succeeded, 6);
    assert!(
        results
            .warnings
            .iter()
            .any(|w| w.contains("TLS certificate verification was OFF")),
        "{:?}",
        results.warnings
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_tls_handshake_is_attributed_to_tls_and_a_reused_connection_has_none() {
    let hold = std::time::Duration::from_millis(200);
    let (port, pem) = start_tls_server_holding_handshakes(hold).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), pem).unwrap();
    // One user: the first request opens the connection, the next two reuse it.
    let text = scenario(port, "ca_file = \"ca.pem\"")
        .replace("users = 2", "users = 1")
        .replace("requests = 6", "requests = 3");
    let results = run_scenario_in(dir.path(), &text).await;
    let all = summary(&results);
    assert_eq!(all.requests.succeeded, 3, "{:?}", all.error_samples);
    let connections = all.connections.as_ref().expect("connection counts");
    assert_eq!(
        (
            connections.opened,
            connections.reused,
            connections.tls_handshakes
        ),
        (1, 2, 1)
    );
    let tls = common::stat(all, "tls_handshake");
    assert_eq!(tls.count, 1, "one handshake, on the first request only");
    assert!(tls.min >= 200.0 && tls.max < 2_000.0, "{tls:?}");
    let setup = common::stat(all, "connection_setup");
    assert!(setup.min >= tls.min, "{setup:?} vs {tls:?}");
    // The server answers at once: TTFT and E2E start once the connection is ready.
    let ttft = common::stat(all, "ttft");
    assert_eq!(ttft.count, 3);
    assert!(ttft.max < 150.0, "the handshake leaked into TTFT: {ttft:?}");
    assert!(common::stat(all, "e2e").max < 150.0);
}

#[test]
fn a_ca_file_that_is_not_pem_is_a_scenario_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), "not a certificate").unwrap();
    let text = scenario(443, "ca_file = \"ca.pem\"");
    let error = drover::scenario::parse(&text, &dir.path().join("s.toml"))
        .unwrap_err()
        .to_string();
    assert!(error.contains("s.toml:5:11: targets[0].ca_file"), "{error}");
    assert!(error.contains("holds no PEM certificate"), "{error}");
}
