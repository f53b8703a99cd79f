//! Stage 4, **plan**: for one operation, one actor and that actor's [`Allowed`] rows, the
//! [`Action`] a cell asks for — which seed row it aims at, what it sets — and what the spec
//! expects of that row. Hands a [`Plan`] to an observer. `None` when no seed row fits (the cell
//! is "n/a").

use serde_json::{Value, json};

use super::model::{Action, Allowed, Op, SeedRow, Table, field, hand_over};
use super::seed::candidate;
use crate::spec::Command;

pub(crate) use super::model::pick;

/// A value for the change column that differs from the row's: another seed row's value when
/// there is one (a member's `role` becomes `owner`), else a mutation of its own. In a column a
/// unique key covers, always a mutation of its own that keeps to digits (`slug1` → `slug100`):
/// another row's value would collide.
pub(crate) fn changed(table: &Table, rows: &[SeedRow], column: &str, value: &Value) -> Value {
    if table.unique_columns.contains(column) {
        match value {
            Value::String(s) => return Value::String(format!("{s}00")),
            Value::Number(n) => return json!(n.as_i64().map_or(0, |i| i.saturating_add(1000))),
            _ => {}
        }
    }
    if let Some(other) = rows
        .iter()
        .map(|r| field(&r.image, column))
        .find(|v| !v.is_null() && *v != value)
    {
        return other.clone();
    }
    match value {
        Value::String(s) => Value::String(format!("{s} · changed")),
        Value::Bool(b) => Value::Bool(!b),
        // An integer stays an integer (`4097.0` is no value of an `integer` column: 22P02).
        Value::Number(n) => n.as_i64().map_or_else(
            || json!(n.as_f64().unwrap_or(0.0) + 1.0),
            |i| json!(i.saturating_add(1)),
        ),
        _ => json!("changed"),
    }
}

/// A cell's action, what the spec expects of the row it aims at (`Some(true)`: it may), and
/// the seed row removed first (an insert re-inserts it).
pub(crate) struct Plan<'a> {
    pub(crate) action: Action,
    pub(crate) expect_row: Option<bool>,
    pub(crate) removed: Option<&'a SeedRow>,
}

/// The action for `op`, or `None` when no seed row fits it (the cell is "n/a").
pub(crate) fn plan<'a>(
    table: &Table,
    rows: &'a [SeedRow],
    allowed: &Allowed,
    op: &Op,
    caller: Option<&str>,
) -> Option<Plan<'a>> {
    let change = |r: &SeedRow| json!({ &table.change: changed(table, rows, &table.change, field(&r.image, &table.change)) });
    let plain = |action| Plan {
        action,
        expect_row: None,
        removed: None,
    };
    Some(match op {
        Op::Select => plain(Action::Select { via: None }),
        Op::SelectVia(i) => plain(Action::Select { via: Some(*i) }),
        Op::InsertAllowed | Op::InsertForbidden => {
            let want = *op == Op::InsertAllowed;
            let r = pick(rows, allowed, &allowed.insert, want)?;
            Plan {
                action: Action::Insert {
                    row: candidate(table, r),
                },
                expect_row: Some(want),
                removed: Some(r),
            }
        }
        Op::InsertOwnIdForeignParent => {
            // A row the actor may not insert even as themselves, under their own id.
            let (owner, me) = (table.spec.owner.as_ref()?, caller?);
            let r = pick(rows, allowed, &allowed.insert_as_self, false)?;
            let mut row = candidate(table, r);
            row[owner] = json!(me);
            Plan {
                action: Action::Insert { row },
                expect_row: Some(false),
                removed: Some(r),
            }
        }
        Op::InsertForeignIdOwnParent => {
            // A row the actor could insert as themselves, under its own (someone else's) id.
            let owner = table.spec.owner.as_ref()?;
            let r = rows.iter().find(|r| {
                allowed.insert_as_self.contains(&r.pk)
                    && !allowed.insert.contains(&r.pk)
                    && field(&r.image, owner).as_str() != caller
            })?;
            Plan {
                action: Action::Insert {
                    row: candidate(table, r),
                },
                expect_row: Some(false),
                removed: Some(r),
            }
        }
        Op::UpdateAllowed | Op::UpdateForbidden => {
            let want = *op == Op::UpdateAllowed;
            let r = pick(rows, allowed, &allowed.update, want)?;
            Plan {
                action: Action::Update {
                    target: Some(r.pk.clone()),
                    set: change(r),
                },
                expect_row: Some(want),
                removed: None,
            }
        }
        Op::TakeOver => {
            let (owner, me) = (table.spec.owner.as_ref()?, caller?);
            let r = pick(rows, allowed, &allowed.update, false)?;
            Plan {
                action: Action::Update {
                    target: Some(r.pk.clone()),
                    set: json!({ owner: me }),
                },
                expect_row: Some(false),
                removed: None,
            }
        }
        Op::UpdateUnfiltered => plain(Action::Update {
            target: None,
            set: change(rows.first()?),
        }),
        Op::HandOver(col) | Op::HandOverUnfiltered(col) => {
            // Someone else's value for the column: from a row this actor may not update.
            let (own, value) = hand_over(rows, allowed, col)?;
            Plan {
                action: Action::Update {
                    target: matches!(op, Op::HandOver(_)).then(|| own.pk.clone()),
                    set: json!({ col: value }),
                },
                expect_row: Some(false),
                removed: None,
            }
        }
        Op::DeleteAllowed | Op::DeleteForbidden => {
            let want = *op == Op::DeleteAllowed;
            let r = pick(rows, allowed, &allowed.delete, want)?;
            Plan {
                action: Action::Delete {
                    target: Some(r.pk.clone()),
                },
                expect_row: Some(want),
                removed: None,
            }
        }
        Op::DeleteUnfiltered => plain(Action::Delete { target: None }),
        Op::AsRole(command, role) => as_role(table, rows, allowed, *command, role, caller?)?,
    })
}

/// A write as a member holding exactly `role` on the row's granting row: only the role
/// varies. An insert re-inserts a row there under the actor's own id (their own row where
/// there is one); in a membership table, another user's membership there (the actor adds
/// someone). An update or delete aims at another's row there where there is one (an owner
/// rule would grant the actor's own whatever their role).
fn as_role<'a>(
    table: &Table,
    rows: &'a [SeedRow],
    allowed: &Allowed,
    command: Command,
    role: &str,
    me: &str,
) -> Option<Plan<'a>> {
    let held = allowed.as_role.get(role)?;
    let of = |r: &SeedRow, col: &Option<String>| {
        col.as_ref()
            .is_some_and(|c| field(&r.image, c).as_str() == Some(me))
    };
    let mine = |r: &SeedRow| of(r, &table.spec.owner) || of(r, &table.member_user);
    let there: Vec<&SeedRow> = rows.iter().filter(|r| held.contains(&r.pk)).collect();
    let others = || there.iter().copied().filter(|r| !mine(r));
    if command == Command::Insert {
        if table.member_user.is_some() {
            let r = others().next()?;
            return Some(Plan {
                action: Action::Insert {
                    row: candidate(table, r),
                },
                expect_row: Some(allowed.insert.contains(&r.pk)),
                removed: Some(r),
            });
        }
        let r = there
            .iter()
            .copied()
            .find(|r| mine(r))
            .or_else(|| there.first().copied())?;
        let mut row = candidate(table, r);
        let expect = match &table.spec.owner {
            Some(owner) if !mine(r) => {
                row[owner] = json!(me);
                allowed.insert_as_self.contains(&r.pk)
            }
            _ => allowed.insert.contains(&r.pk),
        };
        return Some(Plan {
            action: Action::Insert { row },
            expect_row: Some(expect),
            removed: Some(r),
        });
    }
    let r = others()
        .find(|r| allowed.select.contains(&r.pk))
        .or_else(|| others().next())
        .or_else(|| there.first().copied())?;
    let target = Some(r.pk.clone());
    Some(if command == Command::Delete {
        Plan {
            action: Action::Delete { target },
            expect_row: Some(allowed.delete.contains(&r.pk)),
            removed: None,
        }
    } else {
        Plan {
            action: Action::Update {
                target,
                set: json!({ &table.change: changed(table, rows, &table.change, field(&r.image, &table.change)) }),
            },
            expect_row: Some(allowed.update.contains(&r.pk)),
            removed: None,
        }
    })
}
