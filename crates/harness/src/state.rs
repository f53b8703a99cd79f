//! What `setup` made and how to reach it, kept in `target/insforge-rls/` for tests, the app
//! and `teardown`. Files holding passwords are written atomically with mode 0600.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

pub use crate::backend::Server;
use crate::error::{HarnessError, Result};
use crate::target::PgTarget;

/// First line of every env file setup writes; a file without it belongs to the user.
pub const ENV_MARKER: &str =
    "# Written by `cargo xtask setup` (insforge-rls). Safe to delete; rewritten by setup.";

/// The variable naming the state folder when no command chose one.
pub const STATE_DIR_ENV: &str = "INSFORGE_RLS_STATE_DIR";

const STATE_FILE: &str = "state.json";
const ENV_FILE: &str = "env";

/// Everything setup made. Serialized as JSON; contains secrets, so mode 0600.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub format: u32,
    pub server: Server,
    /// A superuser (or the URL backend's given user) on the app database.
    pub admin: PgTarget,
    /// The app's login role on the app database.
    pub app: PgTarget,
    /// The migrated template each test clones, when the server lets us create databases.
    pub template: Option<String>,
    pub jwt_secret: String,
    pub created_at: String,
    /// The extra env file setup wrote (e.g. the workspace `.env`), which teardown removes.
    #[serde(default)]
    pub env_export: Option<PathBuf>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("server", &self.server)
            .field("admin", &self.admin)
            .field("app", &self.app)
            .field("template", &self.template)
            .field("jwt_secret", &"***")
            .finish()
    }
}

impl State {
    pub const FORMAT: u32 = 1;

    /// `KEY=value` lines for the app, psql and shell scripts.
    pub fn env_lines(&self) -> Vec<(String, String)> {
        let mut lines = vec![
            ("DATABASE_URL".into(), self.app.url()),
            ("INSFORGE_ADMIN_DATABASE_URL".into(), self.admin.url()),
            ("INSFORGE_JWT_SECRET".into(), self.jwt_secret.clone()),
            ("INSFORGE_RLS_APP_ROLE".into(), self.app.user.clone()),
        ];
        if let Some(t) = &self.template {
            lines.push(("INSFORGE_RLS_TEMPLATE_DB".into(), t.clone()));
        }
        lines
    }
}

/// The folder setup writes into, and the files in it.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

/// The state folder a command chose for this whole process (its `--state-dir`), read by
/// [`StateDir::discover`] before the environment.
static PROCESS_STATE_DIR: OnceLock<PathBuf> = OnceLock::new();

/// Makes `dir` this process's state folder: every later [`StateDir::discover`] (setup's state,
/// where ephemeral servers are made) returns it. Set once, at start-up; a second call with
/// another folder is refused and returns the folder already in use.
pub fn use_process_state_dir(dir: &Path) -> std::result::Result<(), PathBuf> {
    let chosen = PROCESS_STATE_DIR.get_or_init(|| dir.to_path_buf());
    if chosen == dir {
        Ok(())
    } else {
        Err(chosen.clone())
    }
}

impl StateDir {
    /// The folder given to [`use_process_state_dir`], else `INSFORGE_RLS_STATE_DIR`, else
    /// `<workspace>/target/insforge-rls`.
    pub fn discover() -> Self {
        if let Some(dir) = PROCESS_STATE_DIR.get() {
            return Self::at(dir.clone());
        }
        match std::env::var_os(STATE_DIR_ENV) {
            Some(dir) if !dir.is_empty() => Self::at(PathBuf::from(dir)),
            _ => Self::at(workspace_root().join("target").join("insforge-rls")),
        }
    }

    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn state_file(&self) -> PathBuf {
        self.root.join(STATE_FILE)
    }

    pub fn env_file(&self) -> PathBuf {
        self.root.join(ENV_FILE)
    }

    pub fn local_dir(&self) -> PathBuf {
        self.root.join("local")
    }

    pub fn create(&self) -> Result<()> {
        fs::create_dir_all(&self.root).map_err(HarnessError::io(
            "cannot create the state folder",
            &self.root,
        ))
    }

    /// The saved state, `None` when setup has not run (or teardown removed it).
    pub fn load(&self) -> Result<Option<State>> {
        let path = self.state_file();
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(HarnessError::io("cannot read the state file", &path)(e)),
        };
        let state: State = serde_json::from_str(&text).map_err(|e| HarnessError::BadState {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if state.format != State::FORMAT {
            return Err(HarnessError::BadState {
                path,
                reason: format!(
                    "format {} is not the supported {}",
                    state.format,
                    State::FORMAT
                ),
            });
        }
        Ok(Some(state))
    }

    pub fn require(&self) -> Result<State> {
        self.load()?.ok_or_else(|| HarnessError::NotSetUp {
            path: self.state_file(),
        })
    }

    /// Writes the state and its env file (both 0600, atomically).
    pub fn save(&self, state: &State) -> Result<()> {
        self.create()?;
        let json = serde_json::to_string_pretty(state).map_err(HarnessError::StateSerialize)?;
        write_private(&self.state_file(), json.as_bytes())?;
        write_private(&self.env_file(), render_env(state).as_bytes())
    }

    /// Writes the env file to `path` too (e.g. the workspace `.env` the app reads), unless a
    /// file is there that setup did not write.
    pub fn export_env(&self, state: &State, path: &Path) -> Result<()> {
        match fs::read_to_string(path) {
            Ok(existing) if !existing.starts_with(ENV_MARKER) => {
                return Err(HarnessError::WontClobber {
                    path: path.to_owned(),
                    state_env: self.env_file(),
                });
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(HarnessError::io("cannot read", path)(e)),
        }
        write_private(path, render_env(state).as_bytes())
    }

    /// Removes the state and env files, and `env_export` if setup wrote it.
    pub fn forget(&self, env_export: Option<&Path>) -> Result<()> {
        if let Some(path) = env_export
            && fs::read_to_string(path).is_ok_and(|s| s.starts_with(ENV_MARKER))
        {
            remove_if_exists(path)?;
        }
        remove_if_exists(&self.env_file())?;
        remove_if_exists(&self.state_file())?;
        // Only remove the folder when nothing else (a user's file, a log) is in it.
        let _ = fs::remove_dir(&self.root);
        Ok(())
    }
}

fn render_env(state: &State) -> String {
    let mut out = String::from(ENV_MARKER);
    out.push('\n');
    for (k, v) in state.env_lines() {
        out.push_str(&format!("{k}={v}\n"));
    }
    out
}

fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(HarnessError::io("cannot remove", path)(e))
        }
        _ => Ok(()),
    }
}

/// Write-then-rename, so an interrupted setup never leaves half a file behind.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(HarnessError::io("cannot write", &tmp))?;
    file.set_permissions(fs::Permissions::from_mode(0o600))
        .and_then(|()| file.write_all(bytes))
        .and_then(|()| file.sync_all())
        .map_err(HarnessError::io("cannot write", &tmp))?;
    fs::rename(&tmp, path).map_err(HarnessError::io("cannot write", path))
}

/// The workspace's one finder, [`pg_identity::workspace_root`], under the name callers use.
pub use pg_identity::workspace_root;

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> State {
        let admin = PgTarget::parse("postgres://postgres:adminpw@127.0.0.1:5999/insforge").unwrap();
        State {
            format: State::FORMAT,
            server: Server::Url,
            app: admin.with_login("rls_app", "apppw"),
            admin,
            template: Some("insforge_rls_template".into()),
            jwt_secret: "s".repeat(40),
            created_at: "now".into(),
            env_export: None,
        }
    }

    #[test]
    fn round_trips_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let sd = StateDir::at(dir.path().join("st"));
        assert_eq!(sd.load().unwrap(), None);
        sd.save(&sample()).unwrap();
        assert_eq!(sd.load().unwrap(), Some(sample()));
        let mode = fs::metadata(sd.state_file()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let env = fs::read_to_string(sd.env_file()).unwrap();
        assert!(env.starts_with(ENV_MARKER));
        assert!(env.contains("DATABASE_URL=postgres://rls_app:apppw@127.0.0.1:5999/insforge"));
    }

    #[test]
    fn never_clobbers_a_users_env_file_but_rewrites_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let sd = StateDir::at(dir.path().join("st"));
        let users = dir.path().join(".env");
        fs::write(&users, "MY_SETTING=1\n").unwrap();
        let err = sd.export_env(&sample(), &users).unwrap_err();
        assert!(matches!(err, HarnessError::WontClobber { .. }));
        assert_eq!(fs::read_to_string(&users).unwrap(), "MY_SETTING=1\n");

        let ours = dir.path().join(".env.ours");
        sd.export_env(&sample(), &ours).unwrap();
        sd.export_env(&sample(), &ours).unwrap();
        sd.forget(Some(&users)).unwrap();
        assert!(users.exists(), "a user's file survives forget");
        sd.forget(Some(&ours)).unwrap();
        assert!(!ours.exists());
    }

    /// State files as setup wrote them before the backends became modules (`Server` lived
    /// here): every backend's record still loads, unchanged, and is written back the same.
    #[test]
    fn state_files_written_before_the_backend_seam_still_load() {
        let target = r#"{"host": "127.0.0.1", "port": 5999, "user": "postgres",
            "password": "adminpw", "database": "insforge"}"#;
        let app = r#"{"host": "127.0.0.1", "port": 5999, "user": "rls_app",
            "password": "apppw", "database": "insforge"}"#;
        let servers = [
            (
                r#"{"backend": "docker", "container_id": "0a1b", "container_name":
                    "insforge-rls-1234abcd", "image": "postgres:15"}"#,
                Server::Docker {
                    container_id: "0a1b".into(),
                    container_name: "insforge-rls-1234abcd".into(),
                    image: "postgres:15".into(),
                },
            ),
            (
                r#"{"backend": "local", "data_dir": "/w/target/insforge-rls/local/pgdata",
                    "bin_dir": "/usr/lib/postgresql/15/bin", "port": 5999,
                    "run_as": "postgres"}"#,
                Server::Local {
                    data_dir: "/w/target/insforge-rls/local/pgdata".into(),
                    bin_dir: "/usr/lib/postgresql/15/bin".into(),
                    port: 5999,
                    run_as: Some("postgres".into()),
                },
            ),
            (r#"{"backend": "url"}"#, Server::Url),
        ];
        for (server_json, server) in servers {
            let dir = tempfile::tempdir().unwrap();
            let sd = StateDir::at(dir.path());
            let text = format!(
                r#"{{"format": 1, "server": {server_json}, "admin": {target}, "app": {app},
                    "template": "insforge_rls_template", "jwt_secret": "{secret}",
                    "created_at": "unix:1700000000"}}"#,
                secret = "s".repeat(40)
            );
            fs::write(sd.state_file(), &text).unwrap();
            let state = sd.require().unwrap();
            assert_eq!(state.server, server);
            assert_eq!(state.admin.url(), sample().admin.url());
            assert_eq!(state.app.user, "rls_app");
            assert_eq!(state.env_export, None);
            let written: serde_json::Value =
                serde_json::from_str(&serde_json::to_string(&state).unwrap()).unwrap();
            let read: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(
                written["server"], read["server"],
                "the record is written as it was"
            );
        }
    }

    #[test]
    fn debug_hides_secrets() {
        let shown = format!("{:?}", sample());
        assert!(
            !shown.contains("adminpw")
                && !shown.contains("apppw")
                && !shown.contains(&"s".repeat(40))
        );
    }
}
