//! The shared model every stage speaks: a spec bound to its catalog ([`BoundSpec`], `Table`),
//! the seeded rows (`Seeds`), who acts ([`actor`]), what each actor may do (`Allowed`), the
//! operations and the one `Action` each cell asks for, what a cell did (`Observed`), the
//! [`Verdict`] on it, and the suite's one [`Error`].
//!
//! Nothing here runs anything: the stages (`bind` → `seed` → `expect` → `plan` → `observe` →
//! `judge` → `report`, driven by `run`) take these values and hand them on.

use std::collections::{BTreeMap, BTreeSet};

use harness::target::quote_ident;
use serde_json::Value;

use crate::spec::{Command, Spec, TableSpec};

pub mod actor;
pub mod error;

pub use actor::{Actor, ActorKind, ClaimsForwarding, IdentityError};
pub use error::Error;
pub(crate) use error::{db_message, sql_err};

/// The judgement on one cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// The actor saw or changed rows that are not theirs.
    Leak(String),
    /// The actor could not do what the policies should let them do with their own rows.
    LostAccess(String),
}

impl Verdict {
    /// Why the cell is a finding; `None` when it is OK.
    pub fn why(&self) -> Option<&str> {
        match self {
            Verdict::Ok => None,
            Verdict::Leak(why) | Verdict::LostAccess(why) => Some(why),
        }
    }
}

pub(crate) const ID: &str = "\u{0}ID\u{0}";
pub(crate) const ROLE: &str = "\u{0}ROLE\u{0}";
pub(crate) const EMAIL: &str = "\u{0}EMAIL\u{0}";

/// A predicate over the row `t` with placeholders for the caller's id, role and forwarded
/// email.
#[derive(Debug, Clone)]
pub(crate) struct Predicate(pub(crate) String);

impl Predicate {
    pub(crate) fn render(&self, id: &str, role: &str, email: &str) -> String {
        self.0
            .replace(ID, id)
            .replace(ROLE, role)
            .replace(EMAIL, email)
    }
}

/// One spec table bound to its catalog entry.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    pub(crate) spec: TableSpec,
    /// `"schema"."name"`.
    pub(crate) qname: String,
    /// The columns that tell rows apart: the primary key, else the first unique key of NOT
    /// NULL columns, else every column.
    pub(crate) pk: Vec<String>,
    /// Columns in some unique key (the primary key's included): a seed row's payload value
    /// there is made its own.
    pub(crate) unique_columns: BTreeSet<String>,
    /// Columns that can be written (not generated), in catalog order.
    pub(crate) writable: Vec<String>,
    pub(crate) preds: BTreeMap<Command, Predicate>,
    pub(crate) change: String,
    /// Columns copied from a seed row into an insert candidate (relations, payload, no default).
    pub(crate) candidate_columns: Vec<String>,
    /// Other ways `authenticated` can read this table's rows: views that carry its primary key,
    /// and set-returning functions of its row type taking only text (called with `''`).
    pub(crate) readers: Vec<Reader>,
    /// Per column the table's policies read (and the seeding stage does not set itself), the
    /// values worth a seed row of their own: derived from the policies and the column's type
    /// (`bind`), seeded one column at a time (`seed`).
    pub(crate) variants: Vec<(String, Vec<Value>)>,
    /// Parent columns immutable only by default (`immutable` not written): a row moved to
    /// another parent is judged by whether the actor may insert it there.
    pub(crate) movable: Vec<String>,
    /// Per policy branch that compares several of those columns with constants, the values
    /// that make it true together (`Expr::assignments`): one seed row each.
    pub(crate) combos: Vec<Vec<(String, Value)>>,
    /// Per membership role the table's rules name (`Spec::role_cells`), in the spec's order:
    /// the caller holds exactly that role on the row's granting row (its own, or a parent's up
    /// the chain). Each gives the write cells `insert/update/delete · as <role>`.
    pub(crate) role_preds: Vec<(String, Predicate)>,
    /// For a membership table (some spec table's `members.table`), its member column.
    pub(crate) member_user: Option<String>,
}

impl Table {
    pub(crate) fn pk_expr(&self, alias: &str) -> String {
        let cols: Vec<String> = self
            .pk
            .iter()
            .map(|c| format!("{alias}.{}", quote_ident(c)))
            .collect();
        format!("jsonb_build_array({})::text", cols.join(", "))
    }

    pub(crate) fn column_list(&self) -> String {
        self.writable
            .iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A view or function that reads a spec table's rows.
#[derive(Debug, Clone)]
pub(crate) struct Reader {
    /// As a from-item, quoted by the catalog: `"public"."todos_overview"`,
    /// `"public"."search_todos"('')`.
    pub(crate) from: String,
    /// A view's own name, which the records API serves; `None` for a function (the records
    /// API has no route that lists a function's rows the same way).
    pub(crate) view: Option<String>,
}

/// The spec's tables, bound and in seeding (foreign-key) order.
#[derive(Debug, Clone)]
pub struct BoundSpec {
    pub(crate) spec: Spec,
    pub(crate) tables: Vec<Table>,
    /// Per table (by position), the tables a write to it can change: itself and, through
    /// foreign keys (cascades), the tables that reference it, transitively. Only those are
    /// restored after a cell, so a check's cost grows with its tables, not their square.
    pub(crate) touched: Vec<Vec<i32>>,
}

impl BoundSpec {
    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// Table names in seeding order.
    pub fn table_names(&self) -> Vec<&str> {
        self.tables.iter().map(|t| t.spec.name.as_str()).collect()
    }

    pub(crate) fn index(&self, name: &str) -> Option<usize> {
        self.tables.iter().position(|t| t.spec.name == name)
    }
}

/// One seeded row: its primary key (as text), its image, and the actor it belongs to.
#[derive(Debug, Clone)]
pub(crate) struct SeedRow {
    pub(crate) pk: String,
    pub(crate) image: Value,
    pub(crate) tag: String,
}

/// The seeded state: rows per table (in seeding order), restorable exactly.
#[derive(Debug, Clone)]
pub(crate) struct Seeds {
    pub(crate) rows: Vec<Vec<SeedRow>>,
    /// The rows derived from the policies (`Table::variants`), in seeding order, and those the
    /// table refused.
    pub(crate) derived: Vec<Derived>,
    /// The trigger functions that ran while each table was seeded.
    pub(crate) triggers: Vec<FiredTrigger>,
}

/// A trigger function that ran while the seed rows of `table` went in (a row trigger of the
/// table itself, or of a table its triggers wrote to), `calls` times.
#[derive(Debug, Clone, PartialEq)]
pub struct FiredTrigger {
    /// The spec table being seeded.
    pub table: String,
    /// The triggers that call the function (`table.trigger`).
    pub triggers: Vec<String>,
    /// `schema.function` (as `regproc` prints it).
    pub function: String,
    pub calls: i64,
}

/// One seed row derived from the policies: a copy of the table's first seed row with `column`
/// set to `value` (for a policy branch's values together: the columns joined by `, ` and the
/// values as an array); `refused` says why the table would not take it (a constraint, a
/// trigger).
#[derive(Debug, Clone, PartialEq)]
pub struct Derived {
    pub table: String,
    pub column: String,
    pub value: Value,
    pub refused: Option<String>,
}

impl Seeds {
    pub(crate) fn tag_of(&self, table: usize, pk: &str) -> Option<&str> {
        self.rows[table]
            .iter()
            .find(|r| r.pk == pk)
            .map(|r| r.tag.as_str())
    }

    /// The actor a seeded row of table `table` belongs to, `?` for a row the run did not seed.
    pub(crate) fn tag(&self, table: usize, pk: &str) -> String {
        self.tag_of(table, pk).unwrap_or("?").to_owned()
    }
}

/// A column of a row image (`null` when absent).
pub(crate) fn field<'a>(row: &'a Value, col: &str) -> &'a Value {
    row.get(col).unwrap_or(&Value::Null)
}

/// Which seeded rows (by primary key) each actor may select, update and delete, and which seed
/// rows each actor may insert again (after it is removed).
#[derive(Debug, Clone, Default)]
pub(crate) struct Allowed {
    pub(crate) select: BTreeSet<String>,
    pub(crate) update: BTreeSet<String>,
    pub(crate) delete: BTreeSet<String>,
    pub(crate) insert: BTreeSet<String>,
    /// Seed rows (of a table with an owner column) the actor may insert again with the owner
    /// column set to their own id: the rest of the row (its parent, its payload) is theirs to
    /// use.
    pub(crate) insert_as_self: BTreeSet<String>,
    /// Columns of `Table::movable` whose hand-over (see [`hand_over`]) the actor may make: the
    /// moved row is one they may insert.
    pub(crate) may_move: BTreeSet<String>,
    /// Per role of `Table::role_preds`: the seed rows whose granting row the actor is a member
    /// of with that role.
    pub(crate) as_role: BTreeMap<String, BTreeSet<String>>,
}

/// The row an operation aims at: one the actor may (or may not) do a command to (`set`: the
/// rows it allows). Forbidden rows the actor can see come first: being able to read a row but
/// not change it is the case that tells a policy apart from a missing one.
pub(crate) fn pick<'a>(
    seeds: &'a [SeedRow],
    allowed: &Allowed,
    set: &BTreeSet<String>,
    want: bool,
) -> Option<&'a SeedRow> {
    let matches = |r: &&SeedRow| set.contains(&r.pk) == want;
    seeds
        .iter()
        .filter(matches)
        .find(|r| allowed.select.contains(&r.pk))
        .or_else(|| seeds.iter().find(matches))
}

/// A hand-over of `col`: the actor's row it changes (the first they may update) and the value
/// it sets (another's, from a row they may not update).
pub(crate) fn hand_over<'a>(
    rows: &'a [SeedRow],
    allowed: &Allowed,
    col: &str,
) -> Option<(&'a SeedRow, &'a Value)> {
    let own = pick(rows, allowed, &allowed.update, true)?;
    let value = rows
        .iter()
        .filter(|r| !allowed.update.contains(&r.pk))
        .map(|r| field(&r.image, col))
        .find(|v| *v != field(&own.image, col))?;
    Some((own, value))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    Select,
    /// A select through a view or function that reads the table (by position in `readers`).
    SelectVia(usize),
    InsertAllowed,
    InsertForbidden,
    /// One dimension at a time: a row the actor may not insert even under their own id (a
    /// parent they do not belong to), inserted with the owner column set to their id.
    InsertOwnIdForeignParent,
    /// The other dimension: a row the actor could insert under their own id (a parent they
    /// belong to), inserted with someone else's id.
    InsertForeignIdOwnParent,
    UpdateAllowed,
    UpdateForbidden,
    /// Set the owner column of a row the caller may not update to the caller's own id: a
    /// USING that matches too much lets a caller take other users' rows even when WITH CHECK
    /// holds them to their own id.
    TakeOver,
    UpdateUnfiltered,
    HandOver(String),
    HandOverUnfiltered(String),
    DeleteAllowed,
    DeleteForbidden,
    DeleteUnfiltered,
    /// One role at a time: the command on a row whose granting row the actor is a member of
    /// with exactly this role (an insert of a row there under the actor's own id; an update or
    /// delete of another's row there where there is one), judged by the spec's rules.
    AsRole(Command, String),
}

impl Op {
    pub(crate) fn all(table: &Table) -> Vec<Op> {
        let mut ops = vec![Op::Select];
        ops.extend((0..table.readers.len()).map(Op::SelectVia));
        ops.extend([Op::InsertAllowed, Op::InsertForbidden]);
        if table.spec.owner.is_some() && table.spec.parent.is_some() {
            ops.extend([Op::InsertOwnIdForeignParent, Op::InsertForeignIdOwnParent]);
        }
        ops.extend([Op::UpdateAllowed, Op::UpdateForbidden]);
        if table.spec.owner.is_some() {
            ops.push(Op::TakeOver);
        }
        ops.push(Op::UpdateUnfiltered);
        for col in &table.spec.immutable {
            ops.push(Op::HandOver(col.clone()));
            ops.push(Op::HandOverUnfiltered(col.clone()));
        }
        ops.extend([Op::DeleteAllowed, Op::DeleteForbidden, Op::DeleteUnfiltered]);
        for command in Command::ROLE_CELLS {
            ops.extend(
                table
                    .role_preds
                    .iter()
                    .map(|(role, _)| Op::AsRole(command, role.clone())),
            );
        }
        ops
    }

    /// The command whose policies decide the operation.
    pub(crate) fn command(&self) -> Command {
        match self {
            Op::Select | Op::SelectVia(_) => Command::Select,
            Op::InsertAllowed
            | Op::InsertForbidden
            | Op::InsertOwnIdForeignParent
            | Op::InsertForeignIdOwnParent => Command::Insert,
            Op::UpdateAllowed
            | Op::UpdateForbidden
            | Op::TakeOver
            | Op::UpdateUnfiltered
            | Op::HandOver(_)
            | Op::HandOverUnfiltered(_) => Command::Update,
            Op::DeleteAllowed | Op::DeleteForbidden | Op::DeleteUnfiltered => Command::Delete,
            Op::AsRole(command, _) => *command,
        }
    }

    pub(crate) fn is_select(&self) -> bool {
        matches!(self, Op::Select | Op::SelectVia(_))
    }

    pub(crate) fn label(&self, table: &Table) -> String {
        match self {
            Op::Select => "select".into(),
            Op::SelectVia(i) => format!("select via {}", table.readers[*i].from),
            Op::InsertAllowed => "insert · allowed row".into(),
            Op::InsertForbidden => "insert · forbidden row".into(),
            Op::InsertOwnIdForeignParent => "insert · own id, foreign parent".into(),
            Op::InsertForeignIdOwnParent => "insert · foreign id, own parent".into(),
            Op::UpdateAllowed => "update · allowed row".into(),
            Op::UpdateForbidden => "update · forbidden row".into(),
            Op::TakeOver => "take over · forbidden row".into(),
            Op::UpdateUnfiltered => "update · no filter".into(),
            Op::HandOver(c) => format!("hand over {c} · own row"),
            Op::HandOverUnfiltered(c) => format!("hand over {c} · no filter"),
            Op::DeleteAllowed => "delete · allowed row".into(),
            Op::DeleteForbidden => "delete · forbidden row".into(),
            Op::DeleteUnfiltered => "delete · no filter".into(),
            Op::AsRole(command, role) => format!("{command} · as {role}"),
        }
    }
}

/// What an observer reports back: only what the caller got.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Executed {
    /// `seen`: primary keys (as the engine writes them) of the rows a read returned;
    /// `refused`: the error code, if the statement or request failed.
    Done {
        seen: Vec<String>,
        refused: Option<String>,
    },
    /// The observer has no way to carry this action out (the cell's text says why).
    Unsupported(&'static str),
}

/// What one operation did, as a superuser saw the table before and after.
#[derive(Debug, Clone, Default)]
pub(crate) struct Observed {
    pub(crate) seen: Vec<String>,
    pub(crate) inserted: Vec<Value>,
    /// (primary key, old image, new image).
    pub(crate) updated: Vec<(String, Value, Value)>,
    pub(crate) deleted: Vec<String>,
    pub(crate) refused: Option<String>,
}

impl Observed {
    /// Records what changed between two images of a table (by row key): rows only `after`
    /// has were inserted, rows whose image moved were updated, rows only `before` has were
    /// deleted.
    pub(crate) fn record_changes(
        &mut self,
        before: &BTreeMap<String, Value>,
        after: &BTreeMap<String, Value>,
    ) {
        for (k, v) in after {
            match before.get(k) {
                None => self.inserted.push(v.clone()),
                Some(old) if old != v => self.updated.push((k.clone(), old.clone(), v.clone())),
                Some(_) => {}
            }
        }
        self.deleted = before
            .keys()
            .filter(|k| !after.contains_key(*k))
            .cloned()
            .collect();
    }
}

/// What a cell asks for, whoever carries it out: the identity transaction in SQL, or the
/// records API over HTTP ([`super::observe`]).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Action {
    /// The primary keys of every row the caller can read: through the table itself (`None`)
    /// or through one of its readers (by position).
    Select { via: Option<usize> },
    /// One row like a seed row (relations, payload; defaults for the rest).
    Insert { row: Value },
    /// Sets the columns of `set` (an object) on the row with primary key `target`, or on every
    /// row (`None`: no filter at all, as a client that forgot one would send it).
    Update { target: Option<String>, set: Value },
    /// Deletes the row `target`, or every row (`None`).
    Delete { target: Option<String> },
}
