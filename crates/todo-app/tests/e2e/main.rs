//! End-to-end tests through real clients: Debian's Chromium (driven by playwright-core) on the
//! todo page, and the official InsForge JS SDK on the records API, each on a fresh database.
//!
//! The Node scripts live in `crates/todo-app/e2e/`. They need `node` (20+), `npm ci` run in
//! that folder, and for the browser test `/usr/bin/chromium` (`apt-get install chromium`).
//! They are `#[ignore]`d, so a plain `cargo test` reports them as ignored (not passed) on any
//! machine; run them with `cargo test -p todo-app --test e2e -- --include-ignored`. Then a
//! missing prerequisite prints why and skips, or fails with `TODO_APP_E2E=required` (CI).

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clerk_token::{ClerkTemplate, ClerkUser, Secret};
use harness::TestDatabase;
use serde_json::Value;
use sqlx::Connection;
use todo_app::AppConfig;

const CHROMIUM: &str = "/usr/bin/chromium";
/// Bound on one Node script (the browser script has its own, shorter watchdog).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(300);
/// Bound on the app binary printing its address.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a child process is checked for having exited.
const POLL: Duration = Duration::from_millis(50);

fn e2e_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e")
}

/// Why this machine cannot run a script, if it cannot.
fn missing(package: &str, needs_browser: bool) -> Option<String> {
    let node = Command::new("node")
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !node.is_ok_and(|s| s.success()) {
        return Some("`node` is not installed (apt-get install nodejs)".into());
    }
    if !e2e_dir()
        .join("node_modules")
        .join(package)
        .join("package.json")
        .is_file()
    {
        return Some(format!(
            "{package} is not installed: run `npm ci --prefix crates/todo-app/e2e`"
        ));
    }
    if needs_browser && !Path::new(CHROMIUM).is_file() {
        return Some(format!("{CHROMIUM} is missing (apt-get install chromium)"));
    }
    None
}

/// Reports a skip where a person sees it (libtest captures `println!`, not the stderr handle)
/// — or fails, when CI says the prerequisites must be there.
fn skip(test: &str, reason: &str) {
    if std::env::var("TODO_APP_E2E").as_deref() == Ok("required") {
        panic!("{test}: TODO_APP_E2E=required, but {reason}");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {reason}");
}

/// A child process whose output threads drain stdout and stderr (so it never blocks on a full
/// pipe) into one transcript, and hand over stdout lines as they come.
struct Process {
    name: String,
    child: Child,
    transcript: Arc<Mutex<String>>,
    lines: mpsc::Receiver<String>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Process {
    fn spawn(name: &str, command: &mut Command) -> Self {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let transcript = Arc::new(Mutex::new(String::new()));
        let (tx, lines) = mpsc::channel();
        let streams: Vec<(Box<dyn Read + Send>, bool)> = vec![
            (Box::new(child.stdout.take().unwrap()), true),
            (Box::new(child.stderr.take().unwrap()), false),
        ];
        let readers = streams
            .into_iter()
            .map(|(stream, is_stdout)| {
                let tx = tx.clone();
                let transcript = Arc::clone(&transcript);
                std::thread::spawn(move || {
                    for line in BufReader::new(stream).lines().map_while(Result::ok) {
                        let mut all = transcript.lock().unwrap();
                        all.push_str(&line);
                        all.push('\n');
                        if is_stdout {
                            let _ = tx.send(line);
                        }
                    }
                })
            })
            .collect();
        Self {
            name: name.to_owned(),
            child,
            transcript,
            lines,
            readers,
        }
    }

    fn transcript(&self) -> String {
        self.transcript.lock().unwrap().clone()
    }

    /// The first stdout line `pick` accepts, within `bound`.
    fn wait_for_line<T>(&self, bound: Duration, pick: impl Fn(&str) -> Option<T>) -> T {
        let deadline = Instant::now() + bound;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(found) = pick(&line) {
                        return found;
                    }
                }
                Err(_) => panic!(
                    "{} did not print what was expected within {bound:?}:\n{}",
                    self.name,
                    self.transcript()
                ),
            }
        }
    }

    /// Waits for the process to exit (killing it after `bound`) and for its output to drain.
    fn finish(mut self, bound: Duration) -> (ExitStatus, String) {
        let deadline = Instant::now() + bound;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "{} did not finish within {bound:?}:\n{}",
                    self.name,
                    self.transcript()
                );
            }
            std::thread::sleep(POLL);
        };
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        (status, self.transcript())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // A test that fails half-way must not leave the app or a browser running.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `node <script>` in the e2e folder and returns what its `E2E_RESULT` line carried.
fn run_script(script: &str, env: &[(&str, String)], app_log: impl Fn() -> String) -> Value {
    let mut command = Command::new("node");
    command.arg(script).current_dir(e2e_dir());
    for (key, value) in env {
        command.env(key, value);
    }
    let (status, output) = Process::spawn(script, &mut command).finish(SCRIPT_TIMEOUT);
    assert!(
        status.success(),
        "{script} failed ({status}):\n{output}\n--- app log ---\n{}",
        app_log()
    );
    let line = output
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("E2E_RESULT "))
        .unwrap_or_else(|| panic!("{script} printed no E2E_RESULT line:\n{output}"));
    serde_json::from_str(line).unwrap()
}

/// The ids of the fixture users, by key.
fn fixture_id(key: &str) -> String {
    let path = harness::state::workspace_root().join("fixtures/users.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    doc["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["key"] == key)
        .and_then(|u| u["id"].as_str())
        .unwrap_or_else(|| panic!("no fixture user {key}"))
        .to_owned()
}

/// Every row, as a superuser sees it: `(user_id, title, is_complete)`, sorted.
async fn all_rows(db: &TestDatabase) -> Vec<(String, String, bool)> {
    let mut admin = db.admin_connection().await.unwrap();
    let rows = sqlx::query_as(
        "select user_id, title, is_complete from public.todos order by user_id, title",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    admin.close().await.unwrap();
    rows
}

/// `(owner id, title, is_complete)` for each row a script reported.
fn reported_rows(owner: &str, rows: &Value) -> Vec<(String, String, bool)> {
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                owner.to_owned(),
                r["title"].as_str().unwrap().to_owned(),
                r["is_complete"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// `line` without ANSI colour sequences (`ESC [ … letter`).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // Skip to the sequence's final letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The `url=http://…` value from the binary's "listening" log line (coloured or not).
fn listening_url(line: &str) -> Option<String> {
    let line = strip_ansi(line);
    if !line.contains("listening") {
        return None;
    }
    let start = line.find("url=http://")? + "url=".len();
    let url: String = line[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    Some(url.trim_end_matches('/').to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node, chromium and `npm ci` in crates/todo-app/e2e: run with --include-ignored"]
async fn two_users_in_a_real_browser_each_see_only_their_own_todos() {
    let test = "two_users_in_a_real_browser_each_see_only_their_own_todos";
    if let Some(reason) = missing("playwright-core", true) {
        return skip(test, &reason);
    }
    let db = TestDatabase::create().await.unwrap();
    let secret = Secret::generate();

    // The binary, as a person starts it (`cargo run -p todo-app -- --dev-sign-in`), on a free
    // port. The secret goes through the environment, never the command line.
    let app = Process::spawn(
        "todo-app",
        Command::new(env!("CARGO_BIN_EXE_todo-app"))
            .args(["--dev-sign-in", "--bind", "127.0.0.1:0"])
            .arg("--clerk-publishable-key=")
            .env("DATABASE_URL", db.app_target().url())
            .env("INSFORGE_JWT_SECRET", secret.expose())
            .env("RUST_LOG", "info,sqlx=warn")
            .env_remove("TODO_APP_DEV_USERS_FILE"),
    );
    let url = app.wait_for_line(STARTUP_TIMEOUT, listening_url);

    let screenshots = harness::state::workspace_root().join("target/todo-app-e2e");
    let shown = tokio::task::block_in_place(|| {
        run_script(
            "browser.mjs",
            &[
                ("TODO_APP_URL", url.clone()),
                ("TODO_APP_SCREENSHOT_DIR", screenshots.display().to_string()),
                ("CHROMIUM_PATH", CHROMIUM.to_owned()),
            ],
            || app.transcript(),
        )
    });
    let _ = writeln!(
        std::io::stderr(),
        "browser e2e screenshots: {}",
        screenshots.display()
    );

    // What each browser showed is exactly what the database holds, under the right user.
    let mut expected = reported_rows(&fixture_id("alice"), &shown["alice"]);
    expected.extend(reported_rows(&fixture_id("bob"), &shown["bob"]));
    expected.sort();
    assert_eq!(expected.len(), 5, "{shown}");
    assert_eq!(all_rows(&db).await, expected);

    let log = app.transcript();
    assert!(log.contains("dev token minted"), "{log}");
    // A token is a JWT: base64url JSON starting `eyJ`. None may reach the log.
    assert!(!log.contains("eyJ"), "a token was logged:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node and `npm ci` in crates/todo-app/e2e: run with --include-ignored"]
async fn the_insforge_js_sdk_does_crud_against_the_app_unchanged() {
    let test = "the_insforge_js_sdk_does_crud_against_the_app_unchanged";
    if let Some(reason) = missing("@insforge/sdk", false) {
        return skip(test, &reason);
    }
    let db = TestDatabase::create().await.unwrap();
    let secret = Secret::generate();
    let mut config = AppConfig::new(db.app_target().url(), secret.clone());
    config.bind = "127.0.0.1:0".parse().unwrap();
    config.max_connections = 4;
    let app = todo_app::spawn(config).await.unwrap();

    // Longer than Clerk's 60 s, so a slow machine cannot expire a token mid-script.
    let template = ClerkTemplate::insforge(secret).with_lifetime_secs(600);
    let alice = fixture_id("alice");
    let bob = fixture_id("bob");
    let token = |id: &str| template.mint(&ClerkUser::new(id)).unwrap();
    let env = [
        ("TODO_APP_URL", app.url()),
        ("TODO_APP_TOKEN", token(&alice)),
        ("TODO_APP_USER_ID", alice.clone()),
        ("TODO_APP_OTHER_TOKEN", token(&bob)),
    ];
    let rows = tokio::task::block_in_place(|| run_script("sdk.mjs", &env, String::new));

    let mut reported: Vec<_> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["user_id"], alice.as_str(), "{rows}");
            (
                alice.clone(),
                r["title"].as_str().unwrap().to_owned(),
                r["is_complete"].as_bool().unwrap(),
            )
        })
        .collect();
    reported.sort();
    assert_eq!(reported.len(), 2, "{rows}");
    assert_eq!(all_rows(&db).await, reported);
    app.shutdown().await.unwrap();
}

/// The team-workspaces example in a database of its own, the sample app serving it, three new
/// Clerk users and a template that mints their tokens (what both team-schema SDK tests need).
struct TeamApp {
    db: TestDatabase,
    app: todo_app::RunningApp,
    template: ClerkTemplate,
    ada: String,
    ben: String,
    cy: String,
}

impl TeamApp {
    async fn start() -> Self {
        let example = harness::state::workspace_root().join("examples/team-workspaces/migrations");
        let migrations = harness::Migrations::from_dir(&example).unwrap();
        let db = TestDatabase::migrated(&migrations).await.unwrap();
        let secret = Secret::generate();
        let mut config = AppConfig::new(db.app_target().url(), secret.clone());
        config.bind = "127.0.0.1:0".parse().unwrap();
        config.max_connections = 4;
        let app = todo_app::spawn(config).await.unwrap();
        Self {
            db,
            app,
            template: ClerkTemplate::insforge(secret).with_lifetime_secs(600),
            ada: clerk_token::new_user_id().into_string(),
            ben: clerk_token::new_user_id().into_string(),
            cy: clerk_token::new_user_id().into_string(),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node and `npm ci` in crates/todo-app/e2e: run with --include-ignored"]
async fn the_insforge_js_sdk_does_crud_on_a_team_schema_as_members_and_a_non_member() {
    let test = "the_insforge_js_sdk_does_crud_on_a_team_schema_as_members_and_a_non_member";
    if let Some(reason) = missing("@insforge/sdk", false) {
        return skip(test, &reason);
    }
    let TeamApp {
        db,
        app,
        template,
        ada,
        ben,
        cy,
    } = TeamApp::start().await;
    // Ada owns a project Ben is a member of; Cy owns another and is in neither's.
    let mut admin = db.admin_connection().await.unwrap();
    let (project, other): (String, String) = sqlx::query_as(
        "with p as (insert into public.projects (owner_id, name) values ($1, 'Shared') returning id), \
              q as (insert into public.projects (owner_id, name) values ($3, 'Cy''s') returning id), \
              m as (insert into public.project_members (project_id, user_id, role) \
                    select p.id, $1, 'owner' from p union all select p.id, $2, 'member' from p \
                    union all select q.id, $3, 'owner' from q) \
         select p.id::text, q.id::text from p, q",
    )
    .bind(&ada)
    .bind(&ben)
    .bind(&cy)
    .fetch_one(&mut admin)
    .await
    .unwrap();

    let token = |id: &str| template.mint(&ClerkUser::new(id)).unwrap();
    let env = [
        ("TODO_APP_URL", app.url()),
        ("TASKS_PROJECT", project.clone()),
        ("TASKS_OTHER_PROJECT", other),
        ("TOKEN_ADA", token(&ada)),
        ("TOKEN_BEN", token(&ben)),
        ("TOKEN_CY", token(&cy)),
        ("ADA_ID", ada.clone()),
        ("BEN_ID", ben),
    ];
    let rows = tokio::task::block_in_place(|| run_script("sdk-tasks.mjs", &env, String::new));
    assert_eq!(rows.as_array().map(Vec::len), Some(1), "{rows}");

    // What the script read is what is there: one task, Ada's, done, in the shared project.
    let tasks: Vec<(String, bool, String, String)> = sqlx::query_as(
        "select title, done, created_by, project_id::text from public.tasks order by title",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert_eq!(tasks, [("Ada: plan".to_owned(), true, ada, project)]);
    admin.close().await.unwrap();
    app.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node and `npm ci` in crates/todo-app/e2e: run with --include-ignored"]
async fn the_insforge_js_sdk_drives_rpc_upsert_embedding_and_or_on_a_team_schema() {
    let test = "the_insforge_js_sdk_drives_rpc_upsert_embedding_and_or_on_a_team_schema";
    if let Some(reason) = missing("@insforge/sdk", false) {
        return skip(test, &reason);
    }
    // The example's own migrations, unchanged: its `project_role` function is the RPC.
    let TeamApp {
        db,
        app,
        template,
        ada,
        ben,
        cy,
    } = TeamApp::start().await;
    let mut admin = db.admin_connection().await.unwrap();
    let (project,): (String,) = sqlx::query_as(
        "with p as (insert into public.projects (owner_id, name) values ($1, 'Shared') returning id), \
              m as (insert into public.project_members (project_id, user_id, role) \
                    select p.id, $1, 'owner' from p union all select p.id, $2, 'member' from p) \
         select p.id::text from p",
    )
    .bind(&ada)
    .bind(&ben)
    .fetch_one(&mut admin)
    .await
    .unwrap();

    let token = |id: &str| template.mint(&ClerkUser::new(id)).unwrap();
    let env = [
        ("TODO_APP_URL", app.url()),
        ("TASKS_PROJECT", project),
        ("TOKEN_ADA", token(&ada)),
        ("TOKEN_BEN", token(&ben)),
        ("TOKEN_CY", token(&cy)),
        ("ADA_ID", ada.clone()),
        ("BEN_ID", ben.clone()),
    ];
    let result = tokio::task::block_in_place(|| run_script("sdk-surfaces.mjs", &env, String::new));
    assert_eq!(result["ben_projects"], 1, "{result}");

    // The takeover was refused: each profile is still its owner's own.
    let profiles: Vec<(String, String)> =
        sqlx::query_as("select user_id, display_name from public.profiles order by display_name")
            .fetch_all(&mut admin)
            .await
            .unwrap();
    assert_eq!(
        profiles,
        [(ada, "Ada L.".to_owned()), (ben, "Ben".to_owned())]
    );
    admin.close().await.unwrap();
    app.shutdown().await.unwrap();
}

#[test]
fn the_listening_line_gives_the_url_with_or_without_colour() {
    let plain = "2026-01-01T00:00:00Z  INFO todo_app: todo-app listening: open the url in a browser addr=127.0.0.1:4242 url=http://127.0.0.1:4242/ sign_in=\"dev\"";
    assert_eq!(
        listening_url(plain).as_deref(),
        Some("http://127.0.0.1:4242")
    );
    let coloured = "listening \u{1b}[3murl\u{1b}[0m\u{1b}[2m=\u{1b}[0mhttp://127.0.0.1:4242/ \u{1b}[3msign_in\u{1b}[0m";
    assert_eq!(
        listening_url(coloured).as_deref(),
        Some("http://127.0.0.1:4242")
    );
    assert_eq!(
        listening_url("url=http://x listening").as_deref(),
        Some("http://x")
    );
    assert_eq!(listening_url("dev token minted"), None);
}
