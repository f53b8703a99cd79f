//! What to lint: the schemas PostgREST exposes, the roles requests run as, and the app's login
//! role. Defaults match InsForge and this project's harness.

/// Who may read a table without owning the row, as the team's access spec says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublicRead {
    /// `anon` and `authenticated`: a `SELECT … USING (true)` for both is intended.
    Anyone,
    /// `authenticated` only.
    SignedIn,
}

/// What the team's access spec says about one table (from `cargo xtask lint --spec`): findings
/// the spec declares intended are not reported, and fixes name the table's real owner column.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TableIntent {
    /// The column holding the owner's Clerk id (`owner_id`, `created_by`, …).
    pub owner_column: Option<String>,
    pub public_read: Option<PublicRead>,
}

/// Settings for one [`crate::lint`] run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LintOptions {
    /// Schemas the API exposes (PostgREST `db-schemas`); only their objects are checked.
    /// Default: `["public"]`.
    pub schemas: Vec<String>,
    /// The login role the app (or PostgREST's authenticator) connects as; `None` skips the
    /// app-role checks. Default: `rls_app`.
    pub app_role: Option<String>,
    /// Roles requests run as after `SET ROLE`. Default: `["anon", "authenticated"]`.
    pub exposed_roles: Vec<String>,
    /// The exposed role of requests without a token. Default: `anon`.
    pub anon_role: String,
    /// Claims a policy can rely on. Default: the ones InsForge ≥ 2.2.5 keeps when it re-signs
    /// the caller's token for PostgREST (`pg_identity::ClaimsForwarding::INSFORGE_23_CLAIMS`:
    /// `sub`, `email`, `role`, `iat`, `exp`), the same list the sample app forwards.
    pub available_claims: Vec<String>,
    /// Per `schema.table`, what the access spec intends. Empty: no spec.
    pub intent: std::collections::BTreeMap<String, TableIntent>,
    /// Known findings (`--baseline FILE`, read with [`crate::Baseline::load`]): they move to
    /// [`crate::Report::baselined`] and do not fail the run; entries matching nothing are
    /// reported in [`crate::Report::stale`]. `None`: every finding counts.
    pub baseline: Option<crate::Baseline>,
}

impl Default for LintOptions {
    fn default() -> Self {
        Self {
            schemas: vec!["public".into()],
            app_role: Some("rls_app".into()),
            exposed_roles: vec!["anon".into(), "authenticated".into()],
            anon_role: "anon".into(),
            available_claims: pg_identity::ClaimsForwarding::INSFORGE_23_CLAIMS
                .iter()
                .map(|c| (*c).to_owned())
                .collect(),
            intent: std::collections::BTreeMap::new(),
            baseline: None,
        }
    }
}

impl LintOptions {
    /// The app role and the exposed roles, without duplicates.
    pub(crate) fn configured_roles(&self) -> Vec<String> {
        let mut roles: Vec<String> = self.app_role.iter().cloned().collect();
        for role in self
            .exposed_roles
            .iter()
            .chain(std::iter::once(&self.anon_role))
        {
            if !roles.contains(role) {
                roles.push(role.clone());
            }
        }
        roles
    }

    pub(crate) fn validate(&self) -> Result<(), crate::LintError> {
        if self.schemas.is_empty() {
            return Err(crate::LintError::InvalidOptions(
                "no schema to check".into(),
            ));
        }
        if let Some(empty) = self
            .schemas
            .iter()
            .chain(&self.exposed_roles)
            .chain(self.app_role.as_ref())
            .find(|s| s.is_empty())
        {
            return Err(crate::LintError::InvalidOptions(format!(
                "empty schema or role name {empty:?}"
            )));
        }
        Ok(())
    }
}
