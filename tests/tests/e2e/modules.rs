//! The WebAssembly module registry through a real broker: real guest
//! components (built from guest-examples) are accepted, versioned, listed,
//! kept across a restart and deleted; anything that is not a component of
//! this contract is refused with `InvalidModule`, naming what is wrong.

use quiver_client::{ClientError, ErrorCode, ErrorDetail};
use quiver_proto::limits::MAX_MODULE_BYTES;
use quiver_tests::{TestBroker, guest_component};

fn refusal(error: ClientError) -> quiver_client::WireError {
    match error {
        ClientError::Broker(wire) => wire,
        other => panic!("expected a broker refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn guest_components_are_stored_versioned_and_kept() {
    let mut broker = TestBroker::start().await;
    let filter = guest_component("filter");
    let aggregate = guest_component("click-aggregate");
    let admin = broker.admin().await;

    let first = admin
        .upload_module("filter", filter.clone().into())
        .await
        .unwrap();
    assert_eq!((first.name.as_str(), first.version), ("filter", 1));
    assert_eq!(first.size_bytes, filter.len() as u64);
    assert_eq!(first.sha256.len(), 64);
    assert!(first.sha256.bytes().all(|b| b.is_ascii_hexdigit()));
    let second = admin.upload_module("filter", filter.into()).await.unwrap();
    assert_eq!(second.version, 2);
    assert_eq!(second.sha256, first.sha256, "same bytes, same digest");

    let counted = admin
        .upload_module("clicks", aggregate.into())
        .await
        .unwrap();
    assert!(
        counted
            .imports
            .iter()
            .any(|i| i.starts_with("quiver:transform/state@0.3.0")),
        "{:?}",
        counted.imports
    );
    assert_ne!(counted.sha256, first.sha256);

    broker.restart().await;
    let admin = broker.admin().await;
    let listed = admin.list_modules().await.unwrap();
    let names: Vec<(&str, u32)> = listed
        .iter()
        .map(|m| (m.name.as_str(), m.version))
        .collect();
    assert_eq!(names, vec![("clicks", 1), ("filter", 2)]);

    admin.delete_module("filter").await.unwrap();
    let error = admin.delete_module("filter").await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::UnknownModule));
    assert_eq!(admin.list_modules().await.unwrap().len(), 1);
}

#[tokio::test]
async fn uploads_that_are_not_contract_components_are_refused() {
    let broker = TestBroker::start().await;
    let admin = broker.admin().await;

    let http =
        wat::parse_str(r#"(component (import "wasi:http/outgoing-handler@0.2.0" (instance)))"#)
            .unwrap();
    let error = refusal(admin.upload_module("http", http.into()).await.unwrap_err());
    assert_eq!(error.code, ErrorCode::InvalidModule);
    assert!(
        error.message.contains("wasi:http/outgoing-handler@0.2.0"),
        "{}",
        error.message
    );

    let newer =
        wat::parse_str(r#"(component (import "quiver:transform/log@0.4.0" (instance)))"#).unwrap();
    let error = refusal(
        admin
            .upload_module("newer", newer.into())
            .await
            .unwrap_err(),
    );
    assert_eq!(error.code, ErrorCode::InvalidModule);
    assert!(error.message.contains("0.4.0"), "{}", error.message);

    let no_guest = wat::parse_str("(component)").unwrap();
    let error = refusal(
        admin
            .upload_module("empty", no_guest.into())
            .await
            .unwrap_err(),
    );
    assert_eq!(error.code, ErrorCode::InvalidModule);
    assert!(
        error.message.contains("quiver:transform/guest@0.3.0"),
        "{}",
        error.message
    );

    let error = refusal(
        admin
            .upload_module("junk", b"\0asm garbage".to_vec().into())
            .await
            .unwrap_err(),
    );
    assert_eq!(error.code, ErrorCode::InvalidModule);

    let big = vec![0u8; MAX_MODULE_BYTES as usize + 1];
    let error = refusal(admin.upload_module("big", big.into()).await.unwrap_err());
    assert_eq!(error.code, ErrorCode::InvalidModule);
    assert_eq!(
        error.detail,
        ErrorDetail::Size {
            size: u64::from(MAX_MODULE_BYTES) + 1,
            max: u64::from(MAX_MODULE_BYTES)
        }
    );

    let filter = guest_component("filter");
    let error = refusal(
        admin
            .upload_module("bad/name", filter.clone().into())
            .await
            .unwrap_err(),
    );
    assert_eq!(error.code, ErrorCode::InvalidModule);

    // Nothing refused was stored, and the broker still takes a good one.
    assert!(admin.list_modules().await.unwrap().is_empty());
    admin.upload_module("filter", filter.into()).await.unwrap();
}
