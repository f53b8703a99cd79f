//! Hostile tokens, table-driven from fixtures/tokens.json: each gets the status and body the
//! contract says, no row of anyone else is returned, and a refused token changes nothing.

use harness::TestDatabase;
use reqwest::Method;
use rls_suite::engine::tokens::cases;
use rls_suite::todos::matrix::{Observation, Owner};
use rls_suite::todos::sql::{Owners, reseed, snapshot};
use serde_json::json;

use crate::support::world;

#[tokio::test]
async fn every_hostile_token_gets_the_contracted_answer_and_no_rows() {
    let w = world();
    let db = TestDatabase::create().await.unwrap();
    let (app, api) = w.spawn_app(&db, 4).await;
    let owners = Owners::new(&w.fixtures).unwrap();
    let (a, b_id) = (w.clerk_user("alice"), owners.b.clone());
    let mut admin = db.admin_connection().await.unwrap();

    let mut table = vec![format!(
        "{:<52} | {:<6} | {:<24} | {:<9} | {}",
        "case", "status", "error", "sees", "unfiltered PATCH"
    )];
    let mut wrong = Vec::new();
    for case in cases().unwrap() {
        let authorization = case.authorization(&w.secret, &a, &b_id).unwrap();
        reseed(&mut admin, &w.fixtures, &owners).await.unwrap();
        let before = snapshot(&mut admin, &owners).await.unwrap();

        let read = api
            .request_with_authorization(
                Method::GET,
                "todos",
                "select=user_id",
                Some(&authorization),
                None,
                None,
            )
            .await
            .unwrap();
        let write = api
            .request_with_authorization(
                Method::PATCH,
                "todos",
                "",
                Some(&authorization),
                Some(&json!({ "title": "pwned" })),
                None,
            )
            .await
            .unwrap();
        let after = snapshot(&mut admin, &owners).await.unwrap();
        let changed = Observation::from_diff(&before, &after);

        let seen: Vec<Owner> = read
            .body
            .as_array()
            .map(|rows| {
                rows.iter()
                    .map(|r| owners.of(r["user_id"].as_str()))
                    .collect()
            })
            .unwrap_or_default();
        let error = read
            .body
            .get("error")
            .or_else(|| read.body.get("code"))
            .and_then(|v| v.as_str())
            .unwrap_or("");
        let status_ok = read.status.as_u16() == case.expect.status
            && case.expect.error.as_deref().is_none_or(|e| e == error);
        // Whatever the status, nobody else's row may be seen or changed.
        let foreign_seen = seen.iter().any(|o| *o != Owner::A);
        let foreign_changed = changed
            .updated
            .iter()
            .any(|(b, a)| *b != Owner::A || *a != Owner::A)
            || !changed.inserted.is_empty()
            || !changed.deleted.is_empty();
        let refused_but_wrote = !read.status.is_success() && !changed.updated.is_empty();
        if !status_ok || foreign_seen || foreign_changed || refused_but_wrote {
            wrong.push(format!(
                "{}: got {} {error} (expected {:?}), sees {seen:?}, changed {}",
                case.case,
                read.status,
                case.expect,
                changed.describe(&rls_suite::todos::matrix::Op::UpdateUnfiltered)
            ));
        }
        let sees = if read.status.is_success() {
            format!("{} rows", seen.len())
        } else {
            "-".into()
        };
        table.push(format!(
            "{:<52} | {:<6} | {:<24} | {:<9} | {} {}",
            case.case,
            read.status.as_u16(),
            error,
            sees,
            write.status.as_u16(),
            changed.describe(&rls_suite::todos::matrix::Op::UpdateUnfiltered)
        ));
    }
    drop(app);
    assert!(
        wrong.is_empty(),
        "tokens not handled as the contract says:\n{}",
        wrong.join("\n")
    );
    insta::assert_snapshot!("hostile_tokens", table.join("\n"));
}
