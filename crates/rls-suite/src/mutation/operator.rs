//! The mutation operators: one variant per way a mutant weakens the schema. An operator's
//! [`name`](Operator::name) ends every id of its mutants and is what the reports print.

use crate::spec::Command;

/// Where an operator applies, and so which generator makes its mutants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// A policy's clauses as the catalog has them (`pg_policy`).
    Clause,
    /// A predicate's inside, parsed as a tree ([`crate::policy_expr`]).
    Expression,
    /// A spec table: a policy added, RLS loosened, a reader that bypasses RLS.
    Table,
    /// A function every table's policies may call.
    Function,
}

/// One way a mutant weakens the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operator {
    /// `using_true`: the policy's USING becomes `true`.
    UsingTrue,
    /// `check_true`: the policy's WITH CHECK becomes `true`.
    CheckTrue,
    /// `drop_check`: an UPDATE/ALL policy loses its WITH CHECK (Postgres then reuses USING).
    DropCheck,
    /// `drop_policy`: the policy is dropped.
    DropPolicy,
    /// `drop_correlation`: in an EXISTS or IN subquery, one correlation with the outer row is
    /// dropped (one mutant per correlated conjunct of its WHERE; `x IN (…)` becomes EXISTS).
    DropCorrelation,
    /// `caller_constant`: the caller-id expression becomes a constant, actor-looking id (a uuid
    /// for `auth.uid()`).
    CallerConstant,
    /// `caller_claim`: the caller-id expression reads another claim (`->> 'email'`).
    CallerClaim,
    /// `loose_ilike`: `col = <caller id>` becomes `col ILIKE id`.
    LooseIlike,
    /// `loose_lower`: `col = <caller id>` becomes `lower(col) = lower(id)`.
    LooseLower,
    /// `loose_prefix`: `col = <caller id>` becomes `col LIKE id || '%'`.
    LoosePrefix,
    /// `and_to_or`: a top-level AND becomes OR.
    AndToOr,
    /// `drop_conjunct`: one conjunct of a top-level AND is dropped (one mutant per conjunct).
    DropConjunct,
    /// `anon_select`: a permissive SELECT policy for `anon`, `using (true)`.
    AnonSelect,
    /// `anon_insert`: a permissive INSERT policy for `anon`, `with check (true)`.
    AnonInsert,
    /// `anon_update`: a permissive UPDATE policy for `anon`, both clauses `true`.
    AnonUpdate,
    /// `anon_delete`: a permissive DELETE policy for `anon`, `using (true)`.
    AnonDelete,
    /// `no_force_owned`: RLS no longer forced, with `authenticated` owning the table.
    NoForceOwned,
    /// `disable_rls`: RLS disabled on the table.
    DisableRls,
    /// `definer_view`: a view over the table without `security_invoker`, granted to
    /// `authenticated`.
    DefinerView,
    /// `definer_function`: a SECURITY DEFINER set-returning function over the table,
    /// executable by everyone.
    DefinerFunction,
    /// `cast_before_guard`: `requesting_user_id()` rewritten as the InsForge/Clerk guides
    /// publish it (casts the claims before guarding `''`).
    CastBeforeGuard,
}

impl Operator {
    /// Every operator, in the order a table's mutants are listed.
    pub const ALL: [Operator; 21] = [
        Operator::UsingTrue,
        Operator::CheckTrue,
        Operator::DropCheck,
        Operator::DropPolicy,
        Operator::DropCorrelation,
        Operator::CallerConstant,
        Operator::CallerClaim,
        Operator::LooseIlike,
        Operator::LooseLower,
        Operator::LoosePrefix,
        Operator::AndToOr,
        Operator::DropConjunct,
        Operator::AnonSelect,
        Operator::AnonInsert,
        Operator::AnonUpdate,
        Operator::AnonDelete,
        Operator::NoForceOwned,
        Operator::DisableRls,
        Operator::DefinerView,
        Operator::DefinerFunction,
        Operator::CastBeforeGuard,
    ];

    /// The name in mutant ids and reports.
    pub const fn name(self) -> &'static str {
        match self {
            Operator::UsingTrue => "using_true",
            Operator::CheckTrue => "check_true",
            Operator::DropCheck => "drop_check",
            Operator::DropPolicy => "drop_policy",
            Operator::DropCorrelation => "drop_correlation",
            Operator::CallerConstant => "caller_constant",
            Operator::CallerClaim => "caller_claim",
            Operator::LooseIlike => "loose_ilike",
            Operator::LooseLower => "loose_lower",
            Operator::LoosePrefix => "loose_prefix",
            Operator::AndToOr => "and_to_or",
            Operator::DropConjunct => "drop_conjunct",
            Operator::AnonSelect => "anon_select",
            Operator::AnonInsert => "anon_insert",
            Operator::AnonUpdate => "anon_update",
            Operator::AnonDelete => "anon_delete",
            Operator::NoForceOwned => "no_force_owned",
            Operator::DisableRls => "disable_rls",
            Operator::DefinerView => "definer_view",
            Operator::DefinerFunction => "definer_function",
            Operator::CastBeforeGuard => "cast_before_guard",
        }
    }

    /// The operator of that name.
    pub fn from_name(name: &str) -> Option<Operator> {
        Self::ALL.into_iter().find(|o| o.name() == name)
    }

    pub const fn family(self) -> Family {
        match self {
            Operator::UsingTrue
            | Operator::CheckTrue
            | Operator::DropCheck
            | Operator::DropPolicy => Family::Clause,
            Operator::DropCorrelation
            | Operator::CallerConstant
            | Operator::CallerClaim
            | Operator::LooseIlike
            | Operator::LooseLower
            | Operator::LoosePrefix
            | Operator::AndToOr
            | Operator::DropConjunct => Family::Expression,
            Operator::AnonSelect
            | Operator::AnonInsert
            | Operator::AnonUpdate
            | Operator::AnonDelete
            | Operator::NoForceOwned
            | Operator::DisableRls
            | Operator::DefinerView
            | Operator::DefinerFunction => Family::Table,
            Operator::CastBeforeGuard => Family::Function,
        }
    }

    /// True when the mutant adds a reader of the table (a view, a function): the spec is bound
    /// again before judging it, so the new reader is probed too.
    pub const fn adds_reader(self) -> bool {
        matches!(self, Operator::DefinerView | Operator::DefinerFunction)
    }

    /// The command an `anon_<command>` mutant opens.
    pub const fn opens(self) -> Option<Command> {
        match self {
            Operator::AnonSelect => Some(Command::Select),
            Operator::AnonInsert => Some(Command::Insert),
            Operator::AnonUpdate => Some(Command::Update),
            Operator::AnonDelete => Some(Command::Delete),
            _ => None,
        }
    }
}

impl std::fmt::Display for Operator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operator_has_a_distinct_name_that_reads_back() {
        let mut names: Vec<&str> = Operator::ALL.iter().map(|o| o.name()).collect();
        for o in Operator::ALL {
            assert_eq!(Operator::from_name(o.name()), Some(o));
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Operator::ALL.len());
        assert_eq!(Operator::from_name("parse"), None);
    }
}
