//! Finds the migration file and line that made a table, policy, function or view, so that a
//! finding can point at it (and GitHub annotate that line of the pull request).
//!
//! The folder's `V{n}__name.sql` / `U{n}__name.sql` files are found and ordered as refinery
//! (and so the harness) applies them; each is tokenized (comments, quoted identifiers and
//! dollar-quoted bodies are tokens, never statements) and its statements are read in order. The
//! last statement that creates, replaces or alters an object wins; a `DROP` forgets it, so a
//! policy dropped and created again is located at its re-creation.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer, Word};

/// Why the migrations could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LocateError {
    #[error("cannot list the migrations in {}: {source}", dir.display())]
    List {
        dir: PathBuf,
        #[source]
        source: refinery_core::Error,
    },
    #[error("cannot read migration {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot tokenize migration {}: {source}", path.display())]
    Tokenize {
        path: PathBuf,
        #[source]
        source: sqlparser::tokenizer::TokenizerError,
    },
}

/// A place in a migration file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Located {
    /// Relative to the repository root with `/` separators when the file is under it (then
    /// [`Located::relative`]); otherwise the absolute path.
    pub uri: String,
    pub relative: bool,
    /// 1-based.
    pub line: u64,
}

/// A schema-qualified name as Postgres folds it (unquoted: lower case; unqualified: `public`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct QName {
    schema: String,
    name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Table(QName),
    RlsEnabled(QName),
    Policy(QName, String),
    Function(QName),
    View(QName),
}

#[derive(Debug, Clone)]
struct Def {
    at: Located,
    /// Statement order over the whole folder.
    seq: usize,
    /// A policy's command: `select`, `insert`, `update`, `delete` or `all`.
    command: Option<String>,
}

/// What a migrations folder creates, and where.
#[derive(Debug, Clone, Default)]
pub struct Locator {
    files: Vec<String>,
    relative: bool,
    defs: HashMap<Key, Def>,
    seq: usize,
}

impl Locator {
    /// A locator that finds nothing (no migrations folder).
    pub fn empty() -> Self {
        Self::default()
    }

    /// The repository `dir` is in: the closest folder at or above it holding `.git` (a folder,
    /// or a worktree's file), else `dir` itself. SARIF locations are relative to it, which is
    /// where GitHub resolves them.
    pub fn repository_root(dir: &Path) -> PathBuf {
        let start = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        start
            .ancestors()
            .find(|d| d.join(".git").exists())
            .map_or(start.clone(), Path::to_path_buf)
    }

    /// Reads every migration of `dir` in refinery's version order; `root` is the repository
    /// root the locations are made relative to.
    pub fn scan(root: &Path, dir: &Path) -> Result<Self, LocateError> {
        let list = |source| LocateError::List {
            dir: dir.to_path_buf(),
            source,
        };
        let mut files: Vec<(refinery_core::SchemaVersion, PathBuf)> = Vec::new();
        for path in refinery_core::find_migration_files(dir, refinery_core::MigrationType::Sql)
            .map_err(list)?
        {
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default();
            let (_, version, _) = refinery_core::parse_migration_name(stem).map_err(list)?;
            files.push((version, path));
        }
        // Stable: equal versions (refinery refuses them when applying) keep the path order.
        files.sort_by_key(|(v, _)| *v);
        let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
        let mut locator = Self::default();
        for (_, path) in files {
            let sql = std::fs::read_to_string(&path).map_err(|source| LocateError::Read {
                path: path.clone(),
                source,
            })?;
            let (uri, relative) = match path.strip_prefix(&root) {
                Ok(rel) => (
                    rel.components()
                        .map(|c| c.as_os_str().to_string_lossy())
                        .collect::<Vec<_>>()
                        .join("/"),
                    true,
                ),
                Err(_) => (path.to_string_lossy().into_owned(), false),
            };
            locator
                .add_file(&uri, relative, &sql)
                .map_err(|source| LocateError::Tokenize {
                    path: path.clone(),
                    source,
                })?;
        }
        Ok(locator)
    }

    /// Reads one file's statements (exposed for tests and callers holding SQL in memory).
    pub fn add_file(
        &mut self,
        uri: &str,
        relative: bool,
        sql: &str,
    ) -> Result<(), sqlparser::tokenizer::TokenizerError> {
        let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize_with_location()?;
        if self.files.is_empty() {
            self.relative = relative;
        }
        self.files.push(uri.to_owned());
        let mut statement: Vec<&TokenWithSpan> = Vec::new();
        for t in &tokens {
            match &t.token {
                Token::Whitespace(_) => {}
                Token::SemiColon => {
                    self.statement(uri, relative, &statement);
                    statement.clear();
                }
                _ => statement.push(t),
            }
        }
        self.statement(uri, relative, &statement);
        Ok(())
    }

    /// The first migration's first line: where a finding goes that no migration made (a base
    /// function, a role), so that it still has a place to be shown.
    pub fn fallback(&self) -> Option<Located> {
        self.files.first().map(|uri| Located {
            uri: uri.clone(),
            relative: self.relative,
            line: 1,
        })
    }

    /// Where a table was created; `name` is `schema.table` or `table` (then `public` first).
    pub fn table(&self, name: &str) -> Option<Located> {
        self.find(name, Key::Table)
    }

    /// Where row level security was enabled on a table.
    pub fn rls_enabled(&self, table: &str) -> Option<Located> {
        self.find(table, Key::RlsEnabled)
    }

    /// Where a function was created or last replaced (any overload); `name` without arguments.
    pub fn function(&self, name: &str) -> Option<Located> {
        self.find(name, Key::Function)
    }

    /// Where a view was created or last replaced.
    pub fn view(&self, name: &str) -> Option<Located> {
        self.find(name, Key::View)
    }

    /// Where a policy was created (or last altered).
    pub fn policy(&self, table: &str, policy: &str) -> Option<Located> {
        self.find(table, |q| Key::Policy(q, policy.to_owned()))
    }

    /// The names of every policy on `table`.
    pub fn policy_names(&self, table: &str) -> Vec<String> {
        let Some(q) = self.qname_of(table) else {
            return Vec::new();
        };
        let mut names: Vec<String> = self
            .defs
            .keys()
            .filter_map(|k| match k {
                Key::Policy(t, name) if *t == q => Some(name.clone()),
                _ => None,
            })
            .collect();
        names.sort();
        names
    }

    /// The policies on `table` that apply to `command` (theirs or `all`), the most recently
    /// made first, by name.
    pub fn policies_for(&self, table: &str, command: &str) -> Vec<(String, Located)> {
        let Some(q) = self.qname_of(table) else {
            return Vec::new();
        };
        let mut out: Vec<(usize, String, Located)> = self
            .defs
            .iter()
            .filter_map(|(k, d)| match k {
                Key::Policy(t, name)
                    if *t == q
                        && d.command
                            .as_deref()
                            .is_some_and(|c| c == command || c == "all") =>
                {
                    Some((d.seq, name.clone(), d.at.clone()))
                }
                _ => None,
            })
            .collect();
        out.sort_by_key(|d| std::cmp::Reverse(d.0));
        out.into_iter().map(|(_, n, l)| (n, l)).collect()
    }

    /// Where a lint finding's object was made (see [`crate::LintFinding::object`]). A table's
    /// `rls.*` finding goes to its `ENABLE ROW LEVEL SECURITY` when there is one.
    pub fn lint_object(&self, rule: &str, object: &str) -> Option<Located> {
        if let Some(rest) = object.strip_prefix("policy ") {
            let (policy, table) = rest.rsplit_once(" on ")?;
            return self.policy(table, policy).or_else(|| self.table(table));
        }
        if let Some(rest) = object.strip_prefix("function ") {
            let name = rest.split_once('(').map_or(rest, |(n, _)| n);
            return self.function(name);
        }
        if let Some(rest) = object.strip_prefix("view ") {
            return self.view(rest).or_else(|| self.table(rest));
        }
        if let Some(rest) = object.strip_prefix("column ") {
            let (table, _) = rest.rsplit_once('.')?;
            return self.table(table);
        }
        if object.starts_with("role ") || object.starts_with("schema ") {
            return None;
        }
        if rule.starts_with("rls.") {
            self.rls_enabled(object).or_else(|| self.table(object))
        } else {
            self.table(object).or_else(|| self.rls_enabled(object))
        }
    }

    /// The known qualified name a `schema.name` or bare `name` means: the exact one, else a
    /// bare name in `public`, else in any schema (the first by name).
    fn qname_of(&self, name: &str) -> Option<QName> {
        let mut known: Vec<&QName> = self
            .defs
            .keys()
            .map(|k| match k {
                Key::Table(q)
                | Key::RlsEnabled(q)
                | Key::Policy(q, _)
                | Key::Function(q)
                | Key::View(q) => q,
            })
            .collect();
        known.sort();
        known.dedup();
        let exact = known
            .iter()
            .find(|q| format!("{}.{}", q.schema, q.name) == name);
        let bare = || {
            let mut bare: Vec<&&QName> = known.iter().filter(|q| q.name == name).collect();
            bare.sort_by_key(|q| (q.schema != "public", q.schema.clone()));
            bare.first().map(|q| (**q).clone())
        };
        exact.map(|q| (*q).clone()).or_else(bare)
    }

    fn find(&self, name: &str, key: impl Fn(QName) -> Key) -> Option<Located> {
        // A bare name may be known in several schemas for different kinds; try each.
        let direct = self.qname_of(name).and_then(|q| self.defs.get(&key(q)));
        direct
            .or_else(|| {
                let mut hits: Vec<&Def> = self
                    .defs
                    .iter()
                    .filter(|(k, _)| {
                        let q = match k {
                            Key::Table(q)
                            | Key::RlsEnabled(q)
                            | Key::Policy(q, _)
                            | Key::Function(q)
                            | Key::View(q) => q,
                        };
                        (q.name == name || format!("{}.{}", q.schema, q.name) == name)
                            && **k == key(q.clone())
                    })
                    .map(|(_, d)| d)
                    .collect();
                hits.sort_by_key(|d| d.seq);
                hits.pop()
            })
            .map(|d| d.at.clone())
    }

    fn statement(&mut self, uri: &str, relative: bool, tokens: &[&TokenWithSpan]) {
        let Some(first) = tokens.first() else {
            return;
        };
        let at = Located {
            uri: uri.to_owned(),
            relative,
            line: first.span.start.line,
        };
        self.seq += 1;
        let seq = self.seq;
        let mut s = Statement { tokens, pos: 0 };
        let def = |command: Option<String>| Def {
            at: at.clone(),
            seq,
            command,
        };
        if s.keyword("create") {
            s.words(&["or", "replace"]);
            // Modifiers before the object's kind.
            while s.any_keyword(&[
                "temp",
                "temporary",
                "unlogged",
                "global",
                "local",
                "materialized",
                "recursive",
                "trusted",
            ]) {}
            if s.keyword("table") {
                s.if_not_exists();
                if let Some(q) = s.qname() {
                    self.defs.insert(Key::Table(q), def(None));
                }
            } else if s.keyword("function") || s.keyword("procedure") {
                if let Some(q) = s.qname() {
                    self.defs.insert(Key::Function(q), def(None));
                }
            } else if s.keyword("view") {
                s.if_not_exists();
                if let Some(q) = s.qname() {
                    self.defs.insert(Key::View(q), def(None));
                }
            } else if s.keyword("policy") {
                let Some(name) = s.ident() else { return };
                if !s.keyword("on") {
                    return;
                }
                let Some(table) = s.qname() else { return };
                let mut command = "all".to_owned();
                while let Some(w) = s.next_word() {
                    if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("for") {
                        if let Some(c) = s.next_word() {
                            command = c.value.to_ascii_lowercase();
                        }
                        break;
                    }
                    if w.quote_style.is_none()
                        && ["to", "using", "with"]
                            .iter()
                            .any(|k| w.value.eq_ignore_ascii_case(k))
                    {
                        break;
                    }
                }
                self.defs
                    .insert(Key::Policy(table, name), def(Some(command)));
            }
        } else if s.keyword("alter") {
            if s.keyword("table") {
                s.words(&["if", "exists"]);
                s.keyword("only");
                let Some(table) = s.qname() else { return };
                if s.contains_words(&["enable", "row", "level", "security"]) {
                    self.defs.insert(Key::RlsEnabled(table.clone()), def(None));
                }
                if s.contains_words(&["disable", "row", "level", "security"]) {
                    self.defs.remove(&Key::RlsEnabled(table));
                }
            } else if s.keyword("policy") {
                let Some(name) = s.ident() else { return };
                if !s.keyword("on") {
                    return;
                }
                let Some(table) = s.qname() else { return };
                let old = Key::Policy(table.clone(), name);
                let command = self.defs.get(&old).and_then(|d| d.command.clone());
                if s.keyword("rename") && s.keyword("to") {
                    let Some(new) = s.ident() else { return };
                    self.defs.remove(&old);
                    self.defs.insert(Key::Policy(table, new), def(command));
                } else {
                    // USING / WITH CHECK / TO changed here: this is the policy's latest word.
                    self.defs.insert(old, def(command));
                }
            }
        } else if s.keyword("drop") {
            if s.keyword("policy") {
                s.words(&["if", "exists"]);
                let Some(name) = s.ident() else { return };
                if s.keyword("on")
                    && let Some(table) = s.qname()
                {
                    self.defs.remove(&Key::Policy(table, name));
                }
            } else if let Some(kind) = ["table", "view", "function"]
                .into_iter()
                .find(|k| s.keyword(k))
            {
                s.words(&["if", "exists"]);
                while let Some(q) = s.qname() {
                    match kind {
                        "table" => self.defs.retain(|k, _| match k {
                            Key::Table(t) | Key::RlsEnabled(t) | Key::Policy(t, _) => *t != q,
                            _ => true,
                        }),
                        "view" => {
                            self.defs.remove(&Key::View(q));
                        }
                        _ => {
                            self.defs.remove(&Key::Function(q));
                        }
                    }
                    s.skip_parens();
                    if !s.punct(&Token::Comma) {
                        break;
                    }
                }
            }
        }
    }
}

/// A cursor over one statement's tokens (whitespace and comments left out).
struct Statement<'a> {
    tokens: &'a [&'a TokenWithSpan],
    pos: usize,
}

impl<'a> Statement<'a> {
    fn peek(&self) -> Option<&'a Token> {
        self.tokens.get(self.pos).map(|t| &t.token)
    }

    /// Consumes an unquoted word equal (ignoring case) to `kw`.
    fn keyword(&mut self, kw: &str) -> bool {
        match self.peek() {
            Some(Token::Word(w)) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(kw) => {
                self.pos += 1;
                true
            }
            _ => false,
        }
    }

    fn any_keyword(&mut self, kws: &[&str]) -> bool {
        kws.iter().any(|k| self.keyword(k))
    }

    fn if_not_exists(&mut self) {
        self.words(&["if", "not", "exists"]);
    }

    /// Consumes these keywords in a row, or nothing.
    fn words(&mut self, kws: &[&str]) -> bool {
        let save = self.pos;
        if kws.iter().all(|k| self.keyword(k)) {
            true
        } else {
            self.pos = save;
            false
        }
    }

    fn punct(&mut self, t: &Token) -> bool {
        if self.peek() == Some(t) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn next_word(&mut self) -> Option<Word> {
        while let Some(t) = self.peek() {
            self.pos += 1;
            if let Token::Word(w) = t {
                return Some(w.clone());
            }
        }
        None
    }

    /// An identifier as Postgres folds it.
    fn ident(&mut self) -> Option<String> {
        match self.peek() {
            Some(Token::Word(w)) => {
                let name = if w.quote_style.is_some() {
                    w.value.clone()
                } else {
                    w.value.to_lowercase()
                };
                self.pos += 1;
                Some(name)
            }
            _ => None,
        }
    }

    /// `name` or `schema.name` (unqualified: `public`).
    fn qname(&mut self) -> Option<QName> {
        let first = self.ident()?;
        if self.punct(&Token::Period) {
            let name = self.ident()?;
            Some(QName {
                schema: first,
                name,
            })
        } else {
            Some(QName {
                schema: "public".into(),
                name: first,
            })
        }
    }

    fn skip_parens(&mut self) {
        if self.peek() != Some(&Token::LParen) {
            return;
        }
        let mut depth = 0usize;
        while let Some(t) = self.peek() {
            self.pos += 1;
            match t {
                Token::LParen => depth += 1,
                Token::RParen => {
                    depth -= 1;
                    if depth == 0 {
                        return;
                    }
                }
                _ => {}
            }
        }
    }

    /// The rest of the statement holds these unquoted words in a row.
    fn contains_words(&self, words: &[&str]) -> bool {
        self.tokens[self.pos..].windows(words.len()).any(|w| {
            w.iter().zip(words).all(|(t, k)| {
                matches!(&t.token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(k))
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn locator(files: &[(&str, &str)]) -> Locator {
        let mut l = Locator::empty();
        for (uri, sql) in files {
            l.add_file(uri, true, sql).unwrap();
        }
        l
    }

    fn line(l: Option<Located>) -> Option<(String, u64)> {
        l.map(|l| (l.uri, l.line))
    }

    #[test]
    fn finds_each_kind_case_insensitively_with_quotes_and_schemas() {
        let l = locator(&[(
            "m/V1__a.sql",
            "-- a comment; with a semicolon\n\
             CREATE TABLE IF NOT EXISTS \"Shop\".\"Orders\" (id int);\n\
             create table notes (\n  id int\n);\n\
             Alter Table Only public.notes\n  Enable Row Level Security;\n\
             create policy \"Notes Read\" on notes\n  for select to authenticated using (true);\n\
             CREATE OR REPLACE FUNCTION app.uid() RETURNS text LANGUAGE sql AS $$ select 'create table x; create policy p on y' $$;\n\
             create view public.v as select 1;",
        )]);
        assert_eq!(
            line(l.table("Shop.Orders")),
            Some(("m/V1__a.sql".into(), 2))
        );
        assert_eq!(line(l.table("shop.orders")), None);
        assert_eq!(line(l.table("notes")), Some(("m/V1__a.sql".into(), 3)));
        assert_eq!(
            line(l.table("public.notes")),
            Some(("m/V1__a.sql".into(), 3))
        );
        assert_eq!(
            line(l.rls_enabled("notes")),
            Some(("m/V1__a.sql".into(), 6))
        );
        assert_eq!(
            line(l.policy("notes", "Notes Read")),
            Some(("m/V1__a.sql".into(), 8))
        );
        assert_eq!(
            line(l.function("app.uid")),
            Some(("m/V1__a.sql".into(), 10))
        );
        assert_eq!(line(l.view("public.v")), Some(("m/V1__a.sql".into(), 11)));
        // Nothing inside the dollar-quoted body counts.
        assert_eq!(l.table("x"), None);
        assert_eq!(
            l.policies_for("notes", "select")
                .into_iter()
                .map(|(n, _)| n)
                .collect::<Vec<_>>(),
            ["Notes Read"]
        );
        assert!(l.policies_for("notes", "delete").is_empty());
    }

    #[test]
    fn the_last_definition_wins_and_a_drop_forgets() {
        let l = locator(&[
            (
                "V1__a.sql",
                "create table t (id int);\ncreate policy p on t using (true);\ncreate policy q on t for delete using (true);\ncreate function f() returns int language sql as 'select 1';",
            ),
            (
                "V2__b.sql",
                "\n\ndrop policy if exists p on public.t;\ncreate policy p on t for all using (false);\ncreate or replace function public.f() returns int language sql as 'select 2';\ndrop policy q on t;",
            ),
        ]);
        assert_eq!(line(l.policy("t", "p")), Some(("V2__b.sql".into(), 4)));
        assert_eq!(line(l.function("f")), Some(("V2__b.sql".into(), 5)));
        assert_eq!(l.policy("t", "q"), None);
        assert_eq!(line(l.table("t")), Some(("V1__a.sql".into(), 1)));
    }

    #[test]
    fn lint_objects_map_to_their_statements() {
        let l = locator(&[(
            "V1__a.sql",
            "create table public.t (id int);\nalter table public.t enable row level security;\ncreate policy p on public.t using (true);\ncreate function public.f(a uuid) returns int language sql as 'select 1';",
        )]);
        let at = |rule, object| l.lint_object(rule, object).map(|l| l.line);
        assert_eq!(at("policy.always_true", "policy p on public.t"), Some(3));
        assert_eq!(at("rls.not_forced", "public.t"), Some(2));
        assert_eq!(at("owner_column.uuid", "column public.t.id"), Some(1));
        assert_eq!(
            at("function.search_path", "function public.f(a uuid)"),
            Some(4)
        );
        assert_eq!(at("role.superuser", "role app"), None);
        assert_eq!(l.fallback().map(|l| l.line), Some(1));
    }
}
