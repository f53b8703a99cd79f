//! What functions and policy expressions do with the caller's identity: which functions read
//! the JWT claims (followed through SQL and PL/pgSQL bodies), which return the caller's id, and
//! which policy expressions compare an owner column with it.
//!
//! Policy expressions and column defaults (their `pg_get_expr` text) and SQL bodies are read as
//! the tree `sqlparser` parses (`expr.rs`); PL/pgSQL bodies as tokens (`sql.rs`).
//! The heuristics, the same on both:
//! - A *claims source* is `current_setting('request.jwt.claims', …)` or a call to a function
//!   that returns json/jsonb built from one (InsForge's `auth.jwt()`).
//! - A *claim key* is the string after `->`/`->>` (or the first `#>` path element, or the second
//!   argument of `json[b]_extract_path[_text]`) applied directly to a claims source; chained
//!   accesses (`-> 'app_metadata' ->> 'org'`) count only their first key. The old per-claim
//!   setting `request.jwt.claim.<key>` counts as reading `<key>`.
//! - A *caller id value* is a function with no required arguments returning a scalar that reads
//!   the `sub` claim (`requesting_user_id()`, `auth.uid()`), or a `sub` access in place.
//! - An *owner comparison* is `<column> = <expression holding a caller id value>` where the
//!   column belongs to the policy's table. It is recognised in any position, so `NOT (…)` or a
//!   comparison buried in a CASE still counts: the linter can miss a broken policy that way.
//! - A policy *binds the caller* when each top-level OR branch holds a comparison between a
//!   caller id value and something row-dependent, or passes a column to a function that reads
//!   the caller's `sub` (a helper such as `owns_todo(id)`).
//! - Unqualified names in bodies resolve through the function's own `search_path` when it has
//!   one, else through the checked schemas plus `public`; overloads are merged.

use std::collections::{BTreeSet, HashMap};
use std::ops::Range;

use sqlparser::ast::{BinaryOperator, InTarget, Visit};

use crate::catalog::{Catalog, Column, Function, Relation};
use crate::expr::{self, Expr, is_text_type};
use crate::sql::{Call, Token, Tokens, is_json_op};

/// What a function does with settings and claims, including through the functions it calls.
#[derive(Debug, Clone, Default)]
pub(crate) struct FunctionFacts {
    pub reads_settings: bool,
    pub reads_claims: bool,
    pub claim_keys: BTreeSet<String>,
    pub returns_claims: bool,
    pub uses_caller: bool,
    pub caller_id_value: bool,
    pub unguarded_cast: bool,
    /// Reads `current_setting('request.jwt…')` without `missing_ok`.
    pub claims_without_missing_ok: bool,
    pub sub_as_uuid: bool,
    /// Functions it calls (indices into `Catalog::functions`).
    pub callees: BTreeSet<usize>,
}

/// What one policy expression (USING or WITH CHECK) does.
#[derive(Debug, Clone, Default)]
pub(crate) struct ExprFacts {
    pub always_true: bool,
    /// Columns of the policy's table compared directly with the caller's id.
    pub owner_columns: BTreeSet<String>,
    pub binds_caller: bool,
    /// Every top-level OR branch calls a function of the schema that depends on the caller
    /// (given the caller's id as an argument, or reading it inside) without being the caller's
    /// id itself: `authorize('x.delete', <caller id>)`, `is_admin()`. A gate on who the caller
    /// is (a role, a permission), not on which rows are theirs; a request without a caller id
    /// passes only if the function admits a NULL id.
    pub caller_gated: bool,
    /// Claim keys read, directly or through called functions.
    pub claim_keys: BTreeSet<String>,
    /// Per-statement-constant calls not wrapped in `(select …)`, as written.
    pub unwrapped_calls: Vec<String>,
    pub unguarded_cast: bool,
    /// Reads `current_setting('request.jwt…')` without `missing_ok`.
    pub claims_without_missing_ok: bool,
    /// Functions called directly.
    pub functions: BTreeSet<usize>,
    /// Subqueries that check the caller (a membership lookup) but never tie the looked-up row
    /// to this policy's row: `EXISTS (SELECT … WHERE m.user_id = <caller>)` without
    /// `<table>.<column>`, or `<caller> IN (SELECT …)`. As written (shortened), with the
    /// looked-up tables that could be tied to this row and are not: one with a foreign key to
    /// or from the policy's table (or to a table it references too), or a column named like
    /// one of its columns other than its primary key. Empty: nothing relates the lookup to
    /// the row, which reads as a check of the caller's status (an admin, a subscriber).
    pub uncorrelated: Vec<(String, Vec<String>)>,
    /// `coalesce(<caller id>, <column>)`: without a caller id the comparison falls back to the
    /// row's own value, which is true for every row. As written.
    pub caller_fallbacks: Vec<String>,
    /// `<column> = current_user` (or `session_user`, `current_role`): the database role, which
    /// every API request of one kind shares, compared as if it were the user. As written.
    pub role_compares: Vec<String>,
    /// Caller-id comparisons that ignore case or match patterns (`lower(a) = lower(<caller>)`,
    /// `ILIKE`, `LIKE`, `~*`), as written, and whether both sides are folded (or it is a
    /// pattern match): a look-alike id matches.
    pub case_folded: Vec<(String, bool)>,
    /// Every top-level OR branch requires a signed-in caller: `auth.role() = 'authenticated'`
    /// (or the `role` claim, or `current_user`), or `<caller id> IS NOT NULL`.
    pub requires_signed_in: bool,
    /// The whole expression with every unwrapped call wrapped in `(SELECT …)`, when there is one.
    pub wrapped: Option<String>,
    /// The literal `false`.
    pub always_false: bool,
    /// `<column> = '<literal>'`: (column, as written).
    pub literal_compares: Vec<(String, String)>,
    /// String literals the request's role is compared with (`auth.role() = 'x'`).
    pub role_literals: Vec<String>,
    /// Every identifier the expression names (columns and their qualifiers).
    pub identifiers: BTreeSet<String>,
    /// Why the parser refused the text, when it did: every other fact is then unknown (left
    /// at its default), and the policy rules report the policy as not linted.
    pub unparsed: Option<String>,
}

impl ExprFacts {
    /// Whether the expression may name `column`: it does, or the parser could not read it (a
    /// rule does not claim a column unused on an expression it did not read).
    pub(crate) fn may_mention(&self, column: &str) -> bool {
        self.unparsed.is_some() || self.identifiers.contains(column)
    }
}

/// A column of the policy's table that an expression is (bare or qualified by the table).
type TableColumn<'f> = &'f dyn Fn(&Expr) -> Option<String>;

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Todo,
    Busy,
    Done,
}

/// Function facts for the whole catalog plus the expression analysis that uses them.
#[derive(Debug)]
pub(crate) struct Analysis<'c> {
    catalog: &'c Catalog,
    by_name: HashMap<&'c str, Vec<usize>>,
    pub facts: Vec<FunctionFacts>,
}

impl<'c> Analysis<'c> {
    pub(crate) fn new(catalog: &'c Catalog) -> Self {
        let mut by_name: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, f) in catalog.functions.iter().enumerate() {
            by_name.entry(f.name.as_str()).or_default().push(i);
        }
        let mut analysis = Self {
            catalog,
            by_name,
            facts: vec![FunctionFacts::default(); catalog.functions.len()],
        };
        let mut state = vec![State::Todo; catalog.functions.len()];
        for i in 0..catalog.functions.len() {
            analysis.visit(i, &mut state);
        }
        analysis
    }

    /// Computes a function's facts after its callees'; a call cycle sees the facts so far.
    fn visit(&mut self, index: usize, state: &mut [State]) {
        if state[index] != State::Todo {
            return;
        }
        state[index] = State::Busy;
        let catalog = self.catalog;
        let function = &catalog.functions[index];
        if !matches!(function.language.as_str(), "sql" | "plpgsql") {
            state[index] = State::Done;
            return;
        }
        // A SQL body the parser reads is read as its tree; PL/pgSQL (which sqlparser has no
        // grammar for) and a SQL body it refuses, as tokens.
        let body = match function.language.as_str() {
            "sql" => expr::parse_body(&function.body)
                .map_or_else(|_| Body::Tokens(Tokens::new(&function.body)), Body::Tree),
            _ => Body::Tokens(Tokens::new(&function.body)),
        };
        let names: Vec<(Option<String>, String)> = match &body {
            Body::Tree(tree) => expr::calls(tree)
                .iter()
                .map(|c| (c.schema().map(str::to_owned), c.base_name().to_owned()))
                .collect(),
            Body::Tokens(tokens) => tokens
                .calls(tokens.all())
                .iter()
                .map(|c| (c.schema().map(str::to_owned), c.base_name().to_owned()))
                .collect(),
        };
        let mut callees = BTreeSet::new();
        for (schema, name) in &names {
            for callee in self.resolve_name(schema.as_deref(), name, Some(function)) {
                if callee != index {
                    self.visit(callee, state);
                    callees.insert(callee);
                }
            }
        }
        let (scan, unguarded_cast, claims_without_missing_ok, casts_to_uuid) = match &body {
            Body::Tree(tree) => (
                self.scan_tree(tree, Some(function)),
                expr::unguarded_claim_cast(tree),
                expr::claims_without_missing_ok(tree),
                expr::casts_to(tree, "uuid"),
            ),
            Body::Tokens(tokens) => (
                self.scan(tokens, tokens.all(), Some(function)),
                unguarded_claim_cast(tokens),
                claims_without_missing_ok(tokens),
                casts_to(tokens, "uuid"),
            ),
        };
        let callee_facts = callees.iter().map(|&c| &self.facts[c]);
        let mut facts = FunctionFacts {
            reads_settings: scan.reads_settings,
            reads_claims: scan.reads_claims,
            claim_keys: scan.claim_keys,
            unguarded_cast,
            claims_without_missing_ok,
            ..FunctionFacts::default()
        };
        for callee in callee_facts {
            facts.reads_settings |= callee.reads_settings;
            facts.reads_claims |= callee.reads_claims;
            facts.claim_keys.extend(callee.claim_keys.iter().cloned());
        }
        let returns_json = matches!(function.returns.as_str(), "json" | "jsonb");
        facts.returns_claims = facts.reads_claims && returns_json && facts.claim_keys.is_empty();
        facts.uses_caller = facts.claim_keys.contains("sub");
        facts.caller_id_value = facts.uses_caller
            && function.required_args == 0
            && !returns_json
            && !matches!(
                function.returns.as_str(),
                "boolean" | "void" | "record" | "trigger"
            );
        facts.sub_as_uuid = facts.caller_id_value && (function.returns == "uuid" || casts_to_uuid);
        facts.callees = callees;
        self.facts[index] = facts;
        state[index] = State::Done;
    }

    /// The functions a body's call can mean. Built-ins (`pg_catalog`) are never loaded, so
    /// they resolve to nothing.
    fn resolve(&self, call: &Call, from: Option<&Function>) -> Vec<usize> {
        self.resolve_name(call.schema(), call.base_name(), from)
    }

    /// The functions `schema.name` (or bare `name`, called from `from`) can mean. An
    /// unqualified name outside a function body (policy text, which `pg_get_expr` prints under
    /// an empty search_path) is a built-in.
    fn resolve_name(
        &self,
        schema: Option<&str>,
        name: &str,
        from: Option<&Function>,
    ) -> Vec<usize> {
        let Some(candidates) = self.by_name.get(name) else {
            return Vec::new();
        };
        let functions = &self.catalog.functions;
        match schema {
            Some(schema) => candidates
                .iter()
                .copied()
                .filter(|&i| functions[i].schema == schema)
                .collect(),
            None => {
                let Some(from) = from else {
                    return Vec::new();
                };
                let path = from.search_path().unwrap_or_else(|| {
                    let mut path = self.catalog.schemas.clone();
                    path.push("public".into());
                    path
                });
                candidates
                    .iter()
                    .copied()
                    .filter(|&i| path.contains(&functions[i].schema))
                    .collect()
            }
        }
    }

    /// Settings and claims read directly in a token range.
    fn scan(&self, tokens: &Tokens, range: Range<usize>, from: Option<&Function>) -> Scan {
        let calls = tokens.calls(range.clone());
        let mut scan = Scan::default();
        for call in &calls {
            if is_current_setting(call) {
                scan.reads_settings = true;
                if let Some(name) = setting_name(tokens, call) {
                    if name == "request.jwt.claims" {
                        scan.reads_claims = true;
                    } else if let Some(key) = name.strip_prefix("request.jwt.claim.") {
                        scan.reads_claims = true;
                        scan.claim_keys.insert(key.to_owned());
                    }
                }
            }
            if is_extract_path(call.base_name()) {
                let args = tokens.args(call);
                if let [doc, key, ..] = args.as_slice()
                    && self.is_claims_source(tokens, doc.clone(), from)
                    && let Some(key) = tokens.literal(key.clone())
                {
                    scan.claim_keys.insert(key.to_owned());
                }
            }
        }
        for p in range.clone() {
            let Some(Token::Op(op)) = tokens.get(p) else {
                continue;
            };
            if !is_json_op(op) {
                continue;
            }
            let Some(key) = tokens
                .operand_after(p + 1)
                .and_then(|r| tokens.literal(r))
                .map(|k| expr::first_path_element(op, k))
            else {
                continue;
            };
            let Some(left) = tokens.operand_before(p) else {
                continue;
            };
            if left.start < range.start {
                continue;
            }
            let chained = left
                .start
                .checked_sub(1)
                .and_then(|i| tokens.get(i))
                .is_some_and(|t| matches!(t, Token::Op(o) if is_json_op(o)))
                || tokens.is_json_access(left.clone());
            if !chained && self.is_claims_source(tokens, left, from) {
                scan.claim_keys.insert(key);
            }
        }
        scan
    }

    /// Whether a range yields the whole claims document.
    fn is_claims_source(
        &self,
        tokens: &Tokens,
        range: Range<usize>,
        from: Option<&Function>,
    ) -> bool {
        tokens.calls(range).iter().any(|call| {
            (is_current_setting(call) && setting_name(tokens, call) == Some("request.jwt.claims"))
                || self
                    .resolve(call, from)
                    .iter()
                    .any(|&i| self.facts[i].returns_claims)
        })
    }

    // ---- policy expressions and column defaults: the tree sqlparser reads (`expr.rs`) ----

    /// The functions an expression's call can mean (policy text comes from `pg_get_expr`
    /// under an empty search_path: an unqualified name there is a built-in).
    fn resolve_call(&self, call: &expr::Call) -> Vec<usize> {
        self.resolve_in(call, None)
    }

    /// The functions a call in a tree can mean, called from `from` (a function body) or from
    /// policy text (`None`).
    fn resolve_in(&self, call: &expr::Call, from: Option<&Function>) -> Vec<usize> {
        self.resolve_name(call.schema(), call.base_name(), from)
    }

    /// Settings and claims a tree (an expression, or a SQL body read from `from`) reads
    /// directly.
    fn scan_tree<V: Visit + ?Sized>(&self, tree: &V, from: Option<&Function>) -> Scan {
        let mut scan = Scan::default();
        for call in expr::calls(tree) {
            if call.is_current_setting() {
                scan.reads_settings = true;
                if let Some(name) = call.setting_name() {
                    if name == "request.jwt.claims" {
                        scan.reads_claims = true;
                    } else if let Some(key) = name.strip_prefix("request.jwt.claim.") {
                        scan.reads_claims = true;
                        scan.claim_keys.insert(key.to_owned());
                    }
                }
            }
            if is_extract_path(call.base_name())
                && let [doc, key, ..] = call.args.as_slice()
                && self.is_claims_tree(doc, from)
                && let Some(key) = expr::literal(key)
            {
                scan.claim_keys.insert(key.to_owned());
            }
        }
        expr::walk(tree, &mut |e, _| {
            if let Expr::BinaryOp { left, op, right } = e
                && let Some(op) = expr::json_op(op)
                && let Some(key) = expr::literal(right)
                // A chained access (`-> 'app_metadata' ->> 'org'`) counts its first key only.
                && !expr::is_json_access(left)
                && self.is_claims_tree(left, from)
            {
                scan.claim_keys.insert(expr::first_path_element(op, key));
            }
        });
        scan
    }

    /// Whether an expression yields the whole claims document.
    fn is_claims_tree(&self, e: &Expr, from: Option<&Function>) -> bool {
        expr::calls(e).iter().any(|call| {
            (call.is_current_setting() && call.setting_name() == Some("request.jwt.claims"))
                || self
                    .resolve_in(call, from)
                    .iter()
                    .any(|&i| self.facts[i].returns_claims)
        })
    }

    /// Whether an expression holds the caller's id: a caller-id function or a `sub` access.
    fn holds_caller_id<V: Visit + ?Sized>(&self, tree: &V) -> bool {
        let via_function = expr::calls(tree).iter().any(|call| {
            self.resolve_call(call)
                .iter()
                .any(|&i| self.facts[i].caller_id_value)
        });
        via_function || self.scan_tree(tree, None).claim_keys.contains("sub")
    }

    /// Whether an expression (a column default, say) evaluates to the caller's id. A default
    /// the parser refuses is not one (the lint reports no owner column it cannot read).
    pub(crate) fn is_caller_id(&self, sql: &str) -> bool {
        expr::parse(sql).is_ok_and(|e| self.holds_caller_id(&e))
    }

    /// Analyses a policy expression (or a column default) on `table`. A text the parser
    /// refuses gives facts that say so ([`ExprFacts::unparsed`]) and nothing else.
    pub(crate) fn expr(&self, sql: &str, table: &Relation, columns: &[Column]) -> ExprFacts {
        let e = match expr::parse(sql) {
            Ok(e) => e,
            Err(reason) => {
                return ExprFacts {
                    unparsed: Some(reason),
                    ..ExprFacts::default()
                };
            }
        };
        let scan = self.scan_tree(&e, None);
        let calls = expr::calls(&e);
        let mut facts = ExprFacts {
            // `x OR true` is as true as `true`.
            always_true: expr::disjuncts(&e)
                .into_iter()
                .any(|d| expr::boolean(d) == Some(true)),
            always_false: expr::boolean(&e) == Some(false),
            claim_keys: scan.claim_keys,
            unguarded_cast: expr::unguarded_claim_cast(&e),
            claims_without_missing_ok: expr::claims_without_missing_ok(&e),
            identifiers: expr::identifiers(&e).into_iter().collect(),
            ..ExprFacts::default()
        };
        let unwrapped = |call: &expr::Call| {
            let per_statement = call.is_current_setting()
                || self
                    .resolve_call(call)
                    .iter()
                    .any(|&i| self.facts[i].reads_settings);
            per_statement && !call.args.iter().any(expr::mentions_column)
        };
        for call in &calls {
            for i in self.resolve_call(call) {
                facts.functions.insert(i);
                facts
                    .claim_keys
                    .extend(self.facts[i].claim_keys.iter().cloned());
            }
            if !call.in_subquery && unwrapped(call) {
                let shown = call.display();
                if !facts.unwrapped_calls.contains(&shown) {
                    facts.unwrapped_calls.push(shown);
                }
            }
        }
        if !facts.unwrapped_calls.is_empty() {
            facts.wrapped = Some(expr::wrapped(&e, &unwrapped));
        }
        let columns_of_table = |e: &Expr| {
            expr::column_ref(e)
                .filter(|(q, c)| {
                    q.as_ref().is_none_or(|q| *q == table.name)
                        && columns.iter().any(|col| col.name == *c)
                })
                .map(|(_, c)| c)
        };
        expr::walk(&e, &mut |node, _| {
            if let Some(c) = expr::compare(node) {
                self.identity_compare(node, &c, &columns_of_table, &mut facts);
                if c.equals {
                    for (side, other) in [(c.left, c.right), (c.right, c.left)] {
                        if let Some(column) = columns_of_table(side)
                            && self.holds_caller_id(other)
                        {
                            facts.owner_columns.insert(column);
                        }
                    }
                }
            }
            self.correlation(node, table, &columns_of_table, &mut facts);
        });
        facts.requires_signed_in = expr::disjuncts(&e)
            .into_iter()
            .all(|branch| self.branch_requires_signed_in(branch));
        for call in &calls {
            if !call.is_builtin("coalesce") {
                continue;
            }
            let caller = call.args.iter().any(|a| self.holds_caller_id(a));
            let column = call.args.iter().any(|a| columns_of_table(a).is_some());
            if caller && column {
                facts.caller_fallbacks.push(expr::shown(&call.expr));
            }
        }
        facts.binds_caller = !facts.always_true
            && expr::disjuncts(&e)
                .into_iter()
                .all(|branch| self.branch_binds_caller(branch));
        facts.caller_gated = !facts.always_true
            && expr::disjuncts(&e)
                .into_iter()
                .all(|branch| self.branch_gated_by_caller(branch));
        facts
    }

    /// A membership subquery that never correlates with the policy's own row. Postgres prints
    /// every column inside a sublink qualified, so an outer reference reads
    /// `<table>.<column>`; `EXISTS` needs one inside, `x IN (SELECT …)` needs `x` to be a
    /// column of the table.
    fn correlation(
        &self,
        node: &Expr,
        table: &Relation,
        columns_of_table: TableColumn<'_>,
        facts: &mut ExprFacts,
    ) {
        let uncorrelated = match node {
            Expr::Exists { subquery, .. } => {
                let mut correlated = false;
                expr::walk(subquery.as_ref(), &mut |e, _| {
                    if let Expr::CompoundIdentifier(parts) = e {
                        correlated |= parts[..parts.len() - 1]
                            .iter()
                            .any(|p| expr::ident(p) == table.name);
                    }
                });
                !correlated && self.holds_caller_id(subquery.as_ref())
            }
            Expr::In {
                expr,
                target: InTarget::Subquery(subquery),
                ..
            } => self.uncorrelated_in(expr, subquery.as_ref(), columns_of_table),
            Expr::AnyOp { left, right, .. } => match expr::unparen(right) {
                Expr::Subquery(query) => {
                    self.uncorrelated_in(left, query.as_ref(), columns_of_table)
                }
                _ => false,
            },
            _ => false,
        };
        if uncorrelated {
            facts
                .uncorrelated
                .push((expr::shown(node), self.related_lookups(node, table)));
        }
    }

    /// The relations a subquery of `node` reads that something ties to `table`: a foreign key
    /// between them (either way), a table both reference, or a column of the same name that
    /// is not part of `table`'s primary key. (`schema.name`, as the catalog knows them.)
    fn related_lookups(&self, node: &Expr, table: &Relation) -> Vec<String> {
        let catalog = self.catalog;
        let find = |parts: &[String]| {
            let (schema, name) = match parts {
                [name] => (None, name),
                [.., schema, name] => (Some(schema), name),
                [] => return None,
            };
            catalog.relations.iter().find(|r| {
                r.name == *name
                    && schema
                        .map_or_else(|| catalog.schemas.contains(&r.schema), |s| r.schema == *s)
            })
        };
        let parents = |oid: i64| -> BTreeSet<i64> {
            catalog
                .foreign_keys
                .get(&oid)
                .into_iter()
                .flatten()
                .map(|k| k.parent_oid)
                .collect()
        };
        let names = |oid: i64, skip: &[i16]| -> BTreeSet<String> {
            catalog
                .columns
                .get(&oid)
                .into_iter()
                .flatten()
                .filter(|c| !skip.contains(&c.attnum))
                .map(|c| c.name.clone())
                .collect()
        };
        let primary: Vec<i16> = catalog
            .indexes
            .get(&table.oid)
            .into_iter()
            .flatten()
            .filter(|i| i.primary)
            .flat_map(|i| i.keys.iter().copied())
            .collect();
        let own_parents = parents(table.oid);
        // The columns the lookup compares with the caller's id say whose row it is, not which
        // row of this table it belongs to: a shared `user_id` relates nothing.
        let mut caller_columns = BTreeSet::new();
        expr::walk(node, &mut |e, _| {
            if let Some(c) = expr::compare(e)
                && c.equals
            {
                for (side, other) in [(c.left, c.right), (c.right, c.left)] {
                    if self.holds_caller_id(side)
                        && let Some((_, column)) = expr::column_ref(other)
                    {
                        caller_columns.insert(column);
                    }
                }
            }
        });
        if let Expr::In {
            expr: left,
            target: InTarget::Subquery(query),
            ..
        } = node
            && self.holds_caller_id(left)
            && let sqlparser::ast::SetExpr::Select(select) = query.body.as_ref()
        {
            for item in &select.projection {
                if let sqlparser::ast::SelectItem::UnnamedExpr(e) = item
                    && let Some((_, column)) = expr::column_ref(e)
                {
                    caller_columns.insert(column);
                }
            }
        }
        let mut own_names = names(table.oid, &primary);
        own_names.retain(|n| !caller_columns.contains(n));
        let mut out: Vec<String> = expr::relations(node)
            .iter()
            .filter_map(|parts| find(parts))
            .filter(|r| r.oid != table.oid)
            .filter(|r| {
                let theirs = parents(r.oid);
                theirs.contains(&table.oid)
                    || own_parents.contains(&r.oid)
                    || !theirs.is_disjoint(&own_parents)
                    || !names(r.oid, &[]).is_disjoint(&own_names)
            })
            .map(Relation::qualified)
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// `x IN (SELECT …)` / `x = ANY (SELECT …)` about the caller whose `x` is not a column
    /// of the policy's table.
    fn uncorrelated_in(
        &self,
        left: &Expr,
        query: &sqlparser::ast::Query,
        columns_of_table: TableColumn<'_>,
    ) -> bool {
        let correlated = !self.holds_caller_id(left) && columns_of_table(left).is_some();
        !correlated && (self.holds_caller_id(left) || self.holds_caller_id(query))
    }

    /// Role-name and case-folded comparisons of identities.
    fn identity_compare(
        &self,
        node: &Expr,
        c: &expr::Compare<'_>,
        columns_of_table: TableColumn<'_>,
        facts: &mut ExprFacts,
    ) {
        let whole = expr::shown(node);
        if c.equals {
            for (side, other) in [(c.left, c.right), (c.right, c.left)] {
                if let Some(literal) = expr::literal(other) {
                    if let Some(column) = columns_of_table(side) {
                        facts.literal_compares.push((column, whole.clone()));
                    }
                    if self.holds_role(side) && !facts.role_literals.iter().any(|l| l == literal) {
                        facts.role_literals.push(literal.to_owned());
                    }
                }
                if expr::is_role_word(side)
                    && columns_of_table(other).is_some()
                    && !facts.role_compares.contains(&whole)
                {
                    facts.role_compares.push(whole.clone());
                }
            }
        }
        if !(self.holds_caller_id(c.left) || self.holds_caller_id(c.right)) {
            return;
        }
        let folded = |e: &Expr| {
            expr::calls(e).iter().any(|call| {
                ["lower", "upper", "initcap"]
                    .iter()
                    .any(|n| call.is_builtin(n))
            }) || expr::casts_to(e, "citext")
        };
        let (fl, fr) = (folded(c.left), folded(c.right));
        if c.pattern || fl || fr {
            let certain = c.pattern || (fl && fr);
            if !facts.case_folded.iter().any(|(w, _)| *w == whole) {
                facts.case_folded.push((whole, certain));
            }
        }
    }

    /// Whether a branch of a policy admits only signed-in callers.
    fn branch_requires_signed_in(&self, branch: &Expr) -> bool {
        let mut found = false;
        expr::walk(branch, &mut |node, _| {
            found |= match node {
                Expr::IsNotNull(inner) => self.holds_caller_id(inner.as_ref()),
                _ => expr::compare(node).is_some_and(|c| {
                    c.equals
                        && [(c.left, c.right), (c.right, c.left)].into_iter().any(
                            |(side, other)| {
                                expr::literal(other) == Some("authenticated")
                                    && self.holds_role(side)
                            },
                        )
                }),
            };
        });
        found
    }

    /// Whether an expression holds the request's role: the `role` claim (directly or through a
    /// function that reads only it, such as `auth.role()`) or the database role.
    fn holds_role(&self, e: &Expr) -> bool {
        if expr::is_role_word(e) {
            return true;
        }
        let keys = self.scan_tree(e, None).claim_keys;
        if keys.len() == 1 && keys.contains("role") {
            return true;
        }
        expr::calls(e).iter().any(|call| {
            self.resolve_call(call).iter().any(|&i| {
                let keys = &self.facts[i].claim_keys;
                keys.len() == 1 && keys.contains("role")
            })
        })
    }

    fn branch_binds_caller(&self, branch: &Expr) -> bool {
        let mut compares = false;
        expr::walk(branch, &mut |node, _| {
            if let Expr::BinaryOp {
                left,
                op: BinaryOperator::Eq,
                right,
            } = node
            {
                compares |= (self.holds_caller_id(left.as_ref())
                    && expr::mentions_column(right.as_ref()))
                    || (self.holds_caller_id(right.as_ref())
                        && expr::mentions_column(left.as_ref()));
            }
        });
        compares
            || expr::calls(branch).iter().any(|call| {
                call.args.iter().any(expr::mentions_column)
                    && self
                        .resolve_call(call)
                        .iter()
                        .any(|&i| self.facts[i].uses_caller)
            })
    }

    /// A call in `branch` to a schema function that depends on the caller without returning
    /// the caller's id (see [`ExprFacts::caller_gated`]).
    fn branch_gated_by_caller(&self, branch: &Expr) -> bool {
        expr::calls(branch).iter().any(|call| {
            let given_caller = call.args.iter().any(|a| self.holds_caller_id(a));
            self.resolve_call(call).iter().any(|&i| {
                let f = &self.facts[i];
                !f.caller_id_value && (given_caller || f.uses_caller)
            })
        })
    }
    /// Functions reachable from `roots` through calls, roots included.
    pub(crate) fn reachable(&self, roots: impl IntoIterator<Item = usize>) -> BTreeSet<usize> {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<usize> = roots.into_iter().collect();
        while let Some(i) = stack.pop() {
            if seen.insert(i) {
                stack.extend(self.facts[i].callees.iter().copied());
            }
        }
        seen
    }
}

/// A function body as read: the tree of a SQL body, or the tokens of PL/pgSQL.
enum Body {
    Tree(Vec<sqlparser::ast::Statement>),
    Tokens(Tokens),
}

#[derive(Debug, Default)]
struct Scan {
    reads_settings: bool,
    reads_claims: bool,
    claim_keys: BTreeSet<String>,
}

fn is_current_setting(call: &Call) -> bool {
    call.base_name() == "current_setting" && call.schema().is_none_or(|s| s == "pg_catalog")
}

fn is_extract_path(name: &str) -> bool {
    matches!(
        name,
        "json_extract_path"
            | "json_extract_path_text"
            | "jsonb_extract_path"
            | "jsonb_extract_path_text"
    )
}

/// The literal setting name a `current_setting(…)` call reads.
fn setting_name<'t>(tokens: &'t Tokens, call: &Call) -> Option<&'t str> {
    let args = tokens.args(call);
    tokens.literal(args.first()?.clone())
}

/// Whether anything in the text is cast to `type_name`.
fn casts_to(tokens: &Tokens, type_name: &str) -> bool {
    (0..tokens.len()).any(|i| {
        tokens
            .get(i)
            .is_some_and(|t| t.is_op("::") || (t.is_word("as") && i > 0))
            && tokens.type_name(i + 1) == type_name
    })
}

/// Whether a `current_setting('request.jwt.claim…')` call lacks its second argument: on a
/// connection where no request set the claims it raises instead of returning NULL.
fn claims_without_missing_ok(tokens: &Tokens) -> bool {
    tokens.calls(tokens.all()).iter().any(|call| {
        is_current_setting(call)
            && setting_name(tokens, call).is_some_and(|n| n.starts_with("request.jwt.claim"))
            && tokens.args(call).len() == 1
    })
}

/// Whether a `current_setting('request.jwt.claim…')` value reaches a non-text cast before
/// anything turns `''` into NULL. Follows casts to text, redundant parentheses and `coalesce`
/// (which does not guard `''`); stops, as guarded, at `nullif`; stops, unknown, at anything
/// else (an assignment, another function): a guard written as `CASE WHEN … = ''` or in a
/// separate PL/pgSQL statement is not followed, so a cast in its ELSE branch is reported.
pub(crate) fn unguarded_claim_cast(tokens: &Tokens) -> bool {
    tokens.calls(tokens.all()).iter().any(|call| {
        if !is_current_setting(call)
            || !setting_name(tokens, call).is_some_and(|n| n.starts_with("request.jwt.claim"))
        {
            return false;
        }
        let mut span = call.span();
        loop {
            if tokens.get(span.end).is_some_and(|t| t.is_op("::")) {
                if is_text_type(&tokens.type_name(span.end + 1)) {
                    span = span.start..tokens.type_end(span.end + 1);
                    continue;
                }
                return true;
            }
            let Some(open) = enclosing_open(tokens, &span) else {
                return false;
            };
            let close = tokens.partner(open).unwrap_or(span.end);
            let name = tokens.call_name_before(open);
            match name {
                // Plain parentheses around the value only: look past them.
                None if open + 1 == span.start && close == span.end => span = open..close + 1,
                Some("coalesce") => span = open - 1..close + 1,
                Some("cast") if tokens.get(span.end).is_some_and(|t| t.is_word("as")) => {
                    if !is_text_type(&tokens.type_name(span.end + 1)) {
                        return true;
                    }
                    span = open - 1..close + 1;
                }
                _ => return false,
            }
        }
    })
}

/// The `(` of the innermost group around `span`.
fn enclosing_open(tokens: &Tokens, span: &Range<usize>) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = span.start;
    while i > 0 {
        i -= 1;
        match tokens.get(i)? {
            Token::Close => depth += 1,
            Token::Open if depth == 0 => return Some(i),
            Token::Open => depth -= 1,
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unguarded(sql: &str) -> bool {
        unguarded_claim_cast(&Tokens::new(sql))
    }

    #[test]
    fn cast_before_guard_is_recognised() {
        assert!(unguarded(
            "select nullif(current_setting('request.jwt.claims', true)::json ->> 'sub', '')::text"
        ));
        assert!(unguarded(
            "select (current_setting('request.jwt.claims', true))::jsonb ->> 'sub'"
        ));
        assert!(unguarded(
            "select coalesce(current_setting('request.jwt.claims', true), '{}')::jsonb"
        ));
        assert!(unguarded(
            "select cast(current_setting('request.jwt.claims', true) as json)"
        ));
        assert!(unguarded(
            "select current_setting('request.jwt.claim.sub', true)::uuid"
        ));
    }

    #[test]
    fn guarded_readers_pass() {
        assert!(!unguarded(
            "select nullif(nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub', '')"
        ));
        assert!(!unguarded(
            "select current_setting('request.jwt.claim.sub', true)::text"
        ));
        assert!(!unguarded(
            "select current_setting('app.settings.x', true)::jsonb"
        ));
        assert!(!unguarded(
            "begin v := current_setting('request.jwt.claims', true); return v; end"
        ));
    }
}
