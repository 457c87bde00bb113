//! The small phase joins the 2 MiB pool. A heap that outgrows `HUGEHEAP_HUGE_FROM` and whose
//! next pieces come from the 2 MiB hugetlb pool would otherwise keep its first part in THP (or
//! in 4 KiB pages where THP is off): each THP huge page costs every fork a page-table page
//! (the kernel deposits one per huge page, and hugetlb pages need none), about 1 µs each here,
//! so a 32 MiB small phase made a 64 MiB heap's fork 15 µs slower than the same heap all in the
//! pool. So, when the calling thread is the process's only one and the pool can take them
//! under the copy-on-write room, the small phase's pages are copied into 2 MiB hugetlb pages
//! that replace them in one step (`mremap`): the free ones are not copied, and read as zero.
//! A process with other threads keeps the THP path (another thread could touch the memory
//! between the copy and the move).

use super::PageHeap;
use super::backing::Backing;
use super::desc::FREE;
use crate::pagekind::PageKind;
use crate::units::HUGE_SIZE;

impl<B: Backing> PageHeap<B> {
    /// After a growth that passed the small phase's `n` huge pages (`advised`: they are THP
    /// pages now, else 4 KiB ones): moves them into the 2 MiB pool if the growth took pages
    /// from it and it can take these too (see the module doc). True if they were moved.
    pub(super) fn small_to_pool(&mut self, n: usize, advised: bool) -> bool {
        let ladder = &self.arena.ladder;
        if n == 0
            || ladder.kinds[PageKind::Mib2 as usize].bytes == 0
            || !ladder.pool_takes(&self.backing, PageKind::Mib2, n)
        {
            return false;
        }
        let descs = self.tables.descs();
        let keep = |i: usize| descs[i].state != FREE;
        // SAFETY: [0, n) is the small phase: committed anonymous memory of the arena, 2 MiB
        // aligned; the page heap's lock is held, so no code of hugeheap's touches it meanwhile,
        // and free huge pages (not kept) hold nothing of the program's.
        if !unsafe { self.backing.move_to_hugetlb(self.arena.addr(0), n * HUGE_SIZE, &keep) } {
            return false;
        }
        let descs = self.tables.descs();
        // The only thread: no helper was looking at any of them.
        debug_assert!(descs[..n].iter().all(|d| d.is_anon() && !d.lent));
        for d in &mut descs[..n] {
            // Anonymous no more: out of the residency counts.
            if d.dirty != 0 {
                self.res.resident -= 1;
                self.res.free_resident -= usize::from(d.state == FREE);
            }
            if d.state == FREE {
                if d.released {
                    d.released = false;
                    self.counters.released_now -= HUGE_SIZE;
                } else {
                    self.res.free_anon_backed -= 1;
                }
                // Not copied: fresh pool pages, which read as zero.
                d.dirty = 0;
                d.zero = false;
            }
            d.kind = PageKind::Mib2 as u8;
        }
        // A THP piece right after the small phase shared its mapping; it has one of its own
        // now.
        if n < self.arena.frontier && descs[n].is_anon() {
            self.arena.mappings += 1;
        }
        let from = if advised { PageKind::Thp } else { PageKind::Small };
        self.arena.ladder.moved_into(from, PageKind::Mib2, n);
        true
    }
}
