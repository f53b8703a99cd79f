//! Rules no mutant reaches, one small table each, with negative controls next to them: a
//! restrictive `USING (true)`, the old per-claim setting, a security_invoker view and a
//! SECURITY DEFINER function that touches no RLS table must not be reported.

use harness::TestDatabase;
use rls_lint::{Level, LintOptions};

use crate::support::{apply, lint};

const OWNER: &str = "user_id = (SELECT public.requesting_user_id())";

/// A user-owned table granted only `grants` to authenticated (and nothing to anon).
fn owned_table(name: &str, grants: &str, policies: &str) -> String {
    format!(
        "CREATE TABLE public.{name} (
           id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
           user_id text NOT NULL DEFAULT public.requesting_user_id(),
           org text);
         CREATE INDEX ON public.{name} (user_id);
         ALTER TABLE public.{name} ENABLE ROW LEVEL SECURITY;
         ALTER TABLE public.{name} FORCE ROW LEVEL SECURITY;
         REVOKE ALL ON public.{name} FROM anon, authenticated;
         GRANT {grants} ON public.{name} TO authenticated;
         {policies}\n"
    )
}

#[tokio::test]
async fn policy_claim_and_view_rules() {
    let db = TestDatabase::create().await.unwrap();
    let mut sql = String::new();
    sql += &owned_table(
        "a_update_owner_only",
        "SELECT, UPDATE",
        &format!(
            "CREATE POLICY a_select ON public.a_update_owner_only FOR SELECT TO authenticated USING ({OWNER});
             CREATE POLICY a_update ON public.a_update_owner_only FOR UPDATE TO authenticated USING ({OWNER});"
        ),
    );
    sql += &owned_table(
        "b_check_weaker",
        "SELECT, UPDATE",
        &format!(
            "CREATE POLICY b_select ON public.b_check_weaker FOR SELECT TO authenticated USING ({OWNER});
             CREATE POLICY b_update ON public.b_check_weaker FOR UPDATE TO authenticated
               USING ({OWNER}) WITH CHECK ((SELECT auth.role()) = 'authenticated');"
        ),
    );
    sql += &owned_table(
        "c_insert_no_check",
        "SELECT, INSERT",
        &format!(
            "CREATE POLICY c_select ON public.c_insert_no_check FOR SELECT TO authenticated USING ({OWNER});
             CREATE POLICY c_insert ON public.c_insert_no_check FOR INSERT TO authenticated;"
        ),
    );
    sql += &owned_table(
        "d_restrictive",
        "SELECT",
        &format!(
            "CREATE POLICY d_select ON public.d_restrictive FOR SELECT TO authenticated USING ({OWNER});
             CREATE POLICY d_narrow ON public.d_restrictive AS RESTRICTIVE FOR SELECT TO authenticated USING (true);"
        ),
    );
    sql += &owned_table(
        "e_inline_claims",
        "SELECT",
        "CREATE POLICY e_select ON public.e_inline_claims FOR SELECT TO authenticated
           USING (user_id = (current_setting('request.jwt.claims', true)::json ->> 'sub'));",
    );
    sql += &owned_table(
        "f_old_claim",
        "SELECT",
        "CREATE POLICY f_select ON public.f_old_claim FOR SELECT TO authenticated
           USING (user_id = (SELECT current_setting('request.jwt.claim.sub', true)));",
    );
    sql += &owned_table(
        "g_org_path",
        "SELECT",
        &format!(
            "CREATE POLICY g_select ON public.g_org_path FOR SELECT TO authenticated
               USING ({OWNER} AND org = (SELECT auth.jwt() #>> '{{app_metadata,org}}'));"
        ),
    );
    sql += "CREATE VIEW public.h_invoker_view WITH (security_invoker = true) AS SELECT * FROM public.todos;
            GRANT SELECT ON public.h_invoker_view TO authenticated;
            CREATE MATERIALIZED VIEW public.i_snapshot AS SELECT * FROM public.todos;
            GRANT SELECT ON public.i_snapshot TO authenticated;
            CREATE FUNCTION public.j_version() RETURNS text LANGUAGE sql STABLE SECURITY DEFINER
              SET search_path = '' AS $$ SELECT version() $$;";
    apply(&db, &sql).await;

    let report = lint(&db).await;
    let seen: Vec<(&str, Level, &str)> = report
        .findings
        .iter()
        .map(|f| (f.rule, f.level, f.object.as_str()))
        .collect();
    let expected = [
        (
            "claims.cast_before_guard",
            Level::Error,
            "policy e_select on public.e_inline_claims",
        ),
        (
            "policy.check_weaker_than_using",
            Level::Error,
            "policy b_update on public.b_check_weaker",
        ),
        (
            "view.security_definer",
            Level::Error,
            "materialized view public.i_snapshot",
        ),
        (
            "claims.unavailable_claim",
            Level::Warn,
            "policy g_select on public.g_org_path",
        ),
        (
            "policy.missing_with_check",
            Level::Warn,
            "policy a_update on public.a_update_owner_only",
        ),
        (
            "policy.missing_with_check",
            Level::Warn,
            "policy c_insert on public.c_insert_no_check",
        ),
        (
            "policy.unwrapped_call",
            Level::Warn,
            "policy e_select on public.e_inline_claims",
        ),
    ];
    assert_eq!(seen, expected, "{}", report.render_text());
    let unavailable = &report.findings[3];
    assert!(
        unavailable.why.contains("'app_metadata'"),
        "{}",
        unavailable.why
    );
}

#[tokio::test]
async fn role_rules_through_lint_url() {
    let db = TestDatabase::create().await.unwrap();
    // The superuser as "app role", and InsForge's project_admin (BYPASSRLS) as an exposed role:
    // both read from the server as it is, without creating or altering any role.
    let admin = db.admin_target();
    let options = LintOptions {
        app_role: Some(admin.user.clone()),
        exposed_roles: vec![
            "anon".into(),
            "authenticated".into(),
            "project_admin".into(),
        ],
        ..LintOptions::default()
    };
    let report = rls_lint::lint_url(&admin.url(), &options).await.unwrap();
    let seen: Vec<(&str, String)> = report
        .findings
        .iter()
        .map(|f| (f.rule, f.object.clone()))
        .collect();
    assert_eq!(
        seen,
        [
            ("role.bypassrls", "role project_admin".to_owned()),
            ("role.superuser", format!("role {}", admin.user)),
        ],
        "{}",
        report.render_text()
    );
    assert!(matches!(
        rls_lint::lint_url("postgres://nobody@127.0.0.1:1/none", &options).await,
        Err(rls_lint::LintError::Connect(_))
    ));
}
