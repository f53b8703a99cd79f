//! The only table and columns this app knows: the allowlist every SQL identifier comes from.
//! Nothing a client sends ever becomes SQL text; it can only select one of these entries.

use std::fmt;

/// A table the records API serves. `todos` is the only one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    Todos,
}

impl Table {
    /// The table named by a URL path segment, if it is one we serve.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "todos" => Some(Self::Todos),
            _ => None,
        }
    }

    /// Schema-qualified and quoted, ready to paste into SQL.
    pub fn sql(self) -> &'static str {
        match self {
            Self::Todos => r#"public."todos""#,
        }
    }

    pub fn columns(self) -> &'static [Column] {
        match self {
            Self::Todos => &Column::ALL,
        }
    }
}

/// A column of `public.todos`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Column {
    Id,
    UserId,
    Title,
    IsComplete,
    CreatedAt,
}

impl Column {
    /// In table order, which is also the key order of `select=*`.
    pub const ALL: [Column; 5] = [
        Column::Id,
        Column::UserId,
        Column::Title,
        Column::IsComplete,
        Column::CreatedAt,
    ];

    /// The column a client names, compared exactly (Postgres folds unquoted names to lower
    /// case, but PostgREST quotes every name it receives, so `Title` is not `title`).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::UserId => "user_id",
            Self::Title => "title",
            Self::IsComplete => "is_complete",
            Self::CreatedAt => "created_at",
        }
    }

    /// The name as a quoted SQL identifier.
    pub fn sql(self) -> &'static str {
        match self {
            Self::Id => r#""id""#,
            Self::UserId => r#""user_id""#,
            Self::Title => r#""title""#,
            Self::IsComplete => r#""is_complete""#,
            Self::CreatedAt => r#""created_at""#,
        }
    }

    /// The SQL type a text parameter is cast to before it meets this column, so Postgres
    /// (not this app) decides what a valid value is and reports 22P02 when it is not.
    pub fn sql_type(self) -> &'static str {
        match self {
            Self::Id => "uuid",
            Self::UserId | Self::Title => "text",
            Self::IsComplete => "boolean",
            Self::CreatedAt => "timestamptz",
        }
    }
}

impl fmt::Display for Column {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_sql_is_the_quoted_name() {
        for c in Column::ALL {
            assert_eq!(Column::from_name(c.name()), Some(c));
            assert_eq!(c.sql(), format!("\"{}\"", c.name()));
        }
        assert_eq!(Column::from_name("Title"), None);
        assert_eq!(Column::from_name("title\""), None);
        assert_eq!(Table::from_name("todos"), Some(Table::Todos));
        assert_eq!(Table::from_name("public.todos"), None);
        assert_eq!(Table::Todos.columns(), &Column::ALL);
    }
}
