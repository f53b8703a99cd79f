//! The spec file as written: the TOML shapes serde reads, and [`Source`], which turns byte
//! offsets into `file:line: key` errors.

use std::collections::BTreeMap;
use std::path::Path;

use indexmap::IndexMap;
use serde::Deserialize;
use toml::Spanned;

use super::{SpecError, functions};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSpec {
    pub(super) schema: Option<String>,
    pub(super) migrations: Option<String>,
    #[serde(default)]
    pub(super) actors: IndexMap<String, Spanned<RawUser>>,
    #[serde(default)]
    pub(super) tables: IndexMap<String, Spanned<RawTable>>,
    pub(super) mutants: Option<RawMutants>,
    #[serde(default)]
    pub(super) accept: IndexMap<String, Spanned<String>>,
    #[serde(default)]
    pub(super) functions: IndexMap<String, Spanned<functions::RawFunction>>,
    #[serde(default)]
    pub(super) unexercised: IndexMap<String, Spanned<String>>,
    /// Named predicates every table may use (a table's own of the same name wins).
    #[serde(default)]
    pub(super) predicates: BTreeMap<String, Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMutants {
    #[serde(default)]
    pub(super) equivalent: BTreeMap<String, Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUser {
    pub(super) id: Option<String>,
    pub(super) email: Option<String>,
    #[serde(default)]
    pub(super) claims: toml::Table,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTable {
    pub(super) owner: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) payload: toml::Table,
    pub(super) change: Option<Spanned<String>>,
    pub(super) triggers: Option<Spanned<bool>>,
    pub(super) seed_for: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    pub(super) rows: Vec<Spanned<RawRow>>,
    pub(super) immutable: Option<Vec<Spanned<String>>>,
    pub(super) members: Option<Spanned<RawMembers>>,
    pub(super) parent: Option<Spanned<RawParent>>,
    #[serde(default)]
    pub(super) predicates: BTreeMap<String, Spanned<String>>,
    pub(super) select: Option<Spanned<OneOrMany>>,
    pub(super) insert: Option<Spanned<OneOrMany>>,
    pub(super) update: Option<Spanned<OneOrMany>>,
    pub(super) delete: Option<Spanned<OneOrMany>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRow {
    #[serde(rename = "for")]
    pub(super) user: String,
    #[serde(default)]
    pub(super) values: toml::Table,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMembers {
    pub(super) table: String,
    pub(super) on: BTreeMap<String, String>,
    pub(super) user: String,
    pub(super) role: Option<String>,
    pub(super) roles: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawParent {
    pub(super) table: String,
    pub(super) on: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum OneOrMany {
    One(RawRule),
    Many(Vec<RawRule>),
}

/// A rule as written: a name, or `{ all = [names] }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawRule {
    Name(String),
    All(RawAll),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAll {
    pub(super) all: Vec<String>,
}

/// Turns byte offsets into line numbers and builds errors that name the file.
pub(super) struct Source<'a> {
    pub(super) path: &'a Path,
    pub(super) text: &'a str,
}

impl Source<'_> {
    pub(super) fn line(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .bytes()
            .filter(|b| *b == b'\n')
            .count()
            + 1
    }

    pub(super) fn err(
        &self,
        offset: usize,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> SpecError {
        SpecError::Invalid {
            path: self.path.to_owned(),
            line: self.line(offset),
            key: key.into(),
            message: message.into(),
        }
    }

    /// The dotted key written at `offset`: the last `[section]` header before it, plus the
    /// `key =` of that line (`tables.tasks.paylod`), or `(file)` before any header.
    pub(super) fn key_at(&self, offset: usize) -> String {
        let before = &self.text[..offset.min(self.text.len())];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let line_end = self.text[line_start..]
            .find('\n')
            .map_or(self.text.len(), |i| line_start + i);
        let line = self.text[line_start..line_end].trim();
        let header = |l: &str| {
            let l = l.trim();
            (l.starts_with('[') && !l.starts_with("[[")).then(|| {
                l.trim_start_matches('[')
                    .split(']')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_owned()
            })
        };
        if let Some(h) = header(line) {
            return h;
        }
        let section = before[..line_start].lines().rev().find_map(header);
        let key = line
            .split_once('=')
            .map(|(k, _)| k.trim().to_owned())
            .filter(|k| !k.is_empty() && !k.starts_with('#'));
        match (section, key) {
            (Some(s), Some(k)) => format!("{s}.{k}"),
            (Some(s), None) => s,
            (None, Some(k)) => k,
            (None, None) => "(file)".into(),
        }
    }

    /// Where `[prefix.name]` (or `name =` inside it) is written, for keys without a span.
    pub(super) fn find(&self, needles: &[String]) -> usize {
        needles
            .iter()
            .find_map(|n| self.text.find(n.as_str()))
            .unwrap_or(0)
    }

    pub(super) fn table_offset(&self, section: &str, name: &str) -> usize {
        self.find(&[
            format!("[{section}.{name}]"),
            format!("[{section}.\"{name}\"]"),
            format!("[{section}.{name}."),
            format!("{name} ="),
        ])
    }
}
