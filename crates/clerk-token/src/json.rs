//! Strict JSON parsing for token headers and payloads: a JSON object, nothing after it, and no
//! key repeated at any depth. Last-wins parsers disagree on repeated keys, which is a bypass.

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

/// Why bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StrictJsonError {
    /// Not JSON, trailing data, or nested too deep.
    Syntax,
    /// Valid JSON but not an object.
    NotObject,
    /// The named key appears twice in one object.
    DuplicateKey(String),
}

/// Parses `bytes` as one JSON object, refusing repeated keys anywhere in it.
pub(crate) fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, StrictJsonError> {
    let mut duplicate = None;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = StrictSeed {
        duplicate: &mut duplicate,
    }
    .deserialize(&mut de)
    .and_then(|v| de.end().map(|()| v));
    match (parsed, duplicate) {
        (_, Some(key)) => Err(StrictJsonError::DuplicateKey(key)),
        (Ok(Value::Object(map)), None) => Ok(map),
        (Ok(_), None) => Err(StrictJsonError::NotObject),
        (Err(_), None) => Err(StrictJsonError::Syntax),
    }
}

/// Builds a `serde_json::Value`, recording the first repeated key it sees. serde_json's own
/// recursion limit still applies because every nested value goes through its `deserialize_any`.
struct StrictSeed<'a> {
    duplicate: &'a mut Option<String>,
}

impl<'de> DeserializeSeed<'de> for StrictSeed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(StrictVisitor {
            duplicate: self.duplicate,
        })
    }
}

struct StrictVisitor<'a> {
    duplicate: &'a mut Option<String>,
}

impl<'de> Visitor<'de> for StrictVisitor<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value without repeated object keys")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // JSON cannot spell NaN/Infinity, so from_f64 only fails on impossible input.
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(StrictSeed {
            duplicate: &mut *self.duplicate,
        })? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        // Keys arrive unescaped, so `"sub"` and `"s\u0075b"` are caught as the same key.
        while let Some(key) = access.next_key::<String>()? {
            let value = access.next_value_seed(StrictSeed {
                duplicate: &mut *self.duplicate,
            })?;
            if map.contains_key(&key) {
                *self.duplicate = Some(key);
                return Err(de::Error::custom("repeated object key"));
            }
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test reports failure
mod tests {
    use super::*;

    #[test]
    fn plain_object_parses() {
        let m =
            parse_object(br#"{"sub":"user_1","n":1,"f":1.5,"a":[1,{"x":null}],"b":true}"#).unwrap();
        assert_eq!(m["sub"], "user_1");
        assert_eq!(m["f"], 1.5);
        assert_eq!(m["a"][1]["x"], Value::Null);
    }

    #[test]
    fn top_level_duplicate_is_refused() {
        assert_eq!(
            parse_object(br#"{"sub":"a","sub":"b"}"#),
            Err(StrictJsonError::DuplicateKey("sub".into()))
        );
    }

    #[test]
    fn escaped_duplicate_is_refused() {
        assert_eq!(
            parse_object(br#"{"role":"authenticated","r\u006fle":"project_admin"}"#),
            Err(StrictJsonError::DuplicateKey("role".into()))
        );
    }

    #[test]
    fn nested_duplicate_is_refused() {
        assert_eq!(
            parse_object(br#"{"meta":[{"org":"a","org":"b"}]}"#),
            Err(StrictJsonError::DuplicateKey("org".into()))
        );
    }

    #[test]
    fn serde_json_alone_would_silently_take_the_last_value() {
        // Why this module exists: the stock parser accepts the ambiguous payload.
        let v: Value = serde_json::from_slice(br#"{"sub":"a","sub":"b"}"#).unwrap();
        assert_eq!(v["sub"], "b");
    }

    #[test]
    fn non_objects_and_garbage_are_refused() {
        assert_eq!(parse_object(b"[1]"), Err(StrictJsonError::NotObject));
        assert_eq!(parse_object(b"\"x\""), Err(StrictJsonError::NotObject));
        assert_eq!(parse_object(b"null"), Err(StrictJsonError::NotObject));
        assert_eq!(parse_object(b"{"), Err(StrictJsonError::Syntax));
        assert_eq!(parse_object(b"{} {}"), Err(StrictJsonError::Syntax));
        assert_eq!(parse_object(b"{}x"), Err(StrictJsonError::Syntax));
        assert_eq!(parse_object(b""), Err(StrictJsonError::Syntax));
        assert_eq!(parse_object(b"\xff"), Err(StrictJsonError::Syntax));
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowing() {
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(parse_object(deep.as_bytes()), Err(StrictJsonError::Syntax));
    }
}
