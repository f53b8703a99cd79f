//! `cargo xtask verify --base-url https://…` as against a hosted InsForge: the sample app
//! behind a TLS-terminating proxy with a CA made here, trusted through `SSL_CERT_FILE`. A CA
//! that did not sign the certificate, or a host name it does not list, fails the run (exit 2)
//! with a message that names the cause — never a fallback to plain HTTP.

#![allow(clippy::unwrap_used)] // Test helpers: a panic is the failure report.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use clerk_token::Secret;
use harness::TestDatabase;
use harness::testing::pki::{TestPki, make_pki};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// Terminates TLS on 127.0.0.1:<free port> and pipes each connection to `upstream` in plain.
async fn tls_proxy(pki: &TestPki, upstream: SocketAddr) -> SocketAddr {
    let certs = vec![CertificateDer::from_pem_slice(pki.server_cert_pem.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(pki.server_key_pem.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client that refuses the certificate ends the handshake: nothing to pipe.
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let Ok(mut plain) = TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    addr
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

async fn verify(state_dir: &Path, base_url: &str, secret: &str, ca_file: &Path) -> Run {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["verify", "--base-url", base_url, "--jwt-secret", secret])
        .env("INSFORGE_RLS_STATE_DIR", state_dir)
        .env("SSL_CERT_FILE", ca_file)
        .env_remove("SSL_CERT_DIR")
        .output()
        .await
        .unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn verify_over_https_trusts_ssl_cert_file_and_refuses_a_wrong_ca_or_host() {
    let db = TestDatabase::create().await.unwrap();
    let secret = Secret::generate();
    let mut config = todo_app::AppConfig::new(db.app_target().url(), secret.clone());
    config.bind = "127.0.0.1:0".parse().unwrap();
    let app = todo_app::spawn(config).await.unwrap();

    let pki = make_pki("insforge-rls test CA").unwrap();
    let proxy = tls_proxy(&pki, app.addr).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &pki.ca_pem).unwrap();
    let other_ca = dir.path().join("other-ca.pem");
    std::fs::write(&other_ca, make_pki("someone else's CA").unwrap().ca_pem).unwrap();
    let state_dir = dir.path().join("state");
    let https = format!("https://localhost:{}", proxy.port());

    let ok = verify(&state_dir, &https, secret.expose(), &ca_file).await;
    assert_eq!(ok.code, Some(0), "{}{}", ok.stdout, ok.stderr);
    assert!(ok.stdout.contains(&https), "{}", ok.stdout);

    let wrong_ca = verify(&state_dir, &https, secret.expose(), &other_ca).await;
    assert_eq!(
        wrong_ca.code,
        Some(2),
        "{}{}",
        wrong_ca.stdout,
        wrong_ca.stderr
    );
    assert!(
        wrong_ca.stderr.contains("not signed by a trusted CA"),
        "{}",
        wrong_ca.stderr
    );

    let by_ip = format!("https://127.0.0.1:{}", proxy.port());
    let wrong_host = verify(&state_dir, &by_ip, secret.expose(), &ca_file).await;
    assert_eq!(
        wrong_host.code,
        Some(2),
        "{}{}",
        wrong_host.stdout,
        wrong_host.stderr
    );
    assert!(
        wrong_host.stderr.contains("does not name this host"),
        "{}",
        wrong_host.stderr
    );

    // The plain port still answers: the refusals above came from the certificate checks.
    let plain = verify(&state_dir, &app.url(), secret.expose(), &ca_file).await;
    assert_eq!(plain.code, Some(0), "{}{}", plain.stdout, plain.stderr);
    app.shutdown().await.unwrap();
}
