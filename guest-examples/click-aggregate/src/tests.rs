//! Tests of the counting logic against the in-memory store.

use std::collections::BTreeMap;

use quiver_guest::state::MemStore;
use serde_json::Value;

use super::*;

fn config(pairs: &[(&str, &str)]) -> Config {
    Config::from_params(&Params::new(
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_string(), (*v).to_string()))
            .collect(),
    ))
    .unwrap()
}

fn click(partition: u32, offset: u64, page: &str, ts: i64) -> InputRecord<'static> {
    InputRecord {
        topic: "click",
        partition,
        offset,
        timestamp: ts,
        key: None,
        value: Some(
            format!(r#"{{"user_id": {offset}, "page": "{page}", "action": "click", "ts": {ts}}}"#)
                .into_bytes()
                .leak(),
        ),
        headers: Vec::new(),
    }
}

/// (group, window start, window end, count) of each output, in order.
fn counts(outputs: &[OutputRecord]) -> Vec<(String, i64, i64, u64)> {
    outputs
        .iter()
        .map(|o| {
            let v: Value = serde_json::from_slice(o.value.as_deref().unwrap()).unwrap();
            let key = v["key"].as_str().unwrap().to_string();
            assert_eq!(o.key.as_deref(), Some(key.as_bytes()));
            assert_eq!(o.output, None);
            let end = v["window_end"].as_i64().unwrap();
            assert_eq!(o.timestamp, Some(end - 1));
            (
                key,
                v["window_start"].as_i64().unwrap(),
                end,
                v["count"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn run(
    config: &Config,
    state: &mut State<MemStore>,
    batch: &[InputRecord<'_>],
) -> Result<Vec<OutputRecord>, String> {
    let (outputs, malformed) = Aggregator { config, state }.process(batch)?;
    assert_eq!(malformed.skipped(), 0, "{:?}", malformed.summary());
    Ok(outputs)
}

/// The count key of (`partition`, window `start`, `group`).
fn count_key(partition: u32, start: i64, group: &str) -> Vec<u8> {
    count_keys(partition)
        .key(start, group)
        .unwrap()
        .into_bytes()
}

fn tick(config: &Config, state: &mut State<MemStore>) -> Vec<OutputRecord> {
    Aggregator { config, state }.on_tick().unwrap()
}

#[test]
fn parameters() {
    let c = config(&[]);
    assert_eq!(
        (c.windows.size(), c.windows.grace(), c.group_by.as_str()),
        (60_000, 0, "page")
    );
    let c = config(&[
        ("window_ms", "1000"),
        ("group_by", "action"),
        ("grace_ms", "250"),
    ]);
    assert_eq!(
        (c.windows.size(), c.windows.grace(), c.group_by.as_str()),
        (1000, 250, "action")
    );
    let bad = |pairs: &[(&str, &str)]| {
        Config::from_params(&Params::new(
            pairs
                .iter()
                .map(|(n, v)| ((*n).to_string(), (*v).to_string()))
                .collect(),
        ))
        .unwrap_err()
    };
    assert!(bad(&[("window_ms", "0")]).contains("positive"));
    assert!(bad(&[("window_ms", "x")]).contains("window_ms"));
    assert!(bad(&[("grace_ms", "-1")]).contains("grace"));
    assert!(bad(&[("group_by", "")]).contains("group_by"));
    assert!(bad(&[("window", "5")]).contains("unknown parameter `window`"));
}

#[test]
fn keys_are_readable_text() {
    assert_eq!(
        String::from_utf8(count_key(0, 1_764_064_800_000, "/docs")).unwrap(),
        "partition/0/window/1764064800000//docs"
    );
    assert_eq!(high_key(12), "high-ts/12");
}

#[test]
fn a_window_closes_when_the_partition_high_passes_its_end() {
    let c = config(&[("window_ms", "100")]);
    let mut state = State::new(MemStore::default());
    let out = run(
        &c,
        &mut state,
        &[
            click(0, 0, "/a", 10),
            click(0, 1, "/b", 20),
            click(0, 2, "/a", 99),
        ],
    )
    .unwrap();
    assert!(out.is_empty(), "window [0, 100) is still open");
    // Another partition's time does not close partition 0's windows.
    let out = run(&c, &mut state, &[click(1, 0, "/a", 500)]).unwrap();
    assert!(out.is_empty());
    let out = run(&c, &mut state, &[click(0, 3, "/a", 100)]).unwrap();
    assert_eq!(
        counts(&out),
        vec![("/a".into(), 0, 100, 2), ("/b".into(), 0, 100, 1)]
    );
    // Emitted counts are gone from the state; the open window's stays.
    assert_eq!(state.get_u64(&count_key(0, 0, "/a")), Ok(None));
    assert_eq!(state.get_u64(&count_key(0, 100, "/a")), Ok(Some(1)));
    assert_eq!(state.get_i64(high_key(0).as_bytes()), Ok(Some(100)));
}

#[test]
fn grace_delays_closing() {
    let c = config(&[("window_ms", "100"), ("grace_ms", "30")]);
    let mut state = State::new(MemStore::default());
    assert!(
        run(
            &c,
            &mut state,
            &[click(0, 0, "/a", 50), click(0, 1, "/a", 129)]
        )
        .unwrap()
        .is_empty()
    );
    // Within the grace period: still counted in [0, 100).
    assert!(
        run(&c, &mut state, &[click(0, 2, "/a", 60)])
            .unwrap()
            .is_empty()
    );
    let out = run(&c, &mut state, &[click(0, 3, "/a", 130)]).unwrap();
    assert_eq!(counts(&out), vec![("/a".into(), 0, 100, 2)]);
}

#[test]
fn late_records_are_counted_as_extra_partials() {
    let c = config(&[("window_ms", "100")]);
    let mut state = State::new(MemStore::default());
    let out = run(
        &c,
        &mut state,
        &[click(0, 0, "/a", 10), click(0, 1, "/a", 250)],
    )
    .unwrap();
    assert_eq!(counts(&out), vec![("/a".into(), 0, 100, 1)]);
    let out = run(
        &c,
        &mut state,
        &[click(0, 2, "/a", 20), click(0, 3, "/a", 30)],
    )
    .unwrap();
    assert_eq!(counts(&out), vec![("/a".into(), 0, 100, 2)]);
}

#[test]
fn bad_records_are_skipped_with_one_log_line() {
    let c = config(&[("window_ms", "100")]);
    let mut state = State::new(MemStore::default());
    let mut bad = click(2, 41, "/a", 0);
    bad.value = Some(b"nope");
    let mut late = click(2, 42, "/a", 0);
    late.value = Some(br#"{"page": "/a", "ts": -5}"#);
    let mut tombstone = click(2, 43, "/a", 0);
    tombstone.value = None;
    let batch = [
        click(2, 40, "/a", 0),
        bad,
        late,
        tombstone,
        click(2, 44, "/a", 100),
    ];
    let (out, malformed) = Aggregator {
        config: &c,
        state: &mut state,
    }
    .process(&batch)
    .unwrap();
    assert_eq!(counts(&out), vec![("/a".into(), 0, 100, 1)]);
    assert_eq!(malformed.skipped(), 3);
    let line = malformed.summary().unwrap();
    assert!(
        line.starts_with("skipped 3 malformed records; the first: click/2@41: invalid JSON"),
        "{line}"
    );
}

#[test]
fn bad_records_fail_the_batch_naming_them() {
    let c = config(&[("on_malformed", "fail")]);
    let mut state = State::new(MemStore::default());
    let mut bad = click(2, 41, "/a", 0);
    for (value, want) in [
        ("nope", "click/2@41: invalid JSON"),
        (r#"{"page": "/a"}"#, "click/2@41: field `ts`"),
        (r#"{"page": "/a", "ts": "1"}"#, "click/2@41: field `ts`"),
        (r#"{"page": null, "ts": 1}"#, "click/2@41: field `page`"),
        (r#"{"ts": 1}"#, "click/2@41: field `page`"),
    ] {
        bad.value = Some(value.as_bytes());
        let err = run(&c, &mut state, &[click(2, 40, "/a", 0), bad.clone()]).unwrap_err();
        assert!(err.starts_with(want), "{err}");
    }
    assert_eq!(state.into_inner(), MemStore::default(), "nothing written");
}

#[test]
fn numbers_group_by_their_text() {
    let c = config(&[("window_ms", "100"), ("group_by", "user_id")]);
    let mut state = State::new(MemStore::default());
    let out = run(
        &c,
        &mut state,
        &[click(0, 7, "/a", 1), click(0, 8, "/a", 100)],
    )
    .unwrap();
    assert_eq!(counts(&out), vec![("7".into(), 0, 100, 1)]);
}

#[test]
fn on_tick_flushes_what_is_due() {
    let mut state = State::new(MemStore::default());
    let c = config(&[("window_ms", "100"), ("grace_ms", "1000")]);
    run(
        &c,
        &mut state,
        &[
            click(0, 0, "/a", 10),
            click(3, 0, "/b", 10),
            click(3, 1, "/b", 400),
        ],
    )
    .unwrap();
    assert!(tick(&c, &mut state).is_empty());
    // Redeployed with a shorter grace period: the tick emits what is due now.
    let c = config(&[("window_ms", "100")]);
    assert_eq!(
        counts(&tick(&c, &mut state)),
        vec![("/b".into(), 0, 100, 1)]
    );
    assert!(tick(&c, &mut state).is_empty());
}

#[test]
fn many_open_windows_are_emitted_in_order_across_scan_pages() {
    let c = config(&[("window_ms", "10")]);
    let mut state = State::new(MemStore::default());
    let batch: Vec<InputRecord<'_>> = (0..1500_u64)
        .map(|i| click(0, i, &format!("/p{}", i % 3), i as i64))
        .collect();
    let out = run(&c, &mut state, &batch).unwrap();
    let got = counts(&out);
    assert_eq!(got.len(), 149 * 3, "windows [0, 10) .. [1480, 1490) closed");
    assert!(
        got.windows(2)
            .all(|w| (w[0].1, &w[0].0) < (w[1].1, &w[1].0))
    );
    assert!(got.iter().all(|g| g.3 == 3 || g.3 == 4));
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Thousands of events over several partitions, out of order within a
/// bound, processed in random batches, with calls that fail (their changes
/// discarded, as the host does) and are retried: emitted counts plus the
/// counts still open add up to the ground truth for every (window, page),
/// and nothing is emitted before it closed.
#[test]
fn ground_truth_across_partitions_with_failed_calls() {
    let c = config(&[("window_ms", "1000"), ("grace_ms", "200")]);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let pages = ["/home", "/docs", "/pricing", "/blog", "/about"];
    let mut streams: Vec<Vec<InputRecord<'_>>> = Vec::new();
    let mut truth: BTreeMap<(String, i64), u64> = BTreeMap::new();
    for partition in 0..4_u32 {
        let mut ts = 1_700_000_000_000_i64;
        let mut stream = Vec::new();
        for offset in 0..3000_u64 {
            ts += rng.below(20) as i64;
            // Up to 400 ms out of order: some records beat the grace period.
            let event_ts = ts - rng.below(400) as i64;
            let page = pages[rng.below(pages.len() as u64) as usize];
            *truth
                .entry((page.to_string(), event_ts - event_ts.rem_euclid(1000)))
                .or_default() += 1;
            stream.push(click(partition, offset, page, event_ts));
        }
        streams.push(stream);
    }

    let mut state = State::new(MemStore::default());
    let mut emitted: BTreeMap<(String, i64), u64> = BTreeMap::new();
    let mut positions = [0_usize; 4];
    let mut highs = [i64::MIN; 4];
    while positions.iter().zip(&streams).any(|(p, s)| *p < s.len()) {
        let partition = rng.below(4) as usize;
        let from = positions[partition];
        if from == streams[partition].len() {
            continue;
        }
        let to = (from + 1 + rng.below(300) as usize).min(streams[partition].len());
        let batch = &streams[partition][from..to];
        let before = state.store().clone();
        let out = run(&c, &mut state, batch).unwrap();
        if rng.below(5) == 0 {
            // The commit failed: the host drops outputs and state changes.
            *state.store() = before;
            continue;
        }
        positions[partition] = to;
        let high = batch
            .iter()
            .map(|r| {
                json::get(r.value_or_empty(), "ts")
                    .unwrap()
                    .unwrap()
                    .as_i64()
                    .unwrap()
            })
            .max()
            .unwrap();
        highs[partition] = highs[partition].max(high);
        for (page, start, end, n) in counts(&out) {
            assert!(end <= highs[partition] - 200, "emitted before closing");
            *emitted.entry((page, start)).or_default() += n;
        }
        if rng.below(10) == 0 {
            for (page, start, _, n) in counts(&tick(&c, &mut state)) {
                *emitted.entry((page, start)).or_default() += n;
            }
        }
    }
    let mut open = 0;
    for (key, value) in state.scan_prefix(b"partition/", u32::MAX) {
        let text = std::str::from_utf8(&key).unwrap();
        let partition: u32 = text["partition/".len()..]
            .split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let (start, page) = count_keys(partition).parse(&key).unwrap();
        let partition = partition as usize;
        assert!(
            start + 1000 > highs[partition] - 200,
            "a due window was not emitted"
        );
        let n: u64 = std::str::from_utf8(&value).unwrap().parse().unwrap();
        *emitted.entry((page.to_string(), start)).or_default() += n;
        open += 1;
    }
    assert!(
        open > 0 && open < 40,
        "{open} open (partition, window, page) counts"
    );
    assert_eq!(emitted, truth);
}
