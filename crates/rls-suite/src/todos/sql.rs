//! The matrix in SQL: each cell is one identity transaction on the app's login role, judged by
//! diffing the table as a superuser before and after — the policies, not the query, decide.

use std::collections::HashMap;

use harness::PgTarget;
use sqlx::PgConnection;
use uuid::Uuid;

use super::fixtures::Fixtures;
use super::matrix::{Owner, Row};
use crate::engine::Error;

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
