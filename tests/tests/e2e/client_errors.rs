//! What a client says when it cannot reach the broker or does not trust it:
//! through the real `quiver` binary (the words of each message) and the SDK
//! (the typed errors).

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use quiver_client::{Client, ClientConfig, ClientError};
use quiver_tests::cli::{CliFixture, run_quiver};
use quiver_tests::{TestBroker, quiver_bin};

const UDP_HINT: &str = "is quiver serve running there? \
                        (QUIC runs over UDP: check that UDP to that port is allowed)";

/// A `quiver` command for `broker` run from an empty directory, with no
/// `QUIVER_*` variable set.
fn bare_command(broker: SocketAddr, workdir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(quiver_bin());
    command
        .current_dir(workdir)
        .env_remove("QUIVER_CA")
        .env_remove("QUIVER_TIMEOUT")
        .env_remove("RUST_LOG")
        .env("QUIVER_BROKER", broker.to_string())
        .args(args);
    command
}

/// A UDP port that is bound but never answers: a broker that is down, or a
/// firewall that drops QUIC.
fn silent_port() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").expect("bind a UDP socket")
}

/// A port nothing listens on (bound, then released).
fn closed_port() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP socket");
    socket.local_addr().expect("local address")
}

#[test]
fn an_unreachable_broker_fails_within_five_seconds_with_a_hint() {
    let silent = silent_port();
    let addr = silent.local_addr().expect("local address");
    let dir = tempfile::tempdir().expect("temp dir");
    let started = Instant::now();
    let line = run_quiver(bare_command(addr, dir.path(), &["topic", "list"]), None).fails();
    let took = started.elapsed();
    assert_eq!(
        line,
        format!("error: cannot reach the broker at {addr} within 5s: {UDP_HINT}")
    );
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_secs(15),
        "took {took:?}"
    );
}

#[test]
fn the_timeout_flag_and_variable_are_honoured() {
    let silent = silent_port();
    let addr = silent.local_addr().expect("local address");
    let dir = tempfile::tempdir().expect("temp dir");

    let started = Instant::now();
    let command = bare_command(
        addr,
        dir.path(),
        &["consume", "click", "--follow", "--timeout", "1"],
    );
    let line = run_quiver(command, None).fails();
    let took = started.elapsed();
    assert_eq!(
        line,
        format!("error: cannot reach the broker at {addr} within 1s: {UDP_HINT}")
    );
    assert!(took < Duration::from_secs(4), "took {took:?}");

    // The variable, with a fraction, on a port nothing listens on.
    let closed = closed_port();
    let mut command = bare_command(closed, dir.path(), &["produce", "click"]);
    command.env("QUIVER_TIMEOUT", "0.5");
    let started = Instant::now();
    let line = run_quiver(command, Some(b"lost\n")).fails();
    let took = started.elapsed();
    assert_eq!(
        line,
        format!("error: cannot reach the broker at {closed} within 500ms: {UDP_HINT}")
    );
    assert!(took < Duration::from_secs(3), "took {took:?}");

    // A bad value is refused before anything is tried.
    let run = run_quiver(
        bare_command(addr, dir.path(), &["topic", "list", "--timeout", "0"]),
        None,
    );
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr.contains("the timeout must be above zero"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_wrong_ca_names_the_certificate_the_broker_presented() {
    let fixture = CliFixture::start();
    let mut other = fixture.runtime.block_on(TestBroker::start());
    let presented = fixture.broker.broker().cert().fingerprint.clone();
    assert_ne!(presented, other.broker().cert().fingerprint);
    let dir = tempfile::tempdir().expect("temp dir");

    // Through the variable, as CliFixture does, but with the other
    // broker's certificate.
    let mut command = bare_command(fixture.broker.addr(), dir.path(), &["topic", "list"]);
    command.env("QUIVER_CA", other.ca());
    let line = run_quiver(command, None).fails();
    assert_eq!(
        line,
        format!(
            "error: the broker at {} presented a certificate this client does not trust \
             (its signature does not match a trusted certificate); its SHA-256 fingerprint is {presented}. \
             This client trusted {} (--ca or QUIVER_CA): pass the broker's certificate with \
             --ca FILE or QUIVER_CA=FILE (a local quiver serve writes it to DATA/tls/cert.pem \
             and logs its fingerprint)",
            fixture.broker.addr(),
            other.ca().display()
        )
    );

    // Through the flag: the same words.
    let ca = other.ca().to_str().expect("UTF-8 path").to_owned();
    let command = bare_command(
        fixture.broker.addr(),
        dir.path(),
        &["consume", "click", "--ca", &ca],
    );
    let line = run_quiver(command, None).fails();
    assert!(line.contains(&presented), "{line}");
    assert!(line.contains(&format!("This client trusted {ca} (--ca or QUIVER_CA)")));

    // The right certificate works.
    let right = fixture.broker.ca().to_str().expect("UTF-8 path").to_owned();
    let command = bare_command(
        fixture.broker.addr(),
        dir.path(),
        &["topic", "list", "--ca", &right],
    );
    run_quiver(command, None).ok();
    fixture.runtime.block_on(other.shutdown());
}

#[test]
fn without_ca_in_an_empty_directory_the_system_roots_are_named() {
    let fixture = CliFixture::start();
    let presented = fixture.broker.broker().cert().fingerprint.clone();
    let dir = tempfile::tempdir().expect("temp dir");
    let command = bare_command(fixture.broker.addr(), dir.path(), &["topic", "list"]);
    let line = run_quiver(command, None).fails();
    assert_eq!(
        line,
        format!(
            "error: the broker at {} presented a certificate this client does not trust \
             (not issued by a trusted certificate); its SHA-256 fingerprint is {presented}. \
             This client trusted the system's roots: pass the broker's certificate with \
             --ca FILE or QUIVER_CA=FILE (a local quiver serve writes it to DATA/tls/cert.pem \
             and logs its fingerprint)",
            fixture.broker.addr()
        )
    );

    // A quiver-data/tls/cert.pem in the working directory is used instead,
    // and named when it is the wrong one.
    let mut other = fixture.runtime.block_on(TestBroker::start());
    let local = dir.path().join("quiver-data/tls");
    std::fs::create_dir_all(&local).expect("create quiver-data/tls");
    std::fs::copy(other.ca(), local.join("cert.pem")).expect("copy the certificate");
    let command = bare_command(fixture.broker.addr(), dir.path(), &["topic", "list"]);
    let line = run_quiver(command, None).fails();
    assert!(line.contains(&presented), "{line}");
    assert!(
        line.contains("This client trusted ./quiver-data/tls/cert.pem: pass"),
        "{line}"
    );
    fixture.runtime.block_on(other.shutdown());
}

#[tokio::test]
async fn the_sdk_reports_typed_connect_errors() {
    let silent = silent_port();
    let addr = silent.local_addr().expect("local address");
    let started = Instant::now();
    let error = Client::connect(
        ClientConfig::new(addr.to_string()).connect_timeout(Duration::from_millis(300)),
    )
    .await
    .expect_err("nothing answers");
    assert!(started.elapsed() < Duration::from_secs(3));
    match &error {
        ClientError::ConnectTimeout { broker, after } => {
            assert_eq!(broker, &addr.to_string());
            assert_eq!(*after, Duration::from_millis(300));
        }
        other => panic!("expected ConnectTimeout, got {other:?}"),
    }
    assert!(error.is_retriable());

    let mut broker = TestBroker::start().await;
    let mut other = TestBroker::start().await;
    let error = Client::connect(ClientConfig::new(broker.addr().to_string()).ca_file(other.ca()))
        .await
        .expect_err("the other broker's certificate is not this one's");
    match &error {
        ClientError::UntrustedCertificate {
            broker: name,
            fingerprint,
            problem,
        } => {
            assert_eq!(name, &broker.addr().to_string());
            assert_eq!(fingerprint, &broker.broker().cert().fingerprint);
            // Both brokers' certificates carry the same issuer name, so
            // WebPKI finds the trusted one and its key does not match.
            assert_eq!(
                problem,
                "its signature does not match a trusted certificate"
            );
        }
        other => panic!("expected UntrustedCertificate, got {other:?}"),
    }
    assert!(!error.is_retriable());

    // A name the certificate does not carry is refused too, and says so.
    let mut config = broker.client_config();
    config.server_name = Some("broker.example".into());
    let error = Client::connect(config)
        .await
        .expect_err("the certificate is for localhost and 127.0.0.1");
    match &error {
        ClientError::UntrustedCertificate { problem, .. } => {
            assert!(
                problem.starts_with("not valid for broker.example: it names "),
                "{problem}"
            );
        }
        other => panic!("expected UntrustedCertificate, got {other:?}"),
    }
    broker.shutdown().await;
    other.shutdown().await;
}
