//! A certificate authority of one's own: `quiver tls init-ca` makes one,
//! `quiver tls issue` signs a broker's certificate with it. Clients then
//! trust the CA (`--ca DIR/ca.pem`) rather than each broker's certificate,
//! and a cluster's brokers will check each other against it.
//!
//! Keys are ECDSA P-256 (rcgen's default), written readable by their owner
//! only; nothing is ever overwritten.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::CertificateDer;
use time::{Duration, OffsetDateTime};

use super::{TlsError, fingerprint, write_error};

/// The CA's certificate in its directory: what clients and brokers trust.
pub const CA_CERT_FILE: &str = "ca.pem";
/// The CA's private key in its directory.
pub const CA_KEY_FILE: &str = "ca-key.pem";
/// An issued certificate in its directory (`--tls-cert`).
pub const ISSUED_CERT_FILE: &str = "cert.pem";
/// An issued certificate's private key (`--tls-key`).
pub const ISSUED_KEY_FILE: &str = "key.pem";

/// How long before now a certificate becomes valid, so that a peer whose
/// clock is a little behind accepts it at once.
const BACKDATE: Duration = Duration::hours(1);

/// What to put in a broker's certificate.
#[derive(Debug, Clone)]
pub struct IssueRequest {
    /// Host names and IP addresses clients reach the broker by (at least
    /// one).
    pub hosts: Vec<String>,
    /// The cluster node id, named in the subject as `quiver-node-N`.
    pub node_id: Option<u64>,
    /// Days of validity.
    pub days: u32,
}

/// A certificate and key written to disk.
#[derive(Debug)]
pub struct Written {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// The private key (PEM, mode 0600).
    pub key: PathBuf,
    /// SHA-256 of the certificate, colon-separated hex.
    pub fingerprint: String,
}

/// Makes a CA named `name`, valid for `days`, in `out` (created if missing).
pub fn init_ca(out: &Path, name: &str, days: u32) -> Result<Written, TlsError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    // It signs brokers' certificates only, not other CAs.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut params, days);
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    write_pair(
        out,
        CA_CERT_FILE,
        CA_KEY_FILE,
        cert.der(),
        &cert.pem(),
        &key.serialize_pem(),
    )
}

/// Signs a certificate for `request` with the CA in `ca` (its directory,
/// or the `ca.pem` in it, as clients are given it), into `out` (created if
/// missing).
pub fn issue(ca: &Path, request: &IssueRequest, out: &Path) -> Result<Written, TlsError> {
    let Some(first_host) = request.hosts.first() else {
        return Err(TlsError::NoHost);
    };
    let ca_dir = match ca.parent() {
        Some(parent) if ca.is_file() => parent,
        _ => ca,
    };
    let ca_cert = read_pem(&ca_dir.join(CA_CERT_FILE), "CA certificate")?;
    let ca_key_path = ca_dir.join(CA_KEY_FILE);
    let ca_key = KeyPair::from_pem(&read_pem(&ca_key_path, "CA private key")?).map_err(|e| {
        TlsError::Pem {
            what: "CA private key",
            path: ca_key_path.clone(),
            reason: e.to_string(),
        }
    })?;
    let issuer = Issuer::from_ca_cert_pem(&ca_cert, ca_key).map_err(|e| TlsError::Pem {
        what: "CA certificate",
        path: ca_dir.join(CA_CERT_FILE),
        reason: e.to_string(),
    })?;
    let mut params =
        CertificateParams::new(request.hosts.clone()).map_err(|e| TlsError::BadHost {
            hosts: request.hosts.join(", "),
            reason: e.to_string(),
        })?;
    let subject = request
        .node_id
        .map_or_else(|| first_host.clone(), |id| format!("quiver-node-{id}"));
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, subject);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    // Server for clients; client too, for a broker dialling its peers.
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, request.days);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    write_pair(
        out,
        ISSUED_CERT_FILE,
        ISSUED_KEY_FILE,
        cert.der(),
        &cert.pem(),
        &key.serialize_pem(),
    )
}

fn set_validity(params: &mut CertificateParams, days: u32) {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now + Duration::days(i64::from(days));
}

fn read_pem(path: &Path, what: &'static str) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(|e| TlsError::Pem {
        what,
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// Writes a certificate and its key as new files in `dir`; refuses when
/// either exists, before writing anything.
fn write_pair(
    dir: &Path,
    cert_file: &str,
    key_file: &str,
    der: &CertificateDer<'_>,
    cert_pem: &str,
    key_pem: &str,
) -> Result<Written, TlsError> {
    let cert = dir.join(cert_file);
    let key = dir.join(key_file);
    for path in [&cert, &key] {
        if path.exists() {
            return Err(TlsError::Exists { path: path.clone() });
        }
    }
    std::fs::create_dir_all(dir).map_err(write_error(dir))?;
    super::write_file(&key, key_pem.as_bytes(), 0o600, false).map_err(write_error(&key))?;
    if let Err(e) = super::write_file(&cert, cert_pem.as_bytes(), 0o644, false) {
        // A key without its certificate would only block the next try.
        let _ = std::fs::remove_file(&key);
        return Err(write_error(&cert)(e));
    }
    Ok(Written {
        cert,
        key,
        fingerprint: fingerprint(der),
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use rustls::client::danger::ServerCertVerifier as _;
    use rustls::pki_types::pem::PemObject as _;

    use super::*;
    use crate::tls::ServerCert;

    fn request(hosts: &[&str]) -> IssueRequest {
        IssueRequest {
            hosts: hosts.iter().map(|&h| h.to_owned()).collect(),
            node_id: Some(1),
            days: 30,
        }
    }

    #[test]
    fn an_issued_certificate_is_verified_against_its_ca() {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca = init_ca(&dir.path().join("ca"), "Test CA", 365).expect("init-ca");
        let mode = std::fs::metadata(&ca.key)
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let node = issue(
            &dir.path().join("ca"),
            &request(&["127.0.0.1", "localhost"]),
            &dir.path().join("node"),
        )
        .expect("issue");
        let served = ServerCert::load_or_generate(dir.path(), Some(&node.cert), Some(&node.key))
            .expect("load");
        assert_eq!(served.fingerprint, node.fingerprint);

        let mut roots = rustls::RootCertStore::empty();
        let ca_der = CertificateDer::from_pem_file(&ca.cert).expect("CA PEM");
        roots.add(ca_der).expect("add CA");
        let verifier = rustls::client::WebPkiServerVerifier::builder(std::sync::Arc::new(roots))
            .build()
            .expect("verifier");
        for name in ["127.0.0.1", "localhost"] {
            verifier
                .verify_server_cert(
                    &served.chain[0],
                    &[],
                    &rustls::pki_types::ServerName::try_from(name).expect("name"),
                    &[],
                    rustls::pki_types::UnixTime::now(),
                )
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let other = rustls::pki_types::ServerName::try_from("example.com").expect("name");
        assert!(
            verifier
                .verify_server_cert(
                    &served.chain[0],
                    &[],
                    &other,
                    &[],
                    rustls::pki_types::UnixTime::now()
                )
                .is_err()
        );
    }

    #[test]
    fn nothing_is_overwritten_and_bad_requests_are_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca_dir = dir.path().join("ca");
        init_ca(&ca_dir, "Test CA", 365).expect("init-ca");
        assert!(matches!(
            init_ca(&ca_dir, "Again", 365),
            Err(TlsError::Exists { path }) if path == ca_dir.join(CA_CERT_FILE)
        ));
        assert!(matches!(
            issue(&ca_dir, &request(&[]), &dir.path().join("n")),
            Err(TlsError::NoHost)
        ));
        assert!(matches!(
            issue(
                &ca_dir,
                &request(&["bücher.example"]),
                &dir.path().join("n")
            ),
            Err(TlsError::BadHost { .. })
        ));
        assert!(matches!(
            issue(
                &dir.path().join("missing"),
                &request(&["h"]),
                &dir.path().join("n")
            ),
            Err(TlsError::Pem {
                what: "CA certificate",
                ..
            })
        ));
        // Nothing was written by the refused calls.
        assert!(!dir.path().join("n").exists());
        // The CA's certificate file names its directory too.
        issue(
            &ca_dir.join(CA_CERT_FILE),
            &request(&["h"]),
            &dir.path().join("n"),
        )
        .expect("issue");
        assert!(matches!(
            issue(&ca_dir, &request(&["h"]), &dir.path().join("n")),
            Err(TlsError::Exists { .. })
        ));
    }
}
