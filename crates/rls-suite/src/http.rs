//! The matrix over HTTP, against anything that speaks InsForge's records API: each cell is one
//! request with the actor's token, judged by the rows an observer sees before and after.

use std::time::Duration;

use clerk_token::{ClerkTemplate, ClerkUser, Secret};
use harness::PgTarget;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::Connection;
use uuid::Uuid;

use crate::SuiteError;
use crate::fixtures::Fixtures;
use crate::matrix::{AccessMatrix, Actor, Observation, Op, Owner, Row};
use crate::todos_sql::{self, Owners, Seeded, connect};

const INSERTED: &str = "matrix: inserted";
const UPDATED: &str = "matrix: updated";

/// The bearer token (or none) each actor sends.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub a: String,
    pub b: String,
    /// Correctly signed, but with no `sub`: the HTTP form of "no claims".
    pub no_sub: String,
    pub expired: String,
    pub foreign: String,
}

impl Tokens {
    /// Tokens for A and B as Clerk would mint them, and the broken ones built from A's.
    pub fn mint(secret: &Secret, a: &ClerkUser, b: &ClerkUser) -> Result<Self, SuiteError> {
        let err = SuiteError::from;
        let template = ClerkTemplate::insforge(secret.clone());
        let mut no_sub = template.claims_for(a).map_err(err)?;
        no_sub.remove("sub");
        let expired_template = ClerkTemplate::insforge(secret.clone())
            .with_clock(clerk_token::FixedClock::new(template.now() - 61));
        Ok(Self {
            a: template.mint(a).map_err(err)?,
            b: template.mint(b).map_err(err)?,
            no_sub: template.sign_claims(&Value::Object(no_sub)).map_err(err)?,
            expired: expired_template.mint(a).map_err(err)?,
            foreign: ClerkTemplate::insforge(Secret::generate())
                .mint(a)
                .map_err(err)?,
        })
    }

    pub fn for_actor(&self, actor: Actor) -> Option<&str> {
        match actor {
            Actor::UserA => Some(&self.a),
            Actor::UserB => Some(&self.b),
            Actor::NoClaims => Some(&self.no_sub),
            Actor::Anon => None,
            Actor::Expired => Some(&self.expired),
            Actor::ForeignSecret => Some(&self.foreign),
        }
    }
}

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

/// A connection the server reset or closed before the response arrived.
fn is_reset(e: &reqwest::Error) -> bool {
    let text = send_error(e).to_ascii_lowercase();
    text.contains("connection reset")
        || text.contains("broken pipe")
        || text.contains("connection closed before message completed")
}

impl Api {
    /// `https://` bases are checked against the system's roots (`SSL_CERT_FILE` honoured) and
    /// the host name; a certificate that fails is an error, never a fallback to plain HTTP.
    pub fn new(base: &str) -> Result<Self, SuiteError> {
        // reqwest's rustls needs a process-wide crypto provider; ring, as the whole workspace
        // uses. Already installed (by this or anything else) is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .https_only(base.starts_with("https://"))
            .build()
            .map_err(|e| SuiteError::Http {
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
    ) -> Result<Reply, SuiteError> {
        let authorization = token.map(|t| format!("Bearer {t}"));
        self.request_with_authorization(method, table, query, authorization.as_deref(), body, None)
            .await
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
    ) -> Result<Reply, SuiteError> {
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
                return Err(SuiteError::Http {
                    context: url.clone(),
                    detail: send_error(&e),
                    source: e,
                });
            }
        };
        let status = resp.status();
        let text = resp.text().await.map_err(|e| SuiteError::Http {
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
}

/// Runs the HTTP matrix against an app whose database the suite can also reach as a superuser
/// (the sample app in tests): seeding and observing go through the database.
pub async fn run_with_database(
    api: &Api,
    tokens: &Tokens,
    admin: &PgTarget,
    fixtures: &Fixtures,
) -> Result<AccessMatrix, SuiteError> {
    let owners = Owners::new(fixtures)?;
    let mut admin = connect(admin).await?;
    let matrix = crate::matrix::build(
        "HTTP",
        Actor::HTTP.to_vec(),
        Op::all(&[]),
        |actor| fixtures.seeded_for_actor(actor),
        async |actor, op| {
            let seeded = todos_sql::reseed(&mut admin, fixtures, &owners).await?;
            let before = todos_sql::snapshot(&mut admin, &owners).await?;
            let probed = probe(
                api,
                "todos",
                tokens.for_actor(actor),
                &owners,
                &seeded,
                actor,
                op,
            )
            .await?;
            probed
                .observe(&before, async || {
                    todos_sql::snapshot(&mut admin, &owners).await
                })
                .await
        },
    )
    .await?;
    admin.close().await.ok();
    Ok(matrix)
}

/// What one request came to.
#[derive(Debug)]
pub enum Probed {
    NotApplicable,
    Refused(String),
    /// Succeeded; for a select, the owners of the rows returned.
    Done(Vec<Owner>),
}

impl Probed {
    /// What the request did, by the rows seen before and (if it went through) after.
    pub async fn observe(
        self,
        before: &[Row],
        after: impl AsyncFnOnce() -> Result<Vec<Row>, SuiteError>,
    ) -> Result<Observation, SuiteError> {
        Ok(match self {
            Probed::NotApplicable => Observation::not_applicable(),
            Probed::Refused(code) => Observation {
                refused: Some(code),
                ..Default::default()
            },
            Probed::Done(seen) => {
                let mut o = Observation::from_diff(before, &after().await?);
                o.seen = seen;
                o
            }
        })
    }
}

/// Sends the request for one cell.
pub async fn probe(
    api: &Api,
    table: &str,
    token: Option<&str>,
    owners: &Owners,
    seeded: &Seeded,
    actor: Actor,
    op: &Op,
) -> Result<Probed, SuiteError> {
    let own_row = actor.own().and_then(|o| seeded.first_row.get(&o).copied());
    if (op.needs_own_row() && own_row.is_none()) || (op.needs_owner() && actor.own().is_none()) {
        return Ok(Probed::NotApplicable);
    }
    let victim_id = owners.id(actor.victim()).to_owned();
    let victim_row = seeded.first_row.get(&actor.victim()).copied();
    let by_id =
        |id: Option<Uuid>| id.map_or_else(|| "id=is.null".to_owned(), |id| format!("id=eq.{id}"));
    let (method, target, query, body) = match op {
        Op::Select { target } => (
            Method::GET,
            target.as_str(),
            "select=user_id".to_owned(),
            None,
        ),
        Op::InsertOwn => (
            Method::POST,
            table,
            String::new(),
            Some(json!({ "title": INSERTED })),
        ),
        Op::InsertAsOther => (
            Method::POST,
            table,
            String::new(),
            Some(json!({ "user_id": victim_id, "title": INSERTED })),
        ),
        Op::UpdateOwn => (
            Method::PATCH,
            table,
            by_id(own_row),
            Some(json!({ "title": UPDATED })),
        ),
        Op::UpdateOthers => (
            Method::PATCH,
            table,
            by_id(victim_row),
            Some(json!({ "title": UPDATED })),
        ),
        Op::UpdateOwnToOther => (
            Method::PATCH,
            table,
            by_id(own_row),
            Some(json!({ "user_id": victim_id })),
        ),
        Op::UpdateUnfiltered => (
            Method::PATCH,
            table,
            String::new(),
            Some(json!({ "title": UPDATED })),
        ),
        Op::UpdateUnfilteredToOther => (
            Method::PATCH,
            table,
            String::new(),
            Some(json!({ "user_id": victim_id })),
        ),
        Op::DeleteOwn => (Method::DELETE, table, by_id(own_row), None),
        Op::DeleteOthers => (Method::DELETE, table, by_id(victim_row), None),
        Op::DeleteUnfiltered => (Method::DELETE, table, String::new(), None),
    };
    let reply = api
        .request(method, target, &query, token, body.as_ref())
        .await?;
    if !reply.status.is_success() {
        return Ok(Probed::Refused(reply.refusal()));
    }
    let mut seen: Vec<Owner> = reply
        .body
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|r| owners.of(r.get("user_id").and_then(Value::as_str)))
                .collect()
        })
        .unwrap_or_default();
    seen.sort();
    Ok(Probed::Done(seen))
}

/// Where the SQL and HTTP layers overlap (users A and B on `todos`), they must agree: the same
/// rows seen and changed, and a refusal in SQL is a refusal over HTTP with the same SQLSTATE.
pub fn disagreements(sql: &AccessMatrix, http: &AccessMatrix) -> Vec<String> {
    let mut out = Vec::new();
    for op in sql.ops.iter().filter(|op| http.ops.contains(op)) {
        for actor in [Actor::UserA, Actor::UserB] {
            let (Some(s), Some(h)) = (sql.cell(op, actor), http.cell(op, actor)) else {
                continue;
            };
            let (s, h) = (&s.observation, &h.observation);
            let same = match (&s.refused, &h.refused) {
                (Some(sql_code), Some(http)) => http.ends_with(sql_code.as_str()),
                (None, None) => {
                    (&s.seen, &s.inserted, &s.updated, &s.deleted)
                        == (&h.seen, &h.inserted, &h.updated, &h.deleted)
                }
                _ => false,
            };
            if !same {
                out.push(format!(
                    "{} / {}: SQL {} vs HTTP {}",
                    op.label(),
                    actor.label(),
                    s.describe(op),
                    h.describe(op)
                ));
            }
        }
    }
    out
}
