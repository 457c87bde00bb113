//! The page heap's per-huge-page tables, under one owner: the descriptors ([`HpDesc`], one per
//! huge page of the arena) and the words of the free-huge-page map ([`HugeMap`]), both in the
//! metadata mapping. Every borrow of them is tied to the owner, so the borrow checker sees
//! each use: one `&mut` at a time, or both tables at once through [`Tables::both`].

use super::desc::HpDesc;
use super::hugemap::HugeMap;
use core::ptr::NonNull;

/// The descriptor table and the free map's words.
pub struct Tables {
    descs: NonNull<HpDesc>,
    len: usize,
    words: NonNull<u64>,
    nwords: usize,
}

// SAFETY: a `Tables` is the only access to the memory it points to (see `new`), so moving it
// to another thread moves that sole access with it.
unsafe impl Send for Tables {}

impl Tables {
    /// Takes ownership of `len` descriptors at `descs` and `nwords` words at `words`.
    ///
    /// # Safety
    /// Both ranges must be valid for reads and writes, aligned for their types, initialised
    /// (all-zero bytes are valid for both), disjoint, and stay mapped while the value lives;
    /// nothing else may read or write them meanwhile.
    pub unsafe fn new(descs: NonNull<HpDesc>, len: usize, words: NonNull<u64>, nwords: usize) -> Tables {
        debug_assert!(descs.as_ptr().is_aligned() && words.as_ptr().is_aligned());
        debug_assert!({
            let (d0, d1) = (descs.as_ptr() as usize, descs.as_ptr() as usize + len * size_of::<HpDesc>());
            let (w0, w1) = (words.as_ptr() as usize, words.as_ptr() as usize + nwords * 8);
            d1 <= w0 || w1 <= d0
        });
        Tables { descs, len, words, nwords }
    }

    /// The descriptors, one per huge page of the arena.
    #[inline]
    pub fn descs(&mut self) -> &mut [HpDesc] {
        // SAFETY: `new`'s contract: `len` valid descriptors that only this value reaches; the
        // slice borrows `self` mutably, so no other borrow of them is live.
        unsafe { core::slice::from_raw_parts_mut(self.descs.as_ptr(), self.len) }
    }

    /// The free-huge-page map.
    #[inline]
    pub fn map(&mut self) -> HugeMap<'_> {
        // SAFETY: `new`'s contract: `nwords` valid words that only this value reaches; the
        // map borrows `self` mutably, so no other borrow of them is live.
        HugeMap::new(unsafe { core::slice::from_raw_parts_mut(self.words.as_ptr(), self.nwords) })
    }

    /// Both at once (disjoint memory, `new`'s contract).
    #[inline]
    pub fn both(&mut self) -> (&mut [HpDesc], HugeMap<'_>) {
        // SAFETY: `new`'s contract: the two ranges are disjoint and only this value reaches
        // them; both borrows hold `self` mutably.
        unsafe {
            (
                core::slice::from_raw_parts_mut(self.descs.as_ptr(), self.len),
                HugeMap::new(core::slice::from_raw_parts_mut(self.words.as_ptr(), self.nwords)),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::HugePage;

    #[test]
    fn both_tables_lend_the_same_memory_as_each_alone() {
        let mut descs: [HpDesc; 3] = Default::default();
        let mut words = [0u64; 1];
        {
            // SAFETY: two local arrays, disjoint, initialised, outliving `t` (this block), and
            // reached only through it meanwhile.
            let mut t =
                unsafe { Tables::new(NonNull::from(&mut descs).cast(), 3, NonNull::from(&mut words).cast(), 1) };
            t.descs()[2].used = 7;
            t.map().set_range(HugePage(1), HugePage(2), true);
            let (d, m) = t.both();
            assert_eq!(d[2].used, 7);
            assert!(m.is_free(1) && m.is_free(2) && !m.is_free(0));
            d[0].dirty = 1;
            assert_eq!(t.descs()[0].dirty, 1);
        }
        assert_eq!(words[0], 0b110);
        assert_eq!(descs[2].used, 7);
    }
}
