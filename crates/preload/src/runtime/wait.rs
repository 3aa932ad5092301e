//! How threads wait: spinning callers, sleepers on the ring and a notification eventfd, the
//! futex word the pollers bump, and the worker that drives the stack while no application
//! thread is in a call.

use super::*;

/// Bumped whenever datagrams reach sockets; sleeping callers wait on it (futex).
pub(super) static GENERATION: AtomicU32 = AtomicU32::new(0);
/// Callers sleeping on GENERATION: wakes are only sent when someone sleeps.
pub(super) static SLEEPERS: AtomicU32 = AtomicU32::new(0);
/// When an application thread last drove the datapath (CLOCK_MONOTONIC ns): the worker only
/// sleeps on the ring while none does.
pub(super) static LAST_APP_POLL: AtomicU64 = AtomicU64::new(0);
/// The worker stays out of the way of application threads driving the ring by waiting on this
/// word; work queued for it bumps it.
pub(super) static WORKER_WAKE: AtomicU32 = AtomicU32::new(0);
/// The worker is waiting on WORKER_WAKE (wakes are only sent then).
pub(super) static WORKER_PARKED: AtomicBool = AtomicBool::new(false);

pub(super) fn futex(word: &AtomicU32, op: i32, val: u32, timeout: Option<&libc::timespec>) {
    // SAFETY: a futex call on a word we own; the timeout, if any, outlives the call.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            op | libc::FUTEX_PRIVATE_FLAG,
            val,
            timeout.map_or(std::ptr::null(), |t| t as *const libc::timespec),
        );
    }
}

/// The ring's pollable fd, which sleeping callers wait on (-1: none, e.g. in a fork child).
pub(super) static RING_FD: AtomicI32 = AtomicI32::new(-1);
/// An eventfd that wakes sleeping callers when another thread queued data for them (-1: none).
pub(super) static NOTIFY_FD: AtomicI32 = AtomicI32::new(-1);

/// Wakes every sleeping caller: datagrams arrived for somebody.
pub(super) fn notify() {
    // SeqCst with the sleepers' side (Waiter::wait): a Dekker pattern, each stores then loads.
    GENERATION.fetch_add(1, Ordering::SeqCst);
    if SLEEPERS.load(Ordering::SeqCst) > 0 {
        let fd = NOTIFY_FD.load(Ordering::Relaxed);
        if fd >= 0 {
            let one = 1u64;
            // SAFETY: an 8-byte write to our eventfd; a raw syscall, not our export.
            unsafe { libc::syscall(libc::SYS_write, fd, &one as *const u64, 8) };
        }
    }
}

/// Wakes every sleeping caller to look again: a call changed what they may be waiting for
/// (a shutdown, an epoll set's members). Costs two atomics when nobody sleeps.
pub fn wake_sleepers() {
    notify();
}

/// Makes the eventfd sleepers wait on beside the ring; returns it (an Internal fd).
pub(super) fn open_notify_fd() -> Option<i32> {
    // SAFETY: eventfd2 with flags only.
    let fd = unsafe { libc::syscall(libc::SYS_eventfd2, 0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) } as i32;
    if fd < 0 {
        return None;
    }
    // SAFETY: the fd was just created and is ours alone.
    let owned = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let placed = nic::fdplace::place(owned).ok()?;
    Some(std::os::fd::IntoRawFd::into_raw_fd(placed))
}
/// The worker: keeps the stack going while no application thread is in a call (drains the
/// ring into socket queues, runs timers, follows kernel table changes), and takes no signals.
/// While application threads drive the datapath (spinning, or sleeping on the ring themselves)
/// it stays out of their way, waiting for the rest of the millisecond since the last of their
/// polls; otherwise it sleeps on the ring and the rtnetlink monitor until a frame or the next
/// timer.
pub(super) fn worker() {
    // SAFETY: blocking every signal on this thread only.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
    }
    // How long the worker stays out of the way of an application thread that keeps driving the
    // datapath: doubled each time it finds it still at it, up to MAX_SPIN_NAP, and back to
    // the rest of a millisecond once it is not. A wake-up every millisecond took a core from a
    // spinning program on a 2-core machine often enough to put 10 us into its UDP ping-pong's
    // p99 (bench/pingpong.sh).
    let mut nap_ns: u64 = 0;
    let mut last_attach_check: u64 = 0;
    loop {
        // A fatal signal left at its default action: hand everything over, then let it kill.
        if crate::fatal::STATE.load(Ordering::Acquire) == 1 {
            if let Some(rt) = RUNTIME.lock().as_mut() {
                finish_for_exit(rt);
            }
            crate::fatal::STATE.store(2, Ordering::Release);
        }
        // A forked child waits for its inherited socket: answered even while application
        // threads drive the datapath (one poll of the channel per wake-up, at most one a ms).
        if child_request_waiting() {
            if let Some(mut guard) = RUNTIME.try_lock() {
                if let Some(rt) = guard.as_mut() {
                    serve_children(rt);
                }
            }
        }
        // exasock-stat's counters, at most every publish::REFRESH, even while callers spin.
        if publish::due() {
            if let Some(mut guard) = RUNTIME.try_lock() {
                if let Some(rt) = guard.as_mut() {
                    publish::refresh_if_due(rt);
                }
            }
        }
        // `exasock-ctl detach --force` under the program: everything to the kernel.
        let now = driver::clock::now().as_nanos();
        if now.saturating_sub(last_attach_check) >= ATTACH_CHECK.as_nanos() as u64 {
            last_attach_check = now;
            // A stat without the lock: application threads that spin keep it busy.
            if !still_attached() {
                if let Some(rt) = RUNTIME.lock().as_mut().filter(|rt| !rt.detached) {
                    hand_over_after_detach(rt);
                }
            }
        }
        if let Some(rest) = app_spinning() {
            nap_ns = (nap_ns * 2).clamp(rest, MAX_SPIN_NAP.as_nanos() as u64);
            // Parked, then checked again: a caller that went to sleep in between bumped the
            // word, and the futex returns at once.
            let seen = WORKER_WAKE.load(Ordering::SeqCst);
            WORKER_PARKED.store(true, Ordering::SeqCst);
            if app_spinning().is_some() {
                let ts = libc::timespec { tv_sec: 0, tv_nsec: nap_ns as _ };
                futex(&WORKER_WAKE, libc::FUTEX_WAIT, seen, Some(&ts));
            }
            WORKER_PARKED.store(false, Ordering::SeqCst);
            continue;
        }
        nap_ns = 0;
        let wait = match RUNTIME.try_lock() {
            Some(mut guard) => guard.as_mut().map(|rt| {
                release_queued(rt);
                if rt.driver.poll() > 0 {
                    rt.frames_arrived();
                }
                let deadline = rt.driver.next_deadline().map(|d| d.saturating_since(driver::clock::now()));
                (rt.driver.wait_fds(), deadline)
            }),
            None => None,
        };
        match wait {
            Some((fds, deadline)) => {
                let requests = crate::inherit::REQUESTS.load(Ordering::Relaxed);
                let mut pfds =
                    [fds[0], fds[1], requests].map(|fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 });
                // Timers are kept in milliseconds: a deadline due now is run by the next poll,
                // not by spinning here.
                let timeout = deadline
                    .unwrap_or(Duration::from_millis(100))
                    .clamp(Duration::from_millis(1), Duration::from_millis(100));
                let ts = libc::timespec { tv_sec: 0, tv_nsec: timeout.as_nanos() as _ };
                // SAFETY: three pollfds (a negative fd is ignored); the real ppoll, not our export.
                unsafe { crate::real::ppoll(pfds.as_mut_ptr(), 3, &ts, std::ptr::null()) };
            }
            // An application thread holds the lock and drives the datapath: look again soon.
            None => std::thread::sleep(Duration::from_micros(50)),
        }
    }
}

/// The longest the worker stays away while application threads drive the datapath: what it
/// then does (take over the ring when they stop, answer a forked child, refresh exasock-stat's
/// counters) may wait this long. A program that stops calling leaves frames in the ring (4,096)
/// and TCP's timers (milliseconds at the least) unserved for at most this.
const MAX_SPIN_NAP: Duration = Duration::from_millis(16);

/// Whether a forked child's request waits on the channel (one non-blocking poll).
fn child_request_waiting() -> bool {
    let fd = crate::inherit::REQUESTS.load(Ordering::Relaxed);
    if fd < 0 {
        return false;
    }
    let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: one pollfd; the real poll, not our export.
    unsafe { crate::real::poll(&mut p, 1, 0) == 1 }
}

/// While application threads drive the datapath (one polled within the last millisecond:
/// spinning, or sleeping on the ring and polling it at each wake-up, at least every
/// millisecond): the nanoseconds left of that millisecond.
pub(super) fn app_spinning() -> Option<u64> {
    const IDLE: u64 = 1_000_000; // 1 ms
    let since = driver::clock::now().as_nanos().saturating_sub(LAST_APP_POLL.load(Ordering::Relaxed));
    (since < IDLE).then(|| IDLE - since)
}

/// Work queued for the worker (sockets closed in a signal handler, a fatal signal's
/// hand-over): it must not wait. Async-signal-safe.
pub(crate) fn wake_worker() {
    WORKER_WAKE.fetch_add(1, Ordering::SeqCst);
    if WORKER_PARKED.load(Ordering::SeqCst) {
        futex(&WORKER_WAKE, libc::FUTEX_WAKE, 1, None);
    }
}

/// The most kernel descriptors a sleep watches beside the ring (`Waiter::wait_on`).
pub const MAX_WATCHED: usize = 30;
/// How long a sleep that watches all its call's sources lasts before a recheck.
const WATCHED_NAP: Duration = Duration::from_millis(100);

/// How a blocked call waits: spins, then (with EXASOCK_SPIN_USEC) sleeps until datagrams
/// arrive for anybody (a futex the pollers bump), rechecking at least every millisecond; a
/// signal handled on this thread ends the wait as the kernel would (signals.rs).
pub struct Waiter {
    start: Instant,
    deadline: Option<Instant>,
    always_eintr: bool,
    /// Calls to `wait_on` while spinning: the clock is read on every `SPIN_CLOCK_EVERY`th
    /// (a clock reading costs as much as the rest of a spin round).
    spins: std::cell::Cell<u32>,
    /// The spin budget was found spent (sleeping from now on).
    asleep: std::cell::Cell<bool>,
}

/// While spinning, the deadline and the spin budget are checked every this many rounds.
const SPIN_CLOCK_EVERY: u32 = 4;

/// Why a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitEnd {
    /// The deadline passed.
    TimedOut,
    /// A signal handler ran and the call must return EINTR.
    Interrupted,
}

impl Waiter {
    /// A wait that ends after `timeout` (None: never). `always_eintr`: any handled signal ends
    /// it (calls with a timeout and the multiplexers), else only handlers without SA_RESTART.
    pub fn new(timeout: Option<Duration>, always_eintr: bool) -> Waiter {
        crate::signals::begin_call();
        let start = Instant::now();
        Waiter {
            start,
            deadline: timeout.map(|t| start + t),
            always_eintr,
            spins: std::cell::Cell::new(0),
            asleep: std::cell::Cell::new(false),
        }
    }

    /// Whether the spin budget is spent: each `wait` now sleeps (up to a millisecond), so a
    /// syscall per round costs nothing that matters.
    pub fn sleeping(&self) -> bool {
        self.asleep.get()
    }

    /// Spins or sleeps once (a sleep rechecked every millisecond); says why the wait is over
    /// when it is.
    pub fn wait(&self) -> Result<(), WaitEnd> {
        self.wait_on(None)
    }

    /// As `wait`, for a call that names every source it waits on outside the stack in
    /// `kernel` (kernel descriptors, and the kernel sockets behind accelerated UDP sockets and
    /// listeners, which traffic via loopback or other interfaces reaches): its sleep watches
    /// them beside the ring and the notification eventfd, and lasts until one is ready, the
    /// deadline or a signal, rechecked only every `WATCHED_NAP` (a safety net: whatever the
    /// stack or another thread changes wakes sleepers). An idle program then costs no CPU.
    /// More than `MAX_WATCHED` descriptors: rechecked every millisecond, as `wait`.
    pub fn wait_on(&self, kernel: Option<&[libc::pollfd]>) -> Result<(), WaitEnd> {
        if crate::signals::interrupted(self.always_eintr) {
            return Err(WaitEnd::Interrupted);
        }
        let round = self.spins.get();
        if !round.is_multiple_of(SPIN_CLOCK_EVERY) {
            self.spins.set(round.wrapping_add(1));
            std::hint::spin_loop();
            return Ok(());
        }
        let now = Instant::now();
        if self.deadline.is_some_and(|d| now >= d) {
            return Err(WaitEnd::TimedOut);
        }
        if self.asleep.get() || now.duration_since(self.start).as_micros() as u64 >= config::spin_usec() {
            self.asleep.set(true);
            let seen = GENERATION.load(Ordering::SeqCst);
            SLEEPERS.fetch_add(1, Ordering::SeqCst);
            // Rechecked at least every millisecond: data on the kernel socket (loopback, other
            // interfaces) wakes nothing here.
            let watched = kernel.filter(|k| k.len() <= MAX_WATCHED);
            let cap = if watched.is_some() { WATCHED_NAP } else { Duration::from_millis(1) };
            let nap = self.deadline.map_or(cap, |d| d.saturating_duration_since(now)).min(cap);
            let ts = libc::timespec { tv_sec: nap.as_secs() as _, tv_nsec: nap.subsec_nanos() as _ };
            let (ring, note) = (RING_FD.load(Ordering::Relaxed), NOTIFY_FD.load(Ordering::Relaxed));
            if GENERATION.load(Ordering::SeqCst) == seen {
                if ring >= 0 && note >= 0 {
                    // A frame on the ring (for anybody: the caller then polls it itself, one
                    // wake-up from wire to caller), a notification from a thread that queued
                    // data for us, or one of the call's kernel sources.
                    let mut fds = [libc::pollfd { fd: -1, events: 0, revents: 0 }; 2 + MAX_WATCHED];
                    fds[0] = libc::pollfd { fd: ring, events: libc::POLLIN, revents: 0 };
                    fds[1] = libc::pollfd { fd: note, events: libc::POLLIN, revents: 0 };
                    let extra = watched.unwrap_or(&[]);
                    fds[2..2 + extra.len()].copy_from_slice(extra);
                    let n = (2 + extra.len()) as libc::nfds_t;
                    // SAFETY: n valid pollfds; the real ppoll, not our export.
                    unsafe { crate::real::ppoll(fds.as_mut_ptr(), n, &ts, std::ptr::null()) };
                } else {
                    futex(&GENERATION, libc::FUTEX_WAIT, seen, Some(&ts));
                }
            }
            if SLEEPERS.fetch_sub(1, Ordering::SeqCst) == 1 && note >= 0 {
                // The last sleeper out resets the notification.
                let mut count = 0u64;
                // SAFETY: an 8-byte read from our non-blocking eventfd.
                unsafe { libc::syscall(libc::SYS_read, note, &mut count as *mut u64, 8) };
            }
        } else {
            // Still spinning: the next rounds skip the clock.
            self.spins.set(round.wrapping_add(1));
            std::hint::spin_loop();
        }
        Ok(())
    }
}
