//! `[accept]` in the access spec: known findings, each with a reason, reported apart and not
//! failing the check; an entry that matches nothing reported stale; an entry naming what the
//! spec lacks refused by file, line and key.

use std::path::{Path, PathBuf};

use harness::{Migrations, TestDatabase};
use rls_suite::engine::{self, BoundSpec, CheckReport, RunOptions};
use rls_suite::spec::Spec;
use sqlx::Connection;

fn example() -> PathBuf {
    harness::state::workspace_root().join("examples/team-workspaces")
}

fn spec_with(accept: &str) -> Spec {
    let path = example().join("access.toml");
    let text = std::fs::read_to_string(&path).unwrap() + "\n[accept]\n" + accept;
    Spec::parse(&path, &text).unwrap()
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

/// The example with one intended rule broken by hand: any member deletes tasks.
async fn broken_database() -> TestDatabase {
    let migrations = Migrations::from_dir(&example().join("migrations")).unwrap();
    let db = TestDatabase::migrated(&migrations).await.unwrap();
    let mut admin = db.admin_connection().await.unwrap();
    sqlx::raw_sql(
        "alter policy tasks_delete on public.tasks \
         using (public.project_role(project_id) is not null)",
    )
    .execute(&mut admin)
    .await
    .unwrap();
    admin.close().await.unwrap();
    db
}

#[tokio::test]
async fn accepted_leaks_pass_the_check_and_are_reported_with_their_reason() {
    let db = broken_database().await;
    let plain = Spec::load(&example().join("access.toml")).unwrap();
    let report = check(&plain, &db).await;
    let leaks = report.leaks();
    assert!(!leaks.is_empty(), "{}", report.render());
    assert!(
        leaks.iter().all(|l| l.starts_with("[tasks] delete")),
        "{leaks:#?}"
    );
    assert_eq!(report.accepted(), Vec::<String>::new());

    let spec = spec_with(
        "\"tasks.delete.*.*\" = \"fixing in #123: members may delete until the owner check lands\"\n\
         \"profiles.select.anon\" = \"nothing leaks here any more\"\n",
    );
    let report = check(&spec, &db).await;
    let text = report.render();
    assert_eq!(report.leaks(), Vec::<String>::new(), "{text}");
    assert_eq!(report.lost_access(), Vec::<String>::new(), "{text}");
    let accepted = report.accepted();
    assert_eq!(accepted.len(), leaks.len(), "{accepted:#?}");
    assert!(
        accepted.iter().all(|a| a.starts_with("[tasks] delete")
            && a.contains("LEAK: ")
            && a.ends_with(
                "(accepted: fixing in #123: members may delete until the owner check lands)"
            )),
        "{accepted:#?}"
    );
    assert!(
        text.contains("accepted findings (they do not fail the check):\n  ACCEPTED [tasks] delete"),
        "{text}"
    );
    let stale = report.stale_accepts();
    assert_eq!(stale.len(), 1, "{stale:?}");
    assert!(
        stale[0].ends_with("\"profiles.select.anon\" matches no finding"),
        "{stale:?}"
    );
    assert!(text.contains("STALE line "), "{text}");
    let json = report.to_json();
    assert_eq!(json["leaks"].as_array().map(Vec::len), Some(0));
    assert_eq!(json["accepted"].as_array().map(Vec::len), Some(leaks.len()));
}

#[test]
fn an_entry_naming_what_the_spec_lacks_is_refused_by_file_line_and_key() {
    let path = Path::new("examples/team-workspaces/access.toml");
    let base = std::fs::read_to_string(example().join("access.toml")).unwrap() + "\n[accept]\n";
    let line = base.lines().count() + 1;
    for (entry, message) in [
        (
            "\"taskz.delete.forbidden_row.cy\" = \"x\"",
            "no table of this spec is `taskz`",
        ),
        (
            "\"tasks.remove.forbidden_row.cy\" = \"x\"",
            "no operation of tasks is `remove.forbidden_row`",
        ),
        (
            "\"tasks.delete.forbidden_row.cyy\" = \"x\"",
            "no actor is `cyy`",
        ),
        (
            "\"tasks.cy\" = \"x\"",
            "write the key as `table.operation.actor`",
        ),
        (
            "\"tasks.delete.forbidden_row.cy\" = \" \"",
            "say why the finding is accepted",
        ),
    ] {
        let err = Spec::parse(path, &format!("{base}{entry}\n"))
            .unwrap_err()
            .to_string();
        let key = entry.split('"').nth(1).unwrap();
        assert!(
            err.starts_with(&format!(
                "examples/team-workspaces/access.toml:{line}: accept.{key}: "
            )) && err.contains(message),
            "{entry}: {err}"
        );
    }
    // Globs and select-via operations are keys too.
    let spec = spec_with(
        "\"*.select_via_x.anon\" = \"a view\"\n\"tasks.hand_over_project_id.*.ben\" = \"y\"\n",
    );
    assert_eq!(spec.accept.len(), 2);
    assert_eq!(spec.accept[1].operation, "hand_over_project_id.*");
}
