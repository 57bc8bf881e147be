//! JSON access to record values.
//!
//! [`parse`] reads a whole value into a [`serde_json::Value`]. When a
//! transform needs only a few top-level fields of each record, [`fields`] is
//! faster: it decodes those fields and skips the rest without building them
//! (in one pass of its own for plain objects, through `serde_json` otherwise).
//! [`text`] turns a scalar into the text used to compare, group or route by.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserializer, Serialize};
pub use serde_json::Value;

/// Parses `bytes` as one JSON value.
pub fn parse(bytes: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("invalid JSON: {e}"))
}

/// Serializes `value` as compact JSON.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, String> {
    serde_json::to_vec(value).map_err(|e| format!("cannot encode JSON: {e}"))
}

/// The top-level field `name` of `value`, if `value` is an object that has it.
pub fn field<'a>(value: &'a Value, name: &str) -> Option<&'a Value> {
    value.as_object()?.get(name)
}

/// The top-level fields `names` of the JSON object in `bytes`, in the order
/// of `names` (`None` for a field that is absent). Other fields are checked
/// for well-formedness but not built. If a field occurs more than once the
/// last occurrence counts, as with [`parse`].
///
/// Fails if `bytes` is not one well-formed JSON object.
pub fn fields<const N: usize>(
    bytes: &[u8],
    names: [&str; N],
) -> Result<[Option<Value>; N], String> {
    // Plain objects are read in one pass; serde_json has the last word.
    if let Some(found) = crate::scan::fields(bytes, &names) {
        return Ok(found);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let picked = Pick { names: &names }
        .deserialize(&mut de)
        .map_err(|e| format!("invalid JSON object: {e}"))?;
    de.end().map_err(|e| format!("invalid JSON object: {e}"))?;
    Ok(picked)
}

/// The top-level field `name` of the JSON object in `bytes` (see [`fields`]).
pub fn get(bytes: &[u8], name: &str) -> Result<Option<Value>, String> {
    let [value] = fields(bytes, [name])?;
    Ok(value)
}

/// Whether the top-level field `name` of the JSON object in `bytes` has
/// the text `expected` (see [`text`]; `false` when the field is absent,
/// `null`, an array or an object). Fails as [`fields`] does. For plain
/// objects it compares the field's raw text, building nothing.
pub fn field_text_is(bytes: &[u8], name: &str, expected: &str) -> Result<bool, String> {
    if let Some([raw]) = crate::scan::raw_fields(bytes, &[name]) {
        let known = match raw {
            None => Some(false),
            Some(raw) => crate::scan::raw_text_is(raw, expected),
        };
        if let Some(is) = known {
            return Ok(is);
        }
    }
    Ok(get(bytes, name)?.is_some_and(|v| text(&v).is_some_and(|t| t == expected)))
}

/// A scalar as text: a string as itself, a number or boolean as its JSON
/// text (`42`, `1.5`, `true`). `null`, arrays and objects have no text.
pub fn text(value: &Value) -> Option<Cow<'_, str>> {
    match value {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// Like [`text`], but takes the value, so a string is moved, not copied.
pub fn into_text(value: Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// A number as an `i64`: an integer in range, or a float with no fractional
/// part in range (`1.7e12` is a timestamp too). Anything else is `None`.
pub fn as_i64(value: &Value) -> Option<i64> {
    if let Some(i) = value.as_i64() {
        return Some(i);
    }
    let f = value.as_f64()?;
    // The bounds are exactly representable: -2^63 and 2^63.
    #[allow(clippy::cast_precision_loss)]
    let in_range = f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64;
    #[allow(clippy::cast_possible_truncation)]
    in_range.then_some(f as i64)
}

/// Picks some top-level fields of an object.
struct Pick<'n, const N: usize> {
    names: &'n [&'n str; N],
}

impl<'de, const N: usize> DeserializeSeed<'de> for Pick<'_, N> {
    type Value = [Option<Value>; N];

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, const N: usize> Visitor<'de> for Pick<'_, N> {
    type Value = [Option<Value>; N];

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = [const { None }; N];
        while let Some(index) = map.next_key_seed(KeyIndex { names: self.names })? {
            match index {
                Some(i) => out[i] = Some(map.next_value()?),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(out)
    }
}

/// Decodes an object key into the index of the wanted name it equals.
struct KeyIndex<'n, const N: usize> {
    names: &'n [&'n str; N],
}

impl<'de, const N: usize> DeserializeSeed<'de> for KeyIndex<'_, N> {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<const N: usize> Visitor<'_> for KeyIndex<'_, N> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(self.names.iter().position(|name| *name == key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CLICK: &[u8] =
        br#"{"user_id": 7, "page": "/home", "action": "click", "ts": 1700000000123}"#;

    #[test]
    fn fields_picks_in_the_order_asked() {
        let [ts, page, missing] = fields(CLICK, ["ts", "page", "nope"]).unwrap();
        assert_eq!(ts, Some(json!(1_700_000_000_123_i64)));
        assert_eq!(page, Some(json!("/home")));
        assert_eq!(missing, None);
    }

    #[test]
    fn fields_agrees_with_parse() {
        let whole = parse(CLICK).unwrap();
        for name in ["user_id", "page", "action", "ts"] {
            assert_eq!(get(CLICK, name).unwrap().as_ref(), field(&whole, name));
        }
    }

    #[test]
    fn escaped_keys_and_nested_values() {
        let bytes = br#"{"a\"b": {"x": [1, 2]}, "p\u0061ge": "/docs", "n": null}"#;
        let [quoted, page, n] = fields(bytes, ["a\"b", "page", "n"]).unwrap();
        assert_eq!(quoted, Some(json!({"x": [1, 2]})));
        assert_eq!(page, Some(json!("/docs")));
        assert_eq!(n, Some(Value::Null));
    }

    #[test]
    fn last_duplicate_wins() {
        assert_eq!(get(br#"{"a": 1, "a": 2}"#, "a").unwrap(), Some(json!(2)));
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        for bad in [&b""[..], b"{", br#"{"a": }"#, br#"{"a": 1} x"#, b"\xff"] {
            assert!(fields(bad, ["a"]).is_err(), "{bad:?}");
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        // Well-formed JSON that is not an object has no fields.
        for not_object in [&b"[1]"[..], b"42", b"\"a\"", b"null"] {
            assert!(fields(not_object, ["a"]).is_err(), "{not_object:?}");
        }
    }

    #[test]
    fn text_of_scalars() {
        assert_eq!(text(&json!("x")).as_deref(), Some("x"));
        assert_eq!(text(&json!(42)).as_deref(), Some("42"));
        assert_eq!(text(&json!(-1.5)).as_deref(), Some("-1.5"));
        assert_eq!(text(&json!(true)).as_deref(), Some("true"));
        assert_eq!(text(&Value::Null), None);
        assert_eq!(text(&json!([1])), None);
        assert_eq!(text(&json!({})), None);
        for v in [
            json!("x"),
            json!(42),
            json!(-1.5),
            json!(false),
            Value::Null,
            json!([1]),
        ] {
            assert_eq!(into_text(v.clone()), text(&v).map(Cow::into_owned));
        }
    }

    #[test]
    fn integers() {
        assert_eq!(as_i64(&json!(5)), Some(5));
        assert_eq!(as_i64(&json!(-5)), Some(-5));
        assert_eq!(as_i64(&json!(1.7e12)), Some(1_700_000_000_000));
        assert_eq!(as_i64(&json!(1.5)), None);
        assert_eq!(as_i64(&json!(1e300)), None);
        assert_eq!(as_i64(&json!(u64::MAX)), None);
        assert_eq!(as_i64(&json!("5")), None);
    }

    #[test]
    fn encodes() {
        assert_eq!(to_vec(&json!({"a": 1})).unwrap(), br#"{"a":1}"#);
    }
}
