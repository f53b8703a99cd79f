//! The access spec: one TOML file that says, per table, how rows relate to actors and what each
//! command is meant to allow. Parsed and checked here for what the file alone can tell (unknown
//! keys, rule names, relations, cycles); [`crate::engine`] binds it to the catalog.
//!
//! Every error names the file, the key and the line, before anything is made.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use toml::Spanned;

mod accept;
mod raw;
use raw::{OneOrMany, RawRule, RawSpec, RawTable, Source};
pub mod functions;
use accept::operation_keys;
pub use accept::{Accept, Unexercised, glob, operation_key};
pub use functions::{Callers, FunctionSpec};

/// A spec that could not be read, with where in the file.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot read the access spec {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `file:line: key: what is wrong`.
    #[error("{path}:{line}: {key}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        key: String,
        message: String,
    },
}

/// What a command allows, as names: `anyone`, `signed_in`, `owner`, `member`, `member:<role>`,
/// `nobody`, or the name of one of the table's own `predicates`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// Every role that reaches the database (`anon` and `authenticated`).
    Anyone,
    /// The `authenticated` role, with or without a `sub`.
    SignedIn,
    /// The row's owner column holds the caller's id.
    Owner,
    /// The caller is a member (of this row, or of its parent's row), with one of these roles
    /// when given.
    Member(Option<Vec<String>>),
    /// A SQL predicate of the spec's own (`t` is the row, `$1` the caller's id, `$2` the role,
    /// `$3` the forwarded `email` claim).
    Predicate(String),
    /// `role:<name>`: the caller's forwarded `role` claim (the database role InsForge switches
    /// to) is this one.
    Role(String),
    /// `email:<glob>`: the caller's forwarded `email` claim matches the glob (`*` any run of
    /// characters): `email:*@example.com`.
    Email(String),
    /// `{ all = [...] }`: every one of these rules holds.
    All(Vec<Rule>),
}

impl Rule {
    /// The rule and the rules inside it (an `all`'s), depth first.
    pub fn flatten(&self) -> Vec<&Rule> {
        let mut out = vec![self];
        if let Rule::All(rules) = self {
            out.extend(rules.iter().flat_map(Rule::flatten));
        }
        out
    }
}

/// The four commands a table's rules cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Command {
    Select,
    Insert,
    Update,
    Delete,
}

impl Command {
    pub const ALL: [Command; 4] = [
        Command::Select,
        Command::Insert,
        Command::Update,
        Command::Delete,
    ];

    /// The write commands that get a cell per membership role (`insert · as <role>`).
    pub const ROLE_CELLS: [Command; 3] = [Command::Insert, Command::Update, Command::Delete];

    pub fn key(self) -> &'static str {
        match self {
            Command::Select => "select",
            Command::Insert => "insert",
            Command::Update => "update",
            Command::Delete => "delete",
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// A Clerk user the suite acts as.
#[derive(Debug, Clone, PartialEq)]
pub struct UserSpec {
    pub key: String,
    /// The Clerk id, when the spec pins one (else the suite picks one, see
    /// [`crate::engine::model::actor`]).
    pub id: Option<String>,
    pub email: Option<String>,
    /// Extra claims in the user's token (InsForge ≥ 2.2.5 does not forward them to Postgres).
    pub claims: Map<String, Value>,
}

/// Rows of another table that grant access to this table's rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Members {
    /// The membership table.
    pub table: String,
    /// Membership column → this table's column.
    pub on: Vec<(String, String)>,
    /// The membership column holding the member's Clerk id.
    pub user: String,
    /// The membership column holding the member's role, and the roles in seeding order (the
    /// first goes to the row's owner).
    pub role: Option<(String, Vec<String>)>,
}

/// The table this table's rows belong to (tasks belong to a project): `member` here means a
/// member of that row.
#[derive(Debug, Clone, PartialEq)]
pub struct Parent {
    pub table: String,
    /// This table's column → the parent's column.
    pub on: Vec<(String, String)>,
}

/// One table of the spec.
#[derive(Debug, Clone, PartialEq)]
pub struct TableSpec {
    pub name: String,
    /// The column holding the owner's Clerk id.
    pub owner: Option<String>,
    /// What a valid insert carries besides the owner and relation columns.
    pub payload: Map<String, Value>,
    /// The column `update` writes (default: the first payload column; where nobody may
    /// update, a relation column).
    pub change: Option<String>,
    /// Whether the table's triggers fire when its seed rows go in (default `true`; `false`
    /// for a trigger that cannot run in a test).
    pub triggers: bool,
    /// Columns that must never be re-assigned (default: the owner and the relation columns).
    pub immutable: Vec<String>,
    /// Whether `immutable` was written. Left at its default, a parent column is judged by the
    /// insert rules instead: moving a row to another parent is fine where the actor may insert
    /// a row there.
    pub immutable_explicit: bool,
    /// The users this table's seed rows are made for (`seed_for`): a shape no policy reveals,
    /// such as a user with no role. `None`: every user, the look-alikes included.
    pub seed_for: Option<Vec<String>>,
    /// Seed rows the team declares (`[[tables.<t>.rows]]`), for shapes no policy reveals.
    pub rows: Vec<DeclaredRow>,
    pub members: Option<Members>,
    pub parent: Option<Parent>,
    pub predicates: BTreeMap<String, String>,
    pub rules: BTreeMap<Command, Vec<Rule>>,
    /// The line of `[tables.<name>]`, for errors found later against the catalog.
    pub line: usize,
    /// The line of each key that has one (`select`, `parent`, `members`, …).
    pub key_lines: BTreeMap<&'static str, usize>,
}

/// One `[[tables.<t>.rows]]` entry: one more seed row of the table, a copy of the first seed row
/// made for `user` (its owner, parent and membership columns) with `values` set.
#[derive(Debug, Clone, PartialEq)]
pub struct DeclaredRow {
    /// A user of `[actors]`: whose row it is.
    pub user: String,
    /// Column → value (at least one).
    pub values: Map<String, Value>,
    /// The line of the entry, for errors found against the catalog or when seeding.
    pub line: usize,
}

impl TableSpec {
    /// The line of `key` in this table, else of the table itself.
    pub fn line_of(&self, key: &str) -> usize {
        self.key_lines.get(key).copied().unwrap_or(self.line)
    }
}

/// A whole spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    pub path: PathBuf,
    pub schema: String,
    /// The team's migrations folder, when the spec names one (relative paths are the spec's).
    pub migrations: Option<PathBuf>,
    pub users: Vec<UserSpec>,
    /// In the file's order.
    pub tables: Vec<TableSpec>,
    /// Generated mutants the team declares equivalent (no check can tell them apart from the
    /// schema), by id, with the reason: reported apart from survivors.
    pub equivalent: BTreeMap<String, String>,
    /// Known findings the team accepts for now (`[accept]`), in the file's order: reported
    /// apart, they do not fail the check.
    pub accept: Vec<Accept>,
    /// `[functions.<name>]` entries, in the file's order (see [`functions`]).
    pub functions: Vec<FunctionSpec>,
    /// Policy clauses and branches the team accepts that no cell exercises (`[unexercised]`),
    /// in the file's order: reported with their reasons, they do not fail the check.
    pub unexercised: Vec<Unexercised>,
}

impl Spec {
    /// Reads and checks a spec file.
    pub fn load(path: &Path) -> Result<Self, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses and checks spec text; `path` names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Self, SpecError> {
        let src = Source { path, text };
        let raw: RawSpec = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            src.err(offset, src.key_at(offset), e.message().trim().to_owned())
        })?;
        let users = raw
            .actors
            .into_iter()
            .map(|(key, user)| {
                let offset = user.span().start;
                let user = user.into_inner();
                if BUILT_IN_ACTORS.contains(&key.as_str()) {
                    return Err(src.err(
                        offset,
                        format!("actors.{key}"),
                        format!("`{key}` is a built-in actor; give your user another name"),
                    ));
                }
                Ok(UserSpec {
                    key,
                    id: user.id,
                    email: user.email,
                    claims: toml_to_json(user.claims),
                })
            })
            .collect::<Result<Vec<_>, SpecError>>()?;
        if users.is_empty() {
            return Err(src.err(
                0,
                "actors",
                "no actors: declare at least one Clerk user, e.g. `[actors.ada]`",
            ));
        }
        let shared = predicates(&src, raw.predicates, "predicates")?;
        let user_keys: Vec<&str> = users.iter().map(|u| u.key.as_str()).collect();
        let mut tables = Vec::new();
        for (name, raw) in raw.tables {
            let offset = src.table_offset("tables", &name).min(raw.span().start);
            let t = table(&src, &name, offset, raw.into_inner(), &shared)?;
            if let Some(list) = &t.seed_for {
                let fail = |what: String| SpecError::Invalid {
                    path: path.to_owned(),
                    line: t.line_of("seed_for"),
                    key: format!("tables.{name}.seed_for"),
                    message: what,
                };
                if list.is_empty() {
                    return Err(fail(
                        "name at least one user (or leave `seed_for` out)".into(),
                    ));
                }
                if let Some(unknown) = list.iter().find(|u| !user_keys.contains(&u.as_str())) {
                    return Err(fail(format!(
                        "`{unknown}` is not a user of [actors] (they are {})",
                        user_keys.join(", ")
                    )));
                }
            }
            for row in &t.rows {
                let fail = |what: String| SpecError::Invalid {
                    path: path.to_owned(),
                    line: row.line,
                    key: format!("tables.{name}.rows"),
                    message: what,
                };
                if !user_keys.contains(&row.user.as_str()) {
                    return Err(fail(format!(
                        "`for = \"{}\"`: not a user of [actors] (they are {})",
                        row.user,
                        user_keys.join(", ")
                    )));
                }
                if row.values.is_empty() {
                    return Err(fail(
                        "give the row's `values` (column = value): what makes it differ from \
                         the user's other seed rows"
                            .into(),
                    ));
                }
                if let Some(only) = &t.seed_for
                    && !only.contains(&row.user)
                {
                    return Err(fail(format!(
                        "`{}` is not in this table's `seed_for`: the row is a copy of their \
                         seed row, and they have none",
                        row.user
                    )));
                }
            }
            tables.push(t);
        }
        if tables.is_empty() {
            return Err(src.err(
                0,
                "tables",
                "no tables: describe at least one, e.g. `[tables.notes]` with `owner = \"owner_id\"`",
            ));
        }
        let spec = Spec {
            path: path.to_owned(),
            schema: raw.schema.unwrap_or_else(|| "public".into()),
            migrations: raw
                .migrations
                .map(|m| path.parent().unwrap_or_else(|| Path::new(".")).join(m)),
            users,
            tables,
            equivalent: BTreeMap::new(),
            accept: Vec::new(),
            functions: Vec::new(),
            unexercised: Vec::new(),
        };
        let mut spec = spec;
        for (key, reason) in raw.unexercised {
            let at = reason.span().start;
            let fail = |what: &str| src.err(at, format!("unexercised.{key}"), what);
            if reason.get_ref().trim().is_empty() {
                return Err(fail("say why nothing need exercise it"));
            }
            let table = key.split_once('.').map_or("", |(t, _)| t);
            if table.is_empty() || !spec.tables.iter().any(|t| glob(table, &t.name)) {
                return Err(fail(&format!(
                    "no table of this spec is `{table}`: write the key as the coverage report \
                     names the clause, `table.policy using` or `table.policy check · branch 2`"
                )));
            }
            spec.unexercised.push(Unexercised {
                reason: reason.get_ref().clone(),
                line: src.line(at),
                key,
            });
        }
        for (key, reason) in raw.accept {
            let entry = spec.accept_entry(&src, key, reason)?;
            spec.accept.push(entry);
        }
        for (id, reason) in raw.mutants.map(|m| m.equivalent).unwrap_or_default() {
            if reason.get_ref().trim().is_empty() {
                return Err(src.err(
                    reason.span().start,
                    format!("mutants.equivalent.{id}"),
                    "say why the mutant is equivalent",
                ));
            }
            if let Some(what) = crate::mutation::equivalent_entry_error(&spec, &id) {
                return Err(src.err(
                    reason.span().start,
                    format!("mutants.equivalent.{id}"),
                    what,
                ));
            }
            spec.equivalent.insert(id, reason.into_inner());
        }
        spec.check_relations(&src)?;
        let actors: Vec<String> = spec.users.iter().map(|u| u.key.clone()).collect();
        spec.functions = functions::parse(&src, raw.functions, &actors, &spec.tables)?;
        Ok(spec)
    }

    pub fn table(&self, name: &str) -> Option<&TableSpec> {
        self.tables.iter().find(|t| t.name == name)
    }

    /// The membership roles `t`'s write cells are tried with one at a time (`insert · as
    /// <role>`, …): the `roles` of the membership that grants `t`'s rows (its own `members`,
    /// else its parent's, up the chain), where some rule of `t` names a role (`member:<role>`,
    /// also inside an `all`). Empty otherwise.
    pub fn role_cells(&self, t: &TableSpec) -> Vec<String> {
        let names_a_role = t
            .rules
            .values()
            .flatten()
            .flat_map(Rule::flatten)
            .any(|r| matches!(r, Rule::Member(Some(_))));
        if !names_a_role {
            return Vec::new();
        }
        let mut at = t;
        for _ in 0..16 {
            if let Some(m) = &at.members {
                return m
                    .role
                    .as_ref()
                    .map(|(_, roles)| roles.clone())
                    .unwrap_or_default();
            }
            match at.parent.as_ref().and_then(|p| self.table(&p.table)) {
                Some(parent) => at = parent,
                None => break,
            }
        }
        Vec::new()
    }

    /// An `[accept]` entry checked against the spec: a reason, and a table, an operation and
    /// an actor that exist.
    fn accept_entry(
        &self,
        src: &Source<'_>,
        key: String,
        reason: Spanned<String>,
    ) -> Result<Accept, SpecError> {
        let at = reason.span().start;
        let fail = |what: String| src.err(at, format!("accept.{key}"), what);
        if reason.get_ref().trim().is_empty() {
            return Err(fail("say why the finding is accepted".into()));
        }
        let (Some((table, rest)), Some((_, actor))) = (key.split_once('.'), key.rsplit_once('.'))
        else {
            return Err(fail("write the key as `table.operation.actor`".into()));
        };
        let operation = &rest[..rest.len().saturating_sub(actor.len() + 1)];
        if operation.is_empty() {
            return Err(fail("write the key as `table.operation.actor`".into()));
        }
        let tables: Vec<&TableSpec> = self
            .tables
            .iter()
            .filter(|t| glob(table, &t.name))
            .collect();
        if tables.is_empty() {
            return Err(fail(format!("no table of this spec is `{table}`")));
        }
        let known_op = operation.starts_with("select_via_")
            || tables
                .iter()
                .flat_map(|t| operation_keys(self, t))
                .any(|op| glob(operation, &op));
        if !known_op {
            return Err(fail(format!(
                "no operation of {} is `{operation}` (they are {})",
                tables
                    .iter()
                    .map(|t| t.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                operation_keys(self, tables[0]).join(", ") + ", select_via_<reader>"
            )));
        }
        let actors: Vec<String> = crate::engine::model::actor::actors(self)
            .into_iter()
            .map(|a| a.key)
            .collect();
        if !actors.iter().any(|a| glob(actor, a)) {
            return Err(fail(format!(
                "no actor is `{actor}` (they are {})",
                actors.join(", ")
            )));
        }
        Ok(Accept {
            table: table.to_owned(),
            operation: operation.to_owned(),
            actor: actor.to_owned(),
            reason: reason.get_ref().clone(),
            line: src.line(at),
            key,
        })
    }

    /// Parents, membership tables and their references must name tables of the spec, `member`
    /// must have a membership to resolve to, and parent chains must not loop.
    fn check_relations(&self, src: &Source<'_>) -> Result<(), SpecError> {
        for t in &self.tables {
            let at = |key: &str, message: String| SpecError::Invalid {
                path: src.path.to_owned(),
                line: t.line_of(key.split('.').next().unwrap_or(key)),
                key: format!("tables.{}.{key}", t.name),
                message,
            };
            if let Some(p) = &t.parent
                && self.table(&p.table).is_none()
            {
                return Err(at(
                    "parent.table",
                    format!(
                        "`{}` is not a table of this spec; describe it under [tables.{}]",
                        p.table, p.table
                    ),
                ));
            }
            // Follow the parent chain: a loop is an error, and `member` needs a membership.
            let mut seen = BTreeSet::from([t.name.as_str()]);
            let mut cur = t;
            let membership = loop {
                if let Some(m) = &cur.members {
                    break Some(m);
                }
                let Some(p) = &cur.parent else { break None };
                let Some(next) = self.table(&p.table) else {
                    break None;
                };
                if !seen.insert(next.name.as_str()) {
                    return Err(at(
                        "parent",
                        format!(
                            "the parent chain loops: {} → {}",
                            seen.iter().copied().collect::<Vec<_>>().join(" → "),
                            next.name
                        ),
                    ));
                }
                cur = next;
            };
            for (command, rules) in &t.rules {
                for rule in rules.iter().flat_map(Rule::flatten) {
                    let Rule::Member(roles) = rule else { continue };
                    let Some(m) = membership else {
                        return Err(at(
                            command.key(),
                            "`member` needs a membership: give this table `members = {…}`, or a \
                             `parent` that has one"
                                .into(),
                        ));
                    };
                    if let Some(roles) = roles {
                        let Some((_, known)) = &m.role else {
                            return Err(at(
                                command.key(),
                                format!(
                                    "`member:{}` needs a role column: give {}'s members `role` \
                                     and `roles`",
                                    roles.join(","),
                                    cur.name
                                ),
                            ));
                        };
                        if let Some(r) = roles.iter().find(|r| !known.contains(r)) {
                            return Err(at(
                                command.key(),
                                format!("role `{r}` is not one of {known:?}"),
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// Actor names the suite defines itself.
pub const BUILT_IN_ACTORS: [&str; 4] = ["no_claims", "anon", "expired", "foreign_secret"];

fn toml_to_json(table: toml::Table) -> Map<String, Value> {
    match serde_json::to_value(table) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

/// Named predicates as written under `key`: no built-in rule's name, no empty SQL.
fn predicates(
    src: &Source<'_>,
    raw: BTreeMap<String, Spanned<String>>,
    key: &str,
) -> Result<BTreeMap<String, String>, SpecError> {
    let mut out = BTreeMap::new();
    for (pname, sql) in raw {
        let reserved = RESERVED_RULES.contains(&pname.as_str())
            || ["member:", "role:", "email:"]
                .iter()
                .any(|p| pname.starts_with(p));
        if reserved {
            return Err(src.err(
                sql.span().start,
                format!("{key}.{pname}"),
                format!("`{pname}` is a built-in rule name; call the predicate something else"),
            ));
        }
        if sql.get_ref().trim().is_empty() {
            return Err(src.err(
                sql.span().start,
                format!("{key}.{pname}"),
                "empty predicate",
            ));
        }
        out.insert(pname, sql.into_inner());
    }
    Ok(out)
}

/// One rule name: a built-in, `member:`/`role:`/`email:`, or a predicate (the table's own,
/// else a top-level one). `Err` says what is wrong.
fn rule_of(
    n: &str,
    has_owner: bool,
    own: &BTreeMap<String, String>,
    shared: &BTreeMap<String, String>,
    table: &str,
) -> Result<Option<Rule>, String> {
    Ok(Some(match n {
        "nobody" => return Ok(None),
        "anyone" => Rule::Anyone,
        "signed_in" => Rule::SignedIn,
        "owner" if has_owner => Rule::Owner,
        "owner" => {
            return Err(
                "`owner` needs the table's owner column: add `owner = \"<column>\"`".into(),
            );
        }
        "member" => Rule::Member(None),
        other => {
            if let Some(roles) = other.strip_prefix("member:") {
                Rule::Member(Some(
                    roles.split(',').map(|r| r.trim().to_owned()).collect(),
                ))
            } else if let Some(role) = other.strip_prefix("role:") {
                if role.trim().is_empty() {
                    return Err("`role:` needs a role: `role:authenticated`".into());
                }
                Rule::Role(role.trim().to_owned())
            } else if let Some(pattern) = other.strip_prefix("email:") {
                if pattern.trim().is_empty() {
                    return Err("`email:` needs a pattern: `email:*@example.com`".into());
                }
                Rule::Email(pattern.trim().to_owned())
            } else if let Some(sql) = own.get(other).or_else(|| shared.get(other)) {
                Rule::Predicate(sql.clone())
            } else {
                return Err(format!(
                    "unknown rule `{other}`: use anyone, signed_in, owner, member, \
                     member:<role>, role:<role>, email:<pattern>, nobody, {{ all = [...] }}, or \
                     a name from [tables.{table}.predicates] or [predicates]"
                ));
            }
        }
    }))
}

fn table(
    src: &Source<'_>,
    name: &str,
    offset: usize,
    raw: RawTable,
    shared: &BTreeMap<String, String>,
) -> Result<TableSpec, SpecError> {
    let key = |k: &str| format!("tables.{name}.{k}");
    let mut key_lines = BTreeMap::new();
    for (k, span) in [
        ("select", raw.select.as_ref().map(Spanned::span)),
        ("insert", raw.insert.as_ref().map(Spanned::span)),
        ("update", raw.update.as_ref().map(Spanned::span)),
        ("delete", raw.delete.as_ref().map(Spanned::span)),
        ("parent", raw.parent.as_ref().map(Spanned::span)),
        ("members", raw.members.as_ref().map(Spanned::span)),
        ("owner", raw.owner.as_ref().map(Spanned::span)),
        ("change", raw.change.as_ref().map(Spanned::span)),
        ("triggers", raw.triggers.as_ref().map(Spanned::span)),
        ("seed_for", raw.seed_for.as_ref().map(Spanned::span)),
    ] {
        if let Some(span) = span {
            key_lines.insert(k, src.line(span.start));
        }
    }
    let predicates = predicates(src, raw.predicates, &key("predicates"))?;
    let mut rules = BTreeMap::new();
    for (command, value) in [
        (Command::Select, raw.select),
        (Command::Insert, raw.insert),
        (Command::Update, raw.update),
        (Command::Delete, raw.delete),
    ] {
        let Some(value) = value else {
            // Unstated: nobody, as Postgres does for a command without a policy.
            rules.insert(command, Vec::new());
            continue;
        };
        let at = value.span().start;
        let written = match value.into_inner() {
            OneOrMany::One(r) => vec![r],
            OneOrMany::Many(v) => v,
        };
        let fail = |what: String| src.err(at, key(command.key()), what);
        let has_owner = raw.owner.is_some();
        let mut list = Vec::new();
        for r in written {
            match r {
                RawRule::Name(n) => {
                    if let Some(rule) =
                        rule_of(&n, has_owner, &predicates, shared, name).map_err(fail)?
                    {
                        list.push(rule);
                    }
                }
                RawRule::All(all) => {
                    if all.all.is_empty() {
                        return Err(fail("`all` needs at least one rule".into()));
                    }
                    let mut each = Vec::new();
                    for n in &all.all {
                        // `nobody` inside `all`: nobody at all.
                        each.push(
                            rule_of(n, has_owner, &predicates, shared, name)
                                .map_err(fail)?
                                .unwrap_or_else(|| Rule::Predicate("false".into())),
                        );
                    }
                    list.push(Rule::All(each));
                }
            }
        }
        rules.insert(command, list);
    }
    let members = match raw.members {
        None => None,
        Some(m) => {
            let at = m.span().start;
            let m = m.into_inner();
            if m.on.is_empty() {
                return Err(src.err(at, key("members.on"), "name at least one column pair"));
            }
            let role = match (m.role, m.roles) {
                (Some(col), Some(roles)) if !roles.is_empty() => Some((col, roles)),
                (None, None) => None,
                _ => {
                    return Err(src.err(
                        at,
                        key("members"),
                        "`role` and `roles` go together: the role column and its values, the \
                         owner's first",
                    ));
                }
            };
            Some(Members {
                table: m.table,
                on: m.on.into_iter().collect(),
                user: m.user,
                role,
            })
        }
    };
    let parent = match raw.parent {
        None => None,
        Some(p) => {
            let at = p.span().start;
            let p = p.into_inner();
            if p.on.is_empty() {
                return Err(src.err(at, key("parent.on"), "name at least one column pair"));
            }
            if p.table == name {
                return Err(src.err(at, key("parent.table"), "a table cannot be its own parent"));
            }
            Some(Parent {
                table: p.table,
                on: p.on.into_iter().collect(),
            })
        }
    };
    let owner = raw.owner.map(Spanned::into_inner);
    let immutable_explicit = raw.immutable.is_some();
    let immutable = match raw.immutable {
        Some(list) => list.into_iter().map(Spanned::into_inner).collect(),
        None => owner
            .iter()
            .cloned()
            .chain(
                parent
                    .iter()
                    .flat_map(|p| p.on.iter().map(|(c, _)| c.clone())),
            )
            .collect(),
    };
    Ok(TableSpec {
        name: name.to_owned(),
        owner,
        payload: toml_to_json(raw.payload),
        change: raw.change.map(Spanned::into_inner),
        triggers: raw.triggers.is_none_or(Spanned::into_inner),
        immutable,
        immutable_explicit,
        seed_for: raw.seed_for.map(Spanned::into_inner),
        rows: raw
            .rows
            .into_iter()
            .map(|r| {
                let line = src.line(r.span().start);
                let r = r.into_inner();
                DeclaredRow {
                    user: r.user,
                    values: toml_to_json(r.values),
                    line,
                }
            })
            .collect(),
        members,
        parent,
        predicates,
        rules,
        line: src.line(offset),
        key_lines,
    })
}

const RESERVED_RULES: [&str; 6] = ["anyone", "signed_in", "owner", "member", "nobody", "t"];

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Spec, SpecError> {
        Spec::parse(Path::new("access.toml"), text)
    }

    #[test]
    fn triggers_fire_on_seeds_unless_a_table_opts_out() {
        let spec = parse(
            "[actors.ada]\n[tables.a]\nowner = \"o\"\n[tables.b]\nowner = \"o\"\ntriggers = false\n",
        )
        .unwrap();
        assert!(spec.tables[0].triggers);
        assert!(!spec.tables[1].triggers);
        let err = parse("[actors.ada]\n[tables.a]\nowner = \"o\"\ntriggers = \"no\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("access.toml:4") && err.contains("tables.a.triggers"),
            "{err}"
        );
    }

    const GOOD: &str = r#"
[actors.ada]
email = "ada@example.com"
[actors.ben]
claims = { org_id = "org_1" }

[tables.projects]
owner = "owner_id"
payload = { name = "p" }
select = ["owner", "member"]
insert = "owner"
update = "member:owner"
delete = "owner"
members = { table = "project_members", on = { project_id = "id" }, user = "user_id", role = "role", roles = ["owner", "member"] }

[tables.tasks]
parent = { table = "projects", on = { project_id = "id" } }
payload = { title = "t" }
select = "member"
delete = "member:owner"
"#;

    #[test]
    fn a_complete_spec_parses_with_defaults() {
        let spec = parse(GOOD).unwrap();
        assert_eq!(spec.schema, "public");
        assert_eq!(spec.users.len(), 2);
        assert_eq!(spec.users[1].claims["org_id"], "org_1");
        let tasks = spec.table("tasks").unwrap();
        assert_eq!(tasks.immutable, ["project_id"]);
        assert_eq!(tasks.rules[&Command::Insert], []);
        assert_eq!(
            tasks.rules[&Command::Delete],
            [Rule::Member(Some(vec!["owner".into()]))]
        );
        assert_eq!(tasks.line, 16);
        assert_eq!(spec.table("projects").unwrap().immutable, ["owner_id"]);
    }

    fn error_of(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_the_file_the_key_and_the_line() {
        let bad_rule = GOOD.replace("delete = \"owner\"", "delete = \"owners\"");
        assert_eq!(
            error_of(&bad_rule),
            "access.toml:13: tables.projects.delete: unknown rule `owners`: use anyone, signed_in, \
             owner, member, member:<role>, role:<role>, email:<pattern>, nobody, { all = [...] }, \
             or a name from [tables.projects.predicates] or [predicates]"
        );
        let unknown_key = GOOD.replace("payload = { title", "paylod = { title");
        let e = error_of(&unknown_key);
        assert!(
            e.starts_with("access.toml:18: tables.tasks.paylod: unknown field `paylod`"),
            "{e}"
        );
        let bad_role = GOOD.replace(
            "member:owner\"\ndelete = \"owner",
            "member:admin\"\ndelete = \"owner",
        );
        let e = error_of(&bad_role);
        assert!(
            e.starts_with("access.toml:12: tables.projects.update: role `admin`"),
            "{e}"
        );
        let syntax = format!("{GOOD}\n[tables.x\n");
        let e = error_of(&syntax);
        assert!(
            e.starts_with("access.toml:22: tables.x: unclosed table"),
            "{e}"
        );
    }

    #[test]
    fn shared_predicates_all_lists_and_claim_rules_parse() {
        let text = r#"
[predicates]
is_open = "t.status = 'open'"
[actors.ada]
[tables.a]
owner = "o"
select = ["is_open", { all = ["owner", "email:*@example.com"] }]
insert = { all = ["owner", "role:authenticated"] }
[tables.b]
owner = "o"
select = "is_open"
[tables.b.predicates]
is_open = "false"
"#;
        let spec = parse(text).unwrap();
        let a = spec.table("a").unwrap();
        assert_eq!(
            a.rules[&Command::Select],
            [
                Rule::Predicate("t.status = 'open'".into()),
                Rule::All(vec![Rule::Owner, Rule::Email("*@example.com".into())]),
            ]
        );
        assert_eq!(
            a.rules[&Command::Insert],
            [Rule::All(vec![
                Rule::Owner,
                Rule::Role("authenticated".into())
            ])]
        );
        // A table's own predicate of the same name wins.
        assert_eq!(
            spec.table("b").unwrap().rules[&Command::Select],
            [Rule::Predicate("false".into())]
        );
        let e = error_of(&text.replace("\"role:authenticated\"", "\"rol:x\""));
        assert!(
            e.starts_with("access.toml:8: tables.a.insert: unknown rule `rol:x`"),
            "{e}"
        );
        let e = error_of(&text.replace("is_open = \"t.status", "owner = \"t.status"));
        assert!(
            e.starts_with("access.toml:3: predicates.owner: `owner` is a built-in rule name"),
            "{e}"
        );
        let e = error_of(&text.replace("{ all = [\"owner\", \"role", "{ any = [\"owner\", \"role"));
        assert!(e.starts_with("access.toml:8: tables.a.insert:"), "{e}");
    }

    #[test]
    fn relations_must_resolve_and_not_loop() {
        let missing_parent = GOOD.replace("table = \"projects\", on", "table = \"project\", on");
        assert!(error_of(&missing_parent).contains("`project` is not a table of this spec"));
        let no_membership = GOOD.replace("members = {", "# members = {");
        assert!(error_of(&no_membership).contains("`member` needs a membership"));
        let looped = r#"
[actors.ada]
[tables.a]
parent = { table = "b", on = { b_id = "id" } }
select = "member"
[tables.b]
parent = { table = "a", on = { a_id = "id" } }
"#;
        assert!(
            error_of(looped).contains("the parent chain loops"),
            "{}",
            error_of(looped)
        );
        let owner_without_column = "[actors.ada]\n[tables.a]\nselect = \"owner\"\n";
        assert!(error_of(owner_without_column).contains("`owner` needs the table's owner column"));
        let built_in = "[actors.anon]\n[tables.a]\n";
        assert!(error_of(built_in).contains("`anon` is a built-in actor"));
        assert!(error_of("[tables.a]\n").contains("no actors"));
    }
}
