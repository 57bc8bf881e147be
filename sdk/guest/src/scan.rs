//! The fast path of [`crate::json::fields`]: one pass over a JSON object
//! that checks the whole text and finds the top-level fields asked for,
//! without building the others (`serde_json`'s map visitor decodes every key
//! and costs a few times a plain skip; this is the per-record cost of the
//! example modules).
//!
//! It accepts only what it can check exactly: keys without escapes, strings
//! without `\u` escapes, numbers without an exponent, nesting up to
//! [`MAX_DEPTH`]. Anything else, valid or not, gets `None`, and the caller
//! asks `serde_json`, which then gives the answer (or the error) as before. So
//! when this returns `Some`, `serde_json` would have accepted the text and
//! found the same values (the picked values themselves are parsed by
//! `serde_json`); a property test holds the two to that.

use serde_json::Value;

/// Deepest nesting of arrays and objects taken on the fast path.
const MAX_DEPTH: usize = 64;

/// The top-level fields `names` of the JSON object in `bytes`, or `None`
/// when the text is not a simple, well-formed object (see the module).
pub(crate) fn fields<const N: usize>(
    bytes: &[u8],
    names: &[&str; N],
) -> Option<[Option<Value>; N]> {
    let raw = raw_fields(bytes, names)?;
    let mut out = [const { None }; N];
    for (out, raw) in out.iter_mut().zip(raw) {
        if let Some(raw) = raw {
            *out = Some(picked(raw)?);
        }
    }
    Some(out)
}

/// The raw text of the top-level fields `names` of the JSON object in
/// `bytes` (the last occurrence of each), checked as [`fields`] checks
/// them, or `None` when the text is not a simple, well-formed object.
pub(crate) fn raw_fields<'a, const N: usize>(
    bytes: &'a [u8],
    names: &[&str; N],
) -> Option<[Option<&'a [u8]>; N]> {
    let mut s = Scanner { bytes, pos: 0 };
    let mut out = [None; N];
    s.skip_ws();
    if s.peek()? != b'{' {
        return None;
    }
    s.object(0, false, |key, value| {
        if let Some(i) = names.iter().position(|name| name.as_bytes() == key) {
            out[i] = Some(value);
        }
        Some(())
    })?;
    s.skip_ws();
    (s.pos == bytes.len()).then_some(out)
}

/// Whether the raw text of a scalar checked by the scan has the text
/// `expected` as [`crate::json::text`] gives it, when that can be told
/// from the raw text alone: a string without escapes, `true`, `false`, or
/// an integer that `serde_json` keeps as one. `None` otherwise.
pub(crate) fn raw_text_is(raw: &[u8], expected: &str) -> Option<bool> {
    match raw {
        [b'"', inner @ .., b'"'] if !inner.contains(&b'\\') => Some(inner == expected.as_bytes()),
        b"true" | b"false" | b"null" => Some(raw == expected.as_bytes() && raw != b"null"),
        [b'-' | b'0'..=b'9', ..] => match picked(raw)? {
            Value::Number(n) if n.is_i64() || n.is_u64() => Some(raw == expected.as_bytes()),
            _ => None,
        },
        // Arrays and objects have no text.
        [b'[' | b'{', ..] => Some(false),
        _ => None,
    }
}

/// A picked value, checked by the scan: simple scalars are built here as
/// `serde_json` builds them; the rest is parsed by `serde_json`.
fn picked(text: &[u8]) -> Option<Value> {
    let number = |text: &[u8]| {
        let text = std::str::from_utf8(text).ok()?;
        // As `serde_json` does: a negative integer as i64, else u64; beyond
        // those, f64 (and `-0` as -0.0), left to it.
        if text.starts_with('-') {
            text.parse::<i64>()
                .ok()
                .filter(|&n| n != 0)
                .map(Value::from)
        } else {
            text.parse::<u64>().ok().map(Value::from)
        }
    };
    let built = match text {
        [b'"', raw @ .., b'"'] if !raw.contains(&b'\\') => {
            Some(Value::String(std::str::from_utf8(raw).ok()?.to_owned()))
        }
        b"true" => Some(Value::Bool(true)),
        b"false" => Some(Value::Bool(false)),
        b"null" => Some(Value::Null),
        [b'-' | b'0'..=b'9', ..] if !text.contains(&b'.') => number(text),
        _ => None,
    };
    built.or_else(|| serde_json::from_slice(text).ok())
}

struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        Some(b)
    }

    fn expect(&mut self, b: u8) -> Option<()> {
        (self.next()? == b).then_some(())
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            self.pos += 1;
        }
    }

    /// A string, its raw contents returned; `escapes` allows the escapes
    /// other than `\u` (keys take none, so that they compare raw).
    fn string(&mut self, escapes: bool) -> Option<&'a [u8]> {
        self.expect(b'"')?;
        let start = self.pos;
        let mut ascii = true;
        loop {
            // Runs of plain ASCII are skipped eight bytes at a time.
            let special = first_special(&self.bytes[self.pos..])?;
            self.pos += special;
            match self.next()? {
                b'"' => break,
                b'\\' if escapes => match self.next()? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                    _ => return None,
                },
                b'\\' | 0..=0x1f => return None,
                _ => ascii = false,
            }
        }
        let raw = &self.bytes[start..self.pos - 1];
        if !ascii {
            std::str::from_utf8(raw).ok()?;
        }
        Some(raw)
    }

    /// Skips one value, nested `depth` deep.
    fn value(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'"' => self.string(true).map(drop),
            b'{' => self.object(depth, true, |_, _| Some(())),
            b'[' => self.sequence(b']', |s| s.value(depth + 1)),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    /// An object nested `depth` deep (its values one deeper), starting at
    /// its `{`: each entry's raw key and value text go to `field`. Keys may
    /// hold escapes only if `escaped_keys`.
    fn object(
        &mut self,
        depth: usize,
        escaped_keys: bool,
        mut field: impl FnMut(&'a [u8], &'a [u8]) -> Option<()>,
    ) -> Option<()> {
        self.sequence(b'}', |s| {
            let key = s.string(escaped_keys)?;
            s.skip_ws();
            s.expect(b':')?;
            s.skip_ws();
            let start = s.pos;
            s.value(depth + 1)?;
            field(key, &s.bytes[start..s.pos])
        })
    }

    /// The items of an array or object, from its opening byte to `close`,
    /// comma-separated, each read by `item` (after any whitespace).
    fn sequence(&mut self, close: u8, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.pos += 1;
        self.skip_ws();
        if self.peek() == Some(close) {
            self.pos += 1;
            return Some(());
        }
        loop {
            self.skip_ws();
            item(self)?;
            self.skip_ws();
            match self.next()? {
                b',' => {}
                b if b == close => return Some(()),
                _ => return None,
            }
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.pos.checked_add(word.len())?;
        (self.bytes.get(self.pos..end)? == word).then(|| self.pos = end)
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)?`: no exponent on the fast path.
    fn number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.next()? {
            b'0' => {}
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !self.next()?.is_ascii_digit() {
                return None;
            }
            self.digits();
        }
        // An exponent, or a digit after a leading zero: `serde_json` decides.
        (!matches!(self.peek(), Some(b'e' | b'E' | b'0'..=b'9'))).then_some(())
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
    }
}

/// Whether `b` ends a run of plain string contents: a quote, a backslash,
/// a control character or a byte of a non-ASCII character.
fn is_special(b: u8) -> bool {
    matches!(b, b'"' | b'\\' | 0..=0x1f | 0x80..)
}

/// The index of the first [special](is_special) byte of `bytes`. Eight
/// bytes at a time as one `u64` (SWAR; guests are built without wasm SIMD):
/// `v - 0x01..01 & !v & 0x80..80` marks the bytes of `v` that are zero,
/// and `x - 0x20..20 & !x & 0x80..80` those of `x` below 0x20. A borrow can
/// mark a byte falsely, but only one after a true mark, so the first mark
/// is exact.
fn first_special(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zero = |v: u64| v.wrapping_sub(ONES) & !v;
    let mut chunks = bytes.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        let quote = zero(x ^ (ONES * u64::from(b'"')));
        let backslash = zero(x ^ (ONES * u64::from(b'\\')));
        let control = x.wrapping_sub(ONES * 0x20) & !x;
        let marks = (quote | backslash | control | x) & HIGHS;
        if marks != 0 {
            return Some(offset + (marks.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    let rest = chunks.remainder();
    rest.iter().position(|&b| is_special(b)).map(|i| offset + i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_first_special_byte_is_found_in_any_word_position() {
        for len in 0..20 {
            for at in 0..len {
                for special in [b'"', b'\\', 0, 0x1f, 0x80, 0xff] {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = special;
                    assert_eq!(first_special(&bytes), Some(at), "{bytes:?}");
                    // Later specials, and bytes just outside the classes,
                    // do not move it.
                    bytes.push(b'"');
                    if at > 0 {
                        bytes[at - 1] = if at % 2 == 0 { 0x20 } else { 0x7f };
                    }
                    assert_eq!(first_special(&bytes), Some(at), "{bytes:?}");
                }
            }
            assert_eq!(first_special(&vec![b'!'; len]), None);
        }
    }

    /// What `serde_json` says: the fields, or `None` for an error.
    fn serde_fields<const N: usize>(bytes: &[u8], names: [&str; N]) -> Option<[Option<Value>; N]> {
        let value: Value = serde_json::from_slice(bytes).ok()?;
        let object = value.as_object()?;
        Some(names.map(|name| object.get(name).cloned()))
    }

    #[test]
    fn simple_objects_take_the_fast_path() {
        let event =
            br#"{"user_id":7,"page":"/p1","action":"click","ts":1700000000123,"pad":"x\n"}"#;
        let [ts, page] = fields(event, &["ts", "page"]).expect("fast path");
        assert_eq!(ts, Some(serde_json::json!(1_700_000_000_123_i64)));
        assert_eq!(page, Some(serde_json::json!("/p1")));
        let nested = r#" { "a" : [1, -2.5, {"b": [true, false, null]}], "é": "ü" } "#;
        let [a, e] = fields(nested.as_bytes(), &["a", "é"]).expect("fast path");
        assert_eq!(
            a,
            Some(serde_json::json!([1, -2.5, {"b": [true, false, null]}]))
        );
        assert_eq!(e, Some(serde_json::json!("ü")));
        assert_eq!(fields(b"{}", &["a"]), Some([None]));
        // Built here or by `serde_json`, the same values as `serde_json`'s.
        let scalars = br#"{"a": -0, "b": 18446744073709551615, "c": -9223372036854775809,
            "d": "x\ty", "e": 2.50, "f": -9223372036854775808, "g": 18446744073709551616}"#;
        let names = ["a", "b", "c", "d", "e", "f", "g"];
        assert_eq!(fields(scalars, &names), serde_fields(scalars, names));
    }

    #[test]
    fn what_it_cannot_check_goes_to_serde_json() {
        for text in [
            &br#"{"a\"b": 1}"#[..],
            br#"{"a": "\u0041"}"#,
            br#"{"a": 1e5}"#,
            br#"{"a": 01}"#,
            br#"{"a": 1,}"#,
            br#"{"a": 1} x"#,
            b"[1]",
            b"{\"a\": \"\xff\"}",
            b"{\"a\": \"\x01\"}",
            br#"{"a": tru}"#,
            br#"{"a": -}"#,
            br#"{"a": 1."#,
        ] {
            assert_eq!(
                fields(text, &["a"]),
                None,
                "{}",
                String::from_utf8_lossy(text)
            );
        }
        let deep = format!("{{\"a\": {}1{}}}", "[".repeat(70), "]".repeat(70));
        assert_eq!(fields(deep.as_bytes(), &["a"]), None);
    }

    /// JSON text of objects with a few keys (some the ones asked for),
    /// nested values, and odd but valid spacing.
    fn json_object() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just("null".to_owned()),
            any::<bool>().prop_map(|b| b.to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            (-1e6f64..1e6).prop_map(|f| f.to_string()),
            "[a-z/ é\\\\\"\n]{0,8}".prop_map(|s| serde_json::to_string(&s).unwrap_or_default()),
        ];
        let value = leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                prop::collection::vec(("[a-z]{1,3}", inner), 0..4).prop_map(|kv| {
                    let fields: Vec<String> =
                        kv.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
                    format!("{{{}}}", fields.join(","))
                }),
            ]
        });
        let key = prop_oneof![Just("ts".to_owned()), Just("page".to_owned()), "[a-z]{1,3}"];
        prop::collection::vec((key, value, " {0,2}"), 0..6).prop_map(|fields| {
            let body: Vec<String> = fields
                .iter()
                .map(|(k, v, space)| format!("{space}\"{k}\"{space}:{space}{v}{space}"))
                .collect();
            format!("{{{}}}", body.join(","))
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn first_special_agrees_with_a_byte_by_byte_search(
            bytes in prop::collection::vec(prop_oneof![0x20u8..0x7f, any::<u8>()], 0..40),
        ) {
            prop_assert_eq!(
                first_special(&bytes),
                bytes.iter().position(|&b| is_special(b))
            );
        }

        #[test]
        fn agrees_with_serde_json_on_valid_objects(text in json_object()) {
            let fast = fields(text.as_bytes(), &["ts", "page"]);
            let slow = serde_fields(text.as_bytes(), ["ts", "page"]);
            prop_assert!(slow.is_some(), "generated text is valid: {}", text);
            // Nothing here needs `serde_json`'s path: the fast one answers.
            prop_assert_eq!(fast, slow, "{}", text);
        }

        #[test]
        fn field_text_is_agrees_with_the_text_of_the_parsed_field(
            text in json_object(),
            other in "[a-z0-9./-]{0,4}",
        ) {
            for name in ["ts", "page"] {
                let parsed = serde_fields(text.as_bytes(), [name]).and_then(|[v]| v);
                let own = parsed
                    .as_ref()
                    .and_then(crate::json::text)
                    .map(std::borrow::Cow::into_owned);
                for expected in own.iter().map(String::as_str).chain([other.as_str()]) {
                    let slow = parsed
                        .as_ref()
                        .and_then(crate::json::text)
                        .is_some_and(|t| t == expected);
                    prop_assert_eq!(
                        crate::json::field_text_is(text.as_bytes(), name, expected),
                        Ok(slow),
                        "{} {} {}", text, name, expected
                    );
                }
            }
        }

        #[test]
        fn never_accepts_what_serde_json_refuses(
            text in json_object(),
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut bytes = text.into_bytes();
            for (at, byte) in edits {
                if !bytes.is_empty() {
                    let i = at.index(bytes.len());
                    bytes[i] = byte;
                }
            }
            if !bytes.is_empty() {
                bytes.truncate(cut.index(bytes.len() + 1).max(1));
            }
            if let Some(fast) = fields(&bytes, &["ts", "page"]) {
                prop_assert_eq!(Some(fast), serde_fields(&bytes, ["ts", "page"]), "{:?}", String::from_utf8_lossy(&bytes));
            }
        }
    }
}
