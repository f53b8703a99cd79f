//! A small SQL tokenizer plus the token-level helpers the function-body analysis shares (calls,
//! operands, parenthesised groups). It reads PL/pgSQL bodies, which `sqlparser` has no grammar
//! for (0 of the 12 PL/pgSQL bodies of the repository's schemas parse — docs/lint.md, "How the
//! lint reads SQL"), and a SQL body the parser refuses. Policy expressions, column defaults
//! and SQL bodies are read by `sqlparser` (`expr.rs`). It is not a parser, so every caller
//! treats its answers as a best guess and documents the miss cases.

use std::ops::Range;

/// One lexical token. Unquoted identifiers are lowercased, as Postgres folds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Token {
    Ident {
        text: String,
        quoted: bool,
    },
    Str(String),
    Num(String),
    /// Operators, including `::` and `:=`.
    Op(String),
    Open,
    Close,
    Comma,
    Dot,
    Semi,
    Other(char),
}

impl Token {
    /// The identifier text, whether quoted or not.
    pub(crate) fn ident(&self) -> Option<&str> {
        match self {
            Self::Ident { text, .. } => Some(text),
            _ => None,
        }
    }

    /// An unquoted identifier equal to `word` (keywords are never quoted).
    pub(crate) fn is_word(&self, word: &str) -> bool {
        matches!(self, Self::Ident { text, quoted: false } if text == word)
    }

    pub(crate) fn is_op(&self, op: &str) -> bool {
        matches!(self, Self::Op(o) if o == op)
    }
}

/// Keywords that may stand before `(` without being a function call.
const NON_CALL_WORDS: &[&str] = &[
    "and",
    "or",
    "not",
    "in",
    "exists",
    "any",
    "all",
    "some",
    "as",
    "select",
    "from",
    "where",
    "when",
    "then",
    "else",
    "case",
    "values",
    "on",
    "using",
    "with",
    "returning",
    "is",
    "like",
    "ilike",
    "similar",
    "between",
    "distinct",
    "filter",
    "over",
    "within",
    "row",
    "array",
    "return",
    "if",
    "elsif",
    "loop",
    "into",
    "perform",
    "execute",
    "by",
    "join",
    "lateral",
    "union",
    "intersect",
    "except",
    "check",
    "default",
    "set",
    "table",
];

/// Tokenizes SQL text. Never fails: unknown characters become [`Token::Other`].
pub(crate) fn tokenize(sql: &str) -> Vec<Token> {
    let chars: Vec<char> = sql.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c.is_whitespace() {
            i += 1;
        } else if c == '-' && next == Some('-') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i = skip_block_comment(&chars, i);
        } else if c == '\'' {
            let (text, end) = read_quoted(&chars, i, '\'', false);
            tokens.push(Token::Str(text));
            i = end;
        } else if (c == 'e' || c == 'E') && next == Some('\'') {
            let (text, end) = read_quoted(&chars, i + 1, '\'', true);
            tokens.push(Token::Str(text));
            i = end;
        } else if c == '"' {
            let (text, end) = read_quoted(&chars, i, '"', false);
            tokens.push(Token::Ident { text, quoted: true });
            i = end;
        } else if c == '$' {
            match read_dollar_quoted(&chars, i) {
                Some((text, end)) => {
                    tokens.push(Token::Str(text));
                    i = end;
                }
                None => {
                    // A positional parameter ($1): an opaque value.
                    let start = i;
                    i += 1;
                    while i < chars.len() && chars[i].is_ascii_digit() {
                        i += 1;
                    }
                    tokens.push(Token::Num(chars[start..i].iter().collect()));
                }
            }
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
            {
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            tokens.push(Token::Ident {
                text: text.to_lowercase(),
                quoted: false,
            });
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            tokens.push(Token::Num(chars[start..i].iter().collect()));
        } else if c == ':' {
            match next {
                Some(':') => {
                    tokens.push(Token::Op("::".into()));
                    i += 2;
                }
                Some('=') => {
                    tokens.push(Token::Op(":=".into()));
                    i += 2;
                }
                _ => {
                    tokens.push(Token::Other(':'));
                    i += 1;
                }
            }
        } else if is_operator_char(c) {
            let start = i;
            while i < chars.len() && is_operator_char(chars[i]) {
                // A comment start ends the operator, as in Postgres' lexer.
                if i > start
                    && ((chars[i] == '-' && chars.get(i + 1) == Some(&'-'))
                        || (chars[i] == '/' && chars.get(i + 1) == Some(&'*')))
                {
                    break;
                }
                i += 1;
            }
            tokens.push(Token::Op(chars[start..i].iter().collect()));
        } else {
            tokens.push(match c {
                '(' => Token::Open,
                ')' => Token::Close,
                ',' => Token::Comma,
                '.' => Token::Dot,
                ';' => Token::Semi,
                other => Token::Other(other),
            });
            i += 1;
        }
    }
    tokens
}

fn is_operator_char(c: char) -> bool {
    "+-*/<>=~!@#%^&|`?".contains(c)
}

fn skip_block_comment(chars: &[char], start: usize) -> usize {
    let mut depth = 0usize;
    let mut i = start;
    while i < chars.len() {
        if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
            depth += 1;
            i += 2;
        } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
            depth = depth.saturating_sub(1);
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    i
}

/// Reads a quoted string or identifier starting at the opening quote; doubled quotes escape.
fn read_quoted(chars: &[char], start: usize, quote: char, backslash: bool) -> (String, usize) {
    let mut text = String::new();
    let mut i = start + 1;
    while i < chars.len() {
        let c = chars[i];
        if backslash && c == '\\' {
            if let Some(&escaped) = chars.get(i + 1) {
                text.push(escaped);
            }
            i += 2;
        } else if c == quote {
            if chars.get(i + 1) == Some(&quote) {
                text.push(quote);
                i += 2;
            } else {
                return (text, i + 1);
            }
        } else {
            text.push(c);
            i += 1;
        }
    }
    (text, i)
}

/// Reads `$tag$…$tag$`; `None` when `$` does not open a dollar quote.
fn read_dollar_quoted(chars: &[char], start: usize) -> Option<(String, usize)> {
    let mut i = start + 1;
    while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
        i += 1;
    }
    if chars.get(i) != Some(&'$') || chars.get(start + 1).is_some_and(char::is_ascii_digit) {
        return None;
    }
    let tag: Vec<char> = chars[start..=i].to_vec();
    let body_start = i + 1;
    let mut j = body_start;
    while j + tag.len() <= chars.len() {
        if chars[j..j + tag.len()] == tag[..] {
            return Some((chars[body_start..j].iter().collect(), j + tag.len()));
        }
        j += 1;
    }
    Some((chars[body_start..].iter().collect(), chars.len()))
}

/// Folds `OPERATOR(schema.op)` into the operator it names, so every heuristic reads
/// `x OPERATOR(pg_catalog.->>) 'sub'` as `x ->> 'sub'`.
fn fold_operator_syntax(toks: Vec<Token>) -> Vec<Token> {
    let mut out = Vec::with_capacity(toks.len());
    let mut i = 0;
    while i < toks.len() {
        if let Some((op, next)) = operator_syntax(&toks, i) {
            out.push(Token::Op(op));
            i = next;
        } else {
            out.push(toks[i].clone());
            i += 1;
        }
    }
    out
}

/// `OPERATOR ( [schema .] op )` starting at `i`: the operator and the index after the `)`.
fn operator_syntax(toks: &[Token], i: usize) -> Option<(String, usize)> {
    if !toks.get(i)?.is_word("operator") || toks.get(i + 1)? != &Token::Open {
        return None;
    }
    let mut j = i + 2;
    if matches!(toks.get(j), Some(Token::Ident { .. })) && toks.get(j + 1) == Some(&Token::Dot) {
        j += 2;
    }
    let Token::Op(op) = toks.get(j)? else {
        return None;
    };
    (toks.get(j + 1)? == &Token::Close).then(|| (op.clone(), j + 2))
}

/// A function call: `name(…)` or `schema.name(…)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Call {
    /// Name parts as written: `["public", "requesting_user_id"]` or `["current_setting"]`.
    pub name: Vec<String>,
    /// Index of the first name token.
    pub start: usize,
    /// Index of the `(`.
    pub open: usize,
    /// Index of the matching `)`.
    pub close: usize,
}

impl Call {
    pub(crate) fn span(&self) -> Range<usize> {
        self.start..self.close + 1
    }

    /// The unqualified function name.
    pub(crate) fn base_name(&self) -> &str {
        self.name.last().map_or("", String::as_str)
    }

    /// The schema it was qualified with, if any.
    pub(crate) fn schema(&self) -> Option<&str> {
        (self.name.len() > 1).then(|| self.name[self.name.len() - 2].as_str())
    }
}

/// A token list with the paren structure precomputed.
#[derive(Debug, Clone)]
pub(crate) struct Tokens {
    pub toks: Vec<Token>,
    /// For each `(` its `)` and for each `)` its `(`.
    partner: Vec<Option<usize>>,
}

impl Tokens {
    pub(crate) fn new(sql: &str) -> Self {
        let toks = fold_operator_syntax(tokenize(sql));
        let mut partner = vec![None; toks.len()];
        let mut stack: Vec<usize> = Vec::new();
        for (i, tok) in toks.iter().enumerate() {
            match tok {
                Token::Open => stack.push(i),
                Token::Close => {
                    if let Some(open) = stack.pop() {
                        partner[open] = Some(i);
                        partner[i] = Some(open);
                    }
                }
                _ => {}
            }
        }
        Self { toks, partner }
    }

    pub(crate) fn len(&self) -> usize {
        self.toks.len()
    }

    pub(crate) fn get(&self, i: usize) -> Option<&Token> {
        self.toks.get(i)
    }

    pub(crate) fn partner(&self, i: usize) -> Option<usize> {
        self.partner.get(i).copied().flatten()
    }

    pub(crate) fn all(&self) -> Range<usize> {
        0..self.toks.len()
    }

    /// Every call in `range`, outermost first within each position.
    pub(crate) fn calls(&self, range: Range<usize>) -> Vec<Call> {
        let mut calls = Vec::new();
        let mut i = range.start;
        while i < range.end {
            let is_start = matches!(self.toks[i], Token::Ident { .. })
                && !(i > 0 && self.toks[i - 1] == Token::Dot)
                && !(i > 0 && self.toks[i - 1].is_op("::"));
            if is_start {
                let mut name = Vec::new();
                let mut j = i;
                while let Some(part) = self.toks.get(j).and_then(Token::ident) {
                    name.push(part.to_owned());
                    if self.toks.get(j + 1) == Some(&Token::Dot)
                        && self.toks.get(j + 2).and_then(Token::ident).is_some()
                    {
                        j += 2;
                    } else {
                        break;
                    }
                }
                let open = j + 1;
                let keyword = name.len() == 1
                    && matches!(&self.toks[i], Token::Ident { quoted: false, .. })
                    && NON_CALL_WORDS.contains(&name[0].as_str());
                if !keyword
                    && self.toks.get(open) == Some(&Token::Open)
                    && let Some(close) = self.partner(open)
                    && close < range.end
                {
                    calls.push(Call {
                        name,
                        start: i,
                        open,
                        close,
                    });
                }
                i = j + 1;
            } else {
                i += 1;
            }
        }
        calls
    }

    /// The comma-separated arguments of a call, as token ranges.
    pub(crate) fn args(&self, call: &Call) -> Vec<Range<usize>> {
        let mut args = Vec::new();
        let mut start = call.open + 1;
        let mut i = start;
        while i < call.close {
            match self.toks[i] {
                Token::Open => i = self.partner(i).unwrap_or(i) + 1,
                Token::Comma => {
                    args.push(start..i);
                    i += 1;
                    start = i;
                }
                _ => i += 1,
            }
        }
        if start < call.close {
            args.push(start..call.close);
        }
        args
    }

    /// The string literal a range consists of (allowing `'x'::text`), if it is one.
    pub(crate) fn literal(&self, range: Range<usize>) -> Option<&str> {
        let core = self.strip(range);
        match (core.len(), self.toks.get(core.start)) {
            (1, Some(Token::Str(s))) => Some(s),
            _ => None,
        }
    }

    /// End (exclusive) of a cast's type name starting at `i` (the token after `::` or `AS`).
    pub(crate) fn type_end(&self, i: usize) -> usize {
        let mut j = i;
        while let Some(tok) = self.toks.get(j) {
            match tok {
                Token::Ident { .. } => j += 1,
                Token::Dot => j += 1,
                Token::Other('[') | Token::Other(']') => j += 1,
                Token::Open if j > i => match self.partner(j) {
                    Some(close) => j = close + 1,
                    None => break,
                },
                _ => break,
            }
            // `::text = x`: only type words continue a multi-word type name.
            if let Some(Token::Ident { text, .. }) = self.toks.get(j)
                && !matches!(
                    text.as_str(),
                    "varying" | "precision" | "with" | "without" | "time" | "zone"
                )
                && self.toks.get(j - 1) != Some(&Token::Dot)
            {
                break;
            }
        }
        j
    }

    /// The type name text of a cast starting at `i`, lowercased and space-joined.
    pub(crate) fn type_name(&self, i: usize) -> String {
        let end = self.type_end(i);
        let mut words: Vec<&str> = self.toks[i..end].iter().filter_map(Token::ident).collect();
        // `pg_catalog.jsonb` names the same type as `jsonb`.
        if words.first() == Some(&"pg_catalog") {
            words.remove(0);
        }
        words.join(" ")
    }

    /// The operand that starts at `i`: a group, a literal, a column or a call, with casts.
    pub(crate) fn operand_after(&self, i: usize) -> Option<Range<usize>> {
        let mut j = match self.toks.get(i)? {
            Token::Open => self.partner(i)? + 1,
            Token::Str(_) | Token::Num(_) => i + 1,
            Token::Ident { .. } => {
                let mut j = i;
                while self.toks.get(j + 1) == Some(&Token::Dot)
                    && self.toks.get(j + 2).and_then(Token::ident).is_some()
                {
                    j += 2;
                }
                if self.toks.get(j + 1) == Some(&Token::Open) {
                    self.partner(j + 1)? + 1
                } else {
                    j + 1
                }
            }
            _ => return None,
        };
        while self.toks.get(j).is_some_and(|t| t.is_op("::")) {
            j = self.type_end(j + 1);
        }
        Some(i..j)
    }

    /// The operand that ends just before `end`: the mirror of [`Tokens::operand_after`].
    pub(crate) fn operand_before(&self, end: usize) -> Option<Range<usize>> {
        let mut k = end;
        // Peel trailing casts: `x::json`, `(x)::character varying`.
        loop {
            let mut j = k;
            while j > 0
                && matches!(
                    self.toks[j - 1],
                    Token::Ident { .. } | Token::Dot | Token::Other('[') | Token::Other(']')
                )
                && k - j < 6
            {
                j -= 1;
            }
            if j < k && j > 0 && self.toks[j - 1].is_op("::") {
                k = j - 1;
            } else {
                break;
            }
        }
        if k == 0 {
            return None;
        }
        let start = match &self.toks[k - 1] {
            Token::Close => {
                let open = self.partner(k - 1)?;
                self.name_start_before(open).unwrap_or(open)
            }
            Token::Ident { .. } => {
                let mut s = k - 1;
                while s >= 2 && self.toks[s - 1] == Token::Dot && self.toks[s - 2].ident().is_some()
                {
                    s -= 2;
                }
                s
            }
            Token::Str(_) | Token::Num(_) => k - 1,
            _ => return None,
        };
        Some(start..end)
    }

    /// When `open` is a call's `(`, the call's unqualified name.
    pub(crate) fn call_name_before(&self, open: usize) -> Option<&str> {
        self.name_start_before(open)?;
        self.toks.get(open - 1)?.ident()
    }

    /// When `open` is a call's `(`, the index of the call's first name token.
    fn name_start_before(&self, open: usize) -> Option<usize> {
        if open == 0 {
            return None;
        }
        let tok = &self.toks[open - 1];
        let name = tok.ident()?;
        if matches!(tok, Token::Ident { quoted: false, .. }) && NON_CALL_WORDS.contains(&name) {
            return None;
        }
        let mut s = open - 1;
        while s >= 2 && self.toks[s - 1] == Token::Dot && self.toks[s - 2].ident().is_some() {
            s -= 2;
        }
        Some(s)
    }

    /// Removes casts and redundant outer parentheses: `((user_id))::text` → `user_id`.
    pub(crate) fn strip(&self, range: Range<usize>) -> Range<usize> {
        let mut r = range;
        loop {
            if r.is_empty() {
                return r;
            }
            if self.toks[r.start] == Token::Open && self.partner(r.start) == Some(r.end - 1) {
                r = r.start + 1..r.end - 1;
                continue;
            }
            // A cast at depth 0 followed only by its type name.
            let mut depth = 0i32;
            let mut cut = None;
            for i in r.clone() {
                match self.toks[i] {
                    Token::Open => depth += 1,
                    Token::Close => depth -= 1,
                    Token::Op(ref o)
                        if o == "::" && depth == 0 && self.type_end(i + 1) >= r.end =>
                    {
                        cut = Some(i);
                        break;
                    }
                    _ => {}
                }
            }
            match cut {
                Some(c) if c > r.start => r = r.start..c,
                _ => return r,
            }
        }
    }

    /// Whether the range has a JSON access operator at its top level.
    pub(crate) fn is_json_access(&self, range: Range<usize>) -> bool {
        let core = self.strip(range);
        let mut depth = 0i32;
        core.into_iter().any(|i| match &self.toks[i] {
            Token::Open => {
                depth += 1;
                false
            }
            Token::Close => {
                depth -= 1;
                false
            }
            Token::Op(o) => depth == 0 && is_json_op(o),
            _ => false,
        })
    }

    /// Indices of the identifiers in a range, for name searches in function bodies.
    pub(crate) fn idents(&self) -> impl Iterator<Item = (usize, &str)> {
        self.toks
            .iter()
            .enumerate()
            .filter_map(|(i, t)| t.ident().map(|s| (i, s)))
    }
}

/// Operators that take a key or path out of a JSON value.
pub(crate) fn is_json_op(op: &str) -> bool {
    matches!(op, "->" | "->>" | "#>" | "#>>")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(sql: &str) -> Vec<Token> {
        tokenize(sql)
    }

    #[test]
    fn tokenizes_pg_get_expr_output() {
        let toks = words("(user_id = ( SELECT public.requesting_user_id() AS requesting_user_id))");
        assert_eq!(toks.len(), 14);
        assert!(toks.contains(&Token::Op("=".into())));
        let toks = words("((auth.jwt() ->> 'sub'::text))");
        assert!(toks.contains(&Token::Op("->>".into())));
        assert!(toks.contains(&Token::Op("::".into())));
        assert!(toks.contains(&Token::Str("sub".into())));
    }

    #[test]
    fn tokenizes_strings_comments_and_dollar_quotes() {
        let toks =
            words("select 'it''s' -- note\n, $$body$$, $x$a$x$, E'a\\'b', \"Quoted\" /* c */ $1");
        assert!(toks.contains(&Token::Str("it's".into())));
        assert!(toks.contains(&Token::Str("body".into())));
        assert!(toks.contains(&Token::Str("a".into())));
        assert!(toks.contains(&Token::Str("a'b".into())));
        assert!(toks.contains(&Token::Ident {
            text: "Quoted".into(),
            quoted: true
        }));
        assert!(toks.contains(&Token::Num("$1".into())));
        assert!(!toks.iter().any(|t| t.is_word("note") || t.is_word("c")));
    }

    #[test]
    fn finds_calls() {
        let t = Tokens::new(
            "(user_id = ( SELECT public.requesting_user_id() AS requesting_user_id)) AND auth.role() = 'x'",
        );
        let calls = t.calls(t.all());
        let names: Vec<&[String]> = calls.iter().map(|c| c.name.as_slice()).collect();
        assert_eq!(
            names,
            [&["public", "requesting_user_id"][..], &["auth", "role"][..]]
        );
        assert_eq!(calls[1].schema(), Some("auth"));
    }

    #[test]
    fn operator_syntax_reads_as_the_operator() {
        let toks = Tokens::new("x::pg_catalog.jsonb OPERATOR(pg_catalog.->>) 'sub'");
        assert!(toks.toks.iter().any(|t| t.is_op("->>")));
        assert!(!toks.toks.iter().any(|t| t.is_word("operator")));
        let bare = Tokens::new("a operator(=) b");
        assert!(bare.toks.iter().any(|t| t.is_op("=")));
    }

    #[test]
    fn operands_around_an_operator() {
        let t = Tokens::new(
            "(user_id)::text = (current_setting('request.jwt.claims'::text, true))::json ->> 'sub'",
        );
        let eq = t.toks.iter().position(|x| x.is_op("=")).unwrap();
        let left = t.operand_before(eq).unwrap();
        assert_eq!(t.get(left.start), t.get(0));
        let right = t.operand_after(eq + 1).unwrap();
        let arrow = t.toks.iter().position(|x| x.is_op("->>")).unwrap();
        assert_eq!(right.end, arrow);
        assert_eq!(t.operand_before(arrow), Some(right));
    }
}
