//! Records across the guest boundary: stored batches decoded into the
//! contract's input records, and a call's output records encoded into
//! batches for their output partitions.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use quiver_proto::api::TopicCompression;
use quiver_proto::batch::{
    BatchBuilder, BatchError, Compression, Header, NewRecord, compress, decompress, split_batches,
};
use quiver_proto::partitioner::partition_for_key;

use crate::storage::{NewBatch, Storage, Topic};
use crate::wasm::{InputRecord, OutputRecord};

/// Most input records passed to one `process` call.
pub const MAX_RECORDS_PER_CALL: usize = 16_384;
/// Most input batch bytes read for one `process` call (at least one batch
/// is read, however large).
pub const MAX_INPUT_BYTES_PER_CALL: usize = 4 * 1024 * 1024;
/// The header that carries the error on a dead-lettered record.
pub const ERROR_HEADER: &str = "quiver-error";
/// The header that names a dead-lettered record's origin
/// (`topic/partition@offset`).
pub const SOURCE_HEADER: &str = "quiver-source";

/// A header as the guest sees it, borrowed from the stored batch.
type HeaderRef<'a> = (&'a str, Option<&'a [u8]>);

/// A call's input, borrowed from the stored batches: records of one
/// partition in offset order. [`records`](Self::records) lays them out as
/// the contract's input records without copying keys, values or headers.
#[derive(Debug, Default)]
pub struct InputBatch<'a> {
    topic: &'a str,
    partition: u32,
    rows: Vec<Row<'a>>,
    headers: Vec<HeaderRef<'a>>,
    /// The stored batches the rows come from, whole.
    batches: Vec<&'a [u8]>,
    /// The offset after the last record taken: the partition's position
    /// once the batch is committed.
    pub next_offset: u64,
}

/// One record, its headers a range of [`InputBatch::headers`].
#[derive(Debug)]
struct Row<'a> {
    offset: u64,
    timestamp: i64,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
    headers: std::ops::Range<usize>,
    /// Index of its stored batch in [`InputBatch::batches`].
    batch: usize,
}

impl<'a> InputBatch<'a> {
    /// The records, ready to pass to the guest.
    pub fn records(&self) -> Vec<InputRecord<'_>> {
        self.rows
            .iter()
            .map(|row| InputRecord {
                topic: self.topic,
                partition: self.partition,
                offset: row.offset,
                timestamp: row.timestamp,
                key: row.key,
                value: row.value,
                headers: &self.headers[row.headers.clone()],
            })
            .collect()
    }

    /// The stored batches holding the records `range` (of
    /// [`records`](Self::records)), for modules that take whole batches.
    pub fn batches_for(&self, range: std::ops::Range<usize>) -> &[&'a [u8]] {
        match (
            self.rows.get(range.start),
            range.end.checked_sub(1).and_then(|i| self.rows.get(i)),
        ) {
            (Some(first), Some(last)) if range.start < range.end => {
                &self.batches[first.batch..=last.batch]
            }
            _ => &[],
        }
    }
}

/// A stored batch that fails its checks when read back for a guest: its
/// CRC-32C does not match, or its framing does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the stored batch at {topic}/{partition} offset {offset} is damaged: {reason}")]
pub struct DamagedBatch {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// The batch's base offset (or, if its header does not parse, the offset
    /// reading stopped at).
    pub offset: u64,
    /// What is wrong.
    pub reason: BatchError,
}

/// `bytes` (stored batches back to back) with each compressed batch
/// replaced by its decompressed form, so that [`decode_input`] can read its
/// records and guests receive plain batches; borrowed when none is
/// compressed. Reading stops early, keeping the batches taken so far, once
/// the decompressed batches would pass [`MAX_INPUT_BYTES_PER_CALL`] (at
/// least one is taken; the rest is read again by the next call). A batch that cannot
/// be read (damaged, or records that do not decompress) is kept as stored
/// with everything after it, for [`decode_input`] to report.
pub fn plain_input(bytes: &[u8]) -> Cow<'_, [u8]> {
    let mut plain: Option<Vec<u8>> = None;
    let mut pos = 0;
    for view in split_batches(bytes) {
        let Ok(view) = view else { break };
        let stored = view.as_bytes();
        let batch = match view.compression() {
            Ok(Compression::None) => Cow::Borrowed(stored),
            Ok(_) if view.verify_crc().is_ok() => match decompress(stored) {
                Ok(batch) => batch,
                Err(_) => break,
            },
            _ => break,
        };
        if plain.is_none() && matches!(batch, Cow::Owned(_)) {
            plain = Some(bytes[..pos].to_vec());
        }
        if let Some(out) = &mut plain {
            if pos > 0 && out.len() + batch.len() > MAX_INPUT_BYTES_PER_CALL {
                return Cow::Owned(std::mem::take(out));
            }
            out.extend_from_slice(&batch);
        }
        pos += stored.len();
    }
    match plain {
        None => Cow::Borrowed(bytes),
        Some(mut out) => {
            out.extend_from_slice(&bytes[pos..]);
            Cow::Owned(out)
        }
    }
}

/// Decodes the records at or after `from` in `bytes` (whole batches back to
/// back, decompressed by [`plain_input`]), at most `max` of them. Each batch's CRC-32C is checked first (a
/// bit flipped on disk must not reach a guest): reading stops before a
/// damaged batch, so the records ahead of it are returned, and a call that
/// starts at a damaged batch fails with [`DamagedBatch`].
pub fn decode_input<'a>(
    topic: &'a str,
    partition: u32,
    bytes: &'a [u8],
    from: u64,
    max: usize,
) -> Result<InputBatch<'a>, DamagedBatch> {
    let mut out = InputBatch {
        topic,
        partition,
        rows: Vec::new(),
        headers: Vec::new(),
        batches: Vec::new(),
        next_offset: from,
    };
    let damaged = |offset: u64, reason: BatchError| DamagedBatch {
        topic: topic.to_owned(),
        partition,
        offset,
        reason,
    };
    for view in split_batches(bytes) {
        let view = match view.and_then(|view| view.verify_crc().map(|()| view)) {
            Ok(view) if view.compression() != Ok(Compression::None) => {
                // Left compressed by `plain_input` because it does not decompress.
                let reason = decompress(view.as_bytes())
                    .err()
                    .unwrap_or(BatchError::UnsupportedCompression(0));
                if out.rows.is_empty() {
                    return Err(damaged(view.base_offset(), reason));
                }
                return Ok(out);
            }
            Ok(view) => view,
            Err(e) if out.rows.is_empty() => return Err(damaged(out.next_offset, e)),
            Err(_) => return Ok(out),
        };
        let base = view.base_offset();
        let log_append = view.is_log_append_time().then(|| view.max_timestamp());
        let mark = (
            out.rows.len(),
            out.headers.len(),
            out.next_offset,
            out.batches.len(),
        );
        for record in view.records() {
            let record = match record {
                Ok(record) => record,
                // A batch is taken whole or not at all.
                Err(e) if mark.0 == 0 => return Err(damaged(base, e)),
                Err(_) => {
                    out.rows.truncate(mark.0);
                    out.headers.truncate(mark.1);
                    out.batches.truncate(mark.3);
                    out.next_offset = mark.2;
                    return Ok(out);
                }
            };
            let offset = base + u64::from(record.offset_delta.max(0).cast_unsigned());
            if offset < from {
                continue;
            }
            if out.rows.len() == max {
                return Ok(out);
            }
            let first_header = out.headers.len();
            out.headers.extend(record.headers());
            if out.batches.len() == mark.3 {
                out.batches.push(view.as_bytes());
            }
            out.rows.push(Row {
                offset,
                timestamp: log_append.unwrap_or(record.timestamp),
                key: record.key,
                value: record.value,
                headers: first_header..out.headers.len(),
                batch: out.batches.len() - 1,
            });
            out.next_offset = offset + 1;
        }
        out.next_offset = out.next_offset.max(view.last_offset() + 1);
    }
    Ok(out)
}

/// Where a transform's outputs go.
#[derive(Debug, Clone)]
pub struct Routes {
    /// The default output topic.
    pub default: String,
    /// Named outputs: name to topic.
    pub named: HashMap<String, String>,
}

impl Routes {
    /// The topic for an output record's `output` name.
    pub fn topic(&self, output: Option<&str>) -> Result<&str, String> {
        match output {
            None => Ok(&self.default),
            Some(name) => self.named.get(name).map(String::as_str).ok_or_else(|| {
                format!("the module wrote to output {name:?}, which this transform does not map (deploy with --output {name}=TOPIC)")
            }),
        }
    }

    /// Fails if a record names an output this transform does not map.
    pub fn check(&self, outputs: &[OutputRecord]) -> Result<(), String> {
        outputs
            .iter()
            .try_for_each(|record| self.topic(record.output.as_deref()).map(|_| ()))
    }
}

/// Encodes output records into batches per output partition, in the order
/// given. Keyed records go to the partition Kafka's partitioner picks for
/// the key; unkeyed ones to the input partition's number modulo the output
/// topic's partition count (`input_partition` is 0 for `on-tick` outputs).
/// A record without a timestamp gets `now_ms`.
pub fn encode_outputs(
    storage: &Storage,
    routes: &Routes,
    outputs: Vec<OutputRecord>,
    input_partition: u32,
    now_ms: i64,
) -> Result<Vec<NewBatch>, String> {
    let mut topics: HashMap<&str, Arc<Topic>> = HashMap::new();
    // Per output partition: its handle, the batch being filled, and the
    // output topic's compression.type.
    let mut open: Vec<(
        Arc<crate::storage::Partition>,
        BatchBuilder,
        TopicCompression,
    )> = Vec::new();
    let mut index: HashMap<(u64, u32), usize> = HashMap::new();
    let mut sealed: Vec<NewBatch> = Vec::new();
    for record in outputs {
        let topic_name = routes.topic(record.output.as_deref())?;
        let topic = if let Some(topic) = topics.get(topic_name) {
            Arc::clone(topic)
        } else {
            let topic = storage
                .topic(topic_name)
                .map_err(|e| format!("output topic: {e}"))?;
            topics.insert(topic_name, Arc::clone(&topic));
            topic
        };
        let count = topic.partitions.len() as u32;
        let partition = match &record.key {
            Some(key) => partition_for_key(key, count),
            None => input_partition % count.max(1),
        };
        let Some(handle) = topic.partition(partition) else {
            return Err(format!("output topic {topic_name:?} has no partitions"));
        };
        let headers = output_headers(record.headers);
        let new = NewRecord {
            key: record.key.as_deref(),
            value: record.value.as_deref(),
            headers: &headers,
            timestamp: record.timestamp.unwrap_or(now_ms),
        };
        let slot = *index.entry((topic.id, partition)).or_insert_with(|| {
            let compression = topic.config.compression;
            open.push((Arc::clone(handle), BatchBuilder::default(), compression));
            open.len() - 1
        });
        let (_, builder, compression) = &mut open[slot];
        if builder.push(&new).is_err() {
            // The batch is full: seal it and start the next one.
            let full = std::mem::take(builder);
            sealed.push(seal(Arc::clone(handle), full, *compression));
            builder
                .push(&new)
                .map_err(|e| format!("output record does not fit a batch: {e}"))?;
        }
    }
    sealed.extend(
        open.into_iter()
            .filter(|(_, builder, _)| !builder.is_empty())
            .map(|(partition, builder, compression)| seal(partition, builder, compression)),
    );
    Ok(sealed)
}

/// An output record's headers as batch headers.
pub fn output_headers(headers: Vec<(String, Option<Vec<u8>>)>) -> Vec<Header> {
    headers
        .into_iter()
        .map(|(key, value)| Header {
            key,
            value: value.map(Bytes::from),
        })
        .collect()
}

/// The input records of a failed call as dead letters: unchanged, plus a
/// header with the error and one naming where each came from.
pub fn dead_letters(records: &[InputRecord<'_>], error: &str) -> Vec<OutputRecord> {
    records
        .iter()
        .map(|record| {
            let mut headers: Vec<(String, Option<Vec<u8>>)> = record
                .headers
                .iter()
                .map(|&(k, v)| (k.to_owned(), v.map(<[u8]>::to_vec)))
                .collect();
            headers.push((ERROR_HEADER.to_owned(), Some(error.as_bytes().to_vec())));
            headers.push((
                SOURCE_HEADER.to_owned(),
                Some(
                    format!("{}/{}@{}", record.topic, record.partition, record.offset).into_bytes(),
                ),
            ));
            OutputRecord {
                output: None,
                key: record.key.map(<[u8]>::to_vec),
                value: record.value.map(<[u8]>::to_vec),
                headers,
                timestamp: Some(record.timestamp),
            }
        })
        .collect()
}

/// Finishes a batch, compressed as its topic's `compression.type` says (a
/// batch that does not compress to within the batch limit stays plain, as
/// a produced one would).
fn seal(
    partition: Arc<crate::storage::Partition>,
    builder: BatchBuilder,
    compression: TopicCompression,
) -> NewBatch {
    let records = builder.record_count();
    let max_timestamp = builder.max_timestamp();
    let mut batch = builder.finish();
    if let TopicCompression::Codec(codec) = compression {
        batch = compress(&batch, codec).unwrap_or(batch);
    }
    NewBatch {
        partition,
        batch: BytesMut::from(Bytes::from(batch)),
        records,
        max_timestamp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quiver_proto::batch::set_base_offset;

    /// A batch of `values` at `base`.
    fn batch(base: u64, values: &[&str]) -> Vec<u8> {
        let mut builder = BatchBuilder::default();
        for value in values {
            builder
                .push(&NewRecord {
                    key: None,
                    value: Some(value.as_bytes()),
                    headers: &[],
                    timestamp: 7,
                })
                .expect("fits");
        }
        let mut bytes = builder.finish();
        set_base_offset(&mut bytes, base);
        bytes
    }

    fn values(batch: &InputBatch<'_>) -> Vec<String> {
        batch
            .records()
            .iter()
            .map(|r| String::from_utf8_lossy(r.value.unwrap_or_default()).into_owned())
            .collect()
    }

    #[test]
    fn compressed_batches_reach_the_guest_decompressed() {
        let mut bytes = batch(0, &["a", "b"]);
        bytes.extend(compress(&batch(2, &["c"]), Compression::Gzip).expect("gzip"));
        bytes.extend(compress(&batch(3, &["d", "e"]), Compression::Zstd).expect("zstd"));
        let plain = plain_input(&bytes);
        assert!(matches!(plain, Cow::Owned(_)));
        let read = decode_input("t", 0, &plain, 1, usize::MAX).expect("intact");
        assert_eq!(values(&read), ["b", "c", "d", "e"]);
        assert_eq!(read.next_offset, 5);
        // The guest gets the plain batches.
        for view in split_batches(read.batches_for(0..4).concat().as_slice()) {
            assert_eq!(view.expect("a batch").compression(), Ok(Compression::None));
        }
        // Nothing compressed: nothing copied.
        let plain_only = batch(0, &["a"]);
        assert!(matches!(plain_input(&plain_only), Cow::Borrowed(_)));
    }

    #[test]
    fn a_compressed_batch_that_does_not_decompress_is_reported() {
        let good = batch(0, &["a"]);
        // gzip's codec on records that are not gzip, the CRC made right.
        let mut bad = batch(1, &["b"]);
        bad[22] |= 1;
        let crc = crc32c::crc32c(&bad[21..]);
        bad[17..21].copy_from_slice(&crc.to_be_bytes());
        let mut bytes = good.clone();
        bytes.extend(&bad);
        let plain = plain_input(&bytes);
        let read = decode_input("t", 0, &plain, 0, usize::MAX).expect("the first batch");
        assert_eq!(values(&read), ["a"]);
        let plain = plain_input(&bad);
        let damaged = decode_input("t", 0, &plain, 1, usize::MAX).unwrap_err();
        assert!(
            matches!(damaged.reason, BatchError::Decompress { codec: 1, .. }),
            "{damaged}"
        );
    }

    #[test]
    fn reading_stops_before_a_damaged_batch_and_fails_at_it() {
        let mut bytes = batch(0, &["a", "b"]);
        let second = bytes.len();
        bytes.extend(batch(2, &["c"]));
        bytes.extend(batch(3, &["d"]));
        // A bit flipped in the second batch's record.
        let last = bytes.len() - batch(3, &["d"]).len() - 1;
        bytes[last] ^= 0x01;

        let read = decode_input("t", 4, &bytes, 0, usize::MAX).expect("the first batch");
        assert_eq!(values(&read), ["a", "b"]);
        assert_eq!(read.next_offset, 2);

        let damaged = decode_input("t", 4, &bytes[second..], 2, usize::MAX).unwrap_err();
        assert_eq!((damaged.partition, damaged.offset), (4, 2));
        assert!(
            matches!(damaged.reason, BatchError::CrcMismatch { .. }),
            "{damaged}"
        );
        assert!(
            damaged
                .to_string()
                .starts_with("the stored batch at t/4 offset 2 is damaged"),
            "{damaged}"
        );
    }

    #[test]
    fn a_call_gets_the_stored_batches_holding_its_records() {
        let first = batch(0, &["a", "b"]);
        let second = batch(2, &["c", "d"]);
        let mut bytes = first.clone();
        bytes.extend(&second);
        // From offset 1: b (first batch), c and d (second).
        let read = decode_input("t", 0, &bytes, 1, usize::MAX).expect("intact");
        assert_eq!(values(&read), ["b", "c", "d"]);
        assert_eq!(read.batches_for(0..3), [&first[..], &second[..]]);
        assert_eq!(read.batches_for(0..1), [&first[..]]);
        assert_eq!(read.batches_for(1..3), [&second[..]]);
        assert!(read.batches_for(2..2).is_empty());
        assert!(read.batches_for(3..4).is_empty());
    }

    #[test]
    fn a_truncated_batch_is_damaged_at_the_offset_reading_stopped() {
        let bytes = batch(5, &["a"]);
        let damaged = decode_input("t", 0, &bytes[..bytes.len() - 1], 5, 10).unwrap_err();
        assert_eq!(damaged.offset, 5);
        let whole = decode_input("t", 0, &bytes, 5, 10).expect("intact");
        assert_eq!(values(&whole), ["a"]);
    }
}
