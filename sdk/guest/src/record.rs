//! Conveniences on the generated record types.

use crate::{Headers, InputRecord, OutputRecord};

impl OutputRecord {
    /// A record for the default output with `value`, no key, no headers and
    /// no timestamp (the host stamps it when it commits).
    pub fn new(value: Vec<u8>) -> Self {
        Self {
            output: None,
            key: None,
            value: Some(value),
            headers: Headers::new(),
            timestamp: None,
        }
    }

    /// A tombstone for `key` on the default output: a record with a null
    /// value (in a compacted topic, "delete this key").
    pub fn tombstone(key: Vec<u8>) -> Self {
        Self {
            output: None,
            key: Some(key),
            value: None,
            headers: Headers::new(),
            timestamp: None,
        }
    }

    /// The input record passed through unchanged (key, value, headers and
    /// timestamp; a tombstone stays one) to the default output.
    pub fn forward(input: &InputRecord<'_>) -> Self {
        Self {
            output: None,
            key: input.key.map(<[u8]>::to_vec),
            value: input.value.map(<[u8]>::to_vec),
            headers: input
                .headers
                .iter()
                .map(|&(name, value)| (name.to_owned(), value.map(<[u8]>::to_vec)))
                .collect(),
            timestamp: Some(input.timestamp),
        }
    }

    /// Sends the record to the output named `name` (mapped to a topic at
    /// deploy with `--output NAME=TOPIC`) instead of the default output.
    #[must_use]
    pub fn to_output(mut self, name: impl Into<String>) -> Self {
        self.output = Some(name.into());
        self
    }

    /// Replaces the key.
    #[must_use]
    pub fn with_key(mut self, key: Option<Vec<u8>>) -> Self {
        self.key = key;
        self
    }

    /// Replaces the value.
    #[must_use]
    pub fn with_value(mut self, value: Vec<u8>) -> Self {
        self.value = Some(value);
        self
    }

    /// Replaces the headers.
    #[must_use]
    pub fn with_headers(mut self, headers: Headers) -> Self {
        self.headers = headers;
        self
    }

    /// Sets the timestamp (milliseconds since the Unix epoch).
    #[must_use]
    pub fn with_timestamp(mut self, timestamp: i64) -> Self {
        self.timestamp = Some(timestamp);
        self
    }
}

impl InputRecord<'_> {
    /// Where the record comes from, for error messages:
    /// `topic/partition@offset`.
    pub fn position(&self) -> String {
        format!("{}/{}@{}", self.topic, self.partition, self.offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> InputRecord<'static> {
        InputRecord {
            topic: "click",
            partition: 2,
            offset: 7,
            timestamp: 1_000,
            key: Some(b"k"),
            value: Some(b"v"),
            headers: vec![("h", None)],
        }
    }

    #[test]
    fn forward_keeps_everything_but_position() {
        let out = OutputRecord::forward(&input());
        assert_eq!(out.output, None);
        assert_eq!(out.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(out.value.as_deref(), Some(&b"v"[..]));
        assert_eq!(out.headers, vec![("h".to_string(), None)]);
        assert_eq!(out.timestamp, Some(1_000));
    }

    #[test]
    fn builders() {
        let out = OutputRecord::new(b"x".to_vec())
            .to_output("upload")
            .with_key(Some(b"a".to_vec()))
            .with_timestamp(5);
        assert_eq!(out.output.as_deref(), Some("upload"));
        assert_eq!(out.key.as_deref(), Some(&b"a"[..]));
        assert_eq!(out.timestamp, Some(5));
        assert_eq!(input().position(), "click/2@7");
    }

    #[test]
    fn a_tombstone_stays_one() {
        let tombstone = InputRecord {
            value: None,
            ..input()
        };
        assert_eq!(OutputRecord::forward(&tombstone).value, None);
        assert_eq!(tombstone.value_or_empty(), b"");
        let out = OutputRecord::tombstone(b"k".to_vec());
        assert_eq!((out.key.as_deref(), out.value), (Some(&b"k"[..]), None));
    }
}
