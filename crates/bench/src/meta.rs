//! What every result file records about where and how it was measured.

use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Meta {
    /// The command that produced the figures, as typed.
    pub command: String,
    /// `full` or `quick`.
    pub mode: String,
    /// `release` or `debug` (a debug build's figures are not comparable).
    pub profile: String,
    /// UTC, RFC 3339.
    pub started_at: String,
    pub took_secs: f64,
    pub machine: Machine,
    pub versions: Versions,
    /// `git describe`-like: short commit, `+dirty` when the tree had changes.
    pub commit: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    pub cpu_model: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub kernel: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Versions {
    pub rustc: String,
    pub postgres: String,
    pub pgbench: Option<String>,
    /// This workspace's crates (xtask, harness, todo-app share one version).
    pub crate_version: String,
    /// Where the benchmarked Postgres runs: `local`, `docker` or `url`.
    pub backend: String,
}

impl Machine {
    pub fn detect() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == "model name").then(|| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        let processors = cpuinfo
            .lines()
            .filter(|l| l.split(':').next().is_some_and(|k| k.trim() == "processor"))
            .count();
        let cores = std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(processors.max(1));
        let memory_gib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines().find_map(|l| {
                    let rest = l.strip_prefix("MemTotal:")?;
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<f64>()
                        .ok()
                })
            })
            .map_or(0.0, |kib| (kib / 1024.0 / 1024.0 * 10.0).round() / 10.0);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "unknown".into());
        Self {
            cpu_model,
            cores,
            memory_gib,
            kernel,
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "{} · {} cores · {} GiB · Linux {}",
            self.cpu_model, self.cores, self.memory_gib, self.kernel
        )
    }
}

/// First line of `program args…`, when it runs.
pub fn first_line(program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .map(|l| l.trim().to_owned())
}

pub fn rustc_version() -> String {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    first_line(rustc, &["--version"]).unwrap_or_else(|| "unknown".into())
}

pub fn commit(root: &Path) -> Option<String> {
    let root = root.to_str()?;
    let head = first_line("git", &["-C", root, "rev-parse", "--short", "HEAD"])?;
    let dirty = Command::new("git")
        .args(["-C", root, "status", "--porcelain", "--untracked-files=no"])
        .output()
        .ok()
        .is_some_and(|o| !o.stdout.is_empty());
    Some(if dirty { format!("{head}+dirty") } else { head })
}

pub fn now_utc() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
