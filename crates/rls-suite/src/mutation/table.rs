//! Table and function operators: a spec table opened up (a permissive `anon` policy per
//! command, RLS not forced with `authenticated` owning it, RLS disabled, readers that run with
//! their owner's rights), and the caller-id function rewritten.

use harness::target::quote_ident;

use super::Operator;

/// The mutants of `table` in `schema`: `(operator, sql)`. `grantees` (quoted roles, `public`)
/// may execute the SECURITY DEFINER function a mutant adds: the grants of the app's own
/// caller-id function, so that a schema which revokes PUBLIC's default EXECUTE does not make
/// the mutant uncallable (and so a survivor that weakens nothing).
pub(super) fn mutants(schema: &str, table: &str, grantees: &[String]) -> Vec<(Operator, String)> {
    let q = |t: &str| format!("{}.{}", quote_ident(schema), quote_ident(t));
    let t = q(table);
    let mut out: Vec<(Operator, String)> = [
        (Operator::AnonSelect, "select", "using (true)"),
        (Operator::AnonInsert, "insert", "with check (true)"),
        (
            Operator::AnonUpdate,
            "update",
            "using (true) with check (true)",
        ),
        (Operator::AnonDelete, "delete", "using (true)"),
    ]
    .into_iter()
    .map(|(operator, cmd, clause)| {
        (
            operator,
            format!(
                "create policy insforge_rls_mutant_anon on {t} as permissive for {cmd} to anon {clause}"
            ),
        )
    })
    .collect();
    out.push((
        Operator::NoForceOwned,
        format!(
            "alter table {t} owner to authenticated; alter table {t} no force row level security"
        ),
    ));
    out.push((
        Operator::DisableRls,
        format!("alter table {t} disable row level security"),
    ));
    // Readers that run with their owner's rights (the superuser applying the mutant).
    let view = q(&format!("insforge_rls_mutant_{table}_view"));
    out.push((
        Operator::DefinerView,
        format!("create view {view} as select * from {t}; grant select on {view} to authenticated"),
    ));
    let function = q(&format!("insforge_rls_mutant_{table}_rows"));
    let mut sql = format!(
        "create function {function}(query text) returns setof {t} language sql stable \
         security definer set search_path = '' as $$ select * from {t} $$; \
         revoke all on function {function}(text) from public"
    );
    if !grantees.is_empty() {
        sql.push_str(&format!(
            "; grant execute on function {function}(text) to {}",
            grantees.join(", ")
        ));
    }
    out.push((Operator::DefinerFunction, sql));
    out
}

/// The mutant of the caller-id function `f` (its qualified, quoted name): `(name, operator,
/// sql)`, `name` being its bare name (for the mutant's id).
pub(super) fn function_mutant(f: &str) -> (String, Operator, String) {
    // The version the InsForge/Clerk guides publish: casts the claims before guarding ''
    // (a pooled connection reads them back as '' after a transaction that set them).
    let name = f
        .rsplit('.')
        .next()
        .unwrap_or(f)
        .trim_matches('"')
        .to_owned();
    (
        name,
        Operator::CastBeforeGuard,
        format!(
            "create or replace function {f}() returns text language sql stable \
             set search_path = '' as $$ \
             select nullif(current_setting('request.jwt.claims', true)::json ->> 'sub', '')::text $$"
        ),
    )
}
