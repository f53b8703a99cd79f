//! What functions and policy expressions do with the caller's identity: which functions read
//! the JWT claims (followed through SQL and PL/pgSQL bodies), which return the caller's id, and
//! which policy expressions compare an owner column with it.
//!
//! Heuristics, all on tokens (see `sql.rs`):
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

use crate::catalog::{Catalog, Column, Function, Relation};
use crate::sql::{Call, Token, Tokens, is_json_op, is_text_type};

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
    /// `<table>.<column>`, or `<caller> IN (SELECT …)`. As written (shortened).
    pub uncorrelated: Vec<String>,
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
}

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
        let tokens = Tokens::new(&function.body);
        let calls = tokens.calls(tokens.all());
        let mut callees = BTreeSet::new();
        for call in &calls {
            for callee in self.resolve(call, Some(function)) {
                if callee != index {
                    self.visit(callee, state);
                    callees.insert(callee);
                }
            }
        }
        let scan = self.scan(&tokens, tokens.all(), Some(function));
        let callee_facts = callees.iter().map(|&c| &self.facts[c]);
        let mut facts = FunctionFacts {
            reads_settings: scan.reads_settings,
            reads_claims: scan.reads_claims,
            claim_keys: scan.claim_keys,
            unguarded_cast: unguarded_claim_cast(&tokens),
            claims_without_missing_ok: claims_without_missing_ok(&tokens),
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
        facts.sub_as_uuid =
            facts.caller_id_value && (function.returns == "uuid" || casts_to(&tokens, "uuid"));
        facts.callees = callees;
        self.facts[index] = facts;
        state[index] = State::Done;
    }

    /// The functions a call can mean. Built-ins (`pg_catalog`) are never loaded, so they
    /// resolve to nothing.
    fn resolve(&self, call: &Call, from: Option<&Function>) -> Vec<usize> {
        let Some(candidates) = self.by_name.get(call.base_name()) else {
            return Vec::new();
        };
        let functions = &self.catalog.functions;
        match call.schema() {
            Some(schema) => candidates
                .iter()
                .copied()
                .filter(|&i| functions[i].schema == schema)
                .collect(),
            None => {
                // Policy text comes from pg_get_expr under an empty search_path: an unqualified
                // name there is a built-in.
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
            if is_extract_path(call) {
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
                .map(|k| first_path_element(op, k))
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

    /// Whether a range holds the caller's id: a caller-id function or a `sub` access.
    fn holds_caller_id(&self, tokens: &Tokens, range: Range<usize>) -> bool {
        let via_function = tokens.calls(range.clone()).iter().any(|call| {
            self.resolve(call, None)
                .iter()
                .any(|&i| self.facts[i].caller_id_value)
        });
        via_function || self.scan(tokens, range, None).claim_keys.contains("sub")
    }

    /// Whether an expression (a column default, say) evaluates to the caller's id.
    pub(crate) fn is_caller_id(&self, sql: &str) -> bool {
        let tokens = Tokens::new(sql);
        self.holds_caller_id(&tokens, tokens.all())
    }

    /// Analyses a policy expression (or a column default) on `table`.
    pub(crate) fn expr(&self, sql: &str, table: &Relation, columns: &[Column]) -> ExprFacts {
        let tokens = Tokens::new(sql);
        let all = tokens.all();
        let scan = self.scan(&tokens, all.clone(), None);
        let calls = tokens.calls(all.clone());
        let mut facts = ExprFacts {
            // `x OR true` is as true as `true`.
            always_true: tokens
                .disjuncts(all.clone())
                .into_iter()
                .any(|d| tokens.is_true(d)),
            claim_keys: scan.claim_keys,
            unguarded_cast: unguarded_claim_cast(&tokens),
            claims_without_missing_ok: claims_without_missing_ok(&tokens),
            ..ExprFacts::default()
        };
        let mut unwrapped_spans: Vec<Range<usize>> = Vec::new();
        for call in &calls {
            let resolved = self.resolve(call, None);
            for &i in &resolved {
                facts.functions.insert(i);
                facts
                    .claim_keys
                    .extend(self.facts[i].claim_keys.iter().cloned());
            }
            let constant_args = !tokens.mentions_column(call.open + 1..call.close);
            let per_statement =
                is_current_setting(call) || resolved.iter().any(|&i| self.facts[i].reads_settings);
            if per_statement && constant_args && !tokens.in_select_group(call.start) {
                let shown = call.display();
                if !facts.unwrapped_calls.contains(&shown) {
                    facts.unwrapped_calls.push(shown);
                }
                unwrapped_spans.push(call.span());
            }
        }
        if !unwrapped_spans.is_empty() {
            facts.wrapped = Some(wrap_spans(&tokens, &unwrapped_spans));
        }
        self.identity_compares(&tokens, table, columns, &mut facts);
        let core = tokens.strip(all.clone());
        facts.always_false =
            core.len() == 1 && tokens.get(core.start).is_some_and(|t| t.is_word("false"));
        facts.requires_signed_in = tokens
            .disjuncts(all.clone())
            .into_iter()
            .all(|branch| self.branch_requires_signed_in(&tokens, branch));
        for p in all.clone() {
            if tokens.get(p).is_some_and(|t| t.is_op("=")) {
                let (Some(left), Some(right)) =
                    (tokens.operand_before(p), tokens.operand_after(p + 1))
                else {
                    continue;
                };
                for (side, other) in [(&left, &right), (&right, &left)] {
                    if let Some((qualifier, column)) = tokens.column_ref(side.clone())
                        && qualifier.is_none_or(|q| q == table.name)
                        && columns.iter().any(|c| c.name == column)
                        && self.holds_caller_id(&tokens, other.clone())
                    {
                        facts.owner_columns.insert(column.to_owned());
                    }
                }
            }
        }
        self.correlation(&tokens, table, columns, &mut facts);
        for call in &calls {
            if call.base_name() != "coalesce" || call.schema().is_some_and(|s| s != "pg_catalog") {
                continue;
            }
            let args = tokens.args(call);
            let caller = args
                .iter()
                .any(|a| self.holds_caller_id(&tokens, a.clone()));
            let column = args.iter().any(|a| {
                tokens.column_ref(a.clone()).is_some_and(|(q, c)| {
                    q.is_none_or(|q| q == table.name) && columns.iter().any(|col| col.name == c)
                })
            });
            if caller && column {
                facts
                    .caller_fallbacks
                    .push(tokens.text(call.start..call.close + 1));
            }
        }
        facts.binds_caller = !facts.always_true
            && tokens
                .disjuncts(all.clone())
                .into_iter()
                .all(|branch| self.branch_binds_caller(&tokens, branch));
        facts.caller_gated = !facts.always_true
            && tokens
                .disjuncts(all)
                .into_iter()
                .all(|branch| self.branch_gated_by_caller(&tokens, branch));
        facts
    }

    /// Finds membership subqueries that never correlate with the policy's own row. Postgres
    /// prints every column inside a sublink qualified, so an outer reference reads
    /// `<table>.<column>`; `EXISTS` needs one inside, `x IN (SELECT …)` needs `x` to be a
    /// column of the table.
    fn correlation(
        &self,
        tokens: &Tokens,
        table: &Relation,
        columns: &[Column],
        facts: &mut ExprFacts,
    ) {
        for p in tokens.all() {
            let Some(tok) = tokens.get(p) else { continue };
            let kind = if tok.is_word("exists") {
                "exists"
            } else if tok.is_word("in") || tok.is_word("any") {
                "in"
            } else {
                continue;
            };
            let open = p + 1;
            if tokens.get(open) != Some(&Token::Open)
                || !tokens.get(open + 1).is_some_and(|t| t.is_word("select"))
            {
                continue;
            }
            let Some(close) = tokens.partner(open) else {
                continue;
            };
            let inner = open + 1..close;
            if !self.holds_caller_id(tokens, inner.clone()) && kind == "exists" {
                continue;
            }
            let correlated = match kind {
                "exists" => inner.clone().any(|i| {
                    tokens.get(i).and_then(Token::ident) == Some(table.name.as_str())
                        && tokens.get(i + 1) == Some(&Token::Dot)
                }),
                _ => {
                    // `x IN (…)` / `x = ANY (…)`: the operand before the keyword.
                    let end = if tok.is_word("any") {
                        p.saturating_sub(1)
                    } else {
                        p
                    };
                    tokens.operand_before(end).is_some_and(|left| {
                        !self.holds_caller_id(tokens, left.clone())
                            && tokens.column_ref(left).is_some_and(|(q, c)| {
                                q.is_none_or(|q| q == table.name)
                                    && columns.iter().any(|col| col.name == c)
                            })
                    })
                }
            };
            if !correlated
                && (kind == "exists"
                    || self.holds_caller_id(tokens, 0..open)
                    || self.holds_caller_id(tokens, inner.clone()))
            {
                let text = tokens.text(p..close + 1);
                facts.uncorrelated.push(text);
            }
        }
    }

    /// Role-name and case-folded comparisons of identities.
    fn identity_compares(
        &self,
        tokens: &Tokens,
        table: &Relation,
        columns: &[Column],
        facts: &mut ExprFacts,
    ) {
        for p in tokens.all() {
            let Some(tok) = tokens.get(p) else { continue };
            let pattern = matches!(tok, Token::Op(o) if PATTERN_OPS.contains(&o.as_str()))
                || tok.is_word("like")
                || tok.is_word("ilike");
            if !(pattern || tok.is_op("=") || tok.is_op("<>")) {
                continue;
            }
            let (Some(left), Some(right)) = (tokens.operand_before(p), tokens.operand_after(p + 1))
            else {
                continue;
            };
            let whole = tokens.text(left.start..right.end);
            if tok.is_op("=") {
                for (side, other) in [(&left, &right), (&right, &left)] {
                    if let Some(literal) = tokens.literal(tokens.strip(other.clone())) {
                        if let Some((q, c)) = tokens.column_ref(side.clone())
                            && q.is_none_or(|q| q == table.name)
                            && columns.iter().any(|col| col.name == c)
                        {
                            facts.literal_compares.push((c.to_owned(), whole.clone()));
                        }
                        if self.holds_role(tokens, side.clone())
                            && !facts.role_literals.iter().any(|l| l == literal)
                        {
                            facts.role_literals.push(literal.to_owned());
                        }
                    }
                    let role_word = tokens.column_ref(side.clone()).is_none() && {
                        let core = tokens.strip(side.clone());
                        core.len() == 1
                            && tokens
                                .get(core.start)
                                .is_some_and(|t| ROLE_WORDS.iter().any(|w| t.is_word(w)))
                    };
                    if role_word
                        && tokens.column_ref(other.clone()).is_some_and(|(q, c)| {
                            q.is_none_or(|q| q == table.name)
                                && columns.iter().any(|col| col.name == c)
                        })
                        && !facts.role_compares.contains(&whole)
                    {
                        facts.role_compares.push(whole.clone());
                    }
                }
            }
            let caller_left = self.holds_caller_id(tokens, left.clone());
            let caller_right = self.holds_caller_id(tokens, right.clone());
            if !(caller_left || caller_right) {
                continue;
            }
            let folded = |r: &Range<usize>| {
                tokens.calls(r.clone()).iter().any(|c| {
                    matches!(c.base_name(), "lower" | "upper" | "initcap")
                        && c.schema().is_none_or(|s| s == "pg_catalog")
                }) || casts_to_range(tokens, r.clone(), "citext")
            };
            let (fl, fr) = (folded(&left), folded(&right));
            if pattern || fl || fr {
                let certain = pattern || (fl && fr);
                if !facts.case_folded.iter().any(|(w, _)| *w == whole) {
                    facts.case_folded.push((whole, certain));
                }
            }
        }
    }

    /// Whether a branch of a policy admits only signed-in callers.
    fn branch_requires_signed_in(&self, tokens: &Tokens, branch: Range<usize>) -> bool {
        branch.clone().any(|p| {
            let Some(tok) = tokens.get(p) else {
                return false;
            };
            if tok.is_op("=") {
                let (Some(left), Some(right)) =
                    (tokens.operand_before(p), tokens.operand_after(p + 1))
                else {
                    return false;
                };
                [(&left, &right), (&right, &left)]
                    .iter()
                    .any(|(side, other)| {
                        tokens.literal(tokens.strip((*other).clone())) == Some("authenticated")
                            && self.holds_role(tokens, (*side).clone())
                    })
            } else if tok.is_word("is")
                && tokens.get(p + 1).is_some_and(|t| t.is_word("not"))
                && tokens.get(p + 2).is_some_and(|t| t.is_word("null"))
            {
                tokens
                    .operand_before(p)
                    .is_some_and(|left| self.holds_caller_id(tokens, left))
            } else {
                false
            }
        })
    }

    /// Whether a range holds the request's role: the `role` claim (directly or through a
    /// function that reads only it, such as `auth.role()`) or the database role.
    fn holds_role(&self, tokens: &Tokens, range: Range<usize>) -> bool {
        let core = tokens.strip(range.clone());
        if core.len() == 1
            && tokens
                .get(core.start)
                .is_some_and(|t| ROLE_WORDS.iter().any(|w| t.is_word(w)))
        {
            return true;
        }
        let keys = self.scan(tokens, range.clone(), None).claim_keys;
        if keys.len() == 1 && keys.contains("role") {
            return true;
        }
        tokens.calls(range).iter().any(|call| {
            self.resolve(call, None).iter().any(|&i| {
                let keys = &self.facts[i].claim_keys;
                keys.len() == 1 && keys.contains("role")
            })
        })
    }

    fn branch_binds_caller(&self, tokens: &Tokens, branch: Range<usize>) -> bool {
        let compares = branch.clone().any(|p| {
            if !tokens.get(p).is_some_and(|t| t.is_op("=")) {
                return false;
            }
            let (Some(left), Some(right)) = (tokens.operand_before(p), tokens.operand_after(p + 1))
            else {
                return false;
            };
            (self.holds_caller_id(tokens, left.clone()) && tokens.mentions_column(right.clone()))
                || (self.holds_caller_id(tokens, right) && tokens.mentions_column(left))
        });
        compares
            || tokens.calls(branch).iter().any(|call| {
                tokens.mentions_column(call.open + 1..call.close)
                    && self
                        .resolve(call, None)
                        .iter()
                        .any(|&i| self.facts[i].uses_caller)
            })
    }

    /// A call in `branch` to a schema function that depends on the caller without returning
    /// the caller's id (see [`ExprFacts::caller_gated`]).
    fn branch_gated_by_caller(&self, tokens: &Tokens, branch: Range<usize>) -> bool {
        tokens.calls(branch).iter().any(|call| {
            let given_caller = tokens
                .args(call)
                .iter()
                .any(|a| self.holds_caller_id(tokens, a.clone()));
            self.resolve(call, None).iter().any(|&i| {
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

/// Pattern-matching operators as `pg_get_expr` prints them (`LIKE` is `~~`, `ILIKE` `~~*`).
const PATTERN_OPS: &[&str] = &["~~", "~~*", "!~~", "!~~*", "~", "~*", "!~", "!~*"];

/// The database role, as SQL spells it without parentheses.
/// (`USER` is printed back as `CURRENT_USER` by `pg_get_expr`.)
const ROLE_WORDS: &[&str] = &["current_user", "session_user", "current_role"];

/// `tokens` with each span replaced by `(SELECT <span>)`; nested spans keep their outermost.
fn wrap_spans(tokens: &Tokens, spans: &[Range<usize>]) -> String {
    let mut outer: Vec<Range<usize>> = spans
        .iter()
        .filter(|s| {
            !spans
                .iter()
                .any(|o| o != *s && o.start <= s.start && s.end <= o.end)
        })
        .cloned()
        .collect();
    outer.sort_by_key(|s| s.start);
    outer.dedup();
    let mut parts: Vec<String> = Vec::new();
    let mut at = 0;
    for span in outer {
        if span.start > at {
            parts.push(tokens.text_full(at..span.start));
        }
        parts.push(format!("(SELECT {})", tokens.text_full(span.clone())));
        at = span.end;
    }
    if at < tokens.len() {
        parts.push(tokens.text_full(at..tokens.len()));
    }
    parts.join(" ")
}

/// Whether something in `range` is cast to `type_name`.
fn casts_to_range(tokens: &Tokens, range: Range<usize>, type_name: &str) -> bool {
    range.into_iter().any(|i| {
        tokens.get(i).is_some_and(|t| t.is_op("::")) && tokens.type_name(i + 1) == type_name
    })
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

fn is_extract_path(call: &Call) -> bool {
    matches!(
        call.base_name(),
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

/// `#>` takes a path literal `{a,b}`: its first element is the claim.
fn first_path_element(op: &str, key: &str) -> String {
    if op.starts_with('#') {
        key.trim_matches(|c| c == '{' || c == '}')
            .split(',')
            .next()
            .unwrap_or("")
            .trim()
            .trim_matches('"')
            .to_owned()
    } else {
        key.to_owned()
    }
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
