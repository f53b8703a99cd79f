//! The records API's other surfaces, as rows of each table's HTTP matrix: **upserts**
//! (`POST` with `Prefer: resolution=merge-duplicates` and `on_conflict=` the table's key) onto a
//! row the actor may update, onto one they may not — a takeover attempt: the body claims the
//! row for the caller — and onto a new key; and **embedded reads** along every foreign key
//! between two spec tables, both ways (`select=key,child(key)` on the parent,
//! `select=key,parent(key)` on the child). Judged like the table's own cells: an upsert by the
//! update and insert rules, an embed by the select rule of *every* table it returns rows of —
//! embedding must never return a child row the actor may not select, nor a parent row
//! through a child.
//!
//! Over HTTP only: in SQL an upsert is an `INSERT … ON CONFLICT` and an embed a join, neither of
//! which the SQL observer sends (their SQL analogues are the insert, update and select cells);
//! a row the other report lacks is never counted as a disagreement.
//!
//! Relationships come from the catalog's foreign keys (a pair of tables joined by more than one
//! needs a hint the stand-in does not take: no embed row for it); the conflict key is the
//! table's key when a unique index covers exactly it.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::Method;
use serde_json::{Map, Value};
use sqlx::PgConnection;

use super::expect::may_insert;
use super::judge::{is_privilege_refusal, judge};
use super::model::{
    Actor, Allowed, BoundSpec, Error, Observed, Op, Seeds, Table, Verdict, field, sql_err,
};
use super::observe::Observer;
use super::observe::http::{Api, key_of, refusal_code};
use super::plan::{changed, pick};
use super::report::{SpecCell, TableMatrix, describe};
use super::seed::{candidate, images, remove, restore};

/// A foreign key between two spec tables (positions), the only one between them.
struct Relation {
    child: usize,
    parent: usize,
}

async fn relations(bound: &BoundSpec, admin: &mut PgConnection) -> Result<Vec<Relation>, Error> {
    let names: Vec<&str> = bound.tables.iter().map(|t| t.spec.name.as_str()).collect();
    let rows: Vec<(String, String)> = sqlx::query_as(
        "select ch.relname::text, pa.relname::text from pg_constraint c \
         join pg_class ch on ch.oid = c.conrelid join pg_namespace n on n.oid = ch.relnamespace \
         join pg_class pa on pa.oid = c.confrelid \
         join pg_namespace pn on pn.oid = pa.relnamespace \
         where c.contype = 'f' and n.nspname = $1 and pn.nspname = $1 \
           and ch.relname = any($2) and pa.relname = any($2) and ch.oid <> pa.oid \
         order by 1, 2",
    )
    .bind(&bound.spec.schema)
    .bind(&names)
    .fetch_all(&mut *admin)
    .await
    .map_err(sql_err("read the foreign keys between spec tables"))?;
    let mut count: BTreeMap<(usize, usize), usize> = BTreeMap::new();
    for (child, parent) in &rows {
        if let (Some(c), Some(p)) = (bound.index(child), bound.index(parent)) {
            *count.entry((c, p)).or_default() += 1;
        }
    }
    Ok(count
        .into_iter()
        .filter(|(_, n)| *n == 1)
        .map(|((child, parent), _)| Relation { child, parent })
        .collect())
}

/// Whether a unique index covers exactly the table's key columns (an upsert's conflict target).
async fn has_unique_key(table: &Table, admin: &mut PgConnection) -> Result<bool, Error> {
    sqlx::query_scalar(
        "select exists (select 1 from pg_index i where i.indrelid = $1::regclass \
           and i.indisunique and i.indpred is null \
           and (select array_agg(a.attname::text order by a.attname::text) from pg_attribute a \
                where a.attrelid = i.indrelid and a.attnum = any(i.indkey)) \
               = (select array_agg(c order by c) from unnest($2::text[]) c))",
    )
    .bind(&table.qname)
    .bind(&table.pk)
    .fetch_one(&mut *admin)
    .await
    .map_err(sql_err(format!(
        "read the unique keys of {}",
        table.spec.name
    )))
}

fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// `a,b` of names as PostgREST's `select=`/`on_conflict=` read them (plain lower-case names
/// as they are, others quoted).
fn names(cols: &[String]) -> String {
    cols.iter()
        .map(|c| {
            let simple = !c.is_empty()
                && c.chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_');
            if simple {
                c.clone()
            } else {
                harness::target::quote_ident(c)
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Everything the surface cells share.
struct Ctx<'a> {
    bound: &'a BoundSpec,
    seeds: &'a Seeds,
    actors: &'a [Actor],
    /// Per table (by position), per actor.
    allowed: BTreeMap<usize, &'a [Allowed]>,
    api: &'a Api,
    authorizations: &'a [String],
}

/// Adds the upsert and embed rows to the HTTP matrices in `tables` (the SQL observer adds
/// none). The spec tables are at their seeds and are left so.
pub(crate) async fn run(
    bound: &BoundSpec,
    seeds: &Seeds,
    actors: &[Actor],
    allowed_all: &[(usize, Vec<Allowed>)],
    observer: &Observer,
    admin: &mut PgConnection,
    tables: &mut [TableMatrix],
) -> Result<(), Error> {
    let Observer::Http {
        api,
        authorizations,
    } = observer
    else {
        return Ok(());
    };
    let started = std::time::Instant::now();
    let ctx = Ctx {
        bound,
        seeds,
        actors,
        allowed: allowed_all
            .iter()
            .map(|(ti, all)| (*ti, all.as_slice()))
            .collect(),
        api,
        authorizations,
    };
    let relations = relations(bound, admin).await?;
    for (ti, table) in bound.tables.iter().enumerate() {
        let Some(matrix) = tables.iter_mut().find(|m| m.table == table.spec.name) else {
            continue;
        };
        if !ctx.allowed.contains_key(&ti) {
            continue;
        }
        let mut rows: Vec<(String, Vec<SpecCell>)> = Vec::new();
        if has_unique_key(table, admin).await? {
            for kind in [Upsert::Own, Upsert::Forbidden, Upsert::NewKey] {
                let mut row = Vec::new();
                for ai in 0..actors.len() {
                    row.push(upsert(&ctx, ti, ai, kind, admin).await?);
                }
                rows.push((kind.label().into(), row));
            }
        }
        for r in &relations {
            let (other, children) = if r.parent == ti {
                (r.child, true)
            } else if r.child == ti {
                (r.parent, false)
            } else {
                continue;
            };
            if !ctx.allowed.contains_key(&other) {
                continue;
            }
            let mut row = Vec::new();
            for ai in 0..actors.len() {
                row.push(embed(&ctx, ti, other, ai).await?);
            }
            let what = if children { "children" } else { "parent" };
            rows.push((
                format!("embed {} · {what}", bound.tables[other].spec.name),
                row,
            ));
        }
        for (label, row) in rows {
            matrix.ops.push(label);
            matrix.cells.push(row);
        }
    }
    tracing::debug!(took = ?started.elapsed(), "surface cells done");
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Upsert {
    /// Onto a row the actor may update: its own values, the change column changed.
    Own,
    /// Onto a row the actor may not update, the body claiming it for the caller.
    Forbidden,
    /// A key no row has (a seed row the actor may insert, removed first).
    NewKey,
}

impl Upsert {
    fn label(self) -> &'static str {
        match self {
            Upsert::Own => "upsert · own row",
            Upsert::Forbidden => "upsert · forbidden row",
            Upsert::NewKey => "upsert · new key",
        }
    }
}

async fn upsert(
    ctx: &Ctx<'_>,
    ti: usize,
    ai: usize,
    kind: Upsert,
    admin: &mut PgConnection,
) -> Result<SpecCell, Error> {
    let table = &ctx.bound.tables[ti];
    let rows = &ctx.seeds.rows[ti];
    let allowed = &ctx.allowed[&ti][ai];
    let actor = &ctx.actors[ai];
    let na = || SpecCell {
        text: "n/a".into(),
        verdict: Verdict::Ok,
    };
    let image_body = |image: &Value| -> Map<String, Value> {
        table
            .writable
            .iter()
            .map(|c| (c.clone(), field(image, c).clone()))
            .collect()
    };
    // The row, the body, the operation judged as, and whether the spec lets it through.
    let (row, body, op, removed) = match kind {
        // The change column is changed only outside the key: a changed key is another row,
        // and the upsert would insert it rather than meet the row it aims at.
        Upsert::Own => {
            let c = &table.change;
            let (Some(r), false) = (
                pick(rows, allowed, &allowed.update, true),
                table.pk.contains(c),
            ) else {
                return Ok(na());
            };
            let mut body = image_body(&r.image);
            body.insert(c.clone(), changed(table, rows, c, field(&r.image, c)));
            (r, Value::Object(body), Op::UpdateAllowed, false)
        }
        Upsert::Forbidden => {
            let Some(r) = pick(rows, allowed, &allowed.update, false) else {
                return Ok(na());
            };
            let mut body = image_body(&r.image);
            let c = &table.change;
            let owner_claimable = table
                .spec
                .owner
                .as_ref()
                .is_some_and(|o| !table.pk.contains(o));
            if table.pk.contains(c) && !owner_claimable {
                return Ok(na());
            }
            if !table.pk.contains(c) {
                body.insert(c.clone(), changed(table, rows, c, field(&r.image, c)));
            }
            // The body claims the row for the caller — unless the owner column is part of the
            // key, where that would aim the upsert at the caller's own row instead.
            if let (Some(owner), Some(me)) = (&table.spec.owner, actor.id())
                && !table.pk.contains(owner)
            {
                body.insert(owner.clone(), Value::from(me));
            }
            (r, Value::Object(body), Op::TakeOver, false)
        }
        Upsert::NewKey => {
            let Some(r) = pick(rows, allowed, &allowed.insert, true) else {
                return Ok(na());
            };
            (r, candidate(table, r), Op::InsertAllowed, true)
        }
    };
    let expect = match kind {
        Upsert::Own => may_insert(table, actor, &body, admin).await?,
        Upsert::Forbidden => false,
        Upsert::NewKey => true,
    };
    // An upsert's new row must also pass the SELECT policies, and the table's other policies
    // may weigh in (Postgres checks the row an `ON CONFLICT DO UPDATE` inserts against more
    // than the INSERT policy): no spec rule says what that adds up to, so a refused new key is
    // no finding — the insert cells judge lost inserts; this one looks only for leaks.
    let refusal_expected = kind == Upsert::NewKey;
    // An own row the insert rule would refuse is judged as a forbidden update: only more than
    // the spec allows is a finding there.
    let op = match (kind, expect) {
        (Upsert::Own, false) => Op::UpdateForbidden,
        _ => op,
    };
    if removed {
        remove(table, &row.pk, admin).await?;
    }
    let query = format!("on_conflict={}", encode(&names(&table.pk)));
    let reply = ctx
        .api
        .request_with_authorization(
            Method::POST,
            &table.spec.name,
            &query,
            Some(&ctx.authorizations[ai]),
            Some(&body),
            Some("resolution=merge-duplicates,return=minimal"),
        )
        .await?;
    let mut o = Observed::default();
    if !reply.status.is_success() {
        o.refused = Some(refusal_code(&reply));
    }
    let mut before: BTreeMap<String, Value> = rows
        .iter()
        .map(|r| (r.pk.clone(), r.image.clone()))
        .collect();
    if removed {
        before.remove(&row.pk);
    }
    let after = images(table, admin).await?;
    o.record_changes(&before, &after);
    if removed || !o.inserted.is_empty() || !o.updated.is_empty() || !o.deleted.is_empty() {
        restore(admin, &ctx.bound.touched[ti]).await?;
    }
    let mut verdict = judge(table, ctx.seeds, ti, allowed, actor, &op, Some(expect), &o);
    // Only the policies' refusal is lost access here: an upsert the table's shape refuses for
    // everyone (a `generated always` key, `428C9`) is no surface of that table.
    if let (Verdict::LostAccess(_), Some(code)) = (&verdict, &o.refused)
        && (!is_privilege_refusal(code) || refusal_expected)
    {
        verdict = Verdict::Ok;
    }
    Ok(SpecCell {
        text: describe(table, ctx.seeds, ti, &op, &o, &ctx.bound.spec),
        verdict,
    })
}

/// One embedded read: the table's keys with the other table's keys embedded.
async fn embed(ctx: &Ctx<'_>, ti: usize, other: usize, ai: usize) -> Result<SpecCell, Error> {
    let (table, them) = (&ctx.bound.tables[ti], &ctx.bound.tables[other]);
    let select = format!(
        "{},{}({})",
        names(&table.pk),
        them.spec.name,
        names(&them.pk)
    );
    let reply = ctx
        .api
        .request_with_authorization(
            Method::GET,
            &table.spec.name,
            &format!("select={}", encode(&select)),
            Some(&ctx.authorizations[ai]),
            None,
            None,
        )
        .await?;
    if !reply.status.is_success() {
        let code = refusal_code(&reply);
        return Ok(SpecCell {
            text: format!("refused {code}"),
            // A read the table's own select cell would be refused too is no finding here; a
            // read the spec allows that errors is the select cell's lost access, not this one's.
            verdict: Verdict::Ok,
        });
    }
    let Some(items) = reply.body.as_array() else {
        return Err(Error::Endpoint(format!(
            "GET {} with an embed answered {} with a body that is not a JSON array",
            table.spec.name, reply.status
        )));
    };
    let mut seen: Vec<String> = Vec::new();
    let mut embedded: Vec<String> = Vec::new();
    for item in items {
        seen.push(key_of(table, &ctx.seeds.rows[ti], item));
        match item.get(&them.spec.name) {
            Some(Value::Array(children)) => embedded.extend(
                children
                    .iter()
                    .map(|c| key_of(them, &ctx.seeds.rows[other], c)),
            ),
            Some(obj @ Value::Object(_)) => {
                embedded.push(key_of(them, &ctx.seeds.rows[other], obj));
            }
            _ => {}
        }
    }
    let who = &ctx.actors[ai].key;
    let mine = &ctx.allowed[&ti][ai].select;
    let theirs = &ctx.allowed[&other][ai].select;
    let tags = |t: usize, keys: &[String]| {
        let mut by: BTreeMap<String, usize> = BTreeMap::new();
        for k in keys {
            *by.entry(ctx.seeds.tag(t, k)).or_default() += 1;
        }
        by.iter()
            .map(|(t, n)| format!("{t}:{n}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let text = match (seen.is_empty(), embedded.is_empty()) {
        (true, _) => "sees none".to_owned(),
        (false, true) => format!("sees {}, embeds none", tags(ti, &seen)),
        (false, false) => format!(
            "sees {}, embeds {}",
            tags(ti, &seen),
            tags(other, &embedded)
        ),
    };
    let forbidden = |keys: &[String], ok: &BTreeSet<String>, t: usize| {
        let owners: BTreeSet<String> = keys
            .iter()
            .filter(|k| !ok.contains(*k))
            .map(|k| ctx.seeds.tag(t, k))
            .collect();
        (!owners.is_empty()).then(|| owners.into_iter().collect::<Vec<_>>().join(", "))
    };
    let verdict = if let Some(of) = forbidden(&seen, mine, ti) {
        Verdict::Leak(format!(
            "{who} sees rows of {of} the spec does not show them (embedding {})",
            them.spec.name
        ))
    } else if let Some(of) = forbidden(&embedded, theirs, other) {
        Verdict::Leak(format!(
            "{who} gets rows of {of} of {} embedded that the spec does not show them",
            them.spec.name
        ))
    } else if let Some(pk) = mine.iter().find(|pk| !seen.contains(*pk)) {
        Verdict::LostAccess(format!(
            "{who} cannot see a row of {} the spec shows them (embedding {})",
            ctx.seeds.tag(ti, pk),
            them.spec.name
        ))
    } else {
        Verdict::Ok
    };
    Ok(SpecCell { text, verdict })
}
