//! Populating ahead. A fresh THP huge page costs its first toucher a 2 MiB fault: the kernel
//! clears the page (about 0.4 ms here), and where the machine's memory was given back to a
//! hypervisor (a balloon with free page reporting), the host backs it first (7-8 ms here). A
//! program growing its heap pays that on its own thread, page after page. So while a process
//! that has never forked grows its THP heap, the helper thread ([`super::collapser`]) faults
//! in the next free huge pages before the program reaches them (`MADV_POPULATE_WRITE`, which
//! leaves a page already in memory as it is), on another CPU where there is one.
//!
//! - The page heap asks for it when it takes a fresh or populated huge page on its own
//!   ([`PageHeap::claim`]): a heap growing page by page (small spans, filled as the program
//!   fills them) is one whose next pages the helper can foresee; a large span of several is
//!   written by its owner at once, and the runs that come next are of any length. And only
//!   once it holds [`FROM`] huge pages or more, past the small phase, with THP,
//!   before any fork. A smaller heap's faults cost little, and a program that stays small
//!   gets no thread (some system calls refuse a multi-threaded process: `unshare` of a user
//!   namespace, as `unshare(1)` makes; `HUGEHEAP_COLLAPSE=0` for a large program that needs
//!   them). After a fork, a child sharing the heap would
//!   make the populating compete with copy-on-write, and each fork would wait for the memory-
//!   map lock a fault in progress holds.
//! - Only while the heap grows to a new peak (in use within [`AHEAD`] huge pages of the most
//!   ever in use): a heap that frees and takes back below its peak takes held pages, or
//!   exchanges them for fresh ones near its resident limit, and a page populated there would
//!   be given back unused.
//! - In a memory cgroup whose limit caps the heap, only within half the room it leaves: a
//!   page populated is charged at once, and near the limit the kernel's OOM killer, not a
//!   clean NULL, answers the charge (the cgroup's other memory may have taken the room meanwhile).
//! - At most [`AHEAD`] free huge pages are held populated and unused at once, and never past
//!   the resident limit ([`Residency::limit`](super::residency::Residency)): what a heap that
//!   stops growing holds in excess is that, within `HUGEHEAP_RETAIN`.
//! - The pages chosen are the lowest free ones that hold nothing: the ones the page heap
//!   takes next. Each is lent to the helper while it works outside the lock (nothing
//!   releases, moves or lends it meanwhile); the page heap may still hand it out, and the
//!   program write it, since populating never changes what a page holds. Back under the lock,
//!   a page still free and empty is counted as held and marked `zero` (its spans are still
//!   known to be zero).
//! - Memory the program maps itself outside the page heap and that grows as a heap does (the
//!   entry layer's mapping zone: an interpreter's object memory) has its next 2 MiB chunk
//!   populated by the same helper under the same rules ([`PageHeap::populates_other`]), asked
//!   for through `collapser::populate_later` when it commits a chunk past its first [`FROM`].

use super::PageHeap;
use super::backing::Backing;
use super::desc::FREE;
use crate::units::HUGE_SIZE;

/// What became of a page the helper was asked to populate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Populated {
    /// In memory now (or was already).
    Yes,
    /// The memory could not be had this time.
    No,
    /// The kernel cannot populate (before Linux 5.14): no more populating ahead.
    Refused,
}

/// Huge pages the heap must hold before it populates ahead (32 MiB, as the small phase's
/// default end).
pub const FROM: usize = 16;

/// The bytes of `pages` huge pages.
fn bytes(pages: usize) -> usize {
    pages.saturating_mul(HUGE_SIZE)
}

/// Most free huge pages held populated ahead of use at once (4 MiB: what a heap that stops
/// growing holds beyond its need until the decay).
pub const AHEAD: usize = 2;

impl<B: Backing> PageHeap<B> {
    /// Whether the page heap should populate ahead now: it holds [`FROM`] huge pages, has
    /// left the small phase, and [`may_populate`](PageHeap::may_populate) its next
    /// [`AHEAD`] huge pages.
    pub(super) fn populates_ahead(&self) -> bool {
        self.res.resident >= FROM && !self.arena.in_small_phase() && self.may_populate(bytes(self.res.resident + AHEAD))
    }

    /// Whether the helper should populate 2 MiB of memory outside the page heap whose owner
    /// holds `held` bytes (see the module doc): the page heap's own rule
    /// ([`may_populate`](PageHeap::may_populate)), whatever the page heap holds, with the
    /// owner's memory counted against a memory cgroup's room.
    pub fn populates_other(&self, held: usize) -> bool {
        self.may_populate(bytes(self.res.resident + 1).saturating_add(held))
    }

    /// The rule every populating ahead follows: the OS did not refuse, no child may share the
    /// pages, and where a memory cgroup's limit caps the heap, `total` bytes (what would be
    /// charged with the populating done) stay within half the room it leaves.
    fn may_populate(&self, total: usize) -> bool {
        !self.ahead.off
            && !self.backing.may_share()
            && (!self.arena.cap_is_cgroup() || total <= bytes(self.arena.cap) / 2)
    }

    /// Takes back what became of 2 MiB outside the page heap the helper was to populate.
    pub fn other_done(&mut self, populated: Populated) {
        self.ahead.off |= populated == Populated::Refused;
        if populated == Populated::Yes {
            self.counters.prefaulted_total += HUGE_SIZE;
        }
    }

    /// The next free huge pages for the helper to populate (their addresses, at most
    /// `out.len()`), lent to it until [`prefault_done`](PageHeap::prefault_done); 0 when none
    /// is wanted now (and none will be until the page heap takes fresh or populated pages
    /// again).
    pub fn prefault_batch(&mut self, out: &mut [usize]) -> usize {
        if !self.ahead.wanted || !self.populates_ahead() {
            self.ahead.wanted = false;
            return 0;
        }
        let in_use = self.res.resident - self.res.free_resident;
        if in_use + AHEAD < self.res.in_use_peak {
            // Below its peak: not growing (see the module doc).
            self.ahead.wanted = false;
            return 0;
        }
        let room = AHEAD
            .saturating_sub(self.res.free_resident)
            .min(self.res.limit().saturating_sub(self.res.resident + 1))
            .min(out.len());
        let frontier = self.arena.frontier;
        let mut n = 0;
        let mut i = self.tables.map().next(0, frontier, true);
        while i < frontier && n < room {
            let d = &mut self.tables.descs()[i];
            debug_assert_eq!(d.state, FREE);
            if d.dirty == 0 && !d.lent && d.is_thp() {
                d.lent = true;
                out[n] = self.arena.addr(i);
                n += 1;
            }
            i = self.tables.map().next(i + 1, frontier, true);
        }
        self.ahead.wanted = n > 0;
        n
    }

    /// Takes back a batch from [`prefault_batch`](PageHeap::prefault_batch) (its addresses),
    /// with what became of each page; a refusal ends populating ahead for good.
    pub fn prefault_done(&mut self, batch: &[usize], populated: &[Populated]) {
        debug_assert_eq!(batch.len(), populated.len());
        let now = self.backing.now_ms();
        for (&a, &p) in batch.iter().zip(populated) {
            let i = self.hp_index(a);
            let d = &mut self.tables.descs()[i];
            debug_assert!(d.lent);
            d.lent = false;
            self.ahead.off |= p == Populated::Refused;
            // Handed out meanwhile, or holding memory by other means: counted there.
            if p != Populated::Yes || d.state != FREE || d.dirty != 0 || !d.is_thp() {
                continue;
            }
            d.zero = true;
            d.freed_at = now;
            self.hold_free(i);
            self.counters.prefaulted_total += HUGE_SIZE;
        }
    }
}
