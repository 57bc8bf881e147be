//! A `process` call's input: the stored record batches the host passes
//! (since contract 0.2.0), decoded into records that borrow from them.

use quiver_proto::batch::BatchView;

use crate::bindings::quiver::transform::types::InputBatch;

/// A header: name, and value (`None` is Kafka's null value, not empty).
pub type HeaderRef<'a> = (&'a str, Option<&'a [u8]>);

/// A record read from an input topic, borrowing its bytes from the call's
/// input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputRecord<'a> {
    /// The input topic.
    pub topic: &'a str,
    /// The input partition.
    pub partition: u32,
    /// The record's offset in its partition.
    pub offset: u64,
    /// Milliseconds since the Unix epoch: the producer's create time, or
    /// the broker's log-append time for topics created with that type.
    pub timestamp: i64,
    /// The key, if the record has one.
    pub key: Option<&'a [u8]>,
    /// The value; `None` is a null value (a tombstone: in a compacted
    /// topic, "delete this key"), which is not an empty one.
    pub value: Option<&'a [u8]>,
    /// The headers, in order.
    pub headers: Vec<HeaderRef<'a>>,
}

impl<'a> InputRecord<'a> {
    /// The value, a null one as empty: for modules that parse values (as
    /// JSON, say), where a tombstone is input they cannot read either.
    pub fn value_or_empty(&self) -> &'a [u8] {
        self.value.unwrap_or_default()
    }
}

/// The records of `input` with offsets in its range, in order. Fails on a
/// batch that does not decode (the host checked each batch's CRC, so this
/// is a host bug or a foreign caller, never the producer's data).
pub fn decode(input: &InputBatch) -> Result<Vec<InputRecord<'_>>, String> {
    let expected = input.end_offset.saturating_sub(input.first_offset);
    let mut records = Vec::with_capacity(usize::try_from(expected).unwrap_or(0).min(65_536));
    for bytes in &input.batches {
        let bad = |e: &dyn std::fmt::Display| {
            format!(
                "input batch of {}/{} does not decode: {e}",
                input.topic, input.partition
            )
        };
        let view = BatchView::parse(bytes).map_err(|e| bad(&e))?;
        let base = view.base_offset();
        for record in view.records() {
            let record = record.map_err(|e| bad(&e))?;
            let offset = base.saturating_add(u64::from(record.offset_delta.max(0).cast_unsigned()));
            if offset < input.first_offset {
                continue;
            }
            if offset >= input.end_offset {
                return Ok(records);
            }
            records.push(InputRecord {
                topic: &input.topic,
                partition: input.partition,
                offset,
                timestamp: record.timestamp,
                key: record.key,
                value: record.value,
                headers: record.headers().collect(),
            });
        }
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use quiver_proto::batch::{BatchBuilder, Header, NewRecord, set_base_offset};

    fn batch(base: u64, values: &[&str]) -> Vec<u8> {
        let mut builder = BatchBuilder::default();
        let headers = [Header {
            key: "h".into(),
            value: Some(Bytes::from_static(b"1")),
        }];
        for (i, value) in values.iter().enumerate() {
            builder
                .push(&NewRecord {
                    key: Some(b"k"),
                    value: Some(value.as_bytes()),
                    headers: if i == 0 { &headers } else { &[] },
                    timestamp: 1_000 + i as i64,
                })
                .unwrap();
        }
        let mut bytes = builder.finish();
        set_base_offset(&mut bytes, base);
        bytes
    }

    #[test]
    fn records_in_range_across_batches() {
        let input = InputBatch {
            topic: "clicks".into(),
            partition: 3,
            batches: vec![batch(10, &["a", "b", "c"]), batch(13, &["d", "e"])],
            first_offset: 11,
            end_offset: 14,
        };
        let records = decode(&input).unwrap();
        let values: Vec<&[u8]> = records.iter().map(InputRecord::value_or_empty).collect();
        assert_eq!(values, [&b"b"[..], b"c", b"d"]);
        assert_eq!(records[0].offset, 11);
        assert_eq!(records[2].offset, 13);
        assert_eq!(records[0].timestamp, 1_001);
        assert_eq!(records[2].headers, [("h", Some(&b"1"[..]))]);
        assert_eq!(records[0].topic, "clicks");
        assert_eq!(records[0].key, Some(&b"k"[..]));
    }

    #[test]
    fn a_batch_that_does_not_decode_is_an_error() {
        let mut bytes = batch(0, &["a"]);
        bytes.truncate(bytes.len() - 1);
        let input = InputBatch {
            topic: "t".into(),
            partition: 0,
            batches: vec![bytes],
            first_offset: 0,
            end_offset: 1,
        };
        let error = decode(&input).unwrap_err();
        assert!(
            error.starts_with("input batch of t/0 does not decode"),
            "{error}"
        );
    }
}
