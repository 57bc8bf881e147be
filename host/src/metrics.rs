//! The broker's metrics: one [`Metrics`] per broker, shared as an `Arc` by
//! the server, the request handlers and the group-commit writer, and
//! rendered in the Prometheus text format (0.0.4) by the HTTP port's
//! `/metrics`.
//!
//! There are no global statics: two brokers in one process (as in the tests)
//! keep separate counts.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `quiver_produced_records_total` | counter | `topic` |
//! | `quiver_produced_bytes_total` | counter | `topic` |
//! | `quiver_fetched_records_total` | counter | `topic` |
//! | `quiver_fetched_bytes_total` | counter | `topic` |
//! | `quiver_produce_duration_seconds` | histogram | |
//! | `quiver_fetch_duration_seconds` | histogram | |
//! | `quiver_group_commit_appends` | histogram | |
//! | `quiver_group_commit_duration_seconds` | histogram | |
//! | `quiver_requests_total` | counter | `listener`, `api` |
//! | `quiver_request_errors_total` | counter | `listener`, `api` |
//! | `quiver_request_bytes_total` | counter | `listener`, `api` |
//! | `quiver_response_bytes_total` | counter | `listener`, `api` |
//! | `quiver_connections_open` | gauge | |
//! | `quiver_connections_refused_total` | counter | |
//! | `quiver_storage_size_bytes` | gauge | |
//! | `quiver_retention_deleted_batches_total` | counter | |
//! | `quiver_retention_deleted_bytes_total` | counter | |
//! | `quiver_consumer_group_lag` | gauge | `group`, `topic`, `partition` |
//! | `quiver_transform_records_in_total` | counter | `transform` |
//! | `quiver_transform_records_out_total` | counter | `transform` |
//! | `quiver_transform_errors_total` | counter | `transform` |
//! | `quiver_transform_lag` | gauge | `transform`, `partition` |
//!
//! The transform series are sampled when scraped (from counters that
//! survive restarts, see `storage/tables.rs`), so a deleted transform's
//! series disappear.

use std::fmt;
use std::sync::{Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// Every metric name starts with this, then `_`.
pub const METRIC_PREFIX: &str = "quiver";

/// The `Content-Type` of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Latency buckets, in seconds: 100 µs doubling to about 52 s, so a fetch
/// long-polling for the longest allowed wait (30 s) still lands in a bucket.
fn latency_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.000_1, 2.0, 20)
}

/// Appends-per-commit buckets: 1 doubling to 1,024, the group-commit limit
/// ([`crate::storage::MAX_GROUP_COMMIT_APPENDS`]).
fn appends_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(1.0, 2.0, 11)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TopicLabels {
    topic: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    listener: &'static str,
    api: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LagLabels {
    group: String,
    topic: String,
    partition: u32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransformLabels {
    transform: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransformLagLabels {
    transform: String,
    partition: u32,
}

/// One transform's figures, as sampled at a scrape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransformSample {
    /// The transform.
    pub name: String,
    /// Input records processed since its deploy.
    pub records_in: u64,
    /// Output records committed since its deploy.
    pub records_out: u64,
    /// Failed calls since its deploy.
    pub errors: u64,
    /// Per input partition: (partition, high watermark minus position).
    pub lag: Vec<(u32, u64)>,
}

/// What the transform series are sampled from at each scrape.
pub trait TransformSource: Send + Sync {
    /// Every transform's figures now.
    fn sample(&self) -> Vec<TransformSample>;
}

/// The broker's metrics and the registry that renders them.
///
/// Recording is lock-free for unlabelled metrics; a labelled one takes a
/// read lock on its family (a write lock the first time a label set is
/// seen).
pub struct Metrics {
    registry: Registry,
    produced_records: Family<TopicLabels, Counter>,
    produced_bytes: Family<TopicLabels, Counter>,
    fetched_records: Family<TopicLabels, Counter>,
    fetched_bytes: Family<TopicLabels, Counter>,
    produce_duration: Histogram,
    fetch_duration: Histogram,
    requests: Family<RequestLabels, Counter>,
    request_errors: Family<RequestLabels, Counter>,
    request_bytes: Family<RequestLabels, Counter>,
    response_bytes: Family<RequestLabels, Counter>,
    commit_appends: Histogram,
    commit_duration: Histogram,
    connections_open: Gauge,
    connections_refused: Counter,
    storage_size: Gauge,
    retention_deleted_batches: Counter,
    retention_deleted_bytes: Counter,
    consumer_group_lag: Family<LagLabels, Gauge>,
    transform_records_in: Family<TransformLabels, Counter>,
    transform_records_out: Family<TransformLabels, Counter>,
    transform_errors: Family<TransformLabels, Counter>,
    transform_lag: Family<TransformLagLabels, Gauge>,
    /// Sampled at each scrape; the lock also keeps two scrapes from
    /// interleaving a clear with a refill.
    transforms: Mutex<Option<Weak<dyn TransformSource>>>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry holding every broker metric, all at zero.
    #[expect(clippy::too_many_lines, reason = "one registration per metric")]
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix(METRIC_PREFIX);
        let produced_records = Family::<TopicLabels, Counter>::default();
        registry.register(
            "produced_records",
            "Records appended, per topic (counted when the commit holding them is durable)",
            produced_records.clone(),
        );
        let produced_bytes = Family::<TopicLabels, Counter>::default();
        registry.register_with_unit(
            "produced",
            "Record batch bytes appended, per topic",
            Unit::Bytes,
            produced_bytes.clone(),
        );
        let fetched_records = Family::<TopicLabels, Counter>::default();
        registry.register(
            "fetched_records",
            "Records sent to consumers, per topic (whole batches, so records before a fetch position count too)",
            fetched_records.clone(),
        );
        let fetched_bytes = Family::<TopicLabels, Counter>::default();
        registry.register_with_unit(
            "fetched",
            "Record batch bytes sent to consumers, per topic",
            Unit::Bytes,
            fetched_bytes.clone(),
        );
        let produce_duration = Histogram::new(latency_buckets());
        registry.register_with_unit(
            "produce_duration",
            "Produce request handling time, from decoded request to response (includes the group commit)",
            Unit::Seconds,
            produce_duration.clone(),
        );
        let fetch_duration = Histogram::new(latency_buckets());
        registry.register_with_unit(
            "fetch_duration",
            "Fetch request handling time, from decoded request to response (includes long-poll waiting)",
            Unit::Seconds,
            fetch_duration.clone(),
        );
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests answered, per listener (quic, kafka) and API",
            requests.clone(),
        );
        let request_errors = Family::<RequestLabels, Counter>::default();
        registry.register(
            "request_errors",
            "Requests refused as a whole (malformed, unsupported, or failed), per listener and API",
            request_errors.clone(),
        );
        let request_bytes = Family::<RequestLabels, Counter>::default();
        registry.register_with_unit(
            "request",
            "Request bytes received, per listener and API",
            Unit::Bytes,
            request_bytes.clone(),
        );
        let response_bytes = Family::<RequestLabels, Counter>::default();
        registry.register_with_unit(
            "response",
            "Response bytes sent, per listener and API",
            Unit::Bytes,
            response_bytes.clone(),
        );
        let commit_appends = Histogram::new(appends_buckets());
        registry.register(
            "group_commit_appends",
            "Batches appended by one group commit (one redb transaction, one fsync)",
            commit_appends.clone(),
        );
        let commit_duration = Histogram::new(latency_buckets());
        registry.register_with_unit(
            "group_commit_duration",
            "Time to write and commit (fsync) one group commit",
            Unit::Seconds,
            commit_duration.clone(),
        );
        let connections_open = Gauge::default();
        registry.register(
            "connections_open",
            "Client connections open (QUIC with its handshake done, and Kafka)",
            connections_open.clone(),
        );
        let connections_refused = Counter::default();
        registry.register(
            "connections_refused",
            "Client connections refused because the broker was at its connection limit",
            connections_refused.clone(),
        );
        let storage_size = Gauge::default();
        registry.register_with_unit(
            "storage_size",
            "Size of the database file, sampled when scraped",
            Unit::Bytes,
            storage_size.clone(),
        );
        let retention_deleted_batches = Counter::default();
        registry.register(
            "retention_deleted_batches",
            "Record batches deleted by retention",
            retention_deleted_batches.clone(),
        );
        let retention_deleted_bytes = Counter::default();
        registry.register_with_unit(
            "retention_deleted",
            "Record batch bytes deleted by retention",
            Unit::Bytes,
            retention_deleted_bytes.clone(),
        );
        let consumer_group_lag = Family::<LagLabels, Gauge>::default();
        registry.register(
            "consumer_group_lag",
            "Records between a consumer group's committed offset and the partition's high watermark",
            consumer_group_lag.clone(),
        );
        let transform_records_in = Family::<TransformLabels, Counter>::default();
        registry.register(
            "transform_records_in",
            "Input records a transform processed (committed), since its deploy",
            transform_records_in.clone(),
        );
        let transform_records_out = Family::<TransformLabels, Counter>::default();
        registry.register(
            "transform_records_out",
            "Output records a transform committed (dead letters not included), since its deploy",
            transform_records_out.clone(),
        );
        let transform_errors = Family::<TransformLabels, Counter>::default();
        registry.register(
            "transform_errors",
            "Failed transform calls, since the deploy",
            transform_errors.clone(),
        );
        let transform_lag = Family::<TransformLagLabels, Gauge>::default();
        registry.register(
            "transform_lag",
            "Records between a transform's position and its input partition's high watermark",
            transform_lag.clone(),
        );
        Self {
            registry,
            produced_records,
            produced_bytes,
            fetched_records,
            fetched_bytes,
            produce_duration,
            fetch_duration,
            requests,
            request_errors,
            request_bytes,
            response_bytes,
            commit_appends,
            commit_duration,
            connections_open,
            connections_refused,
            storage_size,
            retention_deleted_batches,
            retention_deleted_bytes,
            consumer_group_lag,
            transform_records_in,
            transform_records_out,
            transform_errors,
            transform_lag,
            transforms: Mutex::new(None),
        }
    }

    /// Samples the transform series from `source` at every scrape, while it
    /// lives.
    pub fn sample_transforms_from(&self, source: Weak<dyn TransformSource>) {
        *self
            .transforms
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(source);
    }

    /// Replaces every transform series with `samples`.
    pub fn set_transforms(&self, samples: &[TransformSample]) {
        self.transform_records_in.clear();
        self.transform_records_out.clear();
        self.transform_errors.clear();
        self.transform_lag.clear();
        for sample in samples {
            let labels = TransformLabels {
                transform: sample.name.clone(),
            };
            self.transform_records_in
                .get_or_create(&labels)
                .inc_by(sample.records_in);
            self.transform_records_out
                .get_or_create(&labels)
                .inc_by(sample.records_out);
            self.transform_errors
                .get_or_create(&labels)
                .inc_by(sample.errors);
            for &(partition, lag) in &sample.lag {
                let labels = TransformLagLabels {
                    transform: sample.name.clone(),
                    partition,
                };
                self.transform_lag
                    .get_or_create(&labels)
                    .set(i64::try_from(lag).unwrap_or(i64::MAX));
            }
        }
    }

    /// Renders every metric in the Prometheus text format, version 0.0.4
    /// (served with [`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let source = self
            .transforms
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(source) = source.as_ref().and_then(Weak::upgrade) {
            self.set_transforms(&source.sample());
        }
        let mut out = String::new();
        // Writing into a String cannot fail; an error would only come from a
        // metric's own encoder, and then the partial text is still served.
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        drop(source);
        out
    }

    /// Counts records and bytes durably appended to `topic`.
    pub fn record_produced(&self, topic: &str, records: u64, bytes: u64) {
        let labels = topic_labels(topic);
        self.produced_records.get_or_create(&labels).inc_by(records);
        self.produced_bytes.get_or_create(&labels).inc_by(bytes);
    }

    /// Counts records and bytes sent to consumers from `topic`.
    pub fn record_fetched(&self, topic: &str, records: u64, bytes: u64) {
        let labels = topic_labels(topic);
        self.fetched_records.get_or_create(&labels).inc_by(records);
        self.fetched_bytes.get_or_create(&labels).inc_by(bytes);
    }

    /// Drops a deleted topic's produce and fetch series, so deleted topics
    /// do not accumulate. A topic created again under the same name starts
    /// from zero (a counter reset, which Prometheus handles).
    pub fn forget_topic(&self, topic: &str) {
        let labels = topic_labels(topic);
        self.produced_records.remove(&labels);
        self.produced_bytes.remove(&labels);
        self.fetched_records.remove(&labels);
        self.fetched_bytes.remove(&labels);
    }

    /// Starts timing a produce request; the time is recorded when the
    /// returned guard drops (on every exit path, error or not).
    pub fn time_produce(&self) -> Timer<'_> {
        Timer::new(&self.produce_duration)
    }

    /// Starts timing a fetch request; recorded when the guard drops.
    pub fn time_fetch(&self) -> Timer<'_> {
        Timer::new(&self.fetch_duration)
    }

    /// Counts one request of `api` through `listener`: its bytes in and
    /// out, and whether it was refused as a whole.
    pub fn record_request(
        &self,
        listener: &'static str,
        api: &str,
        request_bytes: u64,
        response_bytes: u64,
        refused: bool,
    ) {
        let labels = RequestLabels {
            listener,
            api: api.to_owned(),
        };
        self.requests.get_or_create(&labels).inc();
        self.request_bytes
            .get_or_create(&labels)
            .inc_by(request_bytes);
        self.response_bytes
            .get_or_create(&labels)
            .inc_by(response_bytes);
        // Created at zero with the first request, so a rate of errors
        // reads 0 rather than nothing.
        let errors = self.request_errors.get_or_create(&labels);
        if refused {
            errors.inc();
        }
    }

    /// Records one group commit: how many appends it held and how long
    /// writing and committing it took.
    pub fn record_group_commit(&self, appends: usize, duration: Duration) {
        self.commit_appends.observe(appends as f64);
        self.commit_duration.observe(duration.as_secs_f64());
    }

    /// Counts a connection as open until the returned guard drops.
    pub fn connection_opened(&self) -> ConnectionGuard<'_> {
        self.connections_open.inc();
        ConnectionGuard {
            gauge: &self.connections_open,
        }
    }

    /// Counts a connection refused at the connection limit.
    pub fn connection_refused(&self) {
        self.connections_refused.inc();
    }

    /// Sets the database file size, in bytes.
    pub fn set_storage_size(&self, bytes: u64) {
        self.storage_size
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// Counts batches and bytes removed by retention.
    pub fn record_retention_deletion(&self, batches: u64, bytes: u64) {
        self.retention_deleted_batches.inc_by(batches);
        self.retention_deleted_bytes.inc_by(bytes);
    }

    /// Sets a consumer group's lag on one partition: the partition's high
    /// watermark minus the group's committed offset.
    pub fn set_consumer_group_lag(&self, group: &str, topic: &str, partition: u32, lag: u64) {
        self.consumer_group_lag
            .get_or_create(&lag_labels(group, topic, partition))
            .set(i64::try_from(lag).unwrap_or(i64::MAX));
    }

    /// Drops every consumer-group lag series, before they are set anew from
    /// the committed offsets (so deleted groups and topics disappear).
    pub fn clear_consumer_group_lag(&self) {
        self.consumer_group_lag.clear();
    }
}

fn topic_labels(topic: &str) -> TopicLabels {
    TopicLabels {
        topic: topic.to_owned(),
    }
}

fn lag_labels(group: &str, topic: &str, partition: u32) -> LagLabels {
    LagLabels {
        group: group.to_owned(),
        topic: topic.to_owned(),
        partition,
    }
}

/// Observes the time since its creation into a histogram when dropped.
#[derive(Debug)]
#[must_use = "the time is recorded when the timer drops"]
pub struct Timer<'a> {
    histogram: &'a Histogram,
    started: Instant,
}

impl<'a> Timer<'a> {
    fn new(histogram: &'a Histogram) -> Self {
        Self {
            histogram,
            started: Instant::now(),
        }
    }
}

impl Drop for Timer<'_> {
    fn drop(&mut self) {
        self.histogram.observe(self.started.elapsed().as_secs_f64());
    }
}

/// Holds one connection in the open-connections gauge until dropped.
#[derive(Debug)]
#[must_use = "the connection counts as open only while the guard lives"]
pub struct ConnectionGuard<'a> {
    gauge: &'a Gauge,
}

impl Drop for ConnectionGuard<'_> {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn counters_render_with_prefix_and_labels() {
        let metrics = Metrics::new();
        metrics.record_produced("orders", 3, 300);
        metrics.record_produced("orders", 2, 200);
        metrics.record_fetched("orders", 4, 400);
        let text = metrics.encode();
        assert_eq!(
            sample(&text, "quiver_produced_records_total{topic=\"orders\"}"),
            Some(5.0)
        );
        assert_eq!(
            sample(&text, "quiver_produced_bytes_total{topic=\"orders\"}"),
            Some(500.0)
        );
        assert_eq!(
            sample(&text, "quiver_fetched_records_total{topic=\"orders\"}"),
            Some(4.0)
        );
        assert!(text.contains("# TYPE quiver_produce_duration_seconds histogram"));
        // A labelled family shows once it has a series.
        assert!(!text.contains("quiver_consumer_group_lag"));
        metrics.set_consumer_group_lag("g", "orders", 0, 9);
        assert!(
            metrics
                .encode()
                .contains("# TYPE quiver_consumer_group_lag gauge")
        );
    }

    #[test]
    fn forget_topic_drops_its_series() {
        let metrics = Metrics::new();
        metrics.record_produced("gone", 1, 10);
        metrics.forget_topic("gone");
        assert!(!metrics.encode().contains("topic=\"gone\""));
    }

    #[test]
    fn label_values_are_escaped() {
        let metrics = Metrics::new();
        metrics.set_consumer_group_lag("g\"1\n", "t", 7, 42);
        let text = metrics.encode();
        assert_eq!(
            sample(
                &text,
                "quiver_consumer_group_lag{group=\"g\\\"1\\n\",topic=\"t\",partition=\"7\"}"
            ),
            Some(42.0)
        );
        metrics.clear_consumer_group_lag();
        assert!(!metrics.encode().contains("group="));
    }

    struct Fixed(Vec<TransformSample>);

    impl TransformSource for Fixed {
        fn sample(&self) -> Vec<TransformSample> {
            self.0.clone()
        }
    }

    #[test]
    fn transform_series_are_sampled_at_each_scrape() {
        let metrics = Metrics::new();
        let source: std::sync::Arc<dyn TransformSource> =
            std::sync::Arc::new(Fixed(vec![TransformSample {
                name: "t".into(),
                records_in: 7,
                records_out: 2,
                errors: 1,
                lag: vec![(0, 3), (1, 0)],
            }]));
        metrics.sample_transforms_from(std::sync::Arc::downgrade(&source));
        let text = metrics.encode();
        assert_eq!(
            sample(&text, "quiver_transform_records_in_total{transform=\"t\"}"),
            Some(7.0)
        );
        assert_eq!(
            sample(&text, "quiver_transform_errors_total{transform=\"t\"}"),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                "quiver_transform_lag{transform=\"t\",partition=\"0\"}"
            ),
            Some(3.0)
        );
        // The same figures scraped again stay the same (not added up).
        assert_eq!(
            sample(
                &metrics.encode(),
                "quiver_transform_records_out_total{transform=\"t\"}"
            ),
            Some(2.0)
        );
        drop(source);
        metrics.set_transforms(&[]);
        assert!(!metrics.encode().contains("transform=\"t\""));
    }

    #[test]
    fn guards_record_on_drop() {
        let metrics = Metrics::new();
        {
            let _one = metrics.connection_opened();
            let _two = metrics.connection_opened();
            assert_eq!(
                sample(&metrics.encode(), "quiver_connections_open"),
                Some(2.0)
            );
            let _timer = metrics.time_produce();
        }
        let text = metrics.encode();
        assert_eq!(sample(&text, "quiver_connections_open"), Some(0.0));
        assert_eq!(
            sample(&text, "quiver_produce_duration_seconds_count"),
            Some(1.0)
        );
    }

    #[test]
    fn group_commit_and_retention() {
        let metrics = Metrics::new();
        metrics.record_group_commit(3, Duration::from_millis(2));
        metrics.record_retention_deletion(2, 2048);
        metrics.connection_refused();
        metrics.set_storage_size(4096);
        let text = metrics.encode();
        assert_eq!(sample(&text, "quiver_group_commit_appends_sum"), Some(3.0));
        assert_eq!(
            sample(&text, "quiver_group_commit_appends_bucket{le=\"4\"}"),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, "quiver_retention_deleted_batches_total"),
            Some(2.0)
        );
        assert_eq!(
            sample(&text, "quiver_retention_deleted_bytes_total"),
            Some(2048.0)
        );
        assert_eq!(sample(&text, "quiver_connections_refused_total"), Some(1.0));
        assert_eq!(sample(&text, "quiver_storage_size_bytes"), Some(4096.0));
    }
}
