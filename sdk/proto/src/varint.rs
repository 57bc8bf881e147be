//! Zig-zag varints as Kafka's record layout uses them (Protocol Buffers'
//! `sint32`/`sint64`): 7 bits a byte, low group first, high bit = more.

/// A varint that runs past its buffer or past its maximum width.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VarintError {
    /// The buffer ended inside the varint.
    #[error("varint truncated at byte {at}")]
    Truncated {
        /// Where the varint began.
        at: usize,
    },
    /// More continuation bytes than the type can hold.
    #[error("varint at byte {at} is longer than {max_bytes} bytes")]
    TooLong {
        /// Where the varint began.
        at: usize,
        /// The widest encoding allowed.
        max_bytes: usize,
    },
}

/// Reads a zig-zag `i32` at `*pos`, advancing it.
pub fn read_varint(buf: &[u8], pos: &mut usize) -> Result<i32, VarintError> {
    let at = *pos;
    let raw = read_unsigned(buf, pos, 5)?;
    let raw = u32::try_from(raw).map_err(|_| VarintError::TooLong { at, max_bytes: 5 })?;
    Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
}

/// Reads a zig-zag `i64` at `*pos`, advancing it.
pub fn read_varlong(buf: &[u8], pos: &mut usize) -> Result<i64, VarintError> {
    let raw = read_unsigned(buf, pos, 10)?;
    Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
}

/// Appends a zig-zag `i32`.
pub fn write_varint(out: &mut Vec<u8>, value: i32) {
    write_unsigned(out, u64::from(((value << 1) ^ (value >> 31)) as u32));
}

/// Appends a zig-zag `i64`.
pub fn write_varlong(out: &mut Vec<u8>, value: i64) {
    write_unsigned(out, ((value << 1) ^ (value >> 63)) as u64);
}

/// Bytes a zig-zag `i32` takes.
pub fn varint_len(value: i32) -> usize {
    unsigned_len(u64::from(((value << 1) ^ (value >> 31)) as u32))
}

/// Bytes a zig-zag `i64` takes.
pub fn varlong_len(value: i64) -> usize {
    unsigned_len(((value << 1) ^ (value >> 63)) as u64)
}

fn read_unsigned(buf: &[u8], pos: &mut usize, max_bytes: usize) -> Result<u64, VarintError> {
    let start = *pos;
    let mut value = 0u64;
    for i in 0..max_bytes {
        let Some(&byte) = buf.get(start + i) else {
            return Err(VarintError::Truncated { at: start });
        };
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *pos = start + i + 1;
            return Ok(value);
        }
    }
    Err(VarintError::TooLong {
        at: start,
        max_bytes,
    })
}

fn write_unsigned(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn unsigned_len(value: u64) -> usize {
    // One byte per started group of 7 bits; zero still takes one byte.
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_encodings() {
        // From the Protocol Buffers zig-zag table.
        let cases: [(i32, &[u8]); 5] = [
            (0, &[0x00]),
            (-1, &[0x01]),
            (1, &[0x02]),
            (-64, &[0x7f]),
            (64, &[0x80, 0x01]),
        ];
        for (value, bytes) in cases {
            let mut out = Vec::new();
            write_varint(&mut out, value);
            assert_eq!(out, bytes, "{value}");
            assert_eq!(varint_len(value), bytes.len());
        }
    }

    #[test]
    fn truncated_and_overlong_are_errors() {
        assert_eq!(
            read_varint(&[0x80], &mut 0),
            Err(VarintError::Truncated { at: 0 })
        );
        assert!(matches!(
            read_varint(&[0xff; 6], &mut 0),
            Err(VarintError::TooLong { .. })
        ));
        assert!(matches!(
            read_varlong(&[0xff; 11], &mut 0),
            Err(VarintError::TooLong { .. })
        ));
    }

    proptest! {
        #[test]
        fn varint_round_trips(value: i32) {
            let mut out = Vec::new();
            write_varint(&mut out, value);
            prop_assert_eq!(out.len(), varint_len(value));
            let mut pos = 0;
            prop_assert_eq!(read_varint(&out, &mut pos), Ok(value));
            prop_assert_eq!(pos, out.len());
        }

        #[test]
        fn varlong_round_trips(value: i64) {
            let mut out = Vec::new();
            write_varlong(&mut out, value);
            prop_assert_eq!(out.len(), varlong_len(value));
            let mut pos = 0;
            prop_assert_eq!(read_varlong(&out, &mut pos), Ok(value));
            prop_assert_eq!(pos, out.len());
        }

        #[test]
        fn read_never_panics(bytes: Vec<u8>) {
            let _ = read_varint(&bytes, &mut 0);
            let _ = read_varlong(&bytes, &mut 0);
        }
    }
}
