//! Fuzzes Kafka request decoding as the broker's Kafka listener does it:
//! `kafka::decode_request` over the bytes after the size prefix (the fixed
//! header, the request header, the element-count walk, then the
//! `kafka-protocol` crate's decoder).
//!
//! The first input byte chooses a mode. An even byte feeds the rest as it
//! is. An odd byte has the target write a served API key and version
//! (picked by the next byte) and a request header with a null client id in
//! front of the rest, so the fuzzer spends its time in the body decoders.
//! libFuzzer's malloc limit (the RSS limit, 2 GiB by default) turns any
//! allocation a count could blow up into a reported crash.
#![no_main]

use bytes::{BufMut as _, Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use quiver_proto::kafka::{SUPPORTED, decode_request};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        let _ = decode_request(Bytes::copy_from_slice(rest));
        return;
    }
    let Some((&pick, body)) = rest.split_first() else {
        return;
    };
    let (api, min, max) = SUPPORTED[usize::from(pick) % SUPPORTED.len()];
    let version = min + i16::from(pick >> 4) % (max - min + 1);
    let mut frame = BytesMut::with_capacity(body.len() + 11);
    frame.put_i16(api as i16);
    frame.put_i16(version);
    frame.put_i32(1);
    frame.put_i16(-1);
    if api.request_header_version(version) >= 2 {
        frame.put_u8(0);
    }
    frame.put_slice(body);
    let _ = decode_request(frame.freeze());
});
