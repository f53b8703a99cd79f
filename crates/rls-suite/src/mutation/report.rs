//! A mutation run read: scores, the text report, JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Value, json};

use super::{Mutant, MutationReport, Outcome};

impl MutationReport {
    /// (killed, judged) per table, and overall under the key `""`. Equivalent and not-run
    /// mutants are not judged.
    pub fn scores(&self) -> BTreeMap<String, (usize, usize)> {
        let mut by: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for (m, o) in &self.results {
            let judged = matches!(o, Outcome::Killed(_) | Outcome::Survived);
            let killed = matches!(o, Outcome::Killed(_));
            for key in [m.table.as_str(), ""] {
                let e = by.entry(key.to_owned()).or_default();
                e.0 += usize::from(killed);
                e.1 += usize::from(judged);
            }
        }
        by
    }

    pub fn survivors(&self) -> impl Iterator<Item = &Mutant> {
        self.results
            .iter()
            .filter(|(_, o)| *o == Outcome::Survived)
            .map(|(m, _)| m)
    }

    /// The score line, each survivor with its SQL, the equivalent ones with their reasons and
    /// the ones that did not run, with why.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let scores = self.scores();
        let pct = |(k, n): (usize, usize)| {
            if n == 0 {
                100.0
            } else {
                100.0 * k as f64 / n as f64
            }
        };
        let overall = scores.get("").copied().unwrap_or_default();
        let _ = writeln!(
            out,
            "mutation score: {:.0}% ({} of {} killed; {} mutants generated)",
            pct(overall),
            overall.0,
            overall.1,
            self.results.len()
        );
        for (table, s) in scores.iter().filter(|(k, _)| !k.is_empty()) {
            let _ = writeln!(out, "  {table:<24} {:>4.0}% ({} of {})", pct(*s), s.0, s.1);
        }
        out.push_str(&self.render_baseline());
        for entry in &self.stale {
            let _ = writeln!(
                out,
                "stale equivalent entry {entry}: it matches no generated mutant"
            );
        }
        for (m, o) in &self.results {
            match o {
                Outcome::Survived => {
                    let _ = writeln!(
                        out,
                        "SURVIVED {}: no verdict and no lint finding changed\n  {}",
                        m.id, m.sql
                    );
                    if let Some(u) = self.unchanged.get(&m.id) {
                        let _ = writeln!(
                            out,
                            "  {} cells of {} judged as before; {}",
                            u.cells,
                            u.tables.join(", "),
                            if u.observed_differently.is_empty() {
                                "none saw anything different: no operation of the matrices reaches it".to_owned()
                            } else {
                                format!(
                                    "these saw something else and still judged it fine:\n    {}",
                                    u.observed_differently.join("\n    ")
                                )
                            }
                        );
                    }
                }
                Outcome::Equivalent(reason) => {
                    let _ = writeln!(out, "equivalent {} — {reason}", m.id);
                }
                Outcome::NotRun(why) => {
                    let _ = writeln!(out, "NOT RUN {} — {why}", m.id);
                }
                Outcome::Killed(_) => {}
            }
        }
        out
    }

    /// The unmutated schema's own findings, once, apart (empty when it has none): `baseline:
    /// N findings, not counted as kills`, then each.
    pub fn render_baseline(&self) -> String {
        if self.baseline.is_empty() {
            return String::new();
        }
        let mut out = format!(
            "baseline: {} finding{} of the unmutated schema, not counted as kills (a mutant is killed only where a verdict differs from these):\n",
            self.baseline.len(),
            if self.baseline.len() == 1 { "" } else { "s" }
        );
        for f in &self.baseline {
            let _ = writeln!(out, "  {f}");
        }
        out
    }

    pub fn to_json(&self) -> Value {
        let scores = self.scores();
        json!({
            "baseline": self.baseline,
            "stale_equivalent": self.stale,
            "score": scores.get("").map(|(k, n)| json!({"killed": k, "judged": n})),
            "tables": scores.iter().filter(|(k, _)| !k.is_empty())
                .map(|(t, (k, n))| json!({"table": t, "killed": k, "judged": n}))
                .collect::<Vec<_>>(),
            "mutants": self.results.iter().map(|(m, o)| json!({
                "id": m.id,
                "table": m.table,
                "operator": m.operator,
                "sql": m.sql,
                "unchanged": self.unchanged.get(&m.id).map(|u| json!({
                    "cells": u.cells,
                    "tables": u.tables,
                    "observed_differently": u.observed_differently,
                })),
                "outcome": match o {
                    Outcome::Killed(by) => json!({"killed": by}),
                    Outcome::Survived => json!("survived"),
                    Outcome::Equivalent(r) => json!({"equivalent": r}),
                    Outcome::NotRun(why) => json!({"not_run": why}),
                },
            })).collect::<Vec<_>>(),
        })
    }
}
