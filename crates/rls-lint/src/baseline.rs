//! Known findings a team has accepted, each with its reason, so only new findings fail a run.
//!
//! The file is TOML: it is edited by hand (a reason per entry, comments for context), it diffs
//! line by line in review, and `toml` is already a workspace dependency. One entry per rule and
//! object:
//!
//! ```toml
//! [[finding]]
//! rule = "policy.multiple_permissive"
//! object = "public.projects"
//! reason = "owners and members are two permissive policies on purpose (issue 12)"
//! ```
//!
//! An entry matches every finding with its rule and object, whatever the text or level says (a
//! level change is not a new finding). An entry that matches nothing is *stale*: the finding
//! is gone, and the entry should be deleted so it cannot hide a future one.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::report::{Finding, Report};

/// One accepted finding.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BaselineEntry {
    pub rule: String,
    pub object: String,
    /// Why the finding is accepted; never empty.
    pub reason: String,
}

/// The accepted findings, as read from or written to a baseline file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Baseline {
    #[serde(default, rename = "finding")]
    pub entries: Vec<BaselineEntry>,
}

/// Why a baseline could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error("cannot read the baseline {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the baseline {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the baseline is not valid TOML of [[finding]] entries")]
    Parse(#[source] toml::de::Error),
    #[error("baseline entry {index} ({rule} on {object}) has no reason: say why it is accepted")]
    NoReason {
        index: usize,
        rule: String,
        object: String,
    },
    #[error("baseline entry {index} names no rule the linter knows: {rule:?}")]
    UnknownRule { index: usize, rule: String },
}

impl Baseline {
    /// Parses baseline TOML; every entry needs a known rule and a reason.
    pub fn parse(text: &str) -> Result<Self, BaselineError> {
        let baseline: Self = toml::from_str(text).map_err(BaselineError::Parse)?;
        for (index, entry) in baseline.entries.iter().enumerate() {
            if crate::rules::rule(&entry.rule).is_none() {
                return Err(BaselineError::UnknownRule {
                    index: index + 1,
                    rule: entry.rule.clone(),
                });
            }
            if entry.reason.trim().is_empty() {
                return Err(BaselineError::NoReason {
                    index: index + 1,
                    rule: entry.rule.clone(),
                    object: entry.object.clone(),
                });
            }
        }
        Ok(baseline)
    }

    /// Reads a baseline file (`--baseline FILE`).
    pub fn load(path: &Path) -> Result<Self, BaselineError> {
        let text = std::fs::read_to_string(path).map_err(|source| BaselineError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text)
    }

    /// One entry per rule and object of the report's findings, each with `reason`.
    pub fn from_report(report: &Report, reason: &str) -> Self {
        let keys: BTreeSet<(&str, &str)> = report
            .findings
            .iter()
            .chain(&report.baselined)
            .map(|f| (f.rule, f.object.as_str()))
            .collect();
        Self {
            entries: keys
                .into_iter()
                .map(|(rule, object)| BaselineEntry {
                    rule: rule.to_owned(),
                    object: object.to_owned(),
                    reason: reason.to_owned(),
                })
                .collect(),
        }
    }

    /// The file text: a comment on how to use it, then the entries.
    pub fn to_toml(&self) -> String {
        let mut out = String::from(
            "# rls-lint baseline: findings accepted on purpose. Only findings not listed here fail\n\
             # the lint. Replace each reason with why the finding is acceptable; delete an entry\n\
             # when its finding is fixed (the lint reports such entries as stale).\n",
        );
        for entry in &self.entries {
            out.push_str(&format!(
                "\n[[finding]]\nrule = {}\nobject = {}\nreason = {}\n",
                toml_string(&entry.rule),
                toml_string(&entry.object),
                toml_string(&entry.reason)
            ));
        }
        out
    }

    /// Writes the file (`--write-baseline FILE`).
    pub fn write(&self, path: &Path) -> Result<(), BaselineError> {
        std::fs::write(path, self.to_toml()).map_err(|source| BaselineError::Write {
            path: path.to_owned(),
            source,
        })
    }

    fn matches(entry: &BaselineEntry, finding: &Finding) -> bool {
        entry.rule == finding.rule && entry.object == finding.object
    }

    /// Moves the findings this baseline lists to `report.baselined`, and records the entries
    /// that match nothing in `report.stale`.
    pub fn apply(&self, mut report: Report) -> Report {
        let (known, new): (Vec<Finding>, Vec<Finding>) = report
            .findings
            .into_iter()
            .partition(|f| self.entries.iter().any(|e| Self::matches(e, f)));
        report.stale = self
            .entries
            .iter()
            .filter(|e| !known.iter().any(|f| Self::matches(e, f)))
            .cloned()
            .collect();
        report.findings = new;
        report.baselined = known;
        report
    }
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Level;

    fn finding(rule: &'static str, object: &str) -> Finding {
        Finding {
            rule,
            level: Level::Warn,
            object: object.into(),
            why: "why".into(),
            fix: "fix".into(),
            fix_sql: None,
        }
    }

    #[test]
    fn writes_reads_and_applies() {
        let report = Report::new(vec![
            finding("rls.not_forced", "public.a"),
            finding("policy.unwrapped_call", "policy p on public.a"),
            finding("policy.unwrapped_call", "policy p on public.a"),
        ]);
        let written = Baseline::from_report(&report, "known \"since\" v1").to_toml();
        let baseline = Baseline::parse(&written).unwrap();
        assert_eq!(baseline.entries.len(), 2);
        assert_eq!(baseline.entries[0].reason, "known \"since\" v1");

        // Same findings plus one new one; one known finding fixed.
        let later = Report::new(vec![
            finding("rls.not_forced", "public.a"),
            finding("rls.not_forced", "public.b"),
        ]);
        let applied = baseline.apply(later);
        let new: Vec<&str> = applied.findings.iter().map(|f| f.object.as_str()).collect();
        assert_eq!(new, ["public.b"]);
        assert_eq!(applied.baselined.len(), 1);
        assert_eq!(applied.stale.len(), 1);
        assert_eq!(applied.stale[0].rule, "policy.unwrapped_call");
        assert_eq!(applied.exit_code(Level::Warn), 1);
        let text = applied.render_text();
        assert!(text.contains("1 known finding"), "{text}");
        assert!(
            text.contains("stale baseline entry: policy.unwrapped_call"),
            "{text}"
        );
    }

    #[test]
    fn rejects_entries_without_reason_or_with_unknown_rules() {
        let no_reason =
            "[[finding]]\nrule = \"rls.not_forced\"\nobject = \"public.a\"\nreason = \" \"\n";
        assert!(matches!(
            Baseline::parse(no_reason),
            Err(BaselineError::NoReason { index: 1, .. })
        ));
        let unknown = "[[finding]]\nrule = \"rls.nope\"\nobject = \"public.a\"\nreason = \"x\"\n";
        assert!(matches!(
            Baseline::parse(unknown),
            Err(BaselineError::UnknownRule { .. })
        ));
        assert!(matches!(
            Baseline::parse("[[finding]]\nrule = \"rls.not_forced\"\n"),
            Err(BaselineError::Parse(_))
        ));
        assert_eq!(Baseline::parse("").unwrap(), Baseline::default());
    }
}
