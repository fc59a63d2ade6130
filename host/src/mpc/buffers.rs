//! Byte buffers kept for reuse between requests for FSS keys.
//!
//! A LeNet step on FSS moves about 2.5 GB of keys per party: the dealer builds each
//! request's keys into two buffers (one per party) and the party reads them into one.
//! Allocated afresh, every such buffer is new memory that the kernel zeroes page by page
//! on first touch (a profile of a LeNet training run put over a quarter of all CPU time in
//! `clear_page_erms`, mostly there): the allocator hands buffers of this size straight
//! back to the system. [`Buffers`] keeps a few freed buffers and hands them out again, so
//! after the first step the same pages serve every step.
//!
//! A buffer taken is **not** cleared: its bytes are whatever the last user left (only
//! growth is zero-filled), so [`Buffers::take`] is for buffers that the caller overwrites
//! entirely (a key build writes every byte, `read_exact` fills its slice). Those bytes
//! are this process's own secrets (keys), never sent anywhere but where they were headed.

use std::sync::Mutex;

/// A few freed byte buffers, handed out again by [`Buffers::take`].
#[derive(Debug)]
pub struct Buffers {
    free: Mutex<Vec<Vec<u8>>>,
    keep: usize,
}

impl Buffers {
    /// A pool that keeps at most `keep` freed buffers (more are dropped).
    pub const fn new(keep: usize) -> Self {
        Buffers {
            free: Mutex::new(Vec::new()),
            keep,
        }
    }

    /// A buffer of `len` bytes: the smallest kept one that holds `len` without growing, or
    /// else a new one (a kept buffer is never grown: growing would copy its old bytes for
    /// nothing). Its bytes are not cleared (see the [module documentation](self)); bytes
    /// beyond its last length are zero.
    pub fn take(&self, len: usize) -> Vec<u8> {
        let picked = {
            let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
            (0..free.len())
                .filter(|&i| free[i].capacity() >= len)
                .min_by_key(|&i| free[i].capacity())
                .map(|i| free.swap_remove(i))
        };
        let Some(mut v) = picked else {
            return vec![0; len];
        };
        if v.len() >= len {
            v.truncate(len);
        } else {
            v.resize(len, 0);
        }
        v
    }

    /// Keeps `buf` for a later [`Buffers::take`] (dropped if `keep` are kept already, or
    /// if it owns no memory).
    pub fn give(&self, buf: Vec<u8>) {
        if buf.capacity() == 0 {
            return;
        }
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        if free.len() < self.keep {
            free.push(buf);
        } else if let Some(i) = (0..free.len()).min_by_key(|&i| free[i].capacity()) {
            // Keep the larger ones: they are the costly ones to fault in again.
            if free[i].capacity() < buf.capacity() {
                free[i] = buf;
            }
        }
    }

    /// How many buffers are kept now.
    pub fn kept(&self) -> usize {
        self.free.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_freed_buffer_is_handed_out_again_with_the_length_asked() {
        let pool = Buffers::new(2);
        let a = pool.take(1000);
        assert_eq!(a.len(), 1000);
        assert!(a.iter().all(|&b| b == 0));
        let at = a.as_ptr();
        pool.give(a);
        assert_eq!(pool.kept(), 1);
        // Smaller: the same memory, truncated.
        let b = pool.take(600);
        assert_eq!((b.len(), b.as_ptr()), (600, at));
        pool.give(b);
        // Within its capacity again: stale bytes kept, the growth zero.
        let mut c = pool.take(600);
        c.fill(7);
        pool.give(c);
        let d = pool.take(900);
        assert_eq!((d.len(), d.as_ptr()), (900, at));
        assert!(d[..600].iter().all(|&x| x == 7) && d[600..].iter().all(|&x| x == 0));
        pool.give(d);
        // Larger than any kept: a new, zeroed buffer; the kept one stays.
        let e = pool.take(5000);
        assert_eq!(e.len(), 5000);
        assert!(e.iter().all(|&x| x == 0) && e.as_ptr() != at);
        assert_eq!(pool.kept(), 1);
    }

    #[test]
    fn the_smallest_buffer_that_fits_is_taken_and_at_most_keep_are_kept() {
        let pool = Buffers::new(2);
        let (small, big) = (pool.take(100), pool.take(10_000));
        let (ps, pb) = (small.as_ptr(), big.as_ptr());
        pool.give(big);
        pool.give(small);
        let s = pool.take(50);
        assert_eq!(s.as_ptr(), ps);
        pool.give(vec![0; 10]);
        // A third buffer when two are kept: it replaces a smaller one only.
        pool.give(vec![0; 5]);
        assert_eq!(pool.kept(), 2);
        let b = pool.take(5000);
        assert_eq!(b.as_ptr(), pb);
        // Nothing to give: nothing kept.
        pool.give(Vec::new());
        assert_eq!(pool.kept(), 1);
    }
}
