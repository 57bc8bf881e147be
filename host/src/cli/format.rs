//! `quiver consume --format`: a kcat-style template, or `json`.
//!
//! Template placeholders: `%t` topic, `%p` partition, `%o` offset, `%k`
//! key, `%v` value, `%T` timestamp (ms), `%h` headers (`k=v,k=v`), `%%` a
//! percent sign; escapes `\t`, `\n` and `\\`. A template prints a null key
//! or value (a tombstone) as the `--null-marker` text, empty by default as
//! in kcat. `json` prints one object per record, a null key or value as
//! `null`.

use anyhow::bail;
use quiver_client::ConsumerRecord;
use serde_json::json;

use super::text::ValueFormat;

/// A parsed `--format`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RecordFormat {
    /// One JSON object per record.
    Json,
    /// Literal text and placeholders, in order.
    Template(Vec<Piece>),
}

/// A part of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece {
    Text(String),
    Topic,
    Partition,
    Offset,
    Key,
    Value,
    Timestamp,
    Headers,
}

impl RecordFormat {
    /// Parses `--format`, refusing unknown placeholders and escapes.
    pub(crate) fn parse(format: &str) -> anyhow::Result<Self> {
        if format == "json" {
            return Ok(Self::Json);
        }
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut chars = format.chars();
        while let Some(c) = chars.next() {
            let piece = match c {
                '%' => match chars.next() {
                    Some('t') => Piece::Topic,
                    Some('p') => Piece::Partition,
                    Some('o') => Piece::Offset,
                    Some('k') => Piece::Key,
                    Some('v') => Piece::Value,
                    Some('T') => Piece::Timestamp,
                    Some('h') => Piece::Headers,
                    Some('%') => {
                        text.push('%');
                        continue;
                    }
                    Some(other) => bail!("unknown placeholder %{other} in --format"),
                    None => bail!("--format ends with a lone %"),
                },
                '\\' => {
                    match chars.next() {
                        Some('t') => text.push('\t'),
                        Some('n') => text.push('\n'),
                        Some('\\') => text.push('\\'),
                        Some(other) => bail!("unknown escape \\{other} in --format"),
                        None => bail!("--format ends with a lone \\"),
                    }
                    continue;
                }
                c => {
                    text.push(c);
                    continue;
                }
            };
            if !text.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut text)));
            }
            pieces.push(piece);
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(Self::Template(pieces))
    }

    /// The record as one output line (without the newline).
    /// `null` is the text for a null key or value in a template.
    pub(crate) fn render(
        &self,
        record: &ConsumerRecord,
        values: ValueFormat,
        null: &str,
    ) -> String {
        match self {
            Self::Json => render_json(record, values),
            Self::Template(pieces) => {
                let size = record.value.as_ref().map_or(0, bytes::Bytes::len);
                let mut out = String::with_capacity(size + 32);
                for piece in pieces {
                    match piece {
                        Piece::Text(text) => out.push_str(text),
                        Piece::Topic => out.push_str(&record.topic),
                        Piece::Partition => out.push_str(&record.partition.to_string()),
                        Piece::Offset => out.push_str(&record.offset.to_string()),
                        Piece::Key => match &record.key {
                            Some(key) => out.push_str(&String::from_utf8_lossy(key)),
                            None => out.push_str(null),
                        },
                        Piece::Value => match &record.value {
                            Some(value) => out.push_str(&values.encode(value)),
                            None => out.push_str(null),
                        },
                        Piece::Timestamp => out.push_str(&record.timestamp.to_string()),
                        Piece::Headers => {
                            let headers: Vec<String> = record
                                .headers
                                .iter()
                                .map(|h| {
                                    let value = h.value.as_deref().map(String::from_utf8_lossy);
                                    format!("{}={}", h.key, value.unwrap_or_default())
                                })
                                .collect();
                            out.push_str(&headers.join(","));
                        }
                    }
                }
                out
            }
        }
    }
}

fn render_json(record: &ConsumerRecord, values: ValueFormat) -> String {
    let headers: Vec<serde_json::Value> = record
        .headers
        .iter()
        .map(|h| {
            json!({
                "key": h.key,
                "value": h.value.as_deref().map(String::from_utf8_lossy),
            })
        })
        .collect();
    json!({
        "topic": &*record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp,
        "key": record.key.as_deref().map(String::from_utf8_lossy),
        "value": record.value.as_deref().map(|v| values.encode(v)),
        "headers": headers,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn record(key: Option<&'static [u8]>) -> ConsumerRecord {
        ConsumerRecord {
            topic: "click".into(),
            partition: 2,
            offset: 41,
            timestamp: 1_700,
            key: key.map(Bytes::from_static),
            value: Some(Bytes::from_static(b"hi")),
            headers: vec![quiver_client::Header {
                key: "h".into(),
                value: Some(Bytes::from_static(b"x")),
            }],
        }
    }

    #[test]
    fn templates_fill_every_placeholder_and_escape() {
        let format = RecordFormat::parse("%t/%p@%o %k=%v %T %h 100%%\\t|\\n\\\\").unwrap();
        assert_eq!(
            format.render(&record(Some(b"u1")), ValueFormat::Text, ""),
            "click/2@41 u1=hi 1700 h=x 100%\t|\n\\"
        );
        let hex = RecordFormat::parse("%v").unwrap();
        assert_eq!(hex.render(&record(None), ValueFormat::Hex, ""), "6869");
    }

    #[test]
    fn a_null_key_or_value_prints_as_the_marker_or_null() {
        let tombstone = ConsumerRecord {
            value: None,
            ..record(None)
        };
        let format = RecordFormat::parse("%k|%v").unwrap();
        assert_eq!(format.render(&tombstone, ValueFormat::Text, ""), "|");
        assert_eq!(
            format.render(&tombstone, ValueFormat::Hex, "NULL"),
            "NULL|NULL"
        );
        let empty = ConsumerRecord {
            value: Some(Bytes::new()),
            ..record(Some(b""))
        };
        assert_eq!(format.render(&empty, ValueFormat::Text, "NULL"), "|");
        let line = RecordFormat::Json.render(&tombstone, ValueFormat::Base64, "NULL");
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            (&value["key"], &value["value"]),
            (&json!(null), &json!(null))
        );
    }

    #[test]
    fn json_shows_a_missing_key_as_null() {
        let line = RecordFormat::Json.render(&record(None), ValueFormat::Text, "");
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            value,
            json!({"topic": "click", "partition": 2, "offset": 41, "timestamp": 1700,
                   "key": null, "value": "hi", "headers": [{"key": "h", "value": "x"}]})
        );
        let keyed = RecordFormat::Json.render(&record(Some(b"u1")), ValueFormat::Base64, "");
        assert!(keyed.contains(r#""key":"u1""#) && keyed.contains(r#""value":"aGk=""#));
    }

    #[test]
    fn bad_formats_are_refused() {
        for bad in ["%v %q", "%", "\\x", "\\"] {
            assert!(RecordFormat::parse(bad).is_err(), "{bad}");
        }
    }
}
