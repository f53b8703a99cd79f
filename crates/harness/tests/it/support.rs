//! Shared test helpers: fixture users and small SQL conveniences.

use serde_json::{Value, json};

/// A Clerk-shaped user from `fixtures/users.json`.
#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub email: Option<String>,
}

impl User {
    /// Claims as a Clerk `insforge` template token carries them (harness takes claims as JSON).
    pub fn claims(&self) -> Value {
        let mut c = json!({
            "sub": self.id,
            "role": "authenticated",
            "aud": "insforge-api",
            "iss": "https://clerk-rls-test.clerk.accounts.dev",
        });
        if let Some(email) = &self.email {
            c["email"] = json!(email);
        }
        c
    }
}

pub fn user(key: &str) -> User {
    let path = harness::state::workspace_root().join("fixtures/users.json");
    let text = std::fs::read_to_string(&path).expect("fixtures/users.json is readable");
    let doc: Value = serde_json::from_str(&text).expect("fixtures/users.json is JSON");
    let found = doc["users"]
        .as_array()
        .and_then(|users| users.iter().find(|u| u["key"] == key))
        .unwrap_or_else(|| panic!("no fixture user {key}"));
    User {
        id: found["id"]
            .as_str()
            .expect("fixture id is a string")
            .to_owned(),
        email: found["email"].as_str().map(str::to_owned),
    }
}
