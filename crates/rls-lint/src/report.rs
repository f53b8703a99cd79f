//! The linter's output: findings in a fixed order, rendered as text for people or JSON for
//! tools, plus the exit status a CLI should return.
//!
//! # JSON shape (`Report::render_json`, `serde_json::to_value(&report)`)
//!
//! ```json
//! {
//!   "format": 1,
//!   "summary": { "error": 1, "warn": 0, "info": 0, "max_level": "error" },
//!   "findings": [
//!     {
//!       "rule": "policy.always_true",
//!       "level": "error",
//!       "object": "policy todos_select_own on public.todos",
//!       "why": "…",
//!       "fix": "…"
//!     }
//!   ]
//! }
//! ```
//!
//! - `format` changes only when a field is renamed or removed; new fields may appear.
//! - `level` is `"error"`, `"warn"` or `"info"`; `max_level` is one of those or `null` when
//!   there are no findings.
//! - `rule` is a stable id from [`crate::RULES`]; `object` names what to change:
//!   `schema.table`, `policy <name> on schema.table`, `function schema.name(args)`,
//!   `view schema.name`, `materialized view schema.name`, `foreign table schema.name`,
//!   `index schema.name on schema.table`, `constraint <name> on schema.table`,
//!   `column schema.table.column`, `role <name>`,
//!   `schema <name>`.
//! - `findings` are sorted by level (error first), then rule, object and text.
//! - With a baseline, `baselined` (findings it accepted, same shape as `findings`) and `stale`
//!   (`{ "rule", "object", "reason" }` entries that matched nothing) appear when not empty.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

/// How bad a finding is. Ordered: `Info < Warn < Error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Worth knowing, not wrong in itself (e.g. a table every request is denied).
    Info,
    /// Probably a mistake, or fragile, or slow.
    Warn,
    /// A user can read or change another user's rows, or lose access to their own.
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a `--deny` value was not a level.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown level {0:?} (expected error, warn or info)")]
pub struct UnknownLevel(pub String);

impl FromStr for Level {
    type Err = UnknownLevel;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "error" => Ok(Self::Error),
            "warn" | "warning" => Ok(Self::Warn),
            "info" => Ok(Self::Info),
            _ => Err(UnknownLevel(s.to_owned())),
        }
    }
}

/// One problem: which rule, how bad, on what, why it matters and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable rule id, e.g. `rls.not_forced` (see [`crate::RULES`]).
    pub rule: &'static str,
    pub level: Level,
    /// What to change, e.g. `public.todos` or `policy todos_update_own on public.todos`.
    pub object: String,
    pub why: String,
    pub fix: String,
    /// The fix as SQL, when it is mechanical (see [`Report::fix_sql`]). Not in the JSON.
    #[serde(skip)]
    pub fix_sql: Option<FixSql>,
}

/// A mechanical fix: SQL statements that make the finding's rule go quiet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixSql {
    /// One or more statements, each ending with `;`.
    pub sql: String,
    /// What the statements change beyond the finding — who sees or may do what — when they do.
    pub changes_access: Option<String>,
}

impl Finding {
    /// Attaches a mechanical fix.
    pub(crate) fn with_sql(mut self, sql: impl Into<String>, changes_access: Option<&str>) -> Self {
        self.fix_sql = Some(FixSql {
            sql: sql.into(),
            changes_access: changes_access.map(str::to_owned),
        });
        self
    }
}

/// All findings of one run, sorted by level (most severe first), rule, object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// New findings: those no baseline entry lists.
    pub findings: Vec<Finding>,
    /// Findings a baseline lists (see [`crate::Baseline::apply`]); they do not fail the run.
    pub baselined: Vec<Finding>,
    /// Baseline entries that matched no finding: fixed, and due to be deleted.
    pub stale: Vec<crate::baseline::BaselineEntry>,
}

/// Counts per level.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub error: usize,
    pub warn: usize,
    pub info: usize,
    pub max_level: Option<Level>,
}

impl Report {
    /// Sorts and deduplicates, so equal catalogs always give equal reports.
    pub fn new(mut findings: Vec<Finding>) -> Self {
        findings.sort_by(|a, b| {
            b.level
                .cmp(&a.level)
                .then_with(|| a.rule.cmp(b.rule))
                .then_with(|| a.object.cmp(&b.object))
                .then_with(|| a.why.cmp(&b.why))
                .then_with(|| a.fix.cmp(&b.fix))
        });
        findings.dedup();
        Self {
            findings,
            ..Self::default()
        }
    }

    /// The most severe level present, `None` when clean.
    pub fn max_level(&self) -> Option<Level> {
        self.findings.iter().map(|f| f.level).max()
    }

    pub fn summary(&self) -> Summary {
        let count = |level| self.findings.iter().filter(|f| f.level == level).count();
        Summary {
            error: count(Level::Error),
            warn: count(Level::Warn),
            info: count(Level::Info),
            max_level: self.max_level(),
        }
    }

    /// Findings at `level` or more severe.
    pub fn at_or_above(&self, level: Level) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |f| f.level >= level)
    }

    /// Process exit status for a CLI: 0 when nothing is at or above `deny`, else 1.
    /// `cargo xtask lint` uses `deny = Level::Warn` unless told otherwise.
    pub fn exit_code(&self, deny: Level) -> i32 {
        i32::from(self.at_or_above(deny).next().is_some())
    }

    /// A readable list: one block per finding (level, rule, object, why, fix), then a summary.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        for finding in &self.findings {
            out.push_str(&format!(
                "{:<5}  {}  {}\n       why: {}\n       fix: {}\n\n",
                finding.level.as_str().to_uppercase(),
                finding.rule,
                finding.object,
                finding.why,
                finding.fix
            ));
        }
        for entry in &self.stale {
            out.push_str(&format!(
                "stale baseline entry: {} on {} (nothing matches it any more: delete it)\n",
                entry.rule, entry.object
            ));
        }
        if !self.baselined.is_empty() {
            out.push_str(&format!(
                "rls-lint: {} known finding{} accepted by the baseline\n",
                self.baselined.len(),
                plural(self.baselined.len())
            ));
        }
        let s = self.summary();
        if self.findings.is_empty() {
            out.push_str("rls-lint: no findings\n");
        } else {
            out.push_str(&format!(
                "rls-lint: {} finding{}: {} error{}, {} warning{}, {} info\n",
                self.findings.len(),
                plural(self.findings.len()),
                s.error,
                plural(s.error),
                s.warn,
                plural(s.warn),
                s.info
            ));
        }
        out
    }

    /// A migration fixing every finding whose fix is mechanical, in report order: each block
    /// names the rule and object it fixes, and a fix that changes who sees or may do what says
    /// so in a `-- CHANGES ACCESS:` comment above it. Findings without a mechanical fix are
    /// listed at the end as comments, with their fix text.
    pub fn fix_sql(&self) -> String {
        let mut out = String::from(
            "-- rls-lint --fix-sql: review before applying; every statement names what it fixes.\n",
        );
        let mut manual = Vec::new();
        let mut seen: Vec<&str> = Vec::new();
        for finding in &self.findings {
            let Some(fix) = &finding.fix_sql else {
                manual.push(finding);
                continue;
            };
            // Two findings can share one fix (a policy's USING and WITH CHECK).
            if seen.contains(&fix.sql.as_str()) {
                continue;
            }
            seen.push(&fix.sql);
            out.push_str(&format!(
                "\n-- {} ({}): {}\n",
                finding.rule, finding.level, finding.object
            ));
            if let Some(note) = &fix.changes_access {
                out.push_str(&format!("-- CHANGES ACCESS: {note}\n"));
            }
            out.push_str(&fix.sql);
            out.push('\n');
        }
        if !manual.is_empty() {
            out.push_str("\n-- Not fixable mechanically (decide, then write the migration):\n");
            for finding in manual {
                out.push_str(&format!(
                    "--   {} ({}): {}\n--     fix: {}\n",
                    finding.rule,
                    finding.level,
                    finding.object,
                    finding.fix.replace('\n', " ")
                ));
            }
        }
        out
    }

    /// The JSON shape below, pretty-printed (`serde_json::to_value(&report)` gives the same):
    ///
    /// ```json
    /// { "format": 1,
    ///   "summary": { "error": 1, "warn": 0, "info": 0, "max_level": "error" },
    ///   "findings": [ { "rule": "…", "level": "error", "object": "…", "why": "…", "fix": "…" } ] }
    /// ```
    ///
    /// See the module docs for the meaning and stability of each field.
    pub fn render_json(&self) -> String {
        // Serializing plain strings and numbers cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// The JSON format version; bumped only when a field is renamed or removed.
pub const JSON_FORMAT: u32 = 1;

impl Serialize for Report {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Shape<'a> {
            format: u32,
            summary: Summary,
            findings: &'a [Finding],
            #[serde(skip_serializing_if = "<[_]>::is_empty")]
            baselined: &'a [Finding],
            #[serde(skip_serializing_if = "<[_]>::is_empty")]
            stale: &'a [crate::baseline::BaselineEntry],
        }
        Shape {
            format: JSON_FORMAT,
            summary: self.summary(),
            findings: &self.findings,
            baselined: &self.baselined,
            stale: &self.stale,
        }
        .serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(rule: &'static str, level: Level, object: &str) -> Finding {
        Finding {
            rule,
            level,
            object: object.into(),
            why: "why".into(),
            fix: "fix".into(),
            fix_sql: None,
        }
    }

    #[test]
    fn orders_by_level_then_rule_then_object() {
        let report = Report::new(vec![
            finding("b.rule", Level::Warn, "x"),
            finding("a.rule", Level::Info, "x"),
            finding("c.rule", Level::Error, "y"),
            finding("c.rule", Level::Error, "a"),
            finding("a.rule", Level::Warn, "z"),
            finding("a.rule", Level::Warn, "z"),
        ]);
        let order: Vec<(&str, &str)> = report
            .findings
            .iter()
            .map(|f| (f.rule, f.object.as_str()))
            .collect();
        assert_eq!(
            order,
            [
                ("c.rule", "a"),
                ("c.rule", "y"),
                ("a.rule", "z"),
                ("b.rule", "x"),
                ("a.rule", "x")
            ]
        );
        assert_eq!(report.max_level(), Some(Level::Error));
    }

    #[test]
    fn exit_code_follows_the_deny_level() {
        let warn_only = Report::new(vec![finding("r", Level::Warn, "o")]);
        assert_eq!(warn_only.exit_code(Level::Warn), 1);
        assert_eq!(warn_only.exit_code(Level::Error), 0);
        assert_eq!(Report::default().exit_code(Level::Info), 0);
        assert_eq!(Report::default().max_level(), None);
    }

    #[test]
    fn levels_parse_and_print() {
        assert_eq!("WARNING".parse::<Level>(), Ok(Level::Warn));
        assert_eq!("error".parse::<Level>(), Ok(Level::Error));
        assert!("fatal".parse::<Level>().is_err());
        assert_eq!(Level::Info.to_string(), "info");
    }

    #[test]
    fn text_has_a_summary_line() {
        let text = Report::new(vec![finding("r", Level::Error, "o")]).render_text();
        assert!(text.starts_with("ERROR  r  o\n       why: why\n       fix: fix\n"));
        assert!(text.ends_with("rls-lint: 1 finding: 1 error, 0 warnings, 0 info\n"));
        assert_eq!(Report::default().render_text(), "rls-lint: no findings\n");
    }

    #[test]
    fn fix_sql_says_what_changes_access_and_lists_the_rest() {
        let report = Report::new(vec![
            finding("a.rule", Level::Warn, "x").with_sql("CREATE INDEX ON t (c);", None),
            finding("b.rule", Level::Warn, "y").with_sql(
                "ALTER TABLE t FORCE ROW LEVEL SECURITY;",
                Some("the owner obeys"),
            ),
            finding("c.rule", Level::Error, "z"),
        ]);
        let sql = report.fix_sql();
        assert!(
            sql.contains("\n-- a.rule (warn): x\nCREATE INDEX ON t (c);\n"),
            "{sql}"
        );
        assert!(
            sql.contains(
                "-- b.rule (warn): y\n-- CHANGES ACCESS: the owner obeys\nALTER TABLE t FORCE"
            ),
            "{sql}"
        );
        assert!(
            sql.contains("--   c.rule (error): z\n--     fix: fix\n"),
            "{sql}"
        );
        // Nothing mechanical: only comments.
        let none = Report::new(vec![finding("c.rule", Level::Error, "z")]).fix_sql();
        assert!(
            none.lines().all(|l| l.is_empty() || l.starts_with("--")),
            "{none}"
        );
    }

    #[test]
    fn json_has_the_documented_fields() {
        let report = Report::new(vec![finding("r", Level::Warn, "o")]);
        let json: serde_json::Value = serde_json::from_str(&report.render_json()).unwrap();
        assert_eq!(json["format"], 1);
        assert_eq!(json["summary"]["warn"], 1);
        assert_eq!(json["summary"]["max_level"], "warn");
        assert_eq!(json["findings"][0]["level"], "warn");
        assert_eq!(json["findings"][0]["rule"], "r");
    }
}
