//! Hostile and unusual bearer tokens, built from the table in `fixtures/tokens.json`: every way
//! a token can lie, break or be odd, each with the status and error the contract promises.

use clerk_token::forge::{
    Algorithm, CLERK_HEADER_JSON, b64url, sign_hs256_raw, sign_parts, sign_parts_with,
};
use clerk_token::{ClerkTemplate, ClerkUser, Secret};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::model::Error;

/// What the contract says a case gets.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Expected {
    pub status: u16,
    /// InsForge's `error` or PostgREST's `code` in the body.
    pub error: Option<String>,
}

/// One row of `fixtures/tokens.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenCase {
    pub case: String,
    pub header: Option<String>,
    #[serde(default)]
    pub set: Map<String, Value>,
    #[serde(default)]
    pub remove: Vec<String>,
    pub exp_offset: Option<i64>,
    pub nbf_offset: Option<i64>,
    pub iat_offset: Option<i64>,
    pub payload_raw: Option<String>,
    pub sign: Option<String>,
    pub mangle: Option<String>,
    pub authorization: Option<String>,
    pub expect: Expected,
}

/// The hostile-token table, built into the binary: `insforge-rls` runs it from a team's own
/// repository, where this workspace's `fixtures/` does not exist.
const TOKENS_JSON: &str = include_str!("../../../../fixtures/tokens.json");

/// Where the table came from, for messages (`fixtures/tokens.json` of this repository).
fn tokens_path() -> std::path::PathBuf {
    std::path::PathBuf::from("fixtures/tokens.json")
}

pub fn cases() -> Result<Vec<TokenCase>, Error> {
    #[derive(Deserialize)]
    struct File {
        cases: Vec<TokenCase>,
    }
    let file: File = serde_json::from_str(TOKENS_JSON).map_err(|source| Error::FixtureJson {
        path: tokens_path(),
        source,
    })?;
    Ok(file.cases)
}

fn fill(text: &str, vars: &[(&str, String)]) -> String {
    vars.iter().fold(text.to_owned(), |t, (k, v)| {
        t.replace(&format!("{{{k}}}"), v)
    })
}

fn fill_value(value: &Value, vars: &[(&str, String)]) -> Value {
    match value {
        Value::String(s) => Value::String(fill(s, vars)),
        Value::Array(items) => Value::Array(items.iter().map(|v| fill_value(v, vars)).collect()),
        other => other.clone(),
    }
}

impl TokenCase {
    /// The `Authorization` header value this case sends, for user A (`b_id` is user B's id).
    pub fn authorization(
        &self,
        secret: &Secret,
        a: &ClerkUser,
        b_id: &str,
    ) -> Result<String, Error> {
        let err = Error::from;
        let template = ClerkTemplate::insforge(secret.clone());
        let now = template.now();
        let mut claims = template.claims_for(a).map_err(err)?;
        for (key, offset) in [
            ("exp", self.exp_offset),
            ("nbf", self.nbf_offset),
            ("iat", self.iat_offset),
        ] {
            if let Some(offset) = offset {
                claims.insert(key.into(), Value::from(now + offset));
            }
        }
        let num = |k: &str| claims.get(k).map(Value::to_string).unwrap_or_default();
        let vars = [
            ("sub_a", a.id.clone()),
            ("sub_b", b_id.to_owned()),
            ("exp", num("exp")),
            ("nbf", num("nbf")),
            ("iat", num("iat")),
        ];
        for (key, value) in &self.set {
            claims.insert(key.clone(), fill_value(value, &vars));
        }
        for key in &self.remove {
            claims.remove(key);
        }
        if self.mangle.as_deref() == Some("huge") {
            claims.insert("pad".into(), Value::String("x".repeat(1_000_000)));
        }
        let payload = match &self.payload_raw {
            Some(raw) => fill(raw, &vars),
            None => Value::Object(claims).to_string(),
        };
        let header = self.header.as_deref().unwrap_or(CLERK_HEADER_JSON);
        let (h, p) = (b64url(header), b64url(&payload));
        let token = match self.sign.as_deref().unwrap_or("hs256") {
            "hs256" => sign_hs256_raw(secret, header, &payload).map_err(err)?,
            "hs384" => sign_parts_with(Algorithm::HS384, secret, &h, &p).map_err(err)?,
            "hs512" => sign_parts_with(Algorithm::HS512, secret, &h, &p).map_err(err)?,
            "none" => format!("{h}.{p}."),
            "other_secret" => sign_hs256_raw(&Secret::generate(), header, &payload).map_err(err)?,
            "bad_signature" => {
                let signed = sign_hs256_raw(secret, header, &payload).map_err(err)?;
                let (body, sig) = signed.rsplit_once('.').unwrap_or((&signed, ""));
                // Changing the first character always changes the decoded bytes.
                let flipped: String = sig
                    .chars()
                    .enumerate()
                    .map(|(i, c)| {
                        if i == 0 {
                            if c == 'A' { 'B' } else { 'A' }
                        } else {
                            c
                        }
                    })
                    .collect();
                format!("{body}.{flipped}")
            }
            other => {
                return Err(Error::Fixture {
                    path: tokens_path(),
                    message: format!("case `{}`: unknown sign `{other}`", self.case),
                });
            }
        };
        let token = match self.mangle.as_deref() {
            None | Some("huge") => token,
            Some("truncate") => token[..token.len().saturating_sub(10)].to_owned(),
            Some("two_parts") => format!("{h}.{p}"),
            Some("four_parts") => format!("{token}.{p}"),
            Some("non_base64_payload") => sign_parts(secret, &h, "%%not*base64%%").map_err(err)?,
            Some(other) => {
                return Err(Error::Fixture {
                    path: tokens_path(),
                    message: format!("case `{}`: unknown mangle `{other}`", self.case),
                });
            }
        };
        Ok(fill(
            self.authorization.as_deref().unwrap_or("Bearer {token}"),
            &[("token", token)],
        ))
    }
}
