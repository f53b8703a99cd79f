//! The claims travel as a string literal (`BEGIN` and the identity go in one simple query,
//! which has no parameters): whatever the text, Postgres must read back exactly it, with
//! `standard_conforming_strings` on or off.

use harness::TestDatabase;
use pg_identity::quote_literal;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use sqlx::{AssertSqlSafe, Row};

/// Text heavy in what breaks quoting: quotes, backslashes, `$`, `;`, `--`, newlines, unicode.
fn hostile_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("'".to_owned()),
        Just("\\".to_owned()),
        Just("''".to_owned()),
        Just("\\'".to_owned()),
        Just("$$".to_owned()),
        Just("; select 1; --".to_owned()),
        Just("\n".to_owned()),
        Just("\"sub\":".to_owned()),
        "[^\\x00]{0,8}",
    ];
    proptest::collection::vec(piece, 0..12).prop_map(|v| v.concat())
}

#[tokio::test]
async fn every_text_reads_back_exactly() {
    let db = TestDatabase::create().await.unwrap();
    let mut conn = db.admin_connection().await.unwrap();
    for conforming in ["on", "off"] {
        sqlx::raw_sql(AssertSqlSafe(format!(
            "set standard_conforming_strings = {conforming}"
        )))
        .execute(&mut conn)
        .await
        .unwrap();
        // Generated up front (the checks are async); a failure prints the literal.
        let mut runner = TestRunner::new(Config::default());
        let cases: Vec<String> = (0..200)
            .map(|_| hostile_text().new_tree(&mut runner).unwrap().current())
            .collect();
        for text in cases {
            let literal = quote_literal(&text).unwrap();
            // The simple query protocol, as `begin_with` sends it.
            let row = sqlx::raw_sql(AssertSqlSafe(format!("select {literal}::text as t")))
                .fetch_one(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{literal} (conforming {conforming}): {e}"));
            let back: String = row.get("t");
            assert_eq!(back, text, "literal {literal} (conforming {conforming})");
        }
    }
}
