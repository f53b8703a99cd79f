//! CPU time, to say what bounds a throughput figure: this process (the app and its load
//! generator), the measured server's postgres processes, and waited-for children (pgbench).
//! Linux `/proc` only; figures are `None` where it cannot be read.

use std::path::Path;

/// Linux reports process times in clock ticks of 1/100 s (USER_HZ) on every common platform.
const TICKS_PER_SEC: f64 = 100.0;

/// CPU seconds used so far.
#[derive(Debug, Clone, Copy)]
pub struct Cpu {
    pub ours: f64,
    pub postgres: Option<f64>,
    pub children: f64,
}

impl Cpu {
    pub fn now(postmaster: Option<u32>) -> Self {
        Self {
            ours: proc_times(Path::new("/proc/self/stat")).map_or(0.0, |t| t.0),
            postgres: postmaster.and_then(postgres_seconds),
            children: children_seconds(),
        }
    }
}

/// CPU seconds of the calling thread.
pub fn thread_seconds() -> f64 {
    proc_times(Path::new("/proc/thread-self/stat")).map_or(0.0, |t| t.0)
}

/// (own utime + stime, utime + stime + cutime + cstime, ppid) in seconds.
fn proc_times(stat: &Path) -> Option<(f64, f64, u32)> {
    let text = std::fs::read_to_string(stat).ok()?;
    // Fields after the command name, which may hold spaces and parentheses.
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
    let (utime, stime, cutime, cstime) = (num(11)?, num(12)?, num(13)?, num(14)?);
    let ppid = f.get(1)?.parse().ok()?;
    Some((
        (utime + stime) / TICKS_PER_SEC,
        (utime + stime + cutime + cstime) / TICKS_PER_SEC,
        ppid,
    ))
}

/// The postmaster (with the backends it has reaped) plus its live children.
fn postgres_seconds(postmaster: u32) -> Option<f64> {
    let (_, mut total, _) =
        proc_times(&Path::new("/proc").join(postmaster.to_string()).join("stat"))?;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if pid == postmaster {
            continue;
        }
        if let Some((own, _, ppid)) = proc_times(&entry.path().join("stat"))
            && ppid == postmaster
        {
            total += own;
        }
    }
    Some(total)
}

fn children_seconds() -> f64 {
    use nix::sys::resource::{UsageWho, getrusage};
    getrusage(UsageWho::RUSAGE_CHILDREN).map_or(0.0, |u| {
        let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
        t(u.user_time()) + t(u.system_time())
    })
}

/// The pid in the first line of a local cluster's `postmaster.pid`.
pub fn postmaster_pid(data_dir: &Path) -> Option<u32> {
    std::fs::read_to_string(data_dir.join("postmaster.pid"))
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}
