//! Function rules: claim readers that break on pooled connections or cast Clerk ids to uuid,
//! functions in exposed schemas without a fixed search_path, and SECURITY DEFINER functions
//! that hand RLS tables to API callers.
//!
//! Claim-reader rules cover the functions in exposed schemas and every function a policy or
//! owner-column default reaches (InsForge's own `auth.*` helpers included); a dormant helper
//! elsewhere (InsForge ships `auth.uid()`) is not reported.

use crate::catalog::{Function, Relation};
use crate::report::{Finding, Level};
use crate::rules::{
    CLAIMS_CAST_BEFORE_GUARD, CLAIMS_SUB_AS_UUID, FUNCTION_SEARCH_PATH, FUNCTION_SECURITY_DEFINER,
};
use crate::sql::{Token, Tokens};

use super::{Context, and_list, finding};

pub(super) fn check(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    for (index, function) in ctx.catalog.functions.iter().enumerate() {
        let facts = &ctx.analysis.facts[index];
        let used_by = ctx.used_by.get(&index);
        let object = format!("function {}", function.signature());
        let users = used_by.map(|u| some_of(u.iter())).unwrap_or_default();

        if facts.unguarded_cast && (function.checked || used_by.is_some()) {
            out.push(finding(
                CLAIMS_CAST_BEFORE_GUARD,
                Level::Error,
                &object,
                format!(
                    "casts current_setting('request.jwt.claim…', true) before turning '' into \
                     NULL (the SQL published in the InsForge/Clerk guides does this): after a \
                     transaction that set the claims, the same pooled connection reads '' back \
                     and the cast raises an error, so {} fail instead of seeing no user",
                    if users.is_empty() {
                        "its callers".to_owned()
                    } else {
                        users.clone()
                    }
                ),
                "guard before casting: SELECT nullif(nullif(current_setting('request.jwt.claims', \
                 true), '')::jsonb ->> 'sub', '')",
            ));
        }

        if facts.sub_as_uuid && used_by.is_some() {
            out.push(finding(
                CLAIMS_SUB_AS_UUID,
                Level::Error,
                &object,
                format!(
                    "returns the caller's sub as uuid, but Clerk user ids are strings \
                     (user_2GIpX…): every request from a Clerk user errors in {users}"
                ),
                "use public.requesting_user_id() (text) and text owner columns",
            ));
        }

        if !function.checked {
            continue;
        }
        let path_safe = function.from_extension
            || matches!(function.language.as_str(), "c" | "internal")
            || function.search_path().is_some()
            || (function.language == "sql" && crate::sql::is_path_independent(&function.body));
        if !path_safe {
            out.push(finding(
                FUNCTION_SEARCH_PATH,
                Level::Warn,
                &object,
                "no fixed search_path: unqualified names in its body resolve through the \
                 caller's search_path, so an object earlier on that path can shadow the table or \
                 function it meant",
                format!(
                    "ALTER FUNCTION {} SET search_path = ''; and schema-qualify the names in its \
                     body (for a one-expression SQL function policies call, qualify every \
                     function, type and operator — OPERATOR(pg_catalog.->>) — and leave SET out \
                     so Postgres can inline it)",
                    function.signature()
                ),
            ));
        }
        if function.security_definer && !function.executable_by.is_empty() {
            security_definer(ctx, function, &object, out);
        }
    }
}

fn security_definer(ctx: &Context<'_>, function: &Function, object: &str, out: &mut Vec<Finding>) {
    if !matches!(function.language.as_str(), "sql" | "plpgsql") {
        return;
    }
    let tokens = Tokens::new(&function.body);
    let read: Vec<&Relation> = ctx
        .catalog
        .relations
        .iter()
        .filter(|r| r.is_table() && r.rls && mentions(&tokens, r))
        .collect();
    if read.is_empty() {
        return;
    }
    let names: Vec<String> = read.iter().map(|r| r.qualified()).collect();
    let bypass = if function.owner_bypasses {
        format!("its owner {} bypasses RLS entirely", function.owner)
    } else if read.iter().any(|r| r.owner == function.owner && !r.force) {
        format!(
            "its owner {} owns a table it reads that does not force RLS",
            function.owner
        )
    } else {
        format!(
            "the tables' policies judge its owner {}, not the caller",
            function.owner
        )
    };
    out.push(finding(
        FUNCTION_SECURITY_DEFINER,
        Level::Error,
        object,
        format!(
            "SECURITY DEFINER function that {} can execute reads {}: it runs as its owner, and {bypass}",
            and_list(&function.executable_by),
            and_list(&names)
        ),
        format!(
            "ALTER FUNCTION {} SECURITY INVOKER; (or filter by (select public.requesting_user_id()) \
             inside and REVOKE EXECUTE from anon)",
            function.signature()
        ),
    ));
}

/// Whether a body names a relation: bare, or qualified with its schema. A column or alias with
/// the same name also matches, which errs on the side of reporting.
fn mentions(tokens: &Tokens, relation: &Relation) -> bool {
    tokens.idents().any(|(i, name)| {
        if name != relation.name {
            return false;
        }
        match (
            i.checked_sub(1).and_then(|p| tokens.get(p)),
            i.checked_sub(2),
        ) {
            (Some(Token::Dot), Some(q)) => {
                tokens.get(q).and_then(Token::ident) == Some(relation.schema.as_str())
            }
            _ => true,
        }
    })
}

/// `a, b and c`, or `a, b, c and 4 more` for longer lists.
fn some_of<'a>(items: impl ExactSizeIterator<Item = &'a String>) -> String {
    const SHOWN: usize = 3;
    let total = items.len();
    let mut shown: Vec<String> = items.take(SHOWN).cloned().collect();
    if total > SHOWN {
        shown.push(format!("{} more", total - SHOWN));
    }
    and_list(&shown)
}
