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
                value: value.as_bytes(),
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
    assert_eq!(records[3].value, b"value-3");
    let headers: Vec<_> = records[1].headers().collect();
    assert_eq!(headers, vec![("source", Some(&b"web"[..]))]);
    assert_eq!(
        records.iter().map(|r| r.timestamp).max(),
        Some(summary.max_timestamp)
    );
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
    assert!(matches!(validate(&bad), Err(BatchError::CrcMismatch { .. })));
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
    bad[ATTRIBUTES_AT + 1] = 0x02; // snappy
    reseal(&mut bad);
    assert_eq!(validate(&bad), Err(BatchError::UnsupportedCompression(2)));

    let mut bad = batch.clone();
    bad[ATTRIBUTES_AT + 1] = 0x20; // control batch
    reseal(&mut bad);
    assert_eq!(validate(&bad), Err(BatchError::UnsupportedAttributes(0x20)));

    let mut bad = batch.clone();
    bad[RECORD_COUNT_AT..61].copy_from_slice(&4i32.to_be_bytes());
    bad[LAST_OFFSET_DELTA_AT..27].copy_from_slice(&3i32.to_be_bytes());
    reseal(&mut bad);
    assert!(matches!(validate(&bad), Err(BatchError::Varint { index: 3, .. })));

    let mut bad = batch.clone();
    bad[RECORD_COUNT_AT..61].copy_from_slice(&2i32.to_be_bytes());
    bad[LAST_OFFSET_DELTA_AT..27].copy_from_slice(&1i32.to_be_bytes());
    reseal(&mut bad);
    assert!(matches!(validate(&bad), Err(BatchError::TrailingBytes(_))));

    let mut bad = batch.clone();
    bad[LAST_OFFSET_DELTA_AT..27].copy_from_slice(&7i32.to_be_bytes());
    reseal(&mut bad);
    assert!(matches!(validate(&bad), Err(BatchError::LastOffsetDelta { .. })));

    let mut bad = batch.clone();
    bad[RECORD_COUNT_AT..61].copy_from_slice(&0i32.to_be_bytes());
    reseal(&mut bad);
    assert_eq!(validate(&bad), Err(BatchError::RecordCount(0)));

    let mut bad = batch;
    bad[MAX_TIMESTAMP_AT..43].copy_from_slice(&1i64.to_be_bytes());
    reseal(&mut bad);
    assert!(matches!(validate(&bad), Err(BatchError::MaxTimestamp { .. })));
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
        value: &big,
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
                value: &value,
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
