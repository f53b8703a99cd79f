//! HTTP handlers: `/api/database/records/{table}` in PostgREST's wire format, and `/health`.
//! They take the schema snapshot of the moment, resolve the table in it, parse, build one
//! statement, run it as the caller, and shape the response.

use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use std::sync::Arc;

use crate::AppState;
use crate::auth::Identity;
use crate::body::{parse_insert_body, parse_patch_body, strip_empty_strings};
use crate::db::{self, Access, Expect, Outcome};
use crate::error::{ApiError, InvalidTableName};
use crate::parse_error::ParseError;
use crate::prefer::{Preferences, Resolution, ReturnPref};
use crate::query_string::{Query, parse_query_in};
use crate::schema::{Relation, Schema};
use crate::statement::{self, Action, Statement, Want};

/// Largest request body accepted (the router's `DefaultBodyLimit`).
pub const BODY_LIMIT_BYTES: usize = 1024 * 1024;

/// PostgREST's media type for "one object, not an array".
const SINGULAR_MEDIA_TYPE: &str = "application/vnd.pgrst.object+json";
const JSON_UTF8: &str = "application/json; charset=utf-8";

/// `GET /health`: 200 `{"status":"ok"}` when the pool can run `select 1`, else 503.
pub async fn health(State(state): State<AppState>) -> Result<Response, ApiError> {
    db::ping(state.pool()).await?;
    Ok(json_response(
        StatusCode::OK,
        r#"{"status":"ok"}"#.to_owned(),
        JSON_UTF8,
    ))
}

/// A records request's table, resolved in the schema snapshot the request started with (kept
/// for the whole request: a reload meanwhile does not change it).
pub(crate) enum Records {
    Known(Request),
    /// No such table or view in the exposed schema.
    Unknown {
        schema: String,
        name: String,
        /// `columns=` was given (a write then names columns).
        columns_param: bool,
    },
}

impl Records {
    /// The request, or PostgREST 12.2's answer for a table it does not know when the statement
    /// would reach Postgres: 404 with Postgres's 42P01 (see [`ApiError::UnknownTable`]).
    fn known(self) -> Result<Request, ApiError> {
        match self {
            Self::Known(request) => Ok(request),
            Self::Unknown { schema, name, .. } => Err(ApiError::UnknownTable { schema, name }),
        }
    }

    /// As [`Records::known`], for a POST/PATCH with `body`: PostgREST 12.2 resolves the columns a
    /// write names against its schema cache before anything runs, and answers 404 `{}` when
    /// there is no such table; a body that names no column reaches Postgres (42P01).
    fn known_for_write(self, body: &[u8]) -> Result<Request, ApiError> {
        match self {
            Self::Known(request) => Ok(request),
            Self::Unknown {
                schema,
                name,
                columns_param,
            } => {
                // What InsForge forwards: `""` values dropped (no column is text-like here).
                let names = |object: Option<&Value>| {
                    object.and_then(Value::as_object).is_some_and(|map| {
                        let mut map = map.clone();
                        strip_empty_strings(None, &mut map);
                        !map.is_empty()
                    })
                };
                let names_columns = columns_param
                    || match serde_json::from_slice::<Value>(body) {
                        Ok(object @ Value::Object(_)) => names(Some(&object)),
                        Ok(Value::Array(rows)) => names(rows.first()),
                        Ok(_) | Err(_) => {
                            return Err(ParseError::InvalidBody {
                                message: "Empty or invalid json",
                                details: None,
                            }
                            .into());
                        }
                    };
                if names_columns {
                    Err(ApiError::UnknownTableForWrite)
                } else {
                    Err(ApiError::UnknownTable { schema, name })
                }
            }
        }
    }
}

/// What every records request carries before its verb-specific part. The identity is
/// extracted first, so a request without a valid token learns nothing (not even whether the
/// table exists) — as InsForge checks the token before proxying.
pub(crate) struct Request {
    relation: Arc<Relation>,
    query: Query,
    prefs: Preferences,
    singular: bool,
    /// The `Content-Type` header, if any (unreadable bytes read as empty).
    content_type: Option<String>,
}

impl FromRequestParts<AppState> for Records {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // A segment that does not even decode (invalid UTF-8) names no route we serve.
        let Path(table) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_: PathRejection| ApiError::RouteNotFound)?;
        // No catalog read here: the snapshot is loaded at start and on reload; only while none
        // could be loaded yet (the database was down) does a request try once itself.
        let schema = state.schema().get_or_load(state.pool()).await?;
        Records::resolve(&schema, &table, parts.uri.query(), &parts.headers)
    }
}

impl Records {
    /// `table` (the decoded path segment) in `schema`, with the query string and headers.
    fn resolve(
        schema: &Schema,
        table: &str,
        raw_query: Option<&str>,
        headers: &HeaderMap,
    ) -> Result<Self, ApiError> {
        InvalidTableName::check(table).map_err(|reason| ApiError::InvalidTableName { reason })?;
        let Some(relation) = schema.relation(table) else {
            return Ok(Self::Unknown {
                schema: schema.exposed().to_owned(),
                name: table.to_owned(),
                columns_param: url::form_urlencoded::parse(raw_query.unwrap_or("").as_bytes())
                    .any(|(k, _)| k == "columns"),
            });
        };
        Ok(Self::Known(Request {
            query: parse_query_in(Some(schema), relation, raw_query)?,
            relation: relation.clone(),
            prefs: Preferences::parse(
                headers
                    .get_all(HeaderName::from_static("prefer"))
                    .iter()
                    .filter_map(|v| v.to_str().ok()),
            ),
            singular: wants_singular(headers),
            content_type: headers
                .get(header::CONTENT_TYPE)
                .map(|v| v.to_str().unwrap_or("").to_owned()),
        }))
    }
}

impl Records {
    /// A write's request and body: refused with paging (see [`refuse_paging`]) or a non-JSON
    /// content type; on an unknown table, PostgREST's answer for a write.
    fn write_body(self, body: Result<Bytes, BytesRejection>) -> Result<(Request, Bytes), ApiError> {
        match &self {
            Self::Known(request) => {
                refuse_paging(&request.query)?;
                let bytes = json_body(request.content_type.as_deref(), body)?;
                Ok((self.known()?, bytes))
            }
            Self::Unknown { .. } => {
                let bytes = json_body(None, body)?;
                let request = self.known_for_write(&bytes)?;
                Ok((request, bytes))
            }
        }
    }
}

impl Request {
    /// The statement for `action` and whether its transaction may write.
    fn plan(&self, action: &Action) -> Planned {
        let is_read = matches!(action, Action::Read);
        let want = Want {
            body: is_read || self.prefs.return_pref == Some(ReturnPref::Representation),
            total: is_read && self.prefs.count,
        };
        Planned {
            statement: statement::build(&self.relation, action, &self.query, want),
            access: if is_read {
                Access::ReadOnly
            } else {
                Access::ReadWrite
            },
        }
    }

    /// Runs `action` as `identity` and shapes the response for `verb`.
    async fn run(
        self,
        verb: Verb,
        action: Action,
        identity: &Identity,
        state: &AppState,
    ) -> Result<Response, ApiError> {
        let Planned { statement, access } = self.plan(&action);
        let expect = if self.singular {
            Expect::ExactlyOne
        } else {
            Expect::Any
        };
        let timeout_ms = u64::try_from(state.statement_timeout().as_millis()).unwrap_or(u64::MAX);
        let outcome = db::run_as(
            state.pool(),
            identity.db(),
            timeout_ms,
            access,
            statement,
            expect,
        )
        .await?;
        respond(verb, &self.query, self.prefs, self.singular, outcome)
    }
}

/// What the app runs for a request: one statement, and whether its transaction may write.
#[derive(Debug)]
pub(crate) struct Planned {
    pub statement: Statement,
    pub access: Access,
}

/// The records API's verbs (HEAD is served as GET without a body, by axum).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Get,
    Post,
    Patch,
    Delete,
}

/// `GET|HEAD /api/database/records/{table}`. Each handler takes [`Identity`] first, so a
/// request without a valid token learns nothing, not even whether the table exists.
pub(crate) async fn get_records(
    identity: Identity,
    State(state): State<AppState>,
    records: Records,
) -> Result<Response, ApiError> {
    records
        .known()?
        .run(Verb::Get, Action::Read, &identity, &state)
        .await
}

/// `POST /api/database/records/{table}`: one object or an array of them.
pub(crate) async fn post_records(
    identity: Identity,
    State(state): State<AppState>,
    records: Records,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (mut request, bytes) = records.write_body(body)?;
    let rows = parse_insert_body(&request.relation, &bytes, request.query.columns.as_deref())?;
    // `resolution=` makes an upsert on `on_conflict=` or else the primary key; with neither,
    // PostgREST writes a plain insert and does not echo the preference (`mutatePlanToQuery`
    // omits `ON CONFLICT` for no columns; `actionResponse … MutationCreate`, `Response.hs`).
    let conflict = request
        .query
        .on_conflict
        .clone()
        .unwrap_or_else(|| request.relation.primary_key().to_vec());
    let action = match request.prefs.resolution {
        Some(resolution) if !conflict.is_empty() => Action::Upsert {
            body: rows,
            resolution,
            conflict,
        },
        _ => {
            request.prefs.resolution = None;
            Action::Insert(rows)
        }
    };
    request.run(Verb::Post, action, &identity, &state).await
}

/// `PATCH /api/database/records/{table}?filters`: one object of new values.
pub(crate) async fn patch_records(
    identity: Identity,
    State(state): State<AppState>,
    records: Records,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (request, bytes) = records.write_body(body)?;
    let set = parse_patch_body(&request.relation, &bytes)?;
    if set.is_empty() {
        // Nothing to change: no statement, and so no rows affected.
        if request.singular {
            return Err(ApiError::NotSingular { rows: 0 });
        }
        let empty = Outcome {
            total: None,
            page_count: 0,
            body: Some("[]".to_owned()),
        };
        return respond(
            Verb::Patch,
            &request.query,
            request.prefs,
            request.singular,
            empty,
        );
    }
    request
        .run(Verb::Patch, Action::Update(set), &identity, &state)
        .await
}

/// `DELETE /api/database/records/{table}?filters`.
pub(crate) async fn delete_records(
    identity: Identity,
    State(state): State<AppState>,
    records: Records,
) -> Result<Response, ApiError> {
    let request = records.known()?;
    refuse_paging(&request.query)?;
    request
        .run(Verb::Delete, Action::Delete, &identity, &state)
        .await
}

/// The statement the app would run for a `GET` (`body: None`) or `POST` of `table` in
/// `schema` with this query string — the benchmark's pgbench side runs exactly it.
pub(crate) fn plan_request(
    schema: &Schema,
    table: &str,
    raw_query: Option<&str>,
    body: Option<&[u8]>,
) -> Result<Planned, ApiError> {
    let request = match body {
        None => Records::resolve(schema, table, raw_query, &HeaderMap::new())?.known()?,
        Some(bytes) => {
            Records::resolve(schema, table, raw_query, &HeaderMap::new())?.known_for_write(bytes)?
        }
    };
    let action = match body {
        None => Action::Read,
        Some(bytes) => {
            refuse_paging(&request.query)?;
            Action::Insert(parse_insert_body(
                &request.relation,
                bytes,
                request.query.columns.as_deref(),
            )?)
        }
    };
    Ok(request.plan(&action))
}

/// `limit`/`offset` shape a read; on a write they would silently change which rows are
/// touched, which PostgREST only allows with extra conditions. Not supported here.
fn refuse_paging(query: &Query) -> Result<(), ParseError> {
    if query.limit.is_some() || query.offset.is_some() {
        return Err(ParseError::Syntax {
            message: "limit and offset are only supported on GET".into(),
            details: "remove limit/offset, or select the rows with filters".into(),
        });
    }
    Ok(())
}

fn wants_singular(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| media_type(v).eq_ignore_ascii_case(SINGULAR_MEDIA_TYPE))
}

fn media_type(value: &str) -> &str {
    value.split(';').next().unwrap_or("").trim()
}

/// The body, if the request says (or does not say) it is JSON.
pub(crate) fn json_body(
    content_type: Option<&str>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Bytes, ApiError> {
    if let Some(text) = content_type {
        let essence = media_type(text).to_ascii_lowercase();
        if essence != "application/json" && essence != SINGULAR_MEDIA_TYPE {
            return Err(ApiError::UnsupportedMediaType(text.to_owned()));
        }
    }
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge {
                limit: BODY_LIMIT_BYTES,
            }
        } else {
            tracing::debug!(reason = %rejection.body_text(), "request body unreadable");
            ApiError::BodyUnreadable
        }
    })
}

/// Status, headers and body for a successful statement, as PostgREST would send them.
fn respond(
    verb: Verb,
    query: &Query,
    prefs: Preferences,
    singular: bool,
    outcome: Outcome,
) -> Result<Response, ApiError> {
    let rows = u64::try_from(outcome.page_count).unwrap_or(0);
    let is_read = verb == Verb::Get;
    let offset = if is_read {
        u64::try_from(query.offset.unwrap_or(0)).unwrap_or(0)
    } else {
        0
    };
    let total = if is_read {
        outcome.total.and_then(|t| u64::try_from(t).ok())
    } else if prefs.count {
        Some(rows)
    } else {
        None
    };

    let mut status = match verb {
        // An upsert that only updated is 200 (`isInsertIfGTZero`, `Response.hs`); the
        // statement's `total` carries the rows inserted.
        Verb::Post
            if prefs.resolution == Some(Resolution::MergeDuplicates)
                && outcome.total.is_some_and(|inserted| inserted <= 0) =>
        {
            StatusCode::OK
        }
        Verb::Post => StatusCode::CREATED,
        Verb::Get => StatusCode::OK,
        _ if prefs.return_pref == Some(ReturnPref::Representation) => StatusCode::OK,
        _ => StatusCode::NO_CONTENT,
    };
    if is_read && let Some(total) = total {
        if offset > total {
            return Err(ApiError::RangeNotSatisfiable {
                offset: query.offset.unwrap_or(0),
                total: outcome.total.unwrap_or(0),
            });
        }
        // PostgREST's rule: a page smaller than the whole is 206 Partial Content.
        if rows < total {
            status = StatusCode::PARTIAL_CONTENT;
        }
    }

    let body = match outcome.body {
        Some(array) if singular => single_object(&array)?,
        Some(array) if is_read || prefs.return_pref == Some(ReturnPref::Representation) => array,
        // InsForge replaces PostgREST's empty insert body with `[]` (ARCHITECTURE.md, "InsForge's records API"), so the
        // InsForge SDK's `insert()` without `.select()` gets `data: []`; match it. A 204
        // (PATCH/DELETE) has no body there either.
        _ if verb == Verb::Post => "[]".to_owned(),
        _ => String::new(),
    };
    let content_type = if singular {
        "application/vnd.pgrst.object+json; charset=utf-8"
    } else {
        JSON_UTF8
    };
    let mut response = if body.is_empty() {
        status.into_response()
    } else {
        json_response(status, body, content_type)
    };

    let headers = response.headers_mut();
    if is_read || total.is_some() {
        let range = content_range(offset, rows, total);
        if let Ok(value) = HeaderValue::from_str(&range) {
            headers.insert(header::CONTENT_RANGE, value);
        }
    }
    // `return=` means nothing to a read, so a read does not claim to have applied it.
    let honoured = Preferences {
        return_pref: prefs.return_pref.filter(|_| !is_read),
        resolution: prefs.resolution.filter(|_| verb == Verb::Post),
        ..prefs
    };
    if let Some(applied) = honoured.applied()
        && let Ok(value) = HeaderValue::from_str(&applied)
    {
        headers.insert(HeaderName::from_static("preference-applied"), value);
    }
    Ok(response)
}

/// `start-end/total` as PostgREST writes it: `*` for an empty page, `*` for an unknown total.
pub fn content_range(offset: u64, rows: u64, total: Option<u64>) -> String {
    let total = total.map_or_else(|| "*".to_owned(), |t| t.to_string());
    if rows == 0 {
        format!("*/{total}")
    } else {
        format!(
            "{offset}-{}/{total}",
            offset.saturating_add(rows).saturating_sub(1)
        )
    }
}

fn single_object(array: &str) -> Result<String, ApiError> {
    match serde_json::from_str::<Value>(array) {
        Ok(Value::Array(mut items)) if items.len() == 1 => Ok(items.remove(0).to_string()),
        Ok(Value::Array(items)) => Err(ApiError::NotSingular {
            rows: i64::try_from(items.len()).unwrap_or(i64::MAX),
        }),
        _ => {
            tracing::error!("statement body is not a JSON array");
            Err(ApiError::Internal)
        }
    }
}

/// `application/json; charset=utf-8` with `body`.
pub(crate) fn json_response_utf8(status: StatusCode, body: String) -> Response {
    json_response(status, body, JSON_UTF8)
}

fn json_response(status: StatusCode, body: String, content_type: &'static str) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Any other path.
pub async fn not_found() -> ApiError {
    ApiError::RouteNotFound
}

/// A known path with a method it does not serve.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges() {
        assert_eq!(content_range(0, 10, Some(42)), "0-9/42");
        assert_eq!(content_range(0, 0, Some(0)), "*/0");
        assert_eq!(content_range(5, 2, None), "5-6/*");
        assert_eq!(content_range(0, 0, None), "*/*");
        let max = i64::MAX as u64;
        assert_eq!(content_range(max, 1, Some(3)), format!("{max}-{max}/3"));
    }
}
