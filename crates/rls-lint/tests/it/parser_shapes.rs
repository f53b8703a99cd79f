//! The lint reads policies as Postgres prints them (`pg_get_expr`), not as they were written:
//! fully parenthesised, casts spelt `::`, `LIKE` as `~~`, `ANY (ARRAY[…])`, wrapped calls as
//! `( SELECT f() AS f)`. Each shape its rules look at, written here as a team would, is stored
//! as a policy and read back: the print parses as one expression, and the lint reads it (no
//! `policy.unparsed`). The one print sqlparser refuses as it stands is a variadic call
//! (`jsonb_extract_path_text(x, VARIADIC ARRAY['sub'::text])`), which the lint unfolds first.

use harness::TestDatabase;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use sqlx::Connection;

use crate::support::{apply, lint};

const SHAPES: &[&str] = &[
    "user_id = (select public.requesting_user_id())",
    "user_id = public.requesting_user_id() or team = any (array['a', 'b'])",
    "user_id = (current_setting('request.jwt.claims', true)::json ->> 'sub')",
    "user_id = nullif(current_setting('request.jwt.claims', true), '')::jsonb #>> '{sub}'",
    "user_id = current_setting('request.jwt.claim.sub', true)",
    "user_id = (auth.jwt() -> 'app_metadata' ->> 'org')",
    "user_id = jsonb_extract_path_text(auth.jwt(), 'sub')",
    "lower(user_id) = lower(public.requesting_user_id())",
    "user_id ilike public.requesting_user_id()",
    "user_id like '%' || public.requesting_user_id()",
    "user_id ~* public.requesting_user_id()",
    "user_id::citext = public.requesting_user_id()::citext",
    "user_id = coalesce(public.requesting_user_id(), user_id)",
    "user_id = current_user or user_id = session_user",
    "auth.role() = 'authenticated' and public.requesting_user_id() is not null",
    "exists (select 1 from public.members m where m.team = t.team and m.user_id = public.requesting_user_id())",
    "team in (select m.team from public.members m where m.user_id = public.requesting_user_id())",
    "public.requesting_user_id() = any (select m.user_id from public.members m)",
    "case when auth.role() = 'anon' then false else user_id = public.requesting_user_id() end",
    "not (user_id <> public.requesting_user_id()) and body operator(pg_catalog.?) 'x'",
    "(body ->> 'owner') = public.requesting_user_id() and cast(body ->> 'n' as integer) > 0",
    "user_id = public.requesting_user_id() and created_at > now() - interval '1 day'",
    "user_id = public.requesting_user_id() and team is distinct from 'x' and id between 1 and 9",
    "true",
    "false",
];

#[tokio::test]
async fn every_printed_policy_shape_parses_and_is_linted() {
    let db = TestDatabase::create().await.unwrap();
    let mut sql = String::from(
        "CREATE EXTENSION IF NOT EXISTS citext;
         CREATE TABLE public.members (team text, user_id text);
         CREATE TABLE public.t (id bigint PRIMARY KEY, user_id text NOT NULL, team text,
           body jsonb, created_at timestamptz DEFAULT now());
         ALTER TABLE public.t ENABLE ROW LEVEL SECURITY;\n",
    );
    for (i, shape) in SHAPES.iter().enumerate() {
        sql.push_str(&format!(
            "CREATE POLICY p{i} ON public.t FOR SELECT TO authenticated USING ({shape});\n"
        ));
    }
    apply(&db, &sql).await;
    let mut conn = db.admin_connection().await.unwrap();
    let printed: Vec<(String, String)> = sqlx::query_as(
        "select polname::text, pg_get_expr(polqual, polrelid) from pg_policy \
         where polrelid = 'public.t'::regclass order by polname",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    conn.close().await.ok();
    assert_eq!(printed.len(), SHAPES.len());
    let refused: Vec<String> = printed
        .iter()
        .filter(|(_, text)| {
            !text.contains("VARIADIC ARRAY[")
                && Parser::new(&PostgreSqlDialect {})
                    .try_with_sql(text)
                    .and_then(|mut p| {
                        p.parse_expr()?;
                        p.expect_token(&sqlparser::tokenizer::Token::EOF)
                    })
                    .is_err()
        })
        .map(|(name, text)| format!("{name}: {text}"))
        .collect();
    assert!(refused.is_empty(), "{refused:#?}");
    let report = lint(&db).await;
    eprintln!("{}", report.render_text());
    let unparsed: Vec<&str> = report
        .findings
        .iter()
        .filter(|f| f.rule == "policy.unparsed")
        .map(|f| f.why.as_str())
        .collect();
    assert!(unparsed.is_empty(), "{unparsed:#?}");
    // The reading is used, not only done: the variadic print reads `sub`, so it is an owner
    // comparison; shapes with a known rule are reported by it.
    assert!(
        !report
            .findings
            .iter()
            .any(|f| f.object == "policy p6 on public.t" && f.rule == "policy.not_owner_scoped"),
        "{}",
        report.render_text()
    );
    for (rule, policy) in [
        ("policy.case_insensitive_id", "p7"),
        ("policy.case_insensitive_id", "p8"),
        ("policy.caller_id_fallback", "p12"),
        ("policy.role_as_user", "p13"),
        ("policy.uncorrelated_membership", "p17"),
        ("claims.unavailable_claim", "p5"),
        ("policy.unwrapped_call", "p1"),
    ] {
        let object = format!("policy {policy} on public.t");
        assert!(
            report
                .findings
                .iter()
                .any(|f| f.rule == rule && f.object == object),
            "{rule} on {object}:\n{}",
            report.render_text()
        );
    }
}
