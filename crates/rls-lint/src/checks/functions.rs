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
    CLAIMS_CAST_BEFORE_GUARD, CLAIMS_MISSING_OK, CLAIMS_SUB_AS_UUID, FUNCTION_CALLER_ID_IMMUTABLE,
    FUNCTION_LEAKPROOF, FUNCTION_SEARCH_PATH, FUNCTION_SECURITY_DEFINER,
    FUNCTION_SECURITY_DEFINER_TRIGGER,
};
use crate::sql::{Token, Tokens};

use super::{Context, and_list, finding, qualified_sql, quote_ident};

/// The function as `ALTER FUNCTION` names it.
fn function_sql(function: &Function) -> String {
    format!(
        "{}({})",
        qualified_sql(&function.schema, &function.name),
        function.identity_args
    )
}

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

        if facts.claims_without_missing_ok && (function.checked || used_by.is_some()) {
            out.push(finding(
                CLAIMS_MISSING_OK,
                Level::Warn,
                &object,
                format!(
                    "reads current_setting('request.jwt.claims…') without missing_ok: on a \
                     connection where no request has set the claims (a direct connection, a job, \
                     a fresh pooled backend) {} raise an error instead of seeing no user",
                    if users.is_empty() {
                        "its callers".to_owned()
                    } else {
                        users.clone()
                    }
                ),
                "pass true: current_setting('request.jwt.claims', true), and turn '' into NULL \
                 before casting",
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

        if facts.reads_settings
            && function.volatility == 'i'
            && (function.checked || used_by.is_some())
        {
            out.push(
                finding(
                    FUNCTION_CALLER_ID_IMMUTABLE,
                    if used_by.is_some() {
                        Level::Error
                    } else {
                        Level::Warn
                    },
                    &object,
                    format!(
                        "reads the request's settings (the caller's claims) but is declared \
                         IMMUTABLE, a promise that it returns the same value forever: the planner \
                         may fold the call into a constant when it plans a statement, and a \
                         cached plan (a prepared statement, a PL/pgSQL plan, a pooled \
                         connection) then serves the first caller's id to every later caller{}",
                        if users.is_empty() {
                            String::new()
                        } else {
                            format!(" of {users}")
                        }
                    ),
                    format!(
                        "ALTER FUNCTION {} STABLE; (the claims are set per transaction and \
                         constant within a statement: exactly what STABLE promises)",
                        function.signature()
                    ),
                )
                .with_sql(
                    format!("ALTER FUNCTION {} STABLE;", function_sql(function)),
                    None,
                ),
            );
        }

        if !function.checked {
            continue;
        }
        if function.leakproof && !function.from_extension {
            out.push(
                finding(
                    FUNCTION_LEAKPROOF,
                    Level::Warn,
                    &object,
                    "declared LEAKPROOF: the planner may run it on rows before the policies have \
                     filtered them (to use an index), so anything it reveals — an error message \
                     quoting its argument, a notice, a side effect — reveals other users' rows",
                    format!(
                        "ALTER FUNCTION {} NOT LEAKPROOF; (only built-in operators proven not \
                         to leak belong in LEAKPROOF)",
                        function.signature()
                    ),
                )
                .with_sql(
                    format!("ALTER FUNCTION {} NOT LEAKPROOF;", function_sql(function)),
                    None,
                ),
            );
        }
        if function.security_definer && function.returns == "trigger" {
            let fired_by: Vec<String> = ctx
                .catalog
                .triggers
                .iter()
                .flat_map(|(oid, list)| {
                    list.iter()
                        .filter(|t| {
                            t.function_schema == function.schema && t.function_name == function.name
                        })
                        .filter_map(|t| {
                            ctx.relation(*oid)
                                .map(|r| format!("{} on {}", t.name, r.qualified()))
                        })
                })
                .collect();
            out.push(
                finding(
                    FUNCTION_SECURITY_DEFINER_TRIGGER,
                    Level::Warn,
                    &object,
                    format!(
                        "a SECURITY DEFINER trigger function{}: it runs as its owner {}{}, so what \
                         it reads or writes on the user's behalf is not judged by the policies \
                         that judge the user",
                        if fired_by.is_empty() {
                            String::new()
                        } else {
                            format!(" (fired by {})", and_list(&fired_by))
                        },
                        function.owner,
                        if function.owner_bypasses {
                            ", who bypasses RLS"
                        } else {
                            ""
                        }
                    ),
                    format!(
                        "ALTER FUNCTION {} SECURITY INVOKER; (if it must write a table the user \
                         cannot, keep DEFINER, fix its search_path and filter by \
                         (select public.requesting_user_id()) inside)",
                        function.signature()
                    ),
                )
                .with_sql(
                    format!(
                        "ALTER FUNCTION {} SECURITY INVOKER;",
                        function_sql(function)
                    ),
                    Some(
                        "the trigger's own reads and writes now go through the policies of the \
                         user whose statement fired it",
                    ),
                ),
            );
        }
        let path_safe = function.from_extension
            || matches!(function.language.as_str(), "c" | "internal")
            || function.search_path().is_some()
            || (function.language == "sql" && crate::expr::is_path_independent(&function.body));
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
            ).with_sql(
                format!(
                    "-- first make sure every name in its body is schema-qualified\n\
                     ALTER FUNCTION {} SET search_path = '';",
                    function_sql(function)
                ),
                None,
            ));
        }
        if function.security_definer
            && function.returns != "trigger"
            && !function.executable_by.is_empty()
        {
            security_definer(ctx, index, function, &object, out);
        }
    }
}

fn security_definer(
    ctx: &Context<'_>,
    index: usize,
    function: &Function,
    object: &str,
    out: &mut Vec<Finding>,
) {
    if !matches!(function.language.as_str(), "sql" | "plpgsql") {
        return;
    }
    // A helper that filters by the caller's id (the membership lookup policies call to avoid
    // recursing into their own table's policies) is the standard, intended use: only a caller
    // without an id (anon) should not reach it.
    if ctx.analysis.facts[index].uses_caller {
        let anon = ctx.options.anon_role.as_str();
        if !function.executable_by.iter().any(|r| r == anon) {
            return;
        }
        let keep: Vec<&str> = function
            .executable_by
            .iter()
            .map(String::as_str)
            .filter(|r| *r != anon)
            .collect();
        let signature = function_sql(function);
        let mut sql = format!(
            "REVOKE EXECUTE ON FUNCTION {signature} FROM PUBLIC;\nREVOKE EXECUTE ON FUNCTION \
             {signature} FROM {};",
            quote_ident(anon)
        );
        if !keep.is_empty() {
            let roles: Vec<String> = keep.iter().map(|r| quote_ident(r)).collect();
            sql.push_str(&format!(
                "\nGRANT EXECUTE ON FUNCTION {signature} TO {};",
                roles.join(", ")
            ));
        }
        out.push(
            finding(
                FUNCTION_SECURITY_DEFINER,
                Level::Warn,
                object,
                format!(
                    "SECURITY DEFINER function that filters by the caller's id (a membership \
                     helper policies call without recursing), executable by {}: requests without \
                     a token can call it through the API; with no caller id it should find \
                     nothing, but nothing needs anon to reach it",
                    and_list(&function.executable_by)
                ),
                format!(
                    "REVOKE EXECUTE ON FUNCTION {} FROM PUBLIC, {anon}; keep SECURITY DEFINER \
                     (SECURITY INVOKER would make the policies that call it recurse into their \
                     own table's policies)",
                    function.signature()
                ),
            )
            .with_sql(sql, Some("anon can no longer call the function")),
        );
        return;
    }
    // A SQL body the parser reads is read as its tree; PL/pgSQL and a refused body, as tokens.
    let tree = match function.language.as_str() {
        "sql" => crate::expr::parse_body(&function.body).ok(),
        _ => None,
    };
    let tokens = Tokens::new(&function.body);
    let read: Vec<&Relation> = ctx
        .catalog
        .relations
        .iter()
        .filter(|r| {
            r.is_table()
                && r.rls
                && match &tree {
                    Some(tree) => mentions_tree(tree, r),
                    None => mentions(&tokens, r),
                }
        })
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
    let used_by_policy = ctx.used_by.contains_key(&index);
    let base = finding(
        FUNCTION_SECURITY_DEFINER,
        Level::Error,
        object,
        format!(
            "SECURITY DEFINER function that {} can execute reads {}: it runs as its owner, and {bypass}",
            and_list(&function.executable_by),
            and_list(&names)
        ),
        if used_by_policy {
            format!(
                "filter by (select public.requesting_user_id()) inside and REVOKE EXECUTE ON \
                 FUNCTION {} FROM PUBLIC, anon (a policy calls it: SECURITY INVOKER would make \
                 that policy recurse)",
                function.signature()
            )
        } else {
            format!(
                "ALTER FUNCTION {} SECURITY INVOKER; (or filter by (select \
                 public.requesting_user_id()) inside and REVOKE EXECUTE from anon)",
                function.signature()
            )
        },
    );
    out.push(if used_by_policy {
        base
    } else {
        base.with_sql(
            format!(
                "ALTER FUNCTION {} SECURITY INVOKER;",
                function_sql(function)
            ),
            Some("its queries now run under the caller's policies: callers see only their rows"),
        )
    });
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

/// [`mentions`] on a parsed SQL body: a relation it reads or writes, bare or qualified with the
/// relation's schema, or an identifier with the relation's name (a column or alias with the
/// same name also matches, which errs on the side of reporting).
fn mentions_tree(tree: &[sqlparser::ast::Statement], relation: &Relation) -> bool {
    tree.iter().any(|statement| {
        crate::expr::relations(statement)
            .iter()
            .any(|parts| match parts.as_slice() {
                [name] => *name == relation.name,
                [.., schema, name] => *name == relation.name && *schema == relation.schema,
                [] => false,
            })
            || crate::expr::identifiers(statement).contains(&relation.name)
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
