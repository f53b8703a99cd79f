//! A snapshot of the exposed schema: the tables and views the records API serves, their
//! columns (name and SQL type) and primary keys, and the functions `/rpc` calls. Built only from the catalog ([`crate::catalog`])
//! and immutable once built: a reload makes a new one, and a request keeps the one it started with.
//!
//! Every SQL identifier the app writes comes from here, quoted by [`quote_ident`]; nothing a
//! client sends becomes SQL text, it can only select one of these entries (ARCHITECTURE.md,
//! "No client text becomes SQL").

use std::collections::HashMap;
use std::sync::Arc;

use pg_identity::quote_ident;

/// What kind of relation a name is. PostgREST serves all of these from its schema cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelationKind {
    /// A table, partitioned table or foreign table.
    Table,
    /// A view or materialized view (writes go to Postgres, which decides if it can).
    View,
}

/// The position of a column in its relation ([`Relation::columns`]); table order, so sorting
/// by it gives the same SQL text for the same set of columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ColumnId(usize);

/// One column as the catalog describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    name: String,
    sql_type: String,
    sql: String,
}

impl Column {
    /// `sql_type` is `format_type(atttypid, atttypmod)`: what a text parameter is cast to before
    /// it meets this column, so Postgres (not this app) decides what a valid value is.
    pub fn new(name: impl Into<String>, sql_type: impl Into<String>) -> Self {
        let name = name.into();
        Self {
            sql: quote_ident(&name),
            name,
            sql_type: sql_type.into(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The name as a quoted SQL identifier.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// The type as `format_type` writes it (`uuid`, `character varying(20)`, `"my type"`,
    /// `public.mood[]`): valid SQL after `::`.
    pub fn sql_type(&self) -> &str {
        &self.sql_type
    }
}

/// A table or view of the exposed schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    schema: String,
    name: String,
    kind: RelationKind,
    columns: Vec<Column>,
    primary_key: Vec<ColumnId>,
    sql: String,
}

impl Relation {
    /// `primary_key` names columns of `columns`; names that are not there are ignored.
    pub fn new(
        schema: impl Into<String>,
        name: impl Into<String>,
        kind: RelationKind,
        columns: Vec<Column>,
        primary_key: &[&str],
    ) -> Self {
        let schema = schema.into();
        let name = name.into();
        let primary_key = primary_key
            .iter()
            .filter_map(|k| columns.iter().position(|c| c.name == *k).map(ColumnId))
            .collect();
        Self {
            sql: format!("{}.{}", quote_ident(&schema), quote_ident(&name)),
            schema,
            name,
            kind,
            columns,
            primary_key,
        }
    }

    pub fn schema(&self) -> &str {
        &self.schema
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn kind(&self) -> RelationKind {
        self.kind
    }

    pub fn is_view(&self) -> bool {
        self.kind == RelationKind::View
    }

    /// Schema-qualified and quoted, ready to paste into SQL.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// Every column, in table order (the key order of `select=*`).
    pub fn column_ids(&self) -> impl Iterator<Item = ColumnId> + '_ {
        (0..self.columns.len()).map(ColumnId)
    }

    pub fn column(&self, id: ColumnId) -> &Column {
        &self.columns[id.0]
    }

    /// The column a client names, compared exactly (Postgres folds unquoted names to lower
    /// case, but PostgREST quotes every name it receives, so `Title` is not `title`).
    pub fn find(&self, name: &str) -> Option<ColumnId> {
        self.columns
            .iter()
            .position(|c| c.name == name)
            .map(ColumnId)
    }

    /// The primary key's columns (empty for a view, and for a table without one).
    pub fn primary_key(&self) -> &[ColumnId] {
        &self.primary_key
    }
}

/// `pg_proc.provolatile`: whether a call may write (PostgREST runs `stable`/`immutable`
/// functions, and every `GET`, in a read-only transaction — `callReadPlan`, `Plan.hs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Volatility {
    Volatile,
    Stable,
    Immutable,
}

/// How a function's result is shaped (PostgREST's `RetType`, `SchemaCache/Routine.hs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returns {
    /// `returns void`: 204 without a body (`funcReturnsVoid`).
    Void,
    /// A base, domain, enum or array type; `set` for `returns setof <scalar>`.
    Scalar { set: bool },
    /// A table's row type, a composite type, or `record` with OUT columns (`returns table`).
    Composite { set: bool },
}

/// One input parameter of a function (`IN`, `INOUT` or `VARIADIC`), in declaration order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutineParam {
    name: String,
    sql_type: String,
    sql: String,
    variadic: bool,
    required: bool,
}

impl RoutineParam {
    /// `name` may be empty (an unnamed parameter); `sql_type` is `format_type(oid, null)`.
    pub fn new(
        name: impl Into<String>,
        sql_type: impl Into<String>,
        variadic: bool,
        required: bool,
    ) -> Self {
        let name = name.into();
        Self {
            sql: quote_ident(&name),
            name,
            sql_type: sql_type.into(),
            variadic,
            required,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The name as a quoted SQL identifier.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    pub fn sql_type(&self) -> &str {
        &self.sql_type
    }

    pub fn is_variadic(&self) -> bool {
        self.variadic
    }

    /// No default: a call must name it.
    pub fn is_required(&self) -> bool {
        self.required
    }
}

/// A function of the exposed schema (`pg_proc.prokind = 'f'`), as the catalog describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routine {
    schema: String,
    name: String,
    params: Vec<RoutineParam>,
    returns: Returns,
    volatility: Volatility,
    sql: String,
}

impl Routine {
    pub fn new(
        schema: impl Into<String>,
        name: impl Into<String>,
        params: Vec<RoutineParam>,
        returns: Returns,
        volatility: Volatility,
    ) -> Self {
        let schema = schema.into();
        let name = name.into();
        Self {
            sql: format!("{}.{}", quote_ident(&schema), quote_ident(&name)),
            schema,
            name,
            params,
            returns,
            volatility,
        }
    }

    pub fn schema(&self) -> &str {
        &self.schema
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Schema-qualified and quoted, ready to paste into SQL.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    pub fn params(&self) -> &[RoutineParam] {
        &self.params
    }

    pub fn returns(&self) -> Returns {
        self.returns
    }

    pub fn volatility(&self) -> Volatility {
        self.volatility
    }
}

/// A foreign key between two relations of the exposed schema: `child_cols` of `child` reference
/// `parent_cols` of `parent`, in key order. Names only (resolved to columns when used).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignKey {
    name: String,
    child: String,
    child_cols: Vec<String>,
    parent: String,
    parent_cols: Vec<String>,
}

impl ForeignKey {
    pub fn new(
        name: impl Into<String>,
        child: impl Into<String>,
        child_cols: Vec<String>,
        parent: impl Into<String>,
        parent_cols: Vec<String>,
    ) -> Self {
        Self {
            name: name.into(),
            child: child.into(),
            child_cols,
            parent: parent.into(),
            parent_cols,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

/// How an embedded relation hangs off the one it is embedded in (PostgREST's `Cardinality`:
/// `M2O` is to-one, `O2M` to-many).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relationship {
    /// Many-to-one: the origin holds the foreign key; the embed is one object (or null).
    pub to_one: bool,
    /// `(origin column, target column)` pairs that must be equal.
    pub join: Vec<(ColumnId, ColumnId)>,
}

/// Every relation and function of the exposed schema at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schema {
    exposed: String,
    relations: HashMap<String, Arc<Relation>>,
    /// By name; overloads share a name.
    routines: HashMap<String, Vec<Arc<Routine>>>,
    foreign_keys: Vec<ForeignKey>,
}

impl Schema {
    /// A snapshot of `exposed` holding `relations` (those of other schemas are left out: they
    /// are not exposed).
    pub fn new(exposed: impl Into<String>, relations: impl IntoIterator<Item = Relation>) -> Self {
        let exposed = exposed.into();
        let relations = relations
            .into_iter()
            .filter(|r| r.schema == exposed)
            .map(|r| (r.name.clone(), Arc::new(r)))
            .collect();
        Self {
            exposed,
            relations,
            routines: HashMap::new(),
            foreign_keys: Vec::new(),
        }
    }

    /// This snapshot with `keys` (between relations of the exposed schema).
    pub fn with_foreign_keys(mut self, keys: impl IntoIterator<Item = ForeignKey>) -> Self {
        self.foreign_keys.extend(keys);
        self
    }

    /// The relationships by which `target` can be embedded in `origin`, one per foreign key
    /// either way (PostgREST's `findRel`, `Plan.hs`, without hints): `origin → target` is
    /// to-one, `target → origin` to-many. A self-reference counts both ways.
    pub fn relationships(&self, origin: &Relation, target: &Relation) -> Vec<Relationship> {
        let resolve = |relation: &Relation, names: &[String]| -> Option<Vec<ColumnId>> {
            names.iter().map(|n| relation.find(n)).collect()
        };
        let mut out = Vec::new();
        for key in &self.foreign_keys {
            if key.child == origin.name
                && key.parent == target.name
                && let (Some(o), Some(t)) = (
                    resolve(origin, &key.child_cols),
                    resolve(target, &key.parent_cols),
                )
            {
                out.push(Relationship {
                    to_one: true,
                    join: o.into_iter().zip(t).collect(),
                });
            }
            if key.parent == origin.name
                && key.child == target.name
                && let (Some(o), Some(t)) = (
                    resolve(origin, &key.parent_cols),
                    resolve(target, &key.child_cols),
                )
            {
                out.push(Relationship {
                    to_one: false,
                    join: o.into_iter().zip(t).collect(),
                });
            }
        }
        out
    }

    /// This snapshot with `routines` (those of other schemas are left out).
    pub fn with_routines(mut self, routines: impl IntoIterator<Item = Routine>) -> Self {
        for routine in routines {
            if routine.schema == self.exposed {
                self.routines
                    .entry(routine.name.clone())
                    .or_default()
                    .push(Arc::new(routine));
            }
        }
        self
    }

    /// The functions a URL path segment names (every overload), compared exactly.
    pub fn routines(&self, name: &str) -> &[Arc<Routine>] {
        self.routines.get(name).map_or(&[], Vec::as_slice)
    }

    /// How many functions (overloads counted) the snapshot holds.
    pub fn routine_count(&self) -> usize {
        self.routines.values().map(Vec::len).sum()
    }

    /// The exposed schema's name.
    pub fn exposed(&self) -> &str {
        &self.exposed
    }

    /// The relation a URL path segment names, compared exactly.
    pub fn relation(&self, name: &str) -> Option<&Arc<Relation>> {
        self.relations.get(name)
    }

    pub fn len(&self) -> usize {
        self.relations.len()
    }

    pub fn is_empty(&self) -> bool {
        self.relations.is_empty()
    }

    /// The names served, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.relations.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }
}

#[cfg(test)]
pub(crate) mod fixture {
    //! `public.todos` as the migrations create it, for unit tests that need no database.
    use super::*;

    pub fn todos() -> Relation {
        Relation::new(
            "public",
            "todos",
            RelationKind::Table,
            vec![
                Column::new("id", "uuid"),
                Column::new("user_id", "text"),
                Column::new("title", "text"),
                Column::new("is_complete", "boolean"),
                Column::new("created_at", "timestamp with time zone"),
            ],
            &["id"],
        )
    }

    /// The id of a column of [`todos`].
    pub fn col(name: &str) -> ColumnId {
        todos()
            .find(name)
            .unwrap_or_else(|| panic!("no column {name}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_with_quotes_doubled() {
        assert_eq!(quote_ident("todos"), r#""todos""#);
        assert_eq!(quote_ident(r#"a"b"#), r#""a""b""#);
        assert_eq!(
            quote_ident(r#"x"; drop table todos; --"#),
            r#""x""; drop table todos; --""#
        );
        let rel = Relation::new(
            "my schema",
            "tä\"ble",
            RelationKind::View,
            vec![Column::new("c\"ol", "text")],
            &["nope"],
        );
        assert_eq!(rel.sql(), r#""my schema"."tä""ble""#);
        assert_eq!(rel.column(rel.find("c\"ol").unwrap()).sql(), r#""c""ol""#);
        assert!(rel.primary_key().is_empty());
        assert!(rel.is_view());
    }

    #[test]
    fn names_are_exact_and_other_schemas_are_not_exposed() {
        let todos = fixture::todos();
        assert_eq!(todos.find("title"), Some(fixture::col("title")));
        assert_eq!(todos.find("Title"), None);
        assert_eq!(todos.find("title\""), None);
        assert_eq!(todos.primary_key(), [fixture::col("id")]);
        let hidden = Relation::new("private", "secrets", RelationKind::Table, vec![], &[]);
        let schema = Schema::new("public", [todos, hidden]);
        assert!(schema.relation("todos").is_some());
        assert!(schema.relation("public.todos").is_none());
        assert!(schema.relation("secrets").is_none());
        assert_eq!(schema.names(), ["todos"]);
    }
}
