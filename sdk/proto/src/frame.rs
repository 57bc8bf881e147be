//! Frames: one request and one response per QUIC bidirectional stream.
//!
//! A frame has a fixed header, a postcard-encoded *head* (the request or
//! response struct from [`crate::api`]) and a raw *body*. Record batches
//! travel in the body, as stored, so neither side re-encodes them.
//!
//! ```text
//! Request frame (integers big-endian)
//! +-----------+-----------+-----------+-------------+----------------+-----------+
//! | len: u32  | kind: u16 | ver: u16  | head_len:u32| head (postcard)| body      |
//! +-----------+-----------+-----------+-------------+----------------+-----------+
//!   0           4           6           8             12
//!
//! Response frame
//! +-----------+-----------+-----------+-------------+----------------+-----------+
//! | len: u32  | code: i16 | ver: u16  | head_len:u32| head (postcard)| body      |
//! +-----------+-----------+-----------+-------------+----------------+-----------+
//!
//! len      bytes after the len field: 8 + head_len + body length,
//!          at most MAX_FRAME_BYTES
//! kind     the request kind (crate::api::RequestKind)
//! code     0 when the head is the response; otherwise an ErrorCode and the
//!          head is a WireError
//! ver      the request's version; a response echoes it
//! head_len at most MAX_HEAD_BYTES and at most len - 8
//! ```
//!
//! Decoding checks the fixed header against the limits before anything is
//! allocated ([`FrameHeader::parse`]), then splits the rest ([`split`]).

use crate::limits::{MAX_FRAME_BYTES, MAX_HEAD_BYTES};

/// Bytes of the fixed header, the length prefix included.
pub const HEADER_BYTES: usize = 12;

/// Bytes of the header that `len` counts.
const COUNTED_HEADER_BYTES: u32 = 8;

/// Why a frame was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The length prefix is above [`MAX_FRAME_BYTES`].
    #[error("frame of {len} bytes exceeds the limit of {MAX_FRAME_BYTES}")]
    TooLarge {
        /// The declared length.
        len: u32,
    },
    /// The length prefix cannot even hold the fixed header.
    #[error("frame length {len} is shorter than the {COUNTED_HEADER_BYTES}-byte header")]
    TooShort {
        /// The declared length.
        len: u32,
    },
    /// The head length is above [`MAX_HEAD_BYTES`] or runs past the frame.
    #[error(
        "head of {head_len} bytes does not fit a frame of {len} bytes (head limit {MAX_HEAD_BYTES})"
    )]
    BadHeadLength {
        /// The declared head length.
        head_len: u32,
        /// The declared frame length.
        len: u32,
    },
    /// The bytes after the header are not as many as `len` says.
    #[error("frame says {expected} bytes follow the header, but {actual} arrived")]
    Truncated {
        /// Bytes the header announced.
        expected: usize,
        /// Bytes present.
        actual: usize,
    },
}

/// The fixed 12-byte header of a request or response frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Bytes after the length prefix.
    pub len: u32,
    /// Request kind in a request; error code (as `u16` bits) in a response.
    pub tag: u16,
    /// The request version.
    pub version: u16,
    /// Bytes of the postcard head.
    pub head_len: u32,
}

impl FrameHeader {
    /// Checks a header against the limits. Nothing after it has been read yet.
    pub fn parse(bytes: &[u8; HEADER_BYTES]) -> Result<Self, FrameError> {
        let len = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        let header = Self {
            len,
            tag: u16::from_be_bytes([bytes[4], bytes[5]]),
            version: u16::from_be_bytes([bytes[6], bytes[7]]),
            head_len: u32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]),
        };
        if len > MAX_FRAME_BYTES {
            return Err(FrameError::TooLarge { len });
        }
        if len < COUNTED_HEADER_BYTES {
            return Err(FrameError::TooShort { len });
        }
        if header.head_len > MAX_HEAD_BYTES || header.head_len > len - COUNTED_HEADER_BYTES {
            return Err(FrameError::BadHeadLength {
                head_len: header.head_len,
                len,
            });
        }
        Ok(header)
    }

    /// Bytes that follow the 12-byte header: head and body.
    pub fn rest_len(&self) -> usize {
        (self.len - COUNTED_HEADER_BYTES) as usize
    }

    /// The response code carried in `tag` (0 = success).
    pub fn code(&self) -> i16 {
        self.tag as i16
    }

    /// The header's bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_BYTES] {
        let mut out = [0u8; HEADER_BYTES];
        out[0..4].copy_from_slice(&self.len.to_be_bytes());
        out[4..6].copy_from_slice(&self.tag.to_be_bytes());
        out[6..8].copy_from_slice(&self.version.to_be_bytes());
        out[8..12].copy_from_slice(&self.head_len.to_be_bytes());
        out
    }

    /// The header for a frame with this tag, version, head and body size.
    /// Fails when the frame would break a limit.
    pub fn for_parts(
        tag: u16,
        version: u16,
        head_len: usize,
        body_len: usize,
    ) -> Result<Self, FrameError> {
        let len = (COUNTED_HEADER_BYTES as usize)
            .saturating_add(head_len)
            .saturating_add(body_len);
        let len = u32::try_from(len).unwrap_or(u32::MAX);
        let head_len = u32::try_from(head_len).unwrap_or(u32::MAX);
        let mut bytes = [0u8; HEADER_BYTES];
        bytes[0..4].copy_from_slice(&len.to_be_bytes());
        bytes[4..6].copy_from_slice(&tag.to_be_bytes());
        bytes[6..8].copy_from_slice(&version.to_be_bytes());
        bytes[8..12].copy_from_slice(&head_len.to_be_bytes());
        Self::parse(&bytes)
    }
}

/// Splits the bytes after a header into head and body, checking the length.
pub fn split<'a>(header: &FrameHeader, rest: &'a [u8]) -> Result<(&'a [u8], &'a [u8]), FrameError> {
    if rest.len() != header.rest_len() {
        return Err(FrameError::Truncated {
            expected: header.rest_len(),
            actual: rest.len(),
        });
    }
    Ok(rest.split_at(header.head_len as usize))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn header_round_trips() {
        let header = FrameHeader::for_parts(2, 1, 10, 100).unwrap();
        assert_eq!(header.len, 118);
        assert_eq!(FrameHeader::parse(&header.to_bytes()), Ok(header));
        let rest = vec![7u8; 110];
        let (head, body) = split(&header, &rest).unwrap();
        assert_eq!((head.len(), body.len()), (10, 100));
    }

    #[test]
    fn limits_are_checked_before_reading() {
        let mut bytes = FrameHeader::for_parts(1, 1, 0, 0).unwrap().to_bytes();
        bytes[0..4].copy_from_slice(&(MAX_FRAME_BYTES + 1).to_be_bytes());
        assert_eq!(
            FrameHeader::parse(&bytes),
            Err(FrameError::TooLarge {
                len: MAX_FRAME_BYTES + 1
            })
        );
        bytes[0..4].copy_from_slice(&3u32.to_be_bytes());
        assert_eq!(
            FrameHeader::parse(&bytes),
            Err(FrameError::TooShort { len: 3 })
        );
        assert!(matches!(
            FrameHeader::for_parts(1, 1, 20, 0).map(|h| h.head_len),
            Ok(20)
        ));
        bytes[0..4].copy_from_slice(&20u32.to_be_bytes());
        bytes[8..12].copy_from_slice(&13u32.to_be_bytes());
        assert_eq!(
            FrameHeader::parse(&bytes),
            Err(FrameError::BadHeadLength {
                head_len: 13,
                len: 20
            })
        );
        assert!(matches!(
            FrameHeader::for_parts(1, 1, 0, MAX_FRAME_BYTES as usize),
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[test]
    fn truncated_rest_is_an_error() {
        let header = FrameHeader::for_parts(1, 1, 4, 4).unwrap();
        assert_eq!(
            split(&header, &[0u8; 7]),
            Err(FrameError::Truncated {
                expected: 8,
                actual: 7
            })
        );
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_accepts_only_bounded(bytes: [u8; HEADER_BYTES]) {
            if let Ok(header) = FrameHeader::parse(&bytes) {
                prop_assert!(header.len <= MAX_FRAME_BYTES);
                prop_assert!(header.head_len as usize <= header.rest_len());
                prop_assert_eq!(header.to_bytes(), bytes);
            }
        }

        #[test]
        fn for_parts_round_trips(tag: u16, version: u16, head in 0usize..4096, body in 0usize..1_000_000) {
            let header = FrameHeader::for_parts(tag, version, head, body).unwrap();
            prop_assert_eq!(FrameHeader::parse(&header.to_bytes()), Ok(header));
            prop_assert_eq!(header.rest_len(), head + body);
        }
    }
}
