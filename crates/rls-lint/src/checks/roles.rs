//! Role rules: the app's login role and the roles requests run as must not be superusers, have
//! BYPASSRLS, or own RLS tables — directly or through a role they can SET ROLE to — since each
//! of those ignores the policies.

use crate::report::{Finding, Level};
use crate::rules::{
    OPTIONS_UNKNOWN_ROLE, OPTIONS_UNKNOWN_SCHEMA, ROLE_BYPASSRLS, ROLE_OWNS_TABLE, ROLE_SUPERUSER,
};

use super::{Context, and_list, finding};

pub(super) fn check(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    for schema in &ctx.catalog.missing_schemas {
        out.push(finding(
            OPTIONS_UNKNOWN_SCHEMA,
            Level::Info,
            format!("schema {schema}"),
            "the schema to check does not exist in this database",
            "check the --schema list",
        ));
    }
    for role in &ctx.catalog.missing_roles {
        out.push(finding(
            OPTIONS_UNKNOWN_ROLE,
            Level::Info,
            format!("role {role}"),
            "the configured role does not exist on this server, so the checks about it were skipped",
            "check the app and exposed role names, or create the role",
        ));
    }

    let app = ctx.options.app_role.as_deref();
    for (name, role) in &ctx.catalog.roles {
        let object = format!("role {name}");
        let who = if Some(name.as_str()) == app {
            format!("the app connects as {name}")
        } else {
            format!("requests run as {name}")
        };
        if role.superuser {
            out.push(finding(
                ROLE_SUPERUSER,
                Level::Error,
                &object,
                format!("{who}, a superuser: superusers ignore every policy, so any query that does not switch role reads every user's rows"),
                format!("ALTER ROLE {name} NOSUPERUSER; connect with a role that has no privileges of its own"),
            ));
            // A superuser can become anyone; the roles below would only repeat this finding.
            continue;
        }
        if role.bypassrls {
            out.push(finding(
                ROLE_BYPASSRLS,
                Level::Error,
                &object,
                format!("{who}, which has BYPASSRLS: it ignores every policy"),
                format!("ALTER ROLE {name} NOBYPASSRLS;"),
            ));
        }
        let supers: Vec<&str> = role
            .can_become
            .iter()
            .filter(|b| b.1)
            .map(|b| b.0.as_str())
            .collect();
        if !supers.is_empty() {
            out.push(finding(
                ROLE_SUPERUSER,
                Level::Error,
                &object,
                format!(
                    "{who}, which can SET ROLE to the superuser {}",
                    and_list(&supers)
                ),
                format!("REVOKE {} FROM {name};", supers.join(", ")),
            ));
        }
        let bypassers: Vec<&str> = role
            .can_become
            .iter()
            .filter(|b| b.2 && !b.1)
            .map(|b| b.0.as_str())
            .collect();
        if !bypassers.is_empty() {
            out.push(finding(
                ROLE_BYPASSRLS,
                Level::Error,
                &object,
                format!(
                    "{who}, which can SET ROLE to {} with BYPASSRLS (PostgREST switches to the \
                     token's role claim, so such a role is one claim away)",
                    and_list(&bypassers)
                ),
                format!("REVOKE {} FROM {name};", bypassers.join(", ")),
            ));
        }
    }

    for table in &ctx.tables {
        let rel = table.relation;
        if !rel.rls {
            continue;
        }
        let reachers: Vec<&str> = rel
            .owner_reachable_by
            .iter()
            .filter(|r| {
                ctx.catalog
                    .roles
                    .get(*r)
                    .is_some_and(|role| !role.superuser)
            })
            .map(String::as_str)
            .collect();
        if reachers.is_empty() {
            continue;
        }
        out.push(finding(
            ROLE_OWNS_TABLE,
            Level::Error,
            rel.qualified(),
            format!(
                "owned by {}, which {} can act as: the owner {}and can disable RLS or rewrite the \
                 policies",
                rel.owner,
                and_list(&reachers),
                if rel.force {
                    String::new()
                } else {
                    "ignores the policies (RLS is not forced), ".to_owned()
                }
            ),
            format!(
                "ALTER TABLE {} OWNER TO <a role the API never becomes, e.g. the migration role>; \
                 ALTER TABLE {} FORCE ROW LEVEL SECURITY;",
                rel.qualified(),
                rel.qualified()
            ),
        ));
    }
}
