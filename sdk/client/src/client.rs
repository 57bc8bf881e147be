//! One QUIC connection to a broker, and the request/response exchange.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use quinn::crypto::rustls::QuicClientConfig;
use quinn::{Endpoint, TransportConfig, VarInt};
use quiver_proto::api::{Request, decode_head, encode_request};
use quiver_proto::frame::{self, FrameHeader, HEADER_BYTES};
use quiver_proto::limits::MAX_FRAME_BYTES;
use quiver_proto::{ALPN, WireError};
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::error::ClientError;

/// The broker address used when none is given.
pub const DEFAULT_BROKER: &str = "127.0.0.1:7400";

/// Per-connection flow-control window.
const CONNECTION_WINDOW_BYTES: u32 = 64 * 1024 * 1024;

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
            request_timeout: Duration::from_secs(30),
        }
    }

    /// Trusts the certificates in a PEM file.
    #[must_use]
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self::new(DEFAULT_BROKER)
    }
}

/// A connection to a broker. Cheap to clone; clones share the connection.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    endpoint: Endpoint,
    connection: quinn::Connection,
    request_timeout: Duration,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.connection.close(VarInt::from_u32(0), b"client closed");
    }
}

impl Client {
    /// Connects and completes the TLS handshake.
    pub async fn connect(config: ClientConfig) -> Result<Self, ClientError> {
        let connect_error = |reason: String| ClientError::Connect {
            broker: config.broker.clone(),
            reason,
        };
        let addr = resolve(&config.broker).await?;
        let server_name = match &config.server_name {
            Some(name) => name.clone(),
            None => host_part(&config.broker).to_owned(),
        };
        let crypto = rustls_config(&config)?;
        let mut client_config = quinn::ClientConfig::new(Arc::new(
            QuicClientConfig::try_from(crypto).map_err(|e| ClientError::Config(e.to_string()))?,
        ));
        client_config.transport_config(Arc::new(transport_config()));
        let bind: SocketAddr = if addr.is_ipv6() {
            "[::]:0"
                .parse()
                .map_err(|_| ClientError::Config("bind address".into()))?
        } else {
            "0.0.0.0:0"
                .parse()
                .map_err(|_| ClientError::Config("bind address".into()))?
        };
        let mut endpoint = Endpoint::client(bind).map_err(|e| connect_error(e.to_string()))?;
        endpoint.set_default_client_config(client_config);
        let connection = endpoint
            .connect(addr, &server_name)
            .map_err(|e| connect_error(e.to_string()))?
            .await
            .map_err(|e| match ClientError::from(e.clone()) {
                refused @ ClientError::Connection { code: Some(_), .. } => refused,
                _ => connect_error(e.to_string()),
            })?;
        Ok(Self {
            inner: Arc::new(Inner {
                endpoint,
                connection,
                request_timeout: config.request_timeout,
            }),
        })
    }

    /// The broker's address.
    pub fn remote_address(&self) -> SocketAddr {
        self.inner.connection.remote_address()
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
        let timeout = self.inner.request_timeout + extra_wait;
        tokio::time::timeout(timeout, self.exchange(request, body))
            .await
            .map_err(|_| ClientError::Timeout(timeout))?
    }

    async fn exchange<R: Request>(
        &self,
        request: &R,
        body: Vec<Bytes>,
    ) -> Result<(R::Response, Bytes), ClientError> {
        let body_len = body.iter().map(Bytes::len).sum();
        let head = encode_request(request, body_len)?;
        let (mut send, mut recv) = self.inner.connection.open_bi().await?;
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
        let mut rest = BytesMut::zeroed(header.rest_len());
        recv.read_exact(&mut rest).await?;
        let rest = rest.freeze();
        let (head, _) = frame::split(&header, &rest)?;
        if header.code() != 0 {
            return Err(ClientError::Broker(decode_head::<WireError>(head)?));
        }
        let response = decode_head(head)?;
        Ok((response, rest.slice(header.head_len as usize..)))
    }

    /// Closes the connection and waits until the broker has been told.
    pub async fn close(&self) {
        self.inner
            .connection
            .close(VarInt::from_u32(0), b"client closed");
        self.inner.endpoint.wait_idle().await;
    }
}

fn transport_config() -> TransportConfig {
    let mut transport = TransportConfig::default();
    transport
        .stream_receive_window(VarInt::from_u32(MAX_FRAME_BYTES))
        .receive_window(VarInt::from_u32(CONNECTION_WINDOW_BYTES))
        .send_window(u64::from(CONNECTION_WINDOW_BYTES))
        .keep_alive_interval(Some(Duration::from_secs(10)));
    transport
}

fn rustls_config(config: &ClientConfig) -> Result<rustls::ClientConfig, ClientError> {
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
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut crypto = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| ClientError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    crypto.alpn_protocols = vec![ALPN.to_vec()];
    Ok(crypto)
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
}
