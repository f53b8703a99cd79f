//! Cleans up an ephemeral server when what it belongs to exits, however it exits: the test
//! process that made it (EOF on a pipe only that process holds), or a whole nextest run (the
//! runner process is gone). A small shell waits for that, then stops and deletes.

use std::fs;
use std::path::Path;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::Mutex;

use crate::backend::Leftovers;
use crate::error::{HarnessError, Result};

// The write ends of the guardians' pipes. Never dropped: the kernel closes them at exit,
// which is the guardian's signal.
static PIPES: Mutex<Vec<ChildStdin>> = Mutex::new(Vec::new());

// $1 state root, $2 container, $3 scratch folder, $4/$5 a process (pid, start time) to outlive
// instead of the pipe, $6 a local cluster folder (under the state root, or moved out of it). A process is gone when /proc no longer shows it with that start time
// (so a reused pid does not keep the server alive). Nothing tells a non-parent when a process
// ends, so the runner is looked at five times a second; the pipe needs no polling.
const SCRIPT: &str = r#"
state=$1 container=$2 scratch=$3 pid=$4 start=$5 cluster=$6
started() {
  s=
  { read -r s </proc/"$1"/stat; } 2>/dev/null || return 0
  s=${s##*) }
  set -- $s
  echo "${20}"
}
if [ -n "$pid" ]; then
  while [ "$(started "$pid")" = "$start" ]; do sleep 0.2; done
else
  cat >/dev/null
fi
pidfile="${cluster:-$state/local}/pgdata/postmaster.pid"
if [ -f "$pidfile" ]; then
  pg=$(head -n 1 "$pidfile")
  kill -QUIT "$pg" 2>/dev/null
  i=0
  while kill -0 "$pg" 2>/dev/null && [ "$i" -lt 200 ]; do sleep 0.05; i=$((i+1)); done
fi
if [ -n "$container" ]; then docker rm -f -v "$container" >/dev/null 2>&1; fi
if [ -n "$scratch" ]; then rm -rf "$scratch"; fi
if [ -n "$cluster" ]; then rm -rf "$cluster"; fi
rm -rf "$state"
"#;

/// Starts a guardian that, once this process has exited, removes what its backend says an
/// ephemeral server leaves ([`Leftovers`]: a container, a local cluster — stopped first —, a
/// scratch tablespace folder) and deletes `state_root`.
pub fn watch(state_root: &Path, leftovers: &Leftovers) -> Result<()> {
    let mut child = spawn(state_root, leftovers, None, Stdio::piped())?;
    let stdin = child.stdin.take().ok_or_else(|| HarnessError::Command {
        command: "sh (cleanup guardian)".into(),
        detail: "no stdin pipe".into(),
    })?;
    PIPES.lock().unwrap_or_else(|p| p.into_inner()).push(stdin);
    Ok(())
}

/// Like [`watch`], but the server outlives this process and goes when `owner` (a process
/// that is not our child, e.g. the nextest runner) has exited.
pub fn watch_process(state_root: &Path, leftovers: &Leftovers, owner: &ProcessId) -> Result<()> {
    spawn(state_root, leftovers, Some(owner), Stdio::null()).map(drop)
}

fn spawn(
    state_root: &Path,
    leftovers: &Leftovers,
    owner: Option<&ProcessId>,
    stdin: Stdio,
) -> Result<std::process::Child> {
    Command::new("sh")
        .arg("-c")
        .arg(SCRIPT)
        .arg("insforge-rls-guardian")
        .arg(state_root)
        .arg(leftovers.container.as_deref().unwrap_or(""))
        .arg(leftovers.scratch.as_deref().unwrap_or(Path::new("")))
        .arg(owner.map_or(String::new(), |o| o.pid.to_string()))
        .arg(owner.map_or(String::new(), |o| o.start_time.clone()))
        .arg(leftovers.cluster.as_deref().unwrap_or(Path::new("")))
        .stdin(stdin)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group, so a Ctrl-C to the tests does not kill it before it cleans up.
        .process_group(0)
        .spawn()
        .map_err(|e| HarnessError::Command {
            command: "sh (cleanup guardian)".into(),
            detail: e.to_string(),
        })
}

/// A process as the kernel tells it apart: its pid and its start time (so a pid reused after
/// it exited is not mistaken for it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessId {
    pub pid: u32,
    /// Field 22 of `/proc/<pid>/stat` (clock ticks since boot), kept as the kernel writes it.
    pub start_time: String,
    /// The command name (`comm`, at most 15 characters).
    pub name: String,
    pub parent: u32,
}

impl ProcessId {
    /// Reads `/proc/<pid>/stat`; `None` when there is no such process (or no `/proc`).
    pub fn of(pid: u32) -> Option<ProcessId> {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // "pid (comm) state ppid … starttime …": comm may hold spaces and parentheses.
        let open = stat.find('(')?;
        let close = stat.rfind(')')?;
        let name = stat.get(open + 1..close)?.to_owned();
        let rest: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
        // rest[0] is field 3 (state), so field N is rest[N - 3].
        Some(ProcessId {
            pid,
            parent: rest.get(1)?.parse().ok()?,
            start_time: (*rest.get(19)?).to_owned(),
            name,
        })
    }

    /// The nearest ancestor of this process whose name starts with `prefix`, else the parent.
    pub fn ancestor_named(prefix: &str) -> Option<ProcessId> {
        let parent = ProcessId::of(std::os::unix::process::parent_id())?;
        let mut at = parent.clone();
        // Bounded: pid 1 has parent 0, and no real process tree is this deep.
        for _ in 0..64 {
            if at.name.starts_with(prefix) {
                return Some(at);
            }
            match ProcessId::of(at.parent) {
                Some(next) if at.parent > 1 => at = next,
                _ => break,
            }
        }
        Some(parent)
    }
}

use std::os::unix::process::CommandExt as _;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process_and_finds_its_parent() {
        let me = ProcessId::of(std::process::id()).expect("/proc shows this process");
        assert_eq!(me.parent, std::os::unix::process::parent_id());
        assert!(!me.start_time.is_empty() && me.start_time.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(
            ProcessId::of(me.pid),
            Some(me.clone()),
            "stable between reads"
        );
        let none = ProcessId::ancestor_named("no-such-process-name").expect("a parent");
        assert_eq!(none.pid, me.parent, "falls back to the parent");
    }

    #[test]
    fn a_process_guardian_cleans_up_once_the_process_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("nextest-run");
        let scratch = dir.path().join("scratch");
        // A cluster folder moved out of the state folder (its user could not reach that).
        let cluster = dir.path().join("moved-cluster");
        fs::create_dir_all(state.join("local")).unwrap();
        fs::create_dir_all(&scratch).unwrap();
        fs::create_dir_all(cluster.join("pgdata")).unwrap();
        let mut owner = Command::new("sleep").arg("30").spawn().unwrap();
        let id = ProcessId::of(owner.id()).unwrap();
        let leftovers = Leftovers {
            scratch: Some(scratch.clone()),
            cluster: Some(cluster.clone()),
            container: None,
        };
        watch_process(&state, &leftovers, &id).unwrap();
        // Still there while the owner runs (the guardian looked at least twice by then).
        let mut ticks = 0;
        while ticks < 5 && state.exists() {
            std::thread::sleep(std::time::Duration::from_millis(100));
            ticks += 1;
        }
        assert!(
            state.exists() && scratch.exists() && cluster.exists(),
            "removed while its owner runs"
        );
        owner.kill().unwrap();
        owner.wait().unwrap();
        let mut polls = 0;
        while (state.exists() || scratch.exists() || cluster.exists()) && polls < 200 {
            std::thread::sleep(std::time::Duration::from_millis(50));
            polls += 1;
        }
        assert!(!state.exists(), "state folder left after its owner exited");
        assert!(
            !scratch.exists(),
            "scratch folder left after its owner exited"
        );
        assert!(
            !cluster.exists(),
            "cluster folder left after its owner exited"
        );
    }
}
