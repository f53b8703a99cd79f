//! Turns a parsed request into one SQL statement plus its bind values. Pure, like the parser.
//! Identifiers come only from the schema snapshot ([`crate::schema`], quoted there); every
//! client value is a `$n` parameter, cast to the column's catalog type (`$n::<type>`) so that
//! Postgres decides what a valid value is.
//!
//! Every statement has the same result shape, one row: `total bigint` (the exact count when
//! asked, else NULL), `page_count bigint` (rows read or written) and `body text` (the rows as a
//! JSON array when a body is wanted, else NULL). The work happens in a CTE named
//! `pgrst_source` (as PostgREST names it); a data-modifying CTE runs exactly once, however
//! often the outer query reads it.

use std::fmt::Write as _;

use crate::body::InsertBody;
use crate::prefer::Resolution;
use crate::query_string::{Direction, Filter, LogicTree, Nulls, Op, OrderTerm, Query};
use crate::schema::{ColumnId, Relation};

/// A value sent alongside the SQL text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bind {
    /// Text that SQL casts to the column's type; `None` is NULL.
    Text(Option<String>),
    /// An `in.(…)` list, cast element-wise in SQL.
    TextArray(Vec<String>),
    BigInt(i64),
}

/// SQL text and the values for its `$1…$n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub sql: String,
    pub binds: Vec<Bind>,
}

/// What the statement does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Read,
    Insert(InsertBody),
    /// `POST` with `Prefer: resolution=…`: an insert that conflicts on `conflict` (never empty).
    Upsert {
        body: InsertBody,
        resolution: Resolution,
        conflict: Vec<ColumnId>,
    },
    /// Columns to set, with their new values as text (`None` sets NULL).
    Update(Vec<(ColumnId, Option<String>)>),
    Delete,
}

/// What the response needs from the statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Want {
    /// The rows as JSON (`return=representation`, or any read).
    pub body: bool,
    /// The exact number of matching rows regardless of limit/offset (`count=exact` on a read).
    pub total: bool,
}

const ALIAS: &str = "_t";

struct Builder<'a> {
    relation: &'a Relation,
    binds: Vec<Bind>,
}

impl Builder<'_> {
    fn param(&mut self, bind: Bind) -> String {
        self.binds.push(bind);
        format!("${}", self.binds.len())
    }

    fn filter(&mut self, filter: &Filter) -> String {
        let column = self.relation.column(filter.column);
        let col = format!("{ALIAS}.{}", column.sql());
        let ty = column.sql_type();
        let expr = match &filter.op {
            Op::Cmp(op, value) => {
                let p = self.param(Bind::Text(Some(value.clone())));
                format!("{col} {} {p}::{ty}", op.sql())
            }
            // The pattern is text whatever the column: Postgres rejects `like` on a
            // non-text column itself (42883), which is what PostgREST shows too.
            Op::Like {
                case_insensitive,
                pattern,
            } => {
                let p = self.param(Bind::Text(Some(pattern.clone())));
                let op = if *case_insensitive { "ilike" } else { "like" };
                format!("{col} {op} {p}::text")
            }
            Op::In(items) => {
                let p = self.param(Bind::TextArray(items.clone()));
                format!("{col} = any({p}::text[]::{ty}[])")
            }
            Op::Is(value) => format!("{col} is {}", value.sql()),
        };
        if filter.negated {
            format!("not ({expr})")
        } else {
            expr
        }
    }

    /// A logic tree as PostgREST writes it: `[not ](a or b …)`, each leaf a filter
    /// (`pgFmtLogicTree`, `src/PostgREST/Query/SqlFragment.hs`). Values are binds as for any
    /// filter; the depth is bounded by the parser.
    fn logic(&mut self, tree: &LogicTree) -> String {
        match tree {
            LogicTree::Filter(filter) => self.filter(filter),
            LogicTree::Expr {
                negated,
                op,
                children,
            } => {
                let inner = children
                    .iter()
                    .map(|c| self.logic(c))
                    .collect::<Vec<_>>()
                    .join(op.sql());
                if *negated {
                    format!("not ({inner})")
                } else {
                    format!("({inner})")
                }
            }
        }
    }

    /// The column filters, then the `or`/`and` trees, all ANDed — PostgREST's logic forest
    /// (`addLogicTrees` / `resolveLogicTree` and the `combinedLogic` of mutations in
    /// `src/PostgREST/Plan.hs`; joined with ` AND ` by `readPlanToQuery` / `mutatePlanToQuery`,
    /// `src/PostgREST/Query/QueryBuilder.hs`).
    fn where_clause(&mut self, query: &Query) -> String {
        if query.filters.is_empty() && query.logic.is_empty() {
            // No filter at all is allowed on every method: RLS alone decides which rows.
            return "true".to_owned();
        }
        let mut parts: Vec<String> = query.filters.iter().map(|f| self.filter(f)).collect();
        for tree in &query.logic {
            let sql = self.logic(tree);
            parts.push(sql);
        }
        parts.join(" and ")
    }
}

fn column_list(relation: &Relation, columns: &[ColumnId], qualifier: Option<&str>) -> String {
    columns
        .iter()
        .map(|&c| match qualifier {
            Some(q) => format!("{q}.{}", relation.column(c).sql()),
            None => relation.column(c).sql().to_owned(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn order_clause(relation: &Relation, order: &[OrderTerm], qualifier: Option<&str>) -> String {
    if order.is_empty() {
        return String::new();
    }
    let terms = order
        .iter()
        .map(|t| {
            let column = relation.column(t.column).sql();
            let mut s = match qualifier {
                Some(q) => format!("{q}.{column}"),
                None => column.to_owned(),
            };
            match t.direction {
                Some(Direction::Asc) => s.push_str(" asc"),
                Some(Direction::Desc) => s.push_str(" desc"),
                None => {}
            }
            match t.nulls {
                Some(Nulls::First) => s.push_str(" nulls first"),
                Some(Nulls::Last) => s.push_str(" nulls last"),
                None => {}
            }
            s
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!(" order by {terms}")
}

/// `insert into … select … from json_populate_recordset(…)` for `body`, `filter` appended to
/// the select (PostgREST's counter for an upsert).
fn insert_select(b: &mut Builder<'_>, table: &Relation, body: &InsertBody, filter: &str) -> String {
    let tbl = table.sql();
    let p = b.param(Bind::Text(Some(body.rows_json.clone())));
    // With no columns, `insert … select from …` (a zero-column select) gives each row all
    // defaults; `()` would be a syntax error.
    let (target, values) = if body.columns.is_empty() {
        (String::new(), String::new())
    } else {
        let cols = column_list(table, &body.columns, None);
        (format!(" ({cols})"), format!(" {cols}"))
    };
    format!(
        "insert into {tbl} as {ALIAS}{target} select{values} \
         from json_populate_recordset(null::{tbl}, {p}::json){filter}"
    )
}

/// PostgREST's `addConfigPgrstInserted`: a condition that is always true and counts.
fn inserted_counter(add: bool) -> String {
    let (symbol, never) = if add { ("+", "0") } else { ("-", "-1") };
    format!(
        "pg_catalog.set_config('pgrst.inserted', (coalesce(nullif(pg_catalog.current_setting('pgrst.inserted', true), '')::int, 0) {symbol} 1)::text, true) <> '{never}'"
    )
}

/// The rows as a JSON array with embedded resources, as PostgREST builds them: a to-many embed
/// is a correlated `json_agg` subquery (`'[]'` when empty), a to-one embed the one related
/// row as an object or null (`getJoinSelects` / `getJoins`, `Query/QueryBuilder.hs`). Each runs
/// as the caller, so RLS applies to every embedded table. The embed's key (client text, maybe
/// an alias) is a bind. Embeds are `jsonb`, as PostgREST casts them (`json_agg(…)::jsonb`,
/// `row_to_json(…)::jsonb`), and rows are separated as `json_agg` separates them. The row's text is the columns' `row_to_json` with `,"key":value`
/// pairs appended, so column order is kept without naming anything from the client in SQL.
fn embedding_body(b: &mut Builder<'_>, table: &Relation, query: &Query) -> String {
    let mut row = if query.select.is_empty() {
        "'{'".to_owned()
    } else {
        "left(row_to_json(_c)::text, -1)".to_owned()
    };
    for (i, embed) in query.embeds.iter().enumerate() {
        let key = b.param(Bind::Text(Some(embed.key.clone())));
        let target = &embed.target;
        let columns = column_list(target, &embed.select, Some("_e0"));
        let join = embed
            .relationship
            .join
            .iter()
            .map(|&(origin, other)| {
                format!(
                    "_e0.{} = _s.{}",
                    target.column(other).sql(),
                    table.column(origin).sql()
                )
            })
            .collect::<Vec<_>>()
            .join(" and ");
        let rows = format!("select {columns} from {} as _e0 where {join}", target.sql());
        let value = if embed.relationship.to_one {
            format!("(select row_to_json(_e)::jsonb from ({rows}) as _e)")
        } else {
            format!("(select coalesce(json_agg(_e)::jsonb, '[]') from ({rows}) as _e)")
        };
        let comma = if i == 0 && query.select.is_empty() {
            ""
        } else {
            "','"
        };
        if comma.is_empty() {
            let _ = write!(
                row,
                " || to_json({key}::text)::text || ':' || coalesce({value}::text, 'null')"
            );
        } else {
            let _ = write!(
                row,
                " || {comma} || to_json({key}::text)::text || ':' || coalesce({value}::text, 'null')"
            );
        }
    }
    row.push_str(" || '}'");
    let columns = if query.select.is_empty() {
        String::new()
    } else {
        format!(
            " cross join lateral (select {}) as _c",
            column_list(table, &query.select, Some("_s"))
        )
    };
    format!(
        "(select coalesce('[' || string_agg(_x._j, ', ' || chr(10) || ' ') || ']', '[]') from (select {row} as _j from pgrst_source as _s{columns}{}) as _x)",
        order_clause(table, &query.order, Some("_s"))
    )
}

/// Builds the one statement for `action` on `table`.
pub fn build(table: &Relation, action: &Action, query: &Query, want: Want) -> Statement {
    let mut b = Builder {
        relation: table,
        binds: Vec::new(),
    };
    let tbl = table.sql();
    let all: Vec<ColumnId> = table.column_ids().collect();
    let returning = column_list(table, &all, Some(ALIAS));
    // As PostgREST: a write that returns no representation says `returning 1`, which reads no
    // column. Naming columns would make Postgres apply the SELECT policies to the rows written
    // as well, and a broken UPDATE/DELETE policy would hide behind a correct SELECT one.
    let write_returning = if want.body {
        returning.clone()
    } else {
        "1".to_owned()
    };

    let mut sql = String::from("with pgrst_source as (");
    let mut total = "null::bigint".to_owned();
    match action {
        Action::Read => {
            let filters = b.where_clause(query);
            let _ = write!(
                sql,
                "select {returning} from {tbl} as {ALIAS} where {filters}{}",
                order_clause(table, &query.order, Some(ALIAS))
            );
            if let Some(limit) = query.limit {
                let p = b.param(Bind::BigInt(limit));
                let _ = write!(sql, " limit {p}::bigint");
            }
            if let Some(offset) = query.offset {
                let p = b.param(Bind::BigInt(offset));
                let _ = write!(sql, " offset {p}::bigint");
            }
            if want.total {
                // Same filters, same parameters: the count sees exactly what the page sees.
                total = format!("(select count(*) from {tbl} as {ALIAS} where {filters})");
            }
        }
        Action::Insert(body) => {
            let insert = insert_select(&mut b, table, body, "");
            let _ = write!(sql, "{insert} returning {write_returning}");
        }
        // As PostgREST writes an upsert (`mutatePlanToQuery (Insert …)`,
        // `src/PostgREST/Query/QueryBuilder.hs`): `ON CONFLICT (key) DO UPDATE SET c = EXCLUDED.c`
        // for every column sent (`DO NOTHING` when none is), and for merge-duplicates the
        // `pgrst.inserted` counter (`addConfigPgrstInserted`, `SqlFragment.hs`) — +1 per row
        // offered, −1 per row updated — which tells 201 (something inserted) from 200. An
        // update of a row the caller's UPDATE policy hides fails in Postgres (42501).
        Action::Upsert {
            body,
            resolution,
            conflict,
        } => {
            let merge = *resolution == Resolution::MergeDuplicates;
            let counted = if merge {
                format!(" where {}", inserted_counter(true))
            } else {
                String::new()
            };
            let insert = insert_select(&mut b, table, body, &counted);
            let key = column_list(table, conflict, None);
            let action = if merge && !body.columns.is_empty() {
                let set = body
                    .columns
                    .iter()
                    .map(|&c| {
                        let col = table.column(c).sql();
                        format!("{col} = excluded.{col}")
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                format!("do update set {set} where {}", inserted_counter(false))
            } else {
                "do nothing".to_owned()
            };
            let _ = write!(
                sql,
                "{insert} on conflict ({key}) {action} returning {write_returning}"
            );
            if merge {
                total = "coalesce(nullif(pg_catalog.current_setting('pgrst.inserted', true), '')::bigint, 0)".to_owned();
            }
        }
        Action::Update(set) => {
            let assignments = set
                .iter()
                .map(|(c, v)| {
                    let p = b.param(Bind::Text(v.clone()));
                    let column = table.column(*c);
                    format!("{} = {p}::{}", column.sql(), column.sql_type())
                })
                .collect::<Vec<_>>()
                .join(", ");
            let filters = b.where_clause(query);
            let _ = write!(
                sql,
                "update {tbl} as {ALIAS} set {assignments} where {filters} returning {write_returning}"
            );
        }
        Action::Delete => {
            let filters = b.where_clause(query);
            let _ = write!(
                sql,
                "delete from {tbl} as {ALIAS} where {filters} returning {write_returning}"
            );
        }
    }
    let body = if want.body && !query.embeds.is_empty() {
        embedding_body(&mut b, table, query)
    } else if want.body {
        format!(
            "(select coalesce(json_agg(_r), '[]'::json)::text from (select {} from pgrst_source{}) as _r)",
            column_list(table, &query.select, None),
            order_clause(table, &query.order, None)
        )
    } else {
        "null::text".to_owned()
    };
    let page_count = "(select count(*) from pgrst_source)";
    if matches!(action, Action::Upsert { .. }) {
        // The counter is read after the CTE has run: the select list is evaluated in order.
        let _ = write!(
            sql,
            ") select {page_count} as page_count, {total} as total, {body} as body"
        );
    } else {
        let _ = write!(
            sql,
            ") select {total} as total, {page_count} as page_count, {body} as body"
        );
    }
    Statement {
        sql,
        binds: b.binds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::{parse_insert_body, parse_patch_body};
    use crate::parse_error::ParseError;
    use crate::prefer::Resolution;
    use crate::query_string::parse_query;
    use crate::schema::fixture::todos;

    const READ_ALL: Want = Want {
        body: true,
        total: false,
    };

    fn read(raw: &str, want: Want) -> Statement {
        build(
            &todos(),
            &Action::Read,
            &parse_query(&todos(), Some(raw)).unwrap(),
            want,
        )
    }

    #[test]
    fn plain_read() {
        let s = read("", READ_ALL);
        assert_eq!(
            s.sql,
            r#"with pgrst_source as (select _t."id", _t."user_id", _t."title", _t."is_complete", _t."created_at" from "public"."todos" as _t where true) select null::bigint as total, (select count(*) from pgrst_source) as page_count, (select coalesce(json_agg(_r), '[]'::json)::text from (select "id", "user_id", "title", "is_complete", "created_at" from pgrst_source) as _r) as body"#
        );
        assert!(s.binds.is_empty());
    }

    #[test]
    fn filters_order_limit_and_count_share_parameters() {
        let s = read(
            "select=title&title=not.like.*a*&id=in.(x,y)&is_complete=is.null&created_at=gte.2024&order=created_at.desc.nullslast,title&limit=10&offset=5",
            Want {
                body: true,
                total: true,
            },
        );
        assert!(s.sql.contains(r#"where not (_t."title" like $1::text) and _t."id" = any($2::text[]::uuid[]) and _t."is_complete" is null and _t."created_at" >= $3::timestamp with time zone order by _t."created_at" desc nulls last, _t."title" limit $4::bigint offset $5::bigint"#), "{}", s.sql);
        assert!(s.sql.contains(r#"(select count(*) from "public"."todos" as _t where not (_t."title" like $1::text) and _t."id" = any($2::text[]::uuid[]) and _t."is_complete" is null and _t."created_at" >= $3::timestamp with time zone) as total"#), "{}", s.sql);
        assert!(s.sql.contains(r#"(select "title" from pgrst_source order by "created_at" desc nulls last, "title")"#), "{}", s.sql);
        assert_eq!(
            s.binds,
            [
                Bind::Text(Some("%a%".into())),
                Bind::TextArray(vec!["x".into(), "y".into()]),
                Bind::Text(Some("2024".into())),
                Bind::BigInt(10),
                Bind::BigInt(5),
            ]
        );
    }

    #[test]
    fn hostile_values_only_ever_reach_binds() {
        let hostile = "'); drop table todos; --\"/*";
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let quoted = format!(
            "(\"{}\")",
            hostile.replace('\\', "\\\\").replace('"', "\\\"")
        );
        let raw = format!(
            "title=eq.{0}&user_id=in.{1}&title=like.{0}",
            enc(hostile),
            enc(&quoted)
        );
        let s = read(&raw, READ_ALL);
        assert!(!s.sql.contains("drop"), "{}", s.sql);
        assert!(!s.sql.contains("--"), "{}", s.sql);
        assert_eq!(s.binds[1], Bind::TextArray(vec![hostile.to_owned()]));
        assert_eq!(s.binds.len(), 3);
    }

    #[test]
    fn logic_trees_are_parenthesised_and_bound() {
        let s = read(
            "title=neq.z&or=(title.eq.a,and(is_complete.is.true,id.not.in.(x)))&not.and=(title.like.*q*,created_at.gt.2024)",
            READ_ALL,
        );
        assert!(s.sql.contains(r#"where _t."title" <> $1::text and (_t."title" = $2::text or (_t."is_complete" is true and not (_t."id" = any($3::text[]::uuid[])))) and not (_t."title" like $4::text and _t."created_at" > $5::timestamp with time zone))"#), "{}", s.sql);
        assert_eq!(s.binds.len(), 5);
        // Quoted, as a client must quote a value holding `)` or `,`.
        let hostile = url::form_urlencoded::byte_serialize(b"\"'); drop table todos; --\"")
            .collect::<String>();
        let s = read(
            &format!("or=(title.eq.{hostile},title.like.{hostile})"),
            READ_ALL,
        );
        assert!(!s.sql.contains("drop"), "{}", s.sql);
        assert_eq!(
            s.binds[0],
            Bind::Text(Some("'); drop table todos; --".into()))
        );
        // Writes filter with the same trees.
        let s = build(
            &todos(),
            &Action::Delete,
            &parse_query(&todos(), Some("or=(title.eq.a,title.eq.b)")).unwrap(),
            READ_ALL,
        );
        assert!(
            s.sql
                .contains(r#"where (_t."title" = $1::text or _t."title" = $2::text) returning"#),
            "{}",
            s.sql
        );
    }

    #[test]
    fn upserts_conflict_on_the_key_and_count_inserts() {
        let body = parse_insert_body(&todos(), br#"[{"id":"x","title":"a"}]"#, None).unwrap();
        let upsert = |resolution| Action::Upsert {
            body: body.clone(),
            resolution,
            conflict: todos().primary_key().to_vec(),
        };
        let minimal = Want {
            body: false,
            total: false,
        };
        let s = build(
            &todos(),
            &upsert(Resolution::MergeDuplicates),
            &Query::all(&todos()),
            minimal,
        );
        assert!(s.sql.contains(r#"from json_populate_recordset(null::"public"."todos", $1::json) where pg_catalog.set_config('pgrst.inserted', (coalesce(nullif(pg_catalog.current_setting('pgrst.inserted', true), '')::int, 0) + 1)::text, true) <> '0' on conflict ("id") do update set "id" = excluded."id", "title" = excluded."title" where pg_catalog.set_config('pgrst.inserted', (coalesce(nullif(pg_catalog.current_setting('pgrst.inserted', true), '')::int, 0) - 1)::text, true) <> '-1' returning 1)"#), "{}", s.sql);
        assert!(
            s.sql
                .contains(") select (select count(*) from pgrst_source) as page_count, coalesce("),
            "{}",
            s.sql
        );
        assert_eq!(s.binds.len(), 1);
        let s = build(
            &todos(),
            &upsert(Resolution::IgnoreDuplicates),
            &Query::all(&todos()),
            minimal,
        );
        assert!(
            s.sql
                .contains(r#"$1::json) on conflict ("id") do nothing returning 1)"#),
            "{}",
            s.sql
        );
        assert!(s.sql.contains("null::bigint as total"), "{}", s.sql);
    }

    #[test]
    fn embeds_are_correlated_subqueries_with_bound_keys() {
        use crate::query_string::parse_query_in;
        use crate::schema::{Column, ForeignKey, Relation, RelationKind, Schema};
        let projects = Relation::new(
            "public",
            "projects",
            RelationKind::Table,
            vec![Column::new("id", "bigint"), Column::new("name", "text")],
            &["id"],
        );
        let tasks = Relation::new(
            "public",
            "tasks",
            RelationKind::Table,
            vec![
                Column::new("id", "bigint"),
                Column::new("project_id", "bigint"),
            ],
            &["id"],
        );
        let schema = Schema::new("public", [projects, tasks]).with_foreign_keys([ForeignKey::new(
            "tasks_project_id_fkey",
            "tasks",
            vec!["project_id".into()],
            "projects",
            vec!["id".into()],
        )]);
        let projects = schema.relation("projects").unwrap();
        let query = parse_query_in(
            Some(&schema),
            projects,
            Some("select=name,tasks(id)&order=name"),
        )
        .unwrap();
        let s = build(projects, &Action::Read, &query, READ_ALL);
        assert!(s.sql.contains(r#"(select coalesce('[' || string_agg(_x._j, ', ' || chr(10) || ' ') || ']', '[]') from (select left(row_to_json(_c)::text, -1) || ',' || to_json($1::text)::text || ':' || coalesce((select coalesce(json_agg(_e)::jsonb, '[]') from (select _e0."id" from "public"."tasks" as _e0 where _e0."project_id" = _s."id") as _e)::text, 'null') || '}' as _j from pgrst_source as _s cross join lateral (select _s."name") as _c order by _s."name") as _x) as body"#), "{}", s.sql);
        assert_eq!(s.binds, [Bind::Text(Some("tasks".into()))]);
        // The other way, aliased: to-one, the alias only a bind.
        let tasks = schema.relation("tasks").unwrap();
        let query =
            parse_query_in(Some(&schema), tasks, Some("select=p%27;--:projects(*)")).unwrap();
        let s = build(tasks, &Action::Read, &query, READ_ALL);
        assert!(s.sql.contains(r#"from (select '{' || to_json($1::text)::text || ':' || coalesce((select row_to_json(_e)::jsonb from (select _e0."id", _e0."name" from "public"."projects" as _e0 where _e0."id" = _s."project_id") as _e)::text, 'null') || '}' as _j from pgrst_source as _s) as _x)"#), "{}", s.sql);
        assert!(!s.sql.contains("--"), "{}", s.sql);
        assert_eq!(s.binds, [Bind::Text(Some("p';--".into()))]);
        // No relationship, an unknown target, nesting.
        for (raw, code) in [
            ("select=*,projects(*)", "none"),
            ("select=*,nope(*)", "none"),
            ("select=*,tasks(*,projects(*))", "syntax"),
            ("select=*,tasks!fk(*)", "syntax"),
        ] {
            let err = parse_query_in(Some(&schema), projects, Some(raw)).unwrap_err();
            match code {
                "none" => assert!(
                    matches!(err, ParseError::NoRelationship { .. }),
                    "{raw}: {err:?}"
                ),
                _ => assert!(matches!(err, ParseError::Syntax { .. }), "{raw}: {err:?}"),
            }
        }
    }

    #[test]
    fn insert_update_delete() {
        let body = parse_insert_body(&todos(), br#"[{"title":"a"}]"#, None).unwrap();
        let s = build(
            &todos(),
            &Action::Insert(body),
            &Query::all(&todos()),
            Want {
                body: false,
                total: false,
            },
        );
        assert!(s.sql.starts_with(r#"with pgrst_source as (insert into "public"."todos" as _t ("title") select "title" from json_populate_recordset(null::"public"."todos", $1::json) returning 1)"#), "{}", s.sql);
        assert!(s.sql.ends_with("null::text as body"), "{}", s.sql);
        assert_eq!(s.binds, [Bind::Text(Some(r#"[{"title":"a"}]"#.into()))]);

        let set = parse_patch_body(&todos(), br#"{"title":"b","is_complete":null}"#).unwrap();
        let s = build(
            &todos(),
            &Action::Update(set),
            &parse_query(&todos(), Some("id=eq.1")).unwrap(),
            READ_ALL,
        );
        assert!(s.sql.contains(r#"update "public"."todos" as _t set "title" = $1::text, "is_complete" = $2::boolean where _t."id" = $3::uuid returning"#), "{}", s.sql);
        assert_eq!(s.binds[1], Bind::Text(None));

        let s = build(&todos(), &Action::Delete, &Query::all(&todos()), READ_ALL);
        assert!(
            s.sql
                .contains(r#"delete from "public"."todos" as _t where true returning _t."id""#),
            "{}",
            s.sql
        );
        // Without a representation nothing is read, so only the DELETE policy applies.
        let minimal = Want {
            body: false,
            total: false,
        };
        let s = build(&todos(), &Action::Delete, &Query::all(&todos()), minimal);
        assert!(s.sql.contains("where true returning 1)"), "{}", s.sql);
    }
}
