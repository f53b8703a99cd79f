//! Live verification against any InsForge-compatible endpoint (the sample app, or a real
//! InsForge project with its JWT secret) **without a database and without a spec**: the HTTP
//! matrix and the token table, with synthetic users whose rows are removed afterwards.
//! Everything is observed through the API itself, by the engine run without a database
//! ([`crate::engine::api_only`]): the engine's operations, plan, HTTP observer and judge, with
//! seeds from what the API returned and the allowed rows from the description's rules. The
//! report is engine types (a [`TableMatrix`] of [`Verdict`]s, the hostile-token table as
//! [`HostileRow`]s, rendered by the engine's report).

use clerk_token::{ClerkTemplate, ClerkUser, Secret};
use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::engine::Error;
use crate::engine::Verdict;
use crate::engine::api_only::{ApiActor, ApiOwner, ApiRun, ApiTable, Images, diff, matrix};
use crate::engine::hostile::HostileRow;
use crate::engine::model::{Actor, ActorKind, Op, SeedRow, Seeds};
use crate::engine::observe::Api;
use crate::engine::report::{TableMatrix, describe, render_hostile};
use crate::spec::Spec;

/// The synthetic users' tags: the two acting users and a bystander no operation aims at.
const USER_A: &str = "user A";
const USER_B: &str = "user B";
const BYSTANDER: &str = "bystander";

/// What `verify` checks without a spec: rows private per user, owned through `user_id` (which
/// defaults to the caller's id), `title` their payload, `id` their key.
fn description(table: &str) -> Result<ApiTable, Error> {
    let text = format!(
        "[actors.a]\n[actors.b]\n[tables.{name}]\nowner = \"user_id\"\n\
         payload = {{ title = \"rls-verify\" }}\nselect = \"owner\"\ninsert = \"owner\"\n\
         update = \"owner\"\ndelete = \"owner\"\n",
        // A TOML basic string: JSON's escapes are TOML's.
        name = Value::from(table)
    );
    let spec = Spec::parse(std::path::Path::new("verify"), &text)?;
    ApiTable::new(spec, &["id"])
}

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
    /// The engine's operations down, actors across (user A, user B, no claims, anon, expired,
    /// other secret).
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
            "verify {} (table {})\n\nHTTP (live) access matrix (the synthetic users user A, user B and a bystander; tag:n = rows)\n{}\n",
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

/// Runs the matrix and the token table against a live endpoint, then removes the synthetic rows.
pub async fn verify(opts: &VerifyOptions) -> Result<VerifyReport, Error> {
    let users: Vec<ClerkUser> = (0..3)
        .map(|_| ClerkUser::new(clerk_token::new_user_id().into_string()))
        .collect();
    // Long-lived, so a slow endpoint cannot expire them mid-run.
    let template = ClerkTemplate::insforge(opts.secret.clone()).with_lifetime_secs(3600);
    let err = Error::from;
    let bearer = |u: &ClerkUser| -> Result<String, Error> {
        Ok(format!("Bearer {}", template.mint(u).map_err(err)?))
    };
    let owners = [
        (USER_A, &users[0], 2),
        (USER_B, &users[1], 2),
        (BYSTANDER, &users[2], 1),
    ]
    .into_iter()
    .map(|(tag, u, rows)| {
        Ok(ApiOwner {
            tag: tag.to_owned(),
            id: u.id.clone(),
            authorization: bearer(u)?,
            rows,
        })
    })
    .collect::<Result<Vec<_>, Error>>()?;
    let api = Api::new(&opts.base_url)?;
    let table = description(&opts.table)?;
    let run = ApiRun {
        api: &api,
        table: &table,
        owners: &owners,
    };

    let preflight = api
        .request_with_authorization(
            Method::GET,
            &opts.table,
            "select=id&limit=1",
            Some(&owners[0].authorization),
            None,
            None,
        )
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

    let actors = actors(&opts.secret, &owners, &users[0], &users[1])?;
    let outcome = run_all(&run, &actors, &opts.secret, &users[0], &users[1].id).await;
    // Clean up whatever happened above.
    let cleared = run.clear().await;
    let leftovers = run.snapshot().await.map(|rows| {
        rows.iter()
            .map(|(pk, (_, tag))| format!("{pk} ({tag})"))
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

/// The matrix's columns: users A and B, then callers the endpoint must turn away — a token
/// without `sub`, no token, user A's token expired by a minute, user A's claims signed with
/// another secret.
fn actors(
    secret: &Secret,
    owners: &[ApiOwner],
    a: &ClerkUser,
    b: &ClerkUser,
) -> Result<Vec<ApiActor>, Error> {
    let err = Error::from;
    let template = ClerkTemplate::insforge(secret.clone());
    let user = |key: &str, u: &ClerkUser| Actor {
        key: key.to_owned(),
        kind: ActorKind::User {
            id: u.id.clone(),
            email: None,
            claims: Map::new(),
        },
    };
    let refused = |actor: Actor, token: Option<String>| ApiActor {
        actor,
        authorization: token.map(|t| format!("Bearer {t}")),
        accepted: false,
    };
    let mut no_sub = template.claims_for(a).map_err(err)?;
    no_sub.remove("sub");
    let expired = ClerkTemplate::insforge(secret.clone())
        .with_clock(clerk_token::FixedClock::new(template.now() - 61));
    Ok(vec![
        ApiActor {
            actor: user(USER_A, a),
            authorization: Some(owners[0].authorization.clone()),
            accepted: true,
        },
        ApiActor {
            actor: user(USER_B, b),
            authorization: Some(owners[1].authorization.clone()),
            accepted: true,
        },
        refused(
            Actor {
                key: "no claims".into(),
                kind: ActorKind::NoClaims,
            },
            Some(template.sign_claims(&Value::Object(no_sub)).map_err(err)?),
        ),
        refused(
            Actor {
                key: "anon".into(),
                kind: ActorKind::Tokenless,
            },
            None,
        ),
        refused(user("expired", a), Some(expired.mint(a).map_err(err)?)),
        refused(
            user("other secret", a),
            Some(
                ClerkTemplate::insforge(Secret::generate())
                    .mint(a)
                    .map_err(err)?,
            ),
        ),
    ])
}

/// `before` as seeds, so the engine's words can describe a change to it.
fn as_seeds(before: &Images) -> Seeds {
    Seeds {
        rows: vec![
            before
                .iter()
                .map(|(pk, (image, tag))| SeedRow {
                    pk: pk.clone(),
                    image: image.clone(),
                    tag: tag.clone(),
                })
                .collect(),
        ],
        derived: Vec::new(),
        triggers: Vec::new(),
    }
}

async fn run_all(
    run: &ApiRun<'_>,
    actors: &[ApiActor],
    secret: &Secret,
    a: &ClerkUser,
    b_id: &str,
) -> Result<(TableMatrix, Vec<HostileRow>), Error> {
    let matrix = matrix(run, actors).await?;
    let table = run.table.bind()?;

    let mut outcomes = Vec::new();
    let mut seeded_clean = false;
    for case in crate::engine::tokens::cases()? {
        if !seeded_clean {
            run.seed().await?;
        }
        let authorization = case.authorization(secret, a, b_id)?;
        let before = run.snapshot().await?;
        let read = run
            .api
            .request_with_authorization(
                Method::GET,
                run.table.name(),
                "select=user_id",
                Some(&authorization),
                None,
                None,
            )
            .await?;
        run.api
            .request_with_authorization(
                Method::PATCH,
                run.table.name(),
                "",
                Some(&authorization),
                Some(&json!({ "title": "rls-verify: tampered" })),
                None,
            )
            .await?;
        let after = run.snapshot().await?;
        let changed = diff(&before, &after);
        seeded_clean =
            changed.inserted.is_empty() && changed.updated.is_empty() && changed.deleted.is_empty();
        let foreign_seen = read.body.as_array().map_or(0, |rows| {
            rows.iter()
                .filter(|r| r["user_id"].as_str() != Some(a.id.as_str()))
                .count()
        });
        let tag = |pk: &String| before.get(pk).map_or("?", |(_, t)| t.as_str());
        let foreign_changed = changed
            .updated
            .iter()
            .any(|(pk, old, new)| tag(pk) != USER_A || old.get("user_id") != new.get("user_id"));
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
        let patched = describe(
            &table,
            &as_seeds(&before),
            0,
            &Op::UpdateUnfiltered,
            &changed,
            run.table.spec(),
        );
        outcomes.push(HostileRow {
            table: run.table.name().to_owned(),
            case: case.case,
            status: read.status.as_u16(),
            error,
            contract: case.expect.status,
            observed: format!("others' rows seen: {foreign_seen}, unfiltered PATCH: {patched}"),
            verdict,
        });
    }
    Ok((matrix, outcomes))
}
