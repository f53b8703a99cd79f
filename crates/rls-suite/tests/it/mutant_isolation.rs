//! The mutants share one seeded database per session: each is applied in a savepoint, judged
//! there and rolled back. Proven here: the order they run in changes no verdict, the database
//! is left as it was (catalog and rows, by checksum), and a mutant that does not apply, whose
//! cell loops past the statement timeout or raises, is settled on its own — the next one starts
//! clean.

use std::time::{Duration, Instant};

use harness::{Migrations, TestDatabase};
use rls_suite::check::MutationOptions;
use rls_suite::engine::{BoundSpec, RunOptions};
use rls_suite::mutation::{self, Mutant, MutationReport, Outcome};
use rls_suite::spec::Spec;
use sqlx::{Connection, PgConnection};

/// The example's database with a table outside the spec holding a row (its rows are in the
/// checksum too), its spec, bound.
async fn example() -> (TestDatabase, BoundSpec) {
    let dir = harness::state::workspace_root().join("examples/team-workspaces");
    let migrations = Migrations::from_dir(&dir.join("migrations")).unwrap();
    let db = TestDatabase::migrated(&migrations).await.unwrap();
    let mut admin = db.admin_connection().await.unwrap();
    sqlx::raw_sql(
        "create table public.audit (id serial primary key, note text); \
         insert into public.audit (note) values ('kept')",
    )
    .execute(&mut admin)
    .await
    .unwrap();
    let spec = Spec::load(&dir.join("access.toml")).unwrap();
    let bound = BoundSpec::bind(&spec, &mut admin).await.unwrap();
    admin.close().await.unwrap();
    (db, bound)
}

/// An md5 over what a mutant can change: policies, the tables' RLS flags, owners and grants,
/// every function of the app's schemas (source, owner, grants, SECURITY DEFINER), the views,
/// and every row of every table of `public`, ordered.
async fn checksum(admin: &mut PgConnection) -> String {
    let tables: Vec<String> = sqlx::query_scalar(
        "select format('%I.%I', n.nspname, c.relname) from pg_class c \
         join pg_namespace n on n.oid = c.relnamespace \
         where n.nspname = 'public' and c.relkind = 'r' order by 1",
    )
    .fetch_all(&mut *admin)
    .await
    .unwrap();
    let rows = tables
        .iter()
        .map(|t| {
            format!(
                "select '{t} ' || coalesce(string_agg(to_jsonb(x)::text, ',' order by to_jsonb(x)::text), '') \
                 from {t} x"
            )
        })
        .collect::<Vec<_>>()
        .join(" union all ");
    let sql = format!(
        "select md5(string_agg(line, E'\\n' order by line)) from (
           select format('policy %s %s %s %s %s %s %s', polrelid::regclass, polname, polcmd,
                         polpermissive, polroles::regrole[], pg_get_expr(polqual, polrelid),
                         pg_get_expr(polwithcheck, polrelid)) from pg_policy
           union all
           select format('class %s %s %s %s %s %s', c.oid::regclass, c.relkind, c.relrowsecurity,
                         c.relforcerowsecurity, c.relowner::regrole, c.relacl)
           from pg_class c join pg_namespace n on n.oid = c.relnamespace
           where n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast')
           union all
           select format('proc %s %s %s %s %s', p.oid::regprocedure, p.prosecdef,
                         p.proowner::regrole, p.proacl, md5(p.prosrc))
           from pg_proc p join pg_namespace n on n.oid = p.pronamespace
           where n.nspname not in ('pg_catalog', 'information_schema')
           union all
           {rows}
         ) all_lines(line)"
    );
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(&mut *admin)
        .await
        .unwrap()
}

async fn judge(
    bound: &BoundSpec,
    db: &TestDatabase,
    list: Vec<Mutant>,
    jobs: usize,
    cell_timeout: Option<Duration>,
) -> MutationReport {
    let lint = rls_lint::LintOptions {
        app_role: Some(db.app_target().user.clone()),
        ..Default::default()
    };
    let opts = RunOptions {
        cell_timeout,
        ..RunOptions::default()
    };
    mutation::run(bound, db, list, opts, &lint, &MutationOptions { jobs })
        .await
        .unwrap()
}

/// An outcome without the row a verdict names (seed keys are random per session, and a
/// verdict names the first row of a set ordered by them): the kind, the cell and the actor.
fn settled(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Killed(by) => {
            let cell = by.split(" of ").next().unwrap_or(by);
            format!("killed {cell}")
        }
        Outcome::Survived => "survived".into(),
        Outcome::Equivalent(why) => format!("equivalent {why}"),
        Outcome::NotRun(why) => format!("not run {why}"),
    }
}

fn by_id(report: &MutationReport) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = report
        .results
        .iter()
        .map(|(m, o)| (m.id.clone(), settled(o)))
        .collect();
    out.sort();
    out
}

/// A fixed shuffle (a linear congruential sequence): the same "random" order on every run.
fn shuffled<T>(mut items: Vec<T>) -> Vec<T> {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    for i in (1..items.len()).rev() {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let j = usize::try_from(state >> 33).unwrap() % (i + 1);
        items.swap(i, j);
    }
    items
}

#[tokio::test]
async fn mutants_in_any_order_judge_alike_and_leave_the_database_as_it_was() {
    let (db, bound) = example().await;
    let mut admin = db.admin_connection().await.unwrap();
    let all = mutation::generate(&bound, &mut admin).await.unwrap();
    // Every table, function and reader mutant, and a spread of the policy ones.
    let list: Vec<Mutant> = all
        .into_iter()
        .enumerate()
        .filter(|(i, m)| {
            i % 4 == 0
                || m.kind().is_some_and(|k| {
                    k.family() != mutation::Family::Clause
                        && k.family() != mutation::Family::Expression
                })
        })
        .map(|(_, m)| m)
        .collect();
    assert!(list.len() >= 40, "{}", list.len());
    let before = checksum(&mut admin).await;
    admin.close().await.unwrap();

    let in_order = judge(&bound, &db, list.clone(), 2, None).await;
    let reversed = judge(&bound, &db, list.iter().rev().cloned().collect(), 1, None).await;
    let random = judge(&bound, &db, shuffled(list.clone()), 2, None).await;

    let mut admin = db.admin_connection().await.unwrap();
    let after = checksum(&mut admin).await;
    admin.close().await.unwrap();
    assert_eq!(before, after, "the mutants left something behind");
    let expected = by_id(&in_order);
    assert!(
        expected.iter().all(|(_, o)| o.starts_with("killed ")),
        "{}",
        in_order.render()
    );
    assert_eq!(by_id(&reversed), expected, "reversed");
    assert_eq!(by_id(&random), expected, "shuffled");
}

#[tokio::test]
async fn a_mutant_that_breaks_is_settled_alone_and_the_next_starts_clean() {
    let (db, bound) = example().await;
    let mut admin = db.admin_connection().await.unwrap();
    let before = checksum(&mut admin).await;
    let real: Vec<Mutant> = mutation::generate(&bound, &mut admin)
        .await
        .unwrap()
        .into_iter()
        .filter(|m| {
            [
                "profiles.profiles_update.using_true",
                "profiles.table.disable_rls",
            ]
            .contains(&m.id.as_str())
        })
        .collect();
    admin.close().await.unwrap();
    assert_eq!(real.len(), 2);
    let made = |id: &str, sql: &str| Mutant {
        id: id.into(),
        table: "profiles".into(),
        operator: "made",
        sql: sql.into(),
        not_run: None,
    };
    let list = vec![
        made(
            "profiles.profiles_select.does_not_apply",
            "create policy extra on public.profiles for select using (true); \
             alter policy no_such_policy on public.profiles using (true)",
        ),
        real[0].clone(),
        made(
            "profiles.profiles_select.loops",
            "create function public.spin() returns boolean language plpgsql as \
             $$ begin loop end loop; end $$; \
             alter policy profiles_select on public.profiles using (public.spin())",
        ),
        made(
            "profiles.profiles_select.raises",
            "create function public.boom() returns boolean language plpgsql as \
             $$ begin raise exception 'boom'; end $$; \
             alter policy profiles_select on public.profiles using (public.boom())",
        ),
        real[1].clone(),
    ];
    let started = Instant::now();
    let report = judge(&bound, &db, list, 1, Some(Duration::from_millis(300))).await;
    let took = started.elapsed();
    println!("{}\n{took:?}", report.render());
    let outcome = |id: &str| {
        report
            .results
            .iter()
            .find(|(m, _)| m.id == id)
            .map(|(_, o)| o.clone())
            .unwrap()
    };
    assert!(
        matches!(outcome("profiles.profiles_select.does_not_apply"),
            Outcome::NotRun(why) if why.starts_with("it does not apply") && why.contains("no_such_policy")),
        "{}",
        report.render()
    );
    assert!(
        matches!(outcome("profiles.profiles_select.loops"),
            Outcome::NotRun(why) if why.contains("statement timeout")),
        "{}",
        report.render()
    );
    // A statement the server refuses is what a cell observes (the savepoint takes it back).
    assert!(
        matches!(outcome("profiles.profiles_select.raises"),
            Outcome::Killed(by) if by.starts_with("[profiles] select") && by.contains("P0001")),
        "{}",
        report.render()
    );
    // The loop cost its timeout, not more.
    assert!(took < Duration::from_secs(30), "{took:?}");
    // The real mutants after each broken one are judged as they are alone.
    let alone = judge(&bound, &db, real.clone(), 1, None).await;
    for m in &real {
        let other = alone.results.iter().find(|(a, _)| a.id == m.id).unwrap();
        assert_eq!(settled(&outcome(&m.id)), settled(&other.1), "{}", m.id);
    }
    let mut admin = db.admin_connection().await.unwrap();
    assert_eq!(checksum(&mut admin).await, before);
    admin.close().await.unwrap();
}
