//! The operator's view: the HTTP port (`/health`, `/ready`, `/metrics` in
//! the Prometheus text format, its limits), metrics moving with traffic,
//! `quiver serve --print-config` merging file, environment and flags, and
//! JSON logs from the real binary.

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::ApiVersionsRequest;
use quiver_client::{
    Admin, Client, Consumer, ConsumerConfig, Offset, Producer, ProducerConfig, ProducerRecord,
};
use quiver_host::http::{HttpServer, MAX_HTTP_CONNECTIONS};
use quiver_host::kafka::KafkaConfig;
use quiver_host::metrics::Metrics;
use quiver_tests::http::{get, request};
use quiver_tests::kafka::KafkaWire;
use quiver_tests::{TestBroker, quiver_bin};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Checks every line against the Prometheus text format 0.0.4 grammar:
/// `# HELP name text`, `# TYPE name type` (once per family, before its
/// samples), or `name{label="value",...} value` for a declared family,
/// with a trailing newline. `prometheus-parse` skips lines it does not
/// understand, so it alone would not catch a malformed line.
fn check_exposition_grammar(text: &str) {
    assert!(text.ends_with('\n'), "the exposition ends with a newline");
    let mut families: HashMap<String, String> = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, _) = rest.split_once(' ').expect("HELP name and text");
            assert!(is_metric_name(name), "bad HELP name in {line:?}");
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name and type");
            assert!(is_metric_name(name), "bad TYPE name in {line:?}");
            assert!(
                matches!(
                    kind,
                    "counter" | "gauge" | "histogram" | "summary" | "untyped"
                ),
                "bad type in {line:?}"
            );
            let previous = families.insert(name.to_owned(), kind.to_owned());
            assert!(previous.is_none(), "family declared twice: {line:?}");
        } else {
            check_sample(line, &families);
        }
    }
}

fn check_sample(line: &str, families: &HashMap<String, String>) {
    let name_end = line
        .find(['{', ' '])
        .unwrap_or_else(|| panic!("no value in {line:?}"));
    let name = &line[..name_end];
    assert!(is_metric_name(name), "bad sample name in {line:?}");
    let mut rest = &line[name_end..];
    if let Some(labels) = rest.strip_prefix('{') {
        rest = check_labels(labels, line);
    }
    let value = rest
        .strip_prefix(' ')
        .unwrap_or_else(|| panic!("no space before the value in {line:?}"));
    assert!(
        value.parse::<f64>().is_ok() || matches!(value, "+Inf" | "-Inf" | "NaN"),
        "bad value in {line:?}"
    );
    let family = [
        name,
        name.strip_suffix("_bucket").unwrap_or(name),
        name.strip_suffix("_sum").unwrap_or(name),
        name.strip_suffix("_count").unwrap_or(name),
    ]
    .into_iter()
    .find(|family| families.contains_key(*family))
    .unwrap_or_else(|| panic!("sample of an undeclared family: {line:?}"));
    if family != name {
        assert_eq!(families[family], "histogram", "{line:?}");
    }
}

/// Checks `name="value",...}` and returns what follows the `}`.
fn check_labels<'a>(mut labels: &'a str, line: &str) -> &'a str {
    loop {
        let (name, rest) = labels
            .split_once("=\"")
            .unwrap_or_else(|| panic!("bad label in {line:?}"));
        assert!(
            !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "bad label name in {line:?}"
        );
        // The value runs to the first unescaped quote.
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => {
                    let escaped = chars.next().map(|(_, c)| c);
                    assert!(
                        matches!(escaped, Some('\\' | '"' | 'n')),
                        "bad escape in {line:?}"
                    );
                }
                Some((i, '"')) => break i,
                Some(_) => {}
                None => panic!("unterminated label value in {line:?}"),
            }
        };
        let after = &rest[end + 1..];
        if let Some(next) = after.strip_prefix(',') {
            labels = next;
        } else if let Some(tail) = after.strip_prefix('}') {
            return tail;
        } else {
            panic!("bad label list in {line:?}");
        }
    }
}

fn is_metric_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Parses a scrape with `prometheus-parse` after the strict grammar check.
fn parse_metrics(text: &str) -> prometheus_parse::Scrape {
    check_exposition_grammar(text);
    prometheus_parse::Scrape::parse(text.lines().map(|line| Ok(line.to_owned())))
        .expect("the scrape parses")
}

/// The value of the sample `metric` whose labels include `labels`.
fn sample(scrape: &prometheus_parse::Scrape, metric: &str, labels: &[(&str, &str)]) -> u64 {
    let found = scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == metric
                && labels
                    .iter()
                    .all(|(name, value)| s.labels.get(name) == Some(*value))
        })
        .unwrap_or_else(|| panic!("no sample {metric}{labels:?}"));
    match &found.value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => whole(metric, *v),
        other => panic!("{metric} is not a single value: {other:?}"),
    }
}

/// Every sample the tests compare counts something: a whole number.
fn whole(metric: &str, value: f64) -> u64 {
    assert!(
        value >= 0.0 && value.fract().abs() < f64::EPSILON && value < 2f64.powi(53),
        "{metric} = {value} is not a count"
    );
    value as u64
}

/// The `+Inf` bucket of histogram `metric`: how many observations it holds.
fn histogram_count(scrape: &prometheus_parse::Scrape, metric: &str) -> u64 {
    let found = scrape
        .samples
        .iter()
        .find(|s| s.metric == metric)
        .unwrap_or_else(|| panic!("no histogram {metric}"));
    let prometheus_parse::Value::Histogram(buckets) = &found.value else {
        panic!("{metric} is not a histogram: {:?}", found.value);
    };
    let mut previous = 0.0;
    for bucket in buckets {
        assert!(bucket.count >= previous, "{metric}: buckets are cumulative");
        previous = bucket.count;
    }
    let last = buckets.last().expect("at least the +Inf bucket");
    assert!(last.less_than.is_infinite(), "{metric} ends with +Inf");
    whole(metric, last.count)
}

async fn scrape(addr: SocketAddr) -> prometheus_parse::Scrape {
    let reply = get(addr, "/metrics").await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.headers.get("content-type").map(String::as_str),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    parse_metrics(&reply.body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_ready_and_unknown_paths() {
    let broker = TestBroker::start_with_http().await;
    let http = broker.http_addr();
    assert_ne!(http.port(), 0);

    let health = get(http, "/health").await;
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    let ready = get(http, "/ready").await;
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready\n"));
    assert_eq!(request(http, "HEAD", "/ready").await.status, 200);

    assert_eq!(get(http, "/nope").await.status, 404);
    let post = request(http, "POST", "/metrics").await;
    assert_eq!(post.status, 405);
    assert_eq!(
        post.headers.get("allow").map(String::as_str),
        Some("GET, HEAD")
    );

    // A request head beyond the buffer limit is refused, not buffered.
    let mut stream = TcpStream::connect(http).await.expect("connect");
    let huge = format!(
        "GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let _ = stream.write_all(huge.as_bytes()).await;
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut reply)).await;
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 431"), "{reply:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_counted_per_listener_and_api() {
    let broker = TestBroker::start_with(|config| {
        config.http = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        config.kafka = Some(KafkaConfig::new(SocketAddr::from(([127, 0, 0, 1], 0))));
    })
    .await;
    broker.create_topic("orders", 1).await;
    let producer = Producer::new(broker.client().await, ProducerConfig::default());
    producer
        .send(ProducerRecord::new("orders", "one order"))
        .await
        .expect("acknowledged");
    let kafka = broker
        .broker()
        .kafka_addr()
        .expect("the Kafka listener runs");
    tokio::task::spawn_blocking(move || {
        KafkaWire::connect(kafka).call(&ApiVersionsRequest::default(), 3)
    })
    .await
    .expect("ApiVersions");

    let scraped = scrape(broker.http_addr()).await;
    let quic_produce = [("listener", "quic"), ("api", "Produce")];
    assert_eq!(sample(&scraped, "quiver_requests_total", &quic_produce), 1);
    assert!(sample(&scraped, "quiver_request_bytes_total", &quic_produce) > 9);
    let kafka_versions = [("listener", "kafka"), ("api", "ApiVersions")];
    assert_eq!(
        sample(&scraped, "quiver_requests_total", &kafka_versions),
        1
    );
    assert!(sample(&scraped, "quiver_response_bytes_total", &kafka_versions) > 0);
    assert_eq!(
        sample(&scraped, "quiver_request_errors_total", &kafka_versions),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_with_traffic() {
    const RECORDS: u32 = 37;
    let broker = TestBroker::start_with_http().await;
    let http = broker.http_addr();
    broker.create_topic("orders", 2).await;
    broker.create_topic("idle", 1).await;

    let before = scrape(http).await;
    assert_eq!(
        histogram_count(&before, "quiver_produce_duration_seconds"),
        0
    );

    let producer = Producer::new(
        broker.client().await,
        ProducerConfig {
            batch_max_records: 5,
            ..ProducerConfig::default()
        },
    );
    let mut acks = Vec::new();
    for i in 0..RECORDS {
        let record = ProducerRecord::new("orders", format!("order-{i}")).partition(i % 2);
        acks.push(producer.enqueue(record).await.expect("enqueue"));
    }
    producer.flush().await.expect("flush");
    for ack in acks {
        ack.await.expect("acknowledged");
    }

    let after = scrape(http).await;
    let orders = [("topic", "orders")];
    assert_eq!(
        sample(&after, "quiver_produced_records_total", &orders),
        u64::from(RECORDS)
    );
    assert!(sample(&after, "quiver_produced_bytes_total", &orders) > u64::from(RECORDS) * 7);
    assert!(
        after
            .samples
            .iter()
            .all(|s| s.labels.get("topic") != Some("idle")),
        "a topic without traffic has no series"
    );
    let produce_requests = histogram_count(&after, "quiver_produce_duration_seconds");
    assert!(produce_requests >= 1, "produce latency observed");
    assert_eq!(
        sample(&after, "quiver_produce_duration_seconds_count", &[]),
        produce_requests
    );
    let commits = histogram_count(&after, "quiver_group_commit_appends");
    assert!(commits >= 1, "group commits observed");
    // Every batch (at most 5 records each) went through some group commit.
    let appends = sample(&after, "quiver_group_commit_appends_sum", &[]);
    assert!(
        appends >= u64::from(RECORDS.div_ceil(5)),
        "{appends} appends"
    );
    assert_eq!(
        histogram_count(&after, "quiver_group_commit_duration_seconds"),
        commits
    );
    assert!(sample(&after, "quiver_connections_open", &[]) >= 1);
    assert_eq!(sample(&after, "quiver_connections_refused_total", &[]), 0);
    assert!(sample(&after, "quiver_storage_size_bytes", &[]) > 0);

    // Read everything back: the fetch side moves too.
    let mut consumer = Consumer::new(
        broker.client().await,
        ConsumerConfig {
            start: Offset::Earliest,
            ..ConsumerConfig::default()
        },
    );
    consumer.assign_topic("orders").await.expect("assign");
    let mut received = 0;
    while received < RECORDS as usize {
        let batch = consumer.poll(Duration::from_secs(10)).await.expect("poll");
        assert!(!batch.is_empty(), "stalled at {received}");
        received += batch.len();
    }
    let fetched = scrape(http).await;
    assert!(sample(&fetched, "quiver_fetched_records_total", &orders) >= u64::from(RECORDS));
    assert!(
        sample(&fetched, "quiver_fetched_bytes_total", &orders)
            >= sample(&fetched, "quiver_produced_bytes_total", &orders)
    );
    assert!(histogram_count(&fetched, "quiver_fetch_duration_seconds") >= 1);

    // Deleting the topic drops its series.
    broker
        .admin()
        .await
        .delete_topic("orders")
        .await
        .expect("delete");
    let deleted = scrape(http).await;
    assert!(
        deleted
            .samples
            .iter()
            .all(|s| s.labels.get("topic") != Some("orders"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connections_are_counted() {
    let broker = TestBroker::start_with(|config| {
        config.connections.max_connections = 1;
        config.http = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    })
    .await;
    let http = broker.http_addr();
    let first = Admin::new(broker.client().await);
    first
        .list_topics()
        .await
        .expect("the first connection works");
    // The broker completes the handshake only to close the connection, so
    // the refusal shows at connect or at the first request.
    if let Ok(second) = Client::connect(broker.client_config()).await {
        assert!(Admin::new(second).list_topics().await.is_err());
    }
    let scrape = scrape(http).await;
    // The client may dial again for its request once refused (it re-dials a
    // closed connection), and be refused again.
    let refused = sample(&scrape, "quiver_connections_refused_total", &[]);
    assert!((1..=2).contains(&refused), "refused {refused}");
    assert_eq!(sample(&scrape, "quiver_connections_open", &[]), 1);
    drop(first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_follows_the_broker_and_the_port_closes_on_shutdown() {
    // The HTTP port on its own: not ready until told.
    let dir = tempfile::tempdir().expect("temp dir");
    let server = HttpServer::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        Arc::new(Metrics::new()),
        dir.path().join("quiver.redb"),
    )
    .await
    .expect("start the HTTP port");
    let addr = server.local_addr();
    assert_eq!(get(addr, "/health").await.status, 200);
    assert_eq!(get(addr, "/ready").await.status, 503);
    assert_eq!(get(addr, "/metrics").await.status, 200);
    server.set_ready(true);
    assert_eq!(get(addr, "/ready").await.status, 200);
    server.set_ready(false);
    assert_eq!(get(addr, "/ready").await.status, 503);
    server.shutdown().await;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "closed after shutdown"
    );

    // A broker's port stops with the broker.
    let mut broker = TestBroker::start_with_http().await;
    let http = broker.http_addr();
    assert_eq!(get(http, "/ready").await.status, 200);
    broker.shutdown().await;
    assert!(
        TcpStream::connect(http).await.is_err(),
        "closed after shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_connections_beyond_the_limit_are_closed() {
    let broker = TestBroker::start_with_http().await;
    let http = broker.http_addr();
    let mut held = Vec::new();
    for _ in 0..MAX_HTTP_CONNECTIONS {
        held.push(TcpStream::connect(http).await.expect("connect"));
    }
    // Let the broker accept them all.
    let mut refused = false;
    for _ in 0..50 {
        let mut extra = TcpStream::connect(http).await.expect("connect");
        let _ = extra
            .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await;
        let mut reply = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), extra.read_to_end(&mut reply)).await;
        if reply.is_empty() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        refused,
        "a connection beyond the limit is closed unanswered"
    );
    drop(held);
    // Freed slots serve again.
    let mut served = false;
    for _ in 0..100 {
        if let Ok(Ok(reply)) = tokio::time::timeout(Duration::from_secs(5), try_get(http)).await
            && reply == 200
        {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served, "the port serves again once connections close");
}

/// One GET /health; an error instead of a panic when the connection is
/// closed unanswered.
async fn try_get(addr: SocketAddr) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect(addr).await?;
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let raw = String::from_utf8_lossy(&raw);
    raw.strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status in {raw:?}")))
}

/// `quiver serve` with a clean environment (no inherited `QUIVER_*`).
fn serve_command(dir: &Path) -> Command {
    let mut command = Command::new(quiver_bin());
    command.env_clear().current_dir(dir).arg("serve");
    command
}

#[test]
fn print_config_merges_file_env_and_flags() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("quiver.toml");
    std::fs::write(
        &file,
        r#"
# Every key, so each layer has something to override.
data_dir = "/srv/quiver"
listen = "0.0.0.0:9400"
cache_mb = 64
http = "0.0.0.0:9401"
log_format = "text"
max_connections = 10
retention_ms = 1000
retention_bytes = 2000
"#,
    )
    .expect("write config");
    let output = serve_command(dir.path())
        .args(["--print-config", "--config"])
        .arg(&file)
        .args(["--max-connections", "30", "--http", "off"])
        .env("QUIVER_MAX_CONNECTIONS", "20")
        .env("QUIVER_CACHE_MB", "128")
        .env("QUIVER_LOG_FORMAT", "json")
        .env("QUIVER_DEFAULT_RETENTION_MS", "5000")
        .output()
        .expect("run quiver serve --print-config");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = String::from_utf8(output.stdout).expect("UTF-8");
    // flag > env > file > default, option by option.
    assert_eq!(
        printed,
        concat!(
            "data_dir = \"/srv/quiver\"\n",        // file
            "listen = \"0.0.0.0:9400\"\n",         // file
            "cache_mb = 128\n",                    // env over file
            "reserve_mb = 64\n",                   // default
            "http = \"off\"\n",                    // flag over file
            "kafka_listen = \"127.0.0.1:9092\"\n", // default
            "kafka_tls_listen = \"off\"\n",        // default
            "auto_create_topics = true\n",         // default
            "default_partitions = 1\n",            // default
            "log_format = \"json\"\n",             // env over file
            "max_connections = 30\n",              // flag over env over file
            "max_connections_per_ip = 256\n",      // default
            "retention_ms = 5000\n",               // env over file
            "retention_bytes = 2000\n",            // file
            "max_transforms = 64\n",               // default
            "guest_memory_mb = 4096\n",            // default
            "max_fetch_instances = 32\n",          // default
            "max_compiles = 2\n",                  // default
        )
    );
    // The printed configuration is itself a valid config file.
    let again_file = dir.path().join("again.toml");
    std::fs::write(&again_file, &printed).expect("write");
    let again = serve_command(dir.path())
        .args(["--print-config", "--config"])
        .arg(&again_file)
        .output()
        .expect("run");
    assert!(again.status.success());
    assert_eq!(String::from_utf8(again.stdout).expect("UTF-8"), printed);

    // The config file can come from the environment too.
    let from_env = serve_command(dir.path())
        .arg("--print-config")
        .env("QUIVER_CONFIG", &file)
        .env("QUIVER_LISTEN", "127.0.0.1:9999")
        .output()
        .expect("run");
    let from_env = String::from_utf8(from_env.stdout).expect("UTF-8");
    assert!(
        from_env.contains("listen = \"127.0.0.1:9999\"\n"),
        "{from_env}"
    );
    assert!(from_env.contains("cache_mb = 64\n"), "{from_env}");
}

#[test]
fn print_config_without_anything_shows_the_defaults() {
    let dir = tempfile::tempdir().expect("temp dir");
    let defaults = serve_command(dir.path())
        .arg("--print-config")
        .output()
        .expect("run");
    assert_eq!(
        String::from_utf8(defaults.stdout).expect("UTF-8"),
        concat!(
            "data_dir = \"./quiver-data\"\n",
            "listen = \"127.0.0.1:7400\"\n",
            "cache_mb = 256\n",
            "reserve_mb = 64\n",
            "http = \"127.0.0.1:7401\"\n",
            "kafka_listen = \"127.0.0.1:9092\"\n",
            "kafka_tls_listen = \"off\"\n",
            "auto_create_topics = true\n",
            "default_partitions = 1\n",
            "log_format = \"text\"\n",
            "max_connections = 1024\n",
            "max_connections_per_ip = 256\n",
            "max_transforms = 64\n",
            "guest_memory_mb = 4096\n",
            "max_fetch_instances = 32\n",
            "max_compiles = 2\n",
        )
    );
}

#[test]
fn bad_config_files_fail_with_one_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let unknown = dir.path().join("unknown.toml");
    std::fs::write(&unknown, "listen = \"127.0.0.1:1\"\nlisten_port = 2\n").expect("write");
    let malformed = dir.path().join("malformed.toml");
    std::fs::write(&malformed, "cache_mb = = 3\n").expect("write");
    let missing = dir.path().join("missing.toml");
    for (file, expected) in [
        (&unknown, "unknown field `listen_port`"),
        (&malformed, "invalid config file"),
        (&missing, "cannot read the config file"),
    ] {
        let output = serve_command(dir.path())
            .arg("--config")
            .arg(file)
            .output()
            .expect("run quiver serve");
        assert_eq!(output.status.code(), Some(1));
        let stderr = String::from_utf8(output.stderr).expect("UTF-8");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with("error: "), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
        assert!(output.stdout.is_empty());
    }
}

#[test]
fn json_logs_and_http_port_from_the_binary() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = serve_command(dir.path())
        .args(["--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .args(["--kafka-listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("QUIVER_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn quiver serve");
    let stderr = child.stderr.take().expect("piped stderr");
    let mut lines = BufReader::new(stderr).lines();
    let http: SocketAddr = loop {
        let line = lines
            .next()
            .expect("quiver serve exited before listening")
            .expect("read stderr");
        let event: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(event.get("level").is_some(), "{line}");
        if event["message"] == "quiver broker listening" {
            assert!(event["listen"].as_str().is_some(), "{line}");
            break event["http"]
                .as_str()
                .and_then(|addr| addr.parse().ok())
                .unwrap_or_else(|| panic!("no http address in {line}"));
        }
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (ready, metrics) =
        runtime.block_on(async { (get(http, "/ready").await, get(http, "/metrics").await) });
    assert_eq!(ready.status, 200);
    parse_metrics(&metrics.body);

    let pid = child.id().to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status();
    assert!(sent.is_ok_and(|s| s.success()), "send SIGTERM");
    // Every line up to the exit is JSON too.
    for line in lines {
        let line = line.expect("read stderr");
        assert!(
            serde_json::from_str::<serde_json::Value>(&line).is_ok(),
            "not a JSON log line: {line}"
        );
    }
    assert!(
        child.wait().expect("wait").success(),
        "clean exit on SIGTERM"
    );
}
