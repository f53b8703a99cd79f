//! The hostile-token table on a spec's tables: every case of `fixtures/tokens.json` (user A's
//! token tampered one way at a time: forged, expired, another role, no `sub`, odd headers)
//! reads each table and sends a PATCH with no filter. A case may see and change at most what
//! the spec lets user A see and change; a refused request must change nothing.

use reqwest::Method;
use serde_json::{Value, json};
use sqlx::PgConnection;

use super::model::{Actor, Allowed, BoundSpec, Error, Seeds, Verdict, field};
use super::observe::HttpEndpoint;
use super::observe::http::{Api, key_of, select_list};
use super::plan::changed;
use super::seed::{images, restore};
use super::tokens;

/// One token case on one table.
#[derive(Debug, Clone)]
pub struct HostileRow {
    pub table: String,
    pub case: String,
    /// What the endpoint answered the read, and InsForge's `error` or PostgREST's `code`.
    pub status: u16,
    pub error: String,
    /// The status `fixtures/tokens.json` promises for the case.
    pub contract: u16,
    /// What the read returned and the PATCH changed, by the rows' actors.
    pub observed: String,
    pub verdict: Verdict,
}

/// User A and B of the table: the spec's first two Clerk users.
pub(crate) struct Victims<'a> {
    pub a: &'a Actor,
    pub b_id: &'a str,
}

pub(crate) async fn run(
    bound: &BoundSpec,
    seeds: &Seeds,
    endpoint: &HttpEndpoint,
    victims: &Victims<'_>,
    allowed_a: &[(usize, Allowed)],
    admin: &mut PgConnection,
) -> Result<Vec<HostileRow>, Error> {
    let Some(user) = victims.a.clerk_user() else {
        return Ok(Vec::new());
    };
    let api = Api::new(&endpoint.base_url)?;
    let cases = tokens::cases()?;
    let mut out = Vec::new();
    for (ti, allowed) in allowed_a {
        let ti = *ti;
        let table = &bound.tables[ti];
        let rows = &seeds.rows[ti];
        let Some(first) = rows.first() else {
            continue;
        };
        let set = json!({ &table.change: changed(table, rows, &table.change, field(&first.image, &table.change)) });
        let before: std::collections::BTreeMap<String, Value> = rows
            .iter()
            .map(|r| (r.pk.clone(), r.image.clone()))
            .collect();
        for case in &cases {
            let authorization = case.authorization(&endpoint.secret, &user, victims.b_id)?;
            let read = api
                .request_with_authorization(
                    Method::GET,
                    &table.spec.name,
                    &select_list(table),
                    Some(&authorization),
                    None,
                    None,
                )
                .await?;
            api.request_with_authorization(
                Method::PATCH,
                &table.spec.name,
                "",
                Some(&authorization),
                Some(&set),
                None,
            )
            .await?;
            let after = images(table, admin).await?;
            let updated: Vec<&String> = before
                .iter()
                .filter(|(k, v)| after.get(*k) != Some(*v))
                .map(|(k, _)| k)
                .collect();
            let added = after.keys().filter(|k| !before.contains_key(*k)).count();
            if !updated.is_empty() || added > 0 {
                restore(admin, &bound.touched[ti]).await?;
            }
            let seen: Vec<String> = if read.status.is_success() {
                read.body
                    .as_array()
                    .map(|rows| {
                        rows.iter()
                            .map(|r| key_of(table, &seeds.rows[ti], r))
                            .collect()
                    })
                    .unwrap_or_default()
            } else {
                Vec::new()
            };
            let of = |pk: &String| seeds.tag(ti, pk);
            let verdict = if let Some(pk) = seen.iter().find(|pk| !allowed.select.contains(*pk)) {
                Verdict::Leak(format!("reads a row of {} user A may not see", of(pk)))
            } else if let Some(pk) = updated.iter().find(|pk| !allowed.update.contains(**pk)) {
                Verdict::Leak(format!("changes a row of {} user A may not change", of(pk)))
            } else if added > 0 {
                Verdict::Leak(format!("adds {added} rows with a PATCH"))
            } else if !read.status.is_success() && !updated.is_empty() {
                Verdict::Leak(format!(
                    "refused ({}) yet changes {} rows",
                    read.status.as_u16(),
                    updated.len()
                ))
            } else {
                Verdict::Ok
            };
            let mut observed = format!("reads {}", seen.len());
            if !updated.is_empty() {
                observed.push_str(&format!(", changes {}", updated.len()));
            }
            out.push(HostileRow {
                table: table.spec.name.clone(),
                case: case.case.clone(),
                status: read.status.as_u16(),
                error: read
                    .body
                    .get("error")
                    .or_else(|| read.body.get("code"))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                contract: case.expect.status,
                observed,
                verdict,
            });
        }
    }
    Ok(out)
}
