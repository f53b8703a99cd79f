//! Schemas nobody here wrote (examples/real: ported from open-source apps, see each README):
//! the check runs each to a clean verdict against a spec of the app's documented intent, and
//! fails every hand-broken copy (a text replacement on the migration, as `.ci/run` breaks
//! team-workspaces) naming the cells that show it. Also the first-run fixes they needed, each
//! on a schema of its own: triggers and defaults apply to seeds (with an opt-out), a table
//! needs no primary key, a table nobody updates needs no `change` column.

use std::path::{Path, PathBuf};

use harness::{Migrations, TestDatabase};
use rls_suite::engine::{self, BoundSpec, CheckReport, RunOptions};
use rls_suite::spec::Spec;
use sqlx::Connection;

fn real(name: &str) -> PathBuf {
    harness::state::workspace_root()
        .join("examples/real")
        .join(name)
}

/// The example's migrations, with `from` replaced by `to` in the file named `file` (which must
/// contain it), in a folder of their own.
fn broken_copy(name: &str, file: &str, from: &str, to: &str) -> PathBuf {
    let src = real(name).join("migrations");
    let dir = std::env::temp_dir().join(format!(
        "insforge-rls-real-{name}-{}",
        harness::random_token(12)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let mut text = std::fs::read_to_string(&path).unwrap();
        if path.file_name().is_some_and(|n| n == file) {
            assert!(text.contains(from), "{name}/{file} has no `{from}`");
            text = text.replacen(from, to, 1);
        }
        std::fs::write(dir.join(path.file_name().unwrap()), text).unwrap();
    }
    dir
}

async fn database(migrations: &Path) -> TestDatabase {
    let migrations = Migrations::from_dir(migrations).unwrap();
    TestDatabase::migrated(&migrations).await.unwrap()
}

async fn check(spec: &Spec, db: &TestDatabase) -> Result<CheckReport, String> {
    let mut admin = db.admin_connection().await.unwrap();
    let bound = BoundSpec::bind(spec, &mut admin)
        .await
        .map_err(|e| e.to_string())?;
    admin.close().await.unwrap();
    engine::run(
        &bound,
        db.admin_target(),
        db.app_target(),
        RunOptions::default(),
    )
    .await
    .map_err(|e| e.to_string())
}

fn assert_clean(name: &str, report: &CheckReport) {
    let (leaks, lost) = (report.leaks(), report.lost_access());
    assert!(
        leaks.is_empty() && lost.is_empty(),
        "{name}: leaks:\n{}\nlost access:\n{}\n\n{}",
        leaks.join("\n"),
        lost.join("\n"),
        report.render()
    );
}

/// Each schema: (example, migration file, [(what is broken, from, to, expected verdict, a
/// cell the finding must name)]).
type Broken = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
);

const SCHEMAS: [(&str, &str, &[Broken]); 3] = [
    (
        "slack-clone",
        "V1__slack_clone.sql",
        &[
            (
                "messages readable without signing in",
                "on public.messages for select using ( auth.role() = 'authenticated' )",
                "on public.messages for select using ( true )",
                "leak",
                "[messages] select",
            ),
            (
                "moderators' message deletes check the channel permission",
                "for delete using ( authorize('messages.delete'",
                "for delete using ( authorize('channels.delete'",
                "lost",
                "[messages] delete",
            ),
            (
                "channels created in anyone's name",
                "on public.channels for insert with check ( public.requesting_user_id() = created_by )",
                "on public.channels for insert with check ( auth.role() = 'authenticated' )",
                "leak",
                "[channels] insert",
            ),
        ],
    ),
    (
        "figma-clone",
        "V1__figma_clone.sql",
        &[
            (
                "membership compared with like",
                "profile_id = public.requesting_user_id()",
                "profile_id like public.requesting_user_id()",
                "leak",
                "[projects] select",
            ),
            (
                "anyone joins any project as themselves",
                "for insert with check (is_project_member(project_id));\n\nalter table public.canvas_objects",
                "for insert with check (profile_id = public.requesting_user_id());\n\nalter table public.canvas_objects",
                "leak",
                "[project_members] insert",
            ),
        ],
    ),
    (
        "basejump",
        "V1__basejump_accounts.sql",
        &[
            (
                "members edit the account",
                "basejump.has_role_on_account(id, 'owner') = true",
                "basejump.has_role_on_account(id) = true",
                "leak",
                "[accounts] update",
            ),
            (
                "personal accounts created by an insert (caught by a seed row derived from the policy)",
                "        and personal_account = false\n",
                "\n",
                "leak",
                "[accounts] insert",
            ),
            (
                "members remove teammates",
                "(basejump.has_role_on_account(account_id, 'owner') = true)",
                "(basejump.has_role_on_account(account_id) = true)",
                "leak",
                "[account_user] delete",
            ),
        ],
    ),
];

#[tokio::test]
async fn real_schemas_run_clean_against_their_documented_intent() {
    for (name, _, _) in SCHEMAS {
        let spec = Spec::load(&real(name).join("access.toml")).unwrap();
        let db = database(&real(name).join("migrations")).await;
        let report = check(&spec, &db)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_clean(name, &report);
        // Every policy clause and branch exercised, or accepted in the spec with a reason.
        let coverage = report.coverage.as_ref().unwrap();
        assert!(
            coverage.unexercised().is_empty() && coverage.stale().is_empty(),
            "{name}:\n{}",
            coverage.render()
        );
    }
}

#[tokio::test]
async fn every_hand_broken_real_schema_fails_naming_its_cells() {
    let mut missed = Vec::new();
    for (name, file, broken) in SCHEMAS {
        assert!(broken.len() >= 2, "{name}: at least two hand-broken copies");
        let spec = Spec::load(&real(name).join("access.toml")).unwrap();
        for (what, from, to, expect, cell) in broken {
            let dir = broken_copy(name, file, from, to);
            let db = database(&dir).await;
            let report = check(&spec, &db)
                .await
                .unwrap_or_else(|e| panic!("{name}, {what}: {e}"));
            std::fs::remove_dir_all(&dir).ok();
            let (leaks, lost) = (report.leaks(), report.lost_access());
            let findings = if *expect == "leak" { &leaks } else { &lost };
            let caught = (*expect == "leak" || leaks.is_empty())
                && findings.iter().any(|f| f.contains(cell));
            if !caught {
                missed.push(format!(
                    "{name}, {what} (expected {expect} in {cell}): leaks {leaks:?}, lost {lost:?}"
                ));
            }
        }
    }
    assert!(missed.is_empty(), "not caught:\n{}", missed.join("\n"));
}

/// A schema of its own for the first-run fixes, beside the template's (whose tables no spec
/// here names).
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

fn spec(text: &str) -> Spec {
    Spec::parse(Path::new("scratch.access.toml"), text).unwrap()
}

const STORIES: &str = "
create table public.stories (
  id bigint generated always as identity primary key,
  author_id text not null,
  body text not null,
  created_at timestamptz
);
create function public.stamp_story() returns trigger language plpgsql as $$
begin new.created_at := now(); return new; end $$;
create trigger stamp_story before insert on public.stories
  for each row execute function public.stamp_story();
alter table public.stories enable row level security;
create policy stories_recent on public.stories for select
  using (author_id = (select public.requesting_user_id()) and created_at > now() - interval '24 hours');
create policy stories_insert on public.stories for insert
  with check (author_id = (select public.requesting_user_id()));
";

const STORIES_SPEC: &str = "
[actors.ada]
[actors.ben]
[tables.stories]
owner = \"author_id\"
payload = { body = \"Matrix story\" }
select = \"owner\"
insert = \"owner\"
";

/// A trigger-set `created_at` is set on the seeds, as in production: a "visible for 24 hours"
/// policy shows each author their rows (with triggers off it hid them all: false lost access).
#[tokio::test]
async fn seeds_go_in_with_their_triggers_and_defaults() {
    let db = scratch(STORIES).await;
    let report = check(&spec(STORIES_SPEC), &db).await.unwrap();
    assert_clean("stories", &report);
    // The report says which triggers fired while seeding, and how often.
    let coverage = report.coverage.as_ref().unwrap();
    let fired: Vec<String> = coverage
        .triggers
        .iter()
        .map(|f| format!("{} {} {:?}", f.table, f.function, f.triggers))
        .collect();
    assert_eq!(
        fired,
        ["stories stamp_story [\"stories.stamp_story\"]"],
        "{}",
        coverage.render()
    );
    assert!(coverage.triggers[0].calls >= 2, "{}", coverage.render());
    assert!(
        coverage
            .render()
            .contains("triggers that fired while seeding"),
        "{}",
        coverage.render()
    );
}

/// A trigger that cannot run in a test refuses the seed with the key that fixes it; with
/// `triggers = false` the seeds go in without it.
#[tokio::test]
async fn a_trigger_that_cannot_run_is_named_and_can_be_switched_off() {
    let db = scratch(&format!(
        "{STORIES}
         create function public.needs_the_app() returns trigger language plpgsql as $$
         begin raise exception 'only the app''s worker inserts stories'; end $$;
         create trigger needs_the_app before insert on public.stories
           for each row execute function public.needs_the_app();"
    ))
    .await;
    let err = check(&spec(STORIES_SPEC), &db).await.unwrap_err();
    assert!(
        err.contains("tables.stories.triggers")
            && err.contains("row 1 of the table, for ada")
            && err.contains("triggers = false"),
        "{err}"
    );
    // Without triggers, created_at stays NULL: the 24-hour policy hides every row, which is
    // what the check then reports (lost access), not an error.
    let off = STORIES_SPEC.replace("select = \"owner\"", "select = \"owner\"\ntriggers = false");
    let report = check(&spec(&off), &db).await.unwrap();
    assert_eq!(report.coverage.as_ref().unwrap().triggers, []);
    assert!(
        report
            .lost_access()
            .iter()
            .any(|f| f.contains("[stories] select")),
        "{}",
        report.render()
    );
}

/// A unique text column takes a different derived value on every seed row.
#[tokio::test]
async fn a_unique_payload_column_gets_a_value_per_row() {
    let db = scratch(
        "create table public.boards (
           id bigint generated always as identity primary key,
           owner_id text not null,
           slug text not null unique check (slug ~ '^[a-z0-9-]+$'));
         alter table public.boards enable row level security;
         create policy boards_own on public.boards for all
           using (owner_id = (select public.requesting_user_id()))
           with check (owner_id = (select public.requesting_user_id()));",
    )
    .await;
    let text = "[actors.ada]\n[actors.ben]\n[tables.boards]\nowner = \"owner_id\"\n\
                payload = { slug = \"matrix-board\" }\nselect = \"owner\"\ninsert = \"owner\"\n\
                update = \"owner\"\ndelete = \"owner\"\n";
    let report = check(&spec(text), &db).await.unwrap();
    assert_clean("boards", &report);
}

/// Tables without a primary key: told apart by a unique key of NOT NULL columns, else by all
/// columns; a membership-like table nobody updates needs no `change` column.
#[tokio::test]
async fn tables_without_a_primary_key_or_a_change_column_run() {
    let db = scratch(
        "create table public.labels (owner_id text not null, label text not null,
           color text, unique (owner_id, label));
         create table public.follows (follower text not null, note text);
         alter table public.labels enable row level security;
         alter table public.follows enable row level security;
         create policy labels_own on public.labels for all
           using (owner_id = (select public.requesting_user_id()))
           with check (owner_id = (select public.requesting_user_id()));
         create policy follows_read on public.follows for select
           using (follower = (select public.requesting_user_id()));
         create policy follows_add on public.follows for insert
           with check (follower = (select public.requesting_user_id()));",
    )
    .await;
    let text = "[actors.ada]\n[actors.ben]\n\
                [tables.labels]\nowner = \"owner_id\"\n\
                payload = { label = \"Matrix label\", color = \"red\" }\nchange = \"color\"\n\
                select = \"owner\"\ninsert = \"owner\"\nupdate = \"owner\"\ndelete = \"owner\"\n\
                [tables.follows]\nowner = \"follower\"\nselect = \"owner\"\ninsert = \"owner\"\n";
    let report = check(&spec(text), &db).await.unwrap();
    assert_clean("labels, follows", &report);
    // A change column inside the key that identifies rows is refused, naming the key.
    let err = check(
        &spec(&text.replace("change = \"color\"", "change = \"label\"")),
        &db,
    )
    .await
    .unwrap_err();
    assert!(
        err.contains("tables.labels.change") && err.contains("(owner_id, label)"),
        "{err}"
    );
}

/// A trigger that adds rows to another spec table is named, with the key that switches it off
/// (the check seeds every spec table itself and restores exactly what it seeded).
#[tokio::test]
async fn a_trigger_that_adds_rows_to_a_spec_table_is_named() {
    let db = scratch(&format!(
        "{STORIES}
         create table public.story_log (
           id bigint generated always as identity primary key,
           author_id text not null);
         alter table public.story_log enable row level security;
         create policy story_log_own on public.story_log for select
           using (author_id = (select public.requesting_user_id()));
         create function public.log_story() returns trigger language plpgsql as $$
         begin insert into public.story_log (author_id) values (new.author_id); return new; end $$;
         create trigger log_story after insert on public.stories
           for each row execute function public.log_story();"
    ))
    .await;
    let text =
        format!("{STORIES_SPEC}[tables.story_log]\nowner = \"author_id\"\nselect = \"owner\"\n");
    let err = check(&spec(&text), &db).await.unwrap_err();
    assert!(
        err.contains("tables.stories.triggers") && err.contains("`story_log`"),
        "{err}"
    );
    let off = text.replace(
        "insert = \"owner\"\n",
        "insert = \"owner\"\ntriggers = false\n",
    );
    let report = check(&spec(&off), &db).await.unwrap();
    // With the trigger off created_at stays NULL; only the 24-hour policy's cells differ.
    assert!(report.leaks().is_empty(), "{}", report.render());
}
