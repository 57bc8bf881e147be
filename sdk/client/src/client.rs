//! The connection to a broker, and the request/response exchange.
//!
//! A [`Client`] holds one QUIC connection at a time. A request that finds
//! it closed (the broker restarted, the network dropped it) dials a new one
//! first, so a client outlives its broker; requests in flight when the
//! connection went fail with a [retriable](ClientError::is_retriable)
//! error and are not sent again here (see `reconnect.rs` for who retries).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use quinn::crypto::rustls::QuicClientConfig;
use quinn::{Endpoint, VarInt};
use quiver_proto::api::{Request, decode_head, encode_request};
use quiver_proto::frame::{self, FrameHeader, HEADER_BYTES};
use quiver_proto::{ALPN, WireError};
use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

use crate::buffers::{BufferPool, MIN_POOLED_BYTES};
use crate::error::ClientError;
use crate::quic;

/// The broker address used when none is given.
pub const DEFAULT_BROKER: &str = "127.0.0.1:7400";

/// How long a handshake may take unless [`ClientConfig::connect_timeout`]
/// says otherwise.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a request may take unless [`ClientConfig::request_timeout`]
/// says otherwise.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Where to connect and whom to trust.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `HOST:PORT` of the broker.
    pub broker: String,
    /// PEM file of the certificate authority (or the broker's self-signed
    /// certificate) to trust; `None` trusts the system's roots.
    pub ca_file: Option<PathBuf>,
    /// The name to verify the certificate against; defaults to the host part
    /// of `broker`.
    pub server_name: Option<String>,
    /// How long the QUIC and TLS handshake may take, on connect and on each
    /// reconnect, before [`ClientError::ConnectTimeout`].
    pub connect_timeout: Duration,
    /// How long a request may take, beyond any long-poll wait it asks for.
    pub request_timeout: Duration,
}

impl ClientConfig {
    /// A configuration for `broker` (`HOST:PORT`) with system roots.
    pub fn new(broker: impl Into<String>) -> Self {
        Self {
            broker: broker.into(),
            ca_file: None,
            server_name: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }

    /// Trusts the certificates in a PEM file.
    #[must_use]
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Sets the connect timeout.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self::new(DEFAULT_BROKER)
    }
}

/// A connection to a broker, re-dialled when lost. Cheap to clone; clones
/// share the connection.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dialer: Dialer,
    request_timeout: Duration,
    /// The current connection; replaced by a re-dial once it is closed.
    current: Mutex<quinn::Connection>,
    /// Held while re-dialling, so concurrent requests dial once.
    dialing: tokio::sync::Mutex<()>,
    /// Set by [`Client::close`]: no more re-dials.
    closed: AtomicBool,
    /// Receive buffers for large response bodies, reused.
    buffers: Arc<BufferPool>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        lock(&self.current).close(VarInt::from_u32(0), b"client closed");
    }
}

impl Client {
    /// Connects and completes the TLS handshake within
    /// [`ClientConfig::connect_timeout`].
    pub async fn connect(config: ClientConfig) -> Result<Self, ClientError> {
        let dialer = Dialer::new(&config).await?;
        let connection = dialer.dial().await?;
        Ok(Self {
            inner: Arc::new(Inner {
                dialer,
                request_timeout: config.request_timeout,
                current: Mutex::new(connection),
                dialing: tokio::sync::Mutex::new(()),
                closed: AtomicBool::new(false),
                buffers: Arc::default(),
            }),
        })
    }

    /// The broker's address.
    pub fn remote_address(&self) -> SocketAddr {
        self.inner.dialer.addr
    }

    /// Sends one request (head plus optional body chunks) on its own stream
    /// and waits for the answer: the response head and the response body.
    pub async fn request<R: Request>(
        &self,
        request: &R,
        body: Vec<Bytes>,
    ) -> Result<(R::Response, Bytes), ClientError> {
        self.request_with_wait(request, body, Duration::ZERO).await
    }

    /// As [`request`](Self::request), allowing `extra_wait` beyond the
    /// request timeout (for long polls).
    pub(crate) async fn request_with_wait<R: Request>(
        &self,
        request: &R,
        body: Vec<Bytes>,
        extra_wait: Duration,
    ) -> Result<(R::Response, Bytes), ClientError> {
        // A re-dial has its own timeout, outside the request's.
        let connection = self.connection().await?;
        let timeout = self.inner.request_timeout + extra_wait;
        let exchange = exchange(&connection, &self.inner.buffers, request, body);
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| ClientError::Timeout(timeout))?
    }

    /// The open connection, dialling a new one if the last was closed. A
    /// re-dial that times out or is refused reports the lost connection's
    /// error (with its close code, so as retriable as the loss); any other
    /// failure (an untrusted certificate, a refusal with a code) as itself.
    async fn connection(&self) -> Result<quinn::Connection, ClientError> {
        let current = lock(&self.inner.current).clone();
        if current.close_reason().is_none() {
            return Ok(current);
        }
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(ClientError::Closed);
        }
        let _dialing = self.inner.dialing.lock().await;
        let current = lock(&self.inner.current).clone();
        let Some(lost) = current.close_reason() else {
            // Another request re-dialled meanwhile.
            return Ok(current);
        };
        match self.inner.dialer.dial().await {
            Ok(fresh) => {
                tracing::info!(broker = %self.inner.dialer.broker, "reconnected");
                *lock(&self.inner.current) = fresh.clone();
                Ok(fresh)
            }
            // The broker was reachable before: a refused or timed-out
            // handshake (e.g. it is still shutting down) is as transient
            // as the loss itself.
            Err(dial @ (ClientError::ConnectTimeout { .. } | ClientError::Connect { .. })) => {
                Err(match ClientError::from(lost) {
                    ClientError::Connection { code, reason } => ClientError::Connection {
                        code,
                        reason: format!("{reason}; reconnecting failed: {dial}"),
                    },
                    _ => dial,
                })
            }
            Err(dial) => Err(dial),
        }
    }

    /// Closes the connection and waits until the broker has been told.
    pub async fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
        let current = lock(&self.inner.current).clone();
        current.close(VarInt::from_u32(0), b"client closed");
        self.inner.dialer.endpoint.wait_idle().await;
    }
}

async fn exchange<R: Request>(
    connection: &quinn::Connection,
    buffers: &Arc<BufferPool>,
    request: &R,
    body: Vec<Bytes>,
) -> Result<(R::Response, Bytes), ClientError> {
    let body_len = body.iter().map(Bytes::len).sum();
    let head = encode_request(request, body_len)?;
    let (mut send, mut recv) = connection.open_bi().await?;
    let mut chunks = Vec::with_capacity(body.len() + 1);
    chunks.push(Bytes::from(head));
    chunks.extend(body);
    send.write_all_chunks(&mut chunks).await?;
    // The stream may already be reset by a broker that refused early;
    // its answer is still read below.
    let _ = send.finish();

    let mut header = [0u8; HEADER_BYTES];
    recv.read_exact(&mut header).await?;
    let header = FrameHeader::parse(&header)?;
    let len = header.rest_len();
    let rest = if len >= MIN_POOLED_BYTES {
        let mut rest = buffers.take(len);
        recv.read_exact(&mut rest[..len]).await?;
        BufferPool::share(buffers, rest, len)
    } else {
        let mut rest = BytesMut::zeroed(len);
        recv.read_exact(&mut rest).await?;
        rest.freeze()
    };
    let (head, _) = frame::split(&header, &rest)?;
    if header.code() != 0 {
        return Err(ClientError::Broker(decode_head::<WireError>(head)?));
    }
    let response = decode_head(head)?;
    Ok((response, rest.slice(header.head_len as usize..)))
}

/// What it takes to (re)dial: the endpoint, the address and the verifier.
#[derive(Debug)]
struct Dialer {
    broker: String,
    addr: SocketAddr,
    server_name: String,
    endpoint: Endpoint,
    verifier: Arc<RecordingVerifier>,
    connect_timeout: Duration,
}

impl Dialer {
    async fn new(config: &ClientConfig) -> Result<Self, ClientError> {
        let addr = resolve(&config.broker).await?;
        let server_name = match &config.server_name {
            Some(name) => name.clone(),
            None => host_part(&config.broker).to_owned(),
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = Arc::new(RecordingVerifier::new(
            trusted_roots(config)?,
            Arc::clone(&provider),
        )?);
        let mut crypto = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| ClientError::Config(e.to_string()))?
            // "dangerous" only in name: the verifier is WebPKI's, unchanged.
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone())
            .with_no_client_auth();
        crypto.alpn_protocols = vec![ALPN.to_vec()];
        let mut client_config = quinn::ClientConfig::new(Arc::new(
            QuicClientConfig::try_from(crypto).map_err(|e| ClientError::Config(e.to_string()))?,
        ));
        let mut transport = quic::transport_config();
        transport.keep_alive_interval(Some(Duration::from_secs(10)));
        client_config.transport_config(Arc::new(transport));
        let bind = if addr.is_ipv6() {
            SocketAddr::from(([0u16; 8], 0))
        } else {
            SocketAddr::from(([0u8; 4], 0))
        };
        let mut endpoint = quic::endpoint(bind, None).map_err(|e| ClientError::Connect {
            broker: config.broker.clone(),
            reason: e.to_string(),
        })?;
        endpoint.set_default_client_config(client_config);
        Ok(Self {
            broker: config.broker.clone(),
            addr,
            server_name,
            endpoint,
            verifier,
            connect_timeout: config.connect_timeout,
        })
    }

    /// One handshake, within the connect timeout. Dials never overlap (the
    /// first happens before the client exists, the rest under `dialing`),
    /// so the verifier's record belongs to this one.
    async fn dial(&self) -> Result<quinn::Connection, ClientError> {
        let connect_error = |reason: String| ClientError::Connect {
            broker: self.broker.clone(),
            reason,
        };
        self.verifier.take_rejected();
        let connecting = self
            .endpoint
            .connect(self.addr, &self.server_name)
            .map_err(|e| connect_error(e.to_string()))?;
        let error = match tokio::time::timeout(self.connect_timeout, connecting).await {
            Ok(Ok(connection)) => return Ok(connection),
            Ok(Err(error)) => error,
            Err(_) => {
                return Err(ClientError::ConnectTimeout {
                    broker: self.broker.clone(),
                    after: self.connect_timeout,
                });
            }
        };
        if let Some(rejected) = self.verifier.take_rejected() {
            return Err(ClientError::UntrustedCertificate {
                broker: self.broker.clone(),
                fingerprint: rejected.fingerprint,
                problem: rejected.problem,
            });
        }
        Err(match ClientError::from(error.clone()) {
            refused @ ClientError::Connection { code: Some(_), .. } => refused,
            _ => connect_error(error.to_string()),
        })
    }
}

/// `WebPKI` verification, unchanged, that remembers the certificate it
/// refused so the connect error can name it.
#[derive(Debug)]
struct RecordingVerifier {
    /// `None` when there is no root at all (no CA file, no system roots):
    /// then every certificate is refused as of an unknown issuer.
    webpki: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
    rejected: Mutex<Option<Rejected>>,
}

#[derive(Debug)]
struct Rejected {
    fingerprint: String,
    problem: String,
}

impl RecordingVerifier {
    fn new(roots: RootCertStore, provider: Arc<CryptoProvider>) -> Result<Self, ClientError> {
        let webpki = if roots.is_empty() {
            None
        } else {
            Some(
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                    .build()
                    .map_err(|e| ClientError::Config(format!("certificate verifier: {e}")))?,
            )
        };
        Ok(Self {
            webpki,
            provider,
            rejected: Mutex::new(None),
        })
    }

    fn take_rejected(&self) -> Option<Rejected> {
        lock(&self.rejected).take()
    }
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict = match &self.webpki {
            Some(webpki) => webpki.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ),
            None => Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            )),
        };
        if let Err(rustls::Error::InvalidCertificate(problem)) = &verdict {
            *lock(&self.rejected) = Some(Rejected {
                fingerprint: fingerprint(end_entity),
                problem: describe(problem),
            });
        }
        verdict
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A refused certificate's problem in words.
fn describe(problem: &CertificateError) -> String {
    match problem {
        CertificateError::UnknownIssuer => "not issued by a trusted certificate".into(),
        CertificateError::BadSignature => {
            "its signature does not match a trusted certificate".into()
        }
        CertificateError::NotValidForName => "not valid for the broker's name".into(),
        CertificateError::NotValidForNameContext {
            expected,
            presented,
        } => format!(
            "not valid for {}: it names {}",
            expected.to_str(),
            presented.join(", ")
        ),
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => "expired".into(),
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "not valid yet".into()
        }
        other => rustls::Error::InvalidCertificate(other.clone()).to_string(),
    }
}

/// SHA-256 of a certificate as colon-separated upper-case hex, the format
/// `quiver serve` logs.
fn fingerprint(cert: &CertificateDer<'_>) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.as_ref());
    digest
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The CA file's certificates, or the system's roots.
fn trusted_roots(config: &ClientConfig) -> Result<RootCertStore, ClientError> {
    let mut roots = RootCertStore::empty();
    if let Some(path) = &config.ca_file {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(|e| {
                ClientError::Config(format!("cannot read CA file {}: {e}", path.display()))
            })?;
        if certs.is_empty() {
            return Err(ClientError::Config(format!(
                "CA file {} holds no certificate",
                path.display()
            )));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| ClientError::Config(format!("bad CA certificate: {e}")))?;
        }
    } else {
        let native = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(native.certs);
    }
    Ok(roots)
}

async fn resolve(broker: &str) -> Result<SocketAddr, ClientError> {
    let bad = |reason: String| ClientError::Config(format!("broker address {broker:?}: {reason}"));
    let mut addrs = tokio::net::lookup_host(broker)
        .await
        .map_err(|e| bad(format!("{e} (expected HOST:PORT)")))?;
    addrs
        .next()
        .ok_or_else(|| bad("resolves to no address".into()))
}

/// `host` of `host:port` or `[v6]:port`.
fn host_part(broker: &str) -> &str {
    let host = broker.rsplit_once(':').map_or(broker, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_part_strips_port_and_brackets() {
        assert_eq!(host_part("127.0.0.1:7400"), "127.0.0.1");
        assert_eq!(host_part("localhost:1"), "localhost");
        assert_eq!(host_part("[::1]:7400"), "::1");
    }

    #[test]
    fn fingerprints_are_colon_separated_upper_hex() {
        assert_eq!(
            fingerprint(&CertificateDer::from(b"quiver".to_vec())),
            "C5:94:35:A1:E9:47:43:32:70:1F:DC:4C:E1:35:DB:CC:\
             2D:73:35:02:C4:30:78:E2:D8:A3:56:5C:C4:1E:F4:8A"
        );
    }

    #[test]
    fn certificate_problems_read_as_words() {
        assert_eq!(
            describe(&CertificateError::UnknownIssuer),
            "not issued by a trusted certificate"
        );
        let name = CertificateError::NotValidForNameContext {
            expected: ServerName::try_from("broker.example").expect("name"),
            presented: vec!["DnsName(\"localhost\")".into()],
        };
        assert!(describe(&name).starts_with("not valid for broker.example: it names "));
        assert_eq!(describe(&CertificateError::Expired), "expired");
    }
}
