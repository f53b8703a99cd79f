//! The workspace's one SQL-literal quoter. Values travel as bound parameters wherever the
//! protocol allows; a literal is only for text that must go in a simple query (the identity
//! switch rides with `BEGIN`) or a pgbench script.

/// Text holding a NUL, which no Postgres text value can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the text contains a NUL character, which Postgres text cannot hold")]
pub struct NulInText;

/// `s` as a Postgres string literal, as libpq's `PQescapeLiteral` writes it: quotes doubled
/// and, when there is a backslash, the `E''` form with backslashes doubled — correct whatever
/// `standard_conforming_strings` says.
pub fn quote_literal(s: &str) -> Result<String, NulInText> {
    quote(s, s.contains('\\'), false)
}

/// `s` as an `E'…'` literal that pgbench leaves alone: pgbench reads `:name` as a variable even
/// inside quotes, so `:` is written `\x3a`.
pub fn quote_literal_for_pgbench(s: &str) -> Result<String, NulInText> {
    quote(s, true, true)
}

fn quote(s: &str, escape_form: bool, hide_colons: bool) -> Result<String, NulInText> {
    if s.contains('\0') {
        return Err(NulInText);
    }
    let mut out = String::with_capacity(s.len() + 3);
    if escape_form {
        out.push('E');
    }
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("''"),
            // Outside the E'' form a backslash is an ordinary character.
            '\\' if escape_form => out.push_str("\\\\"),
            ':' if hide_colons => out.push_str("\\x3a"),
            c => out.push(c),
        }
    }
    out.push('\'');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_quoted_like_libpq() {
        assert_eq!(quote_literal("plain").as_deref(), Ok("'plain'"));
        assert_eq!(quote_literal("it's").as_deref(), Ok("'it''s'"));
        assert_eq!(quote_literal(r"a\b'c").as_deref(), Ok(r"E'a\\b''c'"));
        assert_eq!(quote_literal("").as_deref(), Ok("''"));
        assert_eq!(quote_literal("nul\0byte"), Err(NulInText));
    }

    #[test]
    fn pgbench_literals_hide_colons() {
        assert_eq!(
            quote_literal_for_pgbench(r#"{"sub":"it's\"}"#).as_deref(),
            Ok(r#"E'{"sub"\x3a"it''s\\"}'"#)
        );
    }
}
