//! The preload library's locks (the runtime and the epoll registry).
//!
//! A futex mutex rather than `std::sync::Mutex`, for two things std cannot do:
//! - it counts, per thread, the locks held, so a signal that interrupts a holder has its
//!   handler deferred until the last lock is released (signals.rs): a handler that calls into
//!   an accelerated socket then never waits on a lock its own thread holds;
//! - fork can take it in the parent and reset it in the child (fork.rs), where the thread that
//!   held it does not exist.

use std::cell::{Cell, UnsafeCell};
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU32, Ordering};

const UNLOCKED: u32 = 0;
const LOCKED: u32 = 1;
/// Locked, and somebody may be sleeping on the word.
const CONTENDED: u32 = 2;
/// Tries before a contended acquire sleeps (a few microseconds).
const SPINS: u32 = 200;

thread_local! {
    /// Locks this thread holds or is acquiring. Const-initialised: no destructor.
    static HELD: Cell<u32> = const { Cell::new(0) };
}

/// Whether this thread holds (or is taking) one of the preload's locks: a signal handler must
/// not run here and now.
#[inline]
pub fn holding() -> bool {
    HELD.with(Cell::get) > 0
}

fn enter() {
    HELD.with(|h| h.set(h.get() + 1));
}

fn leave() {
    let left = HELD.with(|h| {
        let n = h.get().saturating_sub(1);
        h.set(n);
        n
    });
    if left == 0 {
        crate::signals::run_deferred();
    }
}

/// A mutex over `T`.
pub struct Lock<T> {
    state: AtomicU32,
    data: UnsafeCell<T>,
}

// SAFETY: the data is only reached through a guard, which the lock makes exclusive.
unsafe impl<T: Send> Sync for Lock<T> {}

impl<T> Lock<T> {
    /// An unlocked lock.
    pub const fn new(value: T) -> Self {
        Lock { state: AtomicU32::new(UNLOCKED), data: UnsafeCell::new(value) }
    }

    /// Waits for the lock.
    pub fn lock(&self) -> Guard<'_, T> {
        enter();
        self.acquire();
        Guard { lock: self }
    }

    /// Takes the lock if it is free.
    pub fn try_lock(&self) -> Option<Guard<'_, T>> {
        enter();
        if self.state.compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed).is_ok() {
            Some(Guard { lock: self })
        } else {
            leave();
            None
        }
    }

    fn acquire(&self) {
        if self.state.compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed).is_ok() {
            return;
        }
        // Holders keep the lock for microseconds (one poll of the ring, one send): spin a
        // little before the futex, whose sleep and wake-up cost more than the wait.
        for _ in 0..SPINS {
            std::hint::spin_loop();
            if self.state.load(Ordering::Relaxed) == UNLOCKED
                && self.state.compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed).is_ok()
            {
                return;
            }
        }
        while self.state.swap(CONTENDED, Ordering::Acquire) != UNLOCKED {
            futex(&self.state, libc::FUTEX_WAIT, CONTENDED);
        }
    }

    fn release(&self) {
        if self.state.swap(UNLOCKED, Ordering::Release) == CONTENDED {
            futex(&self.state, libc::FUTEX_WAKE, 1);
        }
    }

    /// fork's prepare step: takes the lock with no guard (signals stay deferred until
    /// [`Lock::fork_parent`] or [`Lock::fork_child`]).
    pub fn fork_prepare(&self) {
        enter();
        self.acquire();
    }

    /// fork's parent step: releases what `fork_prepare` took.
    pub fn fork_parent(&self) {
        self.release();
        leave();
    }

    /// fork's parent step with the data: `f` runs while the lock `fork_prepare` took is
    /// still held, then it is released.
    pub fn fork_parent_with(&self, f: impl FnOnce(&mut T)) {
        // SAFETY: the prepare step holds the lock, on this thread.
        f(unsafe { &mut *self.data.get() });
        self.fork_parent();
    }

    /// fork's child step: the lock is ours (the prepare step took it) and this is the only
    /// thread; hands the data to `f`, then releases the lock.
    pub fn fork_child(&self, f: impl FnOnce(&mut T)) {
        // SAFETY: the prepare step holds the lock and no other thread exists in the child.
        f(unsafe { &mut *self.data.get() });
        self.state.store(UNLOCKED, Ordering::Release);
        leave();
    }
}

/// Holds a [`Lock`]; releases it when dropped, then runs signal handlers deferred meanwhile.
pub struct Guard<'a, T> {
    lock: &'a Lock<T>,
}

impl<T> Deref for Guard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard is the lock's only holder.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> DerefMut for Guard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard is the lock's only holder.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T> Drop for Guard<'_, T> {
    fn drop(&mut self) {
        self.lock.release();
        leave();
    }
}

fn futex(word: &AtomicU32, op: i32, val: u32) {
    // SAFETY: a futex call on a word we own, no timeout.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), op | libc::FUTEX_PRIVATE_FLAG, val, std::ptr::null::<u8>());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn excludes_and_counts_what_this_thread_holds() {
        let lock = Arc::new(Lock::new(0u64));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let lock = lock.clone();
                std::thread::spawn(move || {
                    for _ in 0..100_000 {
                        *lock.lock() += 1;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*lock.lock(), 400_000);
        assert!(!holding());
        let g = lock.lock();
        assert!(holding());
        assert!(lock.try_lock().is_none());
        assert!(holding());
        drop(g);
        assert!(!holding());
        assert!(lock.try_lock().is_some());
    }

    #[test]
    fn fork_steps_leave_the_lock_free() {
        let lock = Lock::new(1u32);
        lock.fork_prepare();
        assert!(lock.try_lock().is_none());
        lock.fork_parent();
        assert_eq!(*lock.lock(), 1);
        lock.fork_prepare();
        lock.fork_child(|v| *v = 2);
        assert_eq!(*lock.lock(), 2);
        assert!(!holding());
    }
}
