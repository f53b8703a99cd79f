//! Cleans up an ephemeral server when the process that made it exits, however it exits.
//! A small shell waits for EOF on a pipe only this process holds, then stops and deletes.

use std::path::Path;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::Mutex;

use crate::error::{HarnessError, Result};

// The write ends of the guardians' pipes. Never dropped: the kernel closes them at exit,
// which is the guardian's signal.
static PIPES: Mutex<Vec<ChildStdin>> = Mutex::new(Vec::new());

const SCRIPT: &str = r#"
cat >/dev/null
pidfile="$1/local/pgdata/postmaster.pid"
if [ -f "$pidfile" ]; then
  pid=$(head -n 1 "$pidfile")
  kill -QUIT "$pid" 2>/dev/null
  i=0
  while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 200 ]; do sleep 0.05; i=$((i+1)); done
fi
if [ -n "$2" ]; then docker rm -f -v "$2" >/dev/null 2>&1; fi
if [ -n "$3" ]; then rm -rf "$3"; fi
rm -rf "$1"
"#;

/// Starts a guardian that, once this process has exited, stops the local cluster under
/// `state_root` (if any), removes `container` (if given), the local cluster's `scratch`
/// tablespace folder (if given) and deletes `state_root`.
pub fn watch(state_root: &Path, container: Option<&str>, scratch: Option<&Path>) -> Result<()> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(SCRIPT)
        .arg("insforge-rls-guardian")
        .arg(state_root)
        .arg(container.unwrap_or(""))
        .arg(scratch.unwrap_or(Path::new("")))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group, so a Ctrl-C to the tests does not kill it before it cleans up.
        .process_group(0)
        .spawn()
        .map_err(|e| HarnessError::Command {
            command: "sh (cleanup guardian)".into(),
            detail: e.to_string(),
        })?;
    let stdin = child.stdin.take().ok_or_else(|| HarnessError::Command {
        command: "sh (cleanup guardian)".into(),
        detail: "no stdin pipe".into(),
    })?;
    PIPES.lock().unwrap_or_else(|p| p.into_inner()).push(stdin);
    Ok(())
}

use std::os::unix::process::CommandExt as _;
