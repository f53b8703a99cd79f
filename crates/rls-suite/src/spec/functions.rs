//! `[functions.<name>]`: what the spec says about a function of its schema that clients may
//! call (`POST /api/database/rpc/<name>`, or `select <name>(…)` as the caller).
//!
//! ```toml
//! [functions.project_role]
//! args = { project = "00000000-0000-0000-0000-000000000000" }  # literal arguments, or
//! from = { project = "projects.id" }     # an argument from a seeded column (another user's row)
//! call = "signed_in"                     # who may call it: anyone | signed_in | nobody | [actors]
//! creates = ["projects"]                 # it may create the caller's own rows here
//! skip = "why it is not called"          # never called (listed as not called, with the reason)
//! ```
//!
//! Without an entry, every function of the schema `anon` or `authenticated` may execute is
//! called once per actor with arguments filled from the seeded rows; with one, its `args` and
//! `from` come first. Whatever the entry says, what a call returns and writes is judged against
//! the caller's rules on every spec table (`engine::functions`).

use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::{Map, Value};
use toml::Spanned;

use super::{OneOrMany, RawRule, Source, SpecError, TableSpec, toml_to_json};

/// Who may call a function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Callers {
    /// Every role that reaches the database (`anon` and `authenticated`).
    Anyone,
    /// The `authenticated` role, with or without a `sub`.
    SignedIn,
    Nobody,
    /// These spec actors (by key), and no one else.
    Actors(Vec<String>),
}

/// One `[functions.<name>]` entry (every overload of that name).
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionSpec {
    pub name: String,
    /// Arguments given as values, by parameter name.
    pub args: Map<String, Value>,
    /// Arguments taken from a seeded column, by parameter name: `(table, column)`.
    pub from: Vec<(String, (String, String))>,
    /// Who may call it; `None`: the call itself is not judged, only its effect.
    pub call: Option<Callers>,
    /// Tables it may insert rows into beyond their insert rule, as long as no other actor can
    /// see the rows (the caller's own new data: a `create_project()` that adds the project and
    /// the caller's membership).
    pub creates: Vec<String>,
    /// Never call it, for this reason.
    pub skip: Option<String>,
    /// The line of `[functions.<name>]`.
    pub line: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFunction {
    #[serde(default)]
    args: toml::Table,
    #[serde(default)]
    from: IndexMap<String, String>,
    call: Option<Spanned<OneOrMany>>,
    #[serde(default)]
    creates: Vec<String>,
    skip: Option<String>,
}

/// The `[functions]` entries, checked against the spec's actors and tables.
pub(super) fn parse(
    src: &Source<'_>,
    raw: IndexMap<String, Spanned<RawFunction>>,
    actors: &[String],
    tables: &[TableSpec],
) -> Result<Vec<FunctionSpec>, SpecError> {
    let mut out = Vec::new();
    for (name, raw) in raw {
        let offset = src.table_offset("functions", &name).min(raw.span().start);
        let line = src.line(offset);
        let raw = raw.into_inner();
        let key = |k: &str| format!("functions.{name}.{k}");
        let mut from = Vec::new();
        for (arg, column) in raw.from {
            let Some((table, col)) = column.split_once('.') else {
                return Err(src.err(
                    offset,
                    key("from"),
                    format!("`{arg} = \"{column}\"`: write the column as `table.column`"),
                ));
            };
            if !tables.iter().any(|t| t.name == table) {
                return Err(src.err(
                    offset,
                    key("from"),
                    format!("`{table}` is not a table of this spec (in `{arg} = \"{column}\"`)"),
                ));
            }
            if raw.args.contains_key(&arg) {
                return Err(src.err(
                    offset,
                    key("from"),
                    format!("`{arg}` is given in both `args` and `from`"),
                ));
            }
            from.push((arg, (table.to_owned(), col.to_owned())));
        }
        let call = match raw.call {
            None => None,
            Some(call) => {
                let at = call.span().start;
                let rules = match call.into_inner() {
                    OneOrMany::One(one) => vec![one],
                    OneOrMany::Many(many) => many,
                };
                let names = rules
                    .into_iter()
                    .map(|rule| match rule {
                        RawRule::Name(name) => Ok(name),
                        RawRule::All(_) => Err(src.err(
                            at,
                            key("call"),
                            "takes `anyone`, `signed_in`, `nobody` or actor names, not \
                             `{ all = [...] }`",
                        )),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Some(callers(&names, actors).map_err(|m| src.err(at, key("call"), m))?)
            }
        };
        if let Some(t) = raw
            .creates
            .iter()
            .find(|t| !tables.iter().any(|s| s.name == **t))
        {
            return Err(src.err(
                offset,
                key("creates"),
                format!("`{t}` is not a table of this spec"),
            ));
        }
        if raw.skip.as_deref().is_some_and(|s| s.trim().is_empty()) {
            return Err(src.err(offset, key("skip"), "say why the function is not called"));
        }
        out.push(FunctionSpec {
            name,
            args: toml_to_json(raw.args),
            from,
            call,
            creates: raw.creates,
            skip: raw.skip,
            line,
        });
    }
    Ok(out)
}

fn callers(names: &[String], actors: &[String]) -> Result<Callers, String> {
    match names {
        [one] if one == "anyone" => return Ok(Callers::Anyone),
        [one] if one == "signed_in" => return Ok(Callers::SignedIn),
        [one] if one == "nobody" => return Ok(Callers::Nobody),
        _ => {}
    }
    for n in names {
        if !actors.contains(n) {
            return Err(format!(
                "`{n}` is neither `anyone`, `signed_in`, `nobody` nor an actor (they are {})",
                actors.join(", ")
            ));
        }
    }
    Ok(Callers::Actors(names.to_vec()))
}

impl Callers {
    /// Whether an actor (its key and the role it reaches the database as) may call.
    pub fn allows(&self, key: &str, role: &str) -> bool {
        match self {
            Callers::Anyone => true,
            Callers::SignedIn => role == "authenticated",
            Callers::Nobody => false,
            Callers::Actors(keys) => keys.iter().any(|k| k == key),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::spec::{Spec, SpecError};

    const BASE: &str = "[actors.ada]\n[actors.ben]\n[tables.a]\nowner = \"o\"\n";

    fn parse(extra: &str) -> Result<Spec, SpecError> {
        Spec::parse(Path::new("a.toml"), &format!("{BASE}{extra}"))
    }

    #[test]
    fn an_entry_reads_its_arguments_sources_and_callers() {
        let spec = parse(
            "[functions.f]\nargs = { n = 3 }\nfrom = { id = \"a.o\" }\ncall = [\"ada\"]\n\
             [functions.g]\nskip = \"it mails people\"\n",
        )
        .unwrap();
        let f = &spec.functions[0];
        assert_eq!(f.name, "f");
        assert_eq!(f.args["n"], serde_json::json!(3));
        assert_eq!(f.from, [("id".into(), ("a".into(), "o".into()))]);
        assert!(f.call.as_ref().unwrap().allows("ada", "authenticated"));
        assert!(!f.call.as_ref().unwrap().allows("ben", "authenticated"));
        assert_eq!(f.line, 5);
        assert_eq!(spec.functions[1].skip.as_deref(), Some("it mails people"));
    }

    #[test]
    fn bad_entries_name_their_key_and_line() {
        let err = |extra| parse(extra).unwrap_err().to_string();
        assert!(err("[functions.f]\ncall = \"someone\"\n").contains("a.toml:6: functions.f.call"));
        assert!(err("[functions.f]\nfrom = { id = \"b.o\" }\n").contains("`b` is not a table"));
        assert!(err("[functions.f]\nfrom = { id = \"o\" }\n").contains("table.column"));
        assert!(err("[functions.f]\nskip = \" \"\n").contains("say why"));
        assert!(err("[functions.f]\ncreates = [\"b\"]\n").contains("functions.f.creates"));
        assert!(err("[functions.f]\nwho = 1\n").contains("unknown field"));
    }
}
