//! A typed client for the app under test, fixture users, and admin-side seeding/inspection.
//! Admin access (a superuser, which RLS does not bind) is only for setting up and checking.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use clerk_token::{ClerkTemplate, ClerkUser, Secret};
use harness::TestDatabase;
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::{Connection, Row};
use todo_app::{AppConfig, RunningApp};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A `std::io::Write` into the shared log buffer.
#[derive(Clone, Default)]
struct LogSink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

static LOGS: OnceLock<LogSink> = OnceLock::new();

/// Sends the app's logs (debug and up) into one buffer for the whole test binary, so tests
/// can check what is logged. Global, not per test: tracing caches per-callsite interest
/// process-wide, and a thread-local subscriber misses events whose callsite another test's
/// thread reached first.
fn capture_logs() {
    LOGS.get_or_init(|| {
        let sink = LogSink::default();
        let writer = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "todo_app=trace,tower_http=debug",
            ))
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        // Another global subscriber (none today) would keep its place; logs() then is empty.
        let _ = tracing::subscriber::set_global_default(subscriber);
        sink
    });
}

/// Everything logged so far by every test in this binary.
pub fn logs() -> String {
    capture_logs();
    let sink = LOGS.get().unwrap();
    String::from_utf8_lossy(&sink.0.lock().unwrap()).into_owned()
}

/// A Clerk user from `fixtures/users.json`.
#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
}

pub fn user(key: &str) -> User {
    let path = harness::state::workspace_root().join("fixtures/users.json");
    let found = clerk_token::read_users(&path)
        .unwrap()
        .into_iter()
        .find(|u| u.key == key)
        .unwrap_or_else(|| panic!("no fixture user {key}"));
    User { id: found.id }
}

/// A row of `todos` as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Todo {
    pub id: String,
    pub user_id: String,
    pub title: String,
    pub is_complete: bool,
    pub created_at: String,
}

/// An HTTP answer, fully read.
#[derive(Debug)]
pub struct FullResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
}

impl FullResponse {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    pub fn todos(&self) -> Vec<Todo> {
        assert!(
            (200..300).contains(&self.status),
            "{} {}",
            self.status,
            self.text
        );
        serde_json::from_str(&self.text).unwrap()
    }

    /// Status and JSON body together, for error snapshots.
    pub fn snapshot(&self) -> Value {
        json!({ "status": self.status, "body": self.json() })
    }

    /// Asserts an error in PostgREST's shape with this status and code.
    pub fn assert_error(&self, status: u16, code: &str) -> &Self {
        assert_eq!(self.status, status, "{}", self.text);
        let body = self.json();
        assert_eq!(body["code"], code, "{body}");
        let mut keys: Vec<_> = body.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["code", "details", "hint", "message"], "{body}");
        self
    }
}

/// A request being built.
pub struct Call {
    builder: reqwest::RequestBuilder,
}

impl Call {
    pub fn signed_in_as(self, app: &TestApp, user: &User) -> Self {
        let token = app.token(user);
        self.bearer(&token)
    }

    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    pub fn header(self, name: &str, value: &str) -> Self {
        Self {
            builder: self.builder.header(name, value),
        }
    }

    pub fn prefer(self, value: &str) -> Self {
        self.header("prefer", value)
    }

    pub fn json(self, body: &Value) -> Self {
        self.header("content-type", "application/json")
            .body(body.to_string())
    }

    pub fn body(self, body: impl Into<reqwest::Body>) -> Self {
        Self {
            builder: self.builder.body(body),
        }
    }

    pub async fn send(self) -> FullResponse {
        let response = self.builder.send().await.unwrap();
        FullResponse {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            text: response.text().await.unwrap(),
        }
    }
}

/// The app, running against a database of its own.
pub struct TestApp {
    pub app: RunningApp,
    pub db: TestDatabase,
    pub template: ClerkTemplate,
    client: reqwest::Client,
}

impl TestApp {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts with the defaults a test wants, then `tune` (e.g. a short statement timeout).
    pub async fn start_with(tune: impl FnOnce(&mut AppConfig)) -> Self {
        let db = TestDatabase::create().await.unwrap();
        let url = db.app_target().url();
        Self::start_on(db, url, tune).await
    }

    /// Starts against `database_url`, keeping `db` alive for inspection.
    pub async fn start_on(
        db: TestDatabase,
        database_url: String,
        tune: impl FnOnce(&mut AppConfig),
    ) -> Self {
        capture_logs();
        let secret = Secret::generate();
        let mut config = AppConfig::new(database_url, secret.clone());
        config.bind = "127.0.0.1:0".parse().unwrap();
        config.max_connections = 4;
        // Off unless a test turns it on: one test's SIGUSR1 must not reload another's app.
        config.reload_on_sigusr1 = false;
        tune(&mut config);
        let app = todo_app::spawn(config).await.unwrap();
        Self {
            app,
            db,
            template: ClerkTemplate::insforge(secret),
            client: http_client(),
        }
    }

    /// A fresh token for `user`, as Clerk's `getToken({ template: 'insforge' })` returns it.
    pub fn token(&self, user: &User) -> String {
        self.template.mint(&ClerkUser::new(&user.id)).unwrap()
    }

    pub fn call(&self, method: Method, path: &str) -> Call {
        Call {
            builder: self
                .client
                .request(method, format!("{}{path}", self.app.url())),
        }
    }

    /// A call to `/api/database/records/{table_and_query}`.
    pub fn records(&self, method: Method, table_and_query: &str) -> Call {
        self.call(method, &format!("/api/database/records/{table_and_query}"))
    }

    /// `GET todos?{query}` as `user`.
    pub async fn get(&self, user: &User, query: &str) -> FullResponse {
        self.records(Method::GET, &format!("todos?{query}"))
            .signed_in_as(self, user)
            .send()
            .await
    }

    pub async fn list(&self, user: &User, query: &str) -> Vec<Todo> {
        self.get(user, query).await.todos()
    }

    /// `POST todos` with `return=representation`.
    pub async fn post(&self, user: &User, body: &Value) -> FullResponse {
        self.records(Method::POST, "todos")
            .signed_in_as(self, user)
            .prefer("return=representation")
            .json(body)
            .send()
            .await
    }

    pub async fn post_todo(&self, user: &User, title: &str) -> Todo {
        let reply = self.post(user, &json!({ "title": title })).await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        let mut rows = reply.todos();
        assert_eq!(rows.len(), 1);
        rows.remove(0)
    }

    /// `PATCH todos?{query}` with `return=representation`.
    pub async fn patch(&self, user: &User, query: &str, body: &Value) -> FullResponse {
        self.records(Method::PATCH, &format!("todos?{query}"))
            .signed_in_as(self, user)
            .prefer("return=representation")
            .json(body)
            .send()
            .await
    }

    /// `DELETE todos?{query}` with `return=representation`.
    pub async fn delete(&self, user: &User, query: &str) -> FullResponse {
        self.records(Method::DELETE, &format!("todos?{query}"))
            .signed_in_as(self, user)
            .prefer("return=representation")
            .send()
            .await
    }

    /// Runs `sql` (one or more statements, no parameters) as a superuser: for setting up a
    /// world, never for checking what a user may do.
    pub async fn admin_sql(&self, sql: &str) {
        let mut admin = self.db.admin_connection().await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("{e}: {sql}"));
        admin.close().await.unwrap();
    }

    /// Waits (bounded) until the app's schema listener is connected, so a `NOTIFY pgrst` sent
    /// now is seen; returns how many snapshots were loaded by then.
    pub async fn listening(&self) -> u64 {
        let mut status = self.app.schema_status();
        let ready = tokio::time::timeout(RELOAD_BOUND, status.wait_for(|s| s.listening))
            .await
            .expect("the schema listener connects")
            .unwrap();
        ready.loads
    }

    /// Waits (bounded) until a snapshot newer than `loads` is in use.
    pub async fn reloaded_since(&self, loads: u64) {
        let mut status = self.app.schema_status();
        tokio::time::timeout(RELOAD_BOUND, status.wait_for(|s| s.loads > loads))
            .await
            .expect("the schema is reloaded")
            .unwrap();
    }

    /// `NOTIFY pgrst, 'reload schema'` as PostgREST's docs say, and wait for the reload.
    pub async fn notify_reload(&self) {
        let loads = self.listening().await;
        self.admin_sql("notify pgrst, 'reload schema'").await;
        self.reloaded_since(loads).await;
    }

    /// Inserts rows as a superuser: `(owner, title, is_complete, created_at)`.
    pub async fn seed(&self, rows: &[(&User, &str, bool, &str)]) {
        let mut admin = self.db.admin_connection().await.unwrap();
        for (owner, title, done, created_at) in rows {
            sqlx::query(
                "insert into public.todos (user_id, title, is_complete, created_at) \
                 values ($1, $2, $3, $4::timestamptz)",
            )
            .bind(&owner.id)
            .bind(*title)
            .bind(*done)
            .bind(*created_at)
            .execute(&mut admin)
            .await
            .unwrap();
        }
        admin.close().await.unwrap();
    }

    /// Every row, as a superuser sees it: `(user_id, title, is_complete)` sorted.
    pub async fn all_rows(&self) -> Vec<(String, String, bool)> {
        let mut admin = self.db.admin_connection().await.unwrap();
        let rows = sqlx::query(
            "select user_id, title, is_complete from public.todos order by user_id, title",
        )
        .fetch_all(&mut admin)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
        admin.close().await.unwrap();
        rows
    }
}

/// How long a schema reload may take to show in a test: generous for a loaded machine.
pub const RELOAD_BOUND: std::time::Duration = std::time::Duration::from_secs(20);

/// A TCP forwarder between the app and Postgres that a test can cut and restore, to play a
/// database that goes away and comes back without touching the shared server.
pub struct Proxy {
    pub addr: SocketAddr,
    upstream: SocketAddr,
    accept: Option<JoinHandle<()>>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    /// A proxy in front of `db`'s server, and the app role's URL through it.
    pub async fn in_front_of(db: &TestDatabase) -> (Self, String) {
        let target = db.app_target();
        let upstream = tokio::net::lookup_host((target.host.as_str(), target.port))
            .await
            .unwrap()
            .next()
            .unwrap();
        let proxy = Self::start(upstream).await;
        let mut via_proxy = target.clone();
        via_proxy.host = "127.0.0.1".into();
        via_proxy.port = proxy.addr.port();
        let url = via_proxy.url();
        (proxy, url)
    }

    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut proxy = Self {
            addr: listener.local_addr().unwrap(),
            upstream,
            accept: None,
            connections: Arc::default(),
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&mut self, listener: TcpListener) {
        let upstream = self.upstream;
        let connections = Arc::clone(&self.connections);
        self.accept = Some(tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                connections.lock().unwrap().push(task);
            }
        }));
    }

    /// Closes the listening port and every open connection: "the database went away".
    pub async fn cut(&mut self) {
        if let Some(accept) = self.accept.take() {
            accept.abort();
            let _ = accept.await;
        }
        let tasks: Vec<_> = self.connections.lock().unwrap().drain(..).collect();
        for task in tasks {
            task.abort();
            let _ = task.await;
        }
    }

    /// Listens on the same port again: "the database is back".
    pub async fn restore(&mut self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }
}

/// A reqwest client: reqwest is built without a crypto provider of its own (the workspace uses
/// rustls with ring everywhere), so the process's default is installed first.
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}
