//! Pool bleed on a spec's tables: every user reads every table many times at once, through
//! the endpoint's (small) connection pool, interleaved with requests that carry no valid token.
//! Each read must return exactly the rows the spec shows that user — never one left over from
//! the identity a pooled connection served before, never one fewer.

use std::collections::BTreeSet;

use reqwest::Method;
use tokio::task::JoinSet;

use super::model::{Allowed, BoundSpec, Error, Seeds};
use super::observe::HttpEndpoint;
use super::observe::http::{Api, key_of, select_list};

/// Reads per user and table.
const ROUNDS: usize = 6;

/// What the pool-bleed run did and found.
#[derive(Debug, Clone, Default)]
pub struct PoolBleed {
    /// Authenticated reads sent (the unauthenticated ones in between are not counted).
    pub reads: usize,
    /// Reads that returned more rows than the spec shows their caller (leaks).
    pub leaks: Vec<String>,
    /// Reads that returned fewer, or failed.
    pub lost: Vec<String>,
}

impl PoolBleed {
    pub fn render(&self) -> String {
        format!(
            "pool bleed: {} concurrent reads, interleaved with tokenless ones: {} returned \
             another identity's rows, {} returned fewer rows than the spec shows\n",
            self.reads,
            self.leaks.len(),
            self.lost.len()
        )
    }
}

/// `allowed[(table position, per-actor allowed)]`; `authorizations[actor]` the header values of
/// the users (the actors of the HTTP run, all users), `keys[actor]` their names.
pub(crate) async fn run(
    bound: &BoundSpec,
    seeds: &Seeds,
    endpoint: &HttpEndpoint,
    allowed: &[(usize, Vec<Allowed>)],
    authorizations: &[String],
    keys: &[String],
) -> Result<PoolBleed, Error> {
    let api = Api::new(&endpoint.base_url)?;
    let mut set = JoinSet::new();
    for (ti, per_actor) in allowed {
        let table = &bound.tables[*ti];
        for round in 0..ROUNDS {
            for (ai, want) in per_actor.iter().enumerate() {
                let api = api.clone();
                let name = table.spec.name.clone();
                let query = select_list(table);
                // Every other request has no token: it must be refused, and must leave nothing.
                let authorization =
                    (round % 2 == 0 || ai % 2 == 0).then(|| authorizations[ai].clone());
                let want: BTreeSet<String> = want.select.clone();
                let (ti, who) = (*ti, keys[ai].clone());
                set.spawn(async move {
                    let reply = api
                        .request_with_authorization(
                            Method::GET,
                            &name,
                            &query,
                            authorization.as_deref(),
                            None,
                            None,
                        )
                        .await;
                    (ti, who, authorization.is_some(), want, reply)
                });
            }
        }
    }
    let mut out = PoolBleed::default();
    while let Some(done) = set.join_next().await {
        let (ti, who, signed_in, want, reply) = done?;
        let reply = reply?;
        let table = &bound.tables[ti];
        let name = &table.spec.name;
        if !signed_in {
            if reply.status.is_success() {
                out.leaks.push(format!(
                    "[{name}] a request without a token was answered {}",
                    reply.status
                ));
            }
            continue;
        }
        out.reads += 1;
        if !reply.status.is_success() {
            out.lost
                .push(format!("[{name}] {who}'s read failed: {}", reply.refusal()));
            continue;
        }
        let got: BTreeSet<String> = reply
            .body
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| key_of(table, &seeds.rows[ti], r))
            .collect();
        if let Some(extra) = got.difference(&want).next() {
            let owner = seeds.tag_of(ti, extra).unwrap_or("?");
            out.leaks.push(format!(
                "[{name}] {who} read a row of {owner} through the pool"
            ));
        } else if got != want {
            out.lost.push(format!(
                "[{name}] {who} read {} of the {} rows the spec shows them",
                got.len(),
                want.len()
            ));
        }
    }
    Ok(out)
}
