//! A certificate authority of one's own, through the real binary: `quiver
//! tls init-ca` and `tls issue`, a `quiver serve` with the issued
//! certificate (`--tls-cert`, `--tls-key`) on its QUIC and Kafka TLS
//! listeners, clients that trust the CA, and a client that trusts another
//! CA and is refused.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use quiver_tests::cli::{Run, run_quiver};
use quiver_tests::kafka::kcat;
use quiver_tests::{BrokerProcess, quiver_bin, quiver_command};

/// `quiver tls ARGS`.
fn tls(args: &[&str]) -> Run {
    let mut command = Command::new(quiver_bin());
    command.arg("tls").args(args);
    run_quiver(command, None)
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// Makes `dir`/ca, `dir`/other-ca and `dir`/node-1 (signed by ca) with
/// the CLI, checking what it prints and refuses; returns the three.
fn make_certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let (ca, other_ca, node) = (dir.join("ca"), dir.join("other-ca"), dir.join("node-1"));
    let made = tls(&["init-ca", "--out", path(&ca)]).ok();
    assert!(
        made.starts_with(&format!("wrote {}", path(&ca.join("ca.pem")))),
        "{made}"
    );
    tls(&["init-ca", "--out", path(&other_ca), "--name", "Another CA"]).ok();
    let issued = tls(&[
        "issue",
        "--ca",
        path(&ca),
        "--host",
        "127.0.0.1",
        "--host",
        "localhost",
        "--node-id",
        "1",
        "--out",
        path(&node),
    ])
    .ok();
    assert!(
        issued.contains(&format!(
            "serve with: quiver serve --tls-cert {} --tls-key {}",
            path(&node.join("cert.pem")),
            path(&node.join("key.pem"))
        )),
        "{issued}"
    );
    // Nothing is overwritten; a certificate needs a host.
    let again = tls(&["init-ca", "--out", path(&ca)]).fails();
    assert!(again.contains("ca.pem exists"), "{again}");
    let hostless = tls(&["issue", "--ca", path(&ca), "--out", path(&dir.join("x"))]);
    assert_eq!(hostless.code, Some(2), "{}", hostless.stderr);
    assert!(hostless.stderr.contains("--host"), "{}", hostless.stderr);
    (ca, other_ca, node)
}

#[test]
fn a_broker_with_a_certificate_from_its_own_ca_is_trusted_through_the_ca() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (ca, other_ca, node) = make_certificates(dir.path());
    let data = dir.path().join("data");
    let (cert, key) = (node.join("cert.pem"), node.join("key.pem"));
    let broker = BrokerProcess::spawn_with(
        &data,
        SocketAddr::from(([127, 0, 0, 1], 0)),
        &[
            "--kafka-tls-listen",
            "127.0.0.1:0",
            "--tls-cert",
            path(&cert),
            "--tls-key",
            path(&key),
        ],
    );
    assert!(
        !data.join("tls").exists(),
        "the broker generated a certificate of its own"
    );

    let quiver = |trust: &Path, args: &[&str], input: Option<&[u8]>| {
        let mut command = quiver_command(broker.addr(), &trust.join("ca.pem"));
        command.args(args);
        run_quiver(command, input)
    };
    quiver(
        &ca,
        &["topic", "create", "sealed", "--partitions", "1"],
        None,
    )
    .ok();
    quiver(&ca, &["produce", "sealed"], Some(b"one\ntwo\n")).ok();
    let read = quiver(
        &ca,
        &["consume", "sealed", "--from", "0", "--count", "2"],
        None,
    )
    .ok();
    assert_eq!(read, "one\ntwo\n");
    let refused = quiver(&other_ca, &["topic", "list"], None).fails();
    assert!(refused.contains("certificate"), "{refused}");

    // Kafka clients over TLS trust the same CA.
    let kafka_tls = broker
        .kafka_tls_addr()
        .expect("the Kafka TLS listener runs");
    let ca_location = format!("ssl.ca.location={}", path(&ca.join("ca.pem")));
    let read = kcat(
        kafka_tls,
        &[
            "-C",
            "-t",
            "sealed",
            "-o",
            "beginning",
            "-e",
            "-q",
            "-X",
            "security.protocol=ssl",
            "-X",
            &ca_location,
        ],
        None,
    )
    .ok();
    assert_eq!(read, "one\ntwo\n");
}
