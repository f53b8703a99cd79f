//! The workspace's one SQL-identifier quoter, beside the literal quoter: a name from the
//! catalog or a setting (a role, a database, a table, a column) in a statement that cannot take
//! it as a parameter.

/// `"name"` with every `"` doubled: a Postgres quoted identifier for any name the catalog can
/// hold. A NUL cannot be in a catalog name; a statement carrying one fails at the server.
pub fn quote_ident(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::quote_ident;

    #[test]
    fn identifiers_double_their_quotes() {
        assert_eq!(quote_ident("todos"), "\"todos\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_ident("Mixed Case"), "\"Mixed Case\"");
        assert_eq!(quote_ident(""), "\"\"");
    }
}
