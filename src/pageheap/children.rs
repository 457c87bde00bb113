//! Forked children and copy-on-write with hugetlb pages (see `family` for why): before fork,
//! the parent decides whether the pools can cover the hugetlb pages the child will share,
//! besides the family's other live children, and reserves the child's promise if so; right
//! after fork, the child takes its promise, or moves its hugetlb memory out of the pools
//! before it runs any of the program's code, into THP memory with the same contents, and then
//! needs nothing from the pools.

use super::PageHeap;
use super::backing::Backing;
use super::desc::FREE;
use super::family::Decision;
use crate::os::StackWriter;
use crate::pagekind::PageKind;
use crate::units::{Bytes, HUGE_PER_GIB, HUGE_SIZE};
use core::fmt::Write;

impl<B: Backing> PageHeap<B> {
    /// Hugetlb pages held, per kind (2 MiB, 1 GiB).
    fn hugetlb_held(&self) -> [usize; 2] {
        [PageKind::Mib2, PageKind::Gib1].map(|k| self.arena.ladder.kinds[k as usize].bytes / k.page_size())
    }

    /// Bytes of the heap in hugetlb pages, of either kind.
    pub(super) fn hugetlb_bytes(&self) -> usize {
        [PageKind::Mib2, PageKind::Gib1].iter().map(|&k| self.arena.ladder.kinds[k as usize].bytes).sum()
    }

    /// What the hugetlb pools of the kinds the heap holds (`held`) could give now, per kind
    /// (2 MiB, 1 GiB); `None` for a kind it holds none of, whose pool no decision reads.
    fn pools_available(&self, held: [usize; 2]) -> [Option<usize>; 2] {
        let kinds = [PageKind::Mib2, PageKind::Gib1];
        [0, 1].map(|i| if held[i] == 0 { None } else { self.backing.pool_available_at_fork(kinds[i]) })
    }

    /// Before fork, in the parent (the page heap's lock held): decides for the child to be
    /// (see the module doc). Costs nothing for a process without hugetlb pages, and nothing is
    /// decided under `HUGEHEAP_COW_RESERVE=0`, which says that children exec at once.
    pub fn before_fork(&mut self) {
        let held = if self.arena.ladder.cow_reserve() == 0 { [0, 0] } else { self.hugetlb_held() };
        let available = if held == [0, 0] { [None, None] } else { self.pools_available(held) };
        let now = self.backing.now_ms();
        self.family.decide(held, available, now);
    }

    /// Whether a fork now has nothing to decide for its child ([`before_fork`] would write
    /// nothing): no hugetlb page held under a copy-on-write reserve, and no decision left from
    /// an earlier fork.
    ///
    /// [`before_fork`]: PageHeap::before_fork
    pub fn forks_quietly(&self) -> bool {
        self.family.decision == Decision::Nothing
            && (self.arena.ladder.cow_reserve() == 0 || self.hugetlb_held() == [0, 0])
    }

    /// After fork, in the parent (the page heap's lock held): waits for a child that must move
    /// out of the pools to have done so (see `family`).
    pub fn after_fork_in_parent(&mut self) {
        let bytes = self.hugetlb_bytes();
        let backing = &self.backing;
        self.family.wait_for_move(bytes, || backing.now_ms());
    }

    /// In a child right after fork (the page heap's lock held, the only thread): takes back
    /// the pages lent to the parent's helper, and takes the promise its parent reserved, or
    /// moves its hugetlb memory out of the pools.
    pub fn after_fork_in_child(&mut self) {
        // The parent's helper is not here: what was lent to it is this heap's again (written
        // only where set, so that the child copies no descriptor page for nothing).
        let frontier = self.arena.frontier;
        self.tables.descs()[..frontier].iter_mut().filter(|d| d.lent).for_each(|d| d.lent = false);
        self.recollapse.forget_batches_out();
        let held = self.hugetlb_held();
        let now = self.backing.now_ms();
        let backing = &self.backing;
        let available = || [PageKind::Mib2, PageKind::Gib1].map(|k| backing.pool_available_at_fork(k));
        if self.family.take(held, now, available) {
            return;
        }
        let moved = self.move_out_of_pools();
        self.family.moved();
        self.counters.moved_out += moved;
        if self.arena.ladder.verbose() {
            let mut w = StackWriter::<300>::new();
            let _ = writeln!(
                w,
                "hugeheap: forked child moved {} of heap out of the hugetlb pools (the pools cannot cover \
                 copy-on-write for one more child that writes); see docs/tuning.md",
                Bytes(moved)
            );
            w.flush_stderr();
        }
    }

    /// Replaces every hugetlb part of the arena with THP memory holding the same contents
    /// (free huge pages are not copied: they come back released). Returns the bytes moved.
    fn move_out_of_pools(&mut self) -> usize {
        let frontier = self.arena.frontier;
        let mut moved = 0;
        let mut hp = 0;
        while hp < frontier {
            let kind = PageKind::ALL[self.tables.descs()[hp].kind as usize];
            if !kind.is_hugetlb() {
                hp += 1;
                continue;
            }
            // A run of one hugetlb kind; 1 GiB pages go whole.
            let step = if kind == PageKind::Gib1 { HUGE_PER_GIB } else { 1 };
            let mut end = hp + step;
            while end + step <= frontier && self.tables.descs()[end].kind == kind as u8 {
                end += step;
            }
            let descs = self.tables.descs();
            let keep = |i: usize| descs[hp + i].state != FREE;
            // SAFETY: [hp, end) is a run of whole hugetlb pieces of the committed arena; the
            // lock is held and this is the child's only thread.
            if !unsafe { self.backing.move_to_anon(self.arena.addr(hp), (end - hp) * HUGE_SIZE, &keep) } {
                return moved;
            }
            let descs = self.tables.descs();
            for d in &mut descs[hp..end] {
                d.kind = PageKind::Thp as u8;
                if d.state != FREE {
                    // Anonymous memory now, holding the contents.
                    self.res.resident += 1;
                    self.res.in_use_peak = self.res.in_use_peak.max(self.res.resident - self.res.free_resident);
                } else {
                    // Not copied: the new memory is untouched, as released memory is.
                    d.released = true;
                    d.dirty = 0;
                    self.counters.released_now += HUGE_SIZE;
                }
            }
            let bytes = (end - hp) * HUGE_SIZE;
            self.arena.ladder.kinds[kind as usize].bytes -= bytes;
            self.arena.ladder.kinds[PageKind::Thp as usize].bytes += bytes;
            moved += bytes;
            hp = end;
        }
        moved
    }
}
