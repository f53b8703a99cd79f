//! Stage 7, **report**: the judged cells as matrices — one [`TableMatrix`] per table, one
//! [`CheckReport`] per run with the hostile-token table, the pool bleed and the policy coverage
//! — rendered as text and JSON, with the leaks and lost access listed.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Value, json};

use super::coverage::Coverage;
use super::functions::FunctionCalls;
use super::hostile::HostileRow;
use super::judge::moved_columns;
use super::model::{Observed, Op, Seeds, Table, Verdict};
use super::pool::PoolBleed;
use crate::spec::{Accept, Spec};

/// One judged cell.
#[derive(Debug, Clone)]
pub struct SpecCell {
    pub text: String,
    pub verdict: Verdict,
}

/// The matrix of one spec table.
#[derive(Debug, Clone)]
pub struct TableMatrix {
    pub table: String,
    pub actors: Vec<String>,
    pub ops: Vec<String>,
    /// `cells[op][actor]`.
    pub cells: Vec<Vec<SpecCell>>,
}

/// Every table's matrix.
#[derive(Debug, Clone)]
pub struct CheckReport {
    pub tables: Vec<TableMatrix>,
    /// `key = id` for each actor, for reading the matrices.
    pub actors: Vec<(String, String)>,
    /// Over HTTP: the hostile-token table on every table (empty in SQL).
    pub hostile: Vec<HostileRow>,
    /// Over HTTP: every user reading every table at once through the endpoint's pool.
    pub pool: Option<PoolBleed>,
    /// Policy coverage over the seeded rows (`None` when the run skipped it, and over HTTP).
    pub coverage: Option<Coverage>,
    /// The function cells (every function callers may execute, called by every actor),
    /// `None` when the schema has none and in a mutant's run.
    pub functions: Option<FunctionCalls>,
    /// The spec's `[accept]` entries: the findings they match are reported apart and do not
    /// count as leaks or lost access.
    pub accept: Vec<Accept>,
}

fn counts(tags: impl Iterator<Item = String>) -> String {
    let mut by: BTreeMap<String, usize> = BTreeMap::new();
    for t in tags {
        *by.entry(t).or_default() += 1;
    }
    by.iter()
        .map(|(t, n)| format!("{t}:{n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a cell did, in words: `sees ada:2 ben:1`, `updates ada:1`, `refused 42501`.
pub(crate) fn describe(
    table: &Table,
    seeds: &Seeds,
    ti: usize,
    op: &Op,
    o: &Observed,
    spec: &Spec,
) -> String {
    let _ = spec;
    if let Some(code) = &o.refused {
        return format!("refused {code}");
    }
    let mut parts = Vec::new();
    if op.is_select() {
        parts.push(if o.seen.is_empty() {
            "sees none".to_owned()
        } else {
            format!("sees {}", counts(o.seen.iter().map(|pk| seeds.tag(ti, pk))))
        });
    }
    if !o.inserted.is_empty() {
        parts.push(format!("inserts {}", o.inserted.len()));
    }
    let (moved, kept): (Vec<_>, Vec<_>) = o
        .updated
        .iter()
        .partition(|(_, old, new)| !moved_columns(table, old, new).is_empty());
    if !kept.is_empty() {
        parts.push(format!(
            "updates {}",
            counts(kept.iter().map(|(pk, _, _)| seeds.tag(ti, pk)))
        ));
    }
    if !moved.is_empty() {
        parts.push(format!(
            "moves {}",
            counts(moved.iter().map(|(pk, _, _)| seeds.tag(ti, pk)))
        ));
    }
    if !o.deleted.is_empty() {
        parts.push(format!(
            "deletes {}",
            counts(o.deleted.iter().map(|pk| seeds.tag(ti, pk)))
        ));
    }
    if parts.is_empty() {
        "0 rows".into()
    } else {
        parts.join(", ")
    }
}

impl TableMatrix {
    pub fn leaks(&self) -> Vec<String> {
        self.findings(|v| matches!(v, Verdict::Leak(_)))
    }

    pub fn lost_access(&self) -> Vec<String> {
        self.findings(|v| matches!(v, Verdict::LostAccess(_)))
    }

    fn findings(&self, pick: impl Fn(&Verdict) -> bool) -> Vec<String> {
        let rows = self.ops.iter().zip(&self.cells);
        findings(
            &self.table,
            rows.map(|(op, row)| (op.clone(), row.iter().map(|c| &c.verdict))),
            pick,
        )
    }

    /// Operations down, actors across; a verdict other than OK is marked.
    pub fn render(&self) -> String {
        let mut header = vec![self.table.clone()];
        header.extend(self.actors.iter().cloned());
        let mut rows = vec![header];
        for (op, cells) in self.ops.iter().zip(&self.cells) {
            let mut row = vec![op.clone()];
            row.extend(
                cells
                    .iter()
                    .map(|c| format!("{}{}", mark(&c.verdict), c.text)),
            );
            rows.push(row);
        }
        render_table(&rows)
    }

    pub fn to_json(&self) -> Value {
        json!({
            "table": self.table,
            "actors": self.actors,
            "cells": self.ops.iter().zip(&self.cells).map(|(op, row)| json!({
                "operation": op,
                "results": self.actors.iter().zip(row).map(|(a, c)| json!({
                    "actor": a,
                    "observed": c.text,
                    "verdict": match &c.verdict {
                        Verdict::Ok => json!("ok"),
                        Verdict::Leak(why) => json!({"leak": why}),
                        Verdict::LostAccess(why) => json!({"lost_access": why}),
                    },
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })
    }
}

impl CheckReport {
    fn hostile_leaks(&self) -> impl Iterator<Item = String> + '_ {
        self.hostile.iter().filter_map(|r| match &r.verdict {
            Verdict::Leak(why) => Some(format!("[{}] token \"{}\": {why}", r.table, r.case)),
            _ => None,
        })
    }

    /// Where two runs of the same spec (SQL and HTTP, say) observed different things, over the
    /// tables, operations and actors both have: `[table] op · actor: SQL "…" vs HTTP "…"`.
    /// A cell one observer cannot carry out (a function over HTTP) is not compared.
    pub fn disagreements(&self, other: &CheckReport, names: (&str, &str)) -> Vec<String> {
        let mut out = Vec::new();
        for mine in &self.tables {
            let Some(theirs) = other.table(&mine.table) else {
                continue;
            };
            for (op, row) in mine.ops.iter().zip(&mine.cells) {
                let Some(oi) = theirs.ops.iter().position(|o| o == op) else {
                    continue;
                };
                for (actor, cell) in mine.actors.iter().zip(row) {
                    let Some(ai) = theirs.actors.iter().position(|a| a == actor) else {
                        continue;
                    };
                    let other_cell = &theirs.cells[oi][ai];
                    let unsupported = |c: &SpecCell| c.text.starts_with("n/a over");
                    if unsupported(cell) || unsupported(other_cell) {
                        continue;
                    }
                    if cell.text != other_cell.text
                        || std::mem::discriminant(&cell.verdict)
                            != std::mem::discriminant(&other_cell.verdict)
                    {
                        out.push(format!(
                            "[{}] {op} · {actor}: {} {:?} vs {} {:?}",
                            mine.table, names.0, cell.text, names.1, other_cell.text
                        ));
                    }
                }
            }
        }
        if let (Some(mine), Some(theirs)) = (&self.functions, &other.functions) {
            for (label, row) in mine.functions.iter().zip(&mine.cells) {
                let Some(fi) = theirs.functions.iter().position(|l| l == label) else {
                    continue;
                };
                for (actor, (text, verdict)) in mine.actors.iter().zip(row) {
                    let Some(ai) = theirs.actors.iter().position(|a| a == actor) else {
                        continue;
                    };
                    let (other_text, other_verdict) = &theirs.cells[fi][ai];
                    if text != other_text
                        || std::mem::discriminant(verdict) != std::mem::discriminant(other_verdict)
                    {
                        out.push(format!(
                            "[functions] {label} · {actor}: {} {text:?} vs {} {other_text:?}",
                            names.0, names.1
                        ));
                    }
                }
            }
        }
        out
    }

    /// The entry accepting a cell, if one does.
    fn accepted_by(&self, table: &str, op: &str, actor: &str) -> Option<&Accept> {
        self.accept.iter().find(|a| a.matches(table, op, actor))
    }

    /// The matrices' findings `pick` selects, without the accepted ones.
    fn matrix_findings(&self, pick: impl Fn(&Verdict) -> bool + Copy) -> Vec<String> {
        let mut out = Vec::new();
        for t in &self.tables {
            let rows = t.ops.iter().zip(&t.cells).map(|(op, row)| {
                let kept = t.actors.iter().zip(row).filter_map(move |(actor, c)| {
                    self.accepted_by(&t.table, op, actor)
                        .is_none()
                        .then_some(&c.verdict)
                });
                (op.clone(), kept)
            });
            out.extend(findings(&t.table, rows, pick));
        }
        out
    }

    /// Findings an `[accept]` entry matches: `[table] op · actor: why (accepted: reason)`.
    pub fn accepted(&self) -> Vec<String> {
        let mut out = Vec::new();
        for t in &self.tables {
            for (op, row) in t.ops.iter().zip(&t.cells) {
                for (actor, c) in t.actors.iter().zip(row) {
                    if let (Some(why), Some(a)) =
                        (c.verdict.why(), self.accepted_by(&t.table, op, actor))
                    {
                        out.push(format!(
                            "[{}] {op} · {actor}: {}{why} (accepted: {})",
                            t.table,
                            mark(&c.verdict),
                            a.reason
                        ));
                    }
                }
            }
        }
        out
    }

    /// `[accept]` entries that match no finding of this run: `line N: "key" matches no finding`.
    pub fn stale_accepts(&self) -> Vec<String> {
        self.accept
            .iter()
            .filter(|a| {
                !self.tables.iter().any(|t| {
                    t.ops.iter().zip(&t.cells).any(|(op, row)| {
                        t.actors.iter().zip(row).any(|(actor, c)| {
                            c.verdict != Verdict::Ok && a.matches(&t.table, op, actor)
                        })
                    })
                })
            })
            .map(|a| format!("line {}: \"{}\" matches no finding", a.line, a.key))
            .collect()
    }

    pub fn leaks(&self) -> Vec<String> {
        self.matrix_findings(|v| matches!(v, Verdict::Leak(_)))
            .into_iter()
            .chain(self.hostile_leaks())
            .chain(self.pool.iter().flat_map(|p| p.leaks.iter().cloned()))
            .chain(self.function_findings(|v| matches!(v, Verdict::Leak(_))))
            .collect()
    }

    pub fn lost_access(&self) -> Vec<String> {
        self.matrix_findings(|v| matches!(v, Verdict::LostAccess(_)))
            .into_iter()
            .chain(self.pool.iter().flat_map(|p| p.lost.iter().cloned()))
            .chain(self.function_findings(|v| matches!(v, Verdict::LostAccess(_))))
            .collect()
    }

    /// The function cells' findings: `[functions] name(args): why`.
    fn function_findings(&self, pick: impl Fn(&Verdict) -> bool) -> Vec<String> {
        self.functions.as_ref().map_or_else(Vec::new, |f| {
            let rows = f
                .functions
                .iter()
                .zip(&f.cells)
                .map(|(label, row)| (label.clone(), row.iter().map(|(_, v)| v)));
            findings("functions", rows, pick)
        })
    }

    pub fn cell_count(&self) -> usize {
        self.tables
            .iter()
            .map(|t| t.cells.iter().map(Vec::len).sum::<usize>())
            .sum()
    }

    pub fn table(&self, name: &str) -> Option<&TableMatrix> {
        self.tables.iter().find(|t| t.table == name)
    }

    /// Every matrix, the actors' ids, and the findings.
    pub fn render(&self) -> String {
        let mut out = String::from("actors: ");
        out.push_str(
            &self
                .actors
                .iter()
                .map(|(k, id)| format!("{k} = {id:?}"))
                .collect::<Vec<_>>()
                .join(", "),
        );
        out.push_str("\n\n");
        for t in &self.tables {
            out.push_str(&t.render());
            out.push('\n');
        }
        if let Some(f) = self.functions.as_ref().filter(|f| f.is_surface()) {
            out.push_str(&f.render());
            out.push('\n');
        }
        if !self.hostile.is_empty() {
            out.push_str(&render_hostile(&self.hostile));
            out.push('\n');
        }
        if let Some(pool) = &self.pool {
            out.push_str(&pool.render());
            out.push('\n');
        }
        let accepted = self.accepted();
        if !accepted.is_empty() {
            out.push_str("accepted findings (they do not fail the check):\n");
            for line in &accepted {
                let _ = writeln!(out, "  ACCEPTED {line}");
            }
            out.push('\n');
        }
        let stale = self.stale_accepts();
        if !stale.is_empty() {
            out.push_str("stale [accept] entries (drop them):\n");
            for line in &stale {
                let _ = writeln!(out, "  STALE {line}");
            }
            out.push('\n');
        }
        out
    }

    pub fn to_json(&self) -> Value {
        json!({
            "actors": self.actors.iter().map(|(k, id)| json!({"key": k, "id": id})).collect::<Vec<_>>(),
            "tables": self.tables.iter().map(TableMatrix::to_json).collect::<Vec<_>>(),
            "leaks": self.leaks(),
            "lost_access": self.lost_access(),
            "accepted": self.accepted(),
            "stale_accepts": self.stale_accepts(),
            "cells": self.cell_count(),
            "functions": self.functions.as_ref().map(FunctionCalls::to_json),
            "pool_bleed": self.pool.as_ref().map(|p| json!({
                "reads": p.reads, "leaks": p.leaks, "lost": p.lost,
            })),
            "hostile_tokens": self.hostile.iter().map(|r| json!({
                "table": r.table,
                "case": r.case,
                "status": r.status,
                "error": r.error,
                "contract_status": r.contract,
                "observed": r.observed,
                "leak": match &r.verdict { Verdict::Leak(why) => Some(why), _ => None },
            })).collect::<Vec<_>>(),
        })
    }
}

impl FunctionCalls {
    /// Whether any function is a surface (called, or callable and not called): a schema whose
    /// only functions are no surface of their own shows no function section in the text.
    pub fn is_surface(&self) -> bool {
        !self.functions.is_empty() || !self.not_called.is_empty()
    }

    /// Functions down, actors across, then the functions not called and why.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if !self.functions.is_empty() {
            let mut header = vec!["function (called by each actor)".to_owned()];
            header.extend(self.actors.iter().cloned());
            let mut rows = vec![header];
            for (label, cells) in self.functions.iter().zip(&self.cells) {
                let mut row = vec![label.clone()];
                row.extend(cells.iter().map(|(t, v)| format!("{}{t}", mark(v))));
                rows.push(row);
            }
            out.push_str(&render_table(&rows));
        }
        if !self.not_called.is_empty() {
            out.push_str("functions not called:\n");
            for line in &self.not_called {
                let _ = writeln!(out, "  {line}");
            }
        }
        if !self.not_surfaces.is_empty() {
            out.push_str("functions that are no surface (not called):\n");
            for line in &self.not_surfaces {
                let _ = writeln!(out, "  {line}");
            }
        }
        out
    }

    pub fn to_json(&self) -> Value {
        json!({
            "actors": self.actors,
            "calls": self.functions.iter().zip(&self.cells).map(|(f, row)| json!({
                "function": f,
                "results": self.actors.iter().zip(row).map(|(a, (text, v))| json!({
                    "actor": a,
                    "observed": text,
                    "verdict": match v {
                        Verdict::Ok => json!("ok"),
                        Verdict::Leak(why) => json!({"leak": why}),
                        Verdict::LostAccess(why) => json!({"lost_access": why}),
                    },
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "not_called": self.not_called,
            "not_surfaces": self.not_surfaces,
        })
    }
}

/// `[place] operation: why` for each cell whose verdict `pick` selects, row by row: the
/// findings list of any matrix (operations down, verdicts across).
pub fn findings<'a, R, C>(place: &str, rows: R, pick: impl Fn(&Verdict) -> bool) -> Vec<String>
where
    R: IntoIterator<Item = (String, C)>,
    C: IntoIterator<Item = &'a Verdict>,
{
    let mut out = Vec::new();
    for (op, verdicts) in rows {
        for verdict in verdicts {
            if let (true, Some(why)) = (pick(verdict), verdict.why()) {
                out.push(format!("[{place}] {op}: {why}"));
            }
        }
    }
    out
}

/// One line per table and case: status (with the contract's when it differs), what happened.
pub fn render_hostile(rows: &[HostileRow]) -> String {
    let mut table = vec![vec![
        "table".to_owned(),
        "token case (user A's token, tampered)".to_owned(),
        "status".to_owned(),
        "observed".to_owned(),
    ]];
    for r in rows {
        let status = if r.status == r.contract {
            format!("{} {}", r.status, r.error)
        } else {
            format!("{} {} (contract: {})", r.status, r.error, r.contract)
        };
        table.push(vec![
            r.table.clone(),
            r.case.clone(),
            status.trim_end().to_owned(),
            format!("{}{}", mark(&r.verdict), r.observed),
        ]);
    }
    render_table(&table)
}

/// The mark a verdict puts before a cell's text.
pub fn mark(verdict: &Verdict) -> &'static str {
    match verdict {
        Verdict::Ok => "",
        Verdict::Leak(_) => "LEAK: ",
        Verdict::LostAccess(_) => "LOST: ",
    }
}

/// A fixed-width Markdown-style table; the first row is the header.
pub fn render_table(rows: &[Vec<String>]) -> String {
    let Some(first) = rows.first() else {
        return String::new();
    };
    let widths: Vec<usize> = (0..first.len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}", w = *w))
            .collect();
        let _ = writeln!(out, "| {} |", line.join(" | "));
        if i == 0 {
            let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            let _ = writeln!(out, "|-{}-|", rule.join("-|-"));
        }
    }
    out
}
