//! Receive buffers for large responses, reused.
//!
//! A fetch answer of several MiB read into fresh memory costs the kernel a
//! page fault and a zeroed page per 4 KiB, every time: the allocator hands
//! such sizes to `mmap` and gives them back on free. Measured on `quiver
//! bench consume`, that was about 30 % of the consumer's CPU. A response
//! body of at least [`MIN_POOLED_BYTES`] is read into a buffer from this
//! pool instead; the records sliced from it keep it alive, and it comes
//! back to the pool when the last of them is dropped.

use std::sync::{Arc, Mutex, PoisonError, Weak};

use bytes::Bytes;

/// Smaller bodies are allocated as they come: their pages are reused by
/// the allocator anyway.
pub(crate) const MIN_POOLED_BYTES: usize = 256 * 1024;
/// Most bytes of idle buffers a client keeps: two of the largest fetch
/// answers (the one being read and the one read ahead). The largest
/// buffers that fit are kept; the others are freed.
pub(crate) const MAX_POOLED_BYTES: usize = 32 * 1024 * 1024;

/// A client's idle receive buffers.
#[derive(Debug, Default)]
pub(crate) struct BufferPool {
    idle: Mutex<Vec<Vec<u8>>>,
}

impl BufferPool {
    /// A buffer of at least `len` initialised bytes to read a body into
    /// (its first `len`): an idle one large enough if there is one (the
    /// smallest such), else a new one of `len`.
    pub(crate) fn take(&self, len: usize) -> Vec<u8> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let fitting = idle
            .iter()
            .enumerate()
            .filter(|(_, buf)| buf.len() >= len)
            .min_by_key(|(_, buf)| buf.len())
            .map(|(i, _)| i);
        match fitting {
            Some(i) => idle.swap_remove(i),
            None => vec![0; len],
        }
    }

    /// `buf[..len]` as `Bytes` that give the buffer back to `pool` when the
    /// last clone or slice of them is dropped.
    pub(crate) fn share(pool: &Arc<Self>, buf: Vec<u8>, len: usize) -> Bytes {
        Bytes::from_owner(Pooled {
            len: len.min(buf.len()),
            buf,
            pool: Arc::downgrade(pool),
        })
    }

    /// Keeps `buf` (whole, never truncated: a later body uses its first
    /// bytes without the rest being touched) within the byte bound.
    fn put(&self, buf: Vec<u8>) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        idle.push(buf);
        idle.sort_unstable_by_key(|buf| std::cmp::Reverse(buf.len()));
        let mut kept = 0;
        idle.retain(|buf| {
            let fits = kept + buf.len() <= MAX_POOLED_BYTES;
            if fits {
                kept += buf.len();
            }
            fits
        });
    }
}

/// A buffer lent out as `Bytes`.
struct Pooled {
    buf: Vec<u8>,
    /// The body's length: `buf` may be longer.
    len: usize,
    pool: Weak<BufferPool>,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.upgrade() {
            pool.put(std::mem::take(&mut self.buf));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_comes_back_when_its_last_slice_is_dropped() {
        let pool = Arc::new(BufferPool::default());
        let mut buf = pool.take(MIN_POOLED_BYTES);
        buf[0] = 7;
        let address = buf.as_ptr();
        let body = BufferPool::share(&pool, buf, MIN_POOLED_BYTES);
        let slice = body.slice(0..10);
        drop(body);
        assert!(
            pool.idle.lock().unwrap().is_empty(),
            "a slice still holds it"
        );
        assert_eq!(slice[0], 7);
        drop(slice);
        // The same memory, whole, for a body as large or smaller; shared,
        // it shows the body's length only.
        let again = pool.take(MIN_POOLED_BYTES - 1);
        assert_eq!((again.as_ptr(), again.len()), (address, MIN_POOLED_BYTES));
        let shorter = BufferPool::share(&pool, again, MIN_POOLED_BYTES - 1);
        assert_eq!((shorter.len(), shorter[0]), (MIN_POOLED_BYTES - 1, 7));
        // None idle now (`shorter` holds it): a new one.
        let fresh = pool.take(MIN_POOLED_BYTES);
        assert_ne!(fresh.as_ptr(), address);
    }

    #[test]
    fn idle_buffers_are_bounded_keeping_the_largest() {
        let pool = Arc::new(BufferPool::default());
        let sizes = [8, 16, 24, 4].map(|mib| mib * 1024 * 1024);
        let bodies: Vec<Bytes> = sizes
            .iter()
            .map(|&len| BufferPool::share(&pool, pool.take(len), len))
            .collect();
        drop(bodies);
        let mut idle: Vec<usize> = pool.idle.lock().unwrap().iter().map(Vec::len).collect();
        idle.sort_unstable();
        // 24 MiB, then the largest that still fits: 16 does not, 8 does.
        assert_eq!(idle, [8 * 1024 * 1024, 24 * 1024 * 1024]);
        assert!(idle.iter().sum::<usize>() <= MAX_POOLED_BYTES);
    }

    #[test]
    fn a_dropped_pool_frees_what_comes_back() {
        let pool = Arc::new(BufferPool::default());
        let body = BufferPool::share(&pool, pool.take(MIN_POOLED_BYTES), MIN_POOLED_BYTES);
        drop(pool);
        drop(body);
    }
}
