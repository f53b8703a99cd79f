//! Expression-level mutants on a schema whose policies have the shapes they mutate: an EXISTS
//! subquery correlated with the row, an IN subquery, a top-level AND. Each mutant changes the
//! parsed tree, applies, and is killed by the matrices — but the one that drops a conjunct that
//! is no access rule (`body <> ''`), which survives.

use harness::target::quote_ident;
use harness::{Migrations, TestDatabase};
use rls_suite::engine::{BoundSpec, RunOptions};
use rls_suite::mutation::{self, Outcome};
use rls_suite::policy_expr::Expr;
use rls_suite::spec::Spec;
use sqlx::Connection;

use crate::support::run_mutants;

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
    let clean = rls_suite::engine::run(
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
        "notes.notes_insert.check.drop_conjunct.1",
        "notes.notes_insert.check.drop_conjunct.2",
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

    let report = run_mutants(&bound, &db, list).await;
    for (m, o) in &report.results {
        if m.id == "notes.notes_insert.check.drop_conjunct.2" {
            // `body <> ''` dropped: an insert may now have an empty body, its own — no access
            // rule changed, so nothing the spec checks can tell (a team marks it equivalent).
            assert_eq!(*o, Outcome::Survived, "{}", m.sql);
            continue;
        }
        assert!(
            matches!(o, Outcome::Killed(by) if by.starts_with("[notes]")),
            "{} not killed by a matrix: {o:?}\n{}",
            m.id,
            m.sql
        );
    }
}

/// Predicates with the syntax Postgres prints in its own ways (SQL-standard functions, special
/// operators, collations, row and array constructors): each survives the parse/print round
/// trip through sqlparser (so none of its mutants is "not run"), and each gets its mutants —
/// but `XMLEXISTS`, which the parser refuses: its clause is one "not run" mutant naming the
/// text, never guessed.
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
    let xml = SHAPES
        .iter()
        .position(|s| s.starts_with("xmlexists"))
        .unwrap();
    assert_eq!(
        not_run.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        [format!("todos.shape_{xml}.using.parse")],
        "{not_run:#?}"
    );
    let why = not_run[0].not_run.as_deref().unwrap();
    assert!(why.contains("XMLEXISTS(('//x'::text) PASSING"), "{why}");
    for (i, shape) in SHAPES.iter().enumerate().filter(|(i, _)| *i != xml) {
        let id = format!("todos.shape_{i}.using.and_to_or");
        let m = list.iter().find(|m| m.id == id);
        assert!(m.is_some_and(|m| m.sql.contains(" OR ")), "{shape}: {m:?}");
    }
}

/// Every policy predicate of the repository's schemas — the todos, the team-workspaces
/// example, the hand-written mutants of `fixtures/mutants` — parsed, printed, stored in place
/// of the clause and read back: Postgres stores the same `pg_get_expr`.
#[tokio::test]
async fn every_policy_of_the_repository_survives_the_round_trip() {
    let root = harness::state::workspace_root();
    let mut dbs = vec![TestDatabase::create().await.unwrap()];
    let example = Migrations::from_dir(&root.join("examples/team-workspaces/migrations")).unwrap();
    dbs.push(TestDatabase::migrated(&example).await.unwrap());
    for mutant in rls_suite::todos::fixtures::mutants().unwrap() {
        let db = TestDatabase::create().await.unwrap();
        let mut admin = db.admin_connection().await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(mutant.sql.clone()))
            .execute(&mut admin)
            .await
            .unwrap();
        admin.close().await.unwrap();
        dbs.push(db);
    }
    let mut texts = std::collections::BTreeSet::new();
    let mut failed = Vec::new();
    for db in &dbs {
        let mut admin = db.admin_connection().await.unwrap();
        for (text, outcome) in round_trips(&mut admin).await {
            if let Err(why) = &outcome {
                failed.push(format!("{text}: {why}"));
            }
            texts.insert(text);
        }
        admin.close().await.unwrap();
    }
    println!("{} distinct policy predicates round-tripped", texts.len());
    assert!(texts.len() >= 10, "{texts:#?}");
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// Each policy predicate of schema `public`: its `pg_get_expr` text (read with an empty
/// search_path, as the mutants read it) and whether, parsed, printed and stored in its place
/// (rolled back), Postgres reads back the same text.
async fn round_trips(admin: &mut sqlx::PgConnection) -> Vec<(String, Result<(), String>)> {
    let mut tx = admin.begin().await.unwrap();
    sqlx::query("set local search_path = ''")
        .execute(&mut *tx)
        .await
        .unwrap();
    let rows: Vec<(String, String, String, Option<String>)> = sqlx::query_as(
        "select c.relname::text, p.polname::text, k.clause, \
                pg_get_expr(case k.clause when 'using' then p.polqual else p.polwithcheck end, p.polrelid) \
         from pg_policy p join pg_class c on c.oid = p.polrelid \
         join pg_namespace n on n.oid = c.relnamespace \
         cross join (values ('using'), ('with check')) k(clause) \
         where n.nspname = 'public' order by 1, 2, 3",
    )
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    let mut out = Vec::new();
    for (table, policy, clause, text) in rows {
        let Some(text) = text else { continue };
        let printed = match Expr::parse(&text).and_then(|e| e.deparse()) {
            Ok(printed) => printed,
            Err(e) => {
                out.push((text, Err(e.to_string())));
                continue;
            }
        };
        sqlx::query("savepoint trip")
            .execute(&mut *tx)
            .await
            .unwrap();
        let applied = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "alter policy {} on public.{} {clause} ({printed})",
            quote_ident(&policy),
            quote_ident(&table)
        )))
        .execute(&mut *tx)
        .await;
        let outcome = match applied {
            Err(e) => Err(format!("printed as `{printed}`, does not apply: {e}")),
            Ok(_) => {
                let after: Option<String> = sqlx::query_scalar(
                    "select pg_get_expr(case $2 when 'using' then p.polqual \
                     else p.polwithcheck end, p.polrelid) from pg_policy p \
                     where p.polrelid = $3::regclass and p.polname = $1",
                )
                .bind(&policy)
                .bind(&clause)
                .bind(format!("public.{}", quote_ident(&table)))
                .fetch_one(&mut *tx)
                .await
                .unwrap();
                match after {
                    Some(after) if after == text => Ok(()),
                    after => Err(format!("printed as `{printed}`, stored as `{after:?}`")),
                }
            }
        };
        sqlx::query("rollback to savepoint trip")
            .execute(&mut *tx)
            .await
            .unwrap();
        out.push((text, outcome));
    }
    tx.rollback().await.unwrap();
    out
}
