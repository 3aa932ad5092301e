//! fork and exec.
//!
//! fork: pthread_atfork takes the preload's locks before the fork (so no lock is copied
//! half-held) and releases them in both processes. The child's accelerated sockets are handed
//! to the kernel: their descriptors become the plain kernel sockets they always were, the
//! parent's rings and flows are never touched, and the child may accelerate new sockets with a
//! runtime of its own. While the parent still serves a flow, datagrams to it reach the parent
//! (as with a socket shared across fork, either process may get them); once the parent closes
//! its descriptor, they reach the child through the kernel.
//!
//! exec: the new program cannot know our state, so before exec every flow goes back to the
//! kernel (the kernel sockets, inherited or closed by CLOEXEC, then answer for their ports);
//! if exec fails, the flows are claimed again.

use std::sync::atomic::{AtomicBool, Ordering};

static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Registers the fork handlers, once (with the first runtime or epoll registration).
pub fn install() {
    if INSTALLED.load(Ordering::Acquire) || INSTALLED.swap(true, Ordering::AcqRel) {
        return;
    }
    // SAFETY: registering three extern "C" functions that take no arguments.
    unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
}

// The order is the one every call path takes them in: the epoll registry, then the runtime.
unsafe extern "C" fn prepare() {
    crate::epoll::MEMBERS.fork_prepare();
    crate::runtime::RUNTIME.fork_prepare();
}

unsafe extern "C" fn parent() {
    crate::runtime::RUNTIME.fork_parent_with(crate::runtime::mark_forked);
    crate::epoll::MEMBERS.fork_parent();
}

unsafe extern "C" fn child() {
    crate::runtime::RUNTIME.fork_child(crate::runtime::hand_over_in_child);
    crate::epoll::MEMBERS.fork_child(|_| {});
}
