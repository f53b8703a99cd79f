//! The spec's accepted findings — `[accept]` cells and `[unexercised]` policy clauses — and
//! the one `*` matcher their keys (and the equivalent-mutant patterns) use.

use super::{Command, Spec, TableSpec};

/// One `[unexercised]` entry: `"table.policy clause" = "reason"` or `"table.policy clause ·
/// branch N" = "reason"`, as the coverage report names it (`*` matches any run of
/// characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unexercised {
    pub key: String,
    pub reason: String,
    pub line: usize,
}

impl Unexercised {
    /// Whether the entry names this clause or branch (`what` as the coverage report writes it).
    pub fn matches(&self, what: &str) -> bool {
        glob(&self.key, what)
    }
}

/// One `[accept]` entry: `"table.operation.actor" = "reason"`, each part a glob (`*` matches
/// any run of characters). The operation is the report's label with ` · ` written `.` and
/// spaces `_` (`delete · forbidden row` → `delete.forbidden_row`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accept {
    pub key: String,
    pub table: String,
    pub operation: String,
    pub actor: String,
    pub reason: String,
    pub line: usize,
}

impl Accept {
    /// Whether the entry names this cell (`operation` as the report labels it).
    pub fn matches(&self, table: &str, operation: &str, actor: &str) -> bool {
        glob(&self.table, table)
            && glob(&self.operation, &operation_key(operation))
            && glob(&self.actor, actor)
    }
}

/// A report's operation label as an `[accept]` key part: ` · ` → `.`, spaces → `_`.
pub fn operation_key(label: &str) -> String {
    label.replace(" · ", ".").replace(' ', "_")
}

/// `*` matches any run of characters (none included); everything else matches itself.
pub fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// The operations of a table as `[accept]` keys (besides `select_via_<reader>`, known once the
/// spec is bound): the labels of `engine::model::Op`.
pub(super) fn operation_keys(spec: &Spec, t: &TableSpec) -> Vec<String> {
    let mut ops: Vec<String> = [
        "select",
        "insert.allowed_row",
        "insert.forbidden_row",
        "update.allowed_row",
        "update.forbidden_row",
        "update.no_filter",
        "delete.allowed_row",
        "delete.forbidden_row",
        "delete.no_filter",
    ]
    .map(String::from)
    .into();
    if t.owner.is_some() && t.parent.is_some() {
        ops.push("insert.own_id,_foreign_parent".into());
        ops.push("insert.foreign_id,_own_parent".into());
    }
    if t.owner.is_some() {
        ops.push("take_over.forbidden_row".into());
    }
    for c in &t.immutable {
        ops.push(format!("hand_over_{c}.own_row"));
        ops.push(format!("hand_over_{c}.no_filter"));
    }
    for role in spec.role_cells(t) {
        for command in Command::ROLE_CELLS {
            ops.push(format!("{command}.as_{role}"));
        }
    }
    ops
}
