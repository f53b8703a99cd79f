//! Richer rules (issue 21): top-level `[predicates]` shared by tables, `{ all = [...] }` beside
//! the any-of lists, and rules over the forwarded `email` (`email:<glob>`, `$3` in a
//! predicate) and `role` claims — each checked against policies that read `auth.email()`.

use std::path::Path;

use harness::TestDatabase;
use rls_suite::engine::{self, BoundSpec, CheckReport, RunOptions};
use rls_suite::spec::Spec;
use sqlx::Connection;

async fn scratch(sql: &str) -> TestDatabase {
    let db = TestDatabase::create().await.unwrap();
    let mut admin = db.admin_connection().await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.unwrap();
    db
}

async fn check(db: &TestDatabase) -> CheckReport {
    let spec = Spec::parse(Path::new("rules.access.toml"), SPEC).unwrap();
    let mut admin = db.admin_connection().await.unwrap();
    let bound = BoundSpec::bind(&spec, &mut admin).await.unwrap();
    admin.close().await.unwrap();
    engine::run(
        &bound,
        db.admin_target(),
        db.app_target(),
        RunOptions::default(),
    )
    .await
    .unwrap()
}

const INVITES: &str = "
create table public.invites (
  id bigint generated always as identity primary key,
  inviter text not null,
  invitee_email text not null,
  note text not null);
create table public.replies (
  id bigint generated always as identity primary key,
  author text not null,
  invitee_email text not null,
  body text not null);
alter table public.invites enable row level security;
alter table public.replies enable row level security;
create policy invites_read on public.invites for select
  using (inviter = (select public.requesting_user_id()) or invitee_email = (select auth.email()));
create policy invites_add on public.invites for insert
  with check (inviter = (select public.requesting_user_id()) and (select auth.email()) like '%@example.com'
              and (select auth.role()) = 'authenticated');
create policy replies_read on public.replies for select
  using (invitee_email = (select auth.email()));
";

const SPEC: &str = r#"
[predicates]
invited = "t.invitee_email = $3"

[actors.ada]
email = "ada@example.com"
[actors.ben]
email = "ben@example.com"
[actors.cy]
email = "cy@elsewhere.org"

[tables.invites]
owner = "inviter"
payload = { invitee_email = "ben@example.com", note = "Matrix invite" }
select = ["owner", "invited"]
insert = { all = ["owner", "email:*@example.com", "role:authenticated"] }

[tables.replies]
owner = "author"
payload = { invitee_email = "ben@example.com", body = "Matrix reply" }
select = "invited"
"#;

#[tokio::test]
async fn shared_predicates_all_and_claim_rules_match_policies_on_the_email_claim() {
    let report = check(&scratch(INVITES).await).await;
    assert!(
        report.leaks().is_empty() && report.lost_access().is_empty(),
        "{}",
        report.render()
    );
    // Ben, the invitee, sees every invite; cy may not insert (an address outside example.com).
    let text = report.render();
    assert!(text.contains("sees ada:1 ben:1 cy:1"), "{text}");

    // The domain conjunct dropped: cy inserts — a leak the `all` rule shows.
    let broken =
        scratch(&INVITES.replace("and (select auth.email()) like '%@example.com'", "")).await;
    let report = check(&broken).await;
    assert!(
        report
            .leaks()
            .iter()
            .any(|l| l.starts_with("[invites] insert") && l.contains("cy inserts")),
        "{}",
        report.render()
    );

    // The email branch dropped from the shared predicate's policy: the invitee loses the rows.
    let broken = scratch(&INVITES.replace(
        "using (invitee_email = (select auth.email()));",
        "using (false);",
    ))
    .await;
    let report = check(&broken).await;
    assert!(
        report
            .lost_access()
            .iter()
            .any(|l| l.starts_with("[replies] select: ben cannot see")),
        "{}",
        report.render()
    );
}
