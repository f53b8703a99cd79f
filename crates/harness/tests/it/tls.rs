//! TLS to Postgres as a hosted database needs it: a cluster of its own with `ssl = on` and a
//! CA made here; `sslmode` and `sslrootcert` from the URL are honoured by both drivers, and a
//! wrong CA, a wrong host name or a server without TLS is an error, never a plain connection.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use harness::PgTarget;
use harness::backend::local::{Cluster, RunAs, find_bin_dir};
use harness::testing::pki::make_pki;
use sqlx::Row;

fn with_tls(target: &PgTarget, host: &str, query: &str) -> PgTarget {
    let mut url = url_of(target, host);
    url.push('?');
    url.push_str(query);
    PgTarget::parse(&url).unwrap()
}

fn url_of(target: &PgTarget, host: &str) -> String {
    PgTarget {
        host: host.to_owned(),
        ..target.clone()
    }
    .url()
}

async fn ssl_in_use(target: &PgTarget) -> bool {
    let mut conn = target.connect().await.unwrap();
    sqlx::query("select ssl from pg_stat_ssl where pid = pg_backend_pid()")
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .get::<bool, _>(0)
}

/// Connects with verify-full until the reloaded server offers TLS (bounded: reload is a signal).
async fn wait_for_tls(target: &PgTarget) {
    let started = Instant::now();
    loop {
        match target.connect().await {
            Ok(_) => return,
            Err(e) if started.elapsed() > Duration::from_secs(20) => {
                panic!("the cluster did not offer TLS within 20 s: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

struct ClusterGuard(Cluster);

impl Drop for ClusterGuard {
    fn drop(&mut self) {
        let _ = self.0.destroy();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_with_ssl_on_is_reached_with_verify_full_and_refused_on_a_wrong_ca_or_host() {
    let Ok(bin_dir) = find_bin_dir() else {
        eprintln!("skipped: no local PostgreSQL binaries (initdb, pg_ctl) on this machine");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // The server runs as `postgres` when we are root: it must be able to reach its folder.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let cluster = ClusterGuard(Cluster::new(
        dir.path().join("pg"),
        bin_dir,
        RunAs::detect().unwrap(),
    ));
    let admin = cluster.0.start(None, None).unwrap();
    admin.connect_within(Duration::from_secs(60)).await.unwrap();

    // No TLS on the server yet: asking for it is an error, not a quiet plain connection.
    let required = with_tls(&admin, "127.0.0.1", "sslmode=require");
    let err = required.connect().await.unwrap_err().to_string();
    assert!(err.contains("sslmode=require"), "{err}");
    let err = required
        .connect_tokio_postgres("tls-test")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("sslmode=require"), "{err}");

    let pki = make_pki("insforge-rls test CA").unwrap();
    cluster
        .0
        .enable_tls(&pki.server_cert_pem, &pki.server_key_pem)
        .unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &pki.ca_pem).unwrap();
    let root = format!("sslrootcert={}", ca_file.display());

    let full = with_tls(&admin, "localhost", &format!("sslmode=verify-full&{root}"));
    wait_for_tls(&full).await;
    assert!(ssl_in_use(&full).await, "verify-full connected without TLS");
    // The same rules on the migrations' driver (tokio-postgres).
    let client = full.connect_tokio_postgres("tls-test").await.unwrap();
    let row = client
        .query_one(
            "select ssl from pg_stat_ssl where pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    assert!(
        row.get::<_, bool>(0),
        "tokio-postgres connected without TLS"
    );
    // The mode survives the derived targets the harness makes (app login, per-test database).
    assert!(ssl_in_use(&full.with_database("postgres")).await);

    // A CA that did not sign the server's certificate.
    let other = make_pki("someone else's CA").unwrap();
    let other_file = dir.path().join("other-ca.pem");
    std::fs::write(&other_file, &other.ca_pem).unwrap();
    let wrong_ca = with_tls(
        &admin,
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={}", other_file.display()),
    );
    let err = wrong_ca.connect().await.unwrap_err().to_string();
    assert!(err.contains("not signed by a trusted CA"), "{err}");
    let err = wrong_ca
        .connect_tokio_postgres("tls-test")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("not signed by a trusted CA"), "{err}");

    // A host name the certificate does not list: verify-full refuses, verify-ca accepts.
    let wrong_host = with_tls(&admin, "127.0.0.1", &format!("sslmode=verify-full&{root}"));
    let err = wrong_host.connect().await.unwrap_err().to_string();
    assert!(err.contains("not valid for host `127.0.0.1`"), "{err}");
    let err = wrong_host
        .connect_tokio_postgres("tls-test")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("not valid for host `127.0.0.1`"), "{err}");
    let ca_only = with_tls(&admin, "127.0.0.1", &format!("sslmode=verify-ca&{root}"));
    assert!(ssl_in_use(&ca_only).await);
    ca_only
        .connect_tokio_postgres("tls-test")
        .await
        .expect("verify-ca ignores the host name");

    // require: encrypted, certificate not checked (libpq's meaning), on both drivers.
    assert!(ssl_in_use(&required).await);
    required
        .connect_tokio_postgres("tls-test")
        .await
        .expect("require connects");
}
