//! A throwaway cluster from the machine's PostgreSQL binaries, kept under the state folder.
//! As root it runs as the `postgres` user (initdb refuses root); fsync is off, it is a test server.
//! A state folder that user cannot reach (under `/root`, or a private temporary folder) gets
//! its cluster in a folder of its own instead ([`cluster_dir`]).

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;
use sqlx::Connection as _;

use super::{Backend, Leftovers, Server, StartCx, Started};
use crate::error::{HarnessError, Result};
use crate::provision::{SetupOptions, Steps, TeardownReport};
use crate::state::{State, StateDir};
use crate::target::PgTarget;

const SUPERUSER: &str = "postgres";
const PASSWORD_FILE: &str = "superuser.pw";

/// Who runs the server: ourselves, or (as root) the `postgres` user.
#[derive(Debug, Clone)]
pub struct RunAs {
    pub name: String,
    uid: u32,
    gid: u32,
    /// Its home folder (`/var/lib/postgresql` on Debian), where clusters go that it could not
    /// reach in their state folder.
    pub home: PathBuf,
}

impl RunAs {
    /// `None` when we are not root and can run the server ourselves.
    pub fn detect() -> Result<Option<RunAs>> {
        if !nix::unistd::geteuid().is_root() {
            return Ok(None);
        }
        Self::named(SUPERUSER).map(Some)
    }

    pub fn named(name: &str) -> Result<RunAs> {
        match nix::unistd::User::from_name(name) {
            Ok(Some(user)) => Ok(RunAs {
                name: name.to_owned(),
                uid: user.uid.as_raw(),
                gid: user.gid.as_raw(),
                home: user.dir,
            }),
            _ => Err(HarnessError::NoPostgresUser),
        }
    }

    /// Whether this user can reach `path` (search it and every folder above it), asked of the
    /// system as the server will run: `test -x` with this user's ids and no other groups.
    pub fn can_reach(&self, path: &Path) -> bool {
        Command::new("test")
            .arg("-x")
            .arg(path)
            .uid(self.uid)
            .gid(self.gid)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn chown(&self, path: &Path) -> Result<()> {
        std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid)).map_err(HarnessError::io(
            "cannot hand the folder to the postgres user",
            path,
        ))
    }
}

/// The folder with `initdb`, `pg_ctl` and `postgres`.
pub fn find_bin_dir() -> Result<PathBuf> {
    let has_all = |dir: &Path| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|b| dir.join(b).is_file())
    };
    let mut searched = Vec::new();
    if let Some(dir) = std::env::var_os("INSFORGE_RLS_PG_BINDIR").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        if has_all(&dir) {
            return Ok(dir);
        }
        return Err(HarnessError::NoPostgresBinaries {
            searched: format!(
                "INSFORGE_RLS_PG_BINDIR={} lacks initdb, pg_ctl or postgres",
                dir.display()
            ),
        });
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && has_all(&dir) {
            return Ok(dir);
        }
        searched.push(format!("pg_config --bindir ({})", dir.display()));
    } else {
        searched.push("pg_config (not on PATH)".into());
    }
    let mut candidates: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            Some((version, e.path().join("bin")))
        })
        .filter(|(_, dir)| has_all(dir))
        .collect();
    candidates.sort();
    if let Some((_, dir)) = candidates.pop() {
        return Ok(dir);
    }
    searched.push("/usr/lib/postgresql/*/bin".into());
    Err(HarnessError::NoPostgresBinaries {
        searched: searched.join(", "),
    })
}

/// A cluster folder: `pgdata/`, `run/` (socket), `postgres.log`, the superuser's password file.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub dir: PathBuf,
    pub bin_dir: PathBuf,
    pub run_as: Option<RunAs>,
}

impl Cluster {
    pub fn new(dir: PathBuf, bin_dir: PathBuf, run_as: Option<RunAs>) -> Self {
        Self {
            dir,
            bin_dir,
            run_as,
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("pgdata")
    }

    fn log_file(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin_dir.join(program));
        if let Some(user) = &self.run_as {
            cmd.uid(user.uid).gid(user.gid);
        }
        cmd.env("LC_ALL", "C")
            .env_remove("PGDATA")
            .stdin(Stdio::null());
        cmd
    }

    fn run(&self, mut cmd: Command, what: &str) -> Result<Output> {
        let output = cmd.output().map_err(|e| HarnessError::Command {
            command: what.into(),
            detail: e.to_string(),
        })?;
        if output.status.success() {
            Ok(output)
        } else {
            let mut detail = String::from_utf8_lossy(&output.stderr).trim().to_owned();
            if detail.is_empty() {
                detail = format!("exit status {}", output.status);
            }
            Err(HarnessError::Command {
                command: what.into(),
                detail,
            })
        }
    }

    /// The superuser password, made once per cluster and kept beside it (mode 0600), so an
    /// interrupted setup can still log in when it runs again.
    fn superuser_password(&self) -> Result<String> {
        let path = self.dir.join(PASSWORD_FILE);
        match fs::read_to_string(&path) {
            Ok(pw) if !pw.trim().is_empty() => Ok(pw.trim().to_owned()),
            _ => {
                let pw = crate::random_token(32);
                crate::state::write_private(&path, pw.as_bytes())?;
                if let Some(user) = &self.run_as {
                    user.chown(&path)?;
                }
                Ok(pw)
            }
        }
    }

    /// initdb into a scratch folder and rename it into place, so a setup interrupted during
    /// initdb leaves nothing that looks like a cluster.
    fn init_if_needed(&self) -> Result<()> {
        if self.data_dir().join("PG_VERSION").is_file() {
            return Ok(());
        }
        fs::create_dir_all(&self.dir).map_err(HarnessError::io(
            "cannot create the cluster folder",
            &self.dir,
        ))?;
        fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700))
            .map_err(HarnessError::io("cannot set permissions", &self.dir))?;
        if let Some(user) = &self.run_as {
            user.chown(&self.dir)?;
        }
        let scratch = self.dir.join("pgdata.partial");
        if scratch.exists() {
            fs::remove_dir_all(&scratch).map_err(HarnessError::io(
                "cannot clear an interrupted initdb",
                &scratch,
            ))?;
        }
        self.superuser_password()?;
        let mut cmd = self.command("initdb");
        cmd.arg("-D")
            .arg(&scratch)
            .args([
                "-U",
                SUPERUSER,
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ])
            .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
            .arg(format!(
                "--pwfile={}",
                self.dir.join(PASSWORD_FILE).display()
            ));
        self.run(cmd, "initdb")?;
        fs::rename(&scratch, self.data_dir()).map_err(HarnessError::io(
            "cannot move the new cluster into place",
            self.data_dir(),
        ))
    }

    /// The port of the running server, or `None` when it is not running.
    pub fn running_port(&self) -> Option<u16> {
        let mut status = self.command("pg_ctl");
        status
            .arg("status")
            .arg("-D")
            .arg(self.data_dir())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if !status.status().is_ok_and(|s| s.success()) {
            return None;
        }
        // postmaster.pid line 4 is the port.
        let pid_file = fs::read_to_string(self.data_dir().join("postmaster.pid")).ok()?;
        pid_file.lines().nth(3)?.trim().parse().ok()
    }

    /// Starts (or finds running) the cluster on `port`, else on a free port (or `previous_port`
    /// when it is still free), and returns the superuser's address.
    pub fn start(&self, port: Option<u16>, previous_port: Option<u16>) -> Result<PgTarget> {
        // A port someone else holds is refused before anything is made.
        if let Some(p) = port
            && self.running_port() != Some(p)
            && !port_is_free(p)
        {
            return Err(HarnessError::PortInUse { port: p });
        }
        match port {
            Some(p) => self.start_trying(std::iter::once(Ok(p)), Some(p)),
            // A port found free can be taken by someone else before the server binds it (test
            // processes and CI shards start clusters side by side): the server's own bind is
            // the only test that counts, so a port lost in between is replaced by another.
            None => self.start_trying(
                previous_port
                    .filter(|p| port_is_free(*p))
                    .into_iter()
                    .map(Ok)
                    .chain(std::iter::repeat_with(free_port)),
                None,
            ),
        }
    }

    /// Starts (or finds running) the cluster on the first of `candidates` its server can bind,
    /// trying at most [`PORT_ATTEMPTS`]. A running cluster must be on `wanted`, when given.
    pub fn start_trying(
        &self,
        candidates: impl IntoIterator<Item = Result<u16>>,
        wanted: Option<u16>,
    ) -> Result<PgTarget> {
        self.init_if_needed()?;
        let password = self.superuser_password()?;
        let target = |port| PgTarget::new("127.0.0.1", port, SUPERUSER, &password, "postgres");
        if let Some(running) = self.running_port() {
            if wanted.is_none_or(|p| p == running) {
                return Ok(target(running));
            }
            return Err(HarnessError::PortMove {
                running,
                wanted: wanted.unwrap_or(running),
            });
        }
        let run_dir = self.dir.join("run");
        fs::create_dir_all(&run_dir).map_err(HarnessError::io(
            "cannot create the socket folder",
            &run_dir,
        ))?;
        if let Some(user) = &self.run_as {
            user.chown(&run_dir)?;
        }
        let mut lost = Vec::new();
        for candidate in candidates.into_iter().take(PORT_ATTEMPTS) {
            let port = candidate?;
            match self.start_on(port, &run_dir) {
                Ok(()) => {
                    if !lost.is_empty() {
                        tracing::debug!(?lost, port, "ports taken before the server bound them");
                    }
                    return Ok(target(port));
                }
                Err(HarnessError::PortInUse { port }) => lost.push(port),
                Err(e) => return Err(e),
            }
        }
        match lost.as_slice() {
            [port] => Err(HarnessError::PortInUse { port: *port }),
            _ => Err(HarnessError::PortsRaced(lost)),
        }
    }

    /// `pg_ctl start` on `port`: `PortInUse` when the server could not bind it.
    fn start_on(&self, port: u16, run_dir: &Path) -> Result<()> {
        // A Unix socket path holds at most 107 bytes: a cluster deep in a folder tree (a moved
        // checkout, a nextest run's folder) listens on TCP only, which is all the harness uses.
        let socket = run_dir.join(format!(".s.PGSQL.{port}"));
        let sockets = if socket.as_os_str().len() <= MAX_SOCKET_PATH {
            run_dir.display().to_string()
        } else {
            String::new()
        };
        let options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='{sockets}' \
             -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
        );
        let mut cmd = self.command("pg_ctl");
        cmd.arg("start")
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.log_file())
            .args(["-w", "-t", "60", "-s", "-o", &options])
            // Own process group: a Ctrl-C meant for the caller must not stop the server.
            .process_group(0);
        if let Some(user) = &self.run_as {
            // pg_ctl opens the log as the server's user, inside a folder root owns.
            fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.log_file())
                .map_err(HarnessError::io(
                    "cannot create the server log",
                    self.log_file(),
                ))?;
            user.chown(&self.log_file())?;
        }
        // Only this attempt's part of the log says why it failed.
        let log_start = fs::metadata(self.log_file()).map_or(0, |m| m.len());
        if let Err(e) = self.run(cmd, "pg_ctl start") {
            let log = fs::read(self.log_file()).unwrap_or_default();
            let log = String::from_utf8_lossy(log.get(log_start as usize..).unwrap_or_default());
            if log.contains("could not bind") || log.contains("Address already in use") {
                return Err(HarnessError::PortInUse { port });
            }
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            return Err(HarnessError::Command {
                command: "pg_ctl start".into(),
                detail: format!(
                    "{e}; log {}: {}",
                    self.log_file().display(),
                    tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
                ),
            });
        }
        Ok(())
    }

    /// Turns TLS on in a running (or initialised) cluster: writes `server.crt` / `server.key`
    /// (PEM) into the data folder, owned by the server's user with mode 0600, sets `ssl = on`
    /// and reloads. The reload is asynchronous: poll a TLS connection (bounded) afterwards.
    pub fn enable_tls(&self, cert_pem: &str, key_pem: &str) -> Result<()> {
        let data = self.data_dir();
        for (name, pem) in [("server.crt", cert_pem), ("server.key", key_pem)] {
            let path = data.join(name);
            crate::state::write_private(&path, pem.as_bytes())?;
            if let Some(user) = &self.run_as {
                user.chown(&path)?;
            }
        }
        let conf = data.join("postgresql.conf");
        let mut text = fs::read_to_string(&conf).map_err(HarnessError::io(
            "cannot read the server configuration",
            &conf,
        ))?;
        text.push_str("\n# insforge-rls: TLS on (enable_tls)\nssl = on\n");
        fs::write(&conf, text).map_err(HarnessError::io(
            "cannot write the server configuration",
            &conf,
        ))?;
        if self.running_port().is_some() {
            let mut cmd = self.command("pg_ctl");
            cmd.arg("reload").arg("-D").arg(&data).arg("-s");
            self.run(cmd, "pg_ctl reload")?;
        }
        Ok(())
    }

    /// Stops the server (fast shutdown, bounded wait) and deletes the cluster folder.
    pub fn destroy(&self) -> Result<()> {
        if self.running_port().is_some() {
            let mut cmd = self.command("pg_ctl");
            cmd.arg("stop")
                .arg("-D")
                .arg(self.data_dir())
                .args(["-m", "fast", "-w", "-t", "30", "-s"]);
            self.run(cmd, "pg_ctl stop")?;
        }
        match fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(HarnessError::io(
                "cannot delete the cluster folder",
                &self.dir,
            )(e)),
            _ => Ok(()),
        }
    }
}

fn port_is_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

fn free_port() -> Result<u16> {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(HarnessError::NoFreePort)
}

/// The longest Unix socket path PostgreSQL accepts (`sun_path` less its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// How many ports `start` tries when it picks them itself.
pub const PORT_ATTEMPTS: usize = 8;

/// How long `pg_ctl -w` may wait; also the bound callers use when polling.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The folder in the server user's home that holds clusters moved out of reach-less state
/// folders, one folder each.
const MOVED_CLUSTERS: &str = "insforge-rls";

/// Where the cluster of state folder `dir` lives: `<dir>/local` when the server's user can
/// reach it (always, when we are not root). As root, a state folder under a private parent —
/// a repository in `/root`, a temporary folder under a 0700 one — is out of the `postgres`
/// user's reach, and initdb would fail to read its password file there; then the cluster gets
/// a folder of its own, `~postgres/insforge-rls/<state folder name>-<hash of its path>`
/// ([`moved_cluster_dir`]), which the state records (`data_dir`) and teardown removes.
pub fn cluster_dir(dir: &StateDir, run_as: Option<&RunAs>) -> Result<PathBuf> {
    let Some(user) = run_as else {
        return Ok(dir.local_dir());
    };
    dir.create()?;
    if user.can_reach(dir.root()) {
        return Ok(dir.local_dir());
    }
    let moved = moved_cluster_dir(dir, user);
    let base = user.home.join(MOVED_CLUSTERS);
    let unreachable = |problem: String| HarnessError::StateUnreachable {
        state: dir.root().to_owned(),
        user: user.name.clone(),
        problem,
    };
    if !user.home.is_dir() || !user.can_reach(&user.home) {
        return Err(unreachable(format!(
            "its home {} (where the cluster would go instead) is not a folder it can reach",
            user.home.display()
        )));
    }
    if !base.is_dir() {
        fs::create_dir_all(&base).map_err(HarnessError::io(
            "cannot create the folder for moved clusters",
            &base,
        ))?;
    }
    // Searchable, not listable: each cluster folder inside is the server user's own (0700).
    fs::set_permissions(&base, fs::Permissions::from_mode(0o711))
        .map_err(HarnessError::io("cannot set permissions", &base))?;
    if !user.can_reach(&base) {
        return Err(unreachable(format!(
            "nor can it reach {} (where the cluster would go instead)",
            base.display()
        )));
    }
    tracing::info!(state = %dir.root().display(), cluster = %moved.display(), user = %user.name,
        "the server's user cannot reach the state folder: the cluster lives in its home");
    Ok(moved)
}

/// `~<user>/insforge-rls/<state folder name>-<hash of its canonical path>`: one folder per
/// state folder, named so a person can tell whose it is, short enough for a socket path.
pub fn moved_cluster_dir(dir: &StateDir, user: &RunAs) -> PathBuf {
    let root = dir
        .root()
        .canonicalize()
        .unwrap_or_else(|_| dir.root().to_path_buf());
    let name: String = root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(32)
        .collect();
    let hash = crate::scratch::fnv1a(root.to_string_lossy().as_bytes());
    user.home
        .join(MOVED_CLUSTERS)
        .join(format!("{name}-{hash:016x}"))
}

/// The cluster folder a recorded `data_dir` stands for: the moved folder when it is the one
/// this state folder would get, else `<dir>/local` — never any other folder a state file
/// names, since teardown deletes it.
fn recorded_cluster_dir(dir: &StateDir, data_dir: &Path, run_as: Option<&RunAs>) -> PathBuf {
    let moved = run_as.map(|u| moved_cluster_dir(dir, u));
    match data_dir.parent() {
        Some(parent) if Some(parent) == moved.as_deref() => parent.to_path_buf(),
        _ => dir.local_dir(),
    }
}

/// The local backend.
#[derive(Debug, Clone, Copy)]
pub struct Local;

impl Backend for Local {
    fn name(&self) -> &'static str {
        "local"
    }

    fn start<'a>(
        &'a self,
        cx: &'a StartCx<'a>,
        steps: &'a mut Steps,
    ) -> BoxFuture<'a, Result<Started>> {
        async move {
            let bin_dir = find_bin_dir()?;
            let run_as = RunAs::detect()?;
            let (recorded, previous_port) = match cx.previous.map(|s| &s.server) {
                Some(Server::Local { data_dir, port, .. }) => (
                    Some(recorded_cluster_dir(cx.dir, data_dir, run_as.as_ref())),
                    Some(*port),
                ),
                _ => (None, None),
            };
            // A cluster an earlier setup made stays where it is; else where the user reaches.
            let folder = match recorded {
                Some(folder) if folder.join("pgdata").is_dir() => folder,
                _ => cluster_dir(cx.dir, run_as.as_ref())?,
            };
            let cluster = Cluster::new(folder.clone(), bin_dir.clone(), run_as.clone());
            let was_running = cluster.running_port().is_some();
            let port = cx.opts.port;
            let admin = tokio::task::spawn_blocking(move || cluster.start(port, previous_port))
                .await
                .map_err(|source| HarnessError::TaskFailed {
                    task: "starting the local cluster",
                    source,
                })??;
            let server = Server::Local {
                data_dir: folder.join("pgdata"),
                bin_dir,
                port: admin.port,
                run_as: run_as.map(|u| u.name),
            };
            cx.record(&server, &admin)?;
            steps.done("start local cluster");
            admin
                .connect_within(START_TIMEOUT)
                .await?
                .close()
                .await
                .ok();
            Ok(Started {
                server,
                admin,
                reused: was_running,
            })
        }
        .boxed()
    }

    fn scratch_location(&self, dir: &StateDir) -> Option<PathBuf> {
        Some(crate::scratch::local_location(dir.root()))
    }

    fn leftovers(&self, dir: &StateDir, _opts: &SetupOptions) -> Result<Leftovers> {
        let run_as = RunAs::detect()?;
        Ok(Leftovers {
            cluster: Some(cluster_dir(dir, run_as.as_ref())?),
            scratch: self.scratch_location(dir),
            container: None,
        })
    }

    fn stop<'a>(
        &'a self,
        dir: &'a StateDir,
        state: &'a State,
    ) -> BoxFuture<'a, Result<TeardownReport>> {
        async move {
            let mut report = TeardownReport::default();
            let Server::Local {
                data_dir,
                bin_dir,
                run_as,
                ..
            } = &state.server
            else {
                return Ok(report);
            };
            let run_as = run_as.as_deref().map(RunAs::named).transpose()?;
            let folder = recorded_cluster_dir(dir, data_dir, run_as.as_ref());
            let cluster = Cluster::new(folder.clone(), bin_dir.clone(), run_as);
            tokio::task::spawn_blocking(move || cluster.destroy())
                .await
                .map_err(|source| HarnessError::TaskFailed {
                    task: "removing the local cluster",
                    source,
                })??;
            report
                .removed
                .push(format!("local cluster in {}", folder.display()));
            if folder != dir.local_dir()
                && let Some(base) = folder.parent()
            {
                // The shared folder of moved clusters goes with its last one.
                let _ = fs::remove_dir(base);
            }
            let scratch = crate::scratch::local_location(dir.root());
            if scratch.exists() {
                crate::scratch::remove_local(&scratch)?;
                report
                    .removed
                    .push(format!("scratch tablespace folder {}", scratch.display()));
            }
            Ok(report)
        }
        .boxed()
    }

    fn status<'a>(&'a self, server: &'a Server) -> BoxFuture<'a, Option<String>> {
        async move {
            let Server::Local {
                data_dir,
                bin_dir,
                run_as,
                ..
            } = server
            else {
                return None;
            };
            let run_as = match run_as.as_deref().map(RunAs::named).transpose() {
                Ok(run_as) => run_as,
                Err(e) => return Some(format!("cluster {}: {e}", data_dir.display())),
            };
            let folder = data_dir.parent().unwrap_or(data_dir).to_path_buf();
            let cluster = Cluster::new(folder, bin_dir.clone(), run_as);
            let port = tokio::task::spawn_blocking(move || cluster.running_port())
                .await
                .ok()
                .flatten();
            Some(match port {
                Some(port) => format!("cluster {} running on port {port}", data_dir.display()),
                None => format!("cluster {} not running", data_dir.display()),
            })
        }
        .boxed()
    }

    fn describe(&self, server: &Server) -> Option<String> {
        match server {
            Server::Local { data_dir, .. } => Some(format!("cluster {}", data_dir.display())),
            _ => None,
        }
    }
}
