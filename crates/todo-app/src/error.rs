//! Every way a request can fail, and the one place each becomes an HTTP response.
//! Auth failures use InsForge's body shape; everything else PostgREST's `{code,details,hint,message}`.
//!
//! Status codes follow PostgREST 12 (ARCHITECTURE.md, "InsForge's records API") with these
//! choices of our own:
//!
//! - database unreachable, pool exhausted or a connection lost mid-request: 503, code
//!   `PGRST000`, message "Database connection error" and nothing else (PostgREST uses 504
//!   `PGRST003` for a pool timeout; one code keeps clients simple and says "retry later");
//! - statement timeout (`57014`): 500, as PostgREST maps every class-57 error. The request
//!   was well-formed and may succeed later, but a 504 would claim a gateway timed out;
//! - codes PostgREST does not have are prefixed `APP`: `APP413` (body over the limit),
//!   `APP404` / `APP405` (no such route / method), `APP500` (an unexpected failure whose
//!   details are only logged), and for dev sign-in `APP400` (no such local user) and `APP403`
//!   (not a same-origin request to a loopback host).
//!
//! Bodies never contain SQL text, connection strings, tokens or secrets: Postgres errors carry
//! only their SQLSTATE, message, detail and hint (not the query, position or context).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::db::{DbError, PgError};
use crate::parse_error::{ParseError, echo};

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No `Authorization: Bearer …` at all (or another scheme).
    #[error("no token provided")]
    MissingToken,
    /// A token that failed verification; which check failed is only logged.
    #[error("invalid token")]
    InvalidToken,
    /// A valid token whose role is not `authenticated`.
    #[error("token role not allowed")]
    RoleNotAllowed,
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// A name that is no table or view of the exposed schema (in the snapshot the request
    /// started with).
    #[error("unknown table")]
    UnknownTable { schema: String, name: String },
    /// A POST or PATCH naming columns of an unknown table.
    #[error("unknown table")]
    UnknownTableForWrite,
    /// A table name InsForge refuses before proxying (empty, or with `"` or a control character).
    #[error("invalid table name")]
    InvalidTableName { reason: InvalidTableName },
    /// A function name InsForge refuses before proxying (`validateFunctionName`).
    #[error("invalid function name")]
    InvalidFunctionName { reason: InvalidTableName },
    /// `/rpc/<fn>`: no function of that name whose parameters match the arguments' keys
    /// (PostgREST's `NoRpc`, 404 `PGRST202`).
    #[error("unknown function")]
    NoRpc {
        schema: String,
        name: String,
        /// The arguments' keys, sorted (PostgREST lists `S.toList` of a set).
        keys: Vec<String>,
        /// A POST with a JSON body (PostgREST then also looked for one unnamed json parameter).
        post_json: bool,
    },
    /// `/rpc/<fn>`: more than one overload matches (PostgREST's `AmbiguousRpc`, 300 `PGRST203`).
    #[error("ambiguous function call")]
    AmbiguousRpc {
        /// Each candidate as `schema.name(a => type, …)`.
        candidates: Vec<String>,
    },
    /// A POST/PATCH body that is not JSON by its `Content-Type`.
    #[error("unsupported content type")]
    UnsupportedMediaType(String),
    #[error("request body too large")]
    PayloadTooLarge { limit: usize },
    /// The body could not be read (client went away, bad chunking).
    #[error("request body could not be read")]
    BodyUnreadable,
    /// `count=exact` with an offset past the last row.
    #[error("requested range not satisfiable")]
    RangeNotSatisfiable { offset: i64, total: i64 },
    /// `Accept: application/vnd.pgrst.object+json` and not exactly one row.
    #[error("singular response requested but {rows} rows matched")]
    NotSingular { rows: i64 },
    /// An error Postgres raised for the statement.
    #[error("database error {}", .0.code)]
    Database(PgError),
    /// Postgres cannot be reached, or no connection became free in time.
    #[error("database unavailable")]
    Unavailable,
    #[error("no such route")]
    RouteNotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Something that should not happen; the cause is logged where it is detected.
    #[error("internal error")]
    Internal,
    /// `POST /dev/token` for a key the users file does not list.
    #[error("unknown local test user")]
    UnknownDevUser { key: String, known: Vec<String> },
    /// A dev sign-in request to a non-loopback `Host`, or from another origin.
    #[error("dev sign-in refused: not a local same-origin request")]
    DevNotLocal,
}

/// Why InsForge's `validateTableName` refuses a name (`backend/src/utils/validations.ts`,
/// InsForge v2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidTableName {
    /// Empty or only whitespace.
    Empty,
    /// A `"` or an ASCII control character (0x00–0x1F, 0x7F).
    QuoteOrControl,
}

impl InvalidTableName {
    /// What InsForge checks first: `!name || !name.trim()`, then `/^[^"\x00-\x1F\x7F]+$/`.
    /// (JavaScript's `trim` removes Unicode white space too, as Rust's does.)
    pub fn check(name: &str) -> Result<(), Self> {
        if name.trim().is_empty() {
            Err(Self::Empty)
        } else if name.chars().any(|c| c == '"' || c.is_ascii_control()) {
            Err(Self::QuoteOrControl)
        } else {
            Ok(())
        }
    }
}

/// InsForge's `validateIdentifier(name, type)` error (`backend/src/utils/validations.ts` at
/// v2.3.1), in its own error shape: `type` is `table` (records) or `function` (rpc).
fn invalid_identifier(kind: &str, reason: InvalidTableName) -> Response {
    let (message, next) = match reason {
        InvalidTableName::Empty => (
            format!("Invalid {kind} name: cannot be empty"),
            format!("Please provide a valid {kind} name"),
        ),
        InvalidTableName::QuoteOrControl => (
            format!("Invalid {kind} name: cannot contain quotes or control characters"),
            format!(
                "The {kind} name cannot contain double quotes or control characters \
                 (tabs, newlines, etc.)"
            ),
        ),
    };
    let body = json!({
        "error": "DATABASE_VALIDATION_ERROR",
        "message": message,
        "statusCode": 400,
        "nextActions": next,
    });
    json_response(StatusCode::BAD_REQUEST, &body)
}

/// The database layer's failures, as the client sees them; causes are logged where detected.
impl From<DbError> for ApiError {
    fn from(error: DbError) -> Self {
        match error {
            DbError::Statement(pg) => Self::Database(pg),
            DbError::Unavailable(_) => Self::Unavailable,
            DbError::NotSingular { rows } => Self::NotSingular { rows },
            DbError::Identity(_) | DbError::Driver(_) => Self::Internal,
        }
    }
}

/// The schema could not be read (only while no snapshot was ever loaded): as a database
/// failure, so an unreachable database is 503 `PGRST000` like every other request.
/// (PostgREST 12 says 503 `PGRST002`, "Could not query the database for the schema cache.
/// Retrying."; one code for "retry later" keeps clients simple.)
impl From<crate::catalog::SchemaError> for ApiError {
    fn from(error: crate::catalog::SchemaError) -> Self {
        DbError::from(error).into()
    }
}

/// PostgREST 12's status for a SQLSTATE raised while serving a signed-in user.
pub fn pg_status(code: &str) -> StatusCode {
    let class = code.get(..2).unwrap_or("");
    match code {
        "23503" | "23505" => StatusCode::CONFLICT,
        "25006" => StatusCode::METHOD_NOT_ALLOWED,
        // PostgREST sends every 42883 (undefined function) as 404. Here it is 400: on the
        // records API it means an operator that does not fit the column (`like` on a uuid);
        // `/rpc` only calls functions of the snapshot, so it meets 42883 only when one was
        // dropped since the last reload (PostgREST: 404).
        "42P01" => StatusCode::NOT_FOUND,
        "42P17" | "53400" => StatusCode::INTERNAL_SERVER_ERROR,
        // Signed in: a privilege error (including a failed RLS WITH CHECK) is 403, not 401.
        "42501" => StatusCode::FORBIDDEN,
        "57P01" => StatusCode::SERVICE_UNAVAILABLE,
        "P0001" => StatusCode::BAD_REQUEST,
        _ => match class {
            "08" | "53" => StatusCode::SERVICE_UNAVAILABLE,
            "0L" | "0P" | "28" => StatusCode::FORBIDDEN,
            "09" | "25" | "2D" | "38" | "39" | "3B" | "40" | "54" | "55" | "57" | "58" | "F0"
            | "HV" | "P0" | "XX" => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        },
    }
}

fn pgrst(status: StatusCode, code: &str, message: &str, details: Option<&str>) -> Response {
    pgrst_hint(status, code, message, details, None)
}

fn pgrst_hint(
    status: StatusCode,
    code: &str,
    message: &str,
    details: Option<&str>,
    hint: Option<&str>,
) -> Response {
    let body = json!({ "code": code, "details": details, "hint": hint, "message": message });
    json_response(status, &body)
}

fn insforge(status: StatusCode, error: &str, message: &str, challenge: &'static str) -> Response {
    let body = json!({ "error": error, "message": message, "statusCode": status.as_u16() });
    let mut response = json_response(status, &body);
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        );
    }
    response
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        )],
        body.to_string(),
    )
        .into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::MissingToken => insforge(
                StatusCode::UNAUTHORIZED,
                "AUTH_INVALID_CREDENTIALS",
                "No token provided",
                "Bearer",
            ),
            Self::InvalidToken => insforge(
                StatusCode::UNAUTHORIZED,
                "AUTH_UNAUTHORIZED",
                "Invalid token",
                "Bearer error=\"invalid_token\"",
            ),
            // Stricter than InsForge, which lets `project_admin` through (bypassing RLS):
            // this API serves end users only, and RLS must always apply.
            Self::RoleNotAllowed => insforge(
                StatusCode::FORBIDDEN,
                "AUTH_FORBIDDEN",
                "Token role not allowed: only the authenticated role may use the records API",
                "",
            ),
            Self::Parse(ParseError::Syntax { message, details }) => pgrst(
                StatusCode::BAD_REQUEST,
                "PGRST100",
                &message,
                Some(&details),
            ),
            Self::Parse(e @ ParseError::UnknownColumn { .. }) => {
                pgrst(StatusCode::BAD_REQUEST, "42703", &e.to_string(), None)
            }
            Self::Parse(e @ ParseError::UnknownWriteColumn { .. }) => {
                pgrst(StatusCode::BAD_REQUEST, "PGRST204", &e.to_string(), None)
            }
            // `toJSON (NoRelBetween …)`, `Error.hs` at v12.2.12; its hint is a fuzzy guess
            // ("Perhaps you meant …"), null here.
            Self::Parse(e @ ParseError::NoRelationship { .. }) => {
                let ParseError::NoRelationship {
                    parent,
                    child,
                    schema,
                } = &e
                else {
                    return pgrst(StatusCode::BAD_REQUEST, "PGRST200", &e.to_string(), None);
                };
                let details = format!(
                    "Searched for a foreign key relationship between '{parent}' and '{child}' in the schema '{schema}', but no matches were found."
                );
                pgrst(
                    StatusCode::BAD_REQUEST,
                    "PGRST200",
                    &e.to_string(),
                    Some(&details),
                )
            }
            // `AmbiguousRelBetween`: 300 (its details list the candidates; here null).
            Self::Parse(e @ ParseError::AmbiguousRelationship { .. }) => pgrst(
                StatusCode::MULTIPLE_CHOICES,
                "PGRST201",
                &e.to_string(),
                None,
            ),
            Self::Parse(ParseError::InvalidBody { message, details }) => pgrst(
                StatusCode::BAD_REQUEST,
                "PGRST102",
                message,
                details.as_deref(),
            ),
            // PostgREST 12.2 (InsForge 2.3 pins v12.2.12) has no schema-cache error for an
            // unknown table: it runs the query and Postgres answers 42P01, which it maps to 404
            // (`pgErrorStatus`, `src/PostgREST/Error.hs` at v12.2.12). (13.0 added PGRST205
            // "Could not find the table 'public.x' in the schema cache".) InsForge passes the
            // status and body through (`handleProxyError`, `records.routes.ts` at v2.3.1).
            Self::UnknownTable { schema, name } => pgrst(
                StatusCode::NOT_FOUND,
                "42P01",
                &format!("relation \"{schema}.{}\" does not exist", echo(&name)),
                None,
            ),
            // PostgREST 12.2 resolves a write's columns against its schema cache first and
            // answers `NotFound` (404, body `{}`) when the table is not there
            // (`resolveOrError`, `src/PostgREST/Plan.hs` at v12.2.12).
            Self::UnknownTableForWrite => json_response(StatusCode::NOT_FOUND, &json!({})),
            // InsForge refuses these before PostgREST sees them (`validateIdentifier`,
            // `backend/src/utils/validations.ts` at v2.3.1), in its own error shape.
            Self::InvalidTableName { reason } => invalid_identifier("table", reason),
            Self::InvalidFunctionName { reason } => invalid_identifier("function", reason),
            // `toJSON (NoRpc …)` and `noRpcHint`, `src/PostgREST/Error.hs` at v12.2.12. The hint
            // there is a fuzzy match over the schema's function names (or the overloads'
            // parameter lists); the stand-in does not guess and says null.
            Self::NoRpc {
                schema,
                name,
                keys,
                post_json,
            } => {
                let func = format!("{schema}.{}", echo(&name));
                let prms = keys.iter().map(|k| echo(k)).collect::<Vec<_>>().join(", ");
                let (message_prms, details_prms) = if keys.is_empty() {
                    (
                        " without parameters".to_owned(),
                        " without parameters".to_owned(),
                    )
                } else {
                    (
                        format!("({prms})"),
                        format!(
                            " with parameter{} {prms}",
                            if keys.len() > 1 { "s" } else { "" }
                        ),
                    )
                };
                let details_tail = if post_json {
                    " or with a single unnamed json/jsonb parameter"
                } else {
                    ""
                };
                pgrst(
                    StatusCode::NOT_FOUND,
                    "PGRST202",
                    &format!(
                        "Could not find the function {func}{message_prms} in the schema cache"
                    ),
                    Some(&format!(
                        "Searched for the function {func}{details_prms}{details_tail}, but no matches were found in the schema cache."
                    )),
                )
            }
            // `toJSON (AmbiguousRpc procs)`, `Error.hs`; status 300 (`status AmbiguousRpc{}`).
            Self::AmbiguousRpc { candidates } => {
                let body = json!({
                    "code": "PGRST203",
                    "details": null,
                    "hint": "Try renaming the parameters or the function itself in the database so function overloading can be resolved",
                    "message": format!(
                        "Could not choose the best candidate function between: {}",
                        candidates.join(", ")
                    ),
                });
                json_response(StatusCode::MULTIPLE_CHOICES, &body)
            }
            Self::UnsupportedMediaType(content_type) => pgrst(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "PGRST107",
                &format!(
                    "The request's Content-Type is not acceptable: {}",
                    echo(&content_type)
                ),
                None,
            ),
            Self::PayloadTooLarge { limit } => pgrst(
                StatusCode::PAYLOAD_TOO_LARGE,
                "APP413",
                "Request body is too large",
                Some(&format!("the limit is {limit} bytes")),
            ),
            Self::BodyUnreadable => pgrst(
                StatusCode::BAD_REQUEST,
                "PGRST102",
                "Empty or invalid json",
                Some("the request body could not be read"),
            ),
            Self::RangeNotSatisfiable { offset, total } => pgrst(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "PGRST103",
                "Requested range not satisfiable",
                Some(&format!(
                    "An offset of {offset} was requested, but there are only {total} rows."
                )),
            ),
            Self::NotSingular { rows } => pgrst(
                StatusCode::NOT_ACCEPTABLE,
                "PGRST116",
                "JSON object requested, multiple (or no) rows returned",
                Some(&format!("The result contains {rows} rows")),
            ),
            Self::Database(e) => pgrst_hint(
                pg_status(&e.code),
                &e.code,
                &e.message,
                e.detail.as_deref(),
                e.hint.as_deref(),
            ),
            Self::Unavailable => pgrst(
                StatusCode::SERVICE_UNAVAILABLE,
                "PGRST000",
                "Database connection error",
                None,
            ),
            Self::RouteNotFound => pgrst(StatusCode::NOT_FOUND, "APP404", "Not found", None),
            Self::MethodNotAllowed => pgrst(
                StatusCode::METHOD_NOT_ALLOWED,
                "APP405",
                "Method not allowed",
                None,
            ),
            Self::Internal => pgrst(
                StatusCode::INTERNAL_SERVER_ERROR,
                "APP500",
                "Internal server error",
                None,
            ),
            Self::UnknownDevUser { key, known } => pgrst(
                StatusCode::BAD_REQUEST,
                "APP400",
                &format!("No local test user named \"{}\"", echo(&key)),
                Some(&format!("known users: {}", known.join(", "))),
            ),
            Self::DevNotLocal => pgrst(
                StatusCode::FORBIDDEN,
                "APP403",
                "Dev sign-in only answers same-origin requests to a loopback host",
                Some("open the app at http://127.0.0.1:<port> or http://localhost:<port>"),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_postgrest() {
        for (code, status) in [
            ("22P02", 400),
            ("23502", 400),
            ("23514", 400),
            ("42703", 400),
            ("23505", 409),
            ("23503", 409),
            ("42501", 403),
            ("57014", 500),
            ("42P01", 404),
            ("42883", 400),
            ("08006", 503),
            ("53300", 503),
            ("40001", 500),
            ("", 400),
        ] {
            assert_eq!(pg_status(code).as_u16(), status, "{code}");
        }
    }
}
