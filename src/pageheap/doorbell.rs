//! The re-collapse helper's doorbell: the futex word it sleeps on, whether it runs, and
//! whether the process has forked. The page heap rings it when it has new work (`promoted`);
//! the helper's own file (`collapser`) starts the helper and waits on the word. Kept apart
//! from both so that the page heap does not depend on the helper that depends on it. The
//! process's doorbell ([`super::fork_pages::bell`]) lives on the page that fork does not copy
//! ([`super::fork_pages`]): the fork handlers ring it without a page fault, and a child starts
//! with a zeroed one (no helper).

use crate::os::thread;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

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
    /// 1 when the page heap wants free pages populated ahead (`prefault`) and the helper is
    /// not running: taken, like `promoted`, by `collapser::start_if_promoted`, which starts it.
    pub populate: AtomicU32,
    /// The next 2 MiB of memory outside the page heap to populate ahead (the mapping zone's
    /// next chunk; `collapser::populate_later`), 0 for none.
    pub other: AtomicUsize,
    /// The bytes the owner of `other` holds with it (for a memory cgroup's room).
    pub other_held: AtomicUsize,
    /// 1 while the sweep asked for by a promotion is under way: the helper does it without its
    /// CPU budget's rests (at most `HUGEHEAP_HUGE_FROM` of memory, collapsed once), so that a
    /// program forking soon after building its heap finds it whole.
    pub urgent: AtomicU32,
    /// Whether this process has forked or is a forked child: from then on another process may
    /// share its pages: only the helper, which asks the pagemap first, collapses them, and the
    /// page heap moves no held memory (`relocate`).
    pub forked: AtomicBool,
    /// The helper's word that THP does not keep up ([`super::keepup`]): 0 none, 1 to say,
    /// [`Doorbell::SAID`] once said. With it, the sweep's figures and the THP heap's size.
    pub advised: AtomicU32,
    /// Pages the sweep that completed the streak found split, and looked at.
    pub advice_pages: [AtomicU32; 2],
    /// The THP heap's size then, MiB.
    pub advice_mib: AtomicU32,
}

impl Doorbell {
    /// A doorbell with no helper, no work and no fork.
    pub const fn new() -> Self {
        Self {
            started: AtomicU32::new(0),
            kick: AtomicU32::new(0),
            asleep: AtomicU32::new(0),
            promoted: AtomicU32::new(0),
            populate: AtomicU32::new(0),
            other: AtomicUsize::new(0),
            other_held: AtomicUsize::new(0),
            urgent: AtomicU32::new(0),
            forked: AtomicBool::new(false),
            advised: AtomicU32::new(0),
            advice_pages: [AtomicU32::new(0), AtomicU32::new(0)],
            advice_mib: AtomicU32::new(0),
        }
    }

    /// `advised` once the word was said.
    pub const SAID: u32 = 2;

    /// In the helper: leaves word that THP does not keep up (a sweep found `split` of `looked`
    /// pages split; the THP heap is `heap` bytes), unless word was left before.
    pub fn advise(&self, split: usize, looked: usize, heap: usize) {
        let word = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        self.advice_pages[0].store(word(split), Ordering::Relaxed);
        self.advice_pages[1].store(word(looked), Ordering::Relaxed);
        self.advice_mib.store(word(heap.div_ceil(1 << 20)), Ordering::Relaxed);
        let _ = self.advised.compare_exchange(0, 1, Ordering::Release, Ordering::Relaxed);
    }

    /// The word left by [`advise`](Doorbell::advise), taken once: (split, looked at, THP heap
    /// bytes).
    pub fn advice(&self) -> Option<(usize, usize, usize)> {
        if self.advised.load(Ordering::Relaxed) != 1
            || self.advised.compare_exchange(1, Self::SAID, Ordering::Acquire, Ordering::Relaxed).is_err()
        {
            return None;
        }
        let get = |a: &AtomicU32| a.load(Ordering::Relaxed) as usize;
        Some((get(&self.advice_pages[0]), get(&self.advice_pages[1]), get(&self.advice_mib) << 20))
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

    /// The page heap took fresh or populated pages (under its lock) and wants the next ones
    /// populated: wakes the helper if it runs, else leaves word for the allocating thread to
    /// start it once its locks are released.
    pub fn populate(&self) {
        if self.started.load(Ordering::Relaxed) != 0 {
            self.ring();
        } else {
            self.populate.store(1, Ordering::Relaxed);
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
