//! The lint with the team's intent: membership subqueries that never correlate with the
//! policy's row and caller-id fallbacks are errors; with an access spec, a declared public read
//! is not a finding and fixes name the table's real owner column.

use std::collections::BTreeMap;

use harness::TestDatabase;
use rls_lint::{Level, LintOptions, PublicRead, Report, TableIntent};
use sqlx::Connection;

use crate::support::apply;

const ME: &str = "(SELECT public.requesting_user_id())";

async fn lint_with(db: &TestDatabase, options: &LintOptions) -> Report {
    let mut conn = db.admin_connection().await.unwrap();
    let report = rls_lint::lint(&mut conn, options).await.unwrap();
    conn.close().await.ok();
    report
}

fn objects(report: &Report, rule: &str) -> Vec<String> {
    let mut v: Vec<String> = report
        .findings
        .iter()
        .filter(|f| f.rule == rule)
        .map(|f| f.object.clone())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn membership_subqueries_must_correlate_and_ids_must_not_fall_back() {
    let db = TestDatabase::create().await.unwrap();
    apply(
        &db,
        &format!(
            "CREATE TABLE public.mem (project_id int, user_id text NOT NULL DEFAULT public.requesting_user_id());
             CREATE TABLE public.tk (id int PRIMARY KEY, project_id int, owner_id text DEFAULT public.requesting_user_id());
             ALTER TABLE public.tk ENABLE ROW LEVEL SECURITY;
             ALTER TABLE public.tk FORCE ROW LEVEL SECURITY;
             CREATE POLICY correlated ON public.tk FOR SELECT TO authenticated USING
               (EXISTS (SELECT 1 FROM public.mem m WHERE m.project_id = tk.project_id AND m.user_id = {ME}));
             CREATE POLICY in_column ON public.tk FOR SELECT TO authenticated USING
               (project_id IN (SELECT m.project_id FROM public.mem m WHERE m.user_id = {ME}));
             CREATE POLICY never_ties ON public.tk FOR SELECT TO authenticated USING
               (EXISTS (SELECT 1 FROM public.mem m WHERE m.user_id = {ME}));
             CREATE POLICY shadowed ON public.tk FOR SELECT TO authenticated USING
               (EXISTS (SELECT 1 FROM public.mem WHERE mem.project_id = project_id AND user_id = {ME}));
             CREATE POLICY caller_in ON public.tk FOR SELECT TO authenticated USING
               ({ME} IN (SELECT m.user_id FROM public.mem m));
             CREATE POLICY fallback ON public.tk FOR UPDATE TO authenticated
               USING (owner_id = coalesce({ME}, owner_id)) WITH CHECK (owner_id = {ME});"
        ),
    )
    .await;
    let report = lint_with(&db, &LintOptions::default()).await;
    assert_eq!(
        objects(&report, "policy.uncorrelated_membership"),
        [
            "policy caller_in on public.tk",
            "policy never_ties on public.tk",
            "policy shadowed on public.tk",
        ],
        "{}",
        report.render_text()
    );
    assert_eq!(
        objects(&report, "policy.caller_id_fallback"),
        ["policy fallback on public.tk"]
    );
    let fallback = report
        .findings
        .iter()
        .find(|f| f.rule == "policy.caller_id_fallback")
        .unwrap();
    assert!(
        fallback
            .fix
            .contains("owner_id = (select public.requesting_user_id())"),
        "{}",
        fallback.fix
    );
}

/// A lookup nothing ties to the row (no foreign key, no shared column but the caller's) is a
/// check of who the caller is — a subscriber, an admin: a WARN saying so, not an ERROR. The
/// same lookup on a table that could be tied to the row (a foreign key to it) stays an ERROR.
#[tokio::test]
async fn a_caller_status_lookup_is_a_warning_and_an_untied_membership_an_error() {
    let db = TestDatabase::create().await.unwrap();
    apply(
        &db,
        &format!(
            "CREATE TABLE public.posts (id int PRIMARY KEY, premium boolean NOT NULL DEFAULT false, title text);
             CREATE TABLE public.subs (id int PRIMARY KEY, user_id text NOT NULL, status text);
             CREATE TABLE public.readers (post_id int REFERENCES public.posts, user_id text NOT NULL);
             ALTER TABLE public.posts ENABLE ROW LEVEL SECURITY;
             ALTER TABLE public.posts FORCE ROW LEVEL SECURITY;
             CREATE POLICY subscribers ON public.posts FOR SELECT TO authenticated USING
               (NOT premium OR {ME} IN (SELECT s.user_id FROM public.subs s WHERE s.status = 'active'));
             CREATE POLICY readers ON public.posts FOR SELECT TO authenticated USING
               (EXISTS (SELECT 1 FROM public.readers r WHERE r.user_id = {ME}));"
        ),
    )
    .await;
    let report = lint_with(&db, &LintOptions::default()).await;
    let level = |policy: &str| {
        report
            .findings
            .iter()
            .find(|f| {
                f.rule == "policy.uncorrelated_membership"
                    && f.object == format!("policy {policy} on public.posts")
            })
            .map(|f| (f.level, f.why.clone()))
            .unwrap_or_else(|| panic!("no finding on {policy}: {}", report.render_text()))
    };
    let (subscribers, why) = level("subscribers");
    assert_eq!(subscribers, Level::Warn, "{why}");
    assert!(why.contains("check of the caller's status"), "{why}");
    let (readers, why) = level("readers");
    assert_eq!(readers, Level::Error, "{why}");
    assert!(why.contains("public.readers could be"), "{why}");
}

#[tokio::test]
async fn a_declared_public_read_is_not_a_finding_and_fixes_name_the_owner_column() {
    let db = TestDatabase::create().await.unwrap();
    apply(
        &db,
        "CREATE TABLE public.profiles (id int PRIMARY KEY, owner_id text NOT NULL DEFAULT public.requesting_user_id());
         CREATE INDEX ON public.profiles (owner_id);
         ALTER TABLE public.profiles ENABLE ROW LEVEL SECURITY;
         ALTER TABLE public.profiles FORCE ROW LEVEL SECURITY;
         CREATE POLICY read_all ON public.profiles FOR SELECT TO anon, authenticated USING (true);
         CREATE POLICY write_own ON public.profiles FOR INSERT TO authenticated;",
    )
    .await;
    let plain = lint_with(&db, &LintOptions::default()).await;
    assert_eq!(
        objects(&plain, "policy.always_true"),
        ["policy read_all on public.profiles"]
    );
    assert_eq!(
        objects(&plain, "policy.anon_permissive"),
        ["policy read_all on public.profiles"]
    );

    let intent = |public_read| LintOptions {
        intent: BTreeMap::from([(
            "public.profiles".to_owned(),
            TableIntent {
                owner_column: Some("owner_id".into()),
                public_read,
            },
        )]),
        ..Default::default()
    };
    let anyone = lint_with(&db, &intent(Some(PublicRead::Anyone))).await;
    assert!(
        objects(&anyone, "policy.always_true").is_empty(),
        "{}",
        anyone.render_text()
    );
    assert!(objects(&anyone, "policy.anon_permissive").is_empty());
    let insert = anyone
        .findings
        .iter()
        .find(|f| f.object == "policy write_own on public.profiles")
        .unwrap();
    assert_eq!(
        insert.fix,
        "WITH CHECK (owner_id = (select public.requesting_user_id()))"
    );

    // Signed-in only: the same policy, open to anon too, is still a finding.
    let signed_in = lint_with(&db, &intent(Some(PublicRead::SignedIn))).await;
    assert_eq!(
        objects(&signed_in, "policy.always_true"),
        ["policy read_all on public.profiles"]
    );

    // Without a spec, a read open to every role with no owner-scoped read may be public by
    // design: a warning. A spec that keeps the table private makes it certain: an error.
    let level = |report: &Report, rule: &str| {
        report
            .findings
            .iter()
            .find(|f| f.rule == rule)
            .map(|f| f.level)
    };
    assert_eq!(level(&plain, "policy.always_true"), Some(Level::Warn));
    assert_eq!(level(&plain, "policy.anon_permissive"), Some(Level::Warn));
    let private = lint_with(&db, &intent(None)).await;
    assert_eq!(level(&private, "policy.always_true"), Some(Level::Error));
    assert_eq!(
        level(&private, "policy.anon_permissive"),
        Some(Level::Error)
    );
    assert_eq!(
        level(&signed_in, "policy.anon_permissive"),
        Some(Level::Error)
    );
}
