//! Evidence complete, or the check says so (issue 21): seed rows derived from the policies (a
//! column a policy reads takes each value worth trying, one column at a time), and a policy
//! clause or branch no cell exercised fails the check with its own exit code (4) unless the
//! spec accepts it in `[unexercised]` with a reason.

use std::path::Path;
use std::time::Duration;

use harness::TestDatabase;
use rls_suite::check::{CheckOutcome, Timings};
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

async fn check(spec: &Spec, db: &TestDatabase) -> CheckReport {
    let mut admin = db.admin_connection().await.unwrap();
    let bound = BoundSpec::bind(spec, &mut admin).await.unwrap();
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

/// The check's verdict on a matrices report (no lint finding, no HTTP, no mutants).
fn exit_code(report: CheckReport) -> (u8, CheckOutcome) {
    let outcome = CheckOutcome {
        report,
        http: None,
        lint: rls_lint::Report::new(Vec::new()),
        contradicted: Vec::new(),
        mutants: None,
        migrations: Vec::new(),
        timings: Timings {
            pipeline: Duration::ZERO,
            ..Timings::default()
        },
    };
    (outcome.exit_code(None), outcome)
}

const NOTES: &str = "
create table public.notes (
  id bigint generated always as identity primary key,
  owner_id text not null,
  body text not null,
  is_complete boolean not null default false
);
alter table public.notes enable row level security;
create policy notes_own on public.notes for all
  using (owner_id = (select public.requesting_user_id()))
  with check (owner_id = (select public.requesting_user_id()));
";

const NOTES_SPEC: &str = "
[actors.ada]
[actors.ben]
[tables.notes]
owner = \"owner_id\"
payload = { body = \"Matrix note\" }
select = \"owner\"
insert = \"owner\"
update = \"owner\"
delete = \"owner\"
";

fn spec(text: &str) -> Spec {
    Spec::parse(Path::new("evidence.access.toml"), text).unwrap()
}

/// A permissive `USING (is_complete)` on a column the payload never mentions: a seed row
/// derived from the policy has `is_complete = true`, so another user sees it — a leak, exit 1
/// (it exited 0 when every seed row took the column's default).
#[tokio::test]
async fn a_permissive_policy_on_a_column_the_payload_never_mentions_leaks() {
    let clean = scratch(NOTES).await;
    let (code, outcome) = exit_code(check(&spec(NOTES_SPEC), &clean).await);
    assert_eq!(code, 0, "{}", outcome.report.render());
    assert!(outcome.coverage().unwrap().derived.is_empty());

    let db = scratch(&format!(
        "{NOTES} create policy notes_done on public.notes for select using (is_complete);"
    ))
    .await;
    let report = check(&spec(NOTES_SPEC), &db).await;
    let derived = &report.coverage.as_ref().unwrap().derived;
    assert!(
        derived
            .iter()
            .any(|d| d.column == "is_complete" && d.value == true && d.refused.is_none()),
        "{derived:?}"
    );
    let leaks = report.leaks();
    assert!(
        leaks
            .iter()
            .any(|l| l.starts_with("[notes] select") && l.contains("sees a row of ada")),
        "{}",
        report.render()
    );
    assert_eq!(exit_code(report).0, 1);
}

/// Enum labels, NULL and the constants a policy compares a column with each get a seed row,
/// one column at a time, and a branch's values together one more; a value the table refuses is
/// reported, not fatal.
#[tokio::test]
async fn derived_rows_cover_enum_labels_constants_and_null() {
    let db = scratch(
        "create type public.visibility as enum ('private', 'team', 'public');
         create table public.docs (
           id bigint generated always as identity primary key,
           owner_id text not null,
           title text not null,
           visibility public.visibility not null default 'private',
           archived_at timestamptz,
           stage text not null default 'draft' check (stage <> 'gone'));
         alter table public.docs enable row level security;
         create policy docs_own on public.docs for all
           using (owner_id = (select public.requesting_user_id()))
           with check (owner_id = (select public.requesting_user_id()));
         create policy docs_public on public.docs for select
           using (visibility = 'public' and archived_at is null and stage in ('live', 'gone'));",
    )
    .await;
    let text = NOTES_SPEC
        .replace("notes", "docs")
        .replace("body = \"Matrix note\"", "title = \"Matrix doc\"")
        .replace("select = \"owner\"", "select = [\"owner\", \"published\"]")
        + "[tables.docs.predicates]\npublished = \"t.visibility = 'public' and t.archived_at is null and t.stage in ('live', 'gone')\"\n";
    let report = check(&spec(&text), &db).await;
    let cov = report.coverage.clone().unwrap();
    let seeded: Vec<String> = cov
        .derived
        .iter()
        .map(|d| {
            format!(
                "{}={}{}",
                d.column,
                d.value,
                if d.refused.is_some() { " refused" } else { "" }
            )
        })
        .collect();
    for want in [
        "visibility=\"team\"",
        "visibility=\"public\"",
        "stage=\"live\"",
        "stage=\"gone\" refused",
        "archived_at=\"epoch\"",
        "archived_at=\"infinity\"",
    ] {
        assert!(seeded.iter().any(|s| s == want), "{want}: {seeded:?}");
    }
    // One column at a time no row is public, live and unarchived at once; the branch's values
    // together make one more row, which every actor then sees: the grant is exercised.
    assert!(
        seeded
            .iter()
            .any(|s| s == "visibility, archived_at, stage=[\"public\",null,\"live\"]"),
        "{seeded:?}"
    );
    let text = report.render();
    assert!(
        report.leaks().is_empty() && report.lost_access().is_empty(),
        "{text}"
    );
    let (code, outcome) = exit_code(report);
    assert!(outcome.unexercised().is_empty(), "{}", cov.render());
    assert_eq!(code, 0, "{}", cov.render());
}

/// A branch no seed row can change (it reads a setting, not the row) fails the check with exit
/// 4 and a line naming it; accepted in `[unexercised]` with a reason it passes, reported as
/// accepted; an entry that names nothing untested is reported stale; one naming no table of
/// the spec is refused at `file:line: key`.
#[tokio::test]
async fn an_unexercised_branch_fails_with_exit_4_unless_accepted() {
    let db = scratch(&format!(
        "{NOTES} create policy notes_open on public.notes for select
           using (owner_id = (select public.requesting_user_id())
                  or current_setting('app.open_notes', true) = 'on');"
    ))
    .await;
    let report = check(&spec(NOTES_SPEC), &db).await;
    let rendered = report.coverage.as_ref().unwrap().render();
    let (code, outcome) = exit_code(report);
    assert_eq!(code, 4, "{rendered}");
    assert!(
        rendered.contains(
            "UNTESTED notes.notes_open using · branch 2 — no grant: it names no column of \
             notes, so no seed row changes it"
        ),
        "{rendered}"
    );

    let accepted = format!(
        "{NOTES_SPEC}[unexercised]\n\"notes.notes_open using · branch 2\" = \"a deployment \
         setting, off in every test\"\n\"notes.gone*\" = \"an old policy\"\n"
    );
    let report = check(&spec(&accepted), &db).await;
    let rendered = report.coverage.as_ref().unwrap().render();
    assert!(
        rendered.contains(
            "accepted untested notes.notes_open using · branch 2 — no grant ([unexercised], line 12): a deployment setting"
        ) && rendered.contains("stale [unexercised] entry `notes.gone*` (line 13)"),
        "{rendered}"
    );
    assert_eq!(exit_code(report).0, 0, "{rendered}");
    drop(outcome);

    let err = Spec::parse(
        Path::new("evidence.access.toml"),
        &format!("{NOTES_SPEC}[unexercised]\n\"nots.notes_open using\" = \"typo\"\n"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("evidence.access.toml:12: unexercised.nots.notes_open using: no table of this spec is `nots`"),
        "{err}"
    );
}

const CHAT: &str = "
create table public.conversations (
  id bigint generated always as identity primary key,
  created_by text not null,
  title text not null);
create table public.conversation_members (
  conversation_id bigint not null references public.conversations (id) on delete cascade,
  user_id text not null,
  primary key (conversation_id, user_id));
create table public.messages (
  id bigint generated always as identity primary key,
  conversation_id bigint not null references public.conversations (id) on delete cascade,
  sender text not null,
  body text not null);
create function public.is_member(c bigint) returns boolean language sql stable security definer
  set search_path = '' as $$
  select exists (select 1 from public.conversation_members m
                 where m.conversation_id = c and m.user_id = public.requesting_user_id()) $$;
alter table public.conversations enable row level security;
alter table public.conversation_members enable row level security;
alter table public.messages enable row level security;
create policy conversations_read on public.conversations for select
  using (created_by = (select public.requesting_user_id()) or public.is_member(id));
create policy conversations_add on public.conversations for insert
  with check (created_by = (select public.requesting_user_id()));
create policy members_read on public.conversation_members for select
  using (public.is_member(conversation_id));
create policy messages_read on public.messages for select
  using (public.is_member(conversation_id));
create policy messages_post on public.messages for insert
  with check (sender = (select public.requesting_user_id()) and public.is_member(conversation_id));
";

const CHAT_SPEC: &str = "
[actors.ada]
[actors.ben]
[actors.cy]
[tables.conversations]
owner = \"created_by\"
payload = { title = \"Matrix chat\" }
members = { table = \"conversation_members\", on = { conversation_id = \"id\" }, user = \"user_id\" }
select = [\"owner\", \"member\"]
insert = \"owner\"
[tables.conversation_members]
owner = \"user_id\"
parent = { table = \"conversations\", on = { conversation_id = \"id\" } }
select = \"member\"
[tables.messages]
owner = \"sender\"
parent = { table = \"conversations\", on = { conversation_id = \"id\" } }
payload = { body = \"Matrix message\" }
select = \"member\"
insert = \"posts_as_member\"
[tables.messages.predicates]
posts_as_member = \"t.sender = $1 and exists (select 1 from public.conversation_members m where m.conversation_id = t.conversation_id and m.user_id = $1)\"
";

/// Inserts vary one dimension at a time: the caller's own id with a conversation they are not
/// in, and someone else's id in one they are in. An INSERT policy that checks only the sender
/// (its membership conjunct dropped) lets anyone post, as themselves, anywhere: a leak in
/// `insert · own id, foreign parent` (it passed when a forbidden insert changed both at once).
#[tokio::test]
async fn an_insert_policy_that_drops_its_membership_conjunct_leaks() {
    let db = scratch(CHAT).await;
    let report = check(&spec(CHAT_SPEC), &db).await;
    assert!(
        report.leaks().is_empty() && report.lost_access().is_empty(),
        "{}",
        report.render()
    );
    let text = report.render();
    assert!(
        text.contains("insert · own id, foreign parent")
            && text.contains("insert · foreign id, own parent"),
        "{text}"
    );

    let db = scratch(&CHAT.replace(
        "with check (sender = (select public.requesting_user_id()) and public.is_member(conversation_id));",
        "with check (sender = (select public.requesting_user_id()));",
    ))
    .await;
    let report = check(&spec(CHAT_SPEC), &db).await;
    let leaks = report.leaks();
    assert!(
        !leaks.is_empty()
            && leaks
                .iter()
                .all(|l| l.starts_with("[messages] insert · own id, foreign parent")),
        "{}",
        report.render()
    );

    // The other dimension: membership checked, the sender not.
    let db = scratch(&CHAT.replace(
        "with check (sender = (select public.requesting_user_id()) and public.is_member(conversation_id));",
        "with check (public.is_member(conversation_id));",
    ))
    .await;
    let report = check(&spec(CHAT_SPEC), &db).await;
    let leaks = report.leaks();
    assert!(
        leaks
            .iter()
            .any(|l| l.starts_with("[messages] insert · foreign id, own parent")),
        "{}",
        report.render()
    );
}

/// Moving a row to another parent is judged by whether the actor may insert it there (the
/// parent column immutable only by default): a sender moves a message to a conversation they
/// are in — fine; an UPDATE policy whose WITH CHECK forgets membership lets them move it into
/// one they are not in — a leak; written out in `immutable`, any move is a leak.
#[tokio::test]
async fn a_move_to_another_parent_is_judged_by_the_right_to_insert_there() {
    let edit = "create policy messages_edit on public.messages for update
      using (sender = (select public.requesting_user_id()))
      with check (sender = (select public.requesting_user_id()) and public.is_member(conversation_id));";
    let spec_text = CHAT_SPEC.replace(
        "insert = \"posts_as_member\"",
        "insert = \"posts_as_member\"\nupdate = \"owner\"",
    );
    let db = scratch(&format!("{CHAT}{edit}")).await;
    let report = check(&spec(&spec_text), &db).await;
    let text = report.render();
    assert!(
        report.leaks().is_empty() && report.lost_access().is_empty(),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with("| hand over conversation_id · own row")
            && l.contains("moves ")),
        "some actor moves a message to a conversation they are in: {text}"
    );

    let loose = edit.replace(" and public.is_member(conversation_id)", "");
    let db = scratch(&format!("{CHAT}{loose}")).await;
    let report = check(&spec(&spec_text), &db).await;
    assert!(
        report
            .leaks()
            .iter()
            .any(|l| l.starts_with("[messages] hand over conversation_id")),
        "{}",
        report.render()
    );

    let db = scratch(&format!("{CHAT}{edit}")).await;
    let fixed = spec_text.replace(
        "select = \"member\"\ninsert = \"posts_as_member\"",
        "immutable = [\"sender\", \"conversation_id\"]\nselect = \"member\"\ninsert = \"posts_as_member\"",
    );
    assert_ne!(fixed, spec_text);
    let report = check(&spec(&fixed), &db).await;
    assert!(
        report
            .leaks()
            .iter()
            .any(|l| l.starts_with("[messages] hand over conversation_id")
                && l.contains("re-assigns conversation_id")),
        "{}",
        report.render()
    );
}

/// `seed_for` declares a shape no policy reveals: rows for some users only (a user with no
/// role). A name that is no user is refused at `file:line: key`.
#[tokio::test]
async fn seed_for_seeds_a_table_for_the_users_it_names() {
    let db = scratch(NOTES).await;
    let text = NOTES_SPEC.replace(
        "select = \"owner\"",
        "seed_for = [\"ada\"]\nselect = \"owner\"",
    );
    let report = check(&spec(&text), &db).await;
    let rendered = report.render();
    let select = rendered
        .lines()
        .find(|l| l.starts_with("| select "))
        .unwrap();
    let cells: Vec<&str> = select.split('|').map(str::trim).collect();
    assert_eq!(&cells[2..4], ["sees ada:1", "sees none"], "{rendered}");
    assert!(
        report.leaks().is_empty() && report.lost_access().is_empty(),
        "{rendered}"
    );

    let err = Spec::parse(
        Path::new("evidence.access.toml"),
        &NOTES_SPEC.replace(
            "select = \"owner\"",
            "seed_for = [\"zed\"]\nselect = \"owner\"",
        ),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("evidence.access.toml:7: tables.notes.seed_for: `zed` is not a user"),
        "{err}"
    );
}

/// `[[tables.<t>.rows]]` declares a seed row for a shape no policy reveals: a policy that
/// grants by `length(body)` gets no derived row (no constant is compared with the column), so
/// only a declared long note shows that it leaks. A declared row naming no user or no column,
/// or one the table refuses, is `file:line: tables.<t>.rows: what`.
#[tokio::test]
async fn a_declared_row_reveals_a_shape_no_policy_constant_does() {
    let db = scratch(&format!(
        "{NOTES} create policy notes_long on public.notes for select using (length(body) > 20);"
    ))
    .await;
    let report = check(&spec(NOTES_SPEC), &db).await;
    assert!(report.leaks().is_empty(), "{}", report.render());

    let declared = format!(
        "{NOTES_SPEC}\n[[tables.notes.rows]]\nfor = \"ada\"\nvalues = {{ body = \"a note longer than twenty characters\" }}\n"
    );
    let report = check(&spec(&declared), &db).await;
    assert!(
        report
            .leaks()
            .iter()
            .any(|l| l.starts_with("[notes] select") && l.contains("sees a row of ada")),
        "{}",
        report.render()
    );

    let err = Spec::parse(
        Path::new("evidence.access.toml"),
        &declared.replace("for = \"ada\"", "for = \"zed\""),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("evidence.access.toml:12: tables.notes.rows: `for = \"zed\"`: not a user"),
        "{err}"
    );

    let mut admin = db.admin_connection().await.unwrap();
    let err = BoundSpec::bind(
        &spec(&declared.replace("values = { body =", "values = { bodyy =")),
        &mut admin,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with(
            "evidence.access.toml:12: tables.notes.rows: `notes` has no column `bodyy`"
        ),
        "{err}"
    );
    let bound = BoundSpec::bind(
        &spec(&declared.replace(
            "values = { body =",
            "values = { is_complete = \"maybe\", body =",
        )),
        &mut admin,
    )
    .await
    .unwrap();
    admin.close().await.unwrap();
    let err = engine::run(
        &bound,
        db.admin_target(),
        db.app_target(),
        RunOptions::default(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("evidence.access.toml:12: tables.notes.rows: the table refuses this declared row (for ada)"),
        "{err}"
    );
}
