//! Fuzzes frame decoding as the broker and the client do it: the fixed header
//! (`FrameHeader::parse`), the split into head and body (`frame::split`), and
//! the postcard head of every request and response type (`api::decode_head`).
//!
//! The input is a frame: 12 header bytes, then head and body. The bytes after
//! the header are also decoded as every head type whether or not the header
//! is valid, so that the postcard decoders get fuzzed even before the fuzzer
//! has learnt to write a valid header. Every head that decodes must survive
//! re-encoding and decoding again unchanged.
#![no_main]

use std::fmt::Debug;

use libfuzzer_sys::fuzz_target;
use quiver_proto::WireError;
use quiver_proto::api::groups::{
    CommitOffsetsRequest, DeleteGroupRequest, DescribeGroupRequest, FetchOffsetsRequest,
    HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, ListGroupsRequest, ResetOffsetsRequest,
};
use quiver_proto::api::modules::{DeleteModuleRequest, ListModulesRequest, UploadModuleRequest};
use quiver_proto::api::transforms::{
    ControlTransformRequest, DeployTransformRequest, ListTransformsRequest, TransformLogsRequest,
    TransformStateRequest,
};
use quiver_proto::api::{
    self, AlterTopicRequest, CreateTopicRequest, DeleteTopicRequest, DescribeTopicRequest,
    FetchRequest, InitProducerRequest, ListOffsetsRequest, ListTopicsRequest, ProduceRequest,
    Request, RequestKind,
};
use quiver_proto::frame::{self, FrameHeader, HEADER_BYTES};
use quiver_proto::limits::{MAX_FRAME_BYTES, MAX_HEAD_BYTES};
use serde::Serialize;
use serde::de::DeserializeOwned;

fuzz_target!(|data: &[u8]| {
    let Some((header_bytes, rest)) = data.split_first_chunk::<HEADER_BYTES>() else {
        return;
    };
    if let Ok(header) = FrameHeader::parse(header_bytes) {
        check_frame(&header, header_bytes, rest);
    }
    every_head(rest);
});

/// What a reader does once a header has parsed.
fn check_frame(header: &FrameHeader, header_bytes: &[u8; HEADER_BYTES], rest: &[u8]) {
    assert!(header.len <= MAX_FRAME_BYTES);
    assert!(header.head_len <= MAX_HEAD_BYTES);
    assert!(header.head_len as usize <= header.rest_len());
    assert_eq!(&header.to_bytes(), header_bytes);

    // The bytes as given: accepted only at exactly the announced length.
    let exact = frame::split(header, rest);
    assert_eq!(exact.is_ok(), rest.len() == header.rest_len());

    // A reader reads exactly `rest_len` bytes; cut the input to that.
    let Some(rest) = rest.get(..header.rest_len()) else {
        return;
    };
    let (head, body) = frame::split(header, rest).expect("exact length splits");
    assert_eq!(head.len(), header.head_len as usize);
    assert_eq!(head.len() + body.len(), header.rest_len());

    // Decode the head as the tag says: a request kind in a request frame, a
    // response code in a response frame. Which one the frame is depends on
    // the direction, which the bytes do not say; try both.
    if let Some(kind) = RequestKind::from_u16(header.tag) {
        decode_as(kind, head);
    }
    if header.code() != 0 {
        round_trip::<WireError>(head);
    }
}

/// Decodes `head` as every request, response and error head.
fn every_head(head: &[u8]) {
    for kind in RequestKind::ALL {
        decode_as(kind, head);
    }
    round_trip::<WireError>(head);
}

/// Decodes `head` as the request (and response) of `kind`.
fn decode_as(kind: RequestKind, head: &[u8]) {
    match kind {
        RequestKind::Produce => request::<ProduceRequest>(head),
        RequestKind::Fetch => request::<FetchRequest>(head),
        RequestKind::CreateTopic => request::<CreateTopicRequest>(head),
        RequestKind::DeleteTopic => request::<DeleteTopicRequest>(head),
        RequestKind::ListTopics => request::<ListTopicsRequest>(head),
        RequestKind::DescribeTopic => request::<DescribeTopicRequest>(head),
        RequestKind::AlterTopic => request::<AlterTopicRequest>(head),
        RequestKind::ListOffsets => request::<ListOffsetsRequest>(head),
        RequestKind::JoinGroup => request::<JoinGroupRequest>(head),
        RequestKind::Heartbeat => request::<HeartbeatRequest>(head),
        RequestKind::LeaveGroup => request::<LeaveGroupRequest>(head),
        RequestKind::CommitOffsets => request::<CommitOffsetsRequest>(head),
        RequestKind::FetchOffsets => request::<FetchOffsetsRequest>(head),
        RequestKind::ListGroups => request::<ListGroupsRequest>(head),
        RequestKind::DescribeGroup => request::<DescribeGroupRequest>(head),
        RequestKind::DeleteGroup => request::<DeleteGroupRequest>(head),
        RequestKind::ResetOffsets => request::<ResetOffsetsRequest>(head),
        RequestKind::UploadModule => request::<UploadModuleRequest>(head),
        RequestKind::ListModules => request::<ListModulesRequest>(head),
        RequestKind::DeleteModule => request::<DeleteModuleRequest>(head),
        RequestKind::DeployTransform => request::<DeployTransformRequest>(head),
        RequestKind::ListTransforms => request::<ListTransformsRequest>(head),
        RequestKind::ControlTransform => request::<ControlTransformRequest>(head),
        RequestKind::TransformLogs => request::<TransformLogsRequest>(head),
        RequestKind::TransformState => request::<TransformStateRequest>(head),
        RequestKind::InitProducer => request::<InitProducerRequest>(head),
        _ => {}
    }
}

/// Decodes a request head and its response head; a request that decodes must
/// also survive a trip through a whole request frame.
fn request<R>(head: &[u8])
where
    R: Request + PartialEq + Debug,
    R::Response: PartialEq + Debug,
{
    round_trip::<R::Response>(head);
    let Ok(decoded) = api::decode_head::<R>(head) else {
        return;
    };
    let Ok(bytes) = api::encode_request(&decoded, 0) else {
        assert!(head.len() > MAX_HEAD_BYTES as usize, "re-encoding failed");
        return;
    };
    let (header_bytes, rest) = bytes
        .split_first_chunk::<HEADER_BYTES>()
        .expect("an encoded frame has a header");
    let header = FrameHeader::parse(header_bytes).expect("an encoded header parses");
    assert_eq!(RequestKind::from_u16(header.tag), Some(R::KIND));
    assert_eq!(header.version, R::VERSION);
    let (again, body) = frame::split(&header, rest).expect("an encoded frame splits");
    assert!(body.is_empty());
    assert_eq!(
        api::decode_head::<R>(again).expect("re-encoded head decodes"),
        decoded
    );
}

/// Decodes `head` as `T`; if it decodes, it must re-encode as a response
/// head and decode to the same value.
fn round_trip<T>(head: &[u8])
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let Ok(decoded) = api::decode_head::<T>(head) else {
        return;
    };
    let Ok(bytes) = api::encode_response(1, &decoded, 0) else {
        assert!(head.len() > MAX_HEAD_BYTES as usize, "re-encoding failed");
        return;
    };
    let again = &bytes[HEADER_BYTES..];
    assert_eq!(
        api::decode_head::<T>(again).expect("re-encoded head decodes"),
        decoded
    );
}
