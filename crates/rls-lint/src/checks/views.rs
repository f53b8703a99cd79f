//! View rules: a view runs with its owner's privileges unless `security_invoker` is set, and a
//! materialized view stores rows with no RLS at all, so either one over an RLS table that API
//! roles can select hands them every user's rows.

use std::collections::BTreeSet;

use crate::catalog::Command;
use crate::report::{Finding, Level};
use crate::rules::{FOREIGN_TABLE_EXPOSED, VIEW_SECURITY_DEFINER};

use super::{Context, and_list, finding};

pub(super) fn check(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    for foreign in ctx
        .catalog
        .relations
        .iter()
        .filter(|r| r.checked && r.kind == 'f')
    {
        let granted: Vec<String> = ctx
            .exposed()
            .filter_map(|role| {
                let commands: Vec<&str> = Command::EACH
                    .iter()
                    .filter(|c| foreign.can(role, **c))
                    .map(|c| c.sql())
                    .collect();
                (!commands.is_empty()).then(|| format!("{role} ({})", commands.join(", ")))
            })
            .collect();
        if granted.is_empty() {
            continue;
        }
        out.push(finding(
            FOREIGN_TABLE_EXPOSED,
            Level::Warn,
            format!("foreign table {}", foreign.qualified()),
            format!(
                "{} hold privileges on a foreign table in an exposed schema: Postgres cannot put \
                 row level security on a foreign table, so every API caller reaches every row \
                 the remote server returns",
                and_list(&granted)
            ),
            format!(
                "REVOKE ALL ON {} FROM {}; move it to a schema the API does not expose and serve \
                 it through a policy-checked table or function",
                foreign.qualified(),
                ctx.exposed().collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    for view in ctx
        .catalog
        .relations
        .iter()
        .filter(|r| r.checked && matches!(r.kind, 'v' | 'm'))
    {
        let materialized = view.kind == 'm';
        if !materialized && view.option_enabled("security_invoker") {
            continue;
        }
        let readers: Vec<&str> = ctx
            .exposed()
            .filter(|role| view.can(role, Command::Select))
            .collect();
        if readers.is_empty() {
            continue;
        }
        let tables = rls_tables_read(ctx, view.oid);
        if tables.is_empty() {
            continue;
        }
        let names: Vec<String> = tables.iter().cloned().collect();
        let (object, why, fix) = if materialized {
            (
                format!("materialized view {}", view.qualified()),
                format!(
                    "{} can select this materialized view of {}: its rows were stored when it was \
                     refreshed, with no policy applied per caller, so every user's rows are readable",
                    and_list(&readers),
                    and_list(&names)
                ),
                format!(
                    "REVOKE SELECT ON {} FROM {}; serve it through a policy-checked table or function",
                    view.qualified(),
                    readers.join(", ")
                ),
            )
        } else {
            let owner_note = if view.owner_bypasses {
                format!("its owner {} bypasses RLS entirely", view.owner)
            } else {
                format!(
                    "the policies judge its owner {}, not the caller",
                    view.owner
                )
            };
            (
                format!("view {}", view.qualified()),
                format!(
                    "{} can select this view of {} and it has no security_invoker, so it reads \
                     them with its owner's privileges: {owner_note}",
                    and_list(&readers),
                    and_list(&names)
                ),
                format!(
                    "ALTER VIEW {} SET (security_invoker = true);",
                    view.qualified()
                ),
            )
        };
        out.push(finding(
            VIEW_SECURITY_DEFINER,
            Level::Error,
            object,
            why,
            fix,
        ));
    }
}

/// RLS-enabled tables a view reads, through other views.
fn rls_tables_read(ctx: &Context<'_>, view_oid: i64) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut tables = BTreeSet::new();
    let mut stack = vec![view_oid];
    while let Some(oid) = stack.pop() {
        if !seen.insert(oid) {
            continue;
        }
        for &read in ctx.catalog.view_reads.get(&oid).into_iter().flatten() {
            match ctx.relation(read) {
                Some(r) if r.is_table() && r.rls => {
                    tables.insert(r.qualified());
                }
                Some(r) if matches!(r.kind, 'v' | 'm') => stack.push(r.oid),
                _ => {}
            }
        }
    }
    tables
}
