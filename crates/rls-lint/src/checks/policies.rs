//! Policy rules: what each permissive policy lets an exposed role do, whether its WITH CHECK
//! pins the owner, how it reads claims, and whether it calls per-statement functions per row.
//!
//! Only permissive policies grant access, so the access rules skip restrictive ones; the
//! performance and claim rules look at every policy.

use crate::catalog::Command;
use crate::options::{PublicRead, TableIntent};
use crate::report::{Finding, Level};
use crate::rules::{
    CLAIMS_CAST_BEFORE_GUARD, CLAIMS_MISSING_OK, CLAIMS_UNAVAILABLE, POLICY_ALWAYS_FALSE,
    POLICY_ALWAYS_TRUE, POLICY_ANON_PERMISSIVE, POLICY_CALLER_ID_FALLBACK,
    POLICY_CASE_INSENSITIVE_ID, POLICY_CHECK_WEAKER, POLICY_EMAIL_ONLY, POLICY_HARDCODED_OWNER,
    POLICY_MISSING_WITH_CHECK, POLICY_MULTIPLE_PERMISSIVE, POLICY_NOT_OWNER_SCOPED,
    POLICY_ROLE_AS_USER, POLICY_UNCORRELATED_MEMBERSHIP, POLICY_UNKNOWN_ROLE, POLICY_UNPARSED,
    POLICY_UNWRAPPED_CALL, POLICY_VOLATILE_CALL,
};

use super::{Context, PolicyView, TableView, and_list, finding, qualified_sql, quote_ident};

/// `ALTER POLICY <name> ON <table>` for a fix.
fn alter_policy(table: &TableView<'_>, policy: &PolicyView<'_>) -> String {
    format!(
        "ALTER POLICY {} ON {}",
        quote_ident(&policy.policy.name),
        qualified_sql(&table.relation.schema, &table.relation.name)
    )
}

/// The owner comparison a fix suggests: on the spec's owner column, else the one the table's
/// policies or defaults use, else `user_id`.
fn owner_check(ctx: &Context<'_>, table: &TableView<'_>) -> String {
    let column = intent(ctx, table)
        .and_then(|i| i.owner_column.clone())
        .or_else(|| table.owner_columns.iter().next().cloned())
        .unwrap_or_else(|| "user_id".into());
    format!("{column} = (select public.requesting_user_id())")
}

fn intent<'o>(ctx: &Context<'o>, table: &TableView<'_>) -> Option<&'o TableIntent> {
    ctx.options.intent.get(&table.relation.qualified())
}

pub(super) fn check(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    for table in &ctx.tables {
        for policy in &table.policies {
            if let Some(finding) = unparsed(table, policy) {
                out.push(finding);
                continue;
            }
            every_policy(ctx, table, policy, out);
            if policy.policy.permissive && !policy.policy.applies_to.is_empty() {
                access(ctx, table, policy, out);
            }
        }
        multiple_permissive(ctx, table, out);
    }
}

/// A policy whose USING or WITH CHECK the parser refused: reported, and no other policy rule
/// runs on it (each would read an expression it does not have, and pass or fail blindly).
fn unparsed(table: &TableView<'_>, policy: &PolicyView<'_>) -> Option<Finding> {
    let reasons: Vec<String> = [("USING", &policy.using), ("WITH CHECK", &policy.check)]
        .into_iter()
        .filter_map(|(clause, facts)| {
            let reason = facts.as_ref()?.unparsed.as_ref()?;
            Some(format!("its {clause} ({reason})"))
        })
        .collect();
    if reasons.is_empty() {
        return None;
    }
    Some(finding(
        POLICY_UNPARSED,
        Level::Warn,
        policy.object(table.relation),
        format!(
            "the SQL parser (sqlparser, PostgreSQL dialect) cannot read {}: none of the policy \
             rules checked this policy, so the lint says nothing about who it admits",
            and_list(&reasons)
        ),
        "review the policy by hand, and let `check` test it (its matrices run the policy in \
         Postgres whatever its syntax); if an equivalent expression in plainer SQL exists, use it",
    ))
}

fn every_policy(
    ctx: &Context<'_>,
    table: &TableView<'_>,
    policy: &PolicyView<'_>,
    out: &mut Vec<Finding>,
) {
    let object = policy.object(table.relation);

    let mut unwrapped: Vec<&str> = policy
        .clauses()
        .flat_map(|c| c.unwrapped_calls.iter().map(String::as_str))
        .collect();
    unwrapped.sort_unstable();
    unwrapped.dedup();
    if !unwrapped.is_empty() {
        let wrapped: Vec<String> = unwrapped.iter().map(|c| format!("(select {c})")).collect();
        let mut clauses = Vec::new();
        if let Some(w) = policy.using.as_ref().and_then(|u| u.wrapped.as_ref()) {
            clauses.push(format!("USING ({w})"));
        }
        if let Some(w) = policy.check.as_ref().and_then(|c| c.wrapped.as_ref()) {
            clauses.push(format!("WITH CHECK ({w})"));
        }
        let sql = format!("{} {};", alter_policy(table, policy), clauses.join(" "));
        out.push(
            finding(
                POLICY_UNWRAPPED_CALL,
                Level::Warn,
                &object,
                format!(
                    "{} reads a per-statement constant (the request's settings or claims) but is \
                 called bare, so Postgres evaluates it for every row instead of once per \
                 statement (Supabase measured 179 ms → 9 ms)",
                    and_list(&unwrapped)
                ),
                format!(
                    "write {} in the policy so it becomes an initPlan",
                    and_list(&wrapped)
                ),
            )
            .with_sql(sql, None),
        );
    }

    let mut volatile: Vec<String> = policy
        .clauses()
        .flat_map(|c| c.functions.iter())
        .filter_map(|&i| {
            let f = ctx.catalog.functions.get(i)?;
            (f.volatility == 'v').then(|| format!("{}.{}()", f.schema, f.name))
        })
        .collect();
    volatile.sort_unstable();
    volatile.dedup();
    if !volatile.is_empty() {
        out.push(finding(
            POLICY_VOLATILE_CALL,
            Level::Warn,
            &object,
            format!(
                "calls {}, declared VOLATILE (the default for CREATE FUNCTION): Postgres must call \
                 it for every row, cannot inline it, and cannot use it in an index condition",
                and_list(&volatile)
            ),
            "declare it STABLE if it only reads (a caller-id or membership helper does), and call \
             it as (select f()) when its arguments are constant",
        ));
    }
    if policy.clauses().any(|c| c.claims_without_missing_ok) {
        out.push(finding(
            CLAIMS_MISSING_OK,
            Level::Warn,
            &object,
            "reads current_setting('request.jwt.claims…') without missing_ok: on a connection where \
             no request has set the claims (a direct connection, a job, a fresh pooled backend) \
             the policy raises an error instead of admitting nobody",
            "call public.requesting_user_id(), or pass true: current_setting('request.jwt.claims', true)",
        ));
    }

    let mut hardcoded: Vec<&str> = policy
        .clauses()
        .flat_map(|c| c.literal_compares.iter())
        .filter(|(column, _)| table.owner_columns.contains(column))
        .map(|(_, text)| text.as_str())
        .collect();
    hardcoded.sort_unstable();
    hardcoded.dedup();
    for text in hardcoded {
        out.push(finding(
            POLICY_HARDCODED_OWNER,
            Level::Warn,
            &object,
            format!(
                "`{text}` hard-codes one owner: whoever holds that Clerk id reaches these rows \
                 whatever the other branches say (a backdoor, a test leftover, or an admin rule \
                 that belongs in a table)"
            ),
            "drop the branch, or look admins up in a table keyed by the Clerk user id",
        ));
    }
    let known_roles: Vec<&str> = ctx
        .options
        .exposed_roles
        .iter()
        .chain(std::iter::once(&ctx.options.anon_role))
        .map(String::as_str)
        .collect();
    let mut unknown: Vec<&str> = policy
        .clauses()
        .flat_map(|c| c.role_literals.iter())
        .map(String::as_str)
        .filter(|l| !known_roles.contains(l))
        .collect();
    unknown.sort_unstable();
    unknown.dedup();
    if !unknown.is_empty() {
        let quoted: Vec<String> = unknown.iter().map(|l| format!("'{l}'")).collect();
        out.push(finding(
            POLICY_UNKNOWN_ROLE,
            Level::Warn,
            &object,
            format!(
                "compares the request's role with {}, but API requests run as {}: that comparison \
                 is never true, so the policy silently admits less than it seems to (a typo, or a \
                 Supabase role name)",
                and_list(&quoted),
                and_list(&known_roles)
            ),
            "compare with a role requests run as (usually 'authenticated'), or with the caller's id",
        ));
    }
    let scope_false = match policy.policy.command {
        Command::Insert => policy.check.as_ref(),
        _ => policy.using.as_ref(),
    }
    .is_some_and(|c| c.always_false);
    if policy.policy.permissive && scope_false {
        out.push(finding(
            POLICY_ALWAYS_FALSE,
            Level::Info,
            &object,
            "the policy's expression is the constant false: it admits nothing (a permissive \
             policy that grants nothing is dead weight; a deny is clearer as a revoked grant)",
            "drop the policy, or REVOKE the privilege so the deny is explicit",
        ));
    }

    let owner_columns = &table.owner_columns;
    for text in policy.clauses().flat_map(|c| c.role_compares.iter()) {
        // Certain when the column holds the Clerk user id elsewhere (policies or its default).
        let on_owner = owner_columns.iter().any(|c| text.contains(c.as_str()));
        out.push(finding(
            POLICY_ROLE_AS_USER,
            if on_owner { Level::Error } else { Level::Warn },
            &object,
            format!(
                "`{text}` compares with the database role, not the Clerk user: every API request \
                 runs as the same role ({}), so the rows this admits are the same for every \
                 user{}",
                and_list(&ctx.options.exposed_roles),
                if on_owner {
                    " — and the column holds Clerk user ids, which never equal a role name"
                } else {
                    ""
                }
            ),
            format!("compare with the caller's id: {}", owner_check(ctx, table)),
        ));
    }
    for (text, certain) in policy.clauses().flat_map(|c| c.case_folded.iter()) {
        out.push(finding(
            POLICY_CASE_INSENSITIVE_ID,
            if *certain { Level::Error } else { Level::Warn },
            &object,
            if *certain {
                format!(
                    "`{text}` matches the caller's Clerk id ignoring case or as a pattern: Clerk ids \
                     are case-sensitive (user_2GIpX… and user_2gipx… are two users) and contain \
                     `_`, a LIKE wildcard, so a look-alike id gets these rows"
                )
            } else {
                format!(
                    "`{text}` folds the case of one side of a caller-id comparison: Clerk ids are \
                     case-sensitive, so the owner's mixed-case id no longer matches (the owner \
                     loses the rows) and the policy cannot use the owner index"
                )
            },
            format!("compare the ids exactly: {}", owner_check(ctx, table)),
        ));
    }
    if policy.policy.permissive
        && policy.clauses().any(|c| c.claim_keys.contains("email"))
        && !policy.clauses().any(|c| c.binds_caller)
    {
        out.push(finding(
            POLICY_EMAIL_ONLY,
            Level::Warn,
            &object,
            "scopes rows by the caller's email claim (auth.email()) and never by the caller's id: \
             a Clerk user can change their email (the rows stay with the old address, or go to \
             whoever takes it next), `=` on emails is case-sensitive, and the forwarded email \
             is whatever the token carries, not the Clerk user",
            format!(
                "key the rows by the Clerk user id: {}; keep emails in a table keyed by that id",
                owner_check(ctx, table)
            ),
        ));
    }

    let available = &ctx.options.available_claims;
    let mut unavailable: Vec<&str> = policy
        .clauses()
        .flat_map(|c| c.claim_keys.iter().map(String::as_str))
        .filter(|k| !available.iter().any(|a| a == k))
        .collect();
    unavailable.sort_unstable();
    unavailable.dedup();
    if !unavailable.is_empty() {
        let quoted: Vec<String> = unavailable.iter().map(|k| format!("'{k}'")).collect();
        out.push(finding(
            CLAIMS_UNAVAILABLE,
            Level::Warn,
            &object,
            format!(
                "reads the claim {} (directly or through the functions it calls); InsForge \
                 >= 2.2.5 re-signs the caller's token keeping only {}, so behind InsForge the \
                 claim is NULL and the policy silently denies or misfires",
                and_list(&quoted),
                and_list(available)
            ),
            "base the policy on sub (public.requesting_user_id()), or look the value up in a \
             table keyed by the user id",
        ));
    }

    for (text, related) in policy.clauses().flat_map(|c| c.uncorrelated.iter()) {
        let table_name = table.relation.qualified();
        // Certain only where the lookup could be tied to the row: a lookup nothing relates to
        // the row is a check of who the caller is (an admin, a subscriber), meant or not.
        let (level, why) = if related.is_empty() {
            (
                Level::Warn,
                format!(
                    "the subquery `{text}` checks the caller but never ties the looked-up rows to \
                     this row of {table_name}: anyone with one matching row passes for every row \
                     of the table. Nothing relates the looked-up table to {table_name} (no \
                     foreign key, no shared column), so this reads as a check of the caller's \
                     status (an admin, a subscriber): right only if every row is meant for them"
                ),
            )
        } else {
            (
                Level::Error,
                format!(
                    "the subquery `{text}` checks the caller but never ties the looked-up rows to \
                     this row of {table_name}, though {} could be: anyone with one matching row \
                     (a member of any project, say) passes for every row of the table (inside a \
                     subquery an unqualified column is the subquery's own)",
                    and_list(related)
                ),
            )
        };
        out.push(finding(
            POLICY_UNCORRELATED_MEMBERSHIP,
            level,
            &object,
            why,
            format!(
                "correlate it with the outer row, qualified: `… AND m.<key> = {}.<column>`",
                table.relation.name
            ),
        ));
    }
    for text in policy.clauses().flat_map(|c| c.caller_fallbacks.iter()) {
        out.push(finding(
            POLICY_CALLER_ID_FALLBACK,
            Level::Error,
            &object,
            format!(
                "`{text}` falls back to the row's own value when the request carries no caller \
                 id (no claims, anon, a pooled connection after a request): the comparison is \
                 then true for every row"
            ),
            format!(
                "compare with the caller's id alone: {}",
                owner_check(ctx, table)
            ),
        ));
    }

    if policy.clauses().any(|c| c.unguarded_cast) {
        out.push(finding(
            CLAIMS_CAST_BEFORE_GUARD,
            Level::Error,
            &object,
            "casts current_setting('request.jwt.claims', true) before turning '' into NULL: a \
             pooled connection that served an earlier request reads '' back, and ''::json raises \
             an error, so the request fails",
            "call public.requesting_user_id() instead, or write \
             nullif(current_setting('request.jwt.claims', true), '')::jsonb",
        ));
    }
}

fn access(
    ctx: &Context<'_>,
    table: &TableView<'_>,
    policy: &PolicyView<'_>,
    out: &mut Vec<Finding>,
) {
    let rel = table.relation;
    let p = policy.policy;
    let object = policy.object(rel);
    let command = p.command;
    let roles = and_list(&p.applies_to);
    let anon = ctx.options.anon_role.as_str();
    let using_true = policy.using.as_ref().is_some_and(|u| u.always_true);
    let check_true = policy.check.as_ref().is_some_and(|c| c.always_true);
    let owner_check = owner_check(ctx, table);
    // A read the spec makes public is intended, for exactly the roles it names.
    let intended_public_read = command == Command::Select
        && match intent(ctx, table).and_then(|i| i.public_read) {
            Some(PublicRead::Anyone) => true,
            Some(PublicRead::SignedIn) => p.applies_to.iter().all(|r| r != anon),
            None => false,
        };

    // A read open to every exposed role on a table with no owner-scoped read is how public
    // rows (profiles, posts) are written: a leak only if the spec says the rows are private.
    // Without a spec for the table that is not certain, so it is a warning.
    let looks_public = command == Command::Select
        && using_true
        && ctx.exposed().all(|r| p.applies_to.iter().any(|a| a == r))
        && !table.policies.iter().any(|other| {
            other.policy.permissive
                && other.policy.command.covers(Command::Select)
                && other.using.as_ref().is_some_and(|u| u.binds_caller)
        });
    let public_level = if looks_public && intent(ctx, table).is_none() {
        Level::Warn
    } else {
        Level::Error
    };
    let public_note = if public_level == Level::Warn {
        " (if these rows are public by design, say so in the access spec: select = \"anyone\")"
    } else {
        ""
    };

    // --- always true
    if command != Command::Select && (using_true || check_true) {
        let clause = match (using_true, check_true) {
            (true, true) => "USING (true) WITH CHECK (true)",
            (true, false) => "USING (true)",
            _ => "WITH CHECK (true)",
        };
        let effect = match command {
            Command::Insert => "insert rows owned by anyone".to_owned(),
            Command::Delete => {
                "delete every user's rows (a DELETE without WHERE skips the SELECT policy)"
                    .to_owned()
            }
            Command::Update if check_true && !using_true => {
                "hand their rows to another user (an UPDATE without WHERE or RETURNING checks only \
                 WITH CHECK)"
                    .to_owned()
            }
            Command::Update => {
                "rewrite every user's rows (an UPDATE without WHERE skips the SELECT policy)"
                    .to_owned()
            }
            _ => "read and change every user's rows".to_owned(),
        };
        out.push(finding(
            POLICY_ALWAYS_TRUE,
            Level::Error,
            &object,
            format!(
                "{} policy with {clause} for {roles}: they can {effect}",
                command.sql()
            ),
            owner_fix(command, &owner_check),
        ));
    } else if command == Command::Select
        && using_true
        && table.user_owned()
        && !intended_public_read
    {
        out.push(finding(
            POLICY_ALWAYS_TRUE,
            public_level,
            &object,
            format!(
                "SELECT policy with USING (true) on a user-owned table: {roles} can read every user's rows{public_note}"
            ),
            format!("USING ({owner_check})"),
        ));
    }

    // The clause that says which rows a policy lets the role touch.
    let scope = match command {
        Command::Insert => policy.check.as_ref(),
        _ => policy.using.as_ref(),
    };
    let scoped = scope.is_some_and(|s| s.binds_caller);
    // A gate on who the caller is (a role or permission function given the caller's id):
    // it depends on the caller, but not on which rows are theirs.
    let gated = scope.is_some_and(|s| s.caller_gated);
    // `USING (false)` admits nothing: nobody reaches anything through it.
    let scope_false = scope.is_some_and(|s| s.always_false);

    // --- anon
    // `auth.role() = 'authenticated'` (or `<caller id> IS NOT NULL`) in every branch: anon's
    // requests never pass, whatever the policy's TO list says.
    let signed_in_only = scope.is_some_and(|s| s.requires_signed_in);
    if p.applies_to.iter().any(|r| r == anon)
        && table.user_owned()
        && !scoped
        && !gated
        && !scope_false
        && !signed_in_only
        && !intended_public_read
    {
        out.push(finding(
            POLICY_ANON_PERMISSIVE,
            public_level,
            &object,
            format!(
                "permissive {} policy that applies to {anon} (requests without a token) on a \
                 user-owned table, and it does not depend on the caller's id: anyone on the \
                 internet reaches these rows{public_note}",
                command.sql()
            ),
            format!("drop it, or restrict it with TO authenticated and USING ({owner_check})"),
        ));
    }

    // --- missing WITH CHECK
    if matches!(command, Command::Update | Command::All) && policy.check.is_none() {
        match &policy.using {
            None => out.push(admits_nothing(&object, command, &owner_check)),
            Some(u) if u.always_true => {}
            Some(u) if !u.owner_columns.is_empty() && u.binds_caller => out.push(
                finding(
                POLICY_MISSING_WITH_CHECK,
                Level::Warn,
                &object,
                format!(
                    "{} policy without WITH CHECK: Postgres reuses USING as the check, and USING \
                     pins the owner ({}), so rows cannot be handed off today — but loosening \
                     USING later (e.g. shared rows) silently loosens the check too",
                    command.sql(),
                    u.owner_columns
                        .iter()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                format!(
                    "add WITH CHECK ({} = (select public.requesting_user_id())) so the check is explicit",
                    u.owner_columns.iter().next().map_or("user_id", |c| c.as_str())
                ),
            )
                .with_sql(
                    // Postgres already uses USING as the check: writing it out changes nothing.
                    format!(
                        "{} WITH CHECK ({});",
                        alter_policy(table, policy),
                        p.using.as_deref().unwrap_or("false")
                    ),
                    None,
                ),
            ),
            Some(_) => {
                let guard = owner_guard_trigger(ctx, table);
                out.push(finding(
                    POLICY_MISSING_WITH_CHECK,
                    if guard.is_some() {
                        Level::Warn
                    } else {
                        Level::Error
                    },
                    &object,
                    format!(
                        "{} policy without WITH CHECK, and its USING does not compare this table's \
                         owner column with the caller's id: reused as the check on the new row, it \
                         does not pin the new owner (a USING that looks the row up by id still finds \
                         the old row), so an UPDATE without WHERE can hand rows to another user{}",
                        command.sql(),
                        guard.map_or(String::new(), |t| format!(
                            " — unless the BEFORE UPDATE trigger {t}, which handles the owner \
                             column, refuses or resets the change (the lint cannot tell: make it \
                             explicit in WITH CHECK)"
                        ))
                    ),
                    format!("WITH CHECK ({owner_check})"),
                ));
            }
        }
    }
    if command == Command::Insert && policy.check.is_none() {
        out.push(admits_nothing(&object, command, &owner_check));
    }

    // --- WITH CHECK weaker than USING
    if matches!(command, Command::Update | Command::All)
        && let (Some(u), Some(c)) = (&policy.using, &policy.check)
        && !c.always_true
        && ((u.binds_caller && !c.binds_caller)
            || (!u.owner_columns.is_empty() && c.owner_columns.is_empty()))
    {
        out.push(finding(
            POLICY_CHECK_WEAKER,
            Level::Error,
            &object,
            "USING pins the row to the caller but WITH CHECK does not pin the new row's owner: \
             a user can update their row into someone else's",
            format!("WITH CHECK ({owner_check}), the same owner comparison as USING"),
        ));
    }

    // --- not owner scoped
    let only_anon = p.applies_to.iter().all(|r| r == anon);
    if table.user_owned()
        && !only_anon
        && !intended_public_read
        && let Some(s) = scope
        && !s.always_true
        && !s.always_false
        && !s.binds_caller
    {
        // A caller gate may well be right (admins delete any channel): the lint cannot tell
        // whom the function admits, so it is not certain enough for an ERROR.
        let level = if command == Command::Select || s.caller_gated {
            Level::Warn
        } else {
            Level::Error
        };
        out.push(finding(
            POLICY_NOT_OWNER_SCOPED,
            level,
            &object,
            format!(
                "{} policy for {roles} on a user-owned table (owner column {}) that never \
                 compares it with the caller's id: {}",
                command.sql(),
                table.owner_columns.iter().cloned().collect::<Vec<_>>().join(", "),
                if s.caller_gated {
                    "every caller the function it calls admits (a role or permission check) \
                     reaches every user's rows — right for a role the app grants deliberately \
                     (an admin, a moderator), a leak if the function admits ordinary users"
                } else if command == Command::Select {
                    "every matching row of every user is visible (fine only for deliberately shared rows)"
                } else {
                    "any signed-in user can write other users' rows"
                }
            ),
            format!("compare the owner column with the caller: {owner_check}"),
        ));
    }
}

/// A row-level BEFORE UPDATE trigger on the table whose function names one of the table's
/// owner columns (through `NEW.`/`OLD.`): the usual way to keep the owner from changing.
fn owner_guard_trigger(ctx: &Context<'_>, table: &TableView<'_>) -> Option<String> {
    let triggers = ctx.catalog.triggers.get(&table.relation.oid)?;
    triggers
        .iter()
        .filter(|t| t.before && t.for_each_row && t.on_update)
        .find(|t| {
            ctx.catalog.functions.iter().any(|f| {
                f.schema == t.function_schema
                    && f.name == t.function_name
                    && table.owner_columns.iter().any(|c| {
                        let body = f.body.to_ascii_lowercase();
                        body.contains(&format!("new.{c}")) || body.contains(&format!("old.{c}"))
                    })
            })
        })
        .map(|t| t.name.clone())
}

/// The owner check in the clauses `command` has.
fn owner_fix(command: Command, owner_check: &str) -> String {
    match command {
        Command::Insert => format!("WITH CHECK ({owner_check})"),
        Command::Select | Command::Delete => format!("USING ({owner_check})"),
        Command::Update | Command::All => {
            format!("USING ({owner_check}) WITH CHECK ({owner_check})")
        }
    }
}

fn admits_nothing(object: &str, command: Command, owner_check: &str) -> Finding {
    finding(
        POLICY_MISSING_WITH_CHECK,
        Level::Warn,
        object,
        format!(
            "{} policy with neither USING nor WITH CHECK for new rows: Postgres treats the \
             missing expression as false, so this policy admits no row",
            command.sql()
        ),
        format!("WITH CHECK ({owner_check})"),
    )
}

fn multiple_permissive(ctx: &Context<'_>, table: &TableView<'_>, out: &mut Vec<Finding>) {
    for role in ctx.exposed() {
        for command in Command::EACH {
            let names: Vec<&str> = table
                .policies
                .iter()
                .filter(|p| {
                    p.policy.permissive
                        && p.policy.command.covers(command)
                        && p.policy.applies_to.iter().any(|r| r == role)
                })
                .map(|p| p.policy.name.as_str())
                .collect();
            if names.len() > 1 {
                out.push(finding(
                    POLICY_MULTIPLE_PERMISSIVE,
                    Level::Warn,
                    table.relation.qualified(),
                    format!(
                        "{role} has {} permissive {} policies ({}): they are ORed, so the loosest \
                         decides, and each runs for every row",
                        names.len(),
                        command.sql(),
                        and_list(&names)
                    ),
                    "merge them into one policy per role and command, or make the narrowing ones \
                     AS RESTRICTIVE",
                ));
            }
        }
    }
}
