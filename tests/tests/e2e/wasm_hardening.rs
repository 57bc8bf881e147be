//! Hostile and broken transforms against a real broker (issue 9, items 4,
//! 7, 8, 9 and 10):
//!
//! - a guest that recurses without bound is reported as a stack overflow
//!   with a trace of a few frames;

use quiver_client::{Admin, ProducerRecord};
use quiver_proto::api::transforms::OnError;
use quiver_tests::TestBroker;
use quiver_tests::transforms::{
    all_logs, deploy_request, failure, produce, upload, wait_for_status,
};

#[tokio::test]
async fn a_stack_overflow_says_so_in_a_few_frames() {
    for mode in ["recurse", "recurse-wide"] {
        stack_overflow(mode).await;
    }
}

async fn stack_overflow(mode: &str) {
    let broker = TestBroker::start().await;
    broker.create_topic("deep", 1).await;
    let client = broker.client().await;
    let admin = Admin::new(client.clone());
    upload(&admin, "looper", "looper").await;
    let mut request = deploy_request("recurser", "looper", "deep", &[("mode", mode)]);
    request.on_error = OnError::Stop;
    admin.deploy_transform(request).await.expect("deploy");
    produce(&client, vec![ProducerRecord::new("deep", "go")]).await;

    let failed = wait_for_status(&admin, "recurser", "failed", |s| failure(s).is_some()).await;
    let error = failure(&failed).expect("failed");
    eprintln!("{error}");
    assert!(error.contains("stack overflow"), "{error}");
    assert!(!error.contains("out of bounds memory access") || error.contains("stack overflow"));
    assert!(error.len() < 1_000, "a short message: {error}");
    assert!(error.contains("more frames"), "{error}");
    let lines = all_logs(&admin, "recurser").await;
    assert!(
        lines
            .iter()
            .any(|l| l.source == "host" && l.message.contains("stack overflow")),
        "{lines:#?}"
    );
}
