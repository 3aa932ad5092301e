//! Signals and blocked calls. Our waits spin or sleep in user space, where no syscall is there
//! for a signal to interrupt; so handlers are wrapped (as the original does): the trampoline
//! notes on its thread that a signal was handled, and whether the handler asked for restart
//! (SA_RESTART), then runs the program's handler. A waiting call on that thread then returns
//! EINTR, or carries on, exactly as the kernel would decide.

use std::cell::Cell;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

/// Signals 1..=64.
pub const NSIG: usize = 65;

/// The program's handler per signal, when wrapped (0 when not).
pub static HANDLERS: [AtomicUsize; NSIG] = [const { AtomicUsize::new(0) }; NSIG];
/// The program's sa_flags per wrapped signal.
pub static FLAGS: [AtomicI32; NSIG] = [const { AtomicI32::new(0) }; NSIG];

thread_local! {
    /// A wrapped handler ran on this thread since the current call began.
    static SEEN: Cell<bool> = const { Cell::new(false) };
    /// ...and it was one without SA_RESTART.
    static INTERRUPT: Cell<bool> = const { Cell::new(false) };
}

/// Called when a blocking call starts: signals before it do not interrupt it.
pub fn begin_call() {
    SEEN.with(|s| s.set(false));
    INTERRUPT.with(|s| s.set(false));
}

/// Whether a call waiting on this thread must return EINTR now: after any handled signal when
/// it never restarts (timeouts, select, poll, epoll: signal(7)), else after one without
/// SA_RESTART.
pub fn interrupted(always: bool) -> bool {
    INTERRUPT.with(Cell::get) || (always && SEEN.with(Cell::get))
}

/// The handler the kernel runs for wrapped signals.
pub extern "C" fn trampoline(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let i = sig as usize;
    if i >= NSIG {
        return;
    }
    SEEN.with(|s| s.set(true));
    let flags = FLAGS[i].load(Ordering::Acquire);
    if flags & libc::SA_RESTART == 0 {
        INTERRUPT.with(|s| s.set(true));
    }
    let h = HANDLERS[i].load(Ordering::Acquire);
    if h == 0 {
        return;
    }
    // SAFETY: the program registered this function for this signal with these flags.
    unsafe {
        if flags & libc::SA_SIGINFO != 0 {
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) = std::mem::transmute(h);
            f(sig, info, ctx);
        } else {
            let f: extern "C" fn(libc::c_int) = std::mem::transmute(h);
            f(sig);
        }
    }
}
