//! The spec's `[mutants] equivalent` entries: a mutant id, or a pattern of ids.
//!
//! A pattern is the id with `*` standing for any run of characters (dots included), and an
//! entry without an occurrence number also matches every occurrence (`….drop_conjunct`
//! matches `….drop_conjunct.1` and `….drop_conjunct.2`). So `tasks.*.drop_conjunct` is every
//! dropped conjunct of every policy of `tasks`, `*.*.drop_policy` every dropped policy. An
//! exact id wins over a pattern; among patterns, the first in the file's (sorted) order.

use std::collections::BTreeMap;

use super::FUNCTIONS;
use crate::spec::{Spec, glob};

/// The entries, matched against mutant ids.
#[derive(Debug, Clone, Default)]
pub struct Equivalent {
    entries: Vec<(String, String)>,
}

impl Equivalent {
    pub fn new(entries: &BTreeMap<String, String>) -> Self {
        Equivalent {
            entries: entries
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    /// The reason the spec gives for mutant `id`, if an entry matches it.
    pub fn reason(&self, id: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(pattern, _)| pattern == id)
            .or_else(|| self.entries.iter().find(|(p, _)| matches(p, id)))
            .map(|(_, reason)| reason.as_str())
    }

    /// The entries that match none of `ids`.
    pub fn stale<'a>(&self, ids: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        let ids: Vec<&str> = ids.into_iter().collect();
        self.entries
            .iter()
            .filter(|(p, _)| !ids.iter().any(|id| matches(p, id)))
            .map(|(p, _)| p.clone())
            .collect()
    }
}

/// Whether entry `pattern` matches mutant `id` (see the module's doc).
pub fn matches(pattern: &str, id: &str) -> bool {
    if glob(pattern, id) {
        return true;
    }
    // Without its occurrence number (`.2`), the id of the operator's every occurrence.
    match id.rsplit_once('.') {
        Some((stem, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
            glob(pattern, stem)
        }
        _ => false,
    }
}

/// What is wrong with entry `id` of `spec`'s `[mutants] equivalent`, known from the file
/// alone: its table part (up to the first `.`, a pattern too) names no table of the spec (nor
/// `(functions)`).
pub fn entry_error(spec: &Spec, id: &str) -> Option<String> {
    let table = id.split('.').next().unwrap_or(id);
    let names: Vec<&str> = spec
        .tables
        .iter()
        .map(|t| t.name.as_str())
        .chain([FUNCTIONS])
        .collect();
    if names.iter().any(|t| glob(table, t)) {
        return None;
    }
    Some(format!(
        "`{table}` names no table of this spec (a mutant id is `<table>.<policy or \"table\">.<operator>`; the tables: {})",
        names.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_ids_and_every_occurrence() {
        let id = "tasks.tasks_insert.check.drop_conjunct.2";
        assert!(matches(id, id));
        assert!(matches("tasks.*.drop_conjunct", id));
        assert!(matches("*.*.drop_conjunct", id));
        assert!(matches("tasks.*", id));
        assert!(matches("*", id));
        assert!(!matches("tasks.*.drop_conjunct.1", id));
        assert!(!matches("projects.*.drop_conjunct", id));
        assert!(!matches("tasks.*.drop_policy", id));
        assert!(matches("*.drop_policy", "tasks.tasks_select.drop_policy"));
        assert!(!matches(
            "tasks.tasks_select",
            "tasks.tasks_select.drop_policy"
        ));
        assert!(matches(
            "(functions).*",
            "(functions).requesting_user_id.cast_before_guard"
        ));
    }

    #[test]
    fn an_exact_id_wins_then_the_first_pattern_and_unmatched_entries_are_stale() {
        let e = Equivalent::new(&BTreeMap::from([
            ("tasks.*.drop_policy".to_owned(), "pattern".to_owned()),
            ("tasks.a.drop_policy".to_owned(), "exact".to_owned()),
            ("*.*.drop_policy".to_owned(), "any".to_owned()),
            ("nothing.*.loose_lower".to_owned(), "never".to_owned()),
        ]));
        assert_eq!(e.reason("tasks.a.drop_policy"), Some("exact"));
        // "*.*.drop_policy" sorts before "tasks.*.drop_policy".
        assert_eq!(e.reason("tasks.b.drop_policy"), Some("any"));
        assert_eq!(e.reason("tasks.b.using_true"), None);
        assert_eq!(
            e.stale(["tasks.a.drop_policy", "tasks.b.using_true"]),
            ["nothing.*.loose_lower"]
        );
    }
}
