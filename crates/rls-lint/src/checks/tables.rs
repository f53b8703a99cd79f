//! Table-level rules: is RLS on, forced, backed by policies for every granted command, and are
//! the owner columns typed, defaulted and indexed for Clerk ids.

use crate::catalog::Command;
use crate::report::{Finding, Level};
use crate::rules::{
    FOREIGN_KEY_EXISTENCE_ORACLE, OWNER_COLUMN_DEFAULT, OWNER_COLUMN_NULLABLE,
    OWNER_COLUMN_UNINDEXED, OWNER_COLUMN_UNUSED, OWNER_COLUMN_UUID, RLS_COMMAND_WITHOUT_POLICY,
    RLS_DISABLED, RLS_NO_POLICY, RLS_NOT_FORCED, RLS_ONLY_RESTRICTIVE, RLS_POLICIES_WHILE_DISABLED,
    UNIQUE_NOT_OWNER_SCOPED,
};

use super::{Context, TableView, and_list, finding, qualified_sql, quote_ident};

pub(super) fn check(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    for table in &ctx.tables {
        rls_state(ctx, table, out);
        owner_columns(ctx, table, out);
        unique_indexes(ctx, table, out);
        foreign_keys(ctx, table, out);
    }
}

/// A foreign key is checked as the table owner, past the parent's policies: an INSERT naming
/// a parent row the user cannot see succeeds (or fails the policy) when the row exists and
/// fails with 23503 when it does not — unless the INSERT policy itself checks the key column
/// (a membership check on the parent id fails first, the same way for both).
fn foreign_keys(ctx: &Context<'_>, table: &TableView<'_>, out: &mut Vec<Finding>) {
    let Some(keys) = ctx.catalog.foreign_keys.get(&table.relation.oid) else {
        return;
    };
    let inserts: Vec<_> = table
        .policies
        .iter()
        .filter(|p| {
            p.policy.permissive
                && p.policy.command.covers(Command::Insert)
                && !p.policy.applies_to.is_empty()
        })
        .collect();
    if inserts.is_empty() || !table.relation.rls {
        return;
    }
    for key in keys {
        let Some(parent) = ctx.relation(key.parent_oid) else {
            continue;
        };
        if parent.oid == table.relation.oid || !parent.rls {
            continue;
        }
        // A parent anyone can read hides nothing.
        let parent_public = ctx.catalog.policies.iter().any(|p| {
            p.table_oid == parent.oid
                && p.permissive
                && p.command.covers(Command::Select)
                && p.using.as_deref().is_some_and(|u| u.trim() == "true")
        });
        if parent_public {
            continue;
        }
        let key_columns: Vec<_> = key
            .columns
            .iter()
            .filter_map(|k| table.columns.iter().find(|c| c.attnum == *k))
            .collect();
        // Random uuids cannot be guessed: asking whether one exists reveals nothing.
        if key_columns.iter().all(|c| c.base_type == "uuid") {
            continue;
        }
        let columns: Vec<&str> = key_columns.iter().map(|c| c.name.as_str()).collect();
        let checked = inserts.iter().all(|p| {
            p.check
                .as_ref()
                .or(p.using.as_ref())
                .is_some_and(|facts| columns.iter().any(|c| facts.may_mention(c)))
        });
        if checked {
            continue;
        }
        out.push(finding(
            FOREIGN_KEY_EXISTENCE_ORACLE,
            Level::Info,
            format!("constraint {} on {}", key.name, table.relation.qualified()),
            format!(
                "({}) references {}, which RLS hides, but the INSERT policy does not check it: \
                 Postgres checks the key past the parent's policies, so inserting a row that \
                 names another user's {} succeeds (or fails the policy) when it exists and fails \
                 with a foreign key error when it does not — an existence oracle",
                columns.join(", "),
                parent.qualified(),
                parent.name
            ),
            format!(
                "check the parent in the INSERT policy's WITH CHECK (e.g. EXISTS (SELECT 1 FROM {} \
                 p WHERE p.id = {}.{} AND <caller may use it>)), or key the parent by a random \
                 uuid",
                parent.qualified(),
                table.relation.name,
                columns.first().copied().unwrap_or("parent_id")
            ),
        ));
    }
}

/// Whether any policy on the table names the column.
fn policies_mention(table: &TableView<'_>, column: &str) -> bool {
    table
        .policies
        .iter()
        .any(|p| p.clauses().any(|c| c.may_mention(column)))
}

fn table_sql(table: &TableView<'_>) -> String {
    qualified_sql(&table.relation.schema, &table.relation.name)
}

fn unique_indexes(ctx: &Context<'_>, table: &TableView<'_>, out: &mut Vec<Finding>) {
    if !table.user_owned() || !table.relation.rls {
        return;
    }
    let owner_attnums: Vec<i16> = table
        .columns
        .iter()
        .filter(|c| table.owner_columns.contains(&c.name))
        .map(|c| c.attnum)
        .collect();
    let Some(indexes) = ctx.catalog.indexes.get(&table.relation.oid) else {
        return;
    };
    for index in indexes.iter().filter(|i| i.unique && !i.primary) {
        if index.keys.iter().any(|k| owner_attnums.contains(k)) {
            continue;
        }
        let names: Vec<&str> = index
            .keys
            .iter()
            .map(|k| {
                table
                    .columns
                    .iter()
                    .find(|c| c.attnum == *k)
                    .map_or("<expression>", |c| c.name.as_str())
            })
            .collect();
        let owner = table
            .owner_columns
            .iter()
            .next()
            .map_or("user_id", String::as_str);
        out.push(finding(
            UNIQUE_NOT_OWNER_SCOPED,
            Level::Info,
            format!("index {} on {}", index.name, table.relation.qualified()),
            format!(
                "UNIQUE over ({}) across every user's rows: RLS hides the other rows but not the \
                 index, so an INSERT that fails with a duplicate key tells one user that another \
                 already holds the value (an existence oracle), and two users cannot both use it{}",
                names.join(", "),
                if index.partial {
                    " (partial index)"
                } else {
                    ""
                }
            ),
            format!(
                "scope it by owner if the value is per user: UNIQUE ({owner}, {}); keep it global \
                 only for values meant to be unique site-wide (a handle), and accept the oracle",
                names.join(", ")
            ),
        ));
    }
}

fn enable_sql(name: &str) -> String {
    format!(
        "ALTER TABLE {name} ENABLE ROW LEVEL SECURITY; ALTER TABLE {name} FORCE ROW LEVEL SECURITY;"
    )
}

fn rls_state(ctx: &Context<'_>, table: &TableView<'_>, out: &mut Vec<Finding>) {
    let rel = table.relation;
    let name = rel.qualified();
    let granted: Vec<String> = ctx
        .exposed()
        .filter_map(|role| {
            let commands: Vec<&str> = Command::EACH
                .iter()
                .filter(|c| rel.can(role, **c))
                .map(|c| c.sql())
                .collect();
            (!commands.is_empty()).then(|| format!("{role} ({})", commands.join(", ")))
        })
        .collect();

    if !rel.rls {
        if !table.policies.is_empty() {
            let names: Vec<&str> = table
                .policies
                .iter()
                .map(|p| p.policy.name.as_str())
                .collect();
            out.push(finding(
                RLS_POLICIES_WHILE_DISABLED,
                Level::Error,
                &name,
                format!(
                    "policies {} exist but row level security is off, so none of them applies{}",
                    and_list(&names),
                    if granted.is_empty() {
                        String::new()
                    } else {
                        format!(": {} reach every row", and_list(&granted))
                    }
                ),
                enable_sql(&name),
            ).with_sql(
                format!(
                    "ALTER TABLE {t} ENABLE ROW LEVEL SECURITY;\nALTER TABLE {t} FORCE ROW LEVEL SECURITY;",
                    t = table_sql(table)
                ),
                Some("the existing policies start to apply: API requests see and change only what they allow"),
            ));
        } else if let Some(extension) = rel.extension.as_deref().filter(|_| !granted.is_empty()) {
            // Extension tables (PostGIS' spatial_ref_sys) hold reference data: reading them is
            // harmless, writing them through the API is not.
            let writable = ctx.exposed().any(|role| {
                [Command::Insert, Command::Update, Command::Delete]
                    .iter()
                    .any(|c| rel.can(role, *c))
            });
            out.push(finding(
                RLS_DISABLED,
                if writable { Level::Error } else { Level::Info },
                &name,
                format!(
                    "row level security is off while {} hold privileges on it; it belongs to the \
                     extension {extension} and holds no user data{}",
                    and_list(&granted),
                    if writable {
                        ", but API callers can change it"
                    } else {
                        ""
                    }
                ),
                format!(
                    "REVOKE INSERT, UPDATE, DELETE ON {name} FROM {}; (or install the extension \
                     in a schema the API does not expose)",
                    ctx.exposed().collect::<Vec<_>>().join(", ")
                ),
            ));
        } else if !granted.is_empty() {
            out.push(finding(
                RLS_DISABLED,
                Level::Error,
                &name,
                format!(
                    "row level security is off while {} hold privileges on it: every API caller \
                     reads and writes every row (InsForge grants anon and authenticated full DML \
                     on public, so RLS is the only barrier)",
                    and_list(&granted)
                ),
                format!(
                    "{} then add one policy per command for authenticated comparing the owner \
                     column with (select public.requesting_user_id())",
                    enable_sql(&name)
                ),
            ));
        } else {
            out.push(finding(
                RLS_DISABLED,
                Level::Info,
                &name,
                "row level security is off; no exposed role holds a privilege on it today, but \
                 one GRANT (or InsForge's default privileges on a re-created table) exposes every row",
                enable_sql(&name),
            ));
        }
        return;
    }

    if !rel.force {
        out.push(finding(
            RLS_NOT_FORCED,
            Level::Warn,
            &name,
            format!(
                "row level security is not forced, so the owner {} ignores every policy: an app, \
                 view or SECURITY DEFINER function acting as the owner reads all users' rows",
                rel.owner
            ),
            format!("ALTER TABLE {name} FORCE ROW LEVEL SECURITY;"),
        ).with_sql(
            format!("ALTER TABLE {} FORCE ROW LEVEL SECURITY;", table_sql(table)),
            Some(&format!(
                "the owner {} now obeys the policies too (API roles are unaffected)",
                rel.owner
            )),
        ));
    }

    if table.policies.is_empty() {
        out.push(finding(
            RLS_NO_POLICY,
            Level::Info,
            &name,
            "row level security is on with no policy: every request is denied (reads return 0 \
             rows, writes fail)",
            "add policies for the commands the API should allow, or revoke the grants so the \
             deny-all is explicit",
        ));
        return;
    }

    let only_restrictive: Vec<&str> = ctx
        .exposed()
        .filter(|role| {
            // A role without privileges is denied by the grants already.
            if !Command::EACH.iter().any(|c| rel.can(role, *c)) {
                return false;
            }
            let applying = table
                .policies
                .iter()
                .filter(|p| p.policy.applies_to.iter().any(|r| r == role));
            let mut any = false;
            for p in applying {
                if p.policy.permissive {
                    return false;
                }
                any = true;
            }
            any
        })
        .collect();
    if !only_restrictive.is_empty() {
        let restrictive: Vec<&str> = table
            .policies
            .iter()
            .filter(|p| !p.policy.permissive)
            .map(|p| p.policy.name.as_str())
            .collect();
        out.push(finding(
            RLS_ONLY_RESTRICTIVE,
            Level::Warn,
            &name,
            format!(
                "{} {} only RESTRICTIVE policies here ({}): restrictive policies only narrow \
                 what a permissive one grants, and with none every request is denied — reads \
                 return 0 rows, writes fail — without any error that says why",
                and_list(&only_restrictive),
                if only_restrictive.len() == 1 {
                    "has"
                } else {
                    "have"
                },
                and_list(&restrictive)
            ),
            "add the permissive policy that grants access (e.g. FOR SELECT TO authenticated \
             USING (user_id = (select public.requesting_user_id()))); keep the restrictive ones to \
             narrow it",
        ));
    }

    for role in ctx.exposed() {
        let permissive: Vec<_> = table
            .policies
            .iter()
            .filter(|p| p.policy.permissive && p.policy.applies_to.iter().any(|r| r == role))
            .collect();
        if permissive.is_empty() {
            continue;
        }
        // A role with only read policies is read-only by design; one with some write policy
        // but not another has a gap. Without a SELECT policy, UPDATE/DELETE … WHERE find nothing.
        let writes = permissive
            .iter()
            .any(|p| p.policy.command != Command::Select);
        for command in Command::EACH {
            let covered = permissive.iter().any(|p| p.policy.command.covers(command));
            let expected = command == Command::Select || writes;
            if rel.can(role, command) && !covered && expected {
                let effect = match command {
                    Command::Select => {
                        "reads return 0 rows, and UPDATE/DELETE with a WHERE clause find nothing"
                    }
                    Command::Insert => "every INSERT fails with 42501",
                    Command::Update => "every UPDATE affects 0 rows",
                    Command::Delete => "every DELETE affects 0 rows",
                    Command::All => "",
                };
                out.push(finding(
                    RLS_COMMAND_WITHOUT_POLICY,
                    Level::Info,
                    &name,
                    format!(
                        "{role} holds {} and has policies on this table, but none for {}: {effect}",
                        command.sql(),
                        command.sql()
                    ),
                    format!(
                        "add a {} policy for {role} (owner check), or REVOKE {} ON {name} FROM \
                         {role} if the API must not allow it",
                        command.sql(),
                        command.sql()
                    ),
                ));
            }
        }
    }
}

fn owner_columns(ctx: &Context<'_>, table: &TableView<'_>, out: &mut Vec<Finding>) {
    let rel = table.relation;
    let indexes = ctx.catalog.indexes.get(&rel.oid);
    for column in table
        .columns
        .iter()
        .filter(|c| table.owner_columns.contains(&c.name))
    {
        let object = format!("column {}.{}", rel.qualified(), column.name);
        if column.base_type == "uuid" {
            out.push(finding(
                OWNER_COLUMN_UUID,
                Level::Error,
                &object,
                "the owner column is uuid, but Clerk user ids are strings like \
                 user_2GIpXOEpVyJw51rkZn9Kmnc6Sxr: comparing them means casting the caller's \
                 id to uuid (InsForge's auth.uid()), which errors for every Clerk user",
                format!(
                    "ALTER TABLE {} ALTER COLUMN {} TYPE text; compare it with \
                     (select public.requesting_user_id())",
                    rel.qualified(),
                    column.name
                ),
            ));
        }
        if !column.not_null {
            out.push(
                finding(
                    OWNER_COLUMN_NULLABLE,
                    Level::Warn,
                    &object,
                    "the owner column allows NULL: a row written without an owner belongs to \
                     nobody — its writer can never see it again (NULL = <id> is never true), and \
                     any policy branch that tests `IS NULL` (\"unassigned\" rows) shows it to \
                     every user",
                    format!(
                        "ALTER TABLE {} ALTER COLUMN {} SET NOT NULL; (assign or delete the \
                         ownerless rows first)",
                        rel.qualified(),
                        column.name
                    ),
                )
                .with_sql(
                    format!(
                        "-- fails while ownerless rows exist: assign or delete them first\n\
                         ALTER TABLE {} ALTER COLUMN {} SET NOT NULL;",
                        table_sql(table),
                        quote_ident(&column.name)
                    ),
                    None,
                ),
            );
        }
        if !table.policies.is_empty() && rel.rls && !policies_mention(table, &column.name) {
            out.push(finding(
                OWNER_COLUMN_UNUSED,
                Level::Info,
                &object,
                "the column defaults to the caller's id, but no policy on the table mentions it: \
                 rows are stamped with their owner, yet whatever the policies check (a project, a \
                 team) every user who passes them reaches every user's rows — fine for an audit \
                 column, a leak for per-user data",
                format!(
                    "if the rows are per user, add {} = (select public.requesting_user_id()) to \
                     the policies",
                    column.name
                ),
            ));
        }
        let defaults_to_caller = column
            .default
            .as_deref()
            .is_some_and(|d| ctx.analysis.is_caller_id(d));
        if !defaults_to_caller {
            let base = finding(
                OWNER_COLUMN_DEFAULT,
                Level::Warn,
                &object,
                match &column.default {
                    None => "the owner column has no default, so every client must send its own \
                             id (and a missing one fails the WITH CHECK)"
                        .to_owned(),
                    Some(d) => format!("the owner column defaults to {d}, not the caller's id"),
                },
                format!(
                    "ALTER TABLE {} ALTER COLUMN {} SET DEFAULT public.requesting_user_id();",
                    rel.qualified(),
                    column.name
                ),
            );
            // Mechanical only where the caller-id function exists.
            let helper = ctx.catalog.functions.iter().enumerate().any(|(i, f)| {
                f.schema == "public"
                    && f.name == "requesting_user_id"
                    && ctx.analysis.facts[i].caller_id_value
            });
            out.push(if helper {
                base.with_sql(
                    format!(
                        "ALTER TABLE {} ALTER COLUMN {} SET DEFAULT public.requesting_user_id();",
                        table_sql(table),
                        quote_ident(&column.name)
                    ),
                    None,
                )
            } else {
                base
            });
        }
        let indexed =
            indexes.is_some_and(|list| list.iter().any(|i| i.first_attnum == column.attnum));
        if !indexed {
            out.push(
                finding(
                    OWNER_COLUMN_UNINDEXED,
                    Level::Warn,
                    &object,
                    "every policy filters on the owner column, but no index starts with it: each \
                 request scans the whole table (Supabase measured 171 ms → <0.1 ms with the index)",
                    format!("CREATE INDEX ON {} ({});", rel.qualified(), column.name),
                )
                .with_sql(
                    format!(
                        "CREATE INDEX ON {} ({});",
                        table_sql(table),
                        quote_ident(&column.name)
                    ),
                    None,
                ),
            );
        }
    }
}
