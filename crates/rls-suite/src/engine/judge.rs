//! Stage 6, **judge**: what a cell did ([`Observed`]) against what the spec allows the actor
//! ([`Allowed`]). A **leak** is more than the spec allows, **lost access** less. Hands the
//! [`Verdict`] to the report.

use std::collections::BTreeSet;

use serde_json::Value;

use super::model::{Actor, Allowed, Observed, Op, Seeds, Table, Verdict, field};
use super::plan::changed;

/// The immutable columns a write changed.
pub(crate) fn moved_columns(table: &Table, old: &Value, new: &Value) -> Vec<String> {
    table
        .spec
        .immutable
        .iter()
        .filter(|c| field(old, c) != field(new, c))
        .cloned()
        .collect()
}

/// A refusal for want of a privilege: SQLSTATE 42501, or an HTTP 403 that names no SQLSTATE
/// (see the HTTP observer). For an actor the spec shows nothing, it is not lost access.
pub(crate) fn is_privilege_refusal(code: &str) -> bool {
    code == "42501" || code == "403"
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn judge(
    table: &Table,
    seeds: &Seeds,
    ti: usize,
    allowed: &Allowed,
    actor: &Actor,
    op: &Op,
    expect_row: Option<bool>,
    o: &Observed,
) -> Verdict {
    let who = &actor.key;
    let of = |pk: &str| seeds.tag(ti, pk);
    if let Some(pk) = o.seen.iter().find(|pk| !allowed.select.contains(*pk)) {
        return Verdict::Leak(format!(
            "{who} sees a row of {} the spec does not show them",
            of(pk)
        ));
    }
    if !o.inserted.is_empty() && expect_row != Some(true) {
        return Verdict::Leak(format!("{who} inserts a row the spec forbids them"));
    }
    if o.inserted.len() > 1 {
        return Verdict::Leak(format!(
            "{who} inserts {} rows with one statement",
            o.inserted.len()
        ));
    }
    for (pk, old, new) in &o.updated {
        if !allowed.update.contains(pk) {
            return Verdict::Leak(format!(
                "{who} updates a row of {} the spec forbids them",
                of(pk)
            ));
        }
        // A parent column immutable only by default may move where the actor may insert the
        // row (`Allowed::may_move`, for the hand-over this operation makes).
        let moved: Vec<String> = moved_columns(table, old, new)
            .into_iter()
            .filter(|c| {
                let this_hand_over =
                    matches!(op, Op::HandOver(x) | Op::HandOverUnfiltered(x) if x == c);
                !(this_hand_over && allowed.may_move.contains(c))
            })
            .collect();
        if !moved.is_empty() {
            return Verdict::Leak(format!(
                "{who} re-assigns {} of a row of {}",
                moved.join(", "),
                of(pk)
            ));
        }
    }
    if let Some(pk) = o.deleted.iter().find(|pk| !allowed.delete.contains(*pk)) {
        return Verdict::Leak(format!(
            "{who} deletes a row of {} the spec forbids them",
            of(pk)
        ));
    }
    let lost = |what: String| Verdict::LostAccess(format!("{who} {what}"));
    if let Some(code) = &o.refused {
        // A read is never an error for someone the spec shows rows to, and never anything but
        // a privilege error for anyone (a claims reader that throws is broken for everyone).
        let expected_something = match op {
            Op::Select => !allowed.select.is_empty() || !is_privilege_refusal(code),
            // A reader may show less than the table, or be refused: only more is a finding.
            Op::SelectVia(_) => false,
            // A statement with no filter reaches exactly the caller's rows under correct
            // policies, and each of those passes WITH CHECK: refusing it means the USING
            // clause let in a row the check then rejects (a USING looser than the spec).
            Op::UpdateUnfiltered => !allowed.update.is_empty(),
            Op::DeleteUnfiltered => !allowed.delete.is_empty(),
            _ => expect_row == Some(true),
        };
        return if expected_something {
            lost(format!("gets an error ({code}) where the spec allows it"))
        } else {
            Verdict::Ok
        };
    }
    match op {
        Op::Select => match allowed.select.iter().find(|pk| !o.seen.contains(*pk)) {
            Some(pk) => lost(format!(
                "cannot see a row of {} the spec shows them",
                of(pk)
            )),
            None => Verdict::Ok,
        },
        Op::InsertAllowed if o.inserted.is_empty() => {
            lost("cannot insert a row the spec allows".into())
        }
        Op::UpdateAllowed if o.updated.is_empty() => {
            lost("cannot update a row the spec allows".into())
        }
        Op::DeleteAllowed if o.deleted.is_empty() => {
            lost("cannot delete a row the spec allows".into())
        }
        Op::AsRole(command, role)
            if expect_row == Some(true)
                && o.inserted.is_empty()
                && o.updated.is_empty()
                && o.deleted.is_empty() =>
        {
            lost(format!(
                "cannot {command} as {role} where the spec allows it"
            ))
        }
        Op::UpdateUnfiltered => {
            let done: BTreeSet<&String> = o.updated.iter().map(|(pk, _, _)| pk).collect();
            // The statement sets the change column to one value (see `plan`): a row that holds
            // it already (a row derived from the policies may) is updated without a change.
            let rows = &seeds.rows[ti];
            let set = rows
                .first()
                .map(|r| changed(table, rows, &table.change, field(&r.image, &table.change)));
            let holds = |pk: &String| {
                rows.iter()
                    .find(|r| &r.pk == pk)
                    .is_some_and(|r| Some(field(&r.image, &table.change)) == set.as_ref())
            };
            match allowed
                .update
                .iter()
                .find(|pk| !done.contains(pk) && !holds(pk))
            {
                Some(pk) => lost(format!("cannot update a row of {} the spec allows", of(pk))),
                None => Verdict::Ok,
            }
        }
        Op::DeleteUnfiltered => match allowed.delete.iter().find(|pk| !o.deleted.contains(*pk)) {
            Some(pk) => lost(format!("cannot delete a row of {} the spec allows", of(pk))),
            None => Verdict::Ok,
        },
        _ => Verdict::Ok,
    }
}

#[cfg(test)]
mod tests {
    use super::is_privilege_refusal;

    #[test]
    fn a_403_without_a_sqlstate_is_a_privilege_refusal_like_42501() {
        assert!(is_privilege_refusal("42501"));
        assert!(is_privilege_refusal("403"));
        assert!(!is_privilege_refusal("22P02"));
        assert!(!is_privilege_refusal("500"));
    }
}
