//! A hashed timing wheel: O(1) schedule and cancel, expiry in time proportional to the ticks
//! passed and the timers due, for the many timers TCP keeps per connection (retransmission,
//! delayed ACK, persist, keepalive, TIME_WAIT) and for anything else that waits.
//!
//! Time is cut into ticks of `granularity`; a timer lands in slot `tick % SLOTS`, and one due
//! more than a revolution away simply stays in its slot until its deadline (it is looked at
//! once per revolution and kept). A timer never fires early; it fires at the first `expire`
//! whose `now` is at or past its deadline.

use crate::time::Instant;
use std::time::Duration;

const SLOTS: usize = 1024;

/// A scheduled timer's name, for cancelling it. Stale ids (fired or cancelled) are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerId {
    index: u32,
    generation: u32,
}

#[derive(Debug)]
struct Entry<T> {
    generation: u32,
    deadline: Instant,
    token: Option<T>,
}

/// The wheel; `T` is what a timer carries back when it fires (e.g. a socket handle and kind).
#[derive(Debug)]
pub struct TimerWheel<T> {
    granularity_ns: u64,
    slots: Vec<Vec<u32>>,
    /// Per slot, a lower bound on its timers' deadlines: exact after `expire` looked at the
    /// slot, lowered by `schedule`, left as it was by `cancel` (so `next_deadline` may name a
    /// cancelled timer's deadline: one early wake-up, never a late one). It lets the deadline
    /// search look at slots, never at every timer.
    slot_min: Vec<Option<Instant>>,
    entries: Vec<Entry<T>>,
    free: Vec<u32>,
    /// The last tick wholly processed by `expire` (the one before the tick of its latest `now`).
    current_tick: u64,
    live: usize,
    /// Slots and entries looked at so far (expiry and deadline search): the deterministic
    /// measure of the wheel's work that tests compare.
    visits: std::cell::Cell<u64>,
    /// What `next_deadline` last found (None: not known since the last `expire`), lowered by
    /// `schedule`: a driver asks on every poll, and the answer rarely changes between two.
    earliest: std::cell::Cell<Option<Option<Instant>>>,
}

impl<T: Copy> TimerWheel<T> {
    /// A wheel with ticks of `granularity` (1 ms suits TCP), starting at `now`.
    pub fn new(granularity: Duration, now: Instant) -> Self {
        let granularity_ns = (granularity.as_nanos() as u64).max(1);
        TimerWheel {
            granularity_ns,
            slots: (0..SLOTS).map(|_| Vec::new()).collect(),
            slot_min: vec![None; SLOTS],
            entries: Vec::new(),
            free: Vec::new(),
            current_tick: (now.as_nanos() / granularity_ns).saturating_sub(1),
            live: 0,
            visits: std::cell::Cell::new(0),
            earliest: std::cell::Cell::new(Some(None)),
        }
    }

    fn tick_of(&self, t: Instant) -> u64 {
        t.as_nanos() / self.granularity_ns
    }

    /// Schedules `token` to fire at `deadline` (a deadline in the past fires at the next expire).
    pub fn schedule(&mut self, deadline: Instant, token: T) -> TimerId {
        let index = match self.free.pop() {
            Some(i) => {
                let e = &mut self.entries[i as usize];
                e.deadline = deadline;
                e.token = Some(token);
                i
            }
            None => {
                self.entries.push(Entry { generation: 0, deadline, token: Some(token) });
                (self.entries.len() - 1) as u32
            }
        };
        // A deadline already passed goes in the next slot to be processed.
        let tick = self.tick_of(deadline).max(self.current_tick + 1);
        let slot = (tick % SLOTS as u64) as usize;
        self.slots[slot].push(index);
        self.slot_min[slot] = Some(self.slot_min[slot].map_or(deadline, |m| m.min(deadline)));
        self.live += 1;
        if let Some(known) = self.earliest.get() {
            self.earliest.set(Some(Some(known.map_or(deadline, |m| m.min(deadline)))));
        }
        TimerId { index, generation: self.entries[index as usize].generation }
    }

    /// Cancels a timer; true if it was still pending.
    pub fn cancel(&mut self, id: TimerId) -> bool {
        match self.entries.get_mut(id.index as usize) {
            Some(e) if e.generation == id.generation && e.token.is_some() => {
                e.token = None;
                e.generation = e.generation.wrapping_add(1);
                // Its slot still lists the index; the slot sweep drops it lazily. The known
                // earliest deadline stays (a lower bound, as the slots' minima are).
                self.live -= 1;
                if self.live == 0 {
                    self.earliest.set(Some(None));
                }
                true
            }
            _ => false,
        }
    }

    /// Slots and entries looked at since the wheel was made.
    pub fn visits(&self) -> u64 {
        self.visits.get()
    }

    fn visit(&self, n: usize) {
        self.visits.set(self.visits.get() + n as u64);
    }

    /// Timers pending.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether none is pending.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Appends the tokens of every timer due at `now` to `out` (in deadline-slot order).
    pub fn expire(&mut self, now: Instant, out: &mut Vec<T>) {
        let now_tick = self.tick_of(now);
        if now_tick <= self.current_tick {
            return;
        }
        self.earliest.set(None);
        // A jump longer than a revolution visits each slot once.
        let ticks = (now_tick - self.current_tick).min(SLOTS as u64);
        let first = now_tick - ticks;
        for tick in first + 1..=now_tick {
            let slot = (tick % SLOTS as u64) as usize;
            let mut list = std::mem::take(&mut self.slots[slot]);
            self.visit(1 + list.len());
            let mut min: Option<Instant> = None;
            list.retain(|&index| {
                let e = &mut self.entries[index as usize];
                let Some(token) = e.token else {
                    // Cancelled: free the entry now that no slot refers to it.
                    self.free.push(index);
                    return false;
                };
                if e.deadline <= now {
                    out.push(token);
                    e.token = None;
                    e.generation = e.generation.wrapping_add(1);
                    self.free.push(index);
                    self.live -= 1;
                    false
                } else {
                    min = Some(min.map_or(e.deadline, |m| m.min(e.deadline)));
                    true
                }
            });
            self.slots[slot] = list;
            self.slot_min[slot] = min;
        }
        // The tick `now` falls in is not over: timers due later in it stay in its slot, which
        // the next call looks at again (marking it done would leave them a revolution).
        self.current_tick = now_tick - 1;
    }

    /// The earliest instant at which `expire` fires a timer: its deadline, or the start of the
    /// next tick when that deadline falls in the tick already processed. A driver waiting for
    /// exactly this never calls `expire` too early to make progress.
    pub fn next_fire(&self) -> Option<Instant> {
        let next_tick = Instant::from_nanos((self.current_tick + 1).saturating_mul(self.granularity_ns));
        self.next_deadline().map(|d| d.max(next_tick))
    }

    /// The earliest deadline pending, for a driver choosing how long to sleep; earlier only
    /// when the timer that had it was cancelled since its slot was last looked at (a wake-up
    /// that finds nothing, once). Looks at slots, at most two revolutions' worth, never at
    /// every timer: its cost does not grow with the number of timers.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.live == 0 {
            return None;
        }
        if let Some(known) = self.earliest.get() {
            return known;
        }
        let found = self.search_deadline();
        self.earliest.set(Some(found));
        found
    }

    fn search_deadline(&self) -> Option<Instant> {
        // Slots in the order they will be processed: the first that holds a timer due within
        // one revolution holds the earliest deadline.
        let horizon = self.current_tick + SLOTS as u64;
        for step in 1..=SLOTS as u64 {
            let slot = ((self.current_tick + step) % SLOTS as u64) as usize;
            self.visit(1);
            if let Some(min) = self.slot_min[slot].filter(|d| self.tick_of(*d) < horizon) {
                return Some(min);
            }
        }
        // Everything is more than a revolution away.
        self.visit(SLOTS);
        self.slot_min.iter().flatten().min().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: Duration = Duration::from_millis(1);

    fn at(ms: u64) -> Instant {
        Instant::from_nanos(ms * 1_000_000)
    }

    #[test]
    fn a_timer_due_later_in_the_tick_already_looked_at_fires_in_that_tick_not_a_revolution_later() {
        let ms = |n: u64, frac: u64| Instant::from_nanos(n * 1_000_000 + frac * 100_000);
        let mut w = TimerWheel::new(Duration::from_millis(1), ms(0, 0));
        w.schedule(ms(5, 7), 1u32);
        let mut out = Vec::new();
        w.expire(ms(5, 3), &mut out);
        assert!(out.is_empty(), "not due yet");
        assert_eq!(w.next_fire(), Some(ms(5, 7)));
        w.expire(ms(5, 8), &mut out);
        assert_eq!(out, vec![1], "due within the same tick");
        // Scheduled in the current tick, already past: fires at the next expire.
        w.schedule(ms(5, 1), 2);
        w.expire(ms(5, 9), &mut out);
        assert_eq!(out, vec![1, 2]);
    }

    #[test]
    fn fires_at_the_deadline_never_before() {
        let mut w = TimerWheel::new(MS, at(0));
        w.schedule(at(40), 'd');
        w.schedule(at(200), 'r');
        let mut out = Vec::new();
        w.expire(at(39), &mut out);
        assert!(out.is_empty());
        assert_eq!(w.next_deadline(), Some(at(40)));
        w.expire(at(40), &mut out);
        assert_eq!(out, vec!['d']);
        w.expire(at(250), &mut out);
        assert_eq!(out, vec!['d', 'r']);
        assert!(w.is_empty() && w.next_deadline().is_none());
    }

    #[test]
    fn cancelled_timers_do_not_fire_and_stale_ids_are_ignored() {
        let mut w = TimerWheel::new(MS, at(0));
        let a = w.schedule(at(5), 1);
        assert!(w.cancel(a));
        assert!(!w.cancel(a));
        let b = w.schedule(at(5), 2); // may reuse a's entry
        assert!(!w.cancel(a), "a stale id must not cancel the new timer");
        let mut out = Vec::new();
        w.expire(at(10), &mut out);
        assert_eq!(out, vec![2]);
        assert!(!w.cancel(b));
    }

    #[test]
    fn far_timers_wait_out_whole_revolutions_and_big_jumps_work() {
        let mut w = TimerWheel::new(MS, at(0));
        w.schedule(at(7_200_000), "keepalive"); // two hours
        w.schedule(at(60_000), "time_wait");
        w.schedule(at(3), "ack");
        assert_eq!(w.next_deadline(), Some(at(3)));
        let mut out = Vec::new();
        w.expire(at(59_999), &mut out);
        assert_eq!(out, vec!["ack"]);
        assert_eq!(w.next_deadline(), Some(at(60_000)));
        w.expire(at(7_199_999), &mut out);
        assert_eq!(out, vec!["ack", "time_wait"]);
        w.expire(at(9_000_000), &mut out);
        assert_eq!(out, vec!["ack", "time_wait", "keepalive"]);
    }

    #[test]
    fn a_deadline_in_the_past_fires_at_the_next_expire() {
        let mut w = TimerWheel::new(MS, at(100));
        w.schedule(at(50), 'x');
        let mut out = Vec::new();
        w.expire(at(101), &mut out);
        assert_eq!(out, vec!['x']);
    }

    proptest! {
        /// Against a model: every timer fires exactly once, at the first expire at or after its
        /// deadline, unless cancelled first; the next deadline is the model's, or earlier only
        /// as a cancelled timer's.
        #[test]
        fn matches_a_model(ops in proptest::collection::vec((0u8..3, 0u64..5_000), 1..400)) {
            let mut w = TimerWheel::new(MS, at(0));
            let mut now = 0u64;
            let mut pending: Vec<(TimerId, u64, usize)> = Vec::new();
            let mut fired = Vec::new();
            let mut n = 0usize;
            let mut cancelled = Vec::new();
            for (op, v) in ops {
                match op {
                    0 => {
                        n += 1;
                        let id = w.schedule(at(now + v), n);
                        pending.push((id, now + v, n));
                    }
                    1 if !pending.is_empty() => {
                        let (id, deadline, _) = pending.remove(v as usize % pending.len());
                        prop_assert!(w.cancel(id));
                        cancelled.push(at(deadline));
                    }
                    _ => {
                        now += v;
                        fired.clear();
                        w.expire(at(now), &mut fired);
                        let mut due: Vec<usize> = pending.iter().filter(|p| p.1 <= now).map(|p| p.2).collect();
                        pending.retain(|p| p.1 > now);
                        due.sort_unstable();
                        fired.sort_unstable();
                        prop_assert_eq!(&fired, &due);
                    }
                }
                prop_assert_eq!(w.len(), pending.len());
                let model = pending.iter().map(|p| at(p.1)).min();
                let next = w.next_deadline();
                prop_assert_eq!(next.is_some(), model.is_some());
                prop_assert!(next <= model, "{:?} is later than {:?}", next, model);
                prop_assert!(next == model || next.is_some_and(|d| cancelled.contains(&d)), "{:?}", next);
            }
        }
    }
}
