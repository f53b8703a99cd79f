//! The matrix in SQL: each cell is one identity transaction on the app's login role, judged by
//! diffing the table as a superuser before and after — the policies, not the query, decide.

use std::collections::HashMap;

use clerk_token::{ClerkTemplate, ClerkUser, Secret};
use harness::{DbIdentity, PgTarget, begin_as};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use super::fixtures::Fixtures;
use super::matrix::{AccessMatrix, Actor, Observation, Op, Owner, Row};
use crate::engine::Error;

const INSERTED: &str = "matrix: inserted";
const UPDATED: &str = "matrix: updated";

/// The claims the database gets for users A and B: minted as Clerk's `insforge` template would
/// and passed through InsForge-style verification, so they are exactly what a request carries.
#[derive(Debug, Clone)]
pub struct Identities {
    pub a_claims: String,
    pub b_claims: String,
}

impl Identities {
    pub fn mint(secret: &Secret, fixtures: &Fixtures) -> Result<Self, Error> {
        let template = ClerkTemplate::insforge(secret.clone());
        let verifier = template.verifier();
        let claims = |key: &str| -> Result<String, Error> {
            let user = fixtures.user(key)?;
            let mut clerk = ClerkUser::new(user.id.clone());
            if let Some(email) = &user.email {
                clerk = clerk.with_email(email.clone());
            }
            let token = template.mint(&clerk)?;
            let identity = verifier.verify(&token)?;
            Ok(identity.claims_json())
        };
        Ok(Self {
            a_claims: claims("alice")?,
            b_claims: claims("bob")?,
        })
    }
}

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
    /// Users A, B and the bystander from the fixtures (alice, bob, mallory).
    pub fn new(fixtures: &Fixtures) -> Result<Self, Error> {
        Ok(Self::from_ids(
            &fixtures.user("alice")?.id,
            &fixtures.user("bob")?.id,
            &fixtures.user("mallory")?.id,
        ))
    }

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

/// A connection, with the harness's error as the suite's.
pub async fn connect(target: &PgTarget) -> Result<PgConnection, Error> {
    target.connect().await.map_err(Error::from)
}

fn sql_err(context: &str) -> impl FnOnce(sqlx::Error) -> Error + '_ {
    move |source| Error::Sql {
        context: context.to_owned(),
        source,
    }
}

/// Replaces the table's rows with the fixtures' seed (as a superuser, so RLS does not apply).
pub async fn reseed(
    admin: &mut PgConnection,
    fixtures: &Fixtures,
    owners: &Owners,
) -> Result<Seeded, Error> {
    sqlx::query("delete from public.todos")
        .execute(&mut *admin)
        .await
        .map_err(sql_err("clear todos"))?;
    let mut first_row = HashMap::new();
    for todo in &fixtures.todos {
        let user = fixtures.user(&todo.owner)?;
        let id: Uuid = sqlx::query_scalar(
            "insert into public.todos (user_id, title, is_complete) values ($1, $2, $3) returning id",
        )
        .bind(&user.id)
        .bind(&todo.title)
        .bind(todo.is_complete)
        .fetch_one(&mut *admin)
        .await
        .map_err(sql_err("seed todos"))?;
        first_row.entry(owners.of(Some(&user.id))).or_insert(id);
    }
    Ok(Seeded { first_row })
}

/// Every row, as a superuser sees it.
pub async fn snapshot(admin: &mut PgConnection, owners: &Owners) -> Result<Vec<Row>, Error> {
    let rows: Vec<(Uuid, Option<String>, String, bool)> =
        sqlx::query_as("select id, user_id, title, is_complete from public.todos order by id")
            .fetch_all(&mut *admin)
            .await
            .map_err(sql_err("snapshot todos"))?;
    Ok(rows
        .into_iter()
        .map(|(id, user_id, title, is_complete)| Row {
            id,
            owner: owners.of(user_id.as_deref()),
            title,
            is_complete,
        })
        .collect())
}

/// Other ways to read todos that `authenticated` has in `public`, each probed with a select:
/// relations with a `user_id` (views over todos and the like), and functions returning rows
/// with a `user_id` whose arguments are all text (called with empty strings). Returned as
/// from-items: `todos_overview`, `search_todos('')`.
pub async fn extra_targets(admin: &mut PgConnection) -> Result<Vec<String>, Error> {
    let mut targets: Vec<String> = sqlx::query_scalar(
        "select quote_ident(c.relname) from pg_class c join pg_namespace n on n.oid = c.relnamespace \
         where n.nspname = 'public' and c.relkind in ('r','v','m','p','f') and c.relname <> 'todos' \
           and exists (select 1 from pg_attribute a where a.attrelid = c.oid and a.attname = 'user_id' and not a.attisdropped) \
           and has_table_privilege('authenticated', c.oid, 'SELECT') \
         order by 1",
    )
    .fetch_all(&mut *admin)
    .await
    .map_err(sql_err("list relations"))?;
    let functions: Vec<String> = sqlx::query_scalar(
        "select quote_ident(p.proname) || '(' || array_to_string(array_fill(quote_literal(''), array[p.pronargs::int]), ', ') || ')' \
         from pg_proc p join pg_namespace n on n.oid = p.pronamespace \
         where n.nspname = 'public' and p.proretset and p.prokind = 'f' \
           and has_function_privilege('authenticated', p.oid, 'EXECUTE') \
           and not exists (select 1 from unnest(p.proargtypes) t where t <> 'text'::regtype) \
           and exists (select 1 from pg_attribute a join pg_type ty on ty.typrelid = a.attrelid \
                       where ty.oid = p.prorettype and a.attname = 'user_id' and not a.attisdropped) \
         order by 1",
    )
    .fetch_all(&mut *admin)
    .await
    .map_err(sql_err("list functions"))?;
    targets.extend(functions);
    Ok(targets)
}

fn identity(actor: Actor, ids: &Identities) -> Option<DbIdentity> {
    match actor {
        Actor::UserA => Some(DbIdentity::raw("authenticated", Some(&ids.a_claims))),
        Actor::UserB => Some(DbIdentity::raw("authenticated", Some(&ids.b_claims))),
        Actor::NoClaims => Some(DbIdentity::authenticated_without_claims()),
        Actor::Anon => Some(DbIdentity::anon()),
        Actor::Expired | Actor::ForeignSecret => None,
    }
}

/// Runs the SQL matrix against one database: `admin` a superuser there, `app` the login role.
pub async fn run(
    admin: &PgTarget,
    app: &PgTarget,
    fixtures: &Fixtures,
    ids: &Identities,
) -> Result<AccessMatrix, Error> {
    let owners = Owners::new(fixtures)?;
    let mut admin = connect(admin).await?;
    // One connection for the whole matrix, as a pool of one: every cell after the first runs
    // on a connection an earlier identity used.
    let mut conn = connect(app).await?;
    let targets = extra_targets(&mut admin).await?;
    let matrix = super::matrix::build(
        "SQL",
        Actor::SQL.to_vec(),
        Op::all(&targets),
        |actor| fixtures.seeded_for_actor(actor),
        async |actor, op| {
            let seeded = reseed(&mut admin, fixtures, &owners).await?;
            match identity(actor, ids) {
                Some(who) => probe(&mut conn, &mut admin, &owners, &seeded, actor, op, &who).await,
                None => Ok(Observation::not_applicable()),
            }
        },
    )
    .await?;
    conn.close().await.ok();
    admin.close().await.ok();
    Ok(matrix)
}

async fn probe(
    conn: &mut PgConnection,
    admin: &mut PgConnection,
    owners: &Owners,
    seeded: &Seeded,
    actor: Actor,
    op: &Op,
    who: &DbIdentity,
) -> Result<Observation, Error> {
    let own_row = actor.own().and_then(|o| seeded.first_row.get(&o).copied());
    if (op.needs_own_row() && own_row.is_none()) || (op.needs_owner() && actor.own().is_none()) {
        return Ok(Observation::not_applicable());
    }
    let victim = actor.victim();
    let victim_id = owners.id(victim).to_owned();
    let victim_row = seeded.first_row.get(&victim).copied();
    let before = snapshot(admin, owners).await?;

    let mut tx = begin_as(conn, who).await?;
    let result: Result<Vec<Option<String>>, sqlx::Error> = match op {
        Op::Select { target } => {
            // `target` is a from-item built from the catalog with quote_ident (extra_targets).
            let sql = format!("select user_id::text from public.{target}");
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_all(&mut *tx)
                .await
        }
        Op::InsertOwn => sqlx::query("insert into public.todos (title) values ($1)")
            .bind(INSERTED)
            .execute(&mut *tx)
            .await
            .map(|_| vec![]),
        Op::InsertAsOther => {
            sqlx::query("insert into public.todos (user_id, title) values ($1, $2)")
                .bind(&victim_id)
                .bind(INSERTED)
                .execute(&mut *tx)
                .await
                .map(|_| vec![])
        }
        Op::UpdateOwn | Op::UpdateOthers => {
            let row = if *op == Op::UpdateOwn {
                own_row
            } else {
                victim_row
            };
            sqlx::query("update public.todos set title = $1 where id = $2")
                .bind(UPDATED)
                .bind(row)
                .execute(&mut *tx)
                .await
                .map(|_| vec![])
        }
        Op::UpdateOwnToOther => sqlx::query("update public.todos set user_id = $1 where id = $2")
            .bind(&victim_id)
            .bind(own_row)
            .execute(&mut *tx)
            .await
            .map(|_| vec![]),
        Op::UpdateUnfilteredToOther => sqlx::query("update public.todos set user_id = $1")
            .bind(&victim_id)
            .execute(&mut *tx)
            .await
            .map(|_| vec![]),
        Op::UpdateUnfiltered => sqlx::query("update public.todos set title = $1")
            .bind(UPDATED)
            .execute(&mut *tx)
            .await
            .map(|_| vec![]),
        Op::DeleteOwn | Op::DeleteOthers => {
            let row = if *op == Op::DeleteOwn {
                own_row
            } else {
                victim_row
            };
            sqlx::query("delete from public.todos where id = $1")
                .bind(row)
                .execute(&mut *tx)
                .await
                .map(|_| vec![])
        }
        Op::DeleteUnfiltered => sqlx::query("delete from public.todos")
            .execute(&mut *tx)
            .await
            .map(|_| vec![]),
    };
    match result {
        Ok(seen) => {
            tx.commit().await.map_err(sql_err("commit"))?;
            let after = snapshot(admin, owners).await?;
            let mut o = Observation::from_diff(&before, &after);
            if matches!(op, Op::Select { .. }) {
                o.seen = seen.iter().map(|id| owners.of(id.as_deref())).collect();
                o.seen.sort();
            }
            Ok(o)
        }
        Err(e) => {
            tx.rollback().await.ok();
            let code = e
                .as_database_error()
                .and_then(|d| d.code())
                .map_or_else(|| "error".to_owned(), |c| c.into_owned());
            Ok(Observation {
                refused: Some(code),
                ..Default::default()
            })
        }
    }
}
