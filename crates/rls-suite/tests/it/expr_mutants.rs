//! Expression-level mutants on a schema whose policies have the shapes they mutate: an EXISTS
//! subquery correlated with the row, an IN subquery, a top-level AND. Each mutant changes the
//! parsed tree, applies, and is killed by the matrices.

use harness::TestDatabase;
use rls_suite::access::{BoundSpec, RunOptions};
use rls_suite::mutation::{self, Outcome};
use rls_suite::spec::Spec;
use sqlx::Connection;

const NOTES: &str = "
create table public.notes (
  id uuid primary key default gen_random_uuid(),
  owner_id text not null default public.requesting_user_id(),
  body text not null
);
create table public.note_shares (
  note_id uuid not null references public.notes (id) on delete cascade,
  user_id text not null,
  primary key (note_id, user_id)
);
grant select, insert, update, delete on public.notes, public.note_shares to anon, authenticated;
alter table public.notes enable row level security;
alter table public.notes force row level security;
alter table public.note_shares enable row level security;
alter table public.note_shares force row level security;
create policy note_shares_select on public.note_shares for select to authenticated
  using (user_id = (select public.requesting_user_id()));
create policy notes_select on public.notes for select to authenticated
  using (exists (select 1 from public.note_shares s
                 where s.note_id = notes.id and s.user_id = (select public.requesting_user_id())));
create policy notes_insert on public.notes for insert to authenticated
  with check (owner_id = (select public.requesting_user_id()) and body <> '');
create policy notes_update on public.notes for update to authenticated
  using (id in (select s.note_id from public.note_shares s
                where s.user_id = (select public.requesting_user_id())));
create policy notes_delete on public.notes for delete to authenticated
  using (owner_id = (select public.requesting_user_id()));
";

const SPEC: &str = r#"
[actors.ada]
[actors.ben]
[actors.cy]

[tables.notes]
owner = "owner_id"
payload = { body = "Matrix note" }
members = { table = "note_shares", on = { note_id = "id" }, user = "user_id" }
immutable = []
select = "member"
insert = "owner"
update = "member"
delete = "owner"

[tables.note_shares]
owner = "user_id"
parent = { table = "notes", on = { note_id = "id" } }
change = "user_id"
select = "owner"
"#;

#[tokio::test]
async fn correlations_and_conjunctions_are_mutated_as_trees_and_killed() {
    let db = TestDatabase::create().await.unwrap();
    let mut admin = db.admin_connection().await.unwrap();
    sqlx::raw_sql(NOTES).execute(&mut admin).await.unwrap();
    let spec = Spec::parse(std::path::Path::new("notes.access.toml"), SPEC).unwrap();
    let bound = BoundSpec::bind(&spec, &mut admin).await.unwrap();

    // The schema as written passes its own spec (else a kill would prove nothing).
    let clean = rls_suite::access::run(
        &bound,
        db.admin_target(),
        db.app_target(),
        RunOptions::default(),
    )
    .await
    .unwrap();
    assert!(
        clean.leaks().is_empty() && clean.lost_access().is_empty(),
        "{:?} {:?}\n{}",
        clean.leaks(),
        clean.lost_access(),
        clean.render()
    );

    let all = mutation::generate(&bound, &mut admin).await.unwrap();
    admin.close().await.unwrap();
    let wanted = [
        "notes.notes_select.using.drop_correlation",
        "notes.notes_update.using.drop_correlation",
        "notes.notes_insert.check.and_to_or",
        "notes.notes_insert.check.loose_prefix",
        "notes.notes_delete.using.caller_constant",
    ];
    let list: Vec<_> = all
        .iter()
        .filter(|m| wanted.contains(&m.id.as_str()))
        .cloned()
        .collect();
    assert_eq!(list.len(), wanted.len(), "{all:#?}");
    // The subquery's correlation is gone, its filter on the caller is not.
    let select = &list.iter().find(|m| m.id == wanted[0]).unwrap().sql;
    assert!(
        !select.contains("notes.id")
            && select.contains("s.user_id = (SELECT public.requesting_user_id()"),
        "{select}"
    );
    // IN became EXISTS: the outer id no longer ties the subquery to the row.
    let update = &list.iter().find(|m| m.id == wanted[1]).unwrap().sql;
    assert!(update.contains("EXISTS (SELECT s.note_id"), "{update}");
    // No expression mutant of this schema is "not run" (every round trip held).
    let not_run: Vec<_> = all.iter().filter(|m| m.not_run.is_some()).collect();
    assert!(not_run.is_empty(), "{not_run:#?}");

    let report = mutation::run(
        &bound,
        &db,
        list,
        RunOptions::default(),
        &rls_lint::LintOptions {
            app_role: Some(db.app_target().user.clone()),
            ..Default::default()
        },
        2,
    )
    .await
    .unwrap();
    for (m, o) in &report.results {
        assert!(
            matches!(o, Outcome::Killed(by) if by.starts_with("[notes]")),
            "{} not killed by a matrix: {o:?}\n{}",
            m.id,
            m.sql
        );
    }
}

/// Predicates with the syntax Postgres prints in its own ways (SQL-standard functions, special
/// operators, collations, row and array constructors): each survives the parse/deparse round
/// trip through libpg_query (so none of its mutants is "not run"), and each gets its mutants.
#[tokio::test]
async fn unusual_predicates_survive_the_parse_deparse_round_trip() {
    const SHAPES: &[&str] = &[
        "title similar to 'a%'",
        "created_at between symmetric now() and now()",
        "substring(title from 1 for 2) = 'ab'",
        "trim(both 'x' from title) <> ''",
        "title::varchar(10) is not null",
        "created_at at time zone 'UTC' < now()",
        "extract(year from created_at) > 2000",
        "(created_at, created_at) overlaps (now(), now())",
        "title collate \"C\" > 'a'",
        "title = any(array['a', 'b'])",
        "coalesce(title, 'x') is distinct from 'y'",
        "current_date > '2000-01-01'::date",
        "created_at > now() - interval '1 day'",
        "case when is_complete then true else false end",
        "title ~ '^a' or title !~~ 'b%'",
        "is_complete is not true",
        "row(title, user_id) is not null",
        "normalize(title) is nfc normalized",
        "title ^@ 'a'",
        "greatest(1, 2) = 2",
        "xmlexists('//x' passing by value '<x/>')",
        "cast(user_id as text) = current_user",
        "position('a' in title) > 0",
        "overlay(title placing 'x' from 1) <> ''",
        "user_id = session_user",
    ];
    let db = TestDatabase::create().await.unwrap();
    let mut admin = db.admin_connection().await.unwrap();
    for (i, shape) in SHAPES.iter().enumerate() {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "create policy shape_{i} on public.todos for select to authenticated \
             using (user_id = (select public.requesting_user_id()) and ({shape}))"
        )))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("{shape}: {e}"));
    }
    let spec =
        Spec::load(&harness::state::workspace_root().join("fixtures/todos.access.toml")).unwrap();
    let bound = BoundSpec::bind(&spec, &mut admin).await.unwrap();
    let list = mutation::generate(&bound, &mut admin).await.unwrap();
    admin.close().await.unwrap();
    let not_run: Vec<_> = list.iter().filter(|m| m.not_run.is_some()).collect();
    assert!(not_run.is_empty(), "{not_run:#?}");
    for (i, shape) in SHAPES.iter().enumerate() {
        let id = format!("todos.shape_{i}.using.and_to_or");
        let m = list.iter().find(|m| m.id == id);
        assert!(m.is_some_and(|m| m.sql.contains(" OR ")), "{shape}: {m:?}");
    }
}
