//! The one reader of a users file, `{"users":[{"key","id","email"}]}` (the workspace's
//! `fixtures/users.json`): Clerk-shaped test users known by a short key. Other fields are ignored.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A Clerk-shaped user a test or the dev sign-in picker knows by a short key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownUser {
    /// Short name, e.g. `alice`.
    pub key: String,
    /// The Clerk user id: a token's `sub`.
    pub id: String,
    #[serde(default)]
    pub email: Option<String>,
}

/// Why a users file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum UsersFileError {
    #[error("cannot read {}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a users file ({{\"users\":[{{\"key\",\"id\",\"email\"}}]}})", .path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// Reads the users listed in `path`, in file order.
pub fn read_users(path: &Path) -> Result<Vec<KnownUser>, UsersFileError> {
    #[derive(Deserialize)]
    struct UsersFile {
        users: Vec<KnownUser>,
    }
    let text = std::fs::read_to_string(path).map_err(|source| UsersFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    let file: UsersFile = serde_json::from_str(&text).map_err(|source| UsersFileError::Parse {
        path: path.to_owned(),
        source,
    })?;
    Ok(file.users)
}
