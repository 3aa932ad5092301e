//! sigaction, signal and siginterrupt: program handlers run through the trampoline of
//! signals.rs; the program still sees its own handler and flags in every answer.

use crate::signals::{trampoline, FLAGS, HANDLERS, NSIG};
use crate::{errno, real};
use libc::{c_int, sighandler_t};
use std::sync::atomic::Ordering;

/// Puts the program's handler and flags back into an answer about a wrapped signal.
unsafe fn unwrap_old(old: *mut libc::sigaction, prev: usize, prev_flags: c_int) {
    if !old.is_null() && prev != 0 && (*old).sa_sigaction == trampoline as *const () as usize {
        (*old).sa_sigaction = prev;
        (*old).sa_flags = prev_flags;
    }
}

#[no_mangle]
pub unsafe extern "C" fn sigaction(sig: c_int, act: *const libc::sigaction, old: *mut libc::sigaction) -> c_int {
    let i = sig as usize;
    // A vfork child (posix_spawn, subprocess) shares our memory: the handler table is the
    // parent's, so its resets go straight to the kernel.
    if !(1..NSIG).contains(&i) || sig == libc::SIGKILL || sig == libc::SIGSTOP || crate::runtime::in_vfork_child() {
        return real::sigaction(sig, act, old);
    }
    let (prev, prev_flags) = (HANDLERS[i].load(Ordering::Acquire), FLAGS[i].load(Ordering::Acquire));
    if crate::fatal::ours(sig) {
        // The program's disposition is SIG_DFL, which our handler stands in for (fatal.rs).
        let r = real::sigaction(sig, std::ptr::null(), old);
        if r == 0 && !old.is_null() {
            (*old).sa_sigaction = libc::SIG_DFL;
            (*old).sa_flags = 0;
        }
        if act.is_null() || r != 0 || (*act).sa_sigaction == libc::SIG_DFL {
            return r;
        }
        crate::fatal::replaced(sig);
        let mut a = *act;
        return install(sig, &mut a, std::ptr::null_mut(), 0, 0);
    }
    if act.is_null() {
        let r = real::sigaction(sig, act, old);
        if r == 0 {
            unwrap_old(old, prev, prev_flags);
        }
        return r;
    }
    let mut a = *act;
    install(sig, &mut a, old, prev, prev_flags)
}

/// Sets the program's disposition `a` for `sig` (a handler goes through the trampoline);
/// `prev`/`prev_flags`: the program's previous handler, reported in `old`.
unsafe fn install(
    sig: c_int,
    a: &mut libc::sigaction,
    old: *mut libc::sigaction,
    prev: usize,
    prev_flags: c_int,
) -> c_int {
    let i = sig as usize;
    let handler = a.sa_sigaction;
    let r = if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
        let r = real::sigaction(sig, a, old);
        if r == 0 {
            HANDLERS[i].store(0, Ordering::Release);
        }
        r
    } else {
        // Publish the handler before the kernel can call the trampoline for it.
        FLAGS[i].store(a.sa_flags, Ordering::Release);
        HANDLERS[i].store(handler, Ordering::Release);
        a.sa_sigaction = trampoline as *const () as usize;
        a.sa_flags |= libc::SA_SIGINFO;
        let r = real::sigaction(sig, a, old);
        if r != 0 {
            FLAGS[i].store(prev_flags, Ordering::Release);
            HANDLERS[i].store(prev, Ordering::Release);
        }
        r
    };
    if r == 0 {
        unwrap_old(old, prev, prev_flags);
    }
    r
}

/// glibc's signal(): BSD semantics (SA_RESTART), the signal blocked while its handler runs.
#[no_mangle]
pub unsafe extern "C" fn signal(sig: c_int, handler: sighandler_t) -> sighandler_t {
    let mut a: libc::sigaction = std::mem::zeroed();
    a.sa_sigaction = handler;
    a.sa_flags = libc::SA_RESTART;
    libc::sigemptyset(&mut a.sa_mask);
    let mut old: libc::sigaction = std::mem::zeroed();
    if sigaction(sig, &a, &mut old) != 0 {
        return libc::SIG_ERR;
    }
    old.sa_sigaction
}

/// siginterrupt(sig, 1): the handler interrupts blocked calls (no SA_RESTART); 0: they restart.
#[no_mangle]
pub unsafe extern "C" fn siginterrupt(sig: c_int, flag: c_int) -> c_int {
    let mut a: libc::sigaction = std::mem::zeroed();
    if sigaction(sig, std::ptr::null(), &mut a) != 0 {
        return -1;
    }
    if flag != 0 {
        a.sa_flags &= !libc::SA_RESTART;
    } else {
        a.sa_flags |= libc::SA_RESTART;
    }
    if sigaction(sig, &a, std::ptr::null_mut()) != 0 {
        return errno::fail(errno::get());
    }
    0
}
