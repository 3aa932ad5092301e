//! Signals and blocked calls. Our waits spin or sleep in user space, where no syscall is there
//! for a signal to interrupt; so handlers are wrapped (as the original does): the trampoline
//! notes on its thread that a signal was handled, and whether the handler asked for restart
//! (SA_RESTART), then runs the program's handler. A waiting call on that thread then returns
//! EINTR, or carries on, exactly as the kernel would decide.
//!
//! A signal that arrives while its thread holds one of the preload's locks (lock.rs) has its
//! handler deferred until the thread lets go of the last one (microseconds): a handler that
//! calls into an accelerated socket would otherwise wait forever on a lock its own thread holds.
//! A deferred handler gets its siginfo but no ucontext (null), and runs with its signal blocked;
//! errno is kept across it. Faults of the thread's own execution (SIGSEGV and the like, raised
//! by the kernel) are never deferred: they would recur forever.

use std::cell::{Cell, UnsafeCell};
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
    /// The program's handlers running on this thread (nested ones count too).
    static IN_HANDLER: Cell<u32> = const { Cell::new(0) };
    /// Signals whose handlers wait for this thread to release its locks (bit n: signal n + 1).
    static PENDING: Cell<u64> = const { Cell::new(0) };
    /// The siginfo of each deferred signal.
    // SAFETY (of the zeroed value): siginfo_t is plain data, valid when zeroed.
    static INFOS: UnsafeCell<[libc::siginfo_t; NSIG]> = const { UnsafeCell::new(unsafe { std::mem::zeroed() }) };
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
    if i == 0 || i >= NSIG {
        return;
    }
    SEEN.with(|s| s.set(true));
    let flags = FLAGS[i].load(Ordering::Acquire);
    if flags & libc::SA_RESTART == 0 {
        INTERRUPT.with(|s| s.set(true));
    }
    if HANDLERS[i].load(Ordering::Acquire) == 0 {
        return;
    }
    // A fault raised by the code this thread is running (a bad buffer copied under a lock)
    // cannot wait: deferred, it would recur on return, forever. It runs now, as the kernel
    // delivers it; only signals sent from outside (kill, raise, timers) are deferred.
    if crate::lock::holding() && !synchronous(sig, info) {
        if !info.is_null() {
            // SAFETY: the kernel's siginfo is valid for the handler's duration; the slot is ours.
            INFOS.with(|slots| unsafe { (*slots.get())[i] = *info });
        }
        PENDING.with(|p| p.set(p.get() | 1 << (i - 1)));
        return;
    }
    call(sig, info, ctx);
}

/// Whether `sig` is a fault of this thread's own execution (SIGSEGV, SIGBUS, SIGILL, SIGFPE,
/// SIGTRAP, SIGSYS raised by the kernel: si_code > 0), as opposed to one sent to it.
fn synchronous(sig: libc::c_int, info: *const libc::siginfo_t) -> bool {
    let fault =
        matches!(sig, libc::SIGSEGV | libc::SIGBUS | libc::SIGILL | libc::SIGFPE | libc::SIGTRAP | libc::SIGSYS);
    // SAFETY: the kernel's siginfo, valid for the handler's duration.
    fault && (info.is_null() || unsafe { (*info).si_code } > 0)
}

/// Whether this thread is inside one of the program's signal handlers: only async-signal-safe
/// work may be done for it (no allocation, no freeing).
pub fn in_handler() -> bool {
    IN_HANDLER.with(Cell::get) > 0
}

/// Runs the program's handler for `sig`.
fn call(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let i = sig as usize;
    let flags = FLAGS[i].load(Ordering::Acquire);
    let h = HANDLERS[i].load(Ordering::Acquire);
    if h == 0 {
        return;
    }
    IN_HANDLER.with(|n| n.set(n.get() + 1));
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
    IN_HANDLER.with(|n| n.set(n.get().saturating_sub(1)));
}

/// Runs the handlers deferred while this thread held a lock (called as it releases its last).
pub fn run_deferred() {
    if PENDING.with(Cell::get) == 0 {
        return;
    }
    // The program's errno as our call left it: a handler may change it (the kernel's handlers
    // run where the program cannot see errno move; here the call returns right after).
    let saved_errno = crate::errno::get();
    // SAFETY: signal masks and siginfo copies of this thread only.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
        loop {
            let pending = PENDING.with(|p| p.replace(0));
            if pending == 0 {
                break;
            }
            for sig in (1..NSIG).filter(|s| pending & 1 << (s - 1) != 0) {
                let mut info = INFOS.with(|slots| (*slots.get())[sig]);
                // As the kernel runs a handler: its own signal blocked, the others as before.
                let mut during = old;
                libc::sigaddset(&mut during, sig as libc::c_int);
                libc::pthread_sigmask(libc::SIG_SETMASK, &during, std::ptr::null_mut());
                call(sig as libc::c_int, &mut info, std::ptr::null_mut());
                libc::pthread_sigmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
            }
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
    }
    crate::errno::set(saved_errno);
}
