//! A hand-written schema with the classic mistakes at once: RLS off, a uuid owner column
//! compared with InsForge's uuid-casting `auth.uid()`, unwrapped calls, a claim InsForge drops,
//! a function without search_path.

use harness::TestDatabase;
use rls_lint::Level;

use crate::support::{apply, lint};

const BAD_SCHEMA: &str = r#"
-- InsForge's own auth.uid(): guarded, but a uuid cast of sub, which Clerk ids never are.
CREATE FUNCTION auth.uid() RETURNS uuid
  LANGUAGE sql STABLE SET search_path = ''
  AS $$ SELECT (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')::uuid $$;

-- No search_path, and reads a claim InsForge drops.
CREATE FUNCTION public.current_org() RETURNS text
  LANGUAGE sql STABLE
  AS $$ SELECT auth.jwt() ->> 'org_id' $$;

CREATE TABLE public.notes (
  id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  owner_id uuid NOT NULL,
  org_id   text,
  body     text
);
GRANT SELECT, INSERT, UPDATE, DELETE ON public.notes TO anon, authenticated;

CREATE POLICY notes_select ON public.notes FOR SELECT TO authenticated
  USING (owner_id = auth.uid());
CREATE POLICY notes_org ON public.notes FOR SELECT TO authenticated
  USING (org_id = (SELECT public.current_org()));
CREATE POLICY notes_update ON public.notes FOR UPDATE TO authenticated
  USING (owner_id = auth.uid()) WITH CHECK (true);
-- RLS is never enabled on notes.

CREATE TABLE public.audit_log (id bigint, message text);
GRANT SELECT, INSERT ON public.audit_log TO authenticated;
"#;

#[tokio::test]
async fn a_hand_written_bad_schema_is_reported_as_expected() {
    let db = TestDatabase::create().await.unwrap();
    apply(&db, BAD_SCHEMA).await;
    let report = lint(&db).await;
    let seen: Vec<(&str, Level, &str)> = report
        .findings
        .iter()
        .map(|f| (f.rule, f.level, f.object.as_str()))
        .collect();
    let expected = [
        ("claims.sub_as_uuid", Level::Error, "function auth.uid()"),
        (
            "owner_column.uuid",
            Level::Error,
            "column public.notes.owner_id",
        ),
        (
            "policy.always_true",
            Level::Error,
            "policy notes_update on public.notes",
        ),
        ("rls.disabled", Level::Error, "public.audit_log"),
        ("rls.policies_while_disabled", Level::Error, "public.notes"),
        (
            "claims.unavailable_claim",
            Level::Warn,
            "policy notes_org on public.notes",
        ),
        (
            "function.search_path",
            Level::Warn,
            "function public.current_org()",
        ),
        (
            "owner_column.default",
            Level::Warn,
            "column public.notes.owner_id",
        ),
        (
            "owner_column.unindexed",
            Level::Warn,
            "column public.notes.owner_id",
        ),
        ("policy.multiple_permissive", Level::Warn, "public.notes"),
        (
            "policy.not_owner_scoped",
            Level::Warn,
            "policy notes_org on public.notes",
        ),
        (
            "policy.unwrapped_call",
            Level::Warn,
            "policy notes_select on public.notes",
        ),
        (
            "policy.unwrapped_call",
            Level::Warn,
            "policy notes_update on public.notes",
        ),
    ];
    assert_eq!(seen, expected, "{}", report.render_text());
    assert_eq!(report.max_level(), Some(Level::Error));
    assert_eq!(report.exit_code(Level::Warn), 1);
    let text = report.render_text();
    assert!(text.contains("(select auth.uid())"), "{text}");
    assert!(
        text.ends_with("rls-lint: 13 findings: 5 errors, 8 warnings, 0 info\n"),
        "{text}"
    );
}
