//! Death by a signal left at its default action (SIGTERM, SIGINT, SIGHUP) loses no data: the
//! kernel would go on delivering what the process's sockets hold, so the process hands its TCP
//! connections to the kernel first, as at exit, then dies of the signal as it would have.
//!
//! Our handler goes only where the program has none (its disposition is SIG_DFL when the
//! runtime starts); the program still sees SIG_DFL, and any handler or SIG_IGN it sets replaces
//! ours. The handler does nothing unsafe in a signal context: it asks the worker thread (which
//! takes no signals) to do the hand-over, waits for it at most FATAL_WAIT, then restores the
//! default action and raises the signal again.

use crate::signals::NSIG;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

/// The signals whose default action ends the process and that programs commonly leave alone.
const SIGNALS: [libc::c_int; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

/// Per signal: our handler is installed (the program set nothing).
static OURS: [AtomicBool; NSIG] = [const { AtomicBool::new(false) }; NSIG];

/// 0: nothing asked; 1: a fatal signal asked the worker to hand over; 2: the worker is done.
pub(crate) static STATE: AtomicU32 = AtomicU32::new(0);

/// How long the dying thread waits for the worker (its lock may be held by the interrupted
/// code, in which case the hand-over cannot happen and the signal proceeds).
const FATAL_WAIT: Duration = Duration::from_secs(2);

/// Installs our handler for each of SIGNALS the program left at SIG_DFL (with the runtime).
pub(crate) fn install() {
    for sig in SIGNALS {
        // SAFETY: querying, then setting, the disposition with the real sigaction.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if crate::real::sigaction(sig, std::ptr::null(), &mut old) != 0 || old.sa_sigaction != libc::SIG_DFL {
                continue;
            }
            let mut a: libc::sigaction = std::mem::zeroed();
            a.sa_sigaction = on_fatal as *const () as usize;
            a.sa_flags = libc::SA_SIGINFO;
            libc::sigemptyset(&mut a.sa_mask);
            OURS[sig as usize].store(true, Ordering::Release);
            if crate::real::sigaction(sig, &a, std::ptr::null_mut()) != 0 {
                OURS[sig as usize].store(false, Ordering::Release);
            }
        }
    }
}

/// Whether our handler stands in for the program's SIG_DFL on `sig`.
pub(crate) fn ours(sig: libc::c_int) -> bool {
    usize::try_from(sig).ok().and_then(|i| OURS.get(i)).is_some_and(|o| o.load(Ordering::Acquire))
}

/// The program set its own disposition for `sig`: ours is gone (its handler or SIG_IGN
/// replaces it; an explicit SIG_DFL keeps ours, which is SIG_DFL plus the hand-over).
pub(crate) fn replaced(sig: libc::c_int) {
    if let Some(o) = usize::try_from(sig).ok().and_then(|i| OURS.get(i)) {
        o.store(false, Ordering::Release);
    }
}

extern "C" fn on_fatal(sig: libc::c_int, _info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    if STATE.compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire).is_ok() {
        crate::runtime::wake_worker();
        let step = Duration::from_millis(1);
        let mut waited = Duration::ZERO;
        while STATE.load(Ordering::Acquire) != 2 && waited < FATAL_WAIT {
            let ts = libc::timespec { tv_sec: 0, tv_nsec: step.as_nanos() as _ };
            // SAFETY: nanosleep is async-signal-safe.
            unsafe { libc::nanosleep(&ts, std::ptr::null_mut()) };
            waited += step;
        }
    }
    // SAFETY: async-signal-safe calls: the default action back, the signal unblocked, raised.
    unsafe {
        let mut a: libc::sigaction = std::mem::zeroed();
        a.sa_sigaction = libc::SIG_DFL;
        crate::real::sigaction(sig, &a, std::ptr::null_mut());
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(sig);
    }
}
