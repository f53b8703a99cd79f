//! `POST|GET /api/database/rpc/{fn}`: calls a function of the exposed schema as the caller, in
//! the same identity transaction as the records API, the way InsForge 2.3 forwards it
//! (`forwardRpcToPostgrest`, `backend/src/api/routes/database/rpc.routes.ts` at v2.3.1) and
//! PostgREST 12.2 plans, runs and shapes it:
//!
//! - the function is chosen among the overloads of that name by the arguments' keys
//!   (`findProc`, `src/PostgREST/Plan.hs`): every required parameter named, every key a
//!   parameter; else one unnamed `json`/`jsonb` parameter takes the whole body (POST only);
//! - it is called with named arguments read from the JSON body by `json_to_record`
//!   (`callPlanToQuery`, `src/PostgREST/Query/QueryBuilder.hs`) — the body is one bind, the
//!   parameter names and types come from the catalog snapshot, never from the client;
//! - the result is shaped by its return type (`asJsonF`, `src/PostgREST/Query/SqlFragment.hs`):
//!   a scalar as a JSON value, `setof` a scalar as an array, a composite as an object, `setof`
//!   a composite (or `returns table`) as an array of objects; `void` is 204 without a body
//!   (`actionResponse (DbCallResult …)`, `src/PostgREST/Response.hs`);
//! - `GET` (query-string arguments, all text) and `stable`/`immutable` functions run in a
//!   read-only transaction (`callReadPlan`'s `txMode`), so a write there fails with Postgres's
//!   `25006`, which PostgREST maps to 405.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use crate::AppState;
use crate::auth::Identity;
use crate::db::{self, Access, Expect};
use crate::error::{ApiError, InvalidTableName};
use crate::parse_error::{ParseError, echo};
use crate::routes::{content_range, json_body, json_response_utf8};
use crate::schema::{Returns, Routine, Schema, Volatility};
use crate::statement::{Bind, Statement};

/// The function a request names, with the snapshot it was resolved in.
pub(crate) struct RpcTarget {
    schema: Arc<Schema>,
    name: String,
    raw_query: Option<String>,
    content_type: Option<String>,
}

impl FromRequestParts<AppState> for RpcTarget {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Path(name) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_: PathRejection| ApiError::RouteNotFound)?;
        // InsForge validates the name before proxying (`validateFunctionName`).
        InvalidTableName::check(&name)
            .map_err(|reason| ApiError::InvalidFunctionName { reason })?;
        let schema = state.schema().get_or_load(state.pool()).await?;
        Ok(Self {
            schema,
            name,
            raw_query: parts.uri.query().map(str::to_owned),
            content_type: parts
                .headers
                .get(header::CONTENT_TYPE)
                .map(|v| v.to_str().unwrap_or("").to_owned()),
        })
    }
}

/// The arguments of a call, as one JSON object (PostgREST's `funCArgs`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Arguments {
    /// The object's keys, sorted.
    keys: BTreeSet<String>,
    json: String,
}

/// One call, ready to run.
#[derive(Debug)]
pub(crate) struct PlannedCall {
    pub statement: Statement,
    pub access: Access,
    pub returns: Returns,
}

/// `GET|HEAD /api/database/rpc/{fn}?a=1&b=x`.
pub(crate) async fn get_rpc(
    identity: Identity,
    State(state): State<AppState>,
    target: RpcTarget,
) -> Result<Response, ApiError> {
    let args = query_arguments(&target.schema, &target.name, target.raw_query.as_deref())?;
    let planned = plan_call(&target.schema, &target.name, &args, Invocation::Get)?;
    run(planned, &identity, &state).await
}

/// `POST /api/database/rpc/{fn}` with a JSON object of named arguments (empty body: none).
pub(crate) async fn post_rpc(
    identity: Identity,
    State(state): State<AppState>,
    target: RpcTarget,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    refuse_query(target.raw_query.as_deref())?;
    let bytes = json_body(target.content_type.as_deref(), body)?;
    let args = body_arguments(&bytes)?;
    let planned = plan_call(&target.schema, &target.name, &args, Invocation::Post)?;
    run(planned, &identity, &state).await
}

async fn run(
    planned: PlannedCall,
    identity: &Identity,
    state: &AppState,
) -> Result<Response, ApiError> {
    let timeout_ms = u64::try_from(state.statement_timeout().as_millis()).unwrap_or(u64::MAX);
    let outcome = db::run_as(
        state.pool(),
        identity.db(),
        timeout_ms,
        planned.access,
        planned.statement,
        Expect::Any,
    )
    .await?;
    if planned.returns == Returns::Void {
        // PostgREST answers 204 for a void function; InsForge forwards the status with a
        // `null` body, which a 204 does not carry.
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let rows = u64::try_from(outcome.page_count).unwrap_or(0);
    let Some(body) = outcome.body else {
        tracing::error!("rpc statement returned no body");
        return Err(ApiError::Internal);
    };
    let mut response = json_response_utf8(StatusCode::OK, body);
    if let Ok(value) = HeaderValue::from_str(&content_range(0, rows, None)) {
        response.headers_mut().insert(header::CONTENT_RANGE, value);
    }
    Ok(response)
}

/// How the function is invoked: the arguments' source and the transaction's access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Invocation {
    Get,
    Post,
}

/// The body of a POST: a JSON object (its keys are the arguments), or nothing (no arguments).
/// PostgREST also takes an array (one call per element) and form bodies; the stand-in does not.
pub(crate) fn body_arguments(bytes: &[u8]) -> Result<Arguments, ParseError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Arguments {
            keys: BTreeSet::new(),
            json: "{}".to_owned(),
        });
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(Arguments {
            keys: map.keys().cloned().collect(),
            json: Value::Object(map).to_string(),
        }),
        Ok(_) => Err(ParseError::InvalidBody {
            message: "Empty or invalid json",
            details: Some("the arguments of a function call are one JSON object".into()),
        }),
        Err(_) => Err(ParseError::InvalidBody {
            message: "Empty or invalid json",
            details: None,
        }),
    }
}

/// PostgREST's operators: a GET parameter whose value starts with one (`eq.1`, `not.in.(…)`,
/// `fts(english).x`) is a filter on the function's result (`pRequestFilter isRpcRead`,
/// `QueryParams.hs`), not an argument.
const OPERATORS: &[&str] = &[
    "eq",
    "neq",
    "gt",
    "gte",
    "lt",
    "lte",
    "like",
    "ilike",
    "match",
    "imatch",
    "in",
    "is",
    "isdistinct",
    "fts",
    "plfts",
    "phfts",
    "wfts",
    "cs",
    "cd",
    "ov",
    "sl",
    "sr",
    "nxr",
    "nxl",
    "adj",
];

fn is_filter_value(value: &str) -> bool {
    let value = value.strip_prefix("not.").unwrap_or(value);
    OPERATORS.iter().any(|op| {
        value
            .strip_prefix(op)
            .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('('))
    })
}

/// Keys PostgREST reads as something other than an argument (`reserved`,
/// `reservedEmbeddable` in `QueryParams.hs`).
fn is_reserved(key: &str) -> bool {
    let last = key.rsplit('.').next().unwrap_or(key);
    matches!(key, "select" | "columns" | "on_conflict")
        || matches!(last, "order" | "limit" | "offset" | "and" | "or")
}

fn unsupported_on_rpc(key: &str) -> ParseError {
    ParseError::Syntax {
        message: format!("\"{}\" is not supported on /rpc by this API", echo(key)),
        details: "only arguments are: filtering, ordering, selecting or paging a function's \
                  result is not supported"
            .into(),
    }
}

/// A POST names its arguments in the body; the query string may not shape the result here.
fn refuse_query(raw: Option<&str>) -> Result<(), ParseError> {
    match url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()).next() {
        Some((key, _)) => Err(unsupported_on_rpc(&key)),
        None => Ok(()),
    }
}

/// The arguments of a GET: every query parameter, as text (`jsonRpcParams`, `CallPlan.hs`):
/// a repeated key keeps its last value, except for a `VARIADIC` parameter, whose values
/// become an array.
pub(crate) fn query_arguments(
    schema: &Schema,
    name: &str,
    raw: Option<&str>,
) -> Result<Arguments, ParseError> {
    let variadic: BTreeSet<&str> = schema
        .routines(name)
        .iter()
        .flat_map(|r| r.params())
        .filter(|p| p.is_variadic())
        .map(|p| p.name())
        .collect();
    let mut map: BTreeMap<String, Value> = BTreeMap::new();
    for (key, value) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        if is_reserved(&key) || is_filter_value(&value) {
            return Err(unsupported_on_rpc(&key));
        }
        if variadic.contains(key.as_ref()) {
            match map
                .entry(key.into_owned())
                .or_insert_with(|| Value::Array(Vec::new()))
            {
                Value::Array(items) => items.push(Value::String(value.into_owned())),
                other => *other = Value::String(value.into_owned()),
            }
        } else {
            map.insert(key.into_owned(), Value::String(value.into_owned()));
        }
    }
    Ok(Arguments {
        keys: map.keys().cloned().collect(),
        json: Value::Object(map.into_iter().collect::<Map<_, _>>()).to_string(),
    })
}

/// How the chosen function takes its arguments (PostgREST's `CallParams`).
enum CallParams {
    /// `f("a" := pgrst_body."a", …)` for the parameters the arguments name.
    Named(Vec<usize>),
    /// `f($1::json)`: one unnamed `json`/`jsonb` parameter takes the whole body.
    OnePositional,
}

/// PostgREST's `findProc`: the overloads of `name` whose parameters match `keys`; if none, the
/// one with a single unnamed json/jsonb parameter (POST only).
fn find_routine(
    schema: &Schema,
    name: &str,
    keys: &BTreeSet<String>,
    invocation: Invocation,
) -> Result<(Arc<Routine>, CallParams), ApiError> {
    let mut matching = Vec::new();
    let mut fallback = Vec::new();
    for routine in schema.routines(name) {
        let params = routine.params();
        let named_all: BTreeSet<&str> = params.iter().map(|p| p.name()).collect();
        let required: BTreeSet<&str> = params
            .iter()
            .filter(|p| p.is_required())
            .map(|p| p.name())
            .collect();
        let matches = if params.is_empty() {
            keys.is_empty()
        } else {
            // Every key a parameter, every required parameter a key (the three cases of
            // `matchesParams` come to this).
            keys.iter().all(|k| named_all.contains(k.as_str()))
                && required.iter().all(|r| keys.contains(*r))
        };
        let single_unnamed_json = invocation == Invocation::Post
            && params.len() == 1
            && params[0].name().is_empty()
            && matches!(params[0].sql_type(), "json" | "jsonb");
        if matches {
            matching.push(routine.clone());
        } else if single_unnamed_json {
            fallback.push(routine.clone());
        }
    }
    let ambiguous = |procs: &[Arc<Routine>]| ApiError::AmbiguousRpc {
        candidates: procs
            .iter()
            .map(|p| {
                let params = p
                    .params()
                    .iter()
                    .map(|a| format!("{} => {}", a.name(), a.sql_type()))
                    .collect::<Vec<_>>()
                    .join(", ");
                format!("{}.{}({params})", p.schema(), p.name())
            })
            .collect(),
    };
    let chosen = match (matching.as_slice(), fallback.as_slice()) {
        ([], []) => {
            return Err(ApiError::NoRpc {
                schema: schema.exposed().to_owned(),
                name: name.to_owned(),
                keys: keys.iter().cloned().collect(),
                post_json: invocation == Invocation::Post,
            });
        }
        ([], [one]) => return Ok((one.clone(), CallParams::OnePositional)),
        ([], many) => return Err(ambiguous(many)),
        ([one], _) => one.clone(),
        (many, _) => return Err(ambiguous(many)),
    };
    let specified = chosen
        .params()
        .iter()
        .enumerate()
        .filter(|(_, p)| keys.contains(p.name()))
        .map(|(i, _)| i)
        .collect();
    // A single unnamed parameter is always positional (`callPlan`).
    let params = if chosen.params().len() == 1 && chosen.params()[0].name().is_empty() {
        CallParams::OnePositional
    } else {
        CallParams::Named(specified)
    };
    Ok((chosen, params))
}

/// The statement for calling `name` with `args`: the same result shape as every records
/// statement (`total`, `page_count`, `body`), so [`db::run_as`] runs it unchanged.
pub(crate) fn plan_call(
    schema: &Schema,
    name: &str,
    args: &Arguments,
    invocation: Invocation,
) -> Result<PlannedCall, ApiError> {
    let (routine, params) = find_routine(schema, name, &args.keys, invocation)?;
    let returns = routine.returns();
    let scalar = matches!(returns, Returns::Void | Returns::Scalar { .. });
    let call = |arguments: &str| {
        if scalar {
            format!(
                "(select {}({arguments}) pgrst_scalar) pgrst_call",
                routine.sql()
            )
        } else {
            format!("{}({arguments}) pgrst_call", routine.sql())
        }
    };
    let columns = if scalar {
        "pgrst_call.pgrst_scalar"
    } else {
        "pgrst_call.*"
    };
    let mut binds = Vec::new();
    let mut sql = String::from("with pgrst_source as (select ");
    sql.push_str(columns);
    match params {
        CallParams::OnePositional => {
            binds.push(Bind::Text(Some(args.json.clone())));
            let ty = routine.params()[0].sql_type();
            let _ = write!(sql, " from {}", call(&format!("$1::{ty}")));
        }
        CallParams::Named(specified) if specified.is_empty() => {
            let _ = write!(sql, " from {}", call(""));
        }
        CallParams::Named(specified) => {
            binds.push(Bind::Text(Some(args.json.clone())));
            let record = specified
                .iter()
                .map(|&i| {
                    let p = &routine.params()[i];
                    format!("{} {}", p.sql(), p.sql_type())
                })
                .collect::<Vec<_>>()
                .join(", ");
            let arguments = specified
                .iter()
                .map(|&i| {
                    let p = &routine.params()[i];
                    let variadic = if p.is_variadic() { "variadic " } else { "" };
                    format!("{variadic}{} := pgrst_body.{}", p.sql(), p.sql())
                })
                .collect::<Vec<_>>()
                .join(", ");
            let _ = write!(
                sql,
                " from pg_catalog.json_to_record($1::json) as pgrst_body({record}), lateral {}",
                call(&arguments)
            );
        }
    }
    // `prepareCall` (`Query/Statements.hs`) and `asJsonF` (`Query/SqlFragment.hs`).
    let (page_count, body) = match returns {
        Returns::Void => ("1", "null::text".to_owned()),
        Returns::Scalar { set: false } => (
            "1",
            "coalesce(pg_catalog.json_agg(_postgrest_t.pgrst_scalar)->0, 'null')::text".to_owned(),
        ),
        Returns::Scalar { set: true } => (
            "pg_catalog.count(*)",
            "coalesce(pg_catalog.json_agg(_postgrest_t.pgrst_scalar), '[]')::text".to_owned(),
        ),
        Returns::Composite { set: false } => (
            "1",
            "coalesce(pg_catalog.json_agg(_postgrest_t)->0, 'null')::text".to_owned(),
        ),
        Returns::Composite { set: true } => (
            "pg_catalog.count(*)",
            "coalesce(pg_catalog.json_agg(_postgrest_t), '[]')::text".to_owned(),
        ),
    };
    let _ = write!(
        sql,
        ") select null::bigint as total, {page_count}::bigint as page_count, {body} as body \
         from pgrst_source as _postgrest_t"
    );
    let access = match (invocation, routine.volatility()) {
        (Invocation::Post, Volatility::Volatile) => Access::ReadWrite,
        _ => Access::ReadOnly,
    };
    Ok(PlannedCall {
        statement: Statement { sql, binds },
        access,
        returns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::RoutineParam;

    fn schema() -> Schema {
        let p = |name: &str, ty: &str, required: bool| RoutineParam::new(name, ty, false, required);
        Schema::new("public", []).with_routines([
            Routine::new(
                "public",
                "add",
                vec![p("a", "integer", true), p("b", "integer", false)],
                Returns::Scalar { set: false },
                Volatility::Immutable,
            ),
            Routine::new(
                "public",
                "my_projects",
                vec![],
                Returns::Composite { set: true },
                Volatility::Stable,
            ),
            Routine::new(
                "public",
                "touch",
                vec![p("id", "uuid", true)],
                Returns::Void,
                Volatility::Volatile,
            ),
            Routine::new(
                "public",
                "over",
                vec![p("x", "integer", true)],
                Returns::Scalar { set: false },
                Volatility::Volatile,
            ),
            Routine::new(
                "public",
                "over",
                vec![p("x", "text", true)],
                Returns::Scalar { set: false },
                Volatility::Volatile,
            ),
            Routine::new(
                "public",
                "raw",
                vec![p("", "jsonb", true)],
                Returns::Scalar { set: true },
                Volatility::Volatile,
            ),
            Routine::new(
                "other",
                "hidden",
                vec![],
                Returns::Void,
                Volatility::Volatile,
            ),
        ])
    }

    fn post(name: &str, body: &str) -> Result<PlannedCall, ApiError> {
        plan_call(
            &schema(),
            name,
            &body_arguments(body.as_bytes()).unwrap(),
            Invocation::Post,
        )
    }

    #[test]
    fn named_arguments_are_one_bind_read_by_json_to_record() {
        let call = post("add", r#"{"a": 1, "b": "2"}"#).unwrap();
        assert_eq!(
            call.statement.sql,
            r#"with pgrst_source as (select pgrst_call.pgrst_scalar from pg_catalog.json_to_record($1::json) as pgrst_body("a" integer, "b" integer), lateral (select "public"."add"("a" := pgrst_body."a", "b" := pgrst_body."b") pgrst_scalar) pgrst_call) select null::bigint as total, 1::bigint as page_count, coalesce(pg_catalog.json_agg(_postgrest_t.pgrst_scalar)->0, 'null')::text as body from pgrst_source as _postgrest_t"#
        );
        assert_eq!(
            call.statement.binds,
            [Bind::Text(Some(r#"{"a":1,"b":"2"}"#.into()))]
        );
        assert_eq!(call.access, Access::ReadOnly, "immutable");
        // The optional parameter may be left out; only the named ones are passed.
        let call = post("add", r#"{"a": 1}"#).unwrap();
        assert!(
            call.statement.sql.contains(
                r#"pgrst_body("a" integer), lateral (select "public"."add"("a" := pgrst_body."a")"#
            ),
            "{}",
            call.statement.sql
        );
    }

    #[test]
    fn result_shapes_follow_the_return_type() {
        let call = post("my_projects", "").unwrap();
        assert!(call.statement.sql.starts_with(r#"with pgrst_source as (select pgrst_call.* from "public"."my_projects"() pgrst_call)"#), "{}", call.statement.sql);
        assert!(
            call.statement
                .sql
                .contains("coalesce(pg_catalog.json_agg(_postgrest_t), '[]')::text")
        );
        assert!(call.statement.binds.is_empty());
        let call = post("touch", r#"{"id":"x"}"#).unwrap();
        assert_eq!(call.returns, Returns::Void);
        assert_eq!(call.access, Access::ReadWrite, "volatile POST writes");
        let get = plan_call(
            &schema(),
            "touch",
            &query_arguments(&schema(), "touch", Some("id=x")).unwrap(),
            Invocation::Get,
        )
        .unwrap();
        assert_eq!(get.access, Access::ReadOnly, "a GET never writes");
        // One unnamed jsonb parameter takes the whole body, positionally.
        let call = post("raw", r#"{"anything": [1]}"#).unwrap();
        assert!(
            call.statement
                .sql
                .contains(r#"(select "public"."raw"($1::jsonb) pgrst_scalar)"#),
            "{}",
            call.statement.sql
        );
        assert!(
            call.statement
                .sql
                .contains("json_agg(_postgrest_t.pgrst_scalar), '[]'")
        );
    }

    #[test]
    fn unknown_functions_and_arguments_are_postgrest_errors() {
        let no_rpc = |r: Result<PlannedCall, ApiError>| match r {
            Err(ApiError::NoRpc { keys, .. }) => keys,
            other => panic!("{other:?}"),
        };
        assert!(no_rpc(post("nope", "")).is_empty());
        assert!(
            no_rpc(post("hidden", "")).is_empty(),
            "other schemas are not exposed"
        );
        assert_eq!(no_rpc(post("add", r#"{"b": 1}"#)), ["b"], "a is required");
        assert_eq!(no_rpc(post("add", r#"{"a": 1, "c": 2}"#)), ["a", "c"]);
        assert_eq!(no_rpc(post("my_projects", r#"{"a": 1}"#)), ["a"]);
        assert!(matches!(
            post("over", r#"{"x": 1}"#),
            Err(ApiError::AmbiguousRpc { .. })
        ));
        // Hostile keys only ever select among catalog names.
        assert_eq!(
            no_rpc(post("add", r#"{"a\"); drop table x; --": 1}"#)),
            ["a\"); drop table x; --"]
        );
        assert!(matches!(
            body_arguments(b"[1]"),
            Err(ParseError::InvalidBody { .. })
        ));
        assert!(matches!(
            body_arguments(b"{"),
            Err(ParseError::InvalidBody { .. })
        ));
    }

    #[test]
    fn get_arguments_are_text_and_filters_are_refused() {
        let args = query_arguments(&schema(), "add", Some("a=1&b=2&a=3")).unwrap();
        assert_eq!(args.json, r#"{"a":"3","b":"2"}"#);
        for raw in [
            "a=eq.1",
            "a=not.in.(1)",
            "select=a",
            "order=a",
            "limit=1",
            "or=(a.eq.1)",
        ] {
            assert!(
                matches!(
                    query_arguments(&schema(), "add", Some(raw)),
                    Err(ParseError::Syntax { .. })
                ),
                "{raw}"
            );
        }
        // A value that merely starts like an operator name is an argument.
        assert!(query_arguments(&schema(), "add", Some("a=equal")).is_ok());
    }
}
