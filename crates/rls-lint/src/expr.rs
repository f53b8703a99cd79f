//! Policy expressions, column defaults and SQL function bodies as trees: the text is parsed by
//! `sqlparser` (its PostgreSQL dialect, the parser the suite's mutants use) and the analysis
//! reads the tree: calls with their arguments, comparisons with their two sides, subqueries
//! with what they contain. A policy text the parser refuses is reported by the caller, never
//! guessed at (see `policy.unparsed`). PL/pgSQL bodies are read by `sql.rs` instead: it is not
//! SQL the parser knows (see docs/lint.md, "How the lint reads SQL").

use std::ops::ControlFlow;

use sqlparser::ast::{
    self as sql, BinaryOperator, FunctionArg, FunctionArgExpr, FunctionArguments, Visit, VisitMut,
    Visitor, VisitorMut,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

pub(crate) use sqlparser::ast::Expr;

/// Parses one expression; the error says why the parser refused it.
pub(crate) fn parse(text: &str) -> Result<Expr, String> {
    let dialect = PostgreSqlDialect {};
    let tokens = Tokenizer::new(&dialect, text)
        .tokenize_with_location()
        .map_err(|e| e.to_string())?;
    let mut parser = Parser::new(&dialect).with_tokens_with_locations(unfold_variadic(tokens));
    let expr = parser.parse_expr().map_err(|e| e.to_string())?;
    let next = parser.peek_token().token;
    if next != Token::EOF {
        return Err(format!("not one expression: `{next}` follows it"));
    }
    Ok(expr)
}

/// `f(a, VARIADIC ARRAY[b, c])` — how `pg_get_expr` prints every call of a variadic function
/// such as `jsonb_extract_path_text(claims, 'sub')` — as the call it means, `f(a, b, c)`:
/// sqlparser has no `VARIADIC`. Only a non-empty `ARRAY[…]` directly before the call's `)` is
/// unfolded; any other `VARIADIC` is left for the parser to refuse.
fn unfold_variadic(mut tokens: Vec<TokenWithSpan>) -> Vec<TokenWithSpan> {
    let significant: Vec<usize> = (0..tokens.len())
        .filter(|&i| !matches!(tokens[i].token, Token::Whitespace(_)))
        .collect();
    let word = |i: usize, w: &str| matches!(&tokens[i].token, Token::Word(x) if x.quote_style.is_none() && x.value.eq_ignore_ascii_case(w));
    let mut drop = Vec::new();
    for (n, &i) in significant.iter().enumerate() {
        let (Some(&array), Some(&open)) = (significant.get(n + 1), significant.get(n + 2)) else {
            continue;
        };
        if !(word(i, "variadic") && word(array, "array") && tokens[open].token == Token::LBracket) {
            continue;
        }
        let mut depth = 0usize;
        let close = significant[n + 2..].iter().position(|&j| {
            match tokens[j].token {
                Token::LBracket => depth += 1,
                Token::RBracket => depth -= 1,
                _ => {}
            }
            depth == 0
        });
        let Some(close) = close.map(|c| n + 2 + c) else {
            continue;
        };
        let empty = close == n + 3;
        let ends_call = significant
            .get(close + 1)
            .is_some_and(|&j| tokens[j].token == Token::RParen);
        if !empty && ends_call {
            drop.extend([i, array, open, significant[close]]);
        }
    }
    drop.sort_unstable();
    drop.dedup();
    for i in drop.into_iter().rev() {
        tokens.remove(i);
    }
    tokens
}

/// Parses a SQL function body (one or more statements).
pub(crate) fn parse_body(text: &str) -> Result<Vec<sql::Statement>, String> {
    Parser::parse_sql(&PostgreSqlDialect {}, text).map_err(|e| e.to_string())
}

/// The relations (tables, views) a tree reads or writes, as name parts, folded.
pub(crate) fn relations<V: Visit>(tree: &V) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let _ = sqlparser::ast::visit_relations(tree, |name| {
        out.push(name_parts(name));
        ControlFlow::<()>::Continue(())
    });
    out
}

/// An identifier as Postgres reads it: folded to lower case unless quoted.
pub(crate) fn ident(i: &sql::Ident) -> String {
    if i.quote_style.is_some() {
        i.value.clone()
    } else {
        i.value.to_lowercase()
    }
}

/// The name parts of a function or type name, folded.
fn name_parts(name: &sql::ObjectName) -> Vec<String> {
    name.0
        .iter()
        .map(|part| match part {
            sql::ObjectNamePart::Identifier(i) => ident(i),
            other => other.to_string().to_lowercase(),
        })
        .collect()
}

/// `e` without enclosing parentheses.
pub(crate) fn unparen(mut e: &Expr) -> &Expr {
    while let Expr::Nested(inner) = e {
        e = inner;
    }
    e
}

/// `e` without enclosing parentheses and casts: `((user_id))::text` → `user_id`.
pub(crate) fn strip(mut e: &Expr) -> &Expr {
    loop {
        match e {
            Expr::Nested(inner) => e = inner,
            Expr::Cast { expr, .. } => e = expr,
            _ => return e,
        }
    }
}

/// A type name as Postgres spells it, lower case, without `pg_catalog.` or a length:
/// `character varying`, `jsonb`, `uuid`, `public.mood`.
pub(crate) fn type_name(t: &sql::DataType) -> String {
    let mut name = match t {
        sql::DataType::Custom(name, _) => name_parts(name).join("."),
        other => other.to_string().to_lowercase(),
    };
    if let Some(open) = name.find('(') {
        name.truncate(open);
    }
    let name = name.trim();
    name.strip_prefix("pg_catalog.").unwrap_or(name).to_owned()
}

/// Types a claims text can be cast to without error on `''`.
pub(crate) fn is_text_type(name: &str) -> bool {
    matches!(
        name,
        "text" | "varchar" | "character varying" | "name" | "bpchar" | "character" | "char"
    )
}

/// Names that read as a column but are values: the database role and the clock.
const VALUE_NAMES: &[&str] = &[
    "current_user",
    "session_user",
    "current_role",
    "user",
    "current_date",
    "current_timestamp",
    "localtime",
    "localtimestamp",
];

/// The database role, as SQL spells it without parentheses (`USER` is printed back as
/// `CURRENT_USER` by `pg_get_expr`).
const ROLE_NAMES: &[&str] = &["current_user", "session_user", "current_role"];

/// `e` is `current_user`, `session_user` or `current_role` (casts and parentheses aside).
pub(crate) fn is_role_word(e: &Expr) -> bool {
    match strip(e) {
        Expr::Identifier(i) => i.quote_style.is_none() && ROLE_NAMES.contains(&ident(i).as_str()),
        Expr::Function(f) => {
            matches!(f.args, FunctionArguments::None)
                && f.name.0.len() == 1
                && ROLE_NAMES.contains(&name_parts(&f.name)[0].as_str())
        }
        _ => false,
    }
}

/// `Some((qualifier, column))` when `e` is a bare column reference (casts aside).
pub(crate) fn column_ref(e: &Expr) -> Option<(Option<String>, String)> {
    match strip(e) {
        Expr::Identifier(i) => (i.quote_style.is_some()
            || !VALUE_NAMES.contains(&ident(i).as_str()))
        .then(|| (None, ident(i))),
        Expr::CompoundIdentifier(parts) if (2..=3).contains(&parts.len()) => {
            let n = parts.len();
            Some((Some(ident(&parts[n - 2])), ident(&parts[n - 1])))
        }
        _ => None,
    }
}

/// The string literal `e` is (`'x'::text` included).
pub(crate) fn literal(e: &Expr) -> Option<&str> {
    match strip(e) {
        Expr::Value(v) => match &v.value {
            sql::Value::SingleQuotedString(s)
            | sql::Value::EscapedStringLiteral(s)
            | sql::Value::DollarQuotedString(sql::DollarQuotedString { value: s, .. }) => Some(s),
            _ => None,
        },
        _ => None,
    }
}

/// The boolean literal `e` is.
pub(crate) fn boolean(e: &Expr) -> Option<bool> {
    match strip(e) {
        Expr::Value(v) => match v.value {
            sql::Value::Boolean(b) => Some(b),
            _ => None,
        },
        _ => None,
    }
}

/// The arms of a top-level OR (through parentheses), else `[e]`.
pub(crate) fn disjuncts(e: &Expr) -> Vec<&Expr> {
    match unparen(e) {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Or,
            right,
        } => {
            let mut out = disjuncts(left);
            out.extend(disjuncts(right));
            out
        }
        other => vec![other],
    }
}

/// The JSON access operator `op` is (`->`, `->>`, `#>`, `#>>`, or `OPERATOR(pg_catalog.->>)`).
pub(crate) fn json_op(op: &BinaryOperator) -> Option<&str> {
    match op {
        BinaryOperator::Arrow => Some("->"),
        BinaryOperator::LongArrow => Some("->>"),
        BinaryOperator::HashArrow => Some("#>"),
        BinaryOperator::HashLongArrow => Some("#>>"),
        BinaryOperator::PGCustomBinaryOperator(parts) => parts
            .last()
            .map(String::as_str)
            .filter(|o| matches!(*o, "->" | "->>" | "#>" | "#>>")),
        _ => None,
    }
}

/// Whether `e` is, casts and parentheses aside, a JSON access.
pub(crate) fn is_json_access(e: &Expr) -> bool {
    matches!(strip(e), Expr::BinaryOp { op, .. } if json_op(op).is_some())
}

/// A comparison of two values: `=`, `<>` or a pattern match (`LIKE`/`~~`, `ILIKE`/`~~*`,
/// `~`, `~*` and their negations).
pub(crate) struct Compare<'e> {
    pub left: &'e Expr,
    pub right: &'e Expr,
    pub equals: bool,
    pub pattern: bool,
}

pub(crate) fn compare(e: &Expr) -> Option<Compare<'_>> {
    match e {
        Expr::BinaryOp { left, op, right } => {
            let (equals, pattern) = match op {
                BinaryOperator::Eq => (true, false),
                BinaryOperator::NotEq => (false, false),
                BinaryOperator::PGLikeMatch
                | BinaryOperator::PGILikeMatch
                | BinaryOperator::PGNotLikeMatch
                | BinaryOperator::PGNotILikeMatch
                | BinaryOperator::PGRegexMatch
                | BinaryOperator::PGRegexIMatch
                | BinaryOperator::PGRegexNotMatch
                | BinaryOperator::PGRegexNotIMatch => (false, true),
                _ => return None,
            };
            Some(Compare {
                left,
                right,
                equals,
                pattern,
            })
        }
        Expr::Like { expr, pattern, .. } | Expr::ILike { expr, pattern, .. } => Some(Compare {
            left: expr,
            right: pattern,
            equals: false,
            pattern: true,
        }),
        _ => None,
    }
}

/// A function call in a tree.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    /// Name parts, folded: `["public", "requesting_user_id"]` or `["current_setting"]`.
    pub name: Vec<String>,
    /// The positional arguments.
    pub args: Vec<Expr>,
    /// Inside a subquery (`(SELECT …)`, `EXISTS`, `IN (SELECT …)`): Postgres runs a scalar
    /// subquery that does not depend on the row once per statement.
    pub in_subquery: bool,
    /// The call as SQL.
    pub expr: Expr,
}

impl Call {
    fn of(f: &sql::Function, in_subquery: bool) -> Self {
        let args = match &f.args {
            FunctionArguments::List(list) => list
                .args
                .iter()
                .filter_map(|a| match a {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(e))
                    | FunctionArg::Named {
                        arg: FunctionArgExpr::Expr(e),
                        ..
                    }
                    | FunctionArg::ExprNamed {
                        arg: FunctionArgExpr::Expr(e),
                        ..
                    } => Some(e.clone()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        Self {
            name: name_parts(&f.name),
            args,
            in_subquery,
            expr: Expr::Function(f.clone()),
        }
    }

    /// The unqualified function name.
    pub(crate) fn base_name(&self) -> &str {
        self.name.last().map_or("", String::as_str)
    }

    /// The schema it was qualified with, if any.
    pub(crate) fn schema(&self) -> Option<&str> {
        (self.name.len() > 1).then(|| self.name[self.name.len() - 2].as_str())
    }

    pub(crate) fn display(&self) -> String {
        format!("{}()", self.name.join("."))
    }

    /// `current_setting(…)` of Postgres.
    pub(crate) fn is_current_setting(&self) -> bool {
        self.base_name() == "current_setting" && self.schema().is_none_or(|s| s == "pg_catalog")
    }

    /// The literal setting name a `current_setting(…)` call reads.
    pub(crate) fn setting_name(&self) -> Option<&str> {
        literal(self.args.first()?)
    }

    /// A call of a built-in with this name (`lower`, `coalesce`).
    pub(crate) fn is_builtin(&self, name: &str) -> bool {
        self.base_name() == name && self.schema().is_none_or(|s| s == "pg_catalog")
    }

    /// A call that does not exist as a function: `current_user` and its kin.
    fn is_role_word(&self) -> bool {
        is_role_word(&self.expr)
    }
}

/// Calls `f` on every expression in `tree`, subqueries included, with whether it sits inside
/// a subquery.
pub(crate) fn walk<V: Visit + ?Sized>(tree: &V, f: &mut dyn FnMut(&Expr, bool)) {
    struct Walker<'f> {
        f: &'f mut dyn FnMut(&Expr, bool),
        depth: usize,
    }
    impl Visitor for Walker<'_> {
        type Break = ();
        fn pre_visit_query(&mut self, _: &sql::Query) -> ControlFlow<()> {
            self.depth += 1;
            ControlFlow::Continue(())
        }
        fn post_visit_query(&mut self, _: &sql::Query) -> ControlFlow<()> {
            self.depth -= 1;
            ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            (self.f)(e, self.depth > 0);
            ControlFlow::Continue(())
        }
    }
    let _ = tree.visit(&mut Walker { f, depth: 0 });
}

/// Every function call in `tree` (not `current_user` and its kin), outermost first.
pub(crate) fn calls<V: Visit + ?Sized>(tree: &V) -> Vec<Call> {
    let mut out = Vec::new();
    walk(tree, &mut |e, in_subquery| {
        if let Expr::Function(f) = e {
            let call = Call::of(f, in_subquery);
            if !call.is_role_word() {
                out.push(call);
            }
        }
    });
    out
}

/// Whether `tree` names a column anywhere (a value that depends on the row, or on a table the
/// subquery reads).
pub(crate) fn mentions_column<V: Visit + ?Sized>(tree: &V) -> bool {
    let mut found = false;
    walk(tree, &mut |e, _| {
        found |= match e {
            Expr::Identifier(_) | Expr::CompoundIdentifier(_) => column_ref(e).is_some(),
            _ => false,
        };
    });
    found
}

/// Every identifier `tree` names (columns and their qualifiers), folded.
pub(crate) fn identifiers<V: Visit + ?Sized>(tree: &V) -> Vec<String> {
    let mut out = Vec::new();
    walk(tree, &mut |e, _| match e {
        Expr::Identifier(i) => out.push(ident(i)),
        Expr::CompoundIdentifier(parts) => out.extend(parts.iter().map(ident)),
        _ => {}
    });
    out
}

/// Whether `tree` casts something to `type_name`.
pub(crate) fn casts_to<V: Visit + ?Sized>(tree: &V, name: &str) -> bool {
    let mut found = false;
    walk(tree, &mut |e, _| {
        if let Expr::Cast { data_type, .. } = e {
            found |= type_name(data_type) == name;
        }
    });
    found
}

/// `e` as SQL, built-in type names in lower case as Postgres prints them (`::text`, where
/// sqlparser prints `::TEXT`).
pub(crate) fn print(e: &Expr) -> String {
    struct LowerCaseTypes;
    impl VisitorMut for LowerCaseTypes {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            if let Expr::Cast { data_type, .. } = e
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
    let mut e = e.clone();
    let _ = VisitMut::visit(&mut e, &mut LowerCaseTypes);
    e.to_string()
}

/// `e` as SQL ([`print`]), shortened past 160 characters: for naming a piece of a policy in a
/// finding.
pub(crate) fn shown(e: &Expr) -> String {
    let text = print(e);
    if text.chars().count() > 160 {
        text.chars().take(157).collect::<String>() + "…"
    } else {
        text
    }
}

/// `e` with every call `wrap` picks (outside subqueries; the outermost of nested ones) put in
/// `(SELECT …)`, printed.
pub(crate) fn wrapped(e: &Expr, wrap: &dyn Fn(&Call) -> bool) -> String {
    struct Wrapper<'w> {
        wrap: &'w dyn Fn(&Call) -> bool,
        depth: usize,
    }
    impl VisitorMut for Wrapper<'_> {
        type Break = ();
        fn pre_visit_query(&mut self, _: &mut sql::Query) -> ControlFlow<()> {
            self.depth += 1;
            ControlFlow::Continue(())
        }
        fn post_visit_query(&mut self, _: &mut sql::Query) -> ControlFlow<()> {
            self.depth -= 1;
            ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            if self.depth == 0
                && let Expr::Function(f) = e
                && (self.wrap)(&Call::of(f, false))
                && let Ok(Expr::Subquery(query)) = parse(&format!("(SELECT {f})"))
            {
                *e = Expr::Subquery(query);
            }
            ControlFlow::Continue(())
        }
    }
    let mut e = e.clone();
    let _ = VisitMut::visit(&mut e, &mut Wrapper { wrap, depth: 0 });
    print(&e)
}

/// `#>` takes a path literal `{a,b}`: its first element is the claim.
pub(crate) fn first_path_element(op: &str, key: &str) -> String {
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

/// Whether a `current_setting('request.jwt.claim…')` value reaches a non-text cast before
/// anything turns `''` into NULL. Follows casts to text, parentheses and `coalesce` (which
/// does not guard `''`); stops, as guarded, at `nullif` or any other call: a guard written as
/// `CASE WHEN … = ''` is not followed, so a cast in its ELSE branch is reported.
pub(crate) fn unguarded_claim_cast<V: Visit + ?Sized>(tree: &V) -> bool {
    fn raw_claims(e: &Expr) -> bool {
        match e {
            Expr::Nested(inner) => raw_claims(inner),
            Expr::Cast {
                expr, data_type, ..
            } => is_text_type(&type_name(data_type)) && raw_claims(expr),
            Expr::Function(f) => {
                let call = Call::of(f, false);
                if call.is_builtin("coalesce") {
                    call.args.iter().any(raw_claims)
                } else {
                    call.is_current_setting()
                        && call
                            .setting_name()
                            .is_some_and(|n| n.starts_with("request.jwt.claim"))
                }
            }
            _ => false,
        }
    }
    let mut found = false;
    walk(tree, &mut |x, _| {
        if let Expr::Cast {
            expr, data_type, ..
        } = x
        {
            found |= !is_text_type(&type_name(data_type)) && raw_claims(expr);
        }
    });
    found
}

/// Whether a `current_setting('request.jwt.claim…')` call lacks its second argument: on a
/// connection where no request set the claims it raises instead of returning NULL.
pub(crate) fn claims_without_missing_ok<V: Visit + ?Sized>(tree: &V) -> bool {
    calls(tree).iter().any(|call| {
        call.is_current_setting()
            && call
                .setting_name()
                .is_some_and(|n| n.starts_with("request.jwt.claim"))
            && call.args.len() == 1
    })
}

/// Whether a SQL function body resolves nothing through the caller's `search_path`: one
/// `SELECT` of an expression (no FROM, no alias), every function schema-qualified, every cast
/// `::` to a schema-qualified type, every operator written as `OPERATOR(schema.op)`. Such a
/// function is as safe without `SET search_path` as with it, and only without it can Postgres
/// inline it into the statements that call it. `nullif`, `coalesce`, `greatest` and `least`
/// are syntax; their comparisons use pg_catalog's operators, which every search_path searches
/// first unless it lists pg_catalog after another schema on purpose. Anything else — a FROM
/// clause, a bare name, a bare operator, `CAST(… AS …)`, a body the parser refuses — counts as
/// depending on the path.
pub(crate) fn is_path_independent(body: &str) -> bool {
    const SYNTAX_CALLS: &[&str] = &["nullif", "coalesce", "greatest", "least"];
    let Ok(statements) = Parser::parse_sql(&PostgreSqlDialect {}, body) else {
        return false;
    };
    let [sql::Statement::Query(query)] = statements.as_slice() else {
        return false;
    };
    let sql::SetExpr::Select(select) = query.body.as_ref() else {
        return false;
    };
    let plain_query = query.with.is_none()
        && query.order_by.is_none()
        && query.limit_clause.is_none()
        && query.fetch.is_none();
    let plain_select = select.from.is_empty()
        && select.selection.is_none()
        && select.having.is_none()
        && select.distinct.is_none()
        && matches!(&select.group_by, sql::GroupByExpr::Expressions(e, m) if e.is_empty() && m.is_empty());
    if !(plain_query && plain_select) || select.projection.is_empty() {
        return false;
    }
    let qualified_type =
        |t: &sql::DataType| matches!(t, sql::DataType::Custom(name, _) if name.0.len() == 2);
    let mut independent = true;
    for item in &select.projection {
        let sql::SelectItem::UnnamedExpr(e) = item else {
            return false;
        };
        walk(e, &mut |node, _| {
            independent &= match node {
                Expr::Value(_)
                | Expr::Nested(_)
                | Expr::Case { .. }
                | Expr::IsNull(_)
                | Expr::IsNotNull(_)
                | Expr::IsTrue(_)
                | Expr::IsNotTrue(_)
                | Expr::IsFalse(_)
                | Expr::IsNotFalse(_)
                | Expr::UnaryOp {
                    op: sql::UnaryOperator::Not,
                    ..
                } => true,
                Expr::BinaryOp { op, .. } => match op {
                    BinaryOperator::And | BinaryOperator::Or => true,
                    BinaryOperator::PGCustomBinaryOperator(parts) => parts.len() == 2,
                    _ => false,
                },
                Expr::Cast {
                    kind: sql::CastKind::DoubleColon,
                    data_type,
                    ..
                } => qualified_type(data_type),
                Expr::Function(f) => match f.name.0.as_slice() {
                    [_, _] => true,
                    [sql::ObjectNamePart::Identifier(i)] => {
                        i.quote_style.is_none()
                            && !matches!(f.args, FunctionArguments::None)
                            && SYNTAX_CALLS.contains(&ident(i).as_str())
                    }
                    _ => false,
                },
                _ => false,
            };
        });
    }
    independent
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unguarded(sql: &str) -> bool {
        unguarded_claim_cast(&parse(sql).unwrap())
    }

    #[test]
    fn reads_pg_get_expr_output() {
        let e = parse(
            "((user_id = ( SELECT public.requesting_user_id() AS requesting_user_id)) OR \
             (auth.role() = 'x'::text))",
        )
        .unwrap();
        let names: Vec<(String, bool)> = calls(&e)
            .iter()
            .map(|c| (c.display(), c.in_subquery))
            .collect();
        assert_eq!(
            names,
            [
                ("public.requesting_user_id()".to_owned(), true),
                ("auth.role()".to_owned(), false)
            ]
        );
        assert_eq!(disjuncts(&e).len(), 2);
        let Some(c) = compare(disjuncts(&e)[1]) else {
            panic!("not a comparison")
        };
        assert_eq!(literal(c.right), Some("x"));
        assert!(is_role_word(&parse("CURRENT_USER").unwrap()));
        assert!(is_role_word(&parse("current_role").unwrap()));
        assert_eq!(column_ref(&parse("current_role").unwrap()), None);
        assert_eq!(
            column_ref(&parse("((t.\"Owner\"))::text").unwrap()),
            Some((Some("t".into()), "Owner".into()))
        );
        assert!(is_json_access(
            &parse("x::pg_catalog.jsonb OPERATOR(pg_catalog.->>) 'sub'").unwrap()
        ));
        assert!(parse("a = 1 b").is_err());
        let variadic =
            parse("jsonb_extract_path_text(auth.jwt(), VARIADIC ARRAY['app'::text, 'org'::text])")
                .unwrap();
        let call = &calls(&variadic)[0];
        assert_eq!(call.args.len(), 3);
        assert_eq!(literal(&call.args[1]), Some("app"));
        assert!(parse("f(VARIADIC ARRAY[]::text[])").is_err());
        assert!(parse("f(VARIADIC x)").is_err());
        assert!(parse("XMLEXISTS('//a' PASSING BY REF '<a/>'::xml)").is_err());
    }

    #[test]
    fn path_independent_bodies_are_recognised() {
        let v4 = "SELECT nullif(nullif(pg_catalog.current_setting('request.jwt.claims', true), \
                  '')::pg_catalog.jsonb OPERATOR(pg_catalog.->>) 'sub', '');";
        assert!(is_path_independent(v4));
        assert!(is_path_independent(
            "select case when pg_catalog.current_setting('x', true) operator(pg_catalog.=) '' \
             then null else pg_catalog.now()::pg_catalog.text end"
        ));
        for dependent in [
            // Unqualified function, type, operator, relation; unqualified OPERATOR(); CAST.
            "select nullif(nullif(current_setting('request.jwt.claims', true), '')::pg_catalog.jsonb operator(pg_catalog.->>) 'sub', '')",
            "select nullif(nullif(pg_catalog.current_setting('request.jwt.claims', true), '')::jsonb operator(pg_catalog.->>) 'sub', '')",
            "select nullif(nullif(pg_catalog.current_setting('request.jwt.claims', true), '')::pg_catalog.jsonb ->> 'sub', '')",
            "select pg_catalog.count(*) from public.todos",
            "select a operator(=) b",
            "select cast(pg_catalog.now() as pg_catalog.text)",
            "select \"nullif\"(1, 2)",
            "begin return pg_catalog.now(); end",
            "select public.f() ; select 1",
            "",
        ] {
            assert!(!is_path_independent(dependent), "{dependent}");
        }
    }

    #[test]
    fn wraps_calls_outside_subqueries() {
        let e = parse("((user_id = auth.uid()) AND (x = ( SELECT auth.uid() AS uid)))").unwrap();
        let text = wrapped(&e, &|c| c.base_name() == "uid");
        assert_eq!(
            text,
            "((user_id = (SELECT auth.uid())) AND (x = (SELECT auth.uid() AS uid)))"
        );
        assert!(parse(&text).is_ok());
    }

    #[test]
    fn cast_before_guard_is_recognised() {
        assert!(unguarded(
            "nullif(current_setting('request.jwt.claims', true)::json ->> 'sub', '')::text"
        ));
        assert!(unguarded(
            "((current_setting('request.jwt.claims'::text, true))::jsonb ->> 'sub'::text)"
        ));
        assert!(unguarded(
            "coalesce(current_setting('request.jwt.claims', true), '{}')::jsonb"
        ));
        assert!(unguarded(
            "cast(current_setting('request.jwt.claims', true) as json)"
        ));
        assert!(unguarded(
            "current_setting('request.jwt.claim.sub', true)::uuid"
        ));
    }

    #[test]
    fn guarded_readers_pass() {
        assert!(!unguarded(
            "nullif(nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub', '')"
        ));
        assert!(!unguarded(
            "current_setting('request.jwt.claim.sub', true)::text"
        ));
        assert!(!unguarded("current_setting('app.settings.x', true)::jsonb"));
    }
}
