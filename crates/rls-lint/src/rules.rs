//! The rule catalog: every id a finding can carry, its usual level and one line on what it
//! catches. Ids are stable; the checks in `checks/` are the only places that emit them.

use crate::report::Level;

/// A rule the linter knows. Some rules lower or raise the level per finding (noted in `summary`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub id: &'static str,
    pub level: Level,
    pub summary: &'static str,
}

pub(crate) const RLS_DISABLED: &str = "rls.disabled";
pub(crate) const RLS_NOT_FORCED: &str = "rls.not_forced";
pub(crate) const RLS_NO_POLICY: &str = "rls.no_policy";
pub(crate) const RLS_POLICIES_WHILE_DISABLED: &str = "rls.policies_while_disabled";
pub(crate) const RLS_COMMAND_WITHOUT_POLICY: &str = "rls.command_without_policy";
pub(crate) const POLICY_ALWAYS_TRUE: &str = "policy.always_true";
pub(crate) const POLICY_MISSING_WITH_CHECK: &str = "policy.missing_with_check";
pub(crate) const POLICY_CHECK_WEAKER: &str = "policy.check_weaker_than_using";
pub(crate) const POLICY_NOT_OWNER_SCOPED: &str = "policy.not_owner_scoped";
pub(crate) const POLICY_ANON_PERMISSIVE: &str = "policy.anon_permissive";
pub(crate) const POLICY_MULTIPLE_PERMISSIVE: &str = "policy.multiple_permissive";
pub(crate) const POLICY_UNWRAPPED_CALL: &str = "policy.unwrapped_call";
pub(crate) const POLICY_UNPARSED: &str = "policy.unparsed";
pub(crate) const POLICY_UNCORRELATED_MEMBERSHIP: &str = "policy.uncorrelated_membership";
pub(crate) const POLICY_CALLER_ID_FALLBACK: &str = "policy.caller_id_fallback";
pub(crate) const OWNER_COLUMN_UUID: &str = "owner_column.uuid";
pub(crate) const OWNER_COLUMN_DEFAULT: &str = "owner_column.default";
pub(crate) const OWNER_COLUMN_UNINDEXED: &str = "owner_column.unindexed";
pub(crate) const CLAIMS_CAST_BEFORE_GUARD: &str = "claims.cast_before_guard";
pub(crate) const CLAIMS_UNAVAILABLE: &str = "claims.unavailable_claim";
pub(crate) const CLAIMS_SUB_AS_UUID: &str = "claims.sub_as_uuid";
pub(crate) const FUNCTION_SEARCH_PATH: &str = "function.search_path";
pub(crate) const FUNCTION_SECURITY_DEFINER: &str = "function.security_definer";
pub(crate) const VIEW_SECURITY_DEFINER: &str = "view.security_definer";
pub(crate) const ROLE_SUPERUSER: &str = "role.superuser";
pub(crate) const ROLE_BYPASSRLS: &str = "role.bypassrls";
pub(crate) const ROLE_OWNS_TABLE: &str = "role.owns_table";
pub(crate) const OWNER_COLUMN_UNUSED: &str = "owner_column.unused";
pub(crate) const FOREIGN_KEY_EXISTENCE_ORACLE: &str = "foreign_key.existence_oracle";
pub(crate) const FOREIGN_TABLE_EXPOSED: &str = "foreign_table.exposed";
pub(crate) const POLICY_ALWAYS_FALSE: &str = "policy.always_false";
pub(crate) const POLICY_HARDCODED_OWNER: &str = "policy.hardcoded_owner";
pub(crate) const POLICY_UNKNOWN_ROLE: &str = "policy.unknown_role";
pub(crate) const CLAIMS_MISSING_OK: &str = "claims.missing_ok";
pub(crate) const POLICY_VOLATILE_CALL: &str = "policy.volatile_call";
pub(crate) const FUNCTION_CALLER_ID_IMMUTABLE: &str = "function.caller_id_immutable";
pub(crate) const FUNCTION_LEAKPROOF: &str = "function.leakproof";
pub(crate) const FUNCTION_SECURITY_DEFINER_TRIGGER: &str = "function.security_definer_trigger";
pub(crate) const OWNER_COLUMN_NULLABLE: &str = "owner_column.nullable";
pub(crate) const POLICY_CASE_INSENSITIVE_ID: &str = "policy.case_insensitive_id";
pub(crate) const POLICY_EMAIL_ONLY: &str = "policy.email_only";
pub(crate) const POLICY_ROLE_AS_USER: &str = "policy.role_as_user";
pub(crate) const RLS_ONLY_RESTRICTIVE: &str = "rls.only_restrictive";
pub(crate) const UNIQUE_NOT_OWNER_SCOPED: &str = "unique.not_owner_scoped";
pub(crate) const OPTIONS_UNKNOWN_ROLE: &str = "options.unknown_role";
pub(crate) const OPTIONS_UNKNOWN_SCHEMA: &str = "options.unknown_schema";

/// Every rule, in id order.
pub const RULES: &[Rule] = &[
    Rule {
        id: CLAIMS_CAST_BEFORE_GUARD,
        level: Level::Error,
        summary: "a claims reader casts current_setting('request.jwt.claims') before guarding '' (errors on a reused pooled connection)",
    },
    Rule {
        id: CLAIMS_MISSING_OK,
        level: Level::Warn,
        summary: "current_setting('request.jwt.claims') without missing_ok (true): raises on a connection no request has set it on, instead of meaning nobody",
    },
    Rule {
        id: CLAIMS_SUB_AS_UUID,
        level: Level::Error,
        summary: "a policy or owner default uses a caller-id function that casts `sub` to uuid (Clerk ids are strings)",
    },
    Rule {
        id: CLAIMS_UNAVAILABLE,
        level: Level::Warn,
        summary: "a policy reads a claim other than the available ones (InsForge >= 2.2.5 keeps only sub, email, role, iat, exp)",
    },
    Rule {
        id: FOREIGN_KEY_EXISTENCE_ORACLE,
        level: Level::Info,
        summary: "a foreign key to an RLS table whose rows the INSERT policy does not check: the key error tells a user whether another user's row exists",
    },
    Rule {
        id: FOREIGN_TABLE_EXPOSED,
        level: Level::Warn,
        summary: "a foreign table in an exposed schema that exposed roles can read or write: foreign tables cannot have RLS",
    },
    Rule {
        id: FUNCTION_CALLER_ID_IMMUTABLE,
        level: Level::Error,
        summary: "a function that reads the request's settings or claims (a caller-id function) is IMMUTABLE: a cached plan reuses one user's id for another (STABLE is right; warn when no policy or default uses it)",
    },
    Rule {
        id: FUNCTION_LEAKPROOF,
        level: Level::Warn,
        summary: "a function in an exposed schema is LEAKPROOF: the planner runs it on rows before the policies filter them",
    },
    Rule {
        id: FUNCTION_SEARCH_PATH,
        level: Level::Warn,
        summary: "a function in an exposed schema has no fixed search_path",
    },
    Rule {
        id: FUNCTION_SECURITY_DEFINER,
        level: Level::Error,
        summary: "a SECURITY DEFINER function that exposed roles can execute reads an RLS table as its owner",
    },
    Rule {
        id: FUNCTION_SECURITY_DEFINER_TRIGGER,
        level: Level::Warn,
        summary: "a trigger function is SECURITY DEFINER: what it reads and writes is judged as its owner, not as the user whose write fired it",
    },
    Rule {
        id: OPTIONS_UNKNOWN_ROLE,
        level: Level::Info,
        summary: "a configured role does not exist, so its checks were skipped",
    },
    Rule {
        id: OPTIONS_UNKNOWN_SCHEMA,
        level: Level::Info,
        summary: "a configured schema does not exist",
    },
    Rule {
        id: OWNER_COLUMN_DEFAULT,
        level: Level::Warn,
        summary: "an owner column's default is not the caller's id",
    },
    Rule {
        id: OWNER_COLUMN_NULLABLE,
        level: Level::Warn,
        summary: "an owner column allows NULL: rows nobody owns, invisible to their writer and matched by any IS NULL branch",
    },
    Rule {
        id: OWNER_COLUMN_UNINDEXED,
        level: Level::Warn,
        summary: "no index is led by an owner column the policies filter on",
    },
    Rule {
        id: OWNER_COLUMN_UNUSED,
        level: Level::Info,
        summary: "a column defaults to the caller's id but no policy of its table mentions it: rows are stamped with their owner, yet no policy keeps them theirs",
    },
    Rule {
        id: OWNER_COLUMN_UUID,
        level: Level::Error,
        summary: "an owner column is uuid while Clerk user ids are strings",
    },
    Rule {
        id: POLICY_ALWAYS_FALSE,
        level: Level::Info,
        summary: "a permissive policy whose USING (or an INSERT's WITH CHECK) is the constant false: it admits nothing",
    },
    Rule {
        id: POLICY_ALWAYS_TRUE,
        level: Level::Error,
        summary: "USING (true) or WITH CHECK (true) on a write, or USING (true) on SELECT of a user-owned table",
    },
    Rule {
        id: POLICY_ANON_PERMISSIVE,
        level: Level::Error,
        summary: "a permissive policy lets anonymous requests reach a user-owned table",
    },
    Rule {
        id: POLICY_CALLER_ID_FALLBACK,
        level: Level::Error,
        summary: "a policy falls back to the row's own value when there is no caller id (`coalesce(requesting_user_id(), <column>)`): true for every row",
    },
    Rule {
        id: POLICY_CASE_INSENSITIVE_ID,
        level: Level::Error,
        summary: "a policy compares the caller's Clerk id case-insensitively or as a pattern (lower()/upper() on both sides, ILIKE, LIKE, ~*): a look-alike id matches (warn when only one side is folded)",
    },
    Rule {
        id: POLICY_CHECK_WEAKER,
        level: Level::Error,
        summary: "an UPDATE/ALL policy's WITH CHECK does not pin the owner its USING pins (rows can be handed off)",
    },
    Rule {
        id: POLICY_EMAIL_ONLY,
        level: Level::Warn,
        summary: "a policy scopes rows by the email claim (auth.email()) without the caller's id: emails change, are compared case-sensitively, and are not the Clerk user",
    },
    Rule {
        id: POLICY_HARDCODED_OWNER,
        level: Level::Warn,
        summary: "a policy compares an owner column with a string literal: one hard-coded user (a backdoor or a test leftover) gets those rows",
    },
    Rule {
        id: POLICY_MISSING_WITH_CHECK,
        level: Level::Error,
        summary: "an INSERT/UPDATE/ALL policy has no WITH CHECK (error when the reused USING is not a row-local owner check; warn otherwise, or when the policy admits nothing)",
    },
    Rule {
        id: POLICY_MULTIPLE_PERMISSIVE,
        level: Level::Warn,
        summary: "several permissive policies apply to one role and command (ORed: the loosest wins)",
    },
    Rule {
        id: POLICY_NOT_OWNER_SCOPED,
        level: Level::Error,
        summary: "a policy on a user-owned table does not compare the owner with the caller's id (warn for SELECT)",
    },
    Rule {
        id: POLICY_ROLE_AS_USER,
        level: Level::Error,
        summary: "a policy compares a column with current_user/session_user: the database role every API request shares (authenticated), not the Clerk user",
    },
    Rule {
        id: POLICY_UNCORRELATED_MEMBERSHIP,
        level: Level::Error,
        summary: "a membership subquery checks the caller but never ties the membership to the policy's row: a member of anything passes for every row",
    },
    Rule {
        id: POLICY_UNKNOWN_ROLE,
        level: Level::Warn,
        summary: "a policy compares the request's role (auth.role(), current_user) with a name no API request runs as: that branch never matches",
    },
    Rule {
        id: POLICY_UNPARSED,
        level: Level::Warn,
        summary: "the SQL parser cannot read a policy's expression, so no policy rule checked that policy (review it by hand; the check's matrices still test it)",
    },
    Rule {
        id: POLICY_UNWRAPPED_CALL,
        level: Level::Warn,
        summary: "a policy calls a per-statement-constant function without (select …), so it runs per row",
    },
    Rule {
        id: POLICY_VOLATILE_CALL,
        level: Level::Warn,
        summary: "a policy calls a VOLATILE function: evaluated for every row, never inlined, and the owner index cannot be used",
    },
    Rule {
        id: RLS_COMMAND_WITHOUT_POLICY,
        level: Level::Info,
        summary: "a role with policies on a table lacks one for a command it is granted (that command affects 0 rows)",
    },
    Rule {
        id: RLS_DISABLED,
        level: Level::Error,
        summary: "a table in an exposed schema has RLS off (info when no exposed role has privileges on it)",
    },
    Rule {
        id: RLS_NO_POLICY,
        level: Level::Info,
        summary: "RLS is on but the table has no policy: every request is denied",
    },
    Rule {
        id: RLS_NOT_FORCED,
        level: Level::Warn,
        summary: "RLS is enabled but not forced, so the table owner bypasses it",
    },
    Rule {
        id: RLS_ONLY_RESTRICTIVE,
        level: Level::Warn,
        summary: "an exposed role's only policies on a table are RESTRICTIVE: with no permissive policy every request is denied, silently",
    },
    Rule {
        id: RLS_POLICIES_WHILE_DISABLED,
        level: Level::Error,
        summary: "a table has policies but RLS is off, so none of them applies",
    },
    Rule {
        id: ROLE_BYPASSRLS,
        level: Level::Error,
        summary: "the app role or an exposed role has BYPASSRLS, or can SET ROLE to one that has",
    },
    Rule {
        id: ROLE_OWNS_TABLE,
        level: Level::Error,
        summary: "the app role or an exposed role owns (or can become the owner of) an RLS table",
    },
    Rule {
        id: ROLE_SUPERUSER,
        level: Level::Error,
        summary: "the app role or an exposed role is a superuser, or can SET ROLE to one",
    },
    Rule {
        id: UNIQUE_NOT_OWNER_SCOPED,
        level: Level::Info,
        summary: "a UNIQUE index on a user-owned table does not include the owner column: a duplicate-key error tells one user that another already holds the value",
    },
    Rule {
        id: VIEW_SECURITY_DEFINER,
        level: Level::Error,
        summary: "a view without security_invoker (or a materialized view) over an RLS table is selectable by exposed roles",
    },
];

/// The rule with this id, if there is one.
pub fn rule(id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_sorted_and_unique() {
        let ids: Vec<&str> = RULES.iter().map(|r| r.id).collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(ids, sorted);
    }
}
