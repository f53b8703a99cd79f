//! The HTTP observer and its client: a cell's `Action` as one request to InsForge's records
//! API (`{base}/api/database/records/{table}`), with the actor's bearer token; [`Api`] is the
//! client every HTTP check (matrices, hostile tokens, pool bleed, `verify`) sends through.

use std::time::Duration;

use harness::target::quote_ident;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::engine::model::{Action, Error, Executed, SeedRow, Table};

/// A records API endpoint: `{base}/api/database/records/{table}`.
#[derive(Debug, Clone)]
pub struct Api {
    client: reqwest::Client,
    base: String,
}

/// A response, reduced to what the matrix needs.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
}

impl Reply {
    /// `401 AUTH_UNAUTHORIZED`, `403 42501`: the status and the body's error code.
    pub fn refusal(&self) -> String {
        let code = self
            .body
            .get("code")
            .or_else(|| self.body.get("error"))
            .and_then(Value::as_str);
        match code {
            Some(code) => format!("{} {code}", self.status.as_u16()),
            None => self.status.as_u16().to_string(),
        }
    }
}

/// reqwest's message plus its causes (a refused certificate is only named there), with what
/// to do about a certificate the client does not trust.
fn send_error(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    if text.contains("NotValidForName") || text.contains("not valid for name") {
        text.push_str(
            " (the certificate does not name this host — use the host name it was issued for)",
        );
    } else if text.contains("UnknownIssuer") || text.contains("invalid peer certificate") {
        text.push_str(" (the certificate is not signed by a trusted CA — set SSL_CERT_FILE to a PEM file with the CA)");
    }
    text
}

/// Headers above this size are ones a server may refuse by closing the connection (hyper's
/// default buffer is ~400 KB; the token table's "huge token" is 1 MB).
const OVERSIZED_HEADER_BYTES: usize = 256 * 1024;

/// A connection the server reset or closed before the response arrived. Behind a TLS
/// terminator (a hosted deployment's load balancer) the same reset reaches the client as a TLS
/// stream that ends without `close_notify`.
fn is_reset(e: &reqwest::Error) -> bool {
    let text = send_error(e).to_ascii_lowercase();
    text.contains("connection reset")
        || text.contains("broken pipe")
        || text.contains("connection closed before message completed")
        || text.contains("without sending tls close_notify")
        || text.contains("unexpected eof")
}

impl Api {
    /// `https://` bases are checked against the system's roots (`SSL_CERT_FILE` honoured) and
    /// the host name; a certificate that fails is an error, never a fallback to plain HTTP.
    pub fn new(base: &str) -> Result<Self, Error> {
        // reqwest's rustls needs a process-wide crypto provider; ring, as the whole workspace
        // uses. Already installed (by this or anything else) is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .https_only(base.starts_with("https://"))
            .build()
            .map_err(|e| Error::Http {
                context: format!("cannot build an HTTP client for {base}"),
                detail: send_error(&e),
                source: e,
            })?;
        Ok(Self {
            client,
            base: base.trim_end_matches('/').to_owned(),
        })
    }

    /// One request to a table with a bearer token (or none); `query` is the raw query string.
    pub async fn request(
        &self,
        method: Method,
        table: &str,
        query: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Reply, Error> {
        let authorization = token.map(|t| format!("Bearer {t}"));
        self.request_with_authorization(method, table, query, authorization.as_deref(), body, None)
            .await
    }

    /// `POST {base}/api/database/rpc/{function}` with the arguments as a JSON object, as the
    /// SDK's `.rpc()` sends it.
    pub async fn rpc(
        &self,
        function: &str,
        authorization: &str,
        args: &Value,
    ) -> Result<Reply, Error> {
        let url = format!("{}/api/database/rpc/{function}", self.base);
        let resp = self
            .client
            .post(&url)
            .header(reqwest::header::AUTHORIZATION, authorization)
            .json(args)
            .send()
            .await
            .map_err(|e| Error::Http {
                context: url.clone(),
                detail: send_error(&e),
                source: e,
            })?;
        self.reply(&url, resp).await
    }

    async fn reply(&self, url: &str, resp: reqwest::Response) -> Result<Reply, Error> {
        let status = resp.status();
        let text = resp.text().await.map_err(|e| Error::Http {
            context: format!("{url}: reading the body"),
            detail: send_error(&e),
            source: e,
        })?;
        let body = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok(Reply { status, body })
    }

    /// Like [`Api::request`], with the `Authorization` header value verbatim and a `Prefer`
    /// header (default `return=minimal`).
    pub async fn request_with_authorization(
        &self,
        method: Method,
        table: &str,
        query: &str,
        authorization: Option<&str>,
        body: Option<&Value>,
        prefer: Option<&str>,
    ) -> Result<Reply, Error> {
        let mut url = format!("{}/api/database/records/{table}", self.base);
        if !query.is_empty() {
            url.push('?');
            url.push_str(query);
        }
        let mut req = self
            .client
            .request(method, &url)
            .header("Prefer", prefer.unwrap_or("return=minimal"));
        if let Some(value) = authorization {
            req = req.header(reqwest::header::AUTHORIZATION, value);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = match req.send().await {
            Ok(resp) => resp,
            // An HTTP server refuses a header it will not buffer with 431 and closes the
            // connection while the client may still be sending it: depending on timing the
            // client reads the 431 or sees the connection reset. Both are the same refusal.
            Err(e)
                if authorization.is_some_and(|a| a.len() > OVERSIZED_HEADER_BYTES)
                    && is_reset(&e) =>
            {
                return Ok(Reply {
                    status: StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    body: serde_json::json!({
                        "message": "the server closed the connection on an oversized header \
                                    (read as 431; the response itself was lost to the reset)"
                    }),
                });
            }
            Err(e) => {
                return Err(Error::Http {
                    context: url.clone(),
                    detail: send_error(&e),
                    source: e,
                });
            }
        };
        self.reply(&url, resp).await
    }
}

/// A column name as PostgREST's `select=` takes it: plain when it is a simple lower-case
/// identifier, else quoted as Postgres quotes an identifier.
fn select_name(column: &str) -> String {
    let simple = column
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if simple && !column.is_empty() {
        column.to_owned()
    } else {
        quote_ident(column)
    }
}

/// `select=` of the table's primary key columns.
pub(crate) fn select_list(table: &Table) -> String {
    let cols: Vec<String> = table.pk.iter().map(|c| select_name(c)).collect();
    format!("select={}", encode(&cols.join(",")))
}

fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// `col=eq.value&…` selecting exactly the row whose key (as the engine writes it, a JSON array
/// of the primary key's values) is `key`.
fn key_filter(table: &Table, key: &str) -> Result<String, Error> {
    let values: Vec<Value> = serde_json::from_str(key).map_err(|e| {
        Error::Endpoint(format!(
            "internal: a primary key that is not a JSON array ({key}): {e}"
        ))
    })?;
    Ok(table
        .pk
        .iter()
        .zip(values)
        .map(|(col, v)| {
            let op = match v {
                Value::Null => "is.null".to_owned(),
                Value::String(s) => format!("eq.{s}"),
                other => format!("eq.{other}"),
            };
            format!("{}={}", encode(col), encode(&op))
        })
        .collect::<Vec<_>>()
        .join("&"))
}

/// The engine's key for a row the API returned: the seed row whose key values match, else the
/// values themselves.
pub(crate) fn key_of(table: &Table, seeds: &[SeedRow], row: &Value) -> String {
    let values = Value::Array(
        table
            .pk
            .iter()
            .map(|c| row.get(c).cloned().unwrap_or(Value::Null))
            .collect(),
    );
    seeds
        .iter()
        .find(|s| serde_json::from_str::<Value>(&s.pk).ok().as_ref() == Some(&values))
        .map_or_else(|| values.to_string(), |s| s.pk.clone())
}

/// The code a refusal carries: PostgREST's `code` (a SQLSTATE such as `42501`, or `PGRST…`),
/// InsForge's `error`, else the HTTP status.
pub(crate) fn refusal_code(reply: &Reply) -> String {
    let code = reply.body.get("code").and_then(Value::as_str);
    // A 403 without Postgres's SQLSTATE (InsForge's own error body names no `code`) is a
    // privilege refusal as surely as a 42501: it reads as "403", which the judge treats alike.
    if code.is_none() && reply.status.as_u16() == 403 {
        return "403".into();
    }
    code.or_else(|| reply.body.get("error").and_then(Value::as_str))
        .map_or_else(|| reply.status.as_u16().to_string(), str::to_owned)
}

pub(crate) async fn execute(
    api: &Api,
    authorization: &str,
    table: &Table,
    seeds: &[SeedRow],
    action: &Action,
) -> Result<Executed, Error> {
    Ok(execute_as(api, Some(authorization), table, seeds, action)
        .await?
        .0)
}

/// [`execute`] with any `Authorization` header (or none), and the HTTP status it got (0 when
/// no request was sent): the API-only run tells a token turned away (401) from a refusal in
/// the database.
pub(crate) async fn execute_as(
    api: &Api,
    authorization: Option<&str>,
    table: &Table,
    seeds: &[SeedRow],
    action: &Action,
) -> Result<(Executed, u16), Error> {
    let name = table.spec.name.as_str();
    let (method, resource, query, body) = match action {
        Action::Select { via } => {
            let resource = match via {
                None => name,
                Some(i) => match &table.readers[*i].view {
                    Some(view) => view.as_str(),
                    None => return Ok((Executed::Unsupported("n/a over HTTP (a function)"), 0)),
                },
            };
            (Method::GET, resource, select_list(table), None)
        }
        Action::Insert { row } => (Method::POST, name, String::new(), Some(row)),
        Action::Update { target, set } => (
            Method::PATCH,
            name,
            match target {
                Some(key) => key_filter(table, key)?,
                None => String::new(),
            },
            Some(set),
        ),
        Action::Delete { target } => (
            Method::DELETE,
            name,
            match target {
                Some(key) => key_filter(table, key)?,
                None => String::new(),
            },
            None,
        ),
    };
    let reply = api
        .request_with_authorization(
            method,
            resource,
            &query,
            authorization,
            body,
            Some("return=minimal"),
        )
        .await?;
    let status = reply.status.as_u16();
    if !reply.status.is_success() {
        return Ok((
            Executed::Done {
                seen: Vec::new(),
                refused: Some(refusal_code(&reply)),
            },
            status,
        ));
    }
    let seen = match action {
        Action::Select { .. } => match reply.body.as_array() {
            Some(rows) => rows.iter().map(|r| key_of(table, seeds, r)).collect(),
            None => {
                return Err(Error::Endpoint(format!(
                    "GET {resource} answered {} with a body that is not a JSON array — not \
                     InsForge's records API?",
                    reply.status
                )));
            }
        },
        _ => Vec::new(),
    };
    Ok((
        Executed::Done {
            seen,
            refused: None,
        },
        status,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_names_quote_what_postgrest_would_misread() {
        assert_eq!(select_name("owner_id"), "owner_id");
        assert_eq!(select_name("Owner"), "\"Owner\"");
        assert_eq!(select_name("a\"b c"), "\"a\"\"b c\"");
    }

    fn reply(status: u16, body: Value) -> Reply {
        Reply {
            status: reqwest::StatusCode::from_u16(status).unwrap(),
            body,
        }
    }

    #[test]
    fn a_403_names_its_sqlstate_when_it_has_one_else_reads_403() {
        let code = |status, body| refusal_code(&reply(status, body));
        assert_eq!(code(403, serde_json::json!({"code": "42501"})), "42501");
        assert_eq!(
            code(
                403,
                serde_json::json!({"error": "FORBIDDEN", "statusCode": 403})
            ),
            "403"
        );
        assert_eq!(
            code(401, serde_json::json!({"error": "AUTH_UNAUTHORIZED"})),
            "AUTH_UNAUTHORIZED"
        );
    }
}
