//! Start-up and exit: the constructor reads the environment and resolves libc; until it has
//! run (and while a resolver function runs on this thread), every call goes straight to libc.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

static READY: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// Depth of resolver calls (getaddrinfo...) on this thread: their sockets stay on the
    /// kernel. A const-initialised Cell has no destructor.
    static IN_RESOLVER: Cell<u32> = const { Cell::new(0) };
}

extern "C" fn init() {
    crate::config::load();
    crate::real::resolve_all();
    READY.store(true, Ordering::Release);
}

extern "C" fn fini() {
    // Flows go back to the kernel at once, so peers get answers instead of a black hole.
    crate::runtime::release_all();
}

#[used]
#[link_section = ".init_array"]
static INIT: extern "C" fn() = init;

#[used]
#[link_section = ".fini_array"]
static FINI: extern "C" fn() = fini;

/// Whether calls may be accelerated on this thread now.
#[inline]
pub fn ready() -> bool {
    // Sockets exasock's own code makes (it holds one of our locks: the driver, aya, std) are
    // never the program's to accelerate.
    READY.load(Ordering::Acquire) && IN_RESOLVER.with(|d| d.get() == 0) && !crate::lock::holding()
}

/// Unit tests run without the constructor: they say when interposition is on.
#[cfg(test)]
pub fn set_ready_for_tests() {
    READY.store(true, Ordering::Release);
}

/// Runs `f` as a resolver call: sockets it makes stay on the kernel.
pub fn in_resolver<R>(f: impl FnOnce() -> R) -> R {
    IN_RESOLVER.with(|d| d.set(d.get() + 1));
    let r = f();
    IN_RESOLVER.with(|d| d.set(d.get() - 1));
    r
}
