//! `cargo xtask` as a user runs it: each fault gives the promised error and leaves nothing
//! half-made; setup survives an interruption; teardown leaves no process or folder.

#![allow(clippy::unwrap_used)] // Test helpers: a panic is the failure report.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn xtask(state_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.args(args)
        .env("INSFORGE_RLS_STATE_DIR", state_dir)
        // A user's own settings must not steer these runs.
        .env_remove("INSFORGE_RLS_BACKEND")
        .env_remove("INSFORGE_RLS_DATABASE_URL")
        .env_remove("INSFORGE_JWT_SECRET")
        .env_remove("INSFORGE_RLS_PORT");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("xtask runs");
    Run {
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

fn have_local_postgres() -> bool {
    Command::new("pg_config")
        .arg("--bindir")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `--env-file` inside the temp dir, so these runs never touch the workspace `.env`.
fn env_file(dir: &Path) -> String {
    dir.join("env-export").display().to_string()
}

#[test]
fn docker_unreachable_says_so_and_names_the_ways_out() {
    let dir = tempfile::tempdir().unwrap();
    let r = xtask(
        dir.path(),
        &[
            "setup",
            "--backend",
            "docker",
            "--env-file",
            &env_file(dir.path()),
        ],
        &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
    );
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("Docker is not reachable at unix:///nonexistent/docker.sock"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("--backend local"), "{}", r.stderr);
    assert!(!dir.path().join("state.json").exists(), "nothing recorded");
}

#[test]
fn an_image_that_cannot_be_pulled_is_named_with_the_way_out() {
    let docker_up = Command::new("docker")
        .arg("info")
        .output()
        .is_ok_and(|o| o.status.success());
    if !docker_up {
        eprintln!("skipped: no Docker engine answers on this machine");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let image = "insforge-rls/does-not-exist:0";
    let r = xtask(
        dir.path(),
        &[
            "setup",
            "--backend",
            "docker",
            "--image",
            image,
            "--env-file",
            &env_file(dir.path()),
        ],
        &[],
    );
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "image `{image}` is not on this machine and could not be pulled"
        )),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("--backend local"), "{}", r.stderr);
    // The pull says it started (on stderr) instead of staying silent until it ends.
    assert!(
        r.stderr
            .contains(&format!("pulling image {image} (not on this machine yet)")),
        "{}",
        r.stderr
    );
    assert!(!dir.path().join("state.json").exists(), "nothing recorded");
}

#[test]
fn token_prints_a_clerk_shaped_token_signed_with_the_given_secret() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "a-test-secret-that-is-long-enough-000000";
    let r = xtask(
        dir.path(),
        &[
            "token",
            "--user",
            "user_2GIpXOEpVyJw51rkZn9Kmnc6Sxr",
            "--email",
            "a@example.com",
            "--jwt-secret",
            secret,
        ],
        &[],
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let token = r.stdout.trim();
    let identity = clerk_token::Verifier::new(clerk_token::Secret::new(secret).unwrap())
        .verify(token)
        .unwrap();
    assert_eq!(identity.sub, "user_2GIpXOEpVyJw51rkZn9Kmnc6Sxr");
    assert_eq!(identity.role, "authenticated");
    assert_eq!(identity.email.as_deref(), Some("a@example.com"));

    let r = xtask(
        dir.path(),
        &["token", "--jwt-secret", "short-secret-value"],
        &[],
    );
    assert_eq!(r.code, Some(1));
    assert!(r.stderr.contains("32"), "{}", r.stderr);
    assert!(
        !r.stderr.contains("short-secret-value"),
        "the secret is not echoed"
    );
}

#[test]
fn missing_postgres_binaries_say_what_to_install() {
    let dir = tempfile::tempdir().unwrap();
    let r = xtask(
        dir.path(),
        &[
            "setup",
            "--backend",
            "local",
            "--env-file",
            &env_file(dir.path()),
        ],
        &[("INSFORGE_RLS_PG_BINDIR", "/nonexistent/bin")],
    );
    assert_eq!(r.code, Some(1));
    assert!(
        r.stderr.contains("no PostgreSQL server binaries found"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("apt-get install postgresql-15"),
        "{}",
        r.stderr
    );
    assert!(!dir.path().join("local").exists(), "no cluster folder made");
}

#[test]
fn a_url_that_refuses_connections_is_reported_without_its_password() {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on: bind, read it, release.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://someone:sup3rs3cretpw@127.0.0.1:{port}/app");
    let r = xtask(
        dir.path(),
        &[
            "setup",
            "--backend",
            "url",
            "--database-url",
            &url,
            "--env-file",
            &env_file(dir.path()),
        ],
        &[],
    );
    assert_eq!(r.code, Some(1));
    assert!(
        r.stderr.contains(&format!(
            "cannot connect to the database at postgres://someone:***@127.0.0.1:{port}/app"
        )),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("sup3rs3cretpw") && !r.stdout.contains("sup3rs3cretpw"));
    assert!(!dir.path().join("state.json").exists());
}

#[test]
fn a_short_jwt_secret_is_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let r = xtask(
        dir.path(),
        &["setup", "--backend", "local", "--jwt-secret", "too-short"],
        &[],
    );
    assert_eq!(r.code, Some(1));
    assert!(r.stderr.contains("at least 32"), "{}", r.stderr);
    assert!(!r.stderr.contains("too-short"));
    assert!(!dir.path().join("local").exists());
}

#[test]
fn status_and_teardown_before_setup_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let r = xtask(dir.path(), &["status"], &[]);
    assert_eq!(r.code, Some(1));
    assert!(
        r.stderr.contains("run `cargo xtask setup` first"),
        "{}",
        r.stderr
    );
    let r = xtask(dir.path(), &["teardown"], &[]);
    assert_eq!(r.code, Some(0));
    assert!(r.stdout.contains("nothing was set up"));
}

#[test]
fn a_taken_port_is_refused_and_nothing_is_made() {
    if !have_local_postgres() {
        eprintln!("skipped: no local PostgreSQL binaries on this machine");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let r = xtask(
        dir.path(),
        &[
            "setup",
            "--backend",
            "local",
            "--port",
            &port,
            "--env-file",
            &env_file(dir.path()),
        ],
        &[],
    );
    assert_eq!(r.code, Some(1));
    assert!(
        r.stderr
            .contains(&format!("port {port} on 127.0.0.1 is already in use")),
        "{}",
        r.stderr
    );
    assert!(
        !dir.path().join("local").exists(),
        "no cluster was initialised"
    );
}

/// The whole local life cycle, including a server that stopped behind setup's back and an
/// initdb that was interrupted: setup recovers both, keeps the data, and teardown leaves nothing.
#[test]
fn local_setup_recovers_from_interruptions_and_teardown_leaves_nothing() {
    if !have_local_postgres() {
        eprintln!("skipped: no local PostgreSQL binaries on this machine");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let env_export = env_file(dir.path());
    // Leftovers of an initdb killed half-way.
    std::fs::create_dir_all(dir.path().join("local/pgdata.partial/base")).unwrap();

    let first = xtask(
        dir.path(),
        &["setup", "--backend", "local", "--env-file", &env_export],
        &[],
    );
    assert_eq!(first.code, Some(0), "{}{}", first.stdout, first.stderr);
    assert!(first.stdout.contains("server started"));
    assert!(
        first
            .stdout
            .contains("applied V1__insforge_roles, V2__requesting_user_id, V4__inlinable_requesting_user_id, V3__todos")
    );
    assert!(!dir.path().join("local/pgdata.partial").exists());
    assert!(
        std::fs::read_to_string(&env_export)
            .unwrap()
            .contains("DATABASE_URL=postgres://rls_app:")
    );

    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("state.json")).unwrap())
            .unwrap();
    let admin_url = format!(
        "postgres://postgres:{}@127.0.0.1:{}/insforge",
        state["admin"]["password"].as_str().unwrap(),
        state["admin"]["port"]
    );
    psql(
        &admin_url,
        "insert into todos (user_id, title) values ('user_2x', 'survives')",
    );

    // Per-test databases live in memory: a scratch tablespace on /dev/shm (where there is one).
    let scratch = harness::scratch::local_location(dir.path());
    let has_shm = Path::new("/dev/shm").is_dir();
    if has_shm {
        assert!(
            first.stdout.contains("scratch     tablespace"),
            "{}",
            first.stdout
        );
        assert!(scratch.is_dir(), "no scratch folder {}", scratch.display());
        // Memory cleared behind the server's back: clones fall back to disk, nothing fails.
        std::fs::remove_dir_all(&scratch).unwrap();
        let (fallback, space_after) = tokio::runtime::Runtime::new().unwrap().block_on(async {
            let factory =
                harness::DatabaseFactory::start(harness::PgTarget::parse(&admin_url).unwrap())
                    .unwrap();
            let name = factory.create("insforge_rls_template").await.unwrap();
            let space = factory.settings().await.unwrap().tablespace;
            factory.drop_later(&name);
            factory.flush().await.unwrap();
            (name, space)
        });
        assert!(fallback.starts_with("rls_test_"), "{fallback}");
        assert_eq!(
            space_after, None,
            "the factory kept using a broken tablespace"
        );
    }

    // The server stops (a reboot, a kill): status says so, setup starts it again.
    let data_dir = dir.path().join("local/pgdata");
    stop_cluster(&data_dir);
    let status = xtask(dir.path(), &["status"], &[]);
    assert_eq!(status.code, Some(1));
    assert!(status.stdout.contains("NOT answering"), "{}", status.stdout);

    let second = xtask(dir.path(), &["setup", "--env-file", &env_export], &[]);
    assert_eq!(second.code, Some(0), "{}{}", second.stdout, second.stderr);
    assert!(
        second
            .stdout
            .contains("migrations  up to date (4 applied before)"),
        "{}",
        second.stdout
    );
    let status = xtask(dir.path(), &["status"], &[]);
    assert_eq!(status.code, Some(0), "{}", status.stdout);
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("state.json")).unwrap())
            .unwrap();
    let admin_url = format!(
        "postgres://postgres:{}@127.0.0.1:{}/insforge",
        state["admin"]["password"].as_str().unwrap(),
        state["admin"]["port"]
    );
    assert_eq!(psql(&admin_url, "select title from todos"), "survives");
    // Setup after the "reboot" made the scratch folder again: clones go to memory again.
    if has_shm {
        assert!(scratch.is_dir(), "scratch folder not recreated");
        psql(
            &admin_url,
            "create database scratch_probe template insforge_rls_template tablespace insforge_rls_scratch",
        );
        psql(&admin_url, "drop database scratch_probe");
    }

    // Switching backend without teardown is refused.
    let switch = xtask(
        dir.path(),
        &["setup", "--backend", "docker", "--env-file", &env_export],
        &[],
    );
    assert_eq!(switch.code, Some(1));
    assert!(
        switch
            .stderr
            .contains("already set up with the local backend"),
        "{}",
        switch.stderr
    );

    let down = xtask(dir.path(), &["teardown"], &[]);
    assert_eq!(down.code, Some(0), "{}", down.stderr);
    assert!(!data_dir.exists());
    assert!(!dir.path().join("state.json").exists());
    assert!(!Path::new(&env_export).exists());
    assert!(!postgres_running_in(&data_dir), "no server left running");
    assert!(!scratch.exists(), "teardown left {}", scratch.display());
}

fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([url, "-XAtqc", sql])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn stop_cluster(data_dir: &Path) {
    let pid: i32 = std::fs::read_to_string(data_dir.join("postmaster.pid"))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // SIGINT: fast shutdown, as a service manager would.
    assert!(
        Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while Path::new(&format!("/proc/{pid}")).exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "postgres did not stop"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn postgres_running_in(data_dir: &Path) -> bool {
    let needle = data_dir.display().to_string();
    std::fs::read_dir("/proc").unwrap().flatten().any(|p| {
        std::fs::read(p.path().join("cmdline"))
            .map(|c| String::from_utf8_lossy(&c).contains(&needle))
            .unwrap_or(false)
    })
}

#[test]
fn verify_against_nothing_exits_2_and_says_what_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let r = xtask(
        dir.path(),
        &[
            "verify",
            "--base-url",
            &format!("http://127.0.0.1:{port}"),
            "--jwt-secret",
            "a-test-secret-that-is-long-enough-000000",
        ],
        &[],
    );
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains("is the endpoint running?"),
        "{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("a-test-secret"),
        "the secret is not echoed"
    );
}

#[test]
fn version_is_printed() {
    let dir = tempfile::tempdir().unwrap();
    let r = xtask(dir.path(), &["--version"], &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(
        r.stdout.trim(),
        format!("cargo xtask {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn rust_log_is_honoured_and_logs_to_a_pipe_carry_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    // A verify against a closed port: at debug the HTTP client logs its connection attempt.
    let args = [
        "verify",
        "--base-url",
        "http://127.0.0.1:9",
        "--jwt-secret",
        "0123456789abcdef0123456789abcdef",
    ];
    let quiet = xtask(
        dir.path(),
        &args,
        &[("XTASK_LOG", ""), ("RUST_LOG", "warn")],
    );
    let loud = xtask(
        dir.path(),
        &args,
        &[("XTASK_LOG", ""), ("RUST_LOG", "debug")],
    );
    assert!(
        loud.stderr.contains("DEBUG") || loud.stderr.contains("TRACE"),
        "RUST_LOG=debug logged nothing at debug:\n{}",
        loud.stderr
    );
    assert!(!quiet.stderr.contains("DEBUG"), "{}", quiet.stderr);
    assert!(
        !loud.stderr.contains('\u{1b}'),
        "ANSI escape codes in a log written to a pipe:\n{}",
        loud.stderr
    );
}
