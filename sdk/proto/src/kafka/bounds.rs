//! A walk over a Kafka request body that checks every array's element
//! count before the `kafka-protocol` crate decodes it.
//!
//! The crate sizes a `Vec` from each count it reads (`Vec::with_capacity`)
//! before decoding a single element, so a 20-byte request announcing two
//! billion topics would ask for hundreds of gigabytes and abort the
//! process. This walk reads the same fields the crate will (per API and
//! version, from the schemas below), skipping their contents, and refuses
//! a count above [`MAX_ARRAY_ELEMENTS`] or above the bytes left (every
//! element takes at least one byte on the wire). Only a body that walks to
//! its end cleanly is handed to the crate.
//!
//! A schema lists only what the walk needs: fixed-width fields by size,
//! strings and byte fields by their length prefix, arrays with their
//! element layout. In flexible versions (KIP-482) lengths and counts are
//! unsigned varints plus one, and every struct ends with tagged fields,
//! which are skipped by their sizes. None of the requests served has a
//! known tagged field holding an array (the crate decodes known tags from
//! the main buffer, so one would need walking too).

use super::ApiKey;

/// Elements in one array of a request, at most (topics, partitions,
/// partition indexes): Quiver's per-request partition limit.
pub const MAX_ARRAY_ELEMENTS: usize = crate::limits::MAX_PARTITIONS_PER_REQUEST;

/// Why a body failed the walk.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BoundsError {
    /// The body ended inside a field.
    #[error("the request ends early (in {field})")]
    Truncated {
        /// The field being read.
        field: &'static str,
    },
    /// An array announced more elements than allowed or than bytes left.
    #[error("{field} announces {count} elements ({left} bytes left; at most {MAX_ARRAY_ELEMENTS})")]
    TooManyElements {
        /// The array.
        field: &'static str,
        /// The announced count.
        count: u64,
        /// Bytes left in the body at the count.
        left: usize,
    },
    /// A length prefix was negative (other than -1 for null) or malformed.
    #[error("{field} has an invalid length")]
    BadLength {
        /// The field.
        field: &'static str,
    },
    /// No schema for this API (it is not served).
    #[error("API key {0} has no request schema here")]
    NoSchema(i16),
}

/// What one field of a request takes on the wire.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// A fixed-width value: ints, booleans (1), UUIDs (16).
    Fixed(usize),
    /// A (nullable) string: `i16` length, or compact.
    String,
    /// (Nullable) bytes or records: `i32` length, or compact.
    Bytes,
    /// An array of structs with these fields.
    Structs(&'static [Field]),
    /// An array of fixed-width values (e.g. `int32` partition indexes).
    Values(usize),
}

/// A field: its name (for errors), the versions that carry it, its shape.
#[derive(Debug, Clone, Copy)]
struct Field {
    name: &'static str,
    from: i16,
    until: i16,
    shape: Shape,
}

/// A field present in versions `from..=until`.
const fn field(name: &'static str, from: i16, until: i16, shape: Shape) -> Field {
    Field {
        name,
        from,
        until,
        shape,
    }
}

/// A field present in every version from `from` on.
const fn since(name: &'static str, from: i16, shape: Shape) -> Field {
    field(name, from, i16::MAX, shape)
}

/// A request body's layout and the first version that is flexible.
#[derive(Debug, Clone, Copy)]
struct Schema {
    flexible_from: i16,
    fields: &'static [Field],
}

use Shape::{Bytes, Fixed, Structs, Values};

const API_VERSIONS: Schema = Schema {
    flexible_from: 3,
    fields: &[
        since("client_software_name", 3, Shape::String),
        since("client_software_version", 3, Shape::String),
    ],
};

const METADATA: Schema = Schema {
    flexible_from: 9,
    fields: &[
        since(
            "topics",
            0,
            Structs(&[
                since("topic_id", 10, Fixed(16)),
                since("name", 0, Shape::String),
            ]),
        ),
        since("allow_auto_topic_creation", 4, Fixed(1)),
        field("include_cluster_authorized_operations", 8, 10, Fixed(1)),
        since("include_topic_authorized_operations", 8, Fixed(1)),
    ],
};

const PRODUCE: Schema = Schema {
    flexible_from: 9,
    fields: &[
        since("transactional_id", 3, Shape::String),
        since("acks", 0, Fixed(2)),
        since("timeout_ms", 0, Fixed(4)),
        since(
            "topic_data",
            0,
            Structs(&[
                field("name", 0, 12, Shape::String),
                since("topic_id", 13, Fixed(16)),
                since(
                    "partition_data",
                    0,
                    Structs(&[since("index", 0, Fixed(4)), since("records", 0, Bytes)]),
                ),
            ]),
        ),
    ],
};

const FETCH: Schema = Schema {
    flexible_from: 12,
    fields: &[
        field("replica_id", 0, 14, Fixed(4)),
        since("max_wait_ms", 0, Fixed(4)),
        since("min_bytes", 0, Fixed(4)),
        since("max_bytes", 3, Fixed(4)),
        since("isolation_level", 4, Fixed(1)),
        since("session_id", 7, Fixed(4)),
        since("session_epoch", 7, Fixed(4)),
        since(
            "topics",
            0,
            Structs(&[
                field("topic", 0, 12, Shape::String),
                since("topic_id", 13, Fixed(16)),
                since(
                    "partitions",
                    0,
                    Structs(&[
                        since("partition", 0, Fixed(4)),
                        since("current_leader_epoch", 9, Fixed(4)),
                        since("fetch_offset", 0, Fixed(8)),
                        since("last_fetched_epoch", 12, Fixed(4)),
                        since("log_start_offset", 5, Fixed(8)),
                        since("partition_max_bytes", 0, Fixed(4)),
                    ]),
                ),
            ]),
        ),
        since(
            "forgotten_topics_data",
            7,
            Structs(&[
                field("topic", 7, 12, Shape::String),
                since("topic_id", 13, Fixed(16)),
                since("partitions", 7, Values(4)),
            ]),
        ),
        since("rack_id", 11, Shape::String),
    ],
};

const LIST_OFFSETS: Schema = Schema {
    flexible_from: 6,
    fields: &[
        since("replica_id", 0, Fixed(4)),
        since("isolation_level", 2, Fixed(1)),
        since(
            "topics",
            0,
            Structs(&[
                since("name", 0, Shape::String),
                since(
                    "partitions",
                    0,
                    Structs(&[
                        since("partition_index", 0, Fixed(4)),
                        since("current_leader_epoch", 4, Fixed(4)),
                        since("timestamp", 0, Fixed(8)),
                        field("max_num_offsets", 0, 0, Fixed(4)),
                    ]),
                ),
            ]),
        ),
        since("timeout_ms", 10, Fixed(4)),
    ],
};

/// The schema of `api`'s request body, if it is served.
fn schema(api: ApiKey) -> Option<Schema> {
    Some(match api {
        ApiKey::ApiVersions => API_VERSIONS,
        ApiKey::Metadata => METADATA,
        ApiKey::Produce => PRODUCE,
        ApiKey::Fetch => FETCH,
        ApiKey::ListOffsets => LIST_OFFSETS,
        _ => return None,
    })
}

/// Walks `body`, a request of `api` at `version`, checking every count;
/// returns how many bytes the request took (bytes after it are left
/// alone, as the crate leaves them).
pub fn check(api: ApiKey, version: i16, body: &[u8]) -> Result<usize, BoundsError> {
    let schema = schema(api).ok_or(BoundsError::NoSchema(api as i16))?;
    let mut walk = Walk {
        rest: body,
        version,
        flexible: version >= schema.flexible_from,
    };
    walk.fields(schema.fields)?;
    Ok(body.len() - walk.rest.len())
}

/// Where the walk is.
struct Walk<'a> {
    rest: &'a [u8],
    version: i16,
    flexible: bool,
}

impl Walk<'_> {
    /// One struct: its fields at this version, then (flexible) its tags.
    fn fields(&mut self, fields: &[Field]) -> Result<(), BoundsError> {
        for f in fields {
            if (f.from..=f.until).contains(&self.version) {
                self.shape(f.name, f.shape)?;
            }
        }
        if self.flexible {
            self.tagged_fields()?;
        }
        Ok(())
    }

    fn shape(&mut self, name: &'static str, shape: Shape) -> Result<(), BoundsError> {
        match shape {
            Fixed(n) => self.skip(name, n),
            Shape::String => {
                let len = if self.flexible {
                    self.compact_len(name)?
                } else {
                    self.length(name, 2)?
                };
                self.skip(name, len.unwrap_or(0))
            }
            Bytes => {
                let len = if self.flexible {
                    self.compact_len(name)?
                } else {
                    self.length(name, 4)?
                };
                self.skip(name, len.unwrap_or(0))
            }
            Structs(inner) => {
                for _ in 0..self.count(name)? {
                    self.fields(inner)?;
                }
                Ok(())
            }
            Values(n) => {
                let count = self.count(name)?;
                self.skip(name, count * n)
            }
        }
    }

    /// An array's element count, checked (null counts as empty).
    fn count(&mut self, name: &'static str) -> Result<usize, BoundsError> {
        let count = if self.flexible {
            self.compact_len(name)?
        } else {
            self.length(name, 4)?
        };
        let count = count.unwrap_or(0);
        if count > MAX_ARRAY_ELEMENTS || count > self.rest.len() {
            return Err(BoundsError::TooManyElements {
                field: name,
                count: count as u64,
                left: self.rest.len(),
            });
        }
        Ok(count)
    }

    /// A classic big-endian signed length of `width` bytes; -1 is null.
    fn length(&mut self, name: &'static str, width: usize) -> Result<Option<usize>, BoundsError> {
        let bytes = self.take(name, width)?;
        let len = match *bytes {
            [a, b] => i64::from(i16::from_be_bytes([a, b])),
            [a, b, c, d] => i64::from(i32::from_be_bytes([a, b, c, d])),
            _ => return Err(BoundsError::BadLength { field: name }),
        };
        match len {
            -1 => Ok(None),
            n if n >= 0 => Ok(Some(n as usize)),
            _ => Err(BoundsError::BadLength { field: name }),
        }
    }

    /// A compact length: an unsigned varint of the length plus one; 0 is
    /// null.
    fn compact_len(&mut self, name: &'static str) -> Result<Option<usize>, BoundsError> {
        Ok(self.varint(name)?.checked_sub(1).map(|n| n as usize))
    }

    /// Tagged fields: a count, then (tag, size, bytes) each.
    fn tagged_fields(&mut self) -> Result<(), BoundsError> {
        let count = self.varint("tagged fields")?;
        for _ in 0..count {
            self.varint("tag")?;
            let size = self.varint("tagged field size")?;
            self.skip("tagged field", size as usize)?;
        }
        Ok(())
    }

    /// An unsigned varint of at most five bytes (a `u32`).
    fn varint(&mut self, name: &'static str) -> Result<u32, BoundsError> {
        let mut value: u32 = 0;
        for i in 0..5 {
            let byte = self.take(name, 1)?[0];
            value |= u32::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(BoundsError::BadLength { field: name })
    }

    fn skip(&mut self, name: &'static str, n: usize) -> Result<(), BoundsError> {
        self.take(name, n).map(|_| ())
    }

    fn take(&mut self, name: &'static str, n: usize) -> Result<&[u8], BoundsError> {
        if n > self.rest.len() {
            return Err(BoundsError::Truncated { field: name });
        }
        let (taken, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(taken)
    }
}
