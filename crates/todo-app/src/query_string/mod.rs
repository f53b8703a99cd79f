//! Parses the query string of the PostgREST subset this app speaks into a typed [`Query`].
//! Pure: no I/O, no SQL; every identifier is resolved against the request's
//! [`Relation`] from the schema snapshot ([`crate::schema`]).
//!
//! Supported query parameters:
//!
//! - `select=col1,col2` or `select=*` (plain column names, optionally double-quoted), and
//!   embedded resources one level deep `[alias:]relation(cols)` along a foreign key either way
//!   ([`parse_query_in`] with the schema);
//! - filters `col=[not.]op.value` with `eq neq gt gte lt lte like ilike in is`. `like`/`ilike`
//!   take `*` as the `%` wildcard (as PostgREST does, since `%` is awkward in URLs);
//!   `in.(a,"b,c")` takes a list with PostgREST's quoting (`\"` and `\\` escape inside quotes);
//!   `is.null|true|false|unknown`. A column may be filtered several times (the filters AND);
//! - `order=col[.asc|.desc][.nullsfirst|.nullslast],…`;
//! - `limit`, `offset`: non-negative integers; a limit beyond `i64::MAX` means "no limit";
//! - `columns=a,b` on POST: the columns to take from each object, as postgrest-js sends for
//!   arrays;
//! - `on_conflict=a,b`: the unique key an upsert (`Prefer: resolution=…`) conflicts on.
//!
//! - `or=(…)`, `and=(…)`, `not.or=(…)`, `not.and=(…)`: logic trees of filters, nested
//!   (`or=(a.eq.1,and(b.gt.2,c.is.null))`), each filter written `col.[not.]op.value`, as
//!   PostgREST 12.2 parses them (`pLogicTree`, `pLogicSingleVal`, `pLogicPath` in
//!   `src/PostgREST/ApiRequest/QueryParams.hs`). Several trees AND with each other and with
//!   the column filters.
//!
//! `select`, `order`, `limit`, `offset` and `columns` may appear once each: PostgREST's
//! handling of repeats is unspecified, and guessing would silently change a result.

use std::borrow::Cow;

use std::sync::Arc;

use crate::parse_error::{ParseError, echo};
use crate::schema::{ColumnId, Relation, Relationship, Schema};

mod logic;

pub use logic::{LogicTree, parse_logic_param};

/// A comparison that takes one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Neq,
    Gt,
    Gte,
    Lt,
    Lte,
}

impl CmpOp {
    pub fn sql(self) -> &'static str {
        match self {
            Self::Eq => "=",
            Self::Neq => "<>",
            Self::Gt => ">",
            Self::Gte => ">=",
            Self::Lt => "<",
            Self::Lte => "<=",
        }
    }
}

/// The right-hand side of `IS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsValue {
    Null,
    True,
    False,
    Unknown,
}

impl IsValue {
    pub fn sql(self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::True => "true",
            Self::False => "false",
            Self::Unknown => "unknown",
        }
    }
}

/// What a filter tests. Values stay text: SQL casts them to the column's type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Cmp(CmpOp, String),
    /// `pattern` already has `*` turned into `%`.
    Like {
        case_insensitive: bool,
        pattern: String,
    },
    In(Vec<String>),
    Is(IsValue),
}

/// One `col=[not.]op.value` parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub column: ColumnId,
    pub negated: bool,
    pub op: Op,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Asc,
    Desc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nulls {
    First,
    Last,
}

/// One `col[.asc|.desc][.nullsfirst|.nullslast]` term; unset parts are Postgres's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderTerm {
    pub column: ColumnId,
    pub direction: Option<Direction>,
    pub nulls: Option<Nulls>,
}

/// One embedded resource of `select=` (`tasks(*)`, `project:projects(name)`), one level deep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Embed {
    /// The key in each row: the alias, else the target's name. Client text: it reaches SQL
    /// only as a bind.
    pub key: String,
    pub target: Arc<Relation>,
    /// The target's columns to return.
    pub select: Vec<ColumnId>,
    pub relationship: Relationship,
}

/// Everything the query string said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The columns to return, in order, without repeats. `select=*` (or no `select`) is every
    /// column in table order.
    pub select: Vec<ColumnId>,
    /// Embedded resources, after the columns in each row (as PostgREST orders them).
    pub embeds: Vec<Embed>,
    pub filters: Vec<Filter>,
    /// `or=`/`and=` trees, in query-string order; they AND with `filters`.
    pub logic: Vec<LogicTree>,
    pub order: Vec<OrderTerm>,
    /// Already clamped to `i64::MAX`, the most Postgres accepts.
    pub limit: Option<i64>,
    pub offset: Option<i64>,
    /// `columns=…`: which keys to insert from each body object.
    pub columns: Option<Vec<ColumnId>>,
    /// `on_conflict=a,b`: the unique key an upsert conflicts on (default: the primary key).
    pub on_conflict: Option<Vec<ColumnId>>,
}

impl Query {
    /// No parameters: every column of `relation`, no filter, no order.
    pub fn all(relation: &Relation) -> Self {
        Self {
            select: relation.column_ids().collect(),
            embeds: Vec::new(),
            filters: Vec::new(),
            logic: Vec::new(),
            order: Vec::new(),
            limit: None,
            offset: None,
            columns: None,
            on_conflict: None,
        }
    }
}

/// Parses a raw (still percent-encoded) query string for `relation`. `None` and `""` mean
/// "no parameters".
#[cfg(test)]
pub fn parse_query(relation: &Relation, raw: Option<&str>) -> Result<Query, ParseError> {
    parse_query_in(None, relation, raw)
}

/// As [`parse_query`], with the schema whose foreign keys let `select=` embed related
/// relations (without one, an embed is a syntax error).
pub fn parse_query_in(
    schema: Option<&Schema>,
    relation: &Relation,
    raw: Option<&str>,
) -> Result<Query, ParseError> {
    let mut query = Query::all(relation);
    let mut seen_select = false;
    let mut seen_order = false;
    let mut seen_columns = false;

    for (key, value) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        match key.as_ref() {
            "select" => {
                once(&mut seen_select, "select")?;
                (query.select, query.embeds) = parse_select_in(schema, relation, &value)?;
            }
            "order" => {
                once(&mut seen_order, "order")?;
                query.order = parse_order(relation, &value)?;
            }
            "limit" => {
                if query.limit.is_some() {
                    return Err(duplicate("limit"));
                }
                query.limit = Some(parse_count("limit", &value)?);
            }
            "offset" => {
                if query.offset.is_some() {
                    return Err(duplicate("offset"));
                }
                query.offset = Some(parse_count("offset", &value)?);
            }
            "columns" => {
                once(&mut seen_columns, "columns")?;
                query.columns = Some(parse_columns(relation, &value)?);
            }
            "and" | "or" | "not.and" | "not.or" => {
                query.logic.push(parse_logic_param(relation, &key, &value)?);
            }
            // PostgREST reads any key whose last `.` part is `and`/`or` as a logic tree of an
            // embedded resource (`pLogicPath`); there is no embedding here.
            k if k.ends_with(".and") || k.ends_with(".or") => {
                return Err(ParseError::Syntax {
                    message: format!("\"{}\" is not supported by this API", echo(k)),
                    details: "logic trees apply to the requested table only: or=(…), and=(…), \
                              not.or=(…), not.and=(…)"
                        .into(),
                });
            }
            "on_conflict" => {
                if query.on_conflict.is_some() {
                    return Err(duplicate("on_conflict"));
                }
                // `pColumns` (`QueryParams.hs`); an unknown name reaches Postgres there (42703).
                query.on_conflict = Some(parse_select_like(relation, "on_conflict", &value)?);
            }
            "" => {
                return Err(ParseError::syntax(
                    "filter",
                    &value,
                    "the column name is empty",
                ));
            }
            name => {
                let column = relation
                    .find(name)
                    .ok_or_else(|| ParseError::unknown_column(relation, name))?;
                query.filters.push(parse_filter(column, &value)?);
            }
        }
    }
    Ok(query)
}

fn once(seen: &mut bool, name: &str) -> Result<(), ParseError> {
    if std::mem::replace(seen, true) {
        Err(duplicate(name))
    } else {
        Ok(())
    }
}

fn duplicate(name: &str) -> ParseError {
    ParseError::Syntax {
        message: format!("\"{name}\" is given more than once"),
        details: "each of select, order, limit, offset and columns may appear once".into(),
    }
}

/// `*` or a comma-separated list of column names.
pub fn parse_select(relation: &Relation, value: &str) -> Result<Vec<ColumnId>, ParseError> {
    parse_select_in(None, relation, value).map(|(columns, _)| columns)
}

/// `*`, column names and (with a schema) embedded resources `[alias:]relation(select)`, one
/// level deep (PostgREST's `pRelationSelect`, `QueryParams.hs`; relationships by `findRel`,
/// `Plan.hs`).
pub fn parse_select_in(
    schema: Option<&Schema>,
    relation: &Relation,
    value: &str,
) -> Result<(Vec<ColumnId>, Vec<Embed>), ParseError> {
    let items = split_list(value).map_err(|d| ParseError::syntax("select", value, d))?;
    let mut out = Vec::new();
    let mut embeds = Vec::new();
    for item in items {
        let name = item.trim_matches(' ');
        if name.is_empty() {
            return Err(ParseError::syntax("select", value, "an item is empty"));
        }
        if let Some(schema) = schema
            && !name.starts_with('"')
            && let Some(open) = name.find('(')
            && name.ends_with(')')
        {
            embeds.push(parse_embed(
                schema,
                relation,
                value,
                &name[..open],
                &name[open + 1..name.len() - 1],
            )?);
            continue;
        }
        if name == "*" {
            extend_unique(&mut out, relation.column_ids());
            continue;
        }
        let column = resolve_column(relation, "select", value, name, ParseError::unknown_column)?;
        extend_unique(&mut out, [column]);
    }
    Ok((out, embeds))
}

/// `[alias:]name` and the inner select of one embed.
fn parse_embed(
    schema: &Schema,
    origin: &Relation,
    whole: &str,
    head: &str,
    inner: &str,
) -> Result<Embed, ParseError> {
    let (alias, name) = match head.split_once(':') {
        Some((alias, name)) => (Some(alias.trim_matches(' ')), name.trim_matches(' ')),
        None => (None, head.trim_matches(' ')),
    };
    if name.is_empty()
        || alias.is_some_and(str::is_empty)
        || name.contains(['!', '.', '"', ':'])
        || name.starts_with("...")
    {
        return Err(ParseError::syntax(
            "select",
            whole,
            "only [alias:]relation(columns) embeds are supported (no hints, spreads or quoted names)",
        ));
    }
    let Some(target) = schema.relation(name) else {
        return Err(ParseError::NoRelationship {
            parent: origin.name().to_owned(),
            child: echo(name),
            schema: schema.exposed().to_owned(),
        });
    };
    let mut relationships = schema.relationships(origin, target);
    let relationship = match relationships.len() {
        0 => {
            return Err(ParseError::NoRelationship {
                parent: origin.name().to_owned(),
                child: name.to_owned(),
                schema: schema.exposed().to_owned(),
            });
        }
        1 => relationships.remove(0),
        _ => {
            return Err(ParseError::AmbiguousRelationship {
                parent: origin.name().to_owned(),
                child: name.to_owned(),
            });
        }
    };
    // One level: the inner select is columns only (a nested embed is a syntax error there).
    let select = if inner.trim_matches(' ').is_empty() {
        target.column_ids().collect()
    } else {
        parse_select(target, inner)?
    };
    Ok(Embed {
        key: alias.unwrap_or(name).to_owned(),
        target: target.clone(),
        select,
        relationship,
    })
}

/// A comma-separated list of column names (no `*`), for `on_conflict=`.
fn parse_select_like(
    relation: &Relation,
    what: &str,
    value: &str,
) -> Result<Vec<ColumnId>, ParseError> {
    let items = split_list(value).map_err(|d| ParseError::syntax(what, value, d))?;
    let mut out = Vec::new();
    for item in items {
        let name = item.trim_matches(' ');
        if name.is_empty() {
            return Err(ParseError::syntax(what, value, "an item is empty"));
        }
        let column = resolve_column(relation, what, value, name, ParseError::unknown_column)?;
        extend_unique(&mut out, [column]);
    }
    Ok(out)
}

/// The comma-separated list of `columns=`.
pub fn parse_columns(relation: &Relation, value: &str) -> Result<Vec<ColumnId>, ParseError> {
    let items = split_list(value).map_err(|d| ParseError::syntax("columns", value, d))?;
    let mut out = Vec::new();
    for item in items {
        let name = item.trim_matches(' ');
        if name.is_empty() {
            return Err(ParseError::syntax("columns", value, "an item is empty"));
        }
        let column = resolve_column(
            relation,
            "columns",
            value,
            name,
            ParseError::unknown_write_column,
        )?;
        extend_unique(&mut out, [column]);
    }
    Ok(out)
}

fn extend_unique(out: &mut Vec<ColumnId>, columns: impl IntoIterator<Item = ColumnId>) {
    for c in columns {
        if !out.contains(&c) {
            out.push(c);
        }
    }
}

/// A possibly double-quoted name to a column. Names carrying PostgREST syntax we do not
/// support (aliases, casts, embedding, JSON paths) are syntax errors rather than "unknown
/// column", so the message says what is actually wrong.
fn resolve_column(
    relation: &Relation,
    what: &str,
    whole: &str,
    item: &str,
    unknown: fn(&Relation, &str) -> ParseError,
) -> Result<ColumnId, ParseError> {
    let name = match unquote(item) {
        Some(Ok(name)) => name,
        Some(Err(details)) => return Err(ParseError::syntax(what, whole, details)),
        None => {
            if item.contains([':', '(', ')', '!', '-', '>']) {
                return Err(ParseError::syntax(
                    what,
                    whole,
                    "only plain column names are supported (no aliases, casts, embedding or JSON paths)",
                ));
            }
            Cow::Borrowed(item)
        }
    };
    relation.find(&name).ok_or_else(|| unknown(relation, &name))
}

/// `Some` when `item` is a double-quoted name: its content with `\"` and `\\` unescaped.
pub(crate) fn unquote(item: &str) -> Option<Result<Cow<'_, str>, &'static str>> {
    let inner = item.strip_prefix('"')?;
    let Some(inner) = inner.strip_suffix('"') else {
        return Some(Err("a quoted name is not closed"));
    };
    if !inner.contains('\\') && !inner.contains('"') {
        return Some(Ok(Cow::Borrowed(inner)));
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(escaped) => out.push(escaped),
                None => return Some(Err("a quoted name ends in a lone backslash")),
            },
            '"' => return Some(Err("a quote inside a quoted name must be escaped")),
            c => out.push(c),
        }
    }
    Some(Ok(Cow::Owned(out)))
}

/// Splits on commas outside double quotes, keeping quotes and escapes in the items.
fn split_list(value: &str) -> Result<Vec<&str>, &'static str> {
    let mut items = Vec::new();
    let mut start = 0;
    let mut in_quotes = false;
    let mut escaped = false;
    let mut depth = 0usize;
    for (i, c) in value.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '(' if !in_quotes => depth += 1,
            ')' if !in_quotes => depth = depth.saturating_sub(1),
            ',' if !in_quotes && depth == 0 => {
                items.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if in_quotes {
        return Err("a quote is not closed");
    }
    items.push(&value[start..]);
    Ok(items)
}

/// `col[.asc|.desc][.nullsfirst|.nullslast]`, comma-separated.
pub fn parse_order(relation: &Relation, value: &str) -> Result<Vec<OrderTerm>, ParseError> {
    let items = split_list(value).map_err(|d| ParseError::syntax("order", value, d))?;
    let mut terms = Vec::with_capacity(items.len());
    for item in items {
        let item = item.trim_matches(' ');
        let (name, modifiers) = split_order_item(item)
            .ok_or_else(|| ParseError::syntax("order", value, "a quoted name is not closed"))?;
        if name.is_empty() {
            return Err(ParseError::syntax("order", value, "a column name is empty"));
        }
        let column = resolve_column(relation, "order", value, name, ParseError::unknown_column)?;
        let mut term = OrderTerm {
            column,
            direction: None,
            nulls: None,
        };
        for (i, modifier) in modifiers.into_iter().enumerate() {
            match modifier {
                "asc" | "desc" if i == 0 => {
                    term.direction = Some(if modifier == "asc" {
                        Direction::Asc
                    } else {
                        Direction::Desc
                    });
                }
                "nullsfirst" | "nullslast" if term.nulls.is_none() => {
                    term.nulls = Some(if modifier == "nullsfirst" {
                        Nulls::First
                    } else {
                        Nulls::Last
                    });
                }
                _ => {
                    return Err(ParseError::syntax(
                        "order",
                        value,
                        format!(
                            "unexpected \"{}\", expecting \"asc\", \"desc\", \"nullsfirst\" or \"nullslast\"",
                            echo(modifier)
                        ),
                    ));
                }
            }
        }
        terms.push(term);
    }
    Ok(terms)
}

/// The name part (quotes kept) and the `.`-separated modifiers of one order item.
fn split_order_item(item: &str) -> Option<(&str, Vec<&str>)> {
    let (name, rest) = if item.starts_with('"') {
        // The closing quote is the first `"` not preceded by a backslash.
        let bytes = item.as_bytes();
        let mut i = 1;
        loop {
            match bytes.get(i)? {
                b'\\' => i += 2,
                b'"' => break,
                _ => i += 1,
            }
        }
        item.split_at(i + 1)
    } else {
        match item.find('.') {
            Some(i) => item.split_at(i),
            None => (item, ""),
        }
    };
    let modifiers = match rest.strip_prefix('.') {
        Some(rest) => rest.split('.').collect(),
        None if rest.is_empty() => Vec::new(),
        // Text glued to a closing quote, as in `"title"x`.
        None => vec![rest],
    };
    Some((name, modifiers))
}

/// `limit` and `offset`: ASCII digits only (no sign, no spaces), saturating at `i64::MAX`.
pub fn parse_count(what: &str, value: &str) -> Result<i64, ParseError> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::syntax(
            what,
            value,
            "expecting a non-negative integer",
        ));
    }
    // All digits, so the only possible failure is overflow.
    Ok(value.parse::<i64>().unwrap_or(i64::MAX))
}

/// The value of a filter parameter for `column`: `[not.]op.operand`.
pub fn parse_filter(column: ColumnId, value: &str) -> Result<Filter, ParseError> {
    parse_op_expr(column, value, &|d| ParseError::syntax("filter", value, d))
}

/// `[not.]op.operand` where the operand is all of the rest; `error` words a failure.
pub(crate) fn parse_op_expr(
    column: ColumnId,
    value: &str,
    error: &dyn Fn(String) -> ParseError,
) -> Result<Filter, ParseError> {
    let (negated, rest) = match value.strip_prefix("not.") {
        Some(rest) => (true, rest),
        None => (false, value),
    };
    let Some((op, operand)) = rest.split_once('.') else {
        return Err(error(
            "expecting an operator and a value, as in eq.1".into(),
        ));
    };
    let op = match op {
        "eq" => Op::Cmp(CmpOp::Eq, operand.to_owned()),
        "neq" => Op::Cmp(CmpOp::Neq, operand.to_owned()),
        "gt" => Op::Cmp(CmpOp::Gt, operand.to_owned()),
        "gte" => Op::Cmp(CmpOp::Gte, operand.to_owned()),
        "lt" => Op::Cmp(CmpOp::Lt, operand.to_owned()),
        "lte" => Op::Cmp(CmpOp::Lte, operand.to_owned()),
        "like" | "ilike" => Op::Like {
            case_insensitive: op == "ilike",
            pattern: operand.replace('*', "%"),
        },
        "in" => Op::In(parse_in_list(operand).map_err(|d| error(d.into()))?),
        "is" => Op::Is(match operand.to_ascii_lowercase().as_str() {
            "null" => IsValue::Null,
            "true" => IsValue::True,
            "false" => IsValue::False,
            "unknown" => IsValue::Unknown,
            _ => {
                return Err(error("is takes null, true, false or unknown".into()));
            }
        }),
        other => {
            return Err(error(format!(
                "unknown operator \"{}\"; supported: eq neq gt gte lt lte like ilike in is, \
                     optionally after not.",
                echo(other)
            )));
        }
    };
    Ok(Filter {
        column,
        negated,
        op,
    })
}

/// The byte just after the closing quote of the quoted text `s` starts with (`\` escapes).
pub(crate) fn quoted_end(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut i = 1;
    loop {
        match bytes.get(i)? {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
}

/// `(a,b,"c,d")`: PostgREST's list syntax. Quoted items may contain `,` and `)`, with `\"`
/// and `\\` as escapes; unquoted items may not contain `"` or `)`. `()` is the empty list.
pub fn parse_in_list(operand: &str) -> Result<Vec<String>, &'static str> {
    let inner = operand
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or("in takes a parenthesised list, as in in.(a,b)")?;
    if inner.is_empty() {
        return Ok(Vec::new());
    }
    let mut items = Vec::new();
    let mut chars = inner.chars().peekable();
    loop {
        let mut item = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('\\') => {
                        item.push(chars.next().ok_or("a list item ends in a lone backslash")?)
                    }
                    Some('"') => break,
                    Some(c) => item.push(c),
                    None => return Err("a quoted list item is not closed"),
                }
            }
            match chars.next() {
                Some(',') => {
                    items.push(item);
                    continue;
                }
                None => {
                    items.push(item);
                    break;
                }
                Some(_) => return Err("a quoted list item must be followed by , or )"),
            }
        }
        loop {
            match chars.next() {
                Some(',') => break,
                Some('"' | ')') => return Err("unquoted list items cannot contain \" or )"),
                Some(c) => item.push(c),
                None => {
                    items.push(item);
                    return Ok(items);
                }
            }
        }
        items.push(item);
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_error::MAX_ECHO_CHARS;
    use crate::schema::fixture::{col, todos};

    pub(super) fn q(raw: &str) -> Result<Query, ParseError> {
        parse_query(&todos(), Some(raw))
    }

    fn all() -> Vec<ColumnId> {
        todos().column_ids().collect()
    }

    pub(super) fn unknown_col(name: &str) -> ParseError {
        ParseError::unknown_column(&todos(), name)
    }

    fn filter(raw: &str) -> Filter {
        let query = q(raw).unwrap();
        assert_eq!(query.filters.len(), 1, "{raw}");
        query.filters.into_iter().next().unwrap()
    }

    pub(super) fn is_syntax(r: Result<Query, ParseError>) -> bool {
        matches!(r, Err(ParseError::Syntax { .. }))
    }

    #[test]
    fn empty_query_is_everything_unordered() {
        for raw in [None, Some(""), Some("&"), Some("&&")] {
            let query = parse_query(&todos(), raw).unwrap();
            assert_eq!(query, Query::all(&todos()));
            assert_eq!(query.select, all());
        }
    }

    #[test]
    fn select_lists_star_and_quotes() {
        assert_eq!(q("select=*").unwrap().select, all());
        assert_eq!(
            q("select=title,id").unwrap().select,
            [col("title"), col("id")]
        );
        assert_eq!(
            q("select=%22title%22,is_complete").unwrap().select,
            [col("title"), col("is_complete")]
        );
        // Spaces around items are tolerated; repeats collapse so the JSON has unique keys.
        assert_eq!(
            q("select=title,%20id,title").unwrap().select,
            [col("title"), col("id")]
        );
        assert_eq!(q("select=title,*").unwrap().select.len(), 5);
        assert_eq!(q("select=title,*").unwrap().select[0], col("title"));
    }

    #[test]
    fn select_errors() {
        assert_eq!(q("select=title,nope"), Err(unknown_col("nope")));
        assert!(is_syntax(q("select=")));
        assert!(is_syntax(q("select=title,")));
        assert!(is_syntax(q("select=t:title")));
        assert!(is_syntax(q("select=title::int")));
        assert!(is_syntax(q("select=author(name)")));
        assert!(is_syntax(q("select=user_id->>x")));
        assert!(is_syntax(q("select=%22title")));
        assert!(is_syntax(q("select=%22ti%22tle%22")));
    }

    #[test]
    fn hostile_column_names_never_resolve() {
        for raw in [
            "title%22;drop%20table%20todos;--=eq.1",
            "%22title%22=eq.1",
            "title;=eq.1",
            "title--=eq.1",
            "title/**/=eq.1",
            "TITLE=eq.1",
            "tïtle=eq.1",
            "title%00=eq.1",
            "public.todos.title=eq.1",
        ] {
            assert!(
                matches!(q(raw), Err(ParseError::UnknownColumn { .. })),
                "{raw}: {:?}",
                q(raw)
            );
        }
        for raw in [
            "select=title%22;drop%20table%20todos;--",
            "select=%22title%22%22;drop%22",
            "order=title%22;drop.asc",
            "select=%22title%5C%22%22",
        ] {
            let err = q(raw).unwrap_err();
            assert!(
                matches!(
                    err,
                    ParseError::UnknownColumn { .. } | ParseError::Syntax { .. }
                ),
                "{raw}: {err:?}"
            );
        }
        // The escaped quote is unescaped before lookup, so it can only ever name a column.
        assert_eq!(
            q("select=%22title%5C%22;drop%22"),
            Err(unknown_col("title\";drop"))
        );
    }

    #[test]
    fn filters_with_every_operator() {
        assert_eq!(
            filter("title=eq.buy milk"),
            Filter {
                column: col("title"),
                negated: false,
                op: Op::Cmp(CmpOp::Eq, "buy milk".into())
            }
        );
        for (op, cmp) in [
            ("eq", CmpOp::Eq),
            ("neq", CmpOp::Neq),
            ("gt", CmpOp::Gt),
            ("gte", CmpOp::Gte),
            ("lt", CmpOp::Lt),
            ("lte", CmpOp::Lte),
        ] {
            let f = filter(&format!("created_at=not.{op}.2024-01-01"));
            assert!(f.negated);
            assert_eq!(f.op, Op::Cmp(cmp, "2024-01-01".into()));
        }
        assert_eq!(
            filter("title=like.*milk*").op,
            Op::Like {
                case_insensitive: false,
                pattern: "%milk%".into()
            }
        );
        assert_eq!(
            filter("title=ilike.B%25_").op,
            Op::Like {
                case_insensitive: true,
                pattern: "B%_".into()
            }
        );
        assert_eq!(filter("is_complete=is.null").op, Op::Is(IsValue::Null));
        assert_eq!(filter("is_complete=is.TRUE").op, Op::Is(IsValue::True));
        assert_eq!(filter("is_complete=is.false").op, Op::Is(IsValue::False));
        assert_eq!(
            filter("is_complete=is.unknown").op,
            Op::Is(IsValue::Unknown)
        );
        assert!(filter("is_complete=not.is.null").negated);
    }

    #[test]
    fn values_keep_dots_quotes_semicolons_comments_and_unicode() {
        for (raw, expected) in [
            ("title=eq.a.b.c", "a.b.c"),
            ("title=eq.", ""),
            ("title=eq.it's", "it's"),
            (
                "title=eq.%27;%20drop%20table%20todos;%20--",
                "'; drop table todos; --",
            ),
            ("title=eq./*x*/", "/*x*/"),
            ("title=eq.%22quoted%22", "\"quoted\""),
            ("title=eq.caf%C3%A9%20%E2%98%95", "café ☕"),
            ("title=eq.a+b", "a b"),
            ("title=eq.not.eq.x", "not.eq.x"),
            ("title=eq.%00", "\0"),
        ] {
            assert_eq!(filter(raw).op, Op::Cmp(CmpOp::Eq, expected.into()), "{raw}");
        }
    }

    #[test]
    fn filter_syntax_errors() {
        for raw in [
            "title=",
            "title=eq",
            "title=not.",
            "title=not.eq",
            "title=equals.x",
            "title=not.not.eq.x",
            "title=EQ.x",
            "title=fts.x",
            "title=cs.{a}",
            "title=%3D.x",
            "title=is.maybe",
            "title=is.",
            "title=in.a,b",
            "title=in.(a,b",
            "title=in.(%22a)",
            "title=in.(%22a%22b)",
            "title=in.(a%22b)",
            "title=in.(a))",
        ] {
            assert!(is_syntax(q(raw)), "{raw}: {:?}", q(raw));
        }
        let Err(ParseError::Syntax { message, details }) = q("title=nope.1") else {
            panic!("expected a syntax error");
        };
        assert_eq!(message, "failed to parse filter (nope.1)");
        assert!(details.contains("unknown operator \"nope\""), "{details}");
    }

    #[test]
    fn in_lists_follow_postgrest_quoting() {
        let list = |raw: &str| match filter(raw).op {
            Op::In(items) => items,
            other => panic!("{other:?}"),
        };
        assert_eq!(list("title=in.(a,b)"), ["a", "b"]);
        assert_eq!(list("title=in.()"), Vec::<String>::new());
        assert_eq!(list("title=in.(a)"), ["a"]);
        assert_eq!(list("title=in.(,)"), ["", ""]);
        assert_eq!(list("title=in.(%22a,b%22,c)"), ["a,b", "c"]);
        assert_eq!(list("title=in.(%22a)b%22)"), ["a)b"]);
        assert_eq!(
            list("title=in.(%22say%20%5C%22hi%5C%22%22,%22back%5C%5Cslash%22)"),
            ["say \"hi\"", "back\\slash"]
        );
        assert_eq!(list("title=in.(%22%22)"), [""]);
        assert_eq!(list("title=in.(%20a%20,b)"), [" a ", "b"]);
        assert_eq!(list("title=in.(%E2%98%95,')"), ["☕", "'"]);
        assert!(filter("id=not.in.(x)").negated);
    }

    #[test]
    fn repeated_filters_and_together_but_other_repeats_are_refused() {
        let query = q("created_at=gte.2024-01-01&created_at=lt.2025-01-01").unwrap();
        assert_eq!(query.filters.len(), 2);
        for raw in [
            "limit=1&limit=2",
            "offset=1&offset=1",
            "select=id&select=title",
            "order=id&order=title",
            "columns=title&columns=title",
        ] {
            assert!(is_syntax(q(raw)), "{raw}");
        }
    }

    #[test]
    fn unsupported_parameters_say_so() {
        for raw in ["todos.or=(id.eq.1)", "x.not.and=(id.eq.1)"] {
            let Err(ParseError::Syntax { message, .. }) = q(raw) else {
                panic!("{raw}");
            };
            assert!(message.contains("not supported"), "{message}");
        }
        assert!(is_syntax(q("=eq.1")));
    }

    #[test]
    fn order_terms() {
        let order = q("order=created_at.desc.nullslast,title,id.asc,is_complete.nullsfirst")
            .unwrap()
            .order;
        assert_eq!(
            order,
            [
                OrderTerm {
                    column: col("created_at"),
                    direction: Some(Direction::Desc),
                    nulls: Some(Nulls::Last)
                },
                OrderTerm {
                    column: col("title"),
                    direction: None,
                    nulls: None
                },
                OrderTerm {
                    column: col("id"),
                    direction: Some(Direction::Asc),
                    nulls: None
                },
                OrderTerm {
                    column: col("is_complete"),
                    direction: None,
                    nulls: Some(Nulls::First)
                },
            ]
        );
        assert_eq!(
            q("order=%22title%22.desc").unwrap().order[0].direction,
            Some(Direction::Desc)
        );
        assert_eq!(q("order=nope.asc"), Err(unknown_col("nope")));
        for raw in [
            "order=",
            "order=title.up",
            "order=title.asc.desc",
            "order=title.nullsfirst.asc",
            "order=title.nullsfirst.nullslast",
            "order=title.",
            "order=title..asc",
            "order=title,",
            "order=%22title",
            "order=%22title%22x",
            "order=title.asc;drop",
            "order=.asc",
        ] {
            assert!(
                is_syntax(q(raw)) || matches!(q(raw), Err(ParseError::UnknownColumn { .. })),
                "{raw}: {:?}",
                q(raw)
            );
        }
        assert!(is_syntax(q("order=title.up")));
    }

    #[test]
    fn limit_and_offset() {
        let query = q("limit=10&offset=20").unwrap();
        assert_eq!((query.limit, query.offset), (Some(10), Some(20)));
        assert_eq!(q("limit=0").unwrap().limit, Some(0));
        assert_eq!(q("limit=007").unwrap().limit, Some(7));
        assert_eq!(
            q("limit=99999999999999999999999999999999").unwrap().limit,
            Some(i64::MAX)
        );
        assert_eq!(
            q("offset=9223372036854775808").unwrap().offset,
            Some(i64::MAX)
        );
        for raw in [
            "limit=",
            "limit=-1",
            "offset=-5",
            "limit=%2B5",
            "limit=1.5",
            "limit=%205",
            "limit=0x10",
            "limit=ten",
            "limit=%EF%BC%95",
            "offset=1e3",
        ] {
            assert!(is_syntax(q(raw)), "{raw}");
        }
    }

    #[test]
    fn error_messages_echo_bounded_input() {
        let long = "x".repeat(10_000);
        let Err(ParseError::Syntax { message, .. }) = q(&format!("title={long}")) else {
            panic!();
        };
        assert!(message.len() < 200, "{}", message.len());
        assert!(message.ends_with("…)"));
        let Err(ParseError::UnknownColumn { column: name, .. }) = q(&format!("{long}=eq.1")) else {
            panic!();
        };
        assert_eq!(name.chars().count(), MAX_ECHO_CHARS + 1);
    }

    #[test]
    fn columns_parameter() {
        assert_eq!(
            q("columns=%22title%22,%22is_complete%22").unwrap().columns,
            Some(vec![col("title"), col("is_complete")])
        );
        assert_eq!(
            q("columns=title,nope"),
            Err(ParseError::unknown_write_column(&todos(), "nope"))
        );
        assert!(is_syntax(q("columns=")));
    }
}
