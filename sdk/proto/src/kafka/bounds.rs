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
//! A schema ([`super::schemas`]) lists only what the walk needs:
//! fixed-width fields by size, strings and byte fields by their length
//! prefix, arrays with their element layout. In flexible versions (KIP-482)
//! lengths and counts are unsigned varints plus one, and every struct ends
//! with tagged fields. Unknown tags are skipped by their sizes (the crate
//! copies them out by size too); a known tag is walked by its shape and
//! must fill its size exactly, since the crate decodes it from the body
//! itself, and a tag that said one size and held another would have the
//! crate read on from a place the walk never checked.

use super::ApiKey;
use super::schemas::{Field, Schema, Shape, schema};

/// Elements in one array of a request, at most (topics, partitions,
/// partition indexes): Quiver's per-request partition limit.
pub const MAX_ARRAY_ELEMENTS: usize = crate::limits::MAX_PARTITIONS_PER_REQUEST;

/// Elements in all the arrays of one request together, at most: a handler
/// copies a topic's name for each of its partitions, so the elements, not
/// only the bytes, must be bounded.
pub const MAX_REQUEST_ELEMENTS: usize = 2 * MAX_ARRAY_ELEMENTS;

/// Bytes of a `topic` or `name` field, at most: Kafka's limit on topic
/// names, which also holds for the config, protocol and group-member
/// names those fields carry in the requests served.
pub const MAX_NAME_BYTES: usize = crate::limits::MAX_TOPIC_NAME_BYTES;

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
    /// The arrays of a request hold more than [`MAX_REQUEST_ELEMENTS`]
    /// elements together.
    #[error("the request's arrays hold more than {MAX_REQUEST_ELEMENTS} elements")]
    TooManyInAll,
    /// A name longer than [`MAX_NAME_BYTES`].
    #[error("{field} is {len} bytes long; at most {MAX_NAME_BYTES}")]
    NameTooLong {
        /// The field.
        field: &'static str,
        /// Its length.
        len: usize,
    },
    /// A known tagged field whose size is not what its value takes.
    #[error("tagged field {tag} says {size} bytes but holds {held}")]
    TagSize {
        /// The tag.
        tag: u32,
        /// The size it declared.
        size: usize,
        /// What its value took.
        held: usize,
    },
    /// No schema for this API (it is not served).
    #[error("API key {0} has no request schema here")]
    NoSchema(i16),
}

/// Walks `body`, a request of `api` at `version`, checking every count;
/// returns how many bytes the request took (bytes after it are left
/// alone, as the crate leaves them).
pub fn check(api: ApiKey, version: i16, body: &[u8]) -> Result<usize, BoundsError> {
    let schema = schema(api).ok_or(BoundsError::NoSchema(api as i16))?;
    walk(schema, version, body)
}

/// Walks `body` against `schema` at `version`; the bytes it took.
pub(super) fn walk(schema: Schema, version: i16, body: &[u8]) -> Result<usize, BoundsError> {
    let mut walk = Walk {
        rest: body,
        version,
        flexible: version >= schema.flexible_from,
        elements: 0,
    };
    walk.fields(schema.fields)?;
    Ok(body.len() - walk.rest.len())
}

/// Where the walk is.
struct Walk<'a> {
    rest: &'a [u8],
    version: i16,
    flexible: bool,
    /// Elements of every array so far.
    elements: usize,
}

impl Walk<'_> {
    /// One struct: its fields at this version, then (flexible) its tags.
    fn fields(&mut self, fields: &[Field]) -> Result<(), BoundsError> {
        for f in fields {
            if f.tag.is_none() && f.in_version(self.version) {
                self.shape(f.name, f.shape)?;
            }
        }
        if self.flexible {
            self.tagged_fields(fields)?;
        }
        Ok(())
    }

    fn shape(&mut self, name: &'static str, shape: Shape) -> Result<(), BoundsError> {
        match shape {
            Shape::Fixed(n) => self.skip(name, n),
            Shape::String => {
                let len = if self.flexible {
                    self.compact_len(name)?
                } else {
                    self.length(name, 2)?
                }
                .unwrap_or(0);
                if matches!(name, "topic" | "name") && len > MAX_NAME_BYTES {
                    return Err(BoundsError::NameTooLong { field: name, len });
                }
                self.skip(name, len)
            }
            Shape::Bytes => {
                let len = if self.flexible {
                    self.compact_len(name)?
                } else {
                    self.length(name, 4)?
                };
                self.skip(name, len.unwrap_or(0))
            }
            Shape::Structs(inner) => {
                for _ in 0..self.count(name)? {
                    self.fields(inner)?;
                }
                Ok(())
            }
            Shape::Values(n) => {
                let count = self.count(name)?;
                self.skip(name, count * n)
            }
            Shape::Strings => {
                for _ in 0..self.count(name)? {
                    self.shape(name, Shape::String)?;
                }
                Ok(())
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
        self.elements += count;
        if self.elements > MAX_REQUEST_ELEMENTS {
            return Err(BoundsError::TooManyInAll);
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

    /// Tagged fields: a count, then (tag, size, value) each; a known tag's
    /// value is walked and must take exactly its size.
    fn tagged_fields(&mut self, fields: &[Field]) -> Result<(), BoundsError> {
        let count = self.varint("tagged fields")?;
        for _ in 0..count {
            let tag = self.varint("tag")?;
            let size = self.varint("tagged field size")? as usize;
            let known = fields
                .iter()
                .find(|f| f.tag == Some(tag) && f.in_version(self.version));
            match known {
                Some(f) => {
                    let before = self.rest.len();
                    self.shape(f.name, f.shape)?;
                    let held = before - self.rest.len();
                    if held != size {
                        return Err(BoundsError::TagSize { tag, size, held });
                    }
                }
                None => self.skip("tagged field", size)?,
            }
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
