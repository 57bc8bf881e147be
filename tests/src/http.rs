//! A minimal HTTP/1.1 client for the broker's operator port (`/health`,
//! `/ready`, `/metrics`): one request per connection, the whole reply read.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// What one HTTP/1.1 request got back.
#[derive(Debug)]
pub struct HttpReply {
    /// The status code.
    pub status: u16,
    /// Header names (lower case) and values.
    pub headers: HashMap<String, String>,
    /// The body as text.
    pub body: String,
}

/// Sends one request with `Connection: close` and reads the whole reply.
pub async fn request(addr: SocketAddr, method: &str, path: &str) -> HttpReply {
    let mut stream = TcpStream::connect(addr).await.expect("connect to HTTP");
    let head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(head.as_bytes())
        .await
        .expect("send request");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("reply in time")
        .expect("read reply");
    let raw = String::from_utf8(raw).expect("UTF-8 reply");
    let (head, body) = raw.split_once("\r\n\r\n").expect("head and body");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    HttpReply {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// A `GET` of `path`.
pub async fn get(addr: SocketAddr, path: &str) -> HttpReply {
    request(addr, "GET", path).await
}
