use super::*;

fn sample_batch(n: u32) -> Vec<u8> {
    let mut builder = BatchBuilder::default();
    let headers = [Header {
        key: "source".into(),
        value: Some(Bytes::from_static(b"web")),
    }];
    for i in 0..n {
        let key = format!("user-{i}");
        let value = format!("value-{i}");
        builder
            .push(&NewRecord {
                key: (i % 2 == 0).then_some(key.as_bytes()),
                value: Some(value.as_bytes()),
                headers: if i == 1 { &headers } else { &[] },
                timestamp: 1_700_000_000_000 + i64::from(i) * 7 - 3 * i64::from(i % 3),
            })
            .unwrap();
    }
    builder.finish()
}

#[test]
fn built_batch_validates_and_reads_back() {
    let batch = sample_batch(5);
    let summary = validate(&batch).unwrap();
    assert_eq!(summary.record_count, 5);
    let view = BatchView::parse(&batch).unwrap();
    assert_eq!(view.base_offset(), 0);
    assert_eq!(view.last_offset(), 4);
    let records: Vec<_> = view.records().collect::<Result<_, _>>().unwrap();
    assert_eq!(records.len(), 5);
    assert_eq!(records[0].key, Some(&b"user-0"[..]));
    assert_eq!(records[1].key, None);
    assert_eq!(records[3].value, Some(&b"value-3"[..]));
    let headers: Vec<_> = records[1].headers().collect();
    assert_eq!(headers, vec![("source", Some(&b"web"[..]))]);
    assert_eq!(
        records.iter().map(|r| r.timestamp).max(),
        Some(summary.max_timestamp)
    );
}

#[test]
fn a_null_value_is_not_an_empty_one() {
    let mut builder = BatchBuilder::default();
    for value in [None, Some(&b""[..]), Some(&b"x"[..])] {
        let record = NewRecord {
            key: Some(b"user-1"),
            value,
            headers: &[],
            timestamp: 1,
        };
        builder.push(&record).unwrap();
    }
    let batch = builder.finish();
    let values: Vec<_> = BatchView::parse(&batch)
        .unwrap()
        .records()
        .map(|r| r.unwrap().value)
        .collect();
    assert_eq!(values, [None, Some(&b""[..]), Some(&b"x"[..])]);
}

#[test]
fn base_offset_rewrite_keeps_crc_valid() {
    let mut batch = sample_batch(3);
    set_base_offset(&mut batch, 1_000);
    validate(&batch).unwrap();
    let view = BatchView::parse(&batch).unwrap();
    assert_eq!((view.base_offset(), view.last_offset()), (1_000, 1_002));
}

#[test]
fn every_flipped_bit_after_the_crc_is_caught() {
    let batch = sample_batch(4);
    for byte in ATTRIBUTES_AT..batch.len() {
        let mut bad = batch.clone();
        bad[byte] ^= 0x01;
        assert!(validate(&bad).is_err(), "flip at {byte} went unnoticed");
    }
}

#[test]
fn header_corruptions_have_typed_errors() {
    let batch = sample_batch(2);
    assert!(matches!(
        validate(&batch[..40]),
        Err(BatchError::Truncated { need: 61, have: 40 })
    ));
    assert!(matches!(
        validate(&batch[..batch.len() - 1]),
        Err(BatchError::LengthMismatch { .. })
    ));
    let mut bad = batch.clone();
    bad[MAGIC_AT] = 1;
    assert_eq!(validate(&bad), Err(BatchError::BadMagic(1)));
    let mut bad = batch.clone();
    bad[CRC_AT] ^= 0xff;
    assert!(matches!(
        validate(&bad),
        Err(BatchError::CrcMismatch { .. })
    ));
}

/// Re-seals a hand-modified batch with a correct CRC, so that checks past
/// the CRC are reached.
fn reseal(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[ATTRIBUTES_AT..]);
    batch[CRC_AT..21].copy_from_slice(&crc.to_be_bytes());
}

#[test]
fn checks_past_the_crc() {
    let batch = sample_batch(3);

    let mut bad = batch.clone();
    bad[ATTRIBUTES_AT + 1] = 0x05; // not a codec
    reseal(&mut bad);
    assert_eq!(validate(&bad), Err(BatchError::UnsupportedCompression(5)));

    let mut bad = batch.clone();
    bad[ATTRIBUTES_AT + 1] = 0x20; // control batch
    reseal(&mut bad);
    assert_eq!(validate(&bad), Err(BatchError::UnsupportedAttributes(0x20)));

    let mut bad = batch.clone();
    bad[RECORD_COUNT_AT..61].copy_from_slice(&4i32.to_be_bytes());
    bad[LAST_OFFSET_DELTA_AT..27].copy_from_slice(&3i32.to_be_bytes());
    reseal(&mut bad);
    assert!(matches!(
        validate(&bad),
        Err(BatchError::Varint { index: 3, .. })
    ));

    let mut bad = batch.clone();
    bad[RECORD_COUNT_AT..61].copy_from_slice(&2i32.to_be_bytes());
    bad[LAST_OFFSET_DELTA_AT..27].copy_from_slice(&1i32.to_be_bytes());
    reseal(&mut bad);
    assert!(matches!(validate(&bad), Err(BatchError::TrailingBytes(_))));

    let mut bad = batch.clone();
    bad[LAST_OFFSET_DELTA_AT..27].copy_from_slice(&7i32.to_be_bytes());
    reseal(&mut bad);
    assert!(matches!(
        validate(&bad),
        Err(BatchError::LastOffsetDelta { .. })
    ));

    let mut bad = batch.clone();
    bad[RECORD_COUNT_AT..61].copy_from_slice(&0i32.to_be_bytes());
    reseal(&mut bad);
    assert_eq!(validate(&bad), Err(BatchError::RecordCount(0)));

    let mut bad = batch;
    bad[MAX_TIMESTAMP_AT..43].copy_from_slice(&1i64.to_be_bytes());
    reseal(&mut bad);
    assert!(matches!(
        validate(&bad),
        Err(BatchError::MaxTimestamp { .. })
    ));
}

#[test]
fn split_batches_walks_concatenated_batches() {
    let mut a = sample_batch(2);
    set_base_offset(&mut a, 10);
    let mut b = sample_batch(3);
    set_base_offset(&mut b, 12);
    let mut both = a.clone();
    both.extend_from_slice(&b);
    let views: Vec<_> = split_batches(&both).collect::<Result<_, _>>().unwrap();
    assert_eq!(views.len(), 2);
    assert_eq!(views[1].base_offset(), 12);
    both.truncate(both.len() - 5);
    let results: Vec<_> = split_batches(&both).collect();
    assert!(results[0].is_ok());
    assert!(matches!(results[1], Err(BatchError::LengthMismatch { .. })));
}

#[test]
fn builder_refuses_records_past_the_limit() {
    let big = vec![0u8; MAX_BATCH_BYTES as usize];
    let mut builder = BatchBuilder::default();
    let result = builder.push(&NewRecord {
        key: None,
        value: Some(&big),
        headers: &[],
        timestamp: 0,
    });
    assert!(matches!(result, Err(BatchError::RecordTooLarge { .. })));
    assert!(builder.is_empty());
}

#[test]
fn size_of_a_typical_batch_is_compact() {
    let value = [b'x'; 100];
    let mut builder = BatchBuilder::default();
    for _ in 0..1_000 {
        builder
            .push(&NewRecord {
                key: None,
                value: Some(&value),
                headers: &[],
                timestamp: 1_700_000_000_000,
            })
            .unwrap();
    }
    // 61-byte header, then at most 10 bytes of framing per 100-byte record:
    // two each for the length, value length and offset delta, one each for
    // attributes, timestamp delta, key length and header count.
    let batch = builder.finish();
    assert!(batch.len() <= 61 + 1_000 * 110, "{}", batch.len());
}

mod properties {
    use super::*;
    use proptest::collection::vec;
    use proptest::option;
    use proptest::prelude::*;

    /// A generated record that owns its bytes.
    #[derive(Debug, Clone)]
    struct OwnedRecord {
        key: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
        headers: Vec<Header>,
        timestamp: i64,
    }

    impl OwnedRecord {
        fn as_new(&self) -> NewRecord<'_> {
            NewRecord {
                key: self.key.as_deref(),
                value: self.value.as_deref(),
                headers: &self.headers,
                timestamp: self.timestamp,
            }
        }
    }

    fn header() -> impl Strategy<Value = Header> {
        // Header keys repeat on purpose (a small alphabet): Kafka allows it.
        ("[a-c\u{e9}]{0,3}", option::of(vec(any::<u8>(), 0..8))).prop_map(|(key, value)| Header {
            key,
            value: value.map(Bytes::from),
        })
    }

    fn timestamp() -> impl Strategy<Value = i64> {
        prop_oneof![
            4 => 1_500_000_000_000i64..2_000_000_000_000,
            1 => Just(-1i64),
            1 => Just(0i64),
            // Far apart: deltas take the widest varlongs.
            1 => -(1i64 << 61)..(1i64 << 61),
        ]
    }

    fn record() -> impl Strategy<Value = OwnedRecord> {
        (
            option::of(vec(any::<u8>(), 0..32)),
            // Values of up to 300 bytes (length varints of one and two
            // bytes), and null values.
            option::weighted(0.9, vec(any::<u8>(), 0..300)),
            vec(header(), 0..4),
            timestamp(),
        )
            .prop_map(|(key, value, headers, timestamp)| OwnedRecord {
                key,
                value,
                headers,
                timestamp,
            })
    }

    fn build(records: &[OwnedRecord]) -> Vec<u8> {
        let mut builder = BatchBuilder::default();
        for record in records {
            builder.push(&record.as_new()).unwrap();
        }
        builder.finish()
    }

    /// Every accessor and every record of a parsed view, which must not
    /// panic whatever the bytes. Returns how many records read cleanly.
    fn read_everything(view: &BatchView<'_>) -> usize {
        let _ = (
            view.base_offset(),
            view.last_offset(),
            view.partition_leader_epoch(),
            view.attributes(),
            view.base_timestamp(),
            view.max_timestamp(),
            view.producer_id(),
            view.record_count(),
            view.verify_crc(),
        );
        let mut ok = 0;
        for record in view.records() {
            let Ok(record) = record else { break };
            ok += 1;
            assert_eq!(record.headers().count(), record.header_count() as usize);
        }
        ok
    }

    /// Fixes `batch_length` and magic and re-seals the CRC, so that arbitrary
    /// bytes get past the header checks and into record parsing.
    fn plausible(mut bytes: Vec<u8>) -> Vec<u8> {
        if bytes.len() < HEADER_BYTES {
            bytes.resize(HEADER_BYTES, 0);
        }
        let len = (bytes.len() - LOG_OVERHEAD) as i32;
        bytes[BATCH_LENGTH_AT..12].copy_from_slice(&len.to_be_bytes());
        bytes[MAGIC_AT] = MAGIC as u8;
        bytes[ATTRIBUTES_AT..23].copy_from_slice(&0i16.to_be_bytes());
        reseal(&mut bytes);
        bytes
    }

    proptest! {
        #[test]
        fn random_records_round_trip(
            records in vec(record(), 1..40),
            base_offset in any::<u64>(),
        ) {
            let mut builder = BatchBuilder::default();
            for record in &records {
                let before = builder.size_bytes();
                let expected = builder.encoded_len(&record.as_new());
                builder.push(&record.as_new()).unwrap();
                prop_assert_eq!(builder.size_bytes() - before, expected);
            }
            prop_assert_eq!(builder.record_count() as usize, records.len());
            let size = builder.size_bytes();
            let mut batch = builder.finish();
            prop_assert_eq!(batch.len(), size);
            // Any base offset, even one past i64::MAX, leaves the batch valid.
            set_base_offset(&mut batch, base_offset);

            let summary = validate(&batch).unwrap();
            prop_assert_eq!(summary.record_count as usize, records.len());
            prop_assert_eq!(summary.base_timestamp, records[0].timestamp);
            prop_assert_eq!(
                Some(summary.max_timestamp),
                records.iter().map(|r| r.timestamp).max()
            );

            let view = BatchView::parse(&batch).unwrap();
            prop_assert_eq!(view.base_offset(), base_offset);
            let read: Vec<_> = view.records().collect::<Result<_, _>>().unwrap();
            prop_assert_eq!(read.len(), records.len());
            for ((got, want), i) in read.iter().zip(&records).zip(0i32..) {
                prop_assert_eq!(got.offset_delta, i);
                prop_assert_eq!(got.timestamp, want.timestamp);
                prop_assert_eq!(got.key, want.key.as_deref());
                prop_assert_eq!(got.value, want.value.as_deref());
                let headers: Vec<_> = got.headers().collect();
                let expected: Vec<_> = want
                    .headers
                    .iter()
                    .map(|h| (h.key.as_str(), h.value.as_deref()))
                    .collect();
                prop_assert_eq!(headers, expected);
            }

            let split: Vec<_> = split_batches(&batch).collect::<Result<_, _>>().unwrap();
            prop_assert_eq!(split.len(), 1);
            prop_assert_eq!(split[0].as_bytes(), &batch[..]);
        }

        #[test]
        fn validate_and_split_never_panic_on_arbitrary_bytes(bytes in vec(any::<u8>(), 0..512)) {
            let _ = validate(&bytes);
            if let Ok(view) = BatchView::parse(&bytes) {
                read_everything(&view);
            }
            for view in split_batches(&bytes).flatten() {
                let _ = validate(view.as_bytes());
                read_everything(&view);
            }
        }

        #[test]
        fn validate_never_panics_past_the_header(bytes in vec(any::<u8>(), 0..512)) {
            let bytes = plausible(bytes);
            let view = BatchView::parse(&bytes).unwrap();
            prop_assert!(view.verify_crc().is_ok());
            let clean = read_everything(&view);
            if let Ok(summary) = validate(&bytes) {
                prop_assert_eq!(summary.record_count as usize, clean);
            }
        }

        #[test]
        fn single_byte_mutations_are_caught_or_harmless(
            records in vec(record(), 1..8),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            reseal_crc in any::<bool>(),
        ) {
            let mut batch = build(&records);
            let at = at.index(batch.len());
            batch[at] = byte;
            if reseal_crc {
                // Without a fresh CRC almost every mutation stops there.
                reseal(&mut batch);
            }
            match validate(&batch) {
                Ok(summary) => {
                    prop_assert_eq!(summary.record_count as usize, records.len());
                    let view = BatchView::parse(&batch).unwrap();
                    prop_assert_eq!(read_everything(&view), records.len());
                }
                Err(_) => {
                    if let Ok(view) = BatchView::parse(&batch) {
                        read_everything(&view);
                    }
                }
            }
            for view in split_batches(&batch).flatten() {
                read_everything(&view);
            }
        }

        #[test]
        fn split_never_panics_on_mutated_concatenations(
            a in vec(record(), 1..4),
            b in vec(record(), 1..4),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let mut bytes = build(&a);
            bytes.extend_from_slice(&build(&b));
            let at = at.index(bytes.len());
            bytes[at] = byte;
            let mut total = 0;
            for view in split_batches(&bytes) {
                let Ok(view) = view else { break };
                total += view.as_bytes().len();
                if validate(view.as_bytes()).is_ok() {
                    read_everything(&view);
                }
            }
            prop_assert!(total <= bytes.len());
        }
    }
}

#[test]
fn last_offset_of_a_hostile_base_offset_does_not_panic() {
    let mut batch = sample_batch(3);
    set_base_offset(&mut batch, u64::MAX);
    validate(&batch).unwrap();
    let view = BatchView::parse(&batch).unwrap();
    assert_eq!(view.last_offset(), u64::MAX);
}

#[test]
fn log_append_time_restamps_every_record_and_keeps_the_crc_valid() {
    let mut batch = sample_batch(3);
    set_log_append_time(&mut batch, 1_800_000_000_000);
    let view = BatchView::parse(&batch).unwrap();
    view.verify_crc().unwrap();
    assert!(view.is_log_append_time());
    for record in view.records() {
        assert_eq!(record.unwrap().timestamp, 1_800_000_000_000);
    }
    // A producer may not claim LogAppendTime itself.
    assert!(matches!(
        validate(&batch),
        Err(BatchError::UnsupportedAttributes(_))
    ));
}

#[test]
fn a_producer_stamp_keeps_the_batch_valid_and_reads_back() {
    let mut batch = sample_batch(3);
    assert_eq!(validate(&batch).unwrap().producer, None);
    set_producer(&mut batch, 42, 3, 1_000);
    let summary = validate(&batch).unwrap();
    assert_eq!(
        summary.producer,
        Some(ProducerFields {
            producer_id: 42,
            epoch: 3,
            base_sequence: 1_000,
        })
    );
}
