//! O_ASYNC on accelerated sockets: the stack's readiness changes signal the descriptor's
//! owner (F_SETOWN, F_SETOWN_EX) with SIGIO or the F_SETSIG signal, as Linux's send_sigio does
//! for a kernel socket (whose own signals cover only what reaches it: loopback, other
//! interfaces).

use super::*;

/// si_code of an I/O signal for input and output (asm-generic/siginfo.h).
pub const POLL_IN: i32 = 1;
/// See [`POLL_IN`].
pub const POLL_OUT: i32 = 2;
/// fcntl commands and owner kinds the libc crate lacks (asm-generic/fcntl.h).
const F_GETSIG: i32 = 11;
const F_GETOWN_EX: i32 = 16;
const F_OWNER_TID: i32 = 0;
const F_OWNER_PGRP: i32 = 2;

/// si_code of sigqueue(3).
const SI_QUEUE: i32 = -1;

/// Whether the calling thread blocks `sig`.
fn blocked_here(sig: i32) -> bool {
    // SAFETY: reading the calling thread's mask into a set we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut set) == 0 && libc::sigismember(&set, sig) == 1
    }
}

/// struct f_owner_ex.
#[repr(C)]
struct FOwnerEx {
    kind: i32,
    pid: i32,
}

/// Whether any socket of this process had O_ASYNC (polls look for signals to send only then).
pub fn async_used() -> bool {
    ASYNC_USED.load(Ordering::Relaxed)
}

/// An accelerated socket whose descriptor has an owner (F_SETOWN, F_SETOWN_EX: SIGURG on
/// urgent data) or O_ASYNC (SIGIO or the F_SETSIG signal on readiness): the descriptor whose
/// kernel socket holds the owner and the signal, and what was already signalled.
#[derive(Debug, Clone, Copy)]
pub struct AsyncIo {
    /// The descriptor the owner or O_ASYNC was set on.
    pub fd: i32,
    /// O_ASYNC is on.
    pub o_async: bool,
    /// The socket's arrival count when last signalled (a new arrival is POLL_IN).
    pub seen_arrivals: u64,
    /// Its count of full sends when last signalled (writable after one more is POLL_OUT).
    pub seen_send_blocks: u32,
    /// Urgent data was waiting at the last look (its arrival is SIGURG, once).
    pub seen_urgent: bool,
}

/// Set once a socket of this process had an owner or O_ASYNC: only then does a poll look for
/// signals to send.
static ASYNC_USED: AtomicBool = AtomicBool::new(false);

/// O_ASYNC set (`Some(true)`, or cleared) or an owner given (`None`) on accelerated `fd`: from
/// now on its readiness changes and urgent data signal the owner.
pub fn set_async(slot: u32, fd: i32, o_async: Option<bool>) {
    let mut guard = lock();
    let Some(rt) = guard.as_mut() else { return };
    let arrivals = rt.arrivals(slot);
    let Some(s) = rt.slot_mut(slot) else { return };
    let previous = s.async_io;
    s.async_io = Some(AsyncIo {
        fd,
        o_async: o_async.unwrap_or(previous.is_some_and(|a| a.o_async)),
        seen_arrivals: arrivals,
        seen_send_blocks: s.send_blocks,
        seen_urgent: previous.is_some_and(|a| a.seen_urgent),
    });
    ASYNC_USED.store(true, Ordering::Relaxed);
}

/// Sends SIGURG to the owner of `fd`, as Linux's sk_send_sigurg when urgent data arrives.
pub(super) fn signal_urgent(fd: i32) {
    // SAFETY: fcntl reads into an f_owner_ex we own; kill and tgkill take plain values.
    unsafe {
        let mut owner = FOwnerEx { kind: 0, pid: 0 };
        if crate::real::fcntl(fd, F_GETOWN_EX, (&mut owner as *mut FOwnerEx) as libc::c_ulong) != 0 || owner.pid <= 0 {
            return;
        }
        match owner.kind {
            F_OWNER_PGRP => libc::kill(-owner.pid, libc::SIGURG),
            F_OWNER_TID => libc::syscall(libc::SYS_tgkill, libc::getpid(), owner.pid, libc::SIGURG) as i32,
            _ => libc::kill(owner.pid, libc::SIGURG),
        };
    }
}

/// Sends the owner of `fd` (F_SETOWN, F_SETOWN_EX) its I/O signal, as Linux's send_sigio: SIGIO
/// when F_SETSIG is 0; otherwise that signal with si_code `code` (or SI_QUEUE, see below),
/// si_band and si_fd, which only a signal to this process itself can carry from user space
/// (another owner gets it bare).
pub(super) fn signal_owner(fd: i32, code: i32, band: i16) {
    // SAFETY: fcntl reads into an f_owner_ex we own; kill, tgkill and rt_sigqueueinfo take
    // plain values and a siginfo we own.
    unsafe {
        let mut owner = FOwnerEx { kind: 0, pid: 0 };
        if crate::real::fcntl(fd, F_GETOWN_EX, (&mut owner as *mut FOwnerEx) as libc::c_ulong) != 0 || owner.pid <= 0 {
            return;
        }
        let sig = crate::real::fcntl(fd, F_GETSIG, 0);
        let me = libc::getpid();
        if sig > 0 && owner.kind != F_OWNER_PGRP && (owner.pid == me || owner.kind == F_OWNER_TID) {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            // siginfo_t's POLL layout (x86-64 and aarch64): si_signo, si_errno, si_code, then
            // si_band (a long) and si_fd in the union.
            let raw = (&mut info as *mut libc::siginfo_t).cast::<i32>();
            *raw = sig;
            *raw.add(2) = code;
            *(raw.add(4).cast::<libc::c_long>()) = libc::c_long::from(band);
            *raw.add(6) = fd;
            // The kernel lets a thread queue a positive si_code (as the kernel's own) only to
            // itself: a calling thread that takes the signal gets it so; otherwise (exasock's
            // worker, which blocks every signal, or another thread) it goes as SI_QUEUE, with
            // the same si_band and si_fd.
            let tid = libc::gettid();
            let target = if owner.kind == F_OWNER_TID { owner.pid } else { tid };
            if target == tid && !blocked_here(sig) {
                libc::syscall(libc::SYS_rt_tgsigqueueinfo, me, tid, sig, &info);
            } else {
                *raw.add(2) = SI_QUEUE;
                if owner.kind == F_OWNER_TID {
                    libc::syscall(libc::SYS_rt_tgsigqueueinfo, me, owner.pid, sig, &info);
                } else {
                    libc::syscall(libc::SYS_rt_sigqueueinfo, me, sig, &info);
                }
            }
            return;
        }
        let sig = if sig > 0 { sig } else { libc::SIGIO };
        match owner.kind {
            F_OWNER_PGRP => libc::kill(-owner.pid, sig),
            F_OWNER_TID => libc::syscall(libc::SYS_tgkill, me, owner.pid, sig) as i32,
            _ => libc::kill(owner.pid, sig),
        };
    }
}
