//! Live verification against any InsForge-compatible endpoint (the sample app, or a real
//! InsForge project with its JWT secret) **without a database and without a spec**: the HTTP
//! matrix and the token table, with synthetic users whose rows are removed afterwards.
//! Everything is observed through the API itself. The report is engine types (a
//! [`TableMatrix`] of [`Verdict`]s, the hostile-token table as [`HostileRow`]s, rendered by the
//! engine's report); the cells are probed by the private `cells`/`probe` modules, because the
//! engine's observers seed and observe through a database (ARCHITECTURE.md).

mod cells;
mod probe;

use std::collections::BTreeMap;

use clerk_token::{ClerkTemplate, ClerkUser, Secret};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use self::cells::{Actor, Observation, Op, Owner, Row};
use self::probe::{Owners, Seeded, Tokens, probe};
use crate::engine::Error;
use crate::engine::Verdict;
use crate::engine::hostile::HostileRow;
use crate::engine::observe::{Api, Reply};
use crate::engine::report::{TableMatrix, render_hostile};

/// Rows each synthetic user starts with: A and B two each, the bystander one.
const SEED: [(Owner, usize); 3] = [(Owner::A, 2), (Owner::B, 2), (Owner::Bystander, 1)];

#[derive(Debug, Clone)]
pub struct VerifyOptions {
    pub base_url: String,
    pub secret: Secret,
    pub table: String,
}

#[derive(Debug, Clone)]
pub struct VerifyReport {
    pub base_url: String,
    pub table: String,
    /// Operations down, actors across (user A, user B, no claims, anon, expired, other secret).
    pub matrix: TableMatrix,
    /// User A's token tampered each way of `fixtures/tokens.json`: a read and an unfiltered PATCH.
    pub tokens: Vec<HostileRow>,
    /// Synthetic rows the cleanup could not remove (e.g. no DELETE policy).
    pub leftovers: Vec<String>,
}

impl VerifyReport {
    pub fn leaks(&self) -> Vec<String> {
        let mut out = self.matrix.leaks();
        out.extend(self.tokens.iter().filter_map(|t| match &t.verdict {
            Verdict::Leak(why) => Some(format!("[token] {}: {why}", t.case)),
            _ => None,
        }));
        out
    }

    /// 0 clean, 1 any leak, 3 lost access but no leak.
    pub fn exit_code(&self) -> u8 {
        if !self.leaks().is_empty() {
            1
        } else if !self.matrix.lost_access().is_empty() {
            3
        } else {
            0
        }
    }

    pub fn render(&self) -> String {
        let mut out = format!(
            "verify {} (table {})\n\nHTTP (live) access matrix (A = user A, B = user B, M = bystander; n = rows)\n{}\n",
            self.base_url,
            self.table,
            self.matrix.render()
        );
        out.push_str(&render_hostile(&self.tokens));
        let (leaks, lost) = (self.leaks(), self.matrix.lost_access());
        out.push('\n');
        for l in &leaks {
            out.push_str(&format!("LEAK  {l}\n"));
        }
        for l in &lost {
            out.push_str(&format!("LOST  {l}\n"));
        }
        for l in &self.leftovers {
            out.push_str(&format!("LEFT  synthetic row not removed: {l}\n"));
        }
        out.push_str(&format!(
            "{} leaks, {} lost-access findings, {} token cases, {} leftover rows\n",
            leaks.len(),
            lost.len(),
            self.tokens.len(),
            self.leftovers.len()
        ));
        out
    }
}

struct Live {
    api: Api,
    table: String,
    owners: Owners,
    /// A long-lived token per synthetic user, for seeding, observing and cleaning up.
    tokens: BTreeMap<Owner, String>,
}

impl Live {
    async fn call(
        &self,
        method: Method,
        query: &str,
        owner: Owner,
        body: Option<&Value>,
        prefer: &str,
    ) -> Result<Reply, Error> {
        let auth = format!("Bearer {}", self.tokens[&owner]);
        self.api
            .request_with_authorization(method, &self.table, query, Some(&auth), body, Some(prefer))
            .await
    }

    /// Each user's view of their rows, merged: the observer is the owners themselves.
    async fn snapshot(&self) -> Result<Vec<Row>, Error> {
        let mut rows = BTreeMap::new();
        for owner in self.tokens.keys() {
            let reply = self
                .call(
                    Method::GET,
                    "select=id,user_id,title,is_complete&limit=1000",
                    *owner,
                    None,
                    "return=minimal",
                )
                .await?;
            for r in reply.body.as_array().into_iter().flatten() {
                let user_id = r["user_id"].as_str().unwrap_or_default();
                let Some(id) = r["id"].as_str().and_then(|s| Uuid::parse_str(s).ok()) else {
                    continue;
                };
                if self.owners.knows(user_id) {
                    rows.insert(
                        id,
                        Row {
                            id,
                            owner: self.owners.of(Some(user_id)),
                            title: r["title"].as_str().unwrap_or_default().to_owned(),
                            is_complete: r["is_complete"].as_bool().unwrap_or(false),
                        },
                    );
                }
            }
        }
        Ok(rows.into_values().collect())
    }

    /// Removes every synthetic row its owner can delete.
    async fn clear(&self) -> Result<(), Error> {
        for owner in self.tokens.keys() {
            let id = self.user_id(*owner);
            self.call(
                Method::DELETE,
                &format!("user_id=eq.{id}"),
                *owner,
                None,
                "return=minimal",
            )
            .await?;
        }
        Ok(())
    }

    fn user_id(&self, owner: Owner) -> String {
        match owner {
            Owner::A => self.owners.a.clone(),
            Owner::B => self.owners.b.clone(),
            _ => self.owners.bystander.clone(),
        }
    }

    async fn reseed(&self) -> Result<Seeded, Error> {
        self.clear().await?;
        let mut first_row = std::collections::HashMap::new();
        for (owner, n) in SEED {
            for i in 0..n {
                let body = json!({ "title": format!("rls-verify {owner:?} #{i}") });
                let reply = self
                    .call(
                        Method::POST,
                        "select=id",
                        owner,
                        Some(&body),
                        "return=representation",
                    )
                    .await?;
                let id = reply
                    .body
                    .get(0)
                    .and_then(|r| r["id"].as_str())
                    .and_then(|s| Uuid::parse_str(s).ok());
                let Some(id) = id else {
                    return Err(Error::Endpoint(format!(
                        "seeding failed: POST as a synthetic user answered {} {} — the table must accept \
                         {{\"title\": …}} with user_id defaulting to requesting_user_id()",
                        reply.status, reply.body
                    )));
                };
                first_row.entry(owner).or_insert(id);
            }
        }
        Ok(Seeded { first_row })
    }
}

/// Runs the matrix and the token table against a live endpoint, then removes the synthetic rows.
pub async fn verify(opts: &VerifyOptions) -> Result<VerifyReport, Error> {
    let users: Vec<ClerkUser> = (0..3)
        .map(|_| ClerkUser::new(clerk_token::new_user_id().into_string()))
        .collect();
    let owners = Owners::from_ids(&users[0].id, &users[1].id, &users[2].id);
    // Long-lived, so a slow endpoint cannot expire them mid-run.
    let template = ClerkTemplate::insforge(opts.secret.clone()).with_lifetime_secs(3600);
    let err = Error::from;
    let tokens = BTreeMap::from([
        (Owner::A, template.mint(&users[0]).map_err(err)?),
        (Owner::B, template.mint(&users[1]).map_err(err)?),
        (Owner::Bystander, template.mint(&users[2]).map_err(err)?),
    ]);
    let live = Live {
        api: Api::new(&opts.base_url)?,
        table: opts.table.clone(),
        owners,
        tokens,
    };

    let preflight = live
        .call(Method::GET, "select=id&limit=1", Owner::A, None, "return=minimal")
        .await
        .map_err(|e| match e {
            Error::Http {
                detail, source, ..
            } => Error::Http {
                context: format!(
                    "cannot reach {} — is the endpoint running? (the sample app: `cargo xtask app`)",
                    opts.base_url
                ),
                detail,
                source,
            },
            other => other,
        })?;
    if !preflight.status.is_success() {
        return Err(Error::Endpoint(format!(
            "{} answered {} {} to a valid token — check --base-url, --table and --jwt-secret",
            opts.base_url, preflight.status, preflight.body
        )));
    }

    let actor_tokens = Tokens::mint(&opts.secret, &users[0], &users[1])?;
    let outcome = run(&live, &actor_tokens, &opts.secret, &users[0], &users[1].id).await;
    // Clean up whatever happened above.
    let cleared = live.clear().await;
    let leftovers = live.snapshot().await.map(|rows| {
        rows.iter()
            .map(|r| format!("{} ({:?})", r.id, r.owner))
            .collect()
    });
    let (matrix, token_outcomes) = outcome?;
    cleared?;
    Ok(VerifyReport {
        base_url: opts.base_url.clone(),
        table: opts.table.clone(),
        matrix,
        tokens: token_outcomes,
        leftovers: leftovers?,
    })
}

async fn run(
    live: &Live,
    actor_tokens: &Tokens,
    secret: &Secret,
    a: &ClerkUser,
    b_id: &str,
) -> Result<(TableMatrix, Vec<HostileRow>), Error> {
    let matrix = cells::build(
        &live.table,
        Actor::HTTP.to_vec(),
        Op::all(&[]),
        |actor| {
            SEED.iter()
                .find(|(o, _)| Some(*o) == actor.own())
                .map_or(0, |(_, n)| *n)
        },
        async |actor, op| {
            let seeded = live.reseed().await?;
            let before = live.snapshot().await?;
            let probed = probe(
                &live.api,
                &live.table,
                actor_tokens.for_actor(actor),
                &live.owners,
                &seeded,
                actor,
                op,
            )
            .await?;
            probed
                .observe(&before, async || live.snapshot().await)
                .await
        },
    )
    .await?;

    let mut outcomes = Vec::new();
    let mut seeded_clean = false;
    for case in crate::engine::tokens::cases()? {
        if !seeded_clean {
            live.reseed().await?;
        }
        let authorization = case.authorization(secret, a, b_id)?;
        let before = live.snapshot().await?;
        let read = live
            .api
            .request_with_authorization(
                Method::GET,
                &live.table,
                "select=user_id",
                Some(&authorization),
                None,
                None,
            )
            .await?;
        live.api
            .request_with_authorization(
                Method::PATCH,
                &live.table,
                "",
                Some(&authorization),
                Some(&json!({ "title": "rls-verify: tampered" })),
                None,
            )
            .await?;
        let after = live.snapshot().await?;
        let changed = Observation::from_diff(&before, &after);
        seeded_clean = changed == Observation::default();
        let foreign_seen = read.body.as_array().map_or(0, |rows| {
            rows.iter()
                .filter(|r| r["user_id"].as_str() != Some(a.id.as_str()))
                .count()
        });
        let foreign_changed = changed
            .updated
            .iter()
            .any(|(b, a)| *b != Owner::A || *a != Owner::A);
        let verdict = if foreign_seen > 0 {
            Verdict::Leak(format!("reads {foreign_seen} rows of other users"))
        } else if foreign_changed {
            Verdict::Leak("changes rows of other users".to_owned())
        } else if !read.status.is_success() && !changed.updated.is_empty() {
            Verdict::Leak(format!(
                "refused ({}) yet changed rows",
                read.status.as_u16()
            ))
        } else {
            Verdict::Ok
        };
        let error = read
            .body
            .get("error")
            .or_else(|| read.body.get("code"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        outcomes.push(HostileRow {
            table: live.table.clone(),
            case: case.case,
            status: read.status.as_u16(),
            error,
            contract: case.expect.status,
            observed: format!(
                "others' rows seen: {foreign_seen}, unfiltered PATCH: {}",
                changed.describe(&Op::UpdateUnfiltered)
            ),
            verdict,
        });
    }
    Ok((matrix, outcomes))
}
