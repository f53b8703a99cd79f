//! `or=(…)`, `and=(…)`, `not.or=(…)`, `not.and=(…)`: logic trees of filters, nested
//! (`or=(a.eq.1,and(b.gt.2,c.is.null))`), each filter written `col.[not.]op.value`, parsed as
//! PostgREST 12.2 parses them (`pLogicTree`, `pLogicSingleVal`, `pLogicPath` in
//! `src/PostgREST/ApiRequest/QueryParams.hs`).

use crate::parse_error::{ParseError, echo};
use crate::schema::Relation;

use super::{Filter, parse_op_expr, quoted_end, unquote};

/// `and` / `or` of a logic tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogicOp {
    And,
    Or,
}

impl LogicOp {
    pub fn sql(self) -> &'static str {
        match self {
            Self::And => " and ",
            Self::Or => " or ",
        }
    }
}

/// One `or=(…)` / `and=(…)` parameter, or one node inside it (PostgREST's `LogicTree`:
/// `Expr Bool LogicOperator [LogicTree] | Stmnt Filter`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogicTree {
    /// `[not.]and(…)` / `[not.]or(…)`: never empty (PostgREST's `sepBy1`).
    Expr {
        negated: bool,
        op: LogicOp,
        children: Vec<LogicTree>,
    },
    /// `col.[not.]op.value`.
    Filter(Filter),
}

/// Deepest nesting of `and(…)`/`or(…)` accepted. PostgREST has no limit; the stand-in has one
/// so that a hostile query string cannot exhaust the stack of the (recursive) parser and builder.
pub const MAX_LOGIC_DEPTH: usize = 32;

/// One `or`/`and`/`not.or`/`not.and` parameter: `key` says which, `value` is `(…)`.
/// PostgREST prepends the operator to the value and parses `op(…)` as one tree
/// (`pRequestLogicTree`, `QueryParams.hs`); so does this.
pub fn parse_logic_param(
    relation: &Relation,
    key: &str,
    value: &str,
) -> Result<LogicTree, ParseError> {
    let (negated, op) = match key {
        "and" => (false, LogicOp::And),
        "or" => (false, LogicOp::Or),
        "not.and" => (true, LogicOp::And),
        "not.or" => (true, LogicOp::Or),
        other => {
            return Err(ParseError::syntax(
                "logic path",
                other,
                "expecting and, or, not.and or not.or",
            ));
        }
    };
    let mut parser = LogicParser {
        relation,
        whole: value,
        rest: value,
    };
    let children = parser.children(1)?;
    parser.ws();
    if !parser.rest.is_empty() {
        // PostgREST's parser stops after the closing `)` and ignores what follows; the
        // stand-in refuses it rather than silently dropping part of a filter.
        return Err(parser.error(format!(
            "unexpected \"{}\" after the closing )",
            echo(parser.rest)
        )));
    }
    Ok(LogicTree::Expr {
        negated,
        op,
        children,
    })
}

/// A cursor over the value of a logic parameter (PostgREST's `pLogicTree`).
struct LogicParser<'r, 's> {
    relation: &'r Relation,
    whole: &'s str,
    rest: &'s str,
}

impl<'s> LogicParser<'_, 's> {
    fn error(&self, details: impl Into<String>) -> ParseError {
        ParseError::syntax("logic tree", self.whole, details)
    }

    /// PostgREST's `ws`: spaces and tabs.
    fn ws(&mut self) {
        self.rest = self.rest.trim_start_matches([' ', '\t']);
    }

    fn eat(&mut self, c: char) -> bool {
        match self.rest.strip_prefix(c) {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        }
    }

    /// `lexeme (char '(') *> tree `sepBy1` lexeme (char ',') <* lexeme (char ')')`.
    fn children(&mut self, depth: usize) -> Result<Vec<LogicTree>, ParseError> {
        if depth > MAX_LOGIC_DEPTH {
            return Err(self.error(format!(
                "and/or may be nested at most {MAX_LOGIC_DEPTH} deep"
            )));
        }
        self.ws();
        if !self.eat('(') {
            return Err(self.error("expecting \"(\""));
        }
        let mut children = Vec::new();
        loop {
            self.ws();
            children.push(self.tree(depth)?);
            self.ws();
            if self.eat(',') {
                continue;
            }
            if self.eat(')') {
                return Ok(children);
            }
            return Err(self.error("expecting \",\" or \")\""));
        }
    }

    /// `Stmnt <$> try pLogicFilter <|> Expr <$> pNot <*> pLogicOp <*> (…)`. A filter cannot
    /// start with `and(`/`or(` (a field name has no `(`), so looking ahead decides.
    fn tree(&mut self, depth: usize) -> Result<LogicTree, ParseError> {
        let (negated, after_not) = match self.rest.strip_prefix("not.") {
            Some(rest) => (true, rest),
            None => (false, self.rest),
        };
        for (word, op) in [("and", LogicOp::And), ("or", LogicOp::Or)] {
            if let Some(after) = after_not.strip_prefix(word)
                && after.trim_start_matches([' ', '\t']).starts_with('(')
            {
                self.rest = after;
                let children = self.children(depth + 1)?;
                return Ok(LogicTree::Expr {
                    negated,
                    op,
                    children,
                });
            }
        }
        self.filter().map(LogicTree::Filter)
    }

    /// `pField <* pDelimiter <*> pOpExpr pLogicSingleVal`.
    fn filter(&mut self) -> Result<Filter, ParseError> {
        let name = self.field_name()?;
        if self.rest.starts_with("->") {
            return Err(self.error("JSON paths are not supported"));
        }
        self.ws();
        if !self.eat('.') {
            return Err(self.error("expecting \".\" after a column name"));
        }
        let negated = self.rest.starts_with("not.");
        if negated {
            self.rest = &self.rest[4..];
        }
        let op_end = self.rest.find(['.', ',', ')']).unwrap_or(self.rest.len());
        let op = &self.rest[..op_end];
        self.rest = &self.rest[op_end..];
        if !self.eat('.') {
            return Err(self.error(format!(
                "expecting an operator and a value after \"{}\", as in eq.1",
                echo(&name)
            )));
        }
        // PostgREST parses the whole tree before Postgres resolves a name: an unknown
        // operator (as in `not.xor(…)`, read as column `not`) is a syntax error first.
        if !matches!(
            op,
            "eq" | "neq" | "gt" | "gte" | "lt" | "lte" | "like" | "ilike" | "in" | "is"
        ) {
            return Err(self.error(format!(
                "unknown operator \"{}\"; supported: eq neq gt gte lt lte like ilike in is, \
                 optionally after not., or a nested and(…) / or(…)",
                echo(op)
            )));
        }
        let column = self
            .relation
            .find(&name)
            .ok_or_else(|| ParseError::unknown_column(self.relation, &name))?;
        let operand = if op == "in" {
            self.list()?.to_owned()
        } else {
            self.single_value()
        };
        let text = format!("{}{op}.{operand}", if negated { "not." } else { "" });
        parse_op_expr(column, &text, &|d| self.error(d))
    }

    /// `pFieldName`: a quoted name, or identifier characters (letters, digits, `_`, `$`,
    /// space) with single dashes between them, trimmed.
    fn field_name(&mut self) -> Result<String, ParseError> {
        self.ws();
        if self.rest.starts_with('"') {
            let end = quoted_end(self.rest).ok_or_else(|| self.error("a quote is not closed"))?;
            let quoted = &self.rest[..end];
            self.rest = &self.rest[end..];
            return match unquote(quoted) {
                Some(Ok(name)) => Ok(name.into_owned()),
                Some(Err(details)) => Err(self.error(details)),
                None => Err(self.error("a quote is not closed")),
            };
        }
        let mut end = 0;
        let bytes = self.rest.as_bytes();
        for (i, c) in self.rest.char_indices() {
            let ident = c.is_alphanumeric() || matches!(c, '_' | '$' | ' ');
            let dash = c == '-' && bytes.get(i + 1) != Some(&b'>') && i > 0;
            if ident || dash {
                end = i + c.len_utf8();
            } else {
                break;
            }
        }
        let name = self.rest[..end].trim_matches(' ');
        self.rest = &self.rest[end..];
        if name.is_empty() {
            return Err(self.error("expecting a column name, not / and( / or("));
        }
        Ok(name.to_owned())
    }

    /// `pLogicSingleVal`: a quoted value followed by `,` or `)` (unquoted), else a `{…}`
    /// array literal, else everything up to the next `,` or `)`.
    fn single_value(&mut self) -> String {
        if self.rest.starts_with('"')
            && let Some(end) = quoted_end(self.rest)
            && matches!(self.rest[end..].chars().next(), None | Some(',' | ')'))
            && let Some(Ok(value)) = unquote(&self.rest[..end])
        {
            self.rest = &self.rest[end..];
            return value.into_owned();
        }
        if self.rest.starts_with('{')
            && let Some(close) = self.rest[1..].find(['{', '}']).map(|i| i + 1)
            && self.rest[close..].starts_with('}')
        {
            let value = &self.rest[..=close];
            self.rest = &self.rest[close + 1..];
            return value.to_owned();
        }
        let end = self.rest.find([',', ')']).unwrap_or(self.rest.len());
        let value = &self.rest[..end];
        self.rest = &self.rest[end..];
        value.to_owned()
    }

    /// `pListVal`: `(…)` up to the first `)` outside quotes, returned with its parentheses
    /// for [`parse_in_list`].
    fn list(&mut self) -> Result<&'s str, ParseError> {
        self.ws();
        if !self.rest.starts_with('(') {
            return Err(self.error("in takes a parenthesised list, as in in.(a,b)"));
        }
        let mut in_quotes = false;
        let mut escaped = false;
        for (i, c) in self.rest.char_indices().skip(1) {
            if escaped {
                escaped = false;
                continue;
            }
            match c {
                '\\' if in_quotes => escaped = true,
                '"' => in_quotes = !in_quotes,
                ')' if !in_quotes => {
                    let list = &self.rest[..=i];
                    self.rest = &self.rest[i + 1..];
                    self.ws();
                    return Ok(list);
                }
                _ => {}
            }
        }
        Err(self.error("a list is not closed"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_error::MAX_ECHO_CHARS;
    use crate::query_string::tests::{is_syntax, q, unknown_col};
    use crate::query_string::{CmpOp, IsValue, Op};
    use crate::schema::fixture::col;

    fn leaf(column: &str, negated: bool, op: Op) -> LogicTree {
        LogicTree::Filter(Filter {
            column: col(column),
            negated,
            op,
        })
    }

    fn logic(raw: &str) -> LogicTree {
        let query = q(raw).unwrap_or_else(|e| panic!("{raw}: {e:?}"));
        assert_eq!(query.logic.len(), 1, "{raw}");
        query.logic.into_iter().next().unwrap()
    }

    /// The shapes PostgREST 12.2's `pLogicTree` accepts (`QueryParams.hs` and its doctests;
    /// `test/spec/Feature/Query/AndOrParamsSpec.hs`).
    #[test]
    fn logic_trees_nest_and_negate() {
        let eq = |v: &str| Op::Cmp(CmpOp::Eq, v.into());
        assert_eq!(
            logic("or=(title.eq.a,and(is_complete.is.true,created_at.gt.2024))"),
            LogicTree::Expr {
                negated: false,
                op: LogicOp::Or,
                children: vec![
                    leaf("title", false, eq("a")),
                    LogicTree::Expr {
                        negated: false,
                        op: LogicOp::And,
                        children: vec![
                            leaf("is_complete", false, Op::Is(IsValue::True)),
                            leaf("created_at", false, Op::Cmp(CmpOp::Gt, "2024".into())),
                        ],
                    },
                ],
            }
        );
        assert_eq!(
            logic("not.or=(title.not.eq.a,not.and(id.in.(x,y),title.like.*z*))"),
            LogicTree::Expr {
                negated: true,
                op: LogicOp::Or,
                children: vec![
                    leaf("title", true, eq("a")),
                    LogicTree::Expr {
                        negated: true,
                        op: LogicOp::And,
                        children: vec![
                            leaf("id", false, Op::In(vec!["x".into(), "y".into()])),
                            leaf(
                                "title",
                                false,
                                Op::Like {
                                    case_insensitive: false,
                                    pattern: "%z%".into()
                                }
                            ),
                        ],
                    },
                ],
            }
        );
        assert_eq!(
            logic("and=(title.eq.a)"),
            LogicTree::Expr {
                negated: false,
                op: LogicOp::And,
                children: vec![leaf("title", false, eq("a"))],
            }
        );
        // `not.and` as a key; whitespace around items, as `lexeme` allows.
        let LogicTree::Expr {
            negated, children, ..
        } = logic("not.and=(%20title.eq.a%20,%20id.is.null)")
        else {
            panic!()
        };
        assert!(negated);
        assert_eq!(children[1], leaf("id", false, Op::Is(IsValue::Null)));
        // Several trees and plain filters all apply.
        let query = q("or=(title.eq.a,title.eq.b)&and=(id.is.null)&title=neq.c").unwrap();
        assert_eq!((query.logic.len(), query.filters.len()), (2, 1));
    }

    #[test]
    fn logic_values_follow_plogicsinglevalue() {
        let value = |raw: &str| match logic(raw) {
            LogicTree::Expr { children, .. } => match &children[0] {
                LogicTree::Filter(f) => f.op.clone(),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        };
        // A quoted value may hold `,` and `)`; quotes and `\` escapes are removed.
        assert_eq!(
            value("or=(title.eq.%22a,b)%22,id.is.null)"),
            Op::Cmp(CmpOp::Eq, "a,b)".into())
        );
        assert_eq!(
            value("or=(title.eq.%22say%20%5C%22hi%5C%22%22)"),
            Op::Cmp(CmpOp::Eq, "say \"hi\"".into())
        );
        // A quote not followed by `,`/`)` is part of an unquoted value.
        assert_eq!(
            value("or=(title.eq.%22a%22b)"),
            Op::Cmp(CmpOp::Eq, "\"a\"b".into())
        );
        // `{…}` array literals keep their commas.
        assert_eq!(
            value("or=(title.eq.{a,b})"),
            Op::Cmp(CmpOp::Eq, "{a,b}".into())
        );
        // Dots, quotes-in-SQL and comments are just characters.
        assert_eq!(
            value("or=(title.eq.it's;%20--%20a.b)"),
            Op::Cmp(CmpOp::Eq, "it's; -- a.b".into())
        );
        assert_eq!(value("or=(title.eq.)"), Op::Cmp(CmpOp::Eq, "".into()));
        assert_eq!(
            value("or=(title.in.(%22a,b%22,c),id.is.null)"),
            Op::In(vec!["a,b".into(), "c".into()])
        );
        // A quoted column name.
        assert!(matches!(
            logic("or=(%22title%22.eq.a)"),
            LogicTree::Expr { .. }
        ));
    }

    #[test]
    fn logic_errors() {
        for raw in [
            "or=()",
            "or=",
            "or=title.eq.a",
            "or=(title.eq.a",
            "or=(title.eq.a))",
            "or=(title.eq.a)x",
            "or=(title.eq.a,)",
            "or=(,title.eq.a)",
            "or=(title)",
            "or=(title.eq)",
            "or=(title.nope.1)",
            "or=(title.in.a)",
            "or=(title.in.(a)",
            "or=(title.is.maybe)",
            "or=(xor(title.eq.a))",
            "or=(not.xor(title.eq.a))",
            "or=(title->a.eq.1)",
            "or=(and())",
            "or=(%22title.eq.a)",
        ] {
            assert!(is_syntax(q(raw)), "{raw}: {:?}", q(raw));
        }
        assert_eq!(q("or=(nope.eq.1)"), Err(unknown_col("nope")));
        assert_eq!(q("and=(title.eq.1,or(x.eq.1))"), Err(unknown_col("x")));
        // Nesting is bounded, so a hostile query cannot exhaust the stack.
        let deep = format!("or=({}title.eq.a{})", "or(".repeat(100), ")".repeat(100));
        assert!(is_syntax(q(&deep)));
        let ok = format!(
            "or=({}title.eq.a{})",
            "or(".repeat(MAX_LOGIC_DEPTH - 1),
            ")".repeat(MAX_LOGIC_DEPTH - 1)
        );
        assert!(q(&ok).is_ok(), "{:?}", q(&ok));
        let long = format!("or=({}.eq.1)", "x".repeat(10_000));
        let Err(ParseError::UnknownColumn { column, .. }) = q(&long) else {
            panic!()
        };
        assert!(column.chars().count() <= MAX_ECHO_CHARS + 1);
    }
}
