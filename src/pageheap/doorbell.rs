//! The re-collapse helper's doorbell: the futex word it sleeps on, whether it runs, and
//! whether the process has forked. The page heap rings it when it has new work (`promoted`);
//! the helper's own file (`collapser`) starts the helper and waits on the word. Kept apart
//! from both so that the page heap does not depend on the helper that depends on it. The
//! process's doorbell ([`super::fork_pages::bell`]) lives on the page that fork does not copy
//! ([`super::fork_pages`]): the fork handlers ring it without a page fault, and a child starts
//! with a zeroed one (no helper).

use crate::os::thread;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// The words the page heap and the helper share.
pub struct Doorbell {
    /// 0: the helper is not started; 1: it runs.
    pub started: AtomicU32,
    /// Bumped by every fork and every nudge (the futex the helper sleeps on).
    pub kick: AtomicU32,
    /// 1 while the helper sleeps on `kick` until the next fork ([`Doorbell::sleep`]); only
    /// then does a ring make the wake-up system call. Otherwise the helper is working, or
    /// resting for a set time after which it reads `kick` anyway, and a program that forks in
    /// a loop makes no system call for it.
    pub asleep: AtomicU32,
    /// 1 when the small heap's pages were turned into THP and the helper is to collapse them,
    /// started if it is not running: taken by `collapser::start_if_promoted` at the next point
    /// where no allocator lock is held and no thread heap is midway through a change.
    pub promoted: AtomicU32,
    /// 1 while the sweep asked for by a promotion is under way: the helper does it without its
    /// CPU budget's rests (at most `HUGEHEAP_HUGE_FROM` of memory, collapsed once), so that a
    /// program forking soon after building its heap finds it whole.
    pub urgent: AtomicU32,
    /// Whether this process has forked or is a forked child: from then on another process may
    /// share its pages, and only the helper, which asks the pagemap first, collapses them.
    pub forked: AtomicBool,
}

impl Doorbell {
    /// A doorbell with no helper, no work and no fork.
    pub const fn new() -> Self {
        Self {
            started: AtomicU32::new(0),
            kick: AtomicU32::new(0),
            asleep: AtomicU32::new(0),
            promoted: AtomicU32::new(0),
            urgent: AtomicU32::new(0),
            forked: AtomicBool::new(false),
        }
    }

    /// The small heap's pages were turned into THP (under the page heap's lock): wakes the
    /// helper if it runs, else leaves word for the allocating thread to start it once its
    /// locks are released.
    pub fn promoted(&self) {
        self.urgent.store(1, Ordering::Relaxed);
        if self.started.load(Ordering::Relaxed) != 0 {
            self.ring();
        } else {
            self.promoted.store(1, Ordering::Relaxed);
        }
    }

    /// Bumps the word, and wakes the helper if it sleeps on it.
    pub fn ring(&self) {
        // SeqCst, as in `sleep`: either this load sees the helper's mark, or the helper's
        // futex wait sees the bumped word and does not sleep.
        self.kick.fetch_add(1, Ordering::SeqCst);
        if self.asleep.load(Ordering::SeqCst) != 0 {
            thread::wake(&self.kick);
        }
    }

    /// In the helper: sleeps until `kick` moves from `seen` (a ring), or `timeout_ms` passes.
    pub fn sleep(&self, seen: u32, timeout_ms: u32) {
        self.asleep.store(1, Ordering::SeqCst);
        if self.kick.load(Ordering::SeqCst) == seen {
            thread::wait(&self.kick, seen, timeout_ms);
        }
        self.asleep.store(0, Ordering::Relaxed);
    }
}

impl Default for Doorbell {
    fn default() -> Self {
        Self::new()
    }
}
