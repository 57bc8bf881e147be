//! Helpers for tests of deployed transforms: deploy requests, uploads of
//! the guest examples, producing, and waiting on a transform's status.

use std::time::{Duration, Instant};

use quiver_client::{Admin, Client, Producer, ProducerConfig, ProducerRecord};
use quiver_proto::api::transforms::{
    DeployTransformRequest, LogLine, OnError, RunState, StartFrom, TransformStatus,
};

use crate::guest_component;

/// How long an awaited transform condition may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(30);
/// How often a transform's status is polled while waiting.
pub const STATUS_POLL: Duration = Duration::from_millis(50);

/// A deploy request: default output `NAME-out`, from the earliest offset,
/// stop on error, the broker's default limits.
pub fn deploy_request(
    name: &str,
    module: &str,
    input: &str,
    params: &[(&str, &str)],
) -> DeployTransformRequest {
    DeployTransformRequest {
        name: name.into(),
        module: module.into(),
        input: input.into(),
        default_output: None,
        outputs: Vec::new(),
        params: params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        from: StartFrom::Earliest,
        on_error: OnError::Stop,
        deadline_ms: None,
        memory_bytes: None,
    }
}

/// Uploads guest example `guest` as module `module`.
pub async fn upload(admin: &Admin, module: &str, guest: &str) {
    admin
        .upload_module(module, guest_component(guest).into())
        .await
        .expect("upload the guest module");
}

/// Produces `records` and waits for every acknowledgement.
pub async fn produce(client: &Client, records: Vec<ProducerRecord>) {
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    let mut acks = Vec::with_capacity(records.len());
    for record in records {
        acks.push(producer.enqueue(record).await.expect("enqueue a record"));
    }
    producer.flush().await.expect("flush the producer");
    for ack in acks {
        ack.await.expect("record acknowledged");
    }
}

/// Polls the status of transform `name` until `done` holds; fails with the
/// last status after [`WAIT`].
pub async fn wait_for_status(
    admin: &Admin,
    name: &str,
    what: &str,
    done: impl Fn(&TransformStatus) -> bool,
) -> TransformStatus {
    let deadline = Instant::now() + WAIT;
    loop {
        let status = admin
            .transform_status(name)
            .await
            .expect("read the transform's status");
        if done(&status) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "transform {name:?} is still not {what} after {WAIT:?}; last status: {status:#?}"
        );
        tokio::time::sleep(STATUS_POLL).await;
    }
}

/// The error a transform stopped with, if it did.
pub fn failure(status: &TransformStatus) -> Option<&str> {
    match &status.state {
        RunState::Failed { error } => Some(error),
        RunState::Running | RunState::Paused => None,
    }
}

/// Every log line of a transform the broker keeps, page after page.
pub async fn all_logs(admin: &Admin, name: &str) -> Vec<LogLine> {
    admin
        .transform_logs(name, 0, 10_000)
        .await
        .expect("read the transform's log")
}
