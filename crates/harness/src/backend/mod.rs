//! The ways to get a Postgres server, one module each: a container ([`docker`]), the machine's
//! PostgreSQL binaries ([`local`]), or a server someone else runs ([`url`]).
//!
//! `setup`, `teardown`, `status` and the test guardian reach a server only through the
//! [`Backend`] its module implements: start, stop, status, where per-test databases go in
//! memory, and what an ephemeral server leaves to clean up. None of them matches on a backend.
//! A new backend is a module implementing [`Backend`] plus its registration here: its
//! [`BackendChoice`] and [`Server`] variants and the two lines that name its module
//! ([`BackendChoice::backend`], [`Server::choice`]).

pub mod docker;
pub mod local;
pub mod url;

use std::path::PathBuf;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::error::{HarnessError, Result};
use crate::provision::{SetupOptions, Steps, TeardownReport};
use crate::state::{State, StateDir};
use crate::target::PgTarget;

/// Which backend `setup` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendChoice {
    /// Docker when an engine answers, else local binaries.
    #[default]
    Auto,
    Docker,
    Local,
    Url,
}

impl BackendChoice {
    /// Every backend `--backend` can name (besides `auto`).
    pub const ALL: [BackendChoice; 3] = [Self::Docker, Self::Local, Self::Url];

    /// The registration: the module behind each backend (`None` for `auto`, resolved first).
    pub(crate) fn backend(self) -> Option<&'static dyn Backend> {
        match self {
            Self::Auto => None,
            Self::Docker => Some(&docker::Docker),
            Self::Local => Some(&local::Local),
            Self::Url => Some(&url::Url),
        }
    }

    fn name(self) -> &'static str {
        self.backend().map_or("auto", |b| b.name())
    }
}

impl std::str::FromStr for BackendChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.to_ascii_lowercase();
        std::iter::once(Self::Auto)
            .chain(Self::ALL)
            .find(|choice| choice.name() == wanted)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|c| c.name()).collect();
                format!(
                    "unknown backend `{wanted}`: use auto, {} or {}",
                    names[..names.len() - 1].join(", "),
                    names[names.len() - 1]
                )
            })
    }
}

impl std::fmt::Display for BackendChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How the server was provisioned, and what teardown must remove: each backend's own record,
/// kept in `state.json` under `"backend": "<name>"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "backend", rename_all = "lowercase")]
pub enum Server {
    /// A container started through testcontainers; teardown removes it.
    Docker {
        container_id: String,
        container_name: String,
        image: String,
    },
    /// A cluster from the machine's PostgreSQL binaries: under the state folder, or (when the
    /// server's user cannot reach that) in a folder of its own, [`local::cluster_dir`].
    Local {
        data_dir: PathBuf,
        bin_dir: PathBuf,
        port: u16,
        run_as: Option<String>,
    },
    /// A database someone else runs; teardown leaves it alone.
    Url,
}

impl Server {
    /// The backend that made this server (registration: one line per backend).
    pub fn choice(&self) -> BackendChoice {
        match self {
            Server::Docker { .. } => BackendChoice::Docker,
            Server::Local { .. } => BackendChoice::Local,
            Server::Url => BackendChoice::Url,
        }
    }

    pub fn kind(&self) -> &'static str {
        self.backend().name()
    }

    /// Where the server is, for a person (`container insforge-rls-… (postgres:15)`,
    /// `cluster /…/pgdata`); `None` when there is nothing to say beyond its URL.
    pub fn describe(&self) -> Option<String> {
        self.backend().describe(self)
    }

    pub(crate) fn backend(&self) -> &'static dyn Backend {
        // Every variant maps to a concrete backend, never `auto`.
        self.choice().backend().unwrap_or(&url::Url)
    }
}

/// What [`Backend::start`] is given.
pub(crate) struct StartCx<'a> {
    pub dir: &'a StateDir,
    /// What an earlier setup in this folder recorded (the same backend: setup checked).
    pub previous: Option<&'a State>,
    pub opts: &'a SetupOptions,
}

impl StartCx<'_> {
    /// Writes a provisional state as soon as a server exists, so a rerun after an interruption
    /// reuses it instead of orphaning it.
    pub fn record(&self, server: &Server, admin: &PgTarget) -> Result<()> {
        crate::provision::save_early(self.dir, self.previous, server, admin, self.opts)
    }
}

/// A server [`Backend::start`] started or found running.
#[derive(Debug)]
pub(crate) struct Started {
    pub server: Server,
    /// A superuser (or the URL's user) on the server's maintenance database (or the URL's).
    pub admin: PgTarget,
    /// It was running before this setup.
    pub reused: bool,
}

/// What an ephemeral server's guardian removes once its owner has exited, besides the state
/// folder (see `guardian`). Known before the server starts, so no exit path leaks one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Leftovers {
    /// A container to `docker rm -f`.
    pub container: Option<String>,
    /// A local cluster folder: its postmaster is stopped, then the folder deleted.
    pub cluster: Option<PathBuf>,
    /// A folder outside the state folder (the scratch tablespace in `/dev/shm`).
    pub scratch: Option<PathBuf>,
}

/// One way to get a Postgres server. The futures are boxed so setup can hold any backend as
/// `&dyn Backend`.
pub(crate) trait Backend: Sync {
    /// The name `--backend` takes and `state.json` records.
    fn name(&self) -> &'static str;

    /// Starts the server this state folder records (or a new one), waits until it answers and
    /// returns how to reach it as a superuser. Records a provisional state (`cx.record`) as
    /// soon as something exists that teardown must find.
    fn start<'a>(
        &'a self,
        cx: &'a StartCx<'a>,
        steps: &'a mut Steps,
    ) -> BoxFuture<'a, Result<Started>>;

    /// Whether setup made this server: then it creates the app database and the template on
    /// it, and a template it cannot make is an error. A server someone else runs names the
    /// app database in its URL, and a missing template is a warning.
    fn owns_server(&self) -> bool {
        true
    }

    /// Where the server keeps per-test databases in memory (a folder the server itself can
    /// make), or `None` when it has no such place.
    fn scratch_location(&self, dir: &StateDir) -> Option<PathBuf>;

    /// What to clean up after an ephemeral server `opts` would make in `dir`.
    fn leftovers(&self, dir: &StateDir, opts: &SetupOptions) -> Result<Leftovers>;

    /// Stops and deletes what `start` made (and nothing of a server it did not make).
    fn stop<'a>(
        &'a self,
        dir: &'a StateDir,
        state: &'a State,
    ) -> BoxFuture<'a, Result<TeardownReport>>;

    /// The server as its backend sees it (a container running or not, a cluster's port), for
    /// `status`; `None` when there is nothing to look at beyond a connection.
    fn status<'a>(&'a self, server: &'a Server) -> BoxFuture<'a, Option<String>>;

    /// Where the server is, for a person.
    fn describe(&self, server: &Server) -> Option<String>;
}

/// Docker when an engine answers, else local binaries, else an error naming both ways out.
pub async fn auto() -> Result<BackendChoice> {
    let docker = match docker::ping().await {
        Ok(()) => return Ok(BackendChoice::Docker),
        Err(e) => e,
    };
    match local::find_bin_dir() {
        Ok(_) => Ok(BackendChoice::Local),
        Err(local) => Err(HarnessError::NoBackend {
            docker: Box::new(docker),
            local: Box::new(local),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_backend_is_named_and_parsed_back() {
        for choice in std::iter::once(BackendChoice::Auto).chain(BackendChoice::ALL) {
            assert_eq!(choice.to_string().parse::<BackendChoice>(), Ok(choice));
        }
        assert_eq!("LOCAL".parse::<BackendChoice>(), Ok(BackendChoice::Local));
        assert_eq!(
            "podman".parse::<BackendChoice>(),
            Err("unknown backend `podman`: use auto, docker, local or url".into())
        );
    }

    #[test]
    fn every_server_record_names_its_backend() {
        let servers = [
            Server::Docker {
                container_id: "c".into(),
                container_name: "n".into(),
                image: "i".into(),
            },
            Server::Local {
                data_dir: "/d/pgdata".into(),
                bin_dir: "/b".into(),
                port: 5432,
                run_as: None,
            },
            Server::Url,
        ];
        for (server, choice) in servers.iter().zip(BackendChoice::ALL) {
            assert_eq!(server.choice(), choice);
            assert_eq!(server.kind(), choice.to_string());
            let json = serde_json::to_value(server).unwrap();
            assert_eq!(json["backend"], server.kind());
        }
    }
}
