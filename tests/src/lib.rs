//! The end-to-end test harness: real brokers on `127.0.0.1` port 0 in a
//! temporary directory, with real redb and real QUIC.
//!
//! - [`TestBroker`]: a broker inside the test process (fast to start and
//!   restart on the same data directory).
//! - [`BrokerProcess`]: the real `quiver serve` binary as a child process,
//!   for crash tests (SIGKILL) and CLI tests.
//! - [`RawConnection`]: a bare QUIC connection that sends hand-made frames.
//! - [`cli`]: the real `quiver` binary run as a user would, with its exit
//!   code and output, against a broker or none.
//! - [`transforms`]: deploy requests, uploads and status waits for tests of
//!   deployed transforms.
//! - [`kafka`]: the Kafka listener through kcat and a bare TCP connection.

pub mod cli;
pub mod http;
pub mod kafka;
pub mod transforms;

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};
use quiver_client::{Admin, Client, ClientConfig, TopicConfig};
use quiver_host::{Broker, BrokerConfig};
use quiver_proto::frame::{FrameHeader, HEADER_BYTES};
use tempfile::TempDir;

/// Adjusts a test broker's configuration before each (re)start.
pub type Configure = Arc<dyn Fn(&mut BrokerConfig) + Send + Sync>;

/// A broker running inside the test process.
pub struct TestBroker {
    dir: TempDir,
    broker: Option<Broker>,
    addr: SocketAddr,
    ca: PathBuf,
    configure: Configure,
}

impl TestBroker {
    /// Starts a broker in a fresh temporary directory.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts a broker that accepts at most `max_connections` connections.
    pub async fn with_max_connections(max_connections: usize) -> Self {
        Self::start_with(move |config| config.connections.max_connections = max_connections).await
    }

    /// Starts a broker whose configuration `configure` adjusts (on every
    /// restart too).
    pub async fn start_with(configure: impl Fn(&mut BrokerConfig) + Send + Sync + 'static) -> Self {
        let configure: Configure = Arc::new(configure);
        let dir = tempfile::tempdir().expect("temp dir");
        let broker = start_broker(dir.path(), &configure).await;
        let addr = broker.local_addr();
        let ca = broker.cert().cert_path.clone();
        Self {
            dir,
            broker: Some(broker),
            addr,
            ca,
            configure,
        }
    }

    /// Starts a broker with its HTTP port (`/health`, `/ready`, `/metrics`)
    /// on `127.0.0.1` port 0.
    pub async fn start_with_http() -> Self {
        Self::start_with(|config| config.http = Some(SocketAddr::from(([127, 0, 0, 1], 0)))).await
    }

    /// The HTTP port's address; the broker must have one (see
    /// [`start_with_http`](Self::start_with_http)).
    pub fn http_addr(&self) -> SocketAddr {
        self.broker()
            .http_addr()
            .expect("the test broker has an HTTP port")
    }

    /// The running broker.
    pub fn broker(&self) -> &Broker {
        self.broker.as_ref().expect("the test broker is running")
    }

    /// The broker's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The broker's self-signed certificate, to trust as CA.
    pub fn ca(&self) -> &Path {
        &self.ca
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// A client configuration for this broker.
    pub fn client_config(&self) -> ClientConfig {
        ClientConfig::new(self.addr.to_string()).ca_file(&self.ca)
    }

    /// A connected client.
    pub async fn client(&self) -> Client {
        Client::connect(self.client_config())
            .await
            .expect("connect to the test broker")
    }

    /// An admin on a new connection.
    pub async fn admin(&self) -> Admin {
        Admin::new(self.client().await)
    }

    /// Creates a topic with default settings.
    pub async fn create_topic(&self, name: &str, partitions: u32) {
        self.admin()
            .await
            .create_topic(name, partitions, TopicConfig::default())
            .await
            .expect("create topic");
    }

    /// Shuts the broker down cleanly and starts it again on the same data
    /// directory (on a new port).
    pub async fn restart(&mut self) {
        if let Some(broker) = self.broker.take() {
            broker.shutdown().await;
        }
        let broker = start_broker(self.dir.path(), &self.configure).await;
        self.addr = broker.local_addr();
        self.broker = Some(broker);
    }

    /// Shuts the broker down cleanly.
    pub async fn shutdown(&mut self) {
        if let Some(broker) = self.broker.take() {
            broker.shutdown().await;
        }
    }
}

/// The test brokers keep a 1 MiB space reserve, not the default 64 MiB:
/// the suite starts a few hundred brokers, and each would write its reserve.
const TEST_RESERVE_BYTES: u64 = 1024 * 1024;
/// The same for `quiver serve`.
const TEST_RESERVE_ARGS: [&str; 2] = ["--reserve-mb", "1"];

async fn start_broker(dir: &Path, configure: &Configure) -> Broker {
    let mut config = BrokerConfig::new(dir, "127.0.0.1:0".parse().expect("address"));
    config.storage.reserve_bytes = TEST_RESERVE_BYTES;
    configure(&mut config);
    Broker::start(config).await.expect("start the test broker")
}

/// The `quiver` binary built for this test run.
///
/// `cargo test` builds it (the host crate has integration tests), into the
/// same target directory as this test executable.
pub fn quiver_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/quiver
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable under target/<profile>/deps");
    let bin = profile_dir.join("quiver");
    assert!(
        bin.exists(),
        "{} is missing: run the tests with `cargo test --workspace`, which builds it",
        bin.display()
    );
    bin
}

/// A `quiver` command pointed at `addr`, trusting `ca`.
pub fn quiver_command(addr: SocketAddr, ca: &Path) -> Command {
    let mut command = Command::new(quiver_bin());
    command
        .env("QUIVER_BROKER", addr.to_string())
        .env("QUIVER_CA", ca)
        .env_remove("RUST_LOG");
    command
}

/// `quiver serve` as a child process.
pub struct BrokerProcess {
    child: Child,
    addr: SocketAddr,
    kafka_addr: Option<SocketAddr>,
    kafka_tls_addr: Option<SocketAddr>,
    ca: PathBuf,
    /// Bytes the broker has written to its standard error (its log) so far.
    stderr_bytes: Arc<AtomicU64>,
}

impl BrokerProcess {
    /// Starts `quiver serve` on `data_dir` and port 0, and waits for its
    /// "listening" line to learn the port.
    pub fn spawn(data_dir: &Path) -> Self {
        Self::spawn_on(data_dir, SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Starts `quiver serve` on `data_dir` listening on `addr` (e.g. the
    /// address of a broker just stopped, to restart it where its clients
    /// look), and waits for its "listening" line.
    pub fn spawn_on(data_dir: &Path, addr: SocketAddr) -> Self {
        Self::spawn_with(data_dir, addr, &[])
    }

    /// [`spawn_on`](Self::spawn_on) with more `quiver serve` flags (e.g. a
    /// TLS listener or the user's certificate).
    pub fn spawn_with(data_dir: &Path, addr: SocketAddr, flags: &[&str]) -> Self {
        let mut command = Command::new(quiver_bin());
        command
            .args(["serve", "--listen"])
            .arg(addr.to_string())
            .args([
                "--kafka-listen",
                "127.0.0.1:0",
                "--http",
                "off",
                "--data-dir",
            ])
            .arg(data_dir)
            .args(TEST_RESERVE_ARGS)
            .args(flags);
        Self::spawn_command(command, data_dir)
    }

    /// [`spawn`](Self::spawn) off the async threads, for async tests.
    pub async fn start(data_dir: &Path) -> Self {
        let data_dir = data_dir.to_path_buf();
        tokio::task::spawn_blocking(move || Self::spawn(&data_dir))
            .await
            .expect("start the broker process")
    }

    /// Starts `command` (a `quiver serve` command line, with its own working
    /// directory and environment), whose data directory is `data_dir`, and
    /// waits for its "listening" line to learn the port.
    pub fn spawn_command(mut command: Command, data_dir: &Path) -> Self {
        let mut child = command
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn quiver serve");
        let stderr = child.stderr.take().expect("piped stderr");
        let mut lines = BufReader::new(stderr).lines();
        let (addr, kafka_addr, kafka_tls_addr) = loop {
            let line = lines
                .next()
                .expect("quiver serve exited before listening")
                .expect("read quiver serve output");
            if let Some(rest) = line.split(" listen=").nth(1) {
                let field = |text: &str| {
                    text.split_whitespace()
                        .next()
                        .map(str::to_owned)
                        .unwrap_or_default()
                };
                let addr = field(rest).parse().expect("listen address");
                let listener = |name: &str| {
                    line.split(name)
                        .nth(1)
                        .map(field)
                        .and_then(|a| a.parse().ok())
                };
                break (addr, listener(" kafka="), listener(" kafka_tls="));
            }
        };
        // Keep draining stderr so the broker never blocks on a full pipe,
        // counting what it logs (and echoing it when QUIVER_TEST_ECHO is
        // set, to see what a failing test's broker said).
        let stderr_bytes = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&stderr_bytes);
        std::thread::spawn(move || {
            let echo = std::env::var_os("QUIVER_TEST_ECHO").is_some();
            for line in lines.map_while(Result::ok) {
                if echo {
                    eprintln!("broker: {line}");
                }
                counter.fetch_add(line.len() as u64 + 1, Ordering::Relaxed);
            }
        });
        Self {
            child,
            addr,
            kafka_addr,
            kafka_tls_addr,
            ca: data_dir.join("tls").join("cert.pem"),
            stderr_bytes,
        }
    }

    /// Bytes the broker has logged to standard error since it listened.
    pub fn stderr_bytes(&self) -> u64 {
        self.stderr_bytes.load(Ordering::Relaxed)
    }

    /// The broker's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The Kafka listener's address, unless it is off.
    pub fn kafka_addr(&self) -> Option<SocketAddr> {
        self.kafka_addr
    }

    /// The Kafka TLS listener's address, if it runs.
    pub fn kafka_tls_addr(&self) -> Option<SocketAddr> {
        self.kafka_tls_addr
    }

    /// The broker's self-signed certificate (`DATA/tls/cert.pem`).
    pub fn ca(&self) -> &Path {
        &self.ca
    }

    /// A client configuration for this broker.
    pub fn client_config(&self) -> ClientConfig {
        ClientConfig::new(self.addr.to_string()).ca_file(&self.ca)
    }

    /// A connected client.
    pub async fn client(&self) -> Client {
        Client::connect(self.client_config())
            .await
            .expect("connect to the broker process")
    }

    /// Kills the broker with SIGKILL and reaps it.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL the broker");
        self.child.wait().expect("reap the broker");
    }

    /// Sends SIGTERM and waits for a clean exit; returns whether it exited 0.
    pub fn terminate(mut self) -> bool {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "send SIGTERM");
        self.child.wait().is_ok_and(|s| s.success())
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A bare QUIC connection for sending hand-made frames.
pub struct RawConnection {
    connection: quinn::Connection,
    _endpoint: quinn::Endpoint,
}

/// What came back on a raw stream.
#[derive(Debug)]
pub enum RawReply {
    /// A whole response frame: its header, head and body.
    Frame {
        /// The fixed header.
        header: FrameHeader,
        /// The postcard head.
        head: Bytes,
        /// The body.
        body: Bytes,
    },
    /// The stream ended or was reset without a whole response.
    Closed(String),
}

impl RawConnection {
    /// Connects to `addr`, trusting `ca`.
    pub async fn connect(addr: SocketAddr, ca: &Path) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        let pem = std::fs::read(ca).expect("read CA");
        for cert in <rustls::pki_types::CertificateDer<'_> as rustls::pki_types::pem::PemObject>::pem_slice_iter(&pem) {
            roots.add(cert.expect("CA PEM")).expect("add CA");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut crypto = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("TLS 1.3")
            .with_root_certificates(roots)
            .with_no_client_auth();
        crypto.alpn_protocols = vec![quiver_proto::ALPN.to_vec()];
        let mut config = quinn::ClientConfig::new(Arc::new(
            quinn::crypto::rustls::QuicClientConfig::try_from(crypto).expect("QUIC TLS config"),
        ));
        config.transport_config(Arc::new(quiver_client::quic::transport_config()));
        let mut endpoint =
            quiver_client::quic::endpoint("127.0.0.1:0".parse().expect("address"), None)
                .expect("endpoint");
        endpoint.set_default_client_config(config);
        let connection = endpoint
            .connect(addr, "localhost")
            .expect("connect")
            .await
            .expect("handshake");
        Self {
            connection,
            _endpoint: endpoint,
        }
    }

    /// Sends `bytes` on a new stream, finishes it, and reads the reply.
    pub async fn send(&self, bytes: &[u8]) -> RawReply {
        self.send_then(bytes, true).await
    }

    /// Sends `bytes` on a new stream without finishing it (a client that
    /// stalls mid-frame), and reads the reply.
    pub async fn send_unfinished(&self, bytes: &[u8]) -> RawReply {
        self.send_then(bytes, false).await
    }

    /// The largest UDP payload path MTU discovery has found so far towards
    /// the broker.
    pub fn path_mtu(&self) -> u16 {
        self.connection.stats().path.current_mtu
    }

    /// Waits until the broker closes the connection; returns why.
    pub async fn closed(&self) -> quinn::ConnectionError {
        self.connection.closed().await
    }

    async fn send_then(&self, bytes: &[u8], finish: bool) -> RawReply {
        let (mut send, mut recv) = self.connection.open_bi().await.expect("open stream");
        // The broker may stop the stream before taking everything; what it
        // answers is still readable.
        let _ = send.write_all(bytes).await;
        if finish {
            let _ = send.finish();
        }
        let mut header = [0u8; HEADER_BYTES];
        if let Err(e) = recv.read_exact(&mut header).await {
            return RawReply::Closed(e.to_string());
        }
        let header = match FrameHeader::parse(&header) {
            Ok(header) => header,
            Err(e) => return RawReply::Closed(format!("bad response header: {e}")),
        };
        let mut rest = BytesMut::zeroed(header.rest_len());
        if let Err(e) = recv.read_exact(&mut rest).await {
            return RawReply::Closed(e.to_string());
        }
        let mut rest = rest.freeze();
        let head = rest.split_to(header.head_len as usize);
        RawReply::Frame {
            header,
            head,
            body: rest,
        }
    }

    /// Sends `bytes` and resets the stream without finishing it.
    pub async fn send_and_reset(&self, bytes: &[u8]) {
        let (mut send, _recv) = self.connection.open_bi().await.expect("open stream");
        let _ = send.write_all(bytes).await;
        let _ = send.reset(quinn::VarInt::from_u32(7));
    }
}

/// The bytes of a guest example component (`guest-examples/<crate>`, file
/// `<crate with _>.wasm`), building the examples for `wasm32-wasip2` first
/// if they are not built yet.
pub fn guest_component(name: &str) -> Vec<u8> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .join("guest-examples");
    let file = root
        .join("target/wasm32-wasip2/release")
        .join(format!("{}.wasm", name.replace('-', "_")));
    if !file.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "--manifest-path",
            ])
            .arg(root.join("Cargo.toml"))
            // Here, whatever CARGO_TARGET_DIR says: this is where we read.
            .arg("--target-dir")
            .arg(root.join("target"))
            .status()
            .expect("run cargo build for the guest examples");
        assert!(
            status.success(),
            "building the guest examples failed (is the wasm32-wasip2 target installed? \
             `rustup target add wasm32-wasip2`)"
        );
    }
    std::fs::read(&file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()))
}

/// A request frame with any kind, version, head and body, for sending raw.
pub fn frame(kind: u16, version: u16, head: &[u8], body: &[u8]) -> Vec<u8> {
    let header =
        FrameHeader::for_parts(kind, version, head.len(), body.len()).expect("within limits");
    let mut bytes = header.to_bytes().to_vec();
    bytes.extend_from_slice(head);
    bytes.extend_from_slice(body);
    bytes
}

/// The value of a consumed record, for tests that write no tombstones.
pub trait RecordValue {
    /// The value's bytes. Panics on a null value, so that a tombstone
    /// where none was written fails the test.
    fn value_bytes(&self) -> &[u8];
}

impl RecordValue for quiver_client::ConsumerRecord {
    fn value_bytes(&self) -> &[u8] {
        self.value.as_deref().unwrap_or_else(|| {
            panic!(
                "{}/{}@{} has a null value",
                self.topic, self.partition, self.offset
            )
        })
    }
}
