//! The end of accelerated sockets and of the process: close (now or from the worker),
//! references held by waiting calls and dups, exit's linger, exec and fork.

use super::*;

/// Sockets closed from a signal handler, for the worker to release (0: empty; else the slot id
/// with bit 32 set).
pub(super) static RELEASE_LATER: [AtomicU64; 64] = [const { AtomicU64::new(0) }; 64];

/// Releases `slot` from the worker, not here: for close() in a signal handler, where freeing
/// memory is not safe. Done at once when the queue is full.
pub fn release_later(slot: u32) {
    let entry = 1 << 32 | u64::from(slot);
    if RELEASE_LATER.iter().any(|e| e.compare_exchange(0, entry, Ordering::AcqRel, Ordering::Relaxed).is_ok()) {
        wake_worker();
    } else {
        release(slot);
    }
}

/// Releases what `release_later` queued (the worker, holding the lock).
pub(super) fn release_queued(rt: &mut Runtime) {
    for e in &RELEASE_LATER {
        if e.load(Ordering::Relaxed) != 0 {
            let entry = e.swap(0, Ordering::AcqRel);
            if entry != 0 {
                release_locked(rt, entry as u32);
            }
        }
    }
}

/// Releases an accelerated socket (close, or dup2 over its number).
pub fn release(slot: u32) {
    let mut guard = lock();
    let Some(rt) = guard.as_mut() else { return };
    release_locked(rt, slot);
}

/// Forgets accelerated descriptor `fd`, which is being closed (still open now), and releases
/// its socket: a TCP socket a forked child may hold goes to the kernel through `fd` instead of
/// ending, so that it ends when the last process closes it, as on the kernel. Under the lock
/// from the table's change to the hand-over, so a child's request served meanwhile finds the
/// socket either still ours or already the kernel's.
pub fn release_closing(fd: i32) {
    let mut guard = lock();
    let FdState::Accel(slot) = fdtable::take(fd) else { return };
    let Some(rt) = guard.as_mut() else { return };
    if rt.slot(slot).is_some_and(|s| s.refs == 1 && s.forked && s.proto == Proto::Tcp) {
        // The last descriptor (refs 1), already out of the table.
        hand_over_slot(rt, slot, &[fd], "close after fork");
        return;
    }
    release_locked(rt, slot);
}

pub(super) fn release_locked(rt: &mut Runtime, slot: u32) {
    let Some(s) = rt.slot_mut(slot) else { return };
    s.refs = s.refs.saturating_sub(1);
    if s.refs > 0 {
        // Another descriptor still names the socket.
        return;
    }
    let Some(s) = rt.take_slot(slot) else { return };
    match s.proto {
        Proto::Udp => {
            let groups = rt.driver.stack().udp_memberships(s.handle).map(<[_]>::to_vec).unwrap_or_default();
            for g in groups {
                rt.driver.stop_group(g, s.flow.local_port);
                super::listening(s.inode, g, false);
            }
            let _ = rt.driver.release(s.flow);
            let _ = rt.driver.stack().udp_close(s.handle);
        }
        Proto::Tcp => {
            // As the kernel's close: the connection goes on in the stack (the rest of its
            // data, then FIN; or RST with unread data or SO_LINGER 0); the driver gives its
            // steering entry back when the stack is done with it. A listener's entry goes now.
            let h = s.handle;
            let _ = rt.driver.tcp(|stack, now| stack.tcp_close(h, now));
            if s.flow.remote.is_none() && !s.parked {
                let _ = rt.driver.release(s.flow);
            }
        }
    }
}

/// A call waiting on a socket keeps it alive, as the kernel's file reference does: released
/// (and the socket with it, if its descriptors are all closed) when the call returns.
pub struct Hold(u32);

impl Hold {
    /// Holds the slot's socket; None if it is gone.
    pub fn new(slot: u32) -> Option<Hold> {
        let mut guard = lock();
        let s = guard.as_mut()?.slot_mut(slot)?;
        s.refs += 1;
        Some(Hold(slot))
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        release(self.0);
    }
}

/// One more descriptor names the slot's socket (a dup of it was made).
pub fn share(slot: u32) {
    if let Some(s) = lock().as_mut().and_then(|rt| rt.slot_mut(slot)) {
        s.refs += 1;
    }
}

/// How long exit waits for TCP connections to deliver what the program wrote (and their FIN):
/// the kernel would go on sending after the process ended; we must before it ends. Past it,
/// connections still sending are reset, so their peers know.
pub const EXIT_LINGER: Duration = Duration::from_secs(10);

/// At exit (return from main, exit, _exit): TCP connections deliver what the program wrote and
/// their FIN, for at most EXIT_LINGER; then every flow goes back to the kernel at once, so peers
/// get answers instead of a black hole.
pub fn release_all() {
    if !owns_runtime() {
        return;
    }
    // The worker may hold the lock for a moment; this thread must not wait on itself.
    let deadline = Instant::now() + Duration::from_millis(100);
    let mut guard = loop {
        if let Some(g) = RUNTIME.try_lock() {
            break g;
        }
        if crate::lock::holding() || Instant::now() >= deadline {
            return;
        }
        std::thread::yield_now();
    };
    if let Some(rt) = guard.as_mut().filter(|rt| rt.pid == std::process::id()) {
        finish_for_exit(rt);
    }
}

/// What the end of the process does to the runtime (exit, _exit, a fatal signal): TCP goes to
/// the kernel (or lingers, without CAP_NET_ADMIN), every flow goes back, no slot is left.
pub(super) fn finish_for_exit(rt: &mut Runtime) {
    if !hand_over_all_tcp(rt, "exit") {
        linger_tcp(rt);
    }
    rt.driver.release_all();
    rt.slots.iter_mut().for_each(|s| *s = None);
    publish::remove();
}

/// The interface was detached under the program (`exasock-ctl detach --force`): every
/// accelerated socket goes on through the kernel socket behind its descriptor, as at exec (TCP
/// connections by TCP_REPAIR, listeners by their listening kernel socket, UDP sockets by
/// theirs: datagrams still queued in the stack are lost, with a warning), and no new socket is
/// accelerated in this process. The worker looks every `ATTACH_CHECK`.
pub(super) fn hand_over_after_detach(rt: &mut Runtime) {
    rt.detached = true;
    log::warning!(
        "the interface was detached (exasock-ctl detach --force): accelerated sockets carry on through the kernel, and new ones stay there"
    );
    publish::suspend(rt);
    if !hand_over_all_tcp(rt, "detach") {
        linger_tcp(rt);
    }
    for fd in 0..fdtable::MAX_FDS as i32 {
        let FdState::Accel(slot) = fdtable::get_raw(fd) else { continue };
        if let Some(s) = rt.slot(slot) {
            if rt.driver.stack().udp_readable(s.handle).unwrap_or(false) {
                log::warning!("detach: datagrams queued on fd {fd} are lost (received before the detach)");
            }
        }
        fdtable::set(fd, FdState::Kernel);
    }
    rt.driver.release_all();
    rt.slots.iter_mut().for_each(|s| *s = None);
    publish::remove();
}

/// How often the worker checks that the interface is still attached.
pub(super) const ATTACH_CHECK: Duration = Duration::from_millis(200);

/// At exit and before exec, every accelerated TCP socket goes to the kernel, which carries on
/// as if it had served them all along (../shared/DESIGN.md, "Hand-over to the kernel"):
/// - a connection, to the kernel socket behind its descriptor (TCP_REPAIR): after exec the
///   new program has a working socket; at exit the kernel closes it as it closes any socket
///   of an ending process, sending what is queued and a FIN;
/// - a connection the program already closed, to a new kernel socket closed at once: the
///   kernel finishes it (what is queued, the FIN exchange);
/// - a listener: its kernel socket listens already; its flow goes, so SYNs reach the kernel.
///   Connections it completed that nobody accepted cannot join a kernel accept queue: they
///   are reset, with a warning that counts them;
/// - a handshake under way, or TIME_WAIT: reset, or forgotten.
///
/// Returns false if some connection with bytes to deliver could not be handed over (without
/// CAP_NET_ADMIN, TCP_REPAIR is refused): those are still in the stack, closed, for the
/// caller's linger.
pub(super) fn hand_over_all_tcp(rt: &mut Runtime, when: &str) -> bool {
    // (slot, fd) for every descriptor of an accelerated TCP socket, grouped by socket. A scan
    // must not claim inherited sockets from a parent: the table is read as recorded.
    let mut named: Vec<(u32, i32)> = Vec::new();
    for fd in 0..fdtable::MAX_FDS as i32 {
        if let FdState::Accel(slot) = fdtable::get_raw(fd) {
            if fdtable::is_tcp(fd) {
                named.push((slot, fd));
            }
        }
    }
    named.sort_unstable();
    let mut all_over = true;
    for group in named.chunk_by(|a, b| a.0 == b.0) {
        let fds: Vec<i32> = group.iter().map(|&(_, fd)| fd).collect();
        all_over &= hand_over_slot(rt, group[0].0, &fds, when);
    }
    for h in rt.driver.stack().tcp_orphans() {
        // SAFETY: a new socket of our own, closed below.
        let fd = unsafe { crate::real::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            all_over = false;
            continue;
        }
        fdtable::set(fd, FdState::Kernel);
        match rt.driver.hand_over_tcp(h, fd) {
            Ok(()) if crate::config::debug() => {
                log::emit(format_args!("exasock: {when}: a closed connection handed to the kernel to finish\n"))
            }
            Ok(()) => {}
            Err(e) => all_over &= !end_unhanded(rt, h, &e, when),
        }
        // SAFETY: closing the socket made above; the kernel finishes the connection.
        unsafe { crate::real::close(fd) };
    }
    all_over
}

/// Gives the TCP socket in `slot` to the kernel socket behind its descriptors `fds` (every
/// one the table names it by; the first is used): a connection with TCP_REPAIR, a listener by
/// releasing its flow (its kernel socket listens already; connections nobody accepted are
/// reset, counted in a warning). Each of `fds` is a plain kernel socket afterwards. Returns
/// false if a connection with bytes to deliver stayed in the stack (closed, for a linger).
pub(super) fn hand_over_slot(rt: &mut Runtime, slot: u32, fds: &[i32], when: &str) -> bool {
    let Some(&fd) = fds.first() else { return true };
    // A descriptor of our own for the socket, made while `fd` is still the program's
    // accelerated descriptor (so it cannot be closed under us: its close waits for this lock):
    // once the table says kernel, the program may close its own descriptors at any time.
    // SAFETY: F_DUPFD_CLOEXEC of an open descriptor, at the base of exasock's range.
    let own = unsafe { crate::real::fcntl(fd, libc::F_DUPFD_CLOEXEC, super::internal_fd_base() as libc::c_ulong) };
    let Some(s) = rt.take_slot(slot) else {
        if own >= 0 {
            // SAFETY: closing the duplicate made above.
            unsafe { crate::real::close(own) };
        }
        return true;
    };
    for &other in fds {
        if fdtable::get_raw(other) == FdState::Accel(slot) {
            fdtable::set(other, FdState::Kernel);
        }
    }
    let h = s.handle;
    if s.flow.remote.is_none() {
        if own >= 0 {
            // SAFETY: closing the duplicate made above (a listener needs none).
            unsafe { crate::real::close(own) };
        }
        let waiting = rt.driver.stack().tcp_accept_pending(h);
        if waiting > 0 {
            log::warning!("{when}: {waiting} connection(s) not yet accepted on fd {fd} are reset (a kernel listener cannot take them)");
        }
        if !s.parked {
            let _ = rt.driver.release(s.flow);
        }
        let _ = rt.driver.tcp(|stack, now| stack.tcp_close(h, now));
        if crate::config::debug() {
            log::emit(format_args!("exasock: {when}: listener fd {fd} handed to the kernel\n"));
        }
        return true;
    }
    if own < 0 {
        return !end_unhanded(rt, h, &std::io::Error::last_os_error(), when);
    }
    // Our own calls on it (the driver's TCP_REPAIR steps) reach the kernel, not the stack.
    fdtable::set(own, FdState::Kernel);
    let result = rt.driver.hand_over_tcp(h, own);
    // SAFETY: closing the duplicate made above; the program's descriptors keep the socket.
    unsafe { crate::real::close(own) };
    match result {
        Ok(()) => {
            if crate::config::debug() {
                log::emit(format_args!("exasock: {when}: fd {fd} handed to the kernel\n"));
            }
            true
        }
        Err(e) => !end_unhanded(rt, h, &e, when),
    }
}

/// Answers forked children's requests for their inherited sockets (the worker, holding the
/// lock): the socket with the inode asked for goes to the kernel; one this process inherited
/// itself is asked of its own parent first.
pub(super) fn serve_children(rt: &mut Runtime) {
    while let Some(request) = crate::inherit::next_request() {
        let mut done = true;
        for fd in 0..fdtable::MAX_FDS as i32 {
            match fdtable::get_raw(fd) {
                FdState::Accel(slot) if fdtable::is_tcp(fd) && socket_inode(fd) == request.inode => {
                    let fds: Vec<i32> = (fd..fdtable::MAX_FDS as i32)
                        .filter(|&o| fdtable::get_raw(o) == FdState::Accel(slot))
                        .collect();
                    done = hand_over_slot(rt, slot, &fds, "fork");
                    break;
                }
                FdState::Inherited if socket_inode(fd) == request.inode => {
                    crate::inherit::claim(fd);
                    break;
                }
                _ => {}
            }
        }
        request.answer(done);
    }
}

/// After fork, in the parent (the fork handlers hold the lock): every TCP socket existing now
/// may be held by the child. Listeners nobody accepted on yet are parked (`Slot::parked`).
pub fn mark_forked(runtime: &mut Option<Runtime>) {
    if let Some(rt) = runtime.as_mut() {
        for i in 0..rt.slots.len() {
            let Some(s) = rt.slots[i].filter(|s| s.proto == Proto::Tcp) else { continue };
            let park = s.flow.remote.is_none() && !s.accepted && !s.parked && rt.driver.release(s.flow).is_ok();
            if let Some(s) = rt.slots[i].as_mut() {
                s.forked = true;
                s.parked |= park;
            }
        }
    }
}

/// A connection `hand_over_tcp` could not give to the kernel: one with nothing to deliver (a
/// handshake, TIME_WAIT) ends here; one with bytes to deliver is closed, as close(2) would,
/// and left to the caller's linger (returns true then).
fn end_unhanded(rt: &mut Runtime, h: SocketHandle, e: &std::io::Error, when: &str) -> bool {
    let pending = rt.driver.stack().tcp_repair_state(h, driver::clock::now()).is_ok();
    if !pending {
        // A handshake is reset (the RST goes out with this call); TIME_WAIT just ends.
        let time_wait = rt.driver.stack().tcp_state(h) == Ok(stack::tcp::State::TimeWait);
        if !time_wait {
            let _ = rt.driver.tcp(|stack, _| stack.tcp_abort(h));
        }
        let _ = rt.driver.tcp(|stack, _| stack.tcp_detach(h));
        return false;
    }
    log::warning!("{when}: a TCP connection stays with exasock until it has delivered its bytes: {e}");
    let _ = rt.driver.tcp(|stack, now| stack.tcp_close(h, now));
    true
}

/// Closes every TCP socket still open as close(2) would, then drives the stack until no
/// connection has data or a FIN waiting for its ACK, or EXIT_LINGER passes (then resets them).
pub(super) fn linger_tcp(rt: &mut Runtime) {
    let open: Vec<SocketHandle> =
        rt.slots.iter().flatten().filter(|s| s.proto == Proto::Tcp).map(|s| s.handle).collect();
    for h in open {
        let _ = rt.driver.tcp(|stack, now| stack.tcp_close(h, now));
    }
    let deadline = Instant::now() + EXIT_LINGER;
    while rt.driver.stack().tcp_unfinished() {
        if Instant::now() >= deadline {
            log::warning!("exit: TCP connections still sending after {EXIT_LINGER:?} are reset");
            rt.driver.tcp(|stack, _| stack.tcp_abort_all());
            rt.driver.poll();
            break;
        }
        rt.driver.poll();
        std::hint::spin_loop();
    }
}

/// Before exec: every flow goes back to the kernel, whose sockets the new program inherits (or
/// loses with CLOEXEC). TCP connections go over whole (`hand_over_all_tcp`); datagrams still
/// queued on inherited UDP sockets cannot follow, and a warning counts them. Returns whether
/// anything was released.
pub fn release_for_exec() -> bool {
    let mut guard = lock();
    let Some(rt) = guard.as_mut().filter(|rt| rt.pid == std::process::id()) else { return false };
    for fd in 0..fdtable::MAX_FDS as i32 {
        let FdState::Accel(slot) = fdtable::get_raw(fd) else { continue };
        let Some(s) = rt.slot(slot) else { continue };
        // SAFETY: F_GETFD takes no argument.
        let cloexec = unsafe { crate::real::fcntl(fd, libc::F_GETFD, 0) } & libc::FD_CLOEXEC != 0;
        if !cloexec && rt.driver.stack().udp_readable(s.handle).unwrap_or(false) {
            log::warning!("exec: datagrams queued on fd {fd} are lost (they were received before exec)");
        }
    }
    publish::suspend(rt);
    if !hand_over_all_tcp(rt, "exec") {
        linger_tcp(rt);
    }
    rt.driver.release_all();
    true
}

/// After an exec that failed: the flows are claimed back (TCP sockets stay with the kernel,
/// where the hand-over put them).
pub fn reclaim_after_exec() {
    let mut guard = lock();
    let Some(rt) = guard.as_mut() else { return };
    publish::resume();
    for (flow, e) in rt.driver.reclaim_all() {
        log::warning!("after a failed exec, {flow} stays with the kernel: {e}");
    }
}

/// In a forked child (fork.rs), with the runtime lock held by the fork handlers and no other
/// thread alive: the accelerated descriptors become the kernel sockets behind them, exasock's
/// own descriptors are closed, and the parent's runtime is forgotten without touching its rings
/// or flows (no destructor runs: they would act on state the parent still uses).
pub fn hand_over_in_child(runtime: &mut Option<Runtime>) {
    SLEEPERS.store(0, Ordering::Relaxed);
    OWNER_PID.store(0, Ordering::Release);
    RING_FD.store(-1, Ordering::Relaxed);
    NOTIFY_FD.store(-1, Ordering::Relaxed);
    publish::forget_in_child();
    super::watcher::forget_in_child();
    let Some(rt) = runtime.take() else { return };
    let keep = crate::inherit::in_child();
    for fd in 0..fdtable::MAX_FDS as i32 {
        match fdtable::get_raw(fd) {
            // A TCP socket stays the parent's until this process uses it (inherit.rs).
            FdState::Accel(_) if fdtable::is_tcp(fd) && keep >= 0 => fdtable::set(fd, FdState::Inherited),
            FdState::Accel(_) => fdtable::set(fd, FdState::Kernel),
            FdState::Internal if fd == keep => {}
            FdState::Internal => {
                fdtable::set(fd, FdState::Kernel);
                // SAFETY: the child's copy of one of our descriptors; the parent's stays open.
                unsafe { crate::real::close(fd) };
            }
            _ => {}
        }
    }
    std::mem::forget(rt);
}
