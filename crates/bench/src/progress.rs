//! Progress on stderr while the benchmarks run: the stage, the step, and an ETA computed from
//! the planned iterations (each with a prior estimate, replaced by the observed mean once a
//! step has run at least once).

use std::collections::HashMap;
use std::io::{IsTerminal as _, Write as _};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::stats::eta;

/// One kind of iteration in a stage: how many are planned and what one is expected to cost.
#[derive(Debug, Clone)]
pub struct Step {
    pub key: &'static str,
    pub count: u64,
    pub est_secs: f64,
}

impl Step {
    pub fn new(key: &'static str, count: u64, est_secs: f64) -> Self {
        Self {
            key,
            count,
            est_secs,
        }
    }
}

/// A stage and its planned steps.
#[derive(Debug, Clone)]
pub struct StagePlan {
    pub name: &'static str,
    pub steps: Vec<Step>,
}

#[derive(Debug)]
pub struct Progress {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    plans: Vec<StagePlan>,
    current: Option<usize>,
    started: Instant,
    /// Per step key: iterations done and seconds they took.
    done: HashMap<&'static str, (u64, f64)>,
    last_tick: Instant,
    last_print: Option<Instant>,
    tty: bool,
}

const PRINT_EVERY_TTY: Duration = Duration::from_millis(250);
const PRINT_EVERY_LOG: Duration = Duration::from_secs(5);

impl Progress {
    pub fn new(plans: Vec<StagePlan>) -> Self {
        let now = Instant::now();
        let progress = Self {
            inner: Mutex::new(Inner {
                plans,
                current: None,
                started: now,
                done: HashMap::new(),
                last_tick: now,
                last_print: None,
                tty: std::io::stderr().is_terminal(),
            }),
        };
        {
            let inner = progress.lock();
            let total: f64 = inner.plans.iter().map(planned_secs).sum();
            let names: Vec<&str> = inner.plans.iter().map(|p| p.name).collect();
            eprintln!(
                "bench: {} stage(s) planned ({}), estimated {}",
                names.len(),
                names.join(", "),
                eta(total)
            );
        }
        progress
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Enters the stage named `name` (one of the planned ones).
    pub fn stage(&self, name: &str) {
        let mut inner = self.lock();
        inner.current = inner.plans.iter().position(|p| p.name == name);
        inner.last_tick = Instant::now();
        let idx = inner.current.map_or(0, |i| i + 1);
        let total = inner.plans.len();
        let remaining = inner.remaining_secs();
        inner.clear_line();
        eprintln!(
            "▶ stage {idx}/{total}: {name} · elapsed {} · ETA {}",
            eta(inner.started.elapsed().as_secs_f64()),
            eta(remaining)
        );
    }

    /// Says what is about to happen (a long step), with the current ETA.
    pub fn note(&self, what: &str) {
        let mut inner = self.lock();
        let remaining = inner.remaining_secs();
        inner.clear_line();
        eprintln!("  · {what} · ETA {}", eta(remaining));
        inner.last_print = Some(Instant::now());
    }

    /// Records `n` iterations of step `key` finished since the previous tick, and shows
    /// `what` with the ETA (throttled).
    pub fn tick(&self, key: &'static str, n: u64, what: &str) {
        let mut inner = self.lock();
        let now = Instant::now();
        let took = now.duration_since(inner.last_tick).as_secs_f64();
        inner.last_tick = now;
        let entry = inner.done.entry(key).or_insert((0, 0.0));
        entry.0 += n;
        entry.1 += took;
        let every = if inner.tty {
            PRINT_EVERY_TTY
        } else {
            PRINT_EVERY_LOG
        };
        if inner
            .last_print
            .is_some_and(|t| now.duration_since(t) < every)
        {
            return;
        }
        inner.last_print = Some(now);
        let line = format!("  {what} · ETA {}", eta(inner.remaining_secs()));
        if inner.tty {
            eprint!("\r\x1b[K{line}");
            let _ = std::io::stderr().flush();
        } else {
            eprintln!("{line}");
        }
    }

    /// Ends the progress line before normal output.
    pub fn finish_line(&self) {
        self.lock().clear_line();
    }
}

fn planned_secs(plan: &StagePlan) -> f64 {
    plan.steps.iter().map(|s| s.count as f64 * s.est_secs).sum()
}

impl Inner {
    fn clear_line(&mut self) {
        if self.tty {
            eprint!("\r\x1b[K");
        }
    }

    /// The rest of the current stage at observed speeds, plus later stages as planned.
    fn remaining_secs(&self) -> f64 {
        let Some(current) = self.current else {
            return self.plans.iter().map(planned_secs).sum();
        };
        let mut secs = 0.0;
        for step in &self.plans[current].steps {
            let (done, took) = self.done.get(step.key).copied().unwrap_or((0, 0.0));
            let per = if done > 0 {
                took / done as f64
            } else {
                step.est_secs
            };
            secs += step.count.saturating_sub(done) as f64 * per;
        }
        secs + self.plans[current + 1..]
            .iter()
            .map(planned_secs)
            .sum::<f64>()
    }
}
