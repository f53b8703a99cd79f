//! Expression operators: a predicate's inside changed as a tree ([`crate::policy_expr`]), one
//! generator per operator family — subquery correlations, the caller's id, the caller-id
//! comparison, the top-level conjunction.

use sqlparser::ast as sql;

use super::Operator;
use crate::policy_expr::{
    self as pe, Expr, contains, count, fill, is_caller_compare, is_caller_id, mentions_uid,
    rewrite_nth, template,
};

/// One mutated predicate: the operator, which occurrence, and the tree.
#[derive(Debug, Clone)]
pub struct ExprMutant {
    pub operator: Operator,
    /// `.<n>` when the operator applies at more than one place, else empty.
    pub occurrence: String,
    pub expr: Expr,
}

impl ExprMutant {
    fn new(operator: Operator, n: usize, of: usize, tree: sql::Expr) -> Self {
        Self {
            operator,
            occurrence: if of > 1 {
                format!(".{n}")
            } else {
                String::new()
            },
            expr: Expr(tree),
        }
    }
}

/// Every expression-level mutant of this predicate of a policy on `table` (the name
/// `pg_get_expr` qualifies the policy's own row with inside subqueries).
pub fn mutants(expr: &Expr, table: &str) -> Vec<ExprMutant> {
    let mut out = drop_correlation(&expr.0, table);
    out.extend(caller(&expr.0));
    out.extend(loose(&expr.0));
    out.extend(conjunction(&expr.0));
    out
}

// ---- drop_correlation ----

/// One way an EXISTS / IN subquery ties itself to the outer row.
#[derive(Debug, Clone)]
enum Correlation {
    /// The `k`-th top-level conjunct of its WHERE.
    Conjunct(usize),
    /// `x IN (select …)` (or `x <op> ANY (select …)`): the outer `x` (the subquery then tests
    /// for any row: EXISTS).
    InTest,
}

fn drop_correlation(root: &sql::Expr, table: &str) -> Vec<ExprMutant> {
    let mut sites: Vec<Vec<Correlation>> = Vec::new();
    pe::for_each_match(&mut root.clone(), &is_subquery_test, &mut |e| {
        sites.push(correlations(e, table));
    });
    let total: usize = sites.iter().map(Vec::len).sum();
    let mut out = Vec::new();
    let mut k = 0;
    for (site, found) in sites.iter().enumerate() {
        for c in found {
            k += 1;
            let tree = rewrite_nth(root, &is_subquery_test, site, &mut |e| uncorrelate(e, c));
            out.push(ExprMutant::new(Operator::DropCorrelation, k, total, tree));
        }
    }
    out
}

fn is_subquery_test(e: &sql::Expr) -> bool {
    subquery_of(e).is_some()
}

/// The subquery of `EXISTS (…)`, `x IN (…)`, `x <op> ANY (…)`.
fn subquery_of(e: &sql::Expr) -> Option<&sql::Query> {
    match e {
        sql::Expr::Exists { subquery, .. }
        | sql::Expr::In {
            target: sql::InTarget::Subquery(subquery),
            ..
        } => Some(subquery),
        sql::Expr::AnyOp { right, .. } => match right.as_ref() {
            sql::Expr::Subquery(q) => Some(q),
            _ => None,
        },
        _ => None,
    }
}

fn subquery_of_mut(e: &mut sql::Expr) -> Option<&mut sql::Query> {
    match e {
        sql::Expr::Exists { subquery, .. }
        | sql::Expr::In {
            target: sql::InTarget::Subquery(subquery),
            ..
        } => Some(subquery),
        sql::Expr::AnyOp { right, .. } => match right.as_mut() {
            sql::Expr::Subquery(q) => Some(q),
            _ => None,
        },
        _ => None,
    }
}

/// The names the subquery's own FROM items go by.
fn from_names(from: &[sql::TableWithJoins]) -> Vec<String> {
    let mut names = Vec::new();
    let mut stack: Vec<&sql::TableFactor> = from
        .iter()
        .flat_map(|t| std::iter::once(&t.relation).chain(t.joins.iter().map(|j| &j.relation)))
        .collect();
    while let Some(f) = stack.pop() {
        match f {
            sql::TableFactor::Table { name, alias, .. } => names.extend(
                alias
                    .as_ref()
                    .map(|a| a.name.value.clone())
                    .or_else(|| pe::name_parts(name).last().map(|s| (*s).to_owned())),
            ),
            sql::TableFactor::NestedJoin {
                table_with_joins,
                alias,
            } => {
                names.extend(alias.as_ref().map(|a| a.name.value.clone()));
                stack.push(&table_with_joins.relation);
                stack.extend(table_with_joins.joins.iter().map(|j| &j.relation));
            }
            sql::TableFactor::Derived { alias, .. }
            | sql::TableFactor::TableFunction { alias, .. }
            | sql::TableFactor::Function { alias, .. }
            | sql::TableFactor::UNNEST { alias, .. } => {
                names.extend(alias.as_ref().map(|a| a.name.value.clone()));
            }
            _ => {}
        }
    }
    names
}

/// The correlations with the outer row (columns qualified by `table`, which the subquery's
/// own FROM items do not shadow) of an EXISTS / IN subquery.
fn correlations(e: &sql::Expr, table: &str) -> Vec<Correlation> {
    let Some(query) = subquery_of(e) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if !matches!(e, sql::Expr::Exists { .. }) {
        out.push(Correlation::InTest);
    }
    let sql::SetExpr::Select(select) = query.body.as_ref() else {
        return out;
    };
    if from_names(&select.from).iter().any(|n| n == table) {
        return out;
    }
    let outer = |e: &sql::Expr| {
        matches!(e, sql::Expr::CompoundIdentifier(parts)
            if parts.len() >= 2 && parts[parts.len() - 2].value == table)
    };
    if let Some(w) = &select.selection {
        for (k, c) in pe::flatten(w, &sql::BinaryOperator::And)
            .into_iter()
            .enumerate()
        {
            if contains(c, &outer) {
                out.push(Correlation::Conjunct(k));
            }
        }
    }
    out
}

fn uncorrelate(e: &mut sql::Expr, c: &Correlation) {
    match c {
        Correlation::InTest => {
            let negated = matches!(e, sql::Expr::In { negated: true, .. });
            if let Some(q) = subquery_of(e) {
                *e = sql::Expr::Exists {
                    subquery: Box::new(q.clone()),
                    negated,
                };
            }
        }
        Correlation::Conjunct(k) => {
            let Some(query) = subquery_of_mut(e) else {
                return;
            };
            let sql::SetExpr::Select(select) = query.body.as_mut() else {
                return;
            };
            let Some(w) = select.selection.take() else {
                return;
            };
            let mut rest: Vec<sql::Expr> = pe::flatten(&w, &sql::BinaryOperator::And)
                .into_iter()
                .cloned()
                .collect();
            if *k < rest.len() {
                rest.remove(*k);
            }
            select.selection = pe::chain(rest, &sql::BinaryOperator::And);
        }
    }
}

// ---- caller_constant, caller_claim ----

const CONSTANT_UUID: &str = "'00000000-0000-4000-8000-00000000000a'::uuid";
const CONSTANT_TEXT: &str = "'user_2MutantConstantCallerIdXXXX'::text";
const OTHER_CLAIM: &str =
    "nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'email'";

/// Each caller-id expression replaced by a constant, and (a text id) by another claim.
fn caller(root: &sql::Expr) -> Vec<ExprMutant> {
    let mut out = Vec::new();
    let callers = count(root, &is_caller_id);
    for k in 0..callers {
        let mut uuid = false;
        let constant = rewrite_nth(root, &is_caller_id, k, &mut |e| {
            uuid = mentions_uid(e);
            *e = pe::paren(template(if uuid { CONSTANT_UUID } else { CONSTANT_TEXT }));
        });
        out.push(ExprMutant::new(
            Operator::CallerConstant,
            k + 1,
            callers,
            constant,
        ));
        if !uuid {
            let claim = rewrite_nth(root, &is_caller_id, k, &mut |e| {
                *e = pe::paren(template(OTHER_CLAIM));
            });
            out.push(ExprMutant::new(
                Operator::CallerClaim,
                k + 1,
                callers,
                claim,
            ));
        }
    }
    out
}

// ---- loose_ilike, loose_lower, loose_prefix ----

/// Each caller-id equality compared loosely, three ways.
fn loose(root: &sql::Expr) -> Vec<ExprMutant> {
    let mut out = Vec::new();
    let compares = count(root, &is_caller_compare);
    for k in 0..compares {
        for (operator, shape) in [
            (Operator::LooseIlike, "__row::text ilike __caller::text"),
            (
                Operator::LooseLower,
                "lower(__row::text) = lower(__caller::text)",
            ),
            (
                Operator::LoosePrefix,
                "__row::text like __caller::text || '%'",
            ),
        ] {
            let tree = rewrite_nth(root, &is_caller_compare, k, &mut |e| loosen(e, shape));
            out.push(ExprMutant::new(operator, k + 1, compares, tree));
        }
    }
    out
}

/// Rewrites a caller-id equality into the loose comparison `shape` (a template whose holes
/// are `__row`, the other side, and `__caller`).
fn loosen(e: &mut sql::Expr, shape: &str) {
    let sql::Expr::BinaryOp { left, right, .. } = e else {
        return;
    };
    let (caller, other) = if contains(right, &is_caller_id) {
        (right, left)
    } else {
        (left, right)
    };
    let mut out = template(shape);
    fill(&mut out, "__row", other);
    fill(&mut out, "__caller", caller);
    *e = out;
}

// ---- and_to_or ----

/// The top-level conjunction weakened: AND → OR, then each conjunct dropped in turn.
fn conjunction(root: &sql::Expr) -> Vec<ExprMutant> {
    let and = sql::BinaryOperator::And;
    let conjuncts = pe::flatten(root, &and);
    if conjuncts.len() < 2 {
        return Vec::new();
    }
    let mut tree = root.clone();
    or_spine(&mut tree);
    let mut out = vec![ExprMutant::new(Operator::AndToOr, 1, 1, tree)];
    let n = conjuncts.len();
    for k in 0..n {
        let rest: Vec<sql::Expr> = conjuncts
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != k)
            .map(|(_, c)| (*c).clone())
            .collect();
        if let Some(tree) = pe::chain(rest, &and) {
            out.push(ExprMutant::new(
                Operator::DropConjunct,
                k + 1,
                n,
                pe::unparen(tree),
            ));
        }
    }
    out
}

/// Every AND of the chain `a AND b AND …` becomes OR.
fn or_spine(e: &mut sql::Expr) {
    match e {
        sql::Expr::Nested(inner) => or_spine(inner),
        sql::Expr::BinaryOp { left, op, .. } if *op == sql::BinaryOperator::And => {
            *op = sql::BinaryOperator::Or;
            or_spine(left);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mutants(text: &str, table: &str) -> Vec<(String, String)> {
        super::mutants(&Expr::parse(text).unwrap(), table)
            .into_iter()
            .map(|m| {
                (
                    format!("{}{}", m.operator.name(), m.occurrence),
                    m.expr.deparse().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn each_correlation_of_a_subquery_is_dropped_in_turn() {
        let m = mutants(
            "(EXISTS ( SELECT 1 FROM public.project_members m WHERE ((m.project_id = tasks.project_id) AND (m.user_id = public.requesting_user_id()) AND (m.org = tasks.org))))",
            "tasks",
        );
        let drops: Vec<&(String, String)> = m
            .iter()
            .filter(|(op, _)| op.starts_with("drop_correlation"))
            .collect();
        assert_eq!(drops.len(), 2, "{m:#?}");
        assert_eq!(drops[0].0, "drop_correlation.1");
        assert!(
            !drops[0].1.contains("m.project_id = tasks.project_id"),
            "{}",
            drops[0].1
        );
        assert!(drops[0].1.contains("m.org = tasks.org"), "{}", drops[0].1);
        assert!(!drops[1].1.contains("m.org = tasks.org"), "{}", drops[1].1);
        assert!(
            drops[1].1.contains("requesting_user_id()"),
            "{}",
            drops[1].1
        );

        let m = mutants(
            "(project_id IN ( SELECT m.project_id FROM public.project_members m WHERE (m.user_id = public.requesting_user_id())))",
            "tasks",
        );
        let (op, sql) = &m[0];
        assert_eq!(op, "drop_correlation");
        assert!(sql.starts_with("EXISTS (SELECT m.project_id"), "{sql}");
        // A subquery over the policy's own table is not correlated by its name.
        let m = mutants(
            "(EXISTS ( SELECT 1 FROM public.tasks t WHERE (t.id = tasks.id)))",
            "t",
        );
        assert!(m.is_empty(), "{m:?}");
    }

    #[test]
    fn the_caller_id_is_replaced_and_compared_loosely() {
        let m = mutants(
            "((user_id = ( SELECT public.requesting_user_id() AS requesting_user_id)) AND (NOT archived))",
            "todos",
        );
        let ops: Vec<&str> = m.iter().map(|(op, _)| op.as_str()).collect();
        assert_eq!(
            ops,
            [
                "caller_constant",
                "caller_claim",
                "loose_ilike",
                "loose_lower",
                "loose_prefix",
                "and_to_or",
                "drop_conjunct.1",
                "drop_conjunct.2"
            ]
        );
        assert!(
            m[0].1.contains("'user_2MutantConstantCallerIdXXXX'"),
            "{}",
            m[0].1
        );
        assert!(m[1].1.contains("->> 'email'"), "{}", m[1].1);
        assert!(m[2].1.contains("ILIKE"), "{}", m[2].1);
        assert!(
            m[3].1
                .to_lowercase()
                .contains("lower(user_id::text) = lower("),
            "{}",
            m[3].1
        );
        assert!(m[4].1.contains("LIKE"), "{}", m[4].1);
        assert!(m[5].1.contains(" OR "), "{}", m[5].1);
        assert_eq!(m[6].1, "NOT archived");
        assert!(m[7].1.starts_with("user_id = (SELECT"), "{}", m[7].1);

        // auth.uid() is a uuid: its constant is one; claims are ids, not emails.
        let m = mutants("(owner = auth.uid())", "notes");
        assert!(m[0].1.contains("::uuid"), "{m:?}");
        assert!(!m.iter().any(|(op, _)| op == "caller_claim"), "{m:?}");
        // The claims read directly.
        let m = mutants(
            "(user_id = (current_setting('request.jwt.claims', true)::json ->> 'sub'))",
            "todos",
        );
        assert_eq!(m[0].0, "caller_constant");
        assert!(!m[0].1.contains("'sub'"), "{}", m[0].1);
        // Loosened, the claim keeps its parentheses (`->>` under `::text`).
        let lower = m.iter().find(|(op, _)| op == "loose_lower").unwrap();
        assert!(lower.1.contains("->> 'sub')"), "{}", lower.1);
    }

    #[test]
    fn and_to_or_turns_every_conjunction_of_the_top() {
        let m = mutants("((a = 1) AND (b = 2) AND (c OR d))", "t");
        assert_eq!(m.len(), 4);
        assert_eq!(m[0].1, "(a = 1) OR (b = 2) OR (c OR d)");
        assert_eq!(m[1].1, "(b = 2) AND (c OR d)");
        assert_eq!(m[3].1, "(a = 1) AND (b = 2)");
    }
}
