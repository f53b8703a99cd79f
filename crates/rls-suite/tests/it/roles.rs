//! Each membership role, one at a time (issue 21, item 2): a table whose rules name a role
//! (`member:<role>`) gets the write cells `insert/update/delete · as <role>` — the command on a
//! row whose project the actor holds exactly that role on, judged by the spec's rules.

use std::path::PathBuf;

use rls_suite::check::{self, CheckOptions, Subject};
use rls_suite::engine::{TableMatrix, Verdict};

fn example(dir: &str) -> PathBuf {
    let root = harness::state::workspace_root().join("examples/team-workspaces");
    if dir.is_empty() {
        root.join("access.toml")
    } else {
        root.join(dir).join("access.toml")
    }
}

/// The actors whose cell on `op` is a leak.
fn leaks(m: &TableMatrix, op: &str) -> Vec<String> {
    let row = m
        .ops
        .iter()
        .position(|o| o == op)
        .unwrap_or_else(|| panic!("no `{op}` row:\n{}", m.render()));
    m.actors
        .iter()
        .zip(&m.cells[row])
        .filter(|(_, c)| matches!(c.verdict, Verdict::Leak(_)))
        .map(|(a, _)| a.clone())
        .collect()
}

#[tokio::test]
async fn a_member_who_deletes_where_only_owners_may_fails_naming_the_as_member_cell() {
    let subject = Subject::load(&example("broken-role"), None).unwrap();
    let outcome = check::check(&subject, &CheckOptions::default())
        .await
        .unwrap();
    let tasks = outcome.report.table("tasks").unwrap();
    // Every user (the look-alikes are users too) holds `member` on some project (round-robin
    // seeding): each one's cell leaks.
    let users = ["ada", "ben", "cy", "lookalike-wildcard", "lookalike-padded"];
    assert_eq!(
        leaks(tasks, "delete · as member"),
        users,
        "{}",
        tasks.render()
    );
    assert!(
        leaks(tasks, "delete · as owner").is_empty(),
        "{}",
        tasks.render()
    );
    // Measured: the older cells catch this bug too (the forbidden row picked is one the actor
    // sees as a plain member; the unfiltered delete reaches every project they belong to). The
    // role cells add the name of the role that may write where it must not.
    assert_eq!(leaks(tasks, "delete · forbidden row"), users);
    assert_eq!(leaks(tasks, "delete · no filter"), users);
    assert_ne!(outcome.exit_code(None), 0);
}

#[tokio::test]
async fn the_role_cells_agree_with_the_example() {
    let subject = Subject::load(&example(""), None).unwrap();
    let outcome = check::check(&subject, &CheckOptions::default())
        .await
        .unwrap();
    let report = &outcome.report;
    let tasks = report.table("tasks").unwrap();
    let members = report.table("project_members").unwrap();
    // Role cells where a rule names a role (tasks.delete, project_members.insert/delete), for
    // every write command; none on projects or profiles, whose rules name no role.
    for m in [tasks, members] {
        for op in [
            "insert · as owner",
            "insert · as member",
            "update · as owner",
            "update · as member",
            "delete · as owner",
            "delete · as member",
        ] {
            assert!(m.ops.iter().any(|o| o == op), "{op}:\n{}", m.render());
        }
    }
    for t in ["projects", "profiles"] {
        let m = report.table(t).unwrap();
        assert!(
            !m.ops.iter().any(|o| o.contains(" · as ")),
            "{}",
            m.render()
        );
    }
    for m in &report.tables {
        for (op, row) in m.ops.iter().zip(&m.cells) {
            for (actor, cell) in m.actors.iter().zip(row) {
                assert_eq!(
                    cell.verdict,
                    Verdict::Ok,
                    "{} {op} {actor}:\n{}",
                    m.table,
                    m.render()
                );
            }
        }
    }
    let cell = |m: &TableMatrix, op: &str, actor: &str| {
        let row = m.ops.iter().position(|o| o == op).unwrap();
        let col = m.actors.iter().position(|a| a == actor).unwrap();
        m.cells[row][col].text.clone()
    };
    // An owner deletes a task of their project; a plain member cannot; an owner adds a member,
    // a plain member cannot; anon holds no role: n/a.
    assert!(
        cell(tasks, "delete · as owner", "ada").starts_with("deletes "),
        "{}",
        tasks.render()
    );
    assert!(
        !cell(tasks, "delete · as member", "ada").starts_with("deletes "),
        "{}",
        tasks.render()
    );
    assert!(
        cell(members, "insert · as owner", "ben").starts_with("inserts "),
        "{}",
        members.render()
    );
    assert!(
        !cell(members, "insert · as member", "ben").starts_with("inserts "),
        "{}",
        members.render()
    );
    assert_eq!(cell(tasks, "delete · as owner", "anon"), "n/a");
}
