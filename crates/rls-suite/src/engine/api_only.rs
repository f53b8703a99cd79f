//! The engine without a database: a table's matrix seeded, carried out and observed through the
//! records API only, as the users themselves with their tokens (`verify --base-url` without a
//! spec). The stages are the engine's — `Op::all` → `plan` → the HTTP observer → `judge`
//! → `describe` — with two stand-ins for what a database gave them:
//!
//! - **seeds** are what the API returned on insert: each owner POSTs its rows (the owner column
//!   left to its default, as an app's client does) with `Prefer: return=representation`, and
//!   the returned images are the `Seeds`; the rows are re-seeded after every cell that
//!   changed anything (ids are the database's, so each seeding has its own keys);
//! - **allowed** rows come from the spec's rules evaluated in Rust on those images, never from
//!   what each user's own select returned: a select that leaks would otherwise define what is
//!   allowed and judge itself clean. Only the rules that need no SQL are evaluated (`owner`,
//!   `signed_in`, `anyone`); another rule is an error.
//!
//! What a cell changed is the union of every owner's own view before and after (a superuser
//! is not at hand): a row none of them can read again is reported deleted. A request the
//! endpoint turned away before the database (HTTP 401) reached no row: it is judged as an
//! empty answer that changed nothing, and its text says how it was refused.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::Method;
use serde_json::{Map, Value};

use super::judge::judge;
use super::model::{Actor, Allowed, Error, Executed, Observed, Op, SeedRow, Seeds, Table, field};
use super::observe::http::{Api, execute_as};
use super::plan::plan;
use super::report::{SpecCell, TableMatrix, describe};
use crate::spec::{Command, Rule, Spec, TableSpec};

/// One column of the matrix: an engine actor and the `Authorization` header it sends.
#[derive(Debug, Clone)]
pub struct ApiActor {
    pub actor: Actor,
    /// `None`: no header at all.
    pub authorization: Option<String>,
    /// Whether the endpoint must take the token as the actor's identity (a valid user token).
    /// A token it must refuse (expired, another secret, no `sub`) is allowed nothing.
    pub accepted: bool,
}

/// A user who owns seed rows and observes through their own select: the acting users and a
/// bystander no operation aims at.
#[derive(Debug, Clone)]
pub struct ApiOwner {
    /// The name the matrix gives their rows (`user A`, `bystander`).
    pub tag: String,
    /// Their Clerk id: the owner column of the rows they insert.
    pub id: String,
    pub authorization: String,
    /// How many rows they start each cell with.
    pub rows: usize,
}

/// A table described without a catalog: a spec whose first table it is, and its primary key
/// columns.
#[derive(Debug, Clone)]
pub struct ApiTable {
    spec: Spec,
    pk: Vec<String>,
}

impl ApiTable {
    /// The first table of `spec`, its key `pk`.
    pub fn new(spec: Spec, pk: &[&str]) -> Result<Self, Error> {
        if spec.tables.is_empty() {
            return Err(Error::Endpoint("the description names no table".into()));
        }
        Ok(Self {
            spec,
            pk: pk.iter().map(|c| (*c).to_owned()).collect(),
        })
    }

    fn table(&self) -> &TableSpec {
        &self.spec.tables[0]
    }

    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    pub fn name(&self) -> &str {
        &self.table().name
    }

    /// The engine's `Table` for it: no readers, no derived rows, candidates of the owner and
    /// payload columns.
    pub(crate) fn bind(&self) -> Result<Table, Error> {
        let spec = self.table();
        let owner = spec.owner.clone().ok_or_else(|| {
            Error::Endpoint(format!(
                "table {}: a check without a database needs an owner column",
                spec.name
            ))
        })?;
        let change = spec
            .change
            .clone()
            .or_else(|| spec.payload.keys().next().cloned())
            .ok_or_else(|| {
                Error::Endpoint(format!(
                    "table {}: a check without a database needs a payload column to change",
                    spec.name
                ))
            })?;
        let mut candidate_columns = vec![owner];
        candidate_columns.extend(spec.payload.keys().cloned());
        Ok(Table {
            spec: spec.clone(),
            qname: harness::target::quote_ident(&spec.name),
            pk: self.pk.clone(),
            unique_columns: self.pk.iter().cloned().collect(),
            writable: candidate_columns.clone(),
            preds: BTreeMap::new(),
            change,
            candidate_columns,
            readers: Vec::new(),
            variants: Vec::new(),
            movable: Vec::new(),
            combos: Vec::new(),
            // The one table of a check without a database has an owner rule only: no roles.
            role_preds: Vec::new(),
            member_user: None,
        })
    }
}

/// A row as an owner's select returned it: its image and whose it is.
pub type Images = BTreeMap<String, (Value, String)>;

/// The endpoint, the table and who seeds and observes.
#[derive(Debug)]
pub struct ApiRun<'a> {
    pub api: &'a Api,
    pub table: &'a ApiTable,
    pub owners: &'a [ApiOwner],
}

impl ApiRun<'_> {
    async fn call(
        &self,
        method: Method,
        query: &str,
        owner: &ApiOwner,
        body: Option<&Value>,
        prefer: &str,
    ) -> Result<super::observe::Reply, Error> {
        self.api
            .request_with_authorization(
                method,
                self.table.name(),
                query,
                Some(&owner.authorization),
                body,
                Some(prefer),
            )
            .await
    }

    fn key(&self, row: &Value) -> String {
        Value::Array(
            self.table
                .pk
                .iter()
                .map(|c| field(row, c).clone())
                .collect(),
        )
        .to_string()
    }

    /// Every owner's view of their rows, merged.
    pub async fn snapshot(&self) -> Result<Images, Error> {
        let owner_col = self.table.table().owner.as_deref().unwrap_or_default();
        let mut rows = Images::new();
        for owner in self.owners {
            let reply = self
                .call(Method::GET, "limit=1000", owner, None, "return=minimal")
                .await?;
            for r in reply.body.as_array().into_iter().flatten() {
                let whose = field(r, owner_col).as_str().unwrap_or_default();
                if let Some(o) = self.owners.iter().find(|o| o.id == whose) {
                    rows.insert(self.key(r), (r.clone(), o.tag.clone()));
                }
            }
        }
        Ok(rows)
    }

    /// Removes every row each owner can delete of their own.
    pub async fn clear(&self) -> Result<(), Error> {
        let owner_col = self.table.table().owner.as_deref().unwrap_or_default();
        for owner in self.owners {
            let filter = format!("{owner_col}=eq.{}", owner.id);
            self.call(Method::DELETE, &filter, owner, None, "return=minimal")
                .await?;
        }
        Ok(())
    }

    /// Clears, then each owner inserts their rows; the images the API returned are the seeds.
    pub(crate) async fn seed(&self) -> Result<Seeds, Error> {
        self.clear().await?;
        let table = self.table.table();
        let owner_col = table.owner.as_deref().unwrap_or_default();
        let mut rows = Vec::new();
        for owner in self.owners {
            for i in 0..owner.rows {
                // Each row its own payload, so an update to another row's value is a change.
                let body: Map<String, Value> = table
                    .payload
                    .iter()
                    .map(|(k, v)| match v {
                        Value::String(s) => {
                            (k.clone(), Value::from(format!("{s} {} #{i}", owner.tag)))
                        }
                        other => (k.clone(), other.clone()),
                    })
                    .collect();
                let reply = self
                    .call(
                        Method::POST,
                        "",
                        owner,
                        Some(&Value::Object(body)),
                        "return=representation",
                    )
                    .await?;
                let image = reply.body.get(0).filter(|_| reply.status.is_success());
                let Some(image) = image.filter(|r| field(r, owner_col).as_str() == Some(&owner.id))
                else {
                    return Err(Error::Endpoint(format!(
                        "seeding failed: POST as a synthetic user answered {} {} — the table must \
                         accept its payload with {owner_col} defaulting to the caller's id",
                        reply.status, reply.body
                    )));
                };
                rows.push(SeedRow {
                    pk: self.key(image),
                    image: image.clone(),
                    tag: owner.tag.clone(),
                });
            }
        }
        Ok(Seeds {
            rows: vec![rows],
            derived: Vec::new(),
            triggers: Vec::new(),
        })
    }
}

/// Whether `rule` lets the caller with `id` (a user the endpoint accepts; `None` otherwise) do
/// its command to `row`.
fn holds(rule: &Rule, owner_col: &str, id: Option<&str>, row: &Value) -> Result<bool, Error> {
    Ok(match rule {
        Rule::Owner => id.is_some() && field(row, owner_col).as_str() == id,
        Rule::SignedIn => id.is_some(),
        // Over HTTP, a caller without a valid token never reaches the database.
        Rule::Anyone => id.is_some(),
        Rule::All(rules) => {
            let mut all = true;
            for r in rules {
                all &= holds(r, owner_col, id, row)?;
            }
            all
        }
        other => {
            return Err(Error::Endpoint(format!(
                "rule {other:?} needs the database to evaluate; pass the spec with a database \
                 (verify --spec)"
            )));
        }
    })
}

/// What the spec allows an actor, evaluated in Rust on the seeds' images.
pub(crate) fn allowed(
    table: &Table,
    seeds: &[SeedRow],
    actor: &ApiActor,
) -> Result<Allowed, Error> {
    let owner_col = table.spec.owner.as_deref().unwrap_or_default();
    let id = actor.accepted.then(|| actor.actor.id()).flatten();
    let may = |command: Command, row: &Value| -> Result<bool, Error> {
        let mut any = false;
        for rule in table.spec.rules.get(&command).into_iter().flatten() {
            any |= holds(rule, owner_col, id, row)?;
        }
        Ok(any)
    };
    let mut out = Allowed::default();
    for r in seeds {
        let set = |s: &mut BTreeSet<String>, yes: bool| {
            if yes {
                s.insert(r.pk.clone());
            }
        };
        set(&mut out.select, may(Command::Select, &r.image)?);
        set(&mut out.update, may(Command::Update, &r.image)?);
        set(&mut out.delete, may(Command::Delete, &r.image)?);
        set(&mut out.insert, may(Command::Insert, &r.image)?);
        let mut as_self = r.image.clone();
        if let (Some(me), Some(obj)) = (id, as_self.as_object_mut()) {
            obj.insert(owner_col.to_owned(), Value::from(me));
        }
        set(&mut out.insert_as_self, may(Command::Insert, &as_self)?);
    }
    Ok(out)
}

/// What changed between two views.
pub(crate) fn diff(before: &Images, after: &Images) -> Observed {
    let images = |all: &Images| -> BTreeMap<String, Value> {
        all.iter()
            .map(|(k, (v, _))| (k.clone(), v.clone()))
            .collect()
    };
    let mut o = Observed::default();
    o.record_changes(&images(before), &images(after));
    o
}

/// What the judge is shown of a request that got HTTP `status`: a request the endpoint turned
/// away before the database (401) read and wrote nothing — an empty answer, not an error the
/// database gave (which the judge would take for a broken policy).
pub(crate) fn as_judged(o: Observed, status: u16) -> Observed {
    if status == 401 {
        Observed { refused: None, ..o }
    } else {
        o
    }
}

/// The matrix of `run.table`: the engine's operations down, `actors` across.
pub async fn matrix(run: &ApiRun<'_>, actors: &[ApiActor]) -> Result<TableMatrix, Error> {
    let table = run.table.bind()?;
    let spec = &run.table.spec;
    let ops = Op::all(&table);
    let mut fresh: Option<Seeds> = None;
    let mut cells = Vec::with_capacity(ops.len());
    for op in &ops {
        let mut row = Vec::with_capacity(actors.len());
        for actor in actors {
            let seeds = match fresh.take() {
                Some(s) => s,
                None => run.seed().await?,
            };
            let (cell, dirty) = cell(run, &table, &seeds, actor, op, spec).await?;
            if !dirty {
                fresh = Some(seeds);
            }
            row.push(cell);
        }
        cells.push(row);
    }
    Ok(TableMatrix {
        table: table.spec.name.clone(),
        actors: actors.iter().map(|a| a.actor.key.clone()).collect(),
        ops: ops.iter().map(|op| op.label(&table)).collect(),
        cells,
    })
}

/// One cell from `seeds`; `true` when the seeds no longer stand.
async fn cell(
    run: &ApiRun<'_>,
    table: &Table,
    seeds: &Seeds,
    actor: &ApiActor,
    op: &Op,
    spec: &Spec,
) -> Result<(SpecCell, bool), Error> {
    let rows = &seeds.rows[0];
    let allowed = allowed(table, rows, actor)?;
    let Some(plan) = plan(table, rows, &allowed, op, actor.actor.id()) else {
        let text = "n/a".into();
        return Ok((
            SpecCell {
                text,
                verdict: super::Verdict::Ok,
            },
            false,
        ));
    };
    let before: Images = rows
        .iter()
        .map(|r| (r.pk.clone(), (r.image.clone(), r.tag.clone())))
        .collect();
    let (executed, status) = execute_as(
        run.api,
        actor.authorization.as_deref(),
        table,
        rows,
        &plan.action,
    )
    .await?;
    let Executed::Done { seen, refused } = executed else {
        return Err(Error::Endpoint(
            "internal: an API-only table has no readers".into(),
        ));
    };
    let mut o = Observed::default();
    let turned_away = status == 401;
    if !op.is_select() && refused.is_none() {
        o = diff(&before, &run.snapshot().await?);
    }
    if op.is_select() {
        o.seen = seen;
    }
    o.refused = refused;
    let changed = !o.inserted.is_empty() || !o.updated.is_empty() || !o.deleted.is_empty();
    let text = match &o.refused {
        Some(code) if turned_away => format!("refused 401 {code}"),
        _ => describe(table, seeds, 0, op, &o, spec),
    };
    let judged = as_judged(o, status);
    let verdict = judge(
        table,
        seeds,
        0,
        &allowed,
        &actor.actor,
        op,
        plan.expect_row,
        &judged,
    );
    Ok((SpecCell { text, verdict }, changed))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::engine::model::ActorKind;

    fn table(rules: &str) -> Table {
        let text = format!(
            "[actors.a]\n[tables.todos]\nowner = \"user_id\"\npayload = {{ title = \"t\" }}\n{rules}\n"
        );
        let spec = Spec::parse(std::path::Path::new("t.toml"), &text).unwrap();
        ApiTable::new(spec, &["id"]).unwrap().bind().unwrap()
    }

    fn seeds() -> Vec<SeedRow> {
        ["user_a", "user_b"]
            .iter()
            .enumerate()
            .map(|(i, id)| SeedRow {
                pk: json!([i.to_string()]).to_string(),
                image: json!({ "id": i.to_string(), "user_id": id, "title": "t" }),
                tag: (*id).to_owned(),
            })
            .collect()
    }

    fn actor(accepted: bool) -> ApiActor {
        ApiActor {
            actor: Actor {
                key: "a".into(),
                kind: ActorKind::User {
                    id: "user_a".into(),
                    email: None,
                    claims: Map::new(),
                },
            },
            authorization: None,
            accepted,
        }
    }

    #[test]
    fn owner_rules_allow_a_user_their_own_rows_and_a_refused_token_nothing() {
        let t =
            table("select = \"owner\"\ninsert = \"owner\"\nupdate = \"owner\"\ndelete = \"owner\"");
        let rows = seeds();
        let own = allowed(&t, &rows, &actor(true)).unwrap();
        let first = BTreeSet::from([rows[0].pk.clone()]);
        assert_eq!(own.select, first);
        assert_eq!(own.update, first);
        assert_eq!(own.delete, first);
        assert_eq!(own.insert, first);
        assert_eq!(
            own.insert_as_self.len(),
            2,
            "any row is theirs under their id"
        );
        let none = allowed(&t, &rows, &actor(false)).unwrap();
        assert!(none.select.is_empty() && none.update.is_empty() && none.insert.is_empty());
    }

    #[test]
    fn a_rule_that_needs_sql_is_an_error_not_a_guess() {
        let t = table("select = \"email:*@example.com\"");
        assert!(allowed(&t, &seeds(), &actor(true)).is_err());
    }

    #[test]
    fn a_diff_names_inserted_updated_and_deleted_rows() {
        let row = |id: &str, title: &str| {
            (
                id.to_owned(),
                (json!({ "id": id, "title": title }), "a".to_owned()),
            )
        };
        let before = Images::from([row("1", "x"), row("2", "y")]);
        let after = Images::from([row("1", "changed"), row("3", "new")]);
        let o = diff(&before, &after);
        assert_eq!(o.inserted.len(), 1);
        assert_eq!(o.updated.len(), 1);
        assert_eq!(o.deleted, ["2"]);
    }
}
