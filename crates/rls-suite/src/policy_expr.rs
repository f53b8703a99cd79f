//! Policy expressions as a tree: the `pg_get_expr` text of a policy's USING or WITH CHECK is
//! parsed by `sqlparser` (its PostgreSQL dialect, pure Rust), changed as a tree and printed back
//! by the tree's own `Display` — never edited as text. Also splits a predicate into its
//! top-level branches (for coverage) and recognises the caller's id (for the mutation
//! operators of [`crate::mutation`]).
//!
//! The parser is not Postgres's: a text it cannot parse is an error, and a tree whose printed
//! text does not parse back into the same tree is an error ([`Expr::deparse`]). Whether the
//! printed text means to Postgres what the original meant is checked against the server by the
//! caller (the mutation round trip: stored as the policy, `pg_get_expr` must read the same).

use std::ops::ControlFlow;

use sqlparser::ast::{self as sql, VisitMut, VisitorMut};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::Token;

/// Why an expression could not be parsed or printed back.
#[derive(Debug, thiserror::Error)]
pub enum ExprError {
    #[error("the SQL parser refuses it: {0}")]
    Parse(#[source] ParserError),
    #[error("it is not a single expression")]
    NotAnExpression,
    #[error("printed back as `{printed}`, it does not parse into the same tree")]
    Deparse { printed: String },
}

/// A parsed expression (the outermost parentheses, which mean nothing, removed).
#[derive(Debug, Clone, PartialEq)]
pub struct Expr(pub(crate) sql::Expr);

impl Expr {
    /// Parses one SQL expression, as `pg_get_expr` prints a policy's USING or WITH CHECK.
    pub fn parse(text: &str) -> Result<Self, ExprError> {
        let dialect = PostgreSqlDialect {};
        let mut parser = Parser::new(&dialect)
            .try_with_sql(text)
            .map_err(ExprError::Parse)?;
        let expr = parser.parse_expr().map_err(ExprError::Parse)?;
        if parser.peek_token().token != Token::EOF {
            return Err(ExprError::NotAnExpression);
        }
        let mut expr = unparen(expr);
        let _ = expr.visit(&mut LowerCaseTypes);
        Ok(Expr(expr))
    }

    /// The expression as SQL: the tree printed, and parsed again to make sure the text reads
    /// as the same tree (a tree a mutation left ambiguous is refused, never guessed).
    pub fn deparse(&self) -> Result<String, ExprError> {
        let printed = self.0.to_string();
        match Self::parse(&printed) {
            Ok(again) if again == *self => Ok(printed),
            _ => Err(ExprError::Deparse { printed }),
        }
    }

    /// The top-level branches: the arms of a top-level OR (or AND), else none.
    pub fn branches(&self) -> (Option<&'static str>, Vec<Expr>) {
        let (name, op) = match &self.0 {
            sql::Expr::BinaryOp {
                op: sql::BinaryOperator::Or,
                ..
            } => ("or", sql::BinaryOperator::Or),
            sql::Expr::BinaryOp {
                op: sql::BinaryOperator::And,
                ..
            } => ("and", sql::BinaryOperator::And),
            _ => return (None, Vec::new()),
        };
        let arms = flatten(&self.0, &op)
            .into_iter()
            .map(|arm| Expr(unparen(arm.clone())))
            .collect();
        (Some(name), arms)
    }

    /// The names (schema, name) of the `requesting_user_id()` functions it calls.
    pub fn caller_functions(&self) -> Vec<Vec<String>> {
        let mut out: Vec<Vec<String>> = Vec::new();
        let is_call = |e: &sql::Expr| match e {
            sql::Expr::Function(f) => name_parts(&f.name).last() == Some(&"requesting_user_id"),
            _ => false,
        };
        for_each_match(&mut self.0.clone(), &is_call, &mut |e| {
            if let sql::Expr::Function(f) = e {
                let parts: Vec<String> =
                    name_parts(&f.name).into_iter().map(str::to_owned).collect();
                if !out.contains(&parts) {
                    out.push(parts);
                }
            }
        });
        out
    }
}

/// What a predicate reads of its row and calls: the names it uses as columns (the last part
/// of a qualified name: `t.done` → `done`), the functions it calls (name parts, as written),
/// and the constants it compares a column with (`status = 'open'`, `kind IN ('a', 'b')`,
/// `flag = true`, `n > 3`). The seeding stage derives rows from these (see
/// `engine::seed`); a name here may belong to a subquery's table, which the caller filters
/// against its own table's columns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct References {
    pub columns: Vec<String>,
    pub functions: Vec<Vec<String>>,
    /// (column, constant as JSON).
    pub constants: Vec<(String, serde_json::Value)>,
}

impl Expr {
    /// See [`References`].
    pub fn references(&self) -> References {
        let mut out = References::default();
        let _ = sql::visit_expressions(&self.0, |e| {
            match e {
                sql::Expr::Identifier(id) => push(&mut out.columns, id.value.clone()),
                sql::Expr::CompoundIdentifier(parts) => {
                    if let Some(last) = parts.last() {
                        push(&mut out.columns, last.value.clone());
                    }
                }
                sql::Expr::Function(f) => push(
                    &mut out.functions,
                    name_parts(&f.name).into_iter().map(str::to_owned).collect(),
                ),
                sql::Expr::BinaryOp {
                    left,
                    op:
                        sql::BinaryOperator::Eq
                        | sql::BinaryOperator::NotEq
                        | sql::BinaryOperator::Lt
                        | sql::BinaryOperator::LtEq
                        | sql::BinaryOperator::Gt
                        | sql::BinaryOperator::GtEq,
                    right,
                } => {
                    for (a, b) in [(left, right), (right, left)] {
                        if let (Some(col), Some(v)) = (column_name(a), constant(b)) {
                            push(&mut out.constants, (col, v));
                        }
                    }
                }
                sql::Expr::In {
                    expr,
                    target: sql::InTarget::List(list),
                    ..
                } => {
                    if let Some(col) = column_name(expr) {
                        for v in list.iter().filter_map(constant) {
                            push(&mut out.constants, (col.clone(), v));
                        }
                    }
                }
                // `pg_get_expr` prints `c IN ('a', 'b')` as `c = ANY (ARRAY['a', 'b'])`.
                sql::Expr::AnyOp { left, right, .. } | sql::Expr::AllOp { left, right, .. } => {
                    if let (Some(col), sql::Expr::Array(arr)) = (column_name(left), uncast(right)) {
                        for v in arr.elem.iter().filter_map(constant) {
                            push(&mut out.constants, (col.clone(), v));
                        }
                    }
                }
                sql::Expr::IsTrue(inner)
                | sql::Expr::IsFalse(inner)
                | sql::Expr::IsNotTrue(inner)
                | sql::Expr::IsNotFalse(inner) => {
                    if let Some(col) = column_name(inner) {
                        push(
                            &mut out.constants,
                            (col.clone(), serde_json::Value::Bool(true)),
                        );
                        push(&mut out.constants, (col, serde_json::Value::Bool(false)));
                    }
                }
                _ => {}
            }
            ControlFlow::<()>::Continue(())
        });
        out
    }
}

impl Expr {
    /// For each top-level OR arm (or the whole predicate), the column values that make its
    /// conjuncts true where a conjunct says so plainly: `c = 'x'`, `c IN ('x', …)` (the first),
    /// `c IS NULL`, a boolean column `c` or `NOT c`, `c IS TRUE`/`FALSE`. Other conjuncts (a
    /// subquery, a function, the caller) add nothing. The seeding stage puts each arm's values
    /// in one row together, so a branch that needs several of them at once is exercised.
    pub fn assignments(&self) -> Vec<Vec<(String, serde_json::Value)>> {
        use serde_json::Value as J;
        let arms = flatten(&self.0, &sql::BinaryOperator::Or);
        arms.into_iter()
            .map(|arm| {
                let mut out: Vec<(String, J)> = Vec::new();
                for c in flatten(arm, &sql::BinaryOperator::And) {
                    let found = match uncast(c) {
                        sql::Expr::BinaryOp {
                            left,
                            op: sql::BinaryOperator::Eq,
                            right,
                        } => match (column_name(left), constant(right)) {
                            (Some(col), Some(v)) => Some((col, v)),
                            _ => match (column_name(right), constant(left)) {
                                (Some(col), Some(v)) => Some((col, v)),
                                _ => None,
                            },
                        },
                        sql::Expr::In {
                            expr,
                            target: sql::InTarget::List(list),
                            negated: false,
                            ..
                        } => column_name(expr).zip(list.iter().find_map(constant)),
                        sql::Expr::AnyOp {
                            left,
                            compare_op: sql::BinaryOperator::Eq,
                            right,
                            ..
                        } => match uncast(right) {
                            sql::Expr::Array(arr) => {
                                column_name(left).zip(arr.elem.iter().find_map(constant))
                            }
                            _ => None,
                        },
                        sql::Expr::IsNull(e) => column_name(e).map(|c| (c, J::Null)),
                        sql::Expr::IsTrue(e) => column_name(e).map(|c| (c, J::Bool(true))),
                        sql::Expr::IsFalse(e) => column_name(e).map(|c| (c, J::Bool(false))),
                        sql::Expr::UnaryOp {
                            op: sql::UnaryOperator::Not,
                            expr,
                        } => column_name(expr).map(|c| (c, J::Bool(false))),
                        e @ (sql::Expr::Identifier(_) | sql::Expr::CompoundIdentifier(_)) => {
                            column_name(e).map(|c| (c, J::Bool(true)))
                        }
                        _ => None,
                    };
                    if let Some((col, v)) = found
                        && !out.iter().any(|(c, _)| *c == col)
                    {
                        out.push((col, v));
                    }
                }
                out
            })
            .collect()
    }
}

fn push<T: PartialEq>(list: &mut Vec<T>, item: T) {
    if !list.contains(&item) {
        list.push(item);
    }
}

/// `e` without casts and parentheses.
fn uncast(mut e: &sql::Expr) -> &sql::Expr {
    loop {
        match e {
            sql::Expr::Cast { expr, .. } | sql::Expr::Nested(expr) => e = expr,
            _ => return e,
        }
    }
}

/// The column a (possibly cast or qualified) name reads.
fn column_name(e: &sql::Expr) -> Option<String> {
    match uncast(e) {
        sql::Expr::Identifier(id) => Some(id.value.clone()),
        sql::Expr::CompoundIdentifier(parts) => parts.last().map(|p| p.value.clone()),
        _ => None,
    }
}

/// A constant as JSON: text, a number, a boolean.
fn constant(e: &sql::Expr) -> Option<serde_json::Value> {
    let sql::Expr::Value(v) = uncast(e) else {
        return None;
    };
    match &v.value {
        sql::Value::SingleQuotedString(s) => Some(serde_json::Value::String(s.clone())),
        sql::Value::Boolean(b) => Some(serde_json::Value::Bool(*b)),
        sql::Value::Number(n, _) => serde_json::from_str(n).ok(),
        _ => None,
    }
}

/// A fixed expression, parsed by the same parser (the templates are constants of the crate).
pub(crate) fn template(text: &str) -> sql::Expr {
    Expr::parse(text)
        .map(|e| e.0)
        .unwrap_or_else(|e| panic!("the template `{text}` does not parse: {e}"))
}

/// `e` without its enclosing parentheses.
pub(crate) fn unparen(mut e: sql::Expr) -> sql::Expr {
    while let sql::Expr::Nested(inner) = e {
        e = *inner;
    }
    e
}

/// `e` in parentheses unless it prints as one operand whatever surrounds it.
pub(crate) fn paren(e: sql::Expr) -> sql::Expr {
    match e {
        sql::Expr::Identifier(_)
        | sql::Expr::CompoundIdentifier(_)
        | sql::Expr::Value(_)
        | sql::Expr::Function(_)
        | sql::Expr::Nested(_)
        | sql::Expr::Subquery(_)
        | sql::Expr::Cast {
            kind: sql::CastKind::DoubleColon,
            ..
        } => e,
        other => sql::Expr::Nested(Box::new(other)),
    }
}

/// The operands of a chain of `op` (`a op b op c`, left-associative as SQL reads it, through
/// parentheses on the left, as Postgres flattens it): `[a, b, c]`, or `[e]`.
pub(crate) fn flatten<'e>(e: &'e sql::Expr, op: &sql::BinaryOperator) -> Vec<&'e sql::Expr> {
    let mut e = e;
    while let sql::Expr::Nested(inner) = e {
        e = inner;
    }
    match e {
        sql::Expr::BinaryOp { left, op: o, right } if o == op => {
            let mut out = flatten(left, op);
            out.push(right);
            out
        }
        _ => vec![e],
    }
}

/// The chain `a op b op …` of `operands` (each parenthesised where it needs to be); `None`
/// when there is none.
pub(crate) fn chain(operands: Vec<sql::Expr>, op: &sql::BinaryOperator) -> Option<sql::Expr> {
    operands
        .into_iter()
        .map(paren)
        .reduce(|left, right| sql::Expr::BinaryOp {
            left: Box::new(left),
            op: op.clone(),
            right: Box::new(right),
        })
}

/// Built-in type names in casts printed in lower case, as Postgres prints them (`::text`,
/// not sqlparser's `::TEXT`); a named type (`public."Mood"`) is left as written.
struct LowerCaseTypes;

impl VisitorMut for LowerCaseTypes {
    type Break = ();

    fn pre_visit_expr(&mut self, e: &mut sql::Expr) -> ControlFlow<()> {
        if let sql::Expr::Cast { data_type, .. } = e
            && !matches!(data_type, sql::DataType::Custom(..))
        {
            let name = data_type.to_string().to_lowercase();
            *data_type = sql::DataType::Custom(
                sql::ObjectName(vec![sql::ObjectNamePart::Identifier(sql::Ident::new(name))]),
                Vec::new(),
            );
        }
        ControlFlow::Continue(())
    }
}

// ---- walking the tree ----

/// Calls `f` on every expression `pred` matches, in pre-order, without entering a match.
struct Matches<'a> {
    pred: &'a dyn Fn(&sql::Expr) -> bool,
    f: &'a mut dyn FnMut(&mut sql::Expr),
    depth: usize,
    /// The depth of the match being skipped over.
    inside: Option<usize>,
}

impl VisitorMut for Matches<'_> {
    type Break = ();

    fn pre_visit_expr(&mut self, e: &mut sql::Expr) -> ControlFlow<()> {
        self.depth += 1;
        if self.inside.is_none() && (self.pred)(e) {
            (self.f)(e);
            self.inside = Some(self.depth);
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, _e: &mut sql::Expr) -> ControlFlow<()> {
        if self.inside == Some(self.depth) {
            self.inside = None;
        }
        self.depth -= 1;
        ControlFlow::Continue(())
    }
}

/// Calls `f` on every expression `pred` matches (subqueries included), in pre-order, without
/// entering a match.
pub(crate) fn for_each_match(
    root: &mut sql::Expr,
    pred: &dyn Fn(&sql::Expr) -> bool,
    f: &mut dyn FnMut(&mut sql::Expr),
) {
    let mut v = Matches {
        pred,
        f,
        depth: 0,
        inside: None,
    };
    let _ = root.visit(&mut v);
}

pub(crate) fn count(root: &sql::Expr, pred: &dyn Fn(&sql::Expr) -> bool) -> usize {
    let mut n = 0;
    for_each_match(&mut root.clone(), pred, &mut |_| n += 1);
    n
}

/// A copy of `root` with the `k`-th match (0-based, pre-order) rewritten by `f`.
pub(crate) fn rewrite_nth(
    root: &sql::Expr,
    pred: &dyn Fn(&sql::Expr) -> bool,
    k: usize,
    f: &mut dyn FnMut(&mut sql::Expr),
) -> sql::Expr {
    let mut out = root.clone();
    let mut seen = 0;
    for_each_match(&mut out, pred, &mut |e| {
        if seen == k {
            f(e);
        }
        seen += 1;
    });
    out
}

/// True when `pred` holds somewhere in `root`.
pub(crate) fn contains(root: &sql::Expr, pred: &dyn Fn(&sql::Expr) -> bool) -> bool {
    count(root, pred) > 0
}

/// The identifier parts of a name (`public.requesting_user_id` → both).
pub(crate) fn name_parts(name: &sql::ObjectName) -> Vec<&str> {
    name.0
        .iter()
        .filter_map(|p| p.as_ident().map(|i| i.value.as_str()))
        .collect()
}

/// A function call's plain arguments (`None` when it has another shape).
fn arguments(f: &sql::Function) -> Option<Vec<&sql::Expr>> {
    match &f.args {
        sql::FunctionArguments::None => Some(Vec::new()),
        sql::FunctionArguments::Subquery(_) => None,
        sql::FunctionArguments::List(l) => l
            .args
            .iter()
            .map(|a| match a {
                sql::FunctionArg::Unnamed(sql::FunctionArgExpr::Expr(e)) => Some(e),
                _ => None,
            })
            .collect(),
    }
}

fn string_const(e: &sql::Expr) -> Option<&str> {
    match e {
        sql::Expr::Value(v) => match &v.value {
            sql::Value::SingleQuotedString(s) => Some(s.as_str()),
            _ => None,
        },
        sql::Expr::Cast { expr, .. } | sql::Expr::Nested(expr) => string_const(expr),
        _ => None,
    }
}

/// The one expression of a `SELECT <expr>` without FROM.
pub(crate) fn scalar_select(q: &sql::Query) -> Option<&sql::Expr> {
    let sql::SetExpr::Select(s) = q.body.as_ref() else {
        return None;
    };
    if !s.from.is_empty() || s.selection.is_some() {
        return None;
    }
    match s.projection.as_slice() {
        [sql::SelectItem::UnnamedExpr(e) | sql::SelectItem::ExprWithAlias { expr: e, .. }] => {
            Some(e)
        }
        _ => None,
    }
}

// ---- the caller's id ----

/// `requesting_user_id()`, `auth.uid()`, `(select <one of them>)`, `<claims> ->> 'sub'`,
/// `current_setting('request.jwt.claim.sub', …)`: an expression that is the caller's id.
pub(crate) fn is_caller_id(e: &sql::Expr) -> bool {
    match e {
        sql::Expr::Function(f) => {
            let Some(args) = arguments(f) else {
                return false;
            };
            match name_parts(&f.name).as_slice() {
                [.., "requesting_user_id"] | ["auth", "uid"] | ["uid"] => args.is_empty(),
                [.., "current_setting"] => args
                    .first()
                    .and_then(|a| string_const(a))
                    .is_some_and(|s| s == "request.jwt.claim.sub"),
                _ => false,
            }
        }
        sql::Expr::BinaryOp {
            op: sql::BinaryOperator::LongArrow,
            right,
            ..
        } => string_const(right) == Some("sub"),
        sql::Expr::Subquery(q) => scalar_select(q).is_some_and(is_caller_id),
        sql::Expr::Cast { expr, .. } | sql::Expr::Nested(expr) => is_caller_id(expr),
        _ => false,
    }
}

/// True when `e` calls `auth.uid()` (a uuid, not a text id).
pub(crate) fn mentions_uid(e: &sql::Expr) -> bool {
    contains(e, &|e| match e {
        sql::Expr::Function(f) => {
            matches!(name_parts(&f.name).as_slice(), ["auth", "uid"] | ["uid"])
        }
        _ => false,
    })
}

/// `a = b` where one side is (or contains) the caller's id.
pub(crate) fn is_caller_compare(e: &sql::Expr) -> bool {
    match e {
        sql::Expr::BinaryOp {
            left,
            op: sql::BinaryOperator::Eq,
            right,
        } => contains(left, &is_caller_id) || contains(right, &is_caller_id),
        _ => false,
    }
}

/// Replaces the column reference `hole` in a template by `with` (parenthesised as needed).
pub(crate) fn fill(root: &mut sql::Expr, hole: &str, with: &sql::Expr) {
    let is_hole = |e: &sql::Expr| matches!(e, sql::Expr::Identifier(i) if i.value == hole);
    for_each_match(root, &is_hole, &mut |e| *e = paren(with.clone()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments_are_the_values_each_or_arm_needs_together() {
        let e = Expr::parse(
            "((owner_id = requesting_user_id()) OR ((visibility = 'public'::text) AND (archived_at IS NULL) \
             AND done AND (NOT hidden) AND (stage = ANY (ARRAY['live'::text, 'gone'::text]))))",
        )
        .unwrap();
        let arms: Vec<Vec<String>> = e
            .assignments()
            .into_iter()
            .map(|arm| arm.iter().map(|(c, v)| format!("{c}={v}")).collect())
            .collect();
        assert_eq!(
            arms,
            [
                vec![],
                vec![
                    "visibility=\"public\"",
                    "archived_at=null",
                    "done=true",
                    "hidden=false",
                    "stage=\"live\"",
                ]
            ]
        );
    }

    #[test]
    fn references_name_columns_functions_and_compared_constants() {
        let e = Expr::parse(
            "((t.visibility = 'public'::text) AND is_complete AND (stage = ANY (ARRAY['a'::text, 'b'::text])) \
             AND (3 < n) AND basejump.is_set('x'::text))",
        )
        .unwrap();
        let r = e.references();
        for c in ["visibility", "is_complete", "stage", "n"] {
            assert!(r.columns.iter().any(|x| x == c), "{c}: {r:?}");
        }
        assert_eq!(
            r.functions,
            [vec!["basejump".to_owned(), "is_set".to_owned()]]
        );
        let constants: Vec<String> = r
            .constants
            .iter()
            .map(|(c, v)| format!("{c}={v}"))
            .collect();
        assert_eq!(
            constants,
            ["visibility=\"public\"", "stage=\"a\"", "stage=\"b\"", "n=3"]
        );
    }

    #[test]
    fn a_policy_expression_survives_a_round_trip() {
        for sql in [
            "(owner_id = ( SELECT public.requesting_user_id() AS requesting_user_id))",
            "((owner_id = ( SELECT public.requesting_user_id() AS requesting_user_id)) OR (public.project_role(id) IS NOT NULL))",
            "(EXISTS ( SELECT 1 FROM public.project_members m WHERE ((m.project_id = tasks.project_id) AND (m.user_id = auth.uid()::text))))",
        ] {
            let e = Expr::parse(sql).unwrap();
            assert!(!e.deparse().unwrap().contains("TEXT"), "{e:?}");
            let again = Expr::parse(&e.deparse().unwrap()).unwrap();
            assert_eq!(e, again);
            assert_eq!(e.deparse().unwrap(), again.deparse().unwrap());
        }
        assert!(Expr::parse("1; drop table x").is_err());
        assert!(Expr::parse("a from t").is_err());
    }

    #[test]
    fn a_tree_that_prints_ambiguously_is_refused() {
        // (a OR b) AND c without its parentheses would read as a OR (b AND c).
        let or = template("a OR b");
        let e = Expr(sql::Expr::BinaryOp {
            left: Box::new(or),
            op: sql::BinaryOperator::And,
            right: Box::new(template("c")),
        });
        assert!(
            matches!(e.deparse(), Err(ExprError::Deparse { .. })),
            "{e:?}"
        );
    }

    #[test]
    fn branches_are_the_top_level_arms() {
        let e = Expr::parse("((a = 1) OR (b IS NOT NULL) OR c)").unwrap();
        let (op, arms) = e.branches();
        assert_eq!(op, Some("or"));
        assert_eq!(arms.len(), 3);
        assert_eq!(arms[1].deparse().unwrap(), "b IS NOT NULL");
        assert_eq!(Expr::parse("true").unwrap().branches().1.len(), 0);
        // An OR on the right is one arm, as Postgres reads it.
        let (_, arms) = Expr::parse("(a OR (b OR c))").unwrap().branches();
        assert_eq!(arms.len(), 2);
    }

    #[test]
    fn the_caller_functions_are_named() {
        let e = Expr::parse(
            "((owner_id = ( SELECT public.requesting_user_id() AS requesting_user_id)) OR (x = requesting_user_id()))",
        )
        .unwrap();
        assert_eq!(
            e.caller_functions(),
            [
                vec!["public".to_owned(), "requesting_user_id".to_owned()],
                vec!["requesting_user_id".to_owned()]
            ]
        );
    }
}
