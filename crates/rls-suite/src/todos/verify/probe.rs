//! One cell of verify's matrix over HTTP, against anything that speaks InsForge's records API:
//! the request with the actor's token, judged by the rows an observer sees before and after.

use clerk_token::{ClerkTemplate, ClerkUser, Secret};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use std::collections::HashMap;

use super::cells::{Actor, Observation, Op, Owner, Row};
use crate::engine::Error;
use crate::engine::observe::Api;

const INSERTED: &str = "matrix: inserted";
const UPDATED: &str = "matrix: updated";

/// Seeded row ids: the first row of each owner, for "own" and "other's" operations.
#[derive(Debug, Clone)]
pub struct Seeded {
    pub first_row: HashMap<Owner, Uuid>,
}

/// Maps `user_id` values to the matrix's owners.
#[derive(Debug, Clone)]
pub struct Owners {
    by_id: HashMap<String, Owner>,
    pub a: String,
    pub b: String,
    pub bystander: String,
}

impl Owners {
    pub fn from_ids(a: &str, b: &str, bystander: &str) -> Self {
        let by_id = HashMap::from([
            (a.to_owned(), Owner::A),
            (b.to_owned(), Owner::B),
            (bystander.to_owned(), Owner::Bystander),
        ]);
        Self {
            by_id,
            a: a.to_owned(),
            b: b.to_owned(),
            bystander: bystander.to_owned(),
        }
    }

    /// Whether a `user_id` is one of the three.
    pub fn knows(&self, user_id: &str) -> bool {
        self.by_id.contains_key(user_id)
    }

    pub fn of(&self, user_id: Option<&str>) -> Owner {
        user_id
            .and_then(|id| self.by_id.get(id).copied())
            .unwrap_or(Owner::Unknown)
    }

    pub fn id(&self, owner: Owner) -> &str {
        if owner == Owner::A { &self.a } else { &self.b }
    }
}

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
    pub fn mint(secret: &Secret, a: &ClerkUser, b: &ClerkUser) -> Result<Self, Error> {
        let err = Error::from;
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
        after: impl AsyncFnOnce() -> Result<Vec<Row>, Error>,
    ) -> Result<Observation, Error> {
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
) -> Result<Probed, Error> {
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
