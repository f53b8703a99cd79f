//! The data the suites read from `fixtures/`: Clerk-shaped users, seed todos, policy mutants.
//! Data, not code, so a reviewer can change a case without touching Rust.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::engine::Error;

/// `fixtures/` of this workspace (found at run time: the todos layers run in this repository's
/// own tests and commands only).
pub fn dir() -> PathBuf {
    harness::state::workspace_root().join("fixtures")
}

/// A Clerk-shaped user, read by clerk-token's one users-file reader.
pub type User = clerk_token::KnownUser;

/// One seeded todo, owned by a fixture user (by key).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SeedTodo {
    pub owner: String,
    pub title: String,
    pub is_complete: bool,
}

#[derive(Debug, Clone)]
pub struct Fixtures {
    pub users: Vec<User>,
    pub todos: Vec<SeedTodo>,
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, Error> {
    let text = fs::read_to_string(path).map_err(|source| Error::FixtureRead {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| Error::FixtureJson {
        path: path.to_owned(),
        source,
    })
}

impl Fixtures {
    pub fn load() -> Result<Self, Error> {
        #[derive(Deserialize)]
        struct Todos {
            todos: Vec<SeedTodo>,
        }
        let users = clerk_token::read_users(&dir().join("users.json"))?;
        let todos: Todos = read_json(&dir().join("todos.json"))?;
        for todo in &todos.todos {
            if !users.iter().any(|u| u.key == todo.owner) {
                return Err(Error::Fixture {
                    path: dir().join("todos.json"),
                    message: format!("names unknown user {}", todo.owner),
                });
            }
        }
        Ok(Self {
            users,
            todos: todos.todos,
        })
    }

    pub fn user(&self, key: &str) -> Result<&User, Error> {
        self.users
            .iter()
            .find(|u| u.key == key)
            .ok_or_else(|| Error::Fixture {
                path: dir().join("users.json"),
                message: format!("no fixture user `{key}`"),
            })
    }
}

/// What a mutant is expected to cost: a leak between users, or users losing their own access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Leak,
    LostAccess,
}

/// One weakened schema from `fixtures/mutants/`, applied on top of the migrations.
#[derive(Debug, Clone)]
pub struct Mutant {
    pub id: String,
    pub breaks: String,
    pub expect: Expect,
    pub lint: Vec<String>,
    pub sql: String,
    pub path: PathBuf,
}

/// All mutants, sorted by file name. Each file starts with `-- mutant:`, `-- breaks:`,
/// `-- expect: leak|lost_access` and `-- lint:` header lines.
pub fn mutants() -> Result<Vec<Mutant>, Error> {
    let folder = dir().join("mutants");
    let mut paths: Vec<PathBuf> = fs::read_dir(&folder)
        .map_err(|source| Error::FixtureRead {
            path: folder.clone(),
            source,
        })?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    paths.sort();
    paths.into_iter().map(|p| parse_mutant(&p)).collect()
}

fn parse_mutant(path: &Path) -> Result<Mutant, Error> {
    let sql = fs::read_to_string(path).map_err(|source| Error::FixtureRead {
        path: path.to_owned(),
        source,
    })?;
    let bad = |message: String| Error::Fixture {
        path: path.to_owned(),
        message,
    };
    let header = |key: &str| {
        sql.lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("--")
                    .map(str::trim)
                    .and_then(|l| l.strip_prefix(key))
            })
            .map(|v| v.trim().to_owned())
            .ok_or_else(|| bad(format!("no `-- {key}` header")))
    };
    let id = header("mutant:")?;
    if path.file_stem().and_then(|s| s.to_str()) != Some(id.as_str()) {
        return Err(bad(format!("the mutant id `{id}` must be the file stem")));
    }
    let expect = match header("expect:")?.as_str() {
        "leak" => Expect::Leak,
        "lost_access" => Expect::LostAccess,
        other => {
            return Err(bad(format!("expect `{other}`: use leak or lost_access")));
        }
    };
    Ok(Mutant {
        id,
        breaks: header("breaks:")?,
        expect,
        lint: header("lint:")?
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect(),
        path: path.to_owned(),
        sql,
    })
}
