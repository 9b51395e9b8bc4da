//! TLS on every listener from one certificate: OTLP/HTTP, the API and OTLP/gRPC answer over
//! TLS to clients trusting the certificate, and a plain-text client gets nothing.

#![allow(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]

use std::process::Command;

use threadline_proto::opentelemetry::proto::collector::trace::v1::trace_service_client::TraceServiceClient;
use threadline_testsuite::generate::{self, Shape};
use threadline_testsuite::server::{Options, TempDir, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_listener_speaks_tls_with_the_configured_certificate() {
    let dir = TempDir::new("tls").unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let (ca, ca_key) = (dir.path().join("ca.pem"), dir.path().join("ca.key"));
    let (csr, ext) = (dir.path().join("leaf.csr"), dir.path().join("leaf.ext"));
    std::fs::write(
        &ext,
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    // A test CA, and a server certificate it signs.
    let p = |path: &std::path::Path| path.to_str().unwrap().to_owned();
    for args in [
        vec![
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=threadline-test-ca",
            "-keyout",
            &p(&ca_key),
            "-out",
            &p(&ca),
        ],
        vec![
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            &p(&key),
            "-out",
            &p(&csr),
        ],
        vec![
            "x509",
            "-req",
            "-in",
            &p(&csr),
            "-CA",
            &p(&ca),
            "-CAkey",
            &p(&ca_key),
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            &p(&ext),
            "-out",
            &p(&cert),
        ],
    ] {
        let made = Command::new("openssl").args(&args).output().unwrap();
        assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    }
    let server = TestServer::start_with(
        env!("CARGO_BIN_EXE_threadline").as_ref(),
        Options {
            config: Some(format!(
                "version = 1\n[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
                cert.display(),
                key.display()
            )),
            ..Options::default()
        },
    )
    .unwrap();
    let pem = std::fs::read(&ca).unwrap();
    let https = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap();

    let body = generate::otlp_protobuf(Shape { traces: 2, services: 2, seed: 5 });
    let url = format!("https://localhost:{}/v1/traces", server.addrs.otlp_http.port());
    let response = https
        .post(&url)
        .header("content-type", "application/x-protobuf")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // Plain HTTP to a TLS listener gets no answer.
    let plain = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}/v1/traces", server.addrs.otlp_http.port()))
        .header("content-type", "application/x-protobuf")
        .body(body)
        .send()
        .await;
    assert!(plain.is_err(), "{plain:?}");

    // gRPC over TLS.
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(&pem))
        .domain_name("localhost");
    let channel = tonic::transport::Endpoint::from_shared(format!(
        "https://localhost:{}",
        server.addrs.otlp_grpc.port()
    ))
    .unwrap()
    .tls_config(tls)
    .unwrap()
    .connect()
    .await
    .unwrap();
    TraceServiceClient::new(channel)
        .export(generate::otlp_request(Shape { traces: 2, services: 2, seed: 6 }))
        .await
        .unwrap();

    // The API over TLS reads both back.
    for seed in [5, 6] {
        let trace = hex::encode(generate::trace_id(seed, 1));
        let url = format!("https://localhost:{}/api/v1/traces/{trace}", server.addrs.api.port());
        let response = https.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200, "seed {seed}");
    }
}

#[test]
fn a_certificate_without_its_key_is_refused() {
    let dir = TempDir::new("tls-half").unwrap();
    let config = dir.path().join("threadline.toml");
    std::fs::write(&config, "version = 1\n[tls]\ncert_file = \"/nonexistent/cert.pem\"\n").unwrap();
    let (code, stderr) = threadline_testsuite::server::run_to_exit(
        env!("CARGO_BIN_EXE_threadline").as_ref(),
        &["serve", "--config", config.to_str().unwrap()],
        &[],
        std::time::Duration::from_secs(20),
    )
    .unwrap();
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("tls.cert_file and tls.key_file go together"), "{stderr}");
}
