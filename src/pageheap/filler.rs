//! The filler: packs runs of 64 KiB pages into partly used huge pages, as tightly as possible
//! (Temeraire's HugePageFiller). Each huge page in the filler has a 32-bit map of used pages;
//! huge pages are kept in lists by the longest free run they still have, and a request takes
//! the huge page with the *smallest* run that fits (best fit), so the fullest huge pages fill
//! up first and the emptiest drain to become wholly free: only whole huge pages ever go back
//! to the OS.
//!
//! Invariants (checked by `check`):
//! - a huge page is in list `k` (1..=31) iff it is in the filler and its longest free run is
//!   `k`; a full huge page (run 0) is in no list; a wholly free one has left the filler;
//! - bit `k` of `nonempty` is set iff list `k` is not empty.

use crate::units::PAGES_PER_HUGE;

/// No huge page (list terminator).
pub const NONE: u32 = u32::MAX;

/// How many huge pages [`Filler::free_prefixes`] looks at, at most.
pub const PREFIX_LOOK: usize = 256;

/// What the filler keeps per huge page (a view into the page heap's descriptor).
pub trait FillerSlot {
    /// Bit `i` set: page `i` is in use.
    fn used(&self) -> u32;
    /// Sets the used map.
    fn set_used(&mut self, v: u32);
    /// The list links and the list the huge page is in (0: none).
    fn links(&mut self) -> (&mut u32, &mut u32, &mut u8);
}

/// The longest run of zero bits in `used`.
pub fn longest_free_run(used: u32) -> u32 {
    let mut free = !used;
    let mut best = 0;
    while free != 0 {
        let start = free.trailing_zeros();
        let run = (!(free >> start)).trailing_zeros().min(32 - start);
        best = best.max(run);
        if start + run >= 32 {
            break;
        }
        free &= !((((1u64 << run) - 1) as u32) << start);
    }
    best
}

/// The first run of `n` free pages in `used` whose start is a multiple of `align`.
pub fn find_run(used: u32, n: u32, align: u32) -> Option<u32> {
    let want = if n >= 32 { u32::MAX } else { (1u32 << n) - 1 };
    let mut start = 0;
    while start + n <= PAGES_PER_HUGE as u32 {
        if (used >> start) & want == 0 {
            return Some(start);
        }
        start += align.max(1);
    }
    None
}

/// The mask of pages `[start, start + n)`.
pub fn run_mask(start: u32, n: u32) -> u32 {
    let bits = if n >= 32 { u32::MAX } else { (1u32 << n) - 1 };
    bits << start
}

/// The filler's lists, over descriptor storage `S` indexed by huge page.
pub struct Filler {
    heads: [u32; PAGES_PER_HUGE],
    nonempty: u32,
}

impl Default for Filler {
    fn default() -> Self {
        Self::new()
    }
}

impl Filler {
    /// An empty filler.
    pub const fn new() -> Self {
        Filler { heads: [NONE; PAGES_PER_HUGE], nonempty: 0 }
    }

    /// Puts huge page `hp` (whose used map is set) into the list its longest run says.
    pub fn insert<S: FillerSlot>(&mut self, slots: &mut [S], hp: u32) {
        let run = longest_free_run(slots[hp as usize].used());
        if run == 0 || run as usize >= PAGES_PER_HUGE {
            *slots[hp as usize].links().2 = 0;
            return;
        }
        let head = self.heads[run as usize];
        {
            let (next, prev, list) = slots[hp as usize].links();
            *next = head;
            *prev = NONE;
            *list = run as u8;
        }
        if head != NONE {
            *slots[head as usize].links().1 = hp;
        }
        self.heads[run as usize] = hp;
        self.nonempty |= 1 << run;
    }

    /// Takes `hp` out of whatever list it is in.
    pub fn remove<S: FillerSlot>(&mut self, slots: &mut [S], hp: u32) {
        let (next, prev, list) = {
            let (n, p, l) = slots[hp as usize].links();
            let r = (*n, *p, *l);
            *n = NONE;
            *p = NONE;
            *l = 0;
            r
        };
        if list == 0 {
            return;
        }
        if prev != NONE {
            *slots[prev as usize].links().0 = next;
        } else {
            self.heads[list as usize] = next;
            if next == NONE {
                self.nonempty &= !(1 << list);
            }
        }
        if next != NONE {
            *slots[next as usize].links().1 = prev;
        }
    }

    /// Finds room for `n` pages (1..=31) aligned to `align` pages in a huge page already in the
    /// filler, best fit first. Marks them used and returns `(huge page, first page)`.
    pub fn alloc<S: FillerSlot>(&mut self, slots: &mut [S], n: u32, align: u32) -> Option<(u32, u32)> {
        let mut lists = self.nonempty & !((1u32 << n) - 1);
        while lists != 0 {
            let run = lists.trailing_zeros();
            lists &= lists - 1;
            let mut hp = self.heads[run as usize];
            while hp != NONE {
                let used = slots[hp as usize].used();
                if let Some(start) = find_run(used, n, align) {
                    self.remove(slots, hp);
                    slots[hp as usize].set_used(used | run_mask(start, n));
                    self.insert(slots, hp);
                    return Some((hp, start));
                }
                hp = *slots[hp as usize].links().0;
            }
        }
        None
    }

    /// Huge pages in the filler whose first `n` pages (1..=31) are free, into `out`: where
    /// the tail of a large span can go when the free huge pages right before one hold its
    /// whole ones. Looks at no more than [`PREFIX_LOOK`] huge pages; returns how many it found.
    pub fn free_prefixes<S: FillerSlot>(&self, slots: &mut [S], n: u32, out: &mut [u32]) -> usize {
        debug_assert!((1..PAGES_PER_HUGE as u32).contains(&n));
        let (mut found, mut looked) = (0, 0);
        let mut lists = self.nonempty & !((1u32 << n) - 1);
        while lists != 0 && found < out.len() {
            let run = lists.trailing_zeros();
            lists &= lists - 1;
            let mut hp = self.heads[run as usize];
            while hp != NONE && found < out.len() && looked < PREFIX_LOOK {
                looked += 1;
                if slots[hp as usize].used() & run_mask(0, n) == 0 {
                    out[found] = hp;
                    found += 1;
                }
                hp = *slots[hp as usize].links().0;
            }
        }
        found
    }

    /// Marks pages `[start, start + n)` of `hp` free. Returns true when the huge page became
    /// wholly free: it has then left the filler, and the caller owns it again.
    pub fn free<S: FillerSlot>(&mut self, slots: &mut [S], hp: u32, start: u32, n: u32) -> bool {
        self.remove(slots, hp);
        let used = slots[hp as usize].used() & !run_mask(start, n);
        slots[hp as usize].set_used(used);
        if used == 0 {
            return true;
        }
        self.insert(slots, hp);
        false
    }

    /// Checks the invariants in the module doc over huge pages `0..count`; panics on a breach.
    #[cfg(any(test, feature = "check"))]
    pub fn check<S: FillerSlot>(&self, slots: &mut [S], in_filler: impl Fn(usize, &S) -> bool) {
        for run in 1..PAGES_PER_HUGE {
            let mut hp = self.heads[run];
            assert_eq!(hp != NONE, self.nonempty >> run & 1 == 1, "nonempty bit of list {run}");
            let mut prev = NONE;
            while hp != NONE {
                let used = slots[hp as usize].used();
                assert_eq!(longest_free_run(used), run as u32, "huge page {hp} in list {run}");
                assert!(in_filler(hp as usize, &slots[hp as usize]));
                let (next, p, list) = slots[hp as usize].links();
                assert_eq!((*p, *list as usize), (prev, run));
                prev = hp;
                hp = *next;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::pageheap::desc::HpDesc;

    fn slot(used: u32) -> HpDesc {
        HpDesc { used, next: NONE, prev: NONE, ..HpDesc::default() }
    }

    #[test]
    fn runs() {
        assert_eq!(longest_free_run(0), 32);
        assert_eq!(longest_free_run(u32::MAX), 0);
        assert_eq!(longest_free_run(0b1), 31);
        assert_eq!(longest_free_run(0x8000_0001), 30);
        assert_eq!(longest_free_run(0b1011_0001), 24);
        assert_eq!(find_run(0b0111, 2, 1), Some(3));
        assert_eq!(find_run(0b0111, 2, 2), Some(4));
        assert_eq!(find_run(u32::MAX >> 1, 1, 1), Some(31));
        assert_eq!(find_run(u32::MAX >> 1, 2, 1), None);
        assert_eq!(run_mask(30, 2), 0xC000_0000);
        assert_eq!(run_mask(0, 32), u32::MAX);
    }

    #[test]
    fn free_prefixes_are_the_huge_pages_whose_first_pages_are_free() {
        // 0: pages 0-7 free; 1: page 0 used; 2: pages 0-3 free; 3: full.
        let mut slots = vec![slot(0xFFFF_FF00), slot(0x0000_0001), slot(0xFFFF_FFF0), slot(u32::MAX)];
        let mut f = Filler::new();
        for hp in 0..4 {
            f.insert(&mut slots, hp);
        }
        let mut out = [NONE; 4];
        let n = f.free_prefixes(&mut slots, 4, &mut out);
        let mut got = out[..n].to_vec();
        got.sort_unstable();
        assert_eq!(got, [0, 2]);
        assert_eq!(f.free_prefixes(&mut slots, 5, &mut out), 1);
        assert_eq!(out[0], 0);
        assert_eq!(f.free_prefixes(&mut slots, 9, &mut out), 0);
        // It stops when `out` is full.
        assert_eq!(f.free_prefixes(&mut slots, 1, &mut out[..1]), 1);
    }

    #[test]
    fn best_fit_prefers_fullest_huge_page() {
        // Huge page 0 has 16 free pages, 1 has 4, 2 has 8.
        let mut slots = vec![slot(0x0000_FFFF), slot(0x0FFF_FFFF), slot(0x00FF_FFFF), slot(0)];
        let mut f = Filler::new();
        for hp in 0..3 {
            f.insert(&mut slots, hp);
        }
        f.check(&mut slots, |i, _| i < 3);
        assert_eq!(f.alloc(&mut slots, 3, 1), Some((1, 28)));
        assert_eq!(f.alloc(&mut slots, 3, 1), Some((2, 24)));
        assert_eq!(f.alloc(&mut slots, 9, 1), Some((0, 16)));
        assert_eq!(f.alloc(&mut slots, 8, 1), None);
        f.check(&mut slots, |i, _| i < 3);
        // Freeing everything in a huge page hands it back.
        assert!(!f.free(&mut slots, 1, 28, 2));
        assert!(f.free(&mut slots, 1, 0, 32));
        f.check(&mut slots, |i, _| i == 0 || i == 2);
    }
}
