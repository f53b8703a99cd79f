//! Parses JSON bodies: rows to insert (POST) and the columns to set (PATCH). Pure: no I/O, no
//! SQL; every key is resolved against the request's [`Relation`].
//!
//! Before PostgREST sees a body, InsForge drops every `""` value whose key is not a text-like
//! column (`records.routes.ts` at v2.3.1, `TEXT_LIKE_DATA_TYPES` in `utils/constants.ts`), so a
//! column default applies instead of a cast error; [`strip_empty_strings`] does the same.

use serde_json::{Map, Value};

use crate::parse_error::ParseError;
use crate::schema::{ColumnId, Relation};

/// Rows to insert: the columns (in order) and every row as a JSON object, re-serialized so
/// Postgres receives exactly what was checked here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsertBody {
    pub columns: Vec<ColumnId>,
    pub rows_json: String,
    pub row_count: usize,
}

fn invalid_json(details: Option<String>) -> ParseError {
    ParseError::InvalidBody {
        message: "Empty or invalid json",
        details,
    }
}

fn parse_json(bytes: &[u8]) -> Result<Value, ParseError> {
    // The parser's message names a line and column, never the input itself.
    serde_json::from_slice(bytes).map_err(|e| invalid_json(Some(e.to_string())))
}

/// InsForge's text-like types (`text`, `character varying`, `character`, `citext`), read from
/// `format_type` (which adds a length, and may qualify `citext` with its schema).
fn is_text_like(sql_type: &str) -> bool {
    if sql_type.ends_with("[]") {
        return false;
    }
    let base = sql_type.split('(').next().unwrap_or("").trim();
    matches!(base, "text" | "character varying" | "character" | "citext")
        || base.ends_with(".citext")
}

/// Drops the `""` values InsForge drops: those of keys that are not a text-like column of
/// `table` (unknown keys included; with no table, every one).
pub fn strip_empty_strings(table: Option<&Relation>, object: &mut Map<String, Value>) {
    object.retain(|key, value| {
        value.as_str() != Some("")
            || table
                .and_then(|t| t.find(key).map(|c| t.column(c).sql_type()))
                .is_some_and(is_text_like)
    });
}

/// A POST body: one object or an array of objects. Columns come from `columns` when given
/// (keys outside it are ignored, missing keys become NULL), else from the first object's keys,
/// and then every object must have exactly those keys (PostgREST's "All object keys must
/// match").
pub fn parse_insert_body(
    table: &Relation,
    bytes: &[u8],
    columns: Option<&[ColumnId]>,
) -> Result<InsertBody, ParseError> {
    let value = parse_json(bytes)?;
    let rows = match value {
        Value::Array(rows) => rows,
        object @ Value::Object(_) => vec![object],
        _ => {
            return Err(invalid_json(Some(
                "expected a JSON object or an array of objects".into(),
            )));
        }
    };
    let mut objects = Vec::with_capacity(rows.len());
    for row in rows {
        match row {
            Value::Object(mut map) => {
                strip_empty_strings(Some(table), &mut map);
                objects.push(map);
            }
            _ => {
                return Err(invalid_json(Some(
                    "every element of the array must be a JSON object".into(),
                )));
            }
        }
    }

    let columns = match columns {
        Some(columns) => columns.to_vec(),
        None => {
            let mut columns = Vec::new();
            if let Some(first) = objects.first() {
                for key in first.keys() {
                    let column = table
                        .find(key)
                        .ok_or_else(|| ParseError::unknown_write_column(table, key))?;
                    columns.push(column);
                }
                for other in &objects[1..] {
                    if other.len() != first.len() || other.keys().any(|k| !first.contains_key(k)) {
                        return Err(ParseError::InvalidBody {
                            message: "All object keys must match",
                            details: None,
                        });
                    }
                }
            }
            // Table order, so the same key set always builds the same SQL text.
            columns.sort();
            columns
        }
    };

    let row_count = objects.len();
    let rows_json = Value::Array(objects.into_iter().map(Value::Object).collect()).to_string();
    Ok(InsertBody {
        columns,
        rows_json,
        row_count,
    })
}

/// A PATCH body: one object; each value as the text Postgres will cast to the column's type
/// (`None` for JSON null; objects and arrays as their JSON text, as PostgREST passes them).
pub fn parse_patch_body(
    table: &Relation,
    bytes: &[u8],
) -> Result<Vec<(ColumnId, Option<String>)>, ParseError> {
    let Value::Object(mut map) = parse_json(bytes)? else {
        return Err(invalid_json(Some("expected a JSON object".into())));
    };
    strip_empty_strings(Some(table), &mut map);
    let mut out = Vec::with_capacity(map.len());
    for (key, value) in map {
        let column = table
            .find(&key)
            .ok_or_else(|| ParseError::unknown_write_column(table, &key))?;
        // PostgREST reads a PATCH body with `json_populate_record`: a JSON string in a `json`
        // or `jsonb` column is that JSON string (`"a"`), in any other column its text (`a`).
        let json_typed = matches!(table.column(column).sql_type(), "json" | "jsonb");
        let text = match value {
            Value::Null => None,
            Value::String(s) if !json_typed => Some(s),
            other => Some(other.to_string()),
        };
        out.push((column, text));
    }
    out.sort_by_key(|(c, _)| *c);
    Ok(out)
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::fixture::{col, todos};

    #[test]
    fn a_patched_json_string_stays_a_json_string_in_a_jsonb_column() {
        use crate::schema::{Column, Relation, RelationKind};
        let shapes = Relation::new(
            "public",
            "shapes",
            RelationKind::Table,
            vec![
                Column::new("id", "uuid"),
                Column::new("object", "jsonb"),
                Column::new("label", "text"),
            ],
            &["id"],
        );
        let set = parse_patch_body(&shapes, br#"{"object":"changed","label":"changed"}"#).unwrap();
        let texts: Vec<Option<&str>> = set.iter().map(|(_, v)| v.as_deref()).collect();
        assert_eq!(texts, [Some("\"changed\""), Some("changed")]);
    }

    #[test]
    fn insert_bodies() {
        let body =
            parse_insert_body(&todos(), br#"{"title":"a","is_complete":true}"#, None).unwrap();
        assert_eq!(body.columns, [col("title"), col("is_complete")]);
        assert_eq!(body.row_count, 1);
        assert_eq!(body.rows_json, r#"[{"is_complete":true,"title":"a"}]"#);

        let body = parse_insert_body(&todos(), br#"[{"title":"a"},{"title":"b"}]"#, None).unwrap();
        assert_eq!(
            (body.columns.as_slice(), body.row_count),
            ([col("title")].as_slice(), 2)
        );

        let empty = parse_insert_body(&todos(), b"[]", None).unwrap();
        assert_eq!((empty.columns.len(), empty.row_count), (0, 0));
        let defaults = parse_insert_body(&todos(), b"{}", None).unwrap();
        assert_eq!((defaults.columns.len(), defaults.row_count), (0, 1));

        assert_eq!(
            parse_insert_body(&todos(), br#"{"title":"a","nope":1}"#, None),
            Err(ParseError::unknown_write_column(&todos(), "nope"))
        );
        assert_eq!(
            parse_insert_body(&todos(), br#"{"title\";drop":1}"#, None),
            Err(ParseError::unknown_write_column(&todos(), "title\";drop"))
        );
        assert!(matches!(
            parse_insert_body(&todos(), br#"[{"title":"a"},{"is_complete":true}]"#, None),
            Err(ParseError::InvalidBody {
                message: "All object keys must match",
                ..
            })
        ));
        assert!(matches!(
            parse_insert_body(
                &todos(),
                br#"[{"title":"a"},{"title":"b","id":null}]"#,
                None
            ),
            Err(ParseError::InvalidBody {
                message: "All object keys must match",
                ..
            })
        ));
        for bad in [
            &b""[..],
            b"{",
            b"null",
            b"42",
            b"\"x\"",
            b"[1]",
            b"[{}, []]",
            b"{\"title\":}",
        ] {
            assert!(
                matches!(
                    parse_insert_body(&todos(), bad, None),
                    Err(ParseError::InvalidBody {
                        message: "Empty or invalid json",
                        ..
                    })
                ),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        // With `columns`, other keys are ignored and objects may differ.
        let body = parse_insert_body(
            &todos(),
            br#"[{"title":"a","junk":1},{"is_complete":true}]"#,
            Some(&[col("title")]),
        )
        .unwrap();
        assert_eq!(
            (body.columns.as_slice(), body.row_count),
            ([col("title")].as_slice(), 2)
        );
    }

    #[test]
    fn empty_strings_are_dropped_as_insforge_drops_them() {
        let body = parse_insert_body(
            &todos(),
            br#"{"title":"","is_complete":"","id":"","nope":"","user_id":"u"}"#,
            None,
        )
        .unwrap();
        assert_eq!(body.columns, [col("user_id"), col("title")]);
        assert_eq!(body.rows_json, r#"[{"title":"","user_id":"u"}]"#);
        assert_eq!(
            parse_patch_body(&todos(), br#"{"is_complete":"","title":""}"#).unwrap(),
            [(col("title"), Some(String::new()))]
        );
        for (ty, text_like) in [
            ("text", true),
            ("character varying(20)", true),
            ("character varying", true),
            ("character(3)", true),
            ("citext", true),
            ("public.citext", true),
            ("text[]", false),
            ("uuid", false),
            ("jsonb", false),
            ("\"char\"", false),
        ] {
            assert_eq!(is_text_like(ty), text_like, "{ty}");
        }
        let mut unknown: Map<String, Value> =
            serde_json::from_str(r#"{"a":"","b":"x","c":null}"#).unwrap();
        strip_empty_strings(None, &mut unknown);
        assert_eq!(
            Value::Object(unknown),
            serde_json::json!({"b":"x","c":null})
        );
    }

    #[test]
    fn patch_bodies() {
        let set = parse_patch_body(
            &todos(),
            br#"{"title":"x","is_complete":true,"user_id":null}"#,
        )
        .unwrap();
        assert_eq!(
            set,
            [
                (col("user_id"), None),
                (col("title"), Some("x".into())),
                (col("is_complete"), Some("true".into())),
            ]
        );
        assert_eq!(
            parse_patch_body(&todos(), br#"{"title":{"a":[1]}}"#).unwrap(),
            [(col("title"), Some(r#"{"a":[1]}"#.into()))]
        );
        assert_eq!(parse_patch_body(&todos(), b"{}").unwrap(), []);
        assert!(matches!(
            parse_patch_body(&todos(), br#"[{"title":"x"}]"#),
            Err(ParseError::InvalidBody { .. })
        ));
        assert_eq!(
            parse_patch_body(&todos(), br#"{"owner":"x"}"#),
            Err(ParseError::unknown_write_column(&todos(), "owner"))
        );
    }
}
