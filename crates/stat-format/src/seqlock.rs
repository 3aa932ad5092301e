//! A seqlock over a run of `AtomicU64` words: word 0 counts writes (odd while one is under
//! way), the rest are the value. One writer (the publishing process, under its runtime lock);
//! any number of readers in other processes, which never block the writer: a reader that saw
//! the counter move, or odd, reads again.
//!
//! Every word is an atomic accessed with relaxed loads and stores between the fences, so a
//! torn read is detected, never undefined behaviour.

use std::sync::atomic::{fence, AtomicU64, Ordering};

/// How many times a reader tries before it gives up on a record (a writer killed halfway
/// leaves the counter odd for ever; its process is dead and its file is swept anyway).
pub const READ_ATTEMPTS: usize = 10_000;

/// Writes `values` into `words[1..]` under the counter in `words[0]`. The single writer's side.
pub fn write(words: &[AtomicU64], values: &[u64]) {
    debug_assert_eq!(words.len(), values.len() + 1);
    let seq = words[0].load(Ordering::Relaxed);
    // Odd: a write is under way. (`| 1` also repairs a counter left odd by an earlier writer.)
    words[0].store(seq.wrapping_add(1) | 1, Ordering::Relaxed);
    fence(Ordering::Release);
    for (w, v) in words[1..].iter().zip(values) {
        w.store(*v, Ordering::Relaxed);
    }
    words[0].store((seq.wrapping_add(1) | 1).wrapping_add(1), Ordering::Release);
}

/// Reads a consistent copy of `words[1..]` into `out`; None if no attempt found the words
/// still (see `READ_ATTEMPTS`).
pub fn read(words: &[AtomicU64], out: &mut [u64]) -> Option<()> {
    read_observed(words, out, |_| {}).map(|_| ())
}

/// As `read`, calling `between(attempt)` after each copy and before the check (tests use it to
/// write in the middle of a read); returns how many attempts it took.
pub fn read_observed(words: &[AtomicU64], out: &mut [u64], mut between: impl FnMut(usize)) -> Option<usize> {
    debug_assert_eq!(words.len(), out.len() + 1);
    for attempt in 1..=READ_ATTEMPTS {
        let before = words[0].load(Ordering::Acquire);
        if before & 1 == 1 {
            std::hint::spin_loop();
            continue;
        }
        for (o, w) in out.iter_mut().zip(&words[1..]) {
            *o = w.load(Ordering::Relaxed);
        }
        between(attempt);
        fence(Ordering::Acquire);
        if words[0].load(Ordering::Relaxed) == before {
            return Some(attempt);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn words(n: usize) -> Vec<AtomicU64> {
        (0..n).map(|_| AtomicU64::new(0)).collect()
    }

    #[test]
    fn a_read_overlapping_a_write_is_retried() {
        let w = words(4);
        write(&w, &[1, 1, 1]);
        let mut out = [0u64; 3];
        // The first copy is followed by a write: the counter moved, so the reader reads again
        // and returns the new value whole.
        let attempts = read_observed(&w, &mut out, |attempt| {
            if attempt == 1 {
                write(&w, &[2, 2, 2]);
            }
        })
        .unwrap();
        assert_eq!(attempts, 2);
        assert_eq!(out, [2, 2, 2]);
    }

    #[test]
    fn a_write_left_half_done_is_never_returned() {
        let w = words(3);
        write(&w, &[5, 5]);
        // A writer killed in the middle: the counter stays odd.
        w[0].fetch_add(1, Ordering::Relaxed);
        w[1].store(6, Ordering::Relaxed);
        let mut out = [0u64; 2];
        assert!(read(&w, &mut out).is_none());
        // The next writer of the same words repairs the counter.
        write(&w, &[7, 7]);
        assert!(read(&w, &mut out).is_some());
        assert_eq!(out, [7, 7]);
    }

    #[test]
    fn concurrent_readers_never_see_a_mix_of_two_writes() {
        let w: Arc<Vec<AtomicU64>> = Arc::new(words(9));
        // The writer goes on until the reader has had its reads (a loaded machine may not run
        // the reader at all during 200,000 writes).
        let seen = Arc::new(AtomicU64::new(0));
        let writer = {
            let (w, seen) = (w.clone(), seen.clone());
            std::thread::spawn(move || {
                let mut i = 0u64;
                while i < 200_000 || seen.load(Ordering::Relaxed) < 1_000 {
                    write(&w, &[i; 8]);
                    i += 1;
                }
            })
        };
        while !writer.is_finished() {
            let mut out = [0u64; 8];
            if read(&w, &mut out).is_some() {
                assert!(out.iter().all(|v| *v == out[0]), "torn read returned: {out:?}");
                seen.fetch_add(1, Ordering::Relaxed);
            }
        }
        writer.join().unwrap();
    }
}
