//! A rough performance sanity check: lint a database with 200 policy-protected tables and print
//! how long it took. It asserts only that the result is right, never on time.

use std::fmt::Write as _;
use std::time::Instant;

use harness::TestDatabase;

use crate::support::{apply, lint};

#[tokio::test]
async fn lints_two_hundred_tables() {
    const TABLES: usize = 200;
    let db = TestDatabase::create().await.unwrap();
    let mut sql = String::new();
    for i in 0..TABLES {
        let t = format!("public.items_{i:03}");
        let owner = "user_id = (SELECT public.requesting_user_id())";
        write!(
            sql,
            "CREATE TABLE {t} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
               user_id text NOT NULL DEFAULT public.requesting_user_id(), body text);
             CREATE INDEX ON {t} (user_id);
             ALTER TABLE {t} ENABLE ROW LEVEL SECURITY; ALTER TABLE {t} FORCE ROW LEVEL SECURITY;
             GRANT SELECT, INSERT, UPDATE, DELETE ON {t} TO anon, authenticated;
             CREATE POLICY p_select ON {t} FOR SELECT TO authenticated USING ({owner});
             CREATE POLICY p_insert ON {t} FOR INSERT TO authenticated WITH CHECK ({owner});
             CREATE POLICY p_update ON {t} FOR UPDATE TO authenticated USING ({owner}) WITH CHECK ({owner});
             CREATE POLICY p_delete ON {t} FOR DELETE TO authenticated USING ({owner});\n"
        )
        .unwrap();
    }
    apply(&db, &sql).await;
    let started = Instant::now();
    let report = lint(&db).await;
    let took = started.elapsed();
    println!(
        "rls-lint: {} tables ({} policies) linted in {} ms",
        TABLES + 1,
        TABLES * 4 + 4,
        took.as_millis()
    );
    assert!(report.findings.is_empty(), "{}", report.render_text());
}
