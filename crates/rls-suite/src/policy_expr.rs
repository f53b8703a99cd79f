//! Policy expressions as Postgres parses them: `pg_get_expr` text is parsed by Postgres's own
//! parser (libpg_query, through `pg_query`) as `SELECT <expr>`, mutated as a tree and deparsed —
//! never edited as text. Also splits a predicate into its top-level branches (for coverage).

use pg_query::NodeEnum;
use pg_query::protobuf::{
    self, AExprKind, BoolExprType, Node, ResTarget, SelectStmt, SubLinkType, a_const,
};

/// Why an expression could not be parsed or printed back.
#[derive(Debug, thiserror::Error)]
pub enum ExprError {
    #[error("Postgres's parser refuses it: {0}")]
    Parse(#[source] pg_query::Error),
    #[error("it is not a single expression")]
    NotAnExpression,
    #[error("it cannot be printed back as SQL: {0}")]
    Deparse(#[source] pg_query::Error),
}

/// A parsed expression (the tree of `SELECT <expr>`'s one target).
#[derive(Debug, Clone, PartialEq)]
pub struct Expr(Node);

impl Expr {
    /// Parses one SQL expression, as `pg_get_expr` prints a policy's USING or WITH CHECK.
    pub fn parse(text: &str) -> Result<Self, ExprError> {
        let parsed = pg_query::parse(&format!("SELECT {text}"), 0).map_err(ExprError::Parse)?;
        let [raw] = parsed.protobuf.stmts.as_slice() else {
            return Err(ExprError::NotAnExpression);
        };
        let Some(NodeEnum::SelectStmt(select)) = raw.stmt.as_ref().and_then(|s| s.node.as_ref())
        else {
            return Err(ExprError::NotAnExpression);
        };
        if !select.from_clause.is_empty() || select.where_clause.is_some() {
            return Err(ExprError::NotAnExpression);
        }
        let [target] = select.target_list.as_slice() else {
            return Err(ExprError::NotAnExpression);
        };
        match &target.node {
            Some(NodeEnum::ResTarget(rt)) if rt.name.is_empty() => rt
                .val
                .as_deref()
                .cloned()
                .map(Expr)
                .ok_or(ExprError::NotAnExpression),
            _ => Err(ExprError::NotAnExpression),
        }
    }

    /// The expression as SQL (Postgres's deparser).
    pub fn deparse(&self) -> Result<String, ExprError> {
        let select = SelectStmt {
            target_list: vec![node(NodeEnum::ResTarget(Box::new(ResTarget {
                val: Some(Box::new(self.0.clone())),
                ..Default::default()
            })))],
            limit_option: protobuf::LimitOption::Default as i32,
            op: protobuf::SetOperation::SetopNone as i32,
            ..Default::default()
        };
        let tree = protobuf::ParseResult {
            version: PG_VERSION_NUM,
            stmts: vec![protobuf::RawStmt {
                stmt: Some(Box::new(node(NodeEnum::SelectStmt(Box::new(select))))),
                stmt_location: 0,
                stmt_len: 0,
            }],
        };
        let text = pg_query::deparse(&tree, Default::default()).map_err(ExprError::Deparse)?;
        Ok(text
            .strip_prefix("SELECT ")
            .map_or(text.clone(), str::to_owned))
    }

    /// The top-level branches: the arms of a top-level OR (or AND), else none.
    pub fn branches(&self) -> (Option<&'static str>, Vec<Expr>) {
        match &self.0.node {
            Some(NodeEnum::BoolExpr(b)) if b.boolop == BoolExprType::OrExpr as i32 => {
                (Some("or"), b.args.iter().cloned().map(Expr).collect())
            }
            Some(NodeEnum::BoolExpr(b)) if b.boolop == BoolExprType::AndExpr as i32 => {
                (Some("and"), b.args.iter().cloned().map(Expr).collect())
            }
            _ => (None, Vec::new()),
        }
    }

    /// The names (schema, name) of the `requesting_user_id()` functions it calls.
    pub fn caller_functions(&self) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        let is_call = |n: &Node| match &n.node {
            Some(NodeEnum::FuncCall(f)) => {
                name_parts(&f.funcname).last() == Some(&"requesting_user_id")
            }
            _ => false,
        };
        for_each_match(&mut self.0.clone(), &is_call, &mut |n| {
            if let Some(NodeEnum::FuncCall(f)) = &n.node {
                let parts: Vec<String> = name_parts(&f.funcname)
                    .into_iter()
                    .map(str::to_owned)
                    .collect();
                if !out.contains(&parts) {
                    out.push(parts);
                }
            }
        });
        out
    }

    /// Every expression-level mutant of this predicate of a policy on `table` (the name
    /// `pg_get_expr` qualifies the policy's own row with inside subqueries).
    pub fn mutants(&self, table: &str) -> Vec<ExprMutant> {
        let mut out = Vec::new();
        // Correlations of EXISTS / IN subqueries with the outer row.
        let mut sites: Vec<Vec<Correlation>> = Vec::new();
        for_each_match(&mut self.0.clone(), &|n| is_subquery_test(n), &mut |n| {
            sites.push(correlations(n, table));
        });
        let total: usize = sites.iter().map(Vec::len).sum();
        let mut k = 0;
        for (site, found) in sites.iter().enumerate() {
            for c in found {
                k += 1;
                let mut root = self.0.clone();
                let mut seen = 0;
                let c = c.clone();
                for_each_match(&mut root, &|n| is_subquery_test(n), &mut |n| {
                    if seen == site {
                        drop_correlation(n, &c);
                    }
                    seen += 1;
                });
                out.push(ExprMutant::new("drop_correlation", k, total, root));
            }
        }
        // The caller-id expression: a constant, another claim.
        let callers = count(&self.0, &is_caller_id);
        for k in 0..callers {
            let mut uuid = false;
            let constant = rewrite_nth(&self.0, &is_caller_id, k, &mut |n| {
                uuid = mentions_uid(n);
                *n = template(if uuid {
                    "'00000000-0000-4000-8000-00000000000a'::uuid"
                } else {
                    "'user_2MutantConstantCallerIdXXXX'::text"
                });
            });
            out.push(ExprMutant::new("caller_constant", k + 1, callers, constant));
            if !uuid {
                let claim = rewrite_nth(&self.0, &is_caller_id, k, &mut |n| {
                    *n = template(
                        "nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'email'",
                    );
                });
                out.push(ExprMutant::new("caller_claim", k + 1, callers, claim));
            }
        }
        // The caller id compared loosely.
        let compares = count(&self.0, &is_caller_compare);
        for k in 0..compares {
            for (operator, shape) in [
                ("loose_ilike", Loose::Ilike),
                ("loose_lower", Loose::Lower),
                ("loose_prefix", Loose::Prefix),
            ] {
                let root = rewrite_nth(&self.0, &is_caller_compare, k, &mut |n| loosen(n, shape));
                out.push(ExprMutant::new(operator, k + 1, compares, root));
            }
        }
        // AND → OR at the top.
        if let Some(NodeEnum::BoolExpr(b)) = &self.0.node
            && b.boolop == BoolExprType::AndExpr as i32
        {
            let mut root = self.0.clone();
            if let Some(NodeEnum::BoolExpr(b)) = &mut root.node {
                b.boolop = BoolExprType::OrExpr as i32;
            }
            out.push(ExprMutant::new("and_to_or", 1, 1, root));
        }
        out
    }
}

/// One mutated predicate: the operator, which occurrence (`1` when it is the only one), and
/// the tree.
#[derive(Debug, Clone)]
pub struct ExprMutant {
    pub operator: &'static str,
    /// `.<n>` when the operator applies at more than one place, else empty.
    pub occurrence: String,
    pub expr: Expr,
}

impl ExprMutant {
    fn new(operator: &'static str, n: usize, of: usize, root: Node) -> Self {
        Self {
            operator,
            occurrence: if of > 1 {
                format!(".{n}")
            } else {
                String::new()
            },
            expr: Expr(root),
        }
    }
}

/// libpg_query's own Postgres version (what the tree's `version` field carries).
const PG_VERSION_NUM: i32 = 180_000;

fn node(n: NodeEnum) -> Node {
    Node { node: Some(n) }
}

/// A fixed expression, parsed by the same parser (the templates are constants of this module).
fn template(sql: &str) -> Node {
    Expr::parse(sql)
        .map(|e| e.0)
        .unwrap_or_else(|e| panic!("the template `{sql}` does not parse: {e}"))
}

// ---- walking the tree ----

/// The children of the node kinds a policy predicate is made of. Kinds not listed here are
/// not entered: an operator then finds fewer places to mutate, never a wrong one.
fn children(n: &mut Node) -> Vec<&mut Node> {
    let mut out: Vec<&mut Node> = Vec::new();
    let Some(kind) = n.node.as_mut() else {
        return out;
    };
    match kind {
        NodeEnum::BoolExpr(b) => out.extend(b.args.iter_mut()),
        NodeEnum::AExpr(a) => out.extend(
            a.lexpr
                .as_deref_mut()
                .into_iter()
                .chain(a.rexpr.as_deref_mut()),
        ),
        NodeEnum::FuncCall(f) => out.extend(f.args.iter_mut()),
        NodeEnum::SubLink(s) => out.extend(
            s.testexpr
                .as_deref_mut()
                .into_iter()
                .chain(s.subselect.as_deref_mut()),
        ),
        NodeEnum::SelectStmt(s) => {
            out.extend(s.target_list.iter_mut());
            out.extend(s.from_clause.iter_mut());
            out.extend(s.where_clause.as_deref_mut());
            out.extend(s.having_clause.as_deref_mut());
        }
        NodeEnum::ResTarget(r) => out.extend(r.val.as_deref_mut()),
        NodeEnum::TypeCast(t) => out.extend(t.arg.as_deref_mut()),
        NodeEnum::NullTest(t) => out.extend(t.arg.as_deref_mut()),
        NodeEnum::BooleanTest(t) => out.extend(t.arg.as_deref_mut()),
        NodeEnum::CoalesceExpr(c) => out.extend(c.args.iter_mut()),
        NodeEnum::MinMaxExpr(c) => out.extend(c.args.iter_mut()),
        NodeEnum::CaseExpr(c) => {
            out.extend(c.arg.as_deref_mut());
            out.extend(c.args.iter_mut());
            out.extend(c.defresult.as_deref_mut());
        }
        NodeEnum::CaseWhen(c) => out.extend(
            c.expr
                .as_deref_mut()
                .into_iter()
                .chain(c.result.as_deref_mut()),
        ),
        NodeEnum::RowExpr(r) => out.extend(r.args.iter_mut()),
        NodeEnum::AArrayExpr(a) => out.extend(a.elements.iter_mut()),
        NodeEnum::List(l) => out.extend(l.items.iter_mut()),
        NodeEnum::JoinExpr(j) => {
            out.extend(j.larg.as_deref_mut());
            out.extend(j.rarg.as_deref_mut());
            out.extend(j.quals.as_deref_mut());
        }
        NodeEnum::RangeSubselect(r) => out.extend(r.subquery.as_deref_mut()),
        NodeEnum::CollateClause(c) => out.extend(c.arg.as_deref_mut()),
        NodeEnum::NamedArgExpr(a) => out.extend(a.arg.as_deref_mut()),
        NodeEnum::AIndirection(a) => out.extend(a.arg.as_deref_mut()),
        _ => {}
    }
    out
}

/// Calls `f` on every node `pred` matches, in pre-order, without entering a match.
fn for_each_match(root: &mut Node, pred: &dyn Fn(&Node) -> bool, f: &mut dyn FnMut(&mut Node)) {
    if pred(root) {
        f(root);
        return;
    }
    for child in children(root) {
        for_each_match(child, pred, f);
    }
}

fn count(root: &Node, pred: &dyn Fn(&Node) -> bool) -> usize {
    let mut n = 0;
    for_each_match(&mut root.clone(), pred, &mut |_| n += 1);
    n
}

/// A copy of `root` with the `k`-th match (0-based, pre-order) rewritten by `f`.
fn rewrite_nth(
    root: &Node,
    pred: &dyn Fn(&Node) -> bool,
    k: usize,
    f: &mut dyn FnMut(&mut Node),
) -> Node {
    let mut out = root.clone();
    let mut seen = 0;
    for_each_match(&mut out, pred, &mut |n| {
        if seen == k {
            f(n);
        }
        seen += 1;
    });
    out
}

/// True when `pred` holds somewhere in `root` (entering every listed kind).
fn contains(root: &Node, pred: &dyn Fn(&Node) -> bool) -> bool {
    count(root, pred) > 0
}

fn name_parts(names: &[Node]) -> Vec<&str> {
    names
        .iter()
        .filter_map(|n| match &n.node {
            Some(NodeEnum::String(s)) => Some(s.sval.as_str()),
            _ => None,
        })
        .collect()
}

fn string_const(n: &Node) -> Option<&str> {
    match &n.node {
        Some(NodeEnum::AConst(c)) => match &c.val {
            Some(a_const::Val::Sval(s)) => Some(s.sval.as_str()),
            _ => None,
        },
        Some(NodeEnum::TypeCast(t)) => t.arg.as_deref().and_then(string_const),
        _ => None,
    }
}

// ---- the caller's id ----

/// `requesting_user_id()`, `auth.uid()`, `(select <one of them>)`, `<claims> ->> 'sub'`,
/// `current_setting('request.jwt.claim.sub', …)`: an expression that is the caller's id.
pub fn is_caller_id(n: &Node) -> bool {
    match &n.node {
        Some(NodeEnum::FuncCall(f)) => {
            let name = name_parts(&f.funcname);
            match name.as_slice() {
                [.., "requesting_user_id"] => f.args.is_empty(),
                ["auth", "uid"] | ["uid"] => f.args.is_empty(),
                [.., "current_setting"] => f
                    .args
                    .first()
                    .and_then(string_const)
                    .is_some_and(|s| s == "request.jwt.claim.sub"),
                _ => false,
            }
        }
        Some(NodeEnum::AExpr(a)) => {
            a.kind == AExprKind::AexprOp as i32
                && name_parts(&a.name).last() == Some(&"->>")
                && a.rexpr.as_deref().and_then(string_const) == Some("sub")
        }
        Some(NodeEnum::SubLink(s)) if s.sub_link_type == SubLinkType::ExprSublink as i32 => {
            match s.subselect.as_deref().and_then(|n| n.node.as_ref()) {
                Some(NodeEnum::SelectStmt(sel))
                    if sel.from_clause.is_empty() && sel.target_list.len() == 1 =>
                {
                    match &sel.target_list[0].node {
                        Some(NodeEnum::ResTarget(rt)) => {
                            rt.val.as_deref().is_some_and(is_caller_id)
                        }
                        _ => false,
                    }
                }
                _ => false,
            }
        }
        Some(NodeEnum::TypeCast(t)) => t.arg.as_deref().is_some_and(is_caller_id),
        _ => false,
    }
}

fn mentions_uid(n: &Node) -> bool {
    contains(n, &|n| match &n.node {
        Some(NodeEnum::FuncCall(f)) => {
            matches!(
                name_parts(&f.funcname).as_slice(),
                ["auth", "uid"] | ["uid"]
            )
        }
        _ => false,
    })
}

/// `a = b` where one side is (or contains) the caller's id.
fn is_caller_compare(n: &Node) -> bool {
    match &n.node {
        Some(NodeEnum::AExpr(a)) => {
            a.kind == AExprKind::AexprOp as i32
                && name_parts(&a.name).last() == Some(&"=")
                && [&a.lexpr, &a.rexpr]
                    .iter()
                    .any(|side| side.as_deref().is_some_and(|s| contains(s, &is_caller_id)))
        }
        _ => false,
    }
}

#[derive(Debug, Clone, Copy)]
enum Loose {
    Ilike,
    Lower,
    Prefix,
}

/// Rewrites a caller-id equality into a loose comparison.
fn loosen(n: &mut Node, shape: Loose) {
    let Some(NodeEnum::AExpr(a)) = &n.node else {
        return;
    };
    let (Some(l), Some(r)) = (a.lexpr.as_deref().cloned(), a.rexpr.as_deref().cloned()) else {
        return;
    };
    // The caller's side, and the other (the row's column, usually).
    let (caller, other) = if contains(&r, &is_caller_id) {
        (r, l)
    } else {
        (l, r)
    };
    let sql = match shape {
        Loose::Ilike => "__row::text ilike __caller::text",
        Loose::Lower => "lower(__row::text) = lower(__caller::text)",
        Loose::Prefix => "__row::text like __caller::text || '%'",
    };
    let mut out = template(sql);
    fill(&mut out, "__row", &other);
    fill(&mut out, "__caller", &caller);
    *n = out;
}

/// Replaces the column reference `hole` in a template by `with`.
fn fill(root: &mut Node, hole: &str, with: &Node) {
    let is_hole = |n: &Node| match &n.node {
        Some(NodeEnum::ColumnRef(c)) => name_parts(&c.fields) == [hole],
        _ => false,
    };
    for_each_match(root, &is_hole, &mut |n| *n = with.clone());
}

// ---- subquery correlations ----

fn is_subquery_test(n: &Node) -> bool {
    match &n.node {
        Some(NodeEnum::SubLink(s)) => {
            s.sub_link_type == SubLinkType::ExistsSublink as i32
                || s.sub_link_type == SubLinkType::AnySublink as i32
        }
        _ => false,
    }
}

/// One way an EXISTS / IN subquery ties itself to the outer row.
#[derive(Debug, Clone)]
enum Correlation {
    /// The `k`-th top-level conjunct of its WHERE.
    Conjunct(usize),
    /// `x IN (select …)`: the outer `x` (the subquery then tests for any row: EXISTS).
    InTest,
}

/// The names the subquery's own FROM items go by.
fn from_names(select: &SelectStmt) -> Vec<String> {
    let mut names = Vec::new();
    let mut stack: Vec<&Node> = select.from_clause.iter().collect();
    while let Some(n) = stack.pop() {
        match &n.node {
            Some(NodeEnum::RangeVar(r)) => names.push(
                r.alias
                    .as_ref()
                    .map_or(r.relname.clone(), |a| a.aliasname.clone()),
            ),
            Some(NodeEnum::JoinExpr(j)) => {
                stack.extend(j.larg.as_deref().into_iter().chain(j.rarg.as_deref()))
            }
            Some(NodeEnum::RangeSubselect(r)) => {
                names.extend(r.alias.as_ref().map(|a| a.aliasname.clone()))
            }
            Some(NodeEnum::RangeFunction(r)) => {
                names.extend(r.alias.as_ref().map(|a| a.aliasname.clone()))
            }
            _ => {}
        }
    }
    names
}

fn conjuncts(n: &Node) -> Vec<&Node> {
    match &n.node {
        Some(NodeEnum::BoolExpr(b)) if b.boolop == BoolExprType::AndExpr as i32 => {
            b.args.iter().collect()
        }
        _ => vec![n],
    }
}

/// The correlations with the outer row (columns qualified by `table`, which the subquery's
/// own FROM items do not shadow) of an EXISTS / IN sublink.
fn correlations(n: &Node, table: &str) -> Vec<Correlation> {
    let Some(NodeEnum::SubLink(s)) = &n.node else {
        return Vec::new();
    };
    let Some(NodeEnum::SelectStmt(select)) = s.subselect.as_deref().and_then(|n| n.node.as_ref())
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if s.sub_link_type == SubLinkType::AnySublink as i32 && s.testexpr.is_some() {
        out.push(Correlation::InTest);
    }
    if from_names(select).iter().any(|n| n == table) {
        return out;
    }
    let outer = |n: &Node| match &n.node {
        Some(NodeEnum::ColumnRef(c)) => {
            let parts = name_parts(&c.fields);
            parts.len() >= 2 && parts[parts.len() - 2] == table
        }
        _ => false,
    };
    if let Some(w) = select.where_clause.as_deref() {
        for (k, c) in conjuncts(w).into_iter().enumerate() {
            if contains(c, &outer) {
                out.push(Correlation::Conjunct(k));
            }
        }
    }
    out
}

fn drop_correlation(n: &mut Node, c: &Correlation) {
    let Some(NodeEnum::SubLink(s)) = &mut n.node else {
        return;
    };
    match c {
        Correlation::InTest => {
            s.sub_link_type = SubLinkType::ExistsSublink as i32;
            s.testexpr = None;
            s.oper_name.clear();
        }
        Correlation::Conjunct(k) => {
            let Some(NodeEnum::SelectStmt(select)) =
                s.subselect.as_deref_mut().and_then(|n| n.node.as_mut())
            else {
                return;
            };
            let Some(w) = select.where_clause.as_deref_mut() else {
                return;
            };
            match &mut w.node {
                Some(NodeEnum::BoolExpr(b))
                    if b.boolop == BoolExprType::AndExpr as i32 && b.args.len() > 1 =>
                {
                    b.args.remove(*k);
                    if b.args.len() == 1 {
                        let only = b.args.remove(0);
                        *w = only;
                    }
                }
                _ => select.where_clause = None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mutants(sql: &str, table: &str) -> Vec<(String, String)> {
        Expr::parse(sql)
            .unwrap()
            .mutants(table)
            .into_iter()
            .map(|m| {
                (
                    format!("{}{}", m.operator, m.occurrence),
                    m.expr.deparse().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn a_policy_expression_survives_a_round_trip() {
        for sql in [
            "(owner_id = ( SELECT public.requesting_user_id() AS requesting_user_id))",
            "((owner_id = ( SELECT public.requesting_user_id() AS requesting_user_id)) OR (public.project_role(id) IS NOT NULL))",
            "(EXISTS ( SELECT 1 FROM public.project_members m WHERE ((m.project_id = tasks.project_id) AND (m.user_id = auth.uid()::text))))",
        ] {
            let e = Expr::parse(sql).unwrap();
            let again = Expr::parse(&e.deparse().unwrap()).unwrap();
            assert_eq!(e.deparse().unwrap(), again.deparse().unwrap());
        }
        assert!(Expr::parse("1; drop table x").is_err());
        assert!(Expr::parse("a from t").is_err());
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
                "and_to_or"
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
            m[3].1.contains("lower(user_id::text) = lower("),
            "{}",
            m[3].1
        );
        assert!(m[4].1.contains("LIKE"), "{}", m[4].1);
        assert!(m[5].1.contains(" OR "), "{}", m[5].1);

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
    }

    #[test]
    fn branches_are_the_top_level_arms() {
        let e = Expr::parse("((a = 1) OR (b IS NOT NULL) OR c)").unwrap();
        let (op, arms) = e.branches();
        assert_eq!(op, Some("or"));
        assert_eq!(arms.len(), 3);
        assert_eq!(arms[1].deparse().unwrap(), "b IS NOT NULL");
        assert_eq!(Expr::parse("true").unwrap().branches().1.len(), 0);
    }
}
