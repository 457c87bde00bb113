//! Copy-on-write room for forked children that keep hugetlb pages. A private hugetlb page a
//! forked child shares needs a fresh pool page when either side writes it; when the pool has
//! none, the kernel kills the child with SIGBUS (or takes the page away from it when the parent
//! writes). The copy-on-write reserve (`HUGEHEAP_COW_RESERVE`) keeps room for the parent and one
//! child; this is the rest: any number of children, whatever the pool.
//!
//! The processes of a family (the first to take hugetlb pages, and every process forked from
//! it) share a table of promises, the page of a family file ([`LockFile`]). Before each fork,
//! the parent decides for the child: if the pools can cover the hugetlb pages the child will
//! share, besides what the family's live children have been promised, the child is *promised*
//! them (a slot of the table is reserved for it); else the child will move its hugetlb memory
//! out of the pools, copying it into THP memory, before it runs any of the program's code (the
//! cost a writing child would pay anyway, in memory and copies; a reading child pays it too,
//! which is why it is the fallback), and the parent waits for that. Right after fork, the
//! child takes its slot by locking the slot's byte of the family file: the kernel drops the
//! lock when the child exits or execs, so a later count sees only children that still share
//! pages. A slot reserved for a child that never took it (killed before it ran) is freed after
//! a while; a child that finds its slot gone decides again.
//!
//! Trust. A forked child may run other code than its parent (it drops privileges and handles
//! untrusted input: sshd, Postfix, Apache prefork) and can write anything into the table. So
//! the table holds only numbers, read as numbers: no lock, no pointer, no structure a library
//! interprets; every slot index comes from this process's own loops and from its decisions,
//! kept in its private memory; whether a relative still lives is the kernel's answer (its
//! lock), never a word it writes; the one wait, for a child that moves out, has a deadline.
//! What the parent promised its own children it keeps privately, and counts from there. A
//! process that scribbles on the table can make its relatives count more promises than there
//! are (they move children out of the pools when they need not) or fewer (they count on pool
//! pages already promised: the SIGBUS the table is there to prevent, which any process can
//! cause anyway by mapping the pool's free pages; docs/design.md, threat model), nothing more.

use crate::os::lockfile::{self, Checked, Hold, LockFile};
use crate::os::thread;
use core::sync::atomic::{AtomicU32, Ordering};

/// Promises the table holds.
const SLOTS: usize = 64;

/// How long a slot reserved for a child stays reserved without the child taking it, ms.
const RESERVED_MS: u32 = 10_000;

/// How long the parent waits for a child that must move out of the pools to start (lock its
/// slot), ms; past it the child is taken for dead (a busy machine may take a while to run a
/// new process at all).
const START_MS: u32 = 5_000;

/// How long the parent waits for the move at most, ms: this, plus [`MOVE_MS_PER_GIB`] for
/// each GiB of hugetlb memory the child copies (copying runs at GiB/s; this allows a
/// hundredth of that, for a machine whose cores are all busy). Past it the parent goes on, as
/// if the child were gone: a child that holds its lock and never finishes delays its parent's
/// `fork()` by this much, not for ever.
const MOVE_MS: u32 = 10_000;
/// See [`MOVE_MS`].
const MOVE_MS_PER_GIB: u32 = 10_000;

// A slot's state, in the low two bits of its word; the rest is its generation, bumped by each
// reservation, so that a decision names one reservation of one slot.
/// A slot is free.
const FREE: u32 = 0;
/// Reserved by a parent for the child it is forking.
const RESERVED: u32 = 1;
/// Held by a child (the child holds the lock on the slot's byte).
const HELD: u32 = 2;
/// Reserved for a child that moves out of the pools (which holds the lock while it moves).
const MOVING: u32 = 3;

const fn word(state: u32, generation: u32) -> u32 {
    generation << 2 | state
}

const fn state(word: u32) -> u32 {
    word & 3
}

const fn generation(word: u32) -> u32 {
    word >> 2
}

/// No slot: decided without the table.
const NO_SLOT: usize = usize::MAX;

/// One slot: its word (state and generation), when it was reserved (ms of the monotonic
/// clock, which every process of the machine shares) and the pages promised per hugetlb kind
/// (2 MiB, 1 GiB).
#[repr(C)]
struct Slot {
    word: AtomicU32,
    reserved_at: AtomicU32,
    pages: [AtomicU32; 2],
}

/// The family's table, in the shared page.
#[repr(C)]
struct Table {
    slots: [Slot; SLOTS],
}

const _: () = assert!(size_of::<Table>() <= lockfile::PAGE);

/// What the parent decided for the child it is forking (the child reads it from its copy of
/// the parent's memory, not from the table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The process holds no hugetlb page: nothing to do.
    Nothing,
    /// The child is promised its pages: slot and generation to take ([`NO_SLOT`]: decided
    /// without the table).
    Promised(usize, u32),
    /// The pools cannot cover the child: it moves out of them. The slot and generation it
    /// locks while it moves, and clears when done, which the parent waits for ([`NO_SLOT`]:
    /// none, the parent does not wait).
    MoveOut(usize, u32),
}

/// This process's view of its family's table, and what it keeps of it privately.
pub struct Family {
    file: Option<LockFile>,
    /// What this process promised its children, per slot: the reservation's generation (0:
    /// none) and the pages. A child cannot change what its parent counts for it.
    mine: [(u32, [u32; 2]); SLOTS],
    /// The promise this process holds as a child: its slot and pages.
    own: Option<(usize, [u32; 2])>,
    /// The decision for the child being forked (set before fork, read by the child).
    pub decision: Decision,
}

impl Family {
    /// No table yet (the process holds no hugetlb page).
    pub const fn none() -> Family {
        Family { file: None, mine: [(0, [0, 0]); SLOTS], own: None, decision: Decision::Nothing }
    }

    /// Makes the family's file and table, once (when the process first takes hugetlb pages).
    /// False if they cannot be had: each child then decides alone.
    pub fn ensure(&mut self) -> bool {
        if self.file.is_none() {
            self.file = LockFile::create(c"hugeheap-family");
        }
        self.file.is_some()
    }

    /// The table and the file's locks, while the file is still the family's (checked once
    /// per call: a caller that waits calls again).
    fn usable(&self) -> Option<(&Table, Checked<'_>)> {
        let f = self.file.as_ref()?.checked()?;
        // SAFETY: the page is mapped shared for the process's life, zero-initialised, and
        // large enough for the table (asserted above); a Table is atomics only, valid for any
        // bytes, and is only ever read and written through them.
        Some((unsafe { &*(f.page() as *const Table) }, f))
    }

    /// Pages of each hugetlb kind (2 MiB, 1 GiB) promised to the family's live children (and
    /// to children being forked), as of `now` (ms).
    pub fn promised(&self, now: u32) -> [usize; 2] {
        self.usable().map_or([0, 0], |(t, f)| self.live_promises(t, f, now))
    }

    /// Before fork, in the parent, which shares `held` pages of each hugetlb kind with the
    /// child to be: decides whether the child can be promised them, given what the pools
    /// could give now (`available`); reserves its slot if so.
    pub fn decide(&mut self, held: [usize; 2], available: [Option<usize>; 2], now: u32) {
        self.decision = if held == [0, 0] { Decision::Nothing } else { self.decide_held(held, available, now) };
    }

    fn decide_held(&mut self, held: [usize; 2], available: [Option<usize>; 2], now: u32) -> Decision {
        let alone = if covered(held, available, [0, 0]) {
            Decision::Promised(NO_SLOT, 0)
        } else {
            Decision::MoveOut(NO_SLOT, 0)
        };
        let Some((t, f)) = self.usable() else { return alone };
        let Some((i, g, room)) = self.reserve(t, f, held, available, now) else { return alone };
        if room {
            self.mine[i] = (g, held.map(clamp));
            return Decision::Promised(i, g);
        }
        // No room: the slot serves the move instead (counting nothing).
        t.slots[i].pages.iter().for_each(|p| p.store(0, Ordering::Relaxed));
        match t.slots[i].word.compare_exchange(word(RESERVED, g), word(MOVING, g), Ordering::AcqRel, Ordering::Relaxed)
        {
            Ok(_) => Decision::MoveOut(i, g),
            Err(_) => Decision::MoveOut(NO_SLOT, 0),
        }
    }

    /// In the child right after fork (its only thread): takes the promise the parent reserved.
    /// False if the child must move out of the pools (it was decided so, or its slot is gone
    /// and the pools cannot cover it now); then [`moved`](Family::moved) follows the move.
    pub fn take(&mut self, held: [usize; 2], now: u32, available: impl FnOnce() -> [Option<usize>; 2]) -> bool {
        // The parent's promises and its own are not this process's (record locks are not
        // inherited across fork).
        self.mine = [(0, [0, 0]); SLOTS];
        self.own = None;
        match self.decision {
            Decision::Nothing | Decision::Promised(NO_SLOT, _) => true,
            Decision::MoveOut(i, _) => {
                if let Some((_, f)) = self.usable().filter(|_| i < SLOTS) {
                    // Alive while it moves, for the parent that waits.
                    let _ = f.try_hold(i as u32);
                }
                false
            }
            Decision::Promised(i, g) => {
                let Some((t, f)) = self.usable() else { return true };
                let pages = held.map(clamp);
                if hold(t, f, i, word(RESERVED, g)) {
                    self.own = Some((i, pages));
                    return true;
                }
                // The reservation expired meanwhile, or another process holds the slot's lock:
                // decide again, for this process.
                let Some((j, g, room)) = self.reserve(t, f, held, available(), now) else { return false };
                if room && hold(t, f, j, word(RESERVED, g)) {
                    self.own = Some((j, pages));
                    return true;
                }
                free(&t.slots[j], word(RESERVED, g));
                false
            }
        }
    }

    /// In a child that moved out of the pools (or tried to): tells the waiting parent, and
    /// lets go of the slot.
    pub fn moved(&self) {
        let Decision::MoveOut(i, g) = self.decision else { return };
        let Some((t, f)) = self.usable().filter(|_| i < SLOTS) else { return };
        let s = &t.slots[i];
        // The lock first: once the slot is free it may be reserved for another child, whose
        // parent must not take this lock for that child's.
        f.release(i as u32);
        free(s, word(MOVING, g));
        thread::wake_shared(&s.word);
    }

    /// After fork, in the parent: if the child must move out of the pools, waits until it has,
    /// or has died, or the deadline for `bytes` of hugetlb memory has passed (`now`: the
    /// clock, ms): until then the child shares every hugetlb page, and a write by this process
    /// or another child would need one more copy from the pools than they were promised.
    pub fn wait_for_move(&self, bytes: usize, now: impl Fn() -> u32) {
        let Decision::MoveOut(i, g) = self.decision else { return };
        let Some((t, _)) = self.usable().filter(|_| i < SLOTS) else { return };
        let s = &t.slots[i];
        let gib = u32::try_from(bytes >> 30).unwrap_or(u32::MAX);
        let deadline = MOVE_MS.saturating_add(gib.saturating_mul(MOVE_MS_PER_GIB));
        let start = now();
        let mut started = false;
        loop {
            let w = s.word.load(Ordering::Acquire);
            if w != word(MOVING, g) {
                return; // moved (or the word was changed: nothing left to wait for)
            }
            let waited = now().wrapping_sub(start);
            // Checked again after each wait: the program may close the descriptor meanwhile.
            match self.usable().and_then(|(_, f)| f.held_by_another(i as u32)) {
                Some(true) => started = true,
                // Moved and gone, died, or (after a while) never started.
                Some(false) if started || waited > START_MS => break,
                Some(false) => {}
                None => break,
            }
            if waited > deadline {
                break;
            }
            thread::wait_shared(&s.word, w, 20);
        }
        free(s, word(MOVING, g));
    }

    /// Reserves a slot for `held` pages and counts the live promises with it: the slot, its
    /// generation, and whether `available` covers `held` besides the others' promises (if not,
    /// the caller frees the slot or turns it to another use). `None` when no slot is free.
    /// Reserving first, then counting, makes two relatives deciding at once each count the
    /// other's reservation (both may move their child out: the safe side).
    fn reserve(
        &self,
        t: &Table,
        f: Checked<'_>,
        held: [usize; 2],
        available: [Option<usize>; 2],
        now: u32,
    ) -> Option<(usize, u32, bool)> {
        let pages = held.map(clamp);
        let (i, g) = claim(t, f, RESERVED, pages, now)?;
        let total = self.live_promises_with(t, f, now, Some((i, g, pages)));
        let others = [0, 1].map(|k| total[k].saturating_sub(pages[k] as usize));
        Some((i, g, covered(held, available, others)))
    }

    /// Sums the promises of live children and of children being forked, freeing the slots of
    /// children that exited or exec'd and reservations never taken.
    fn live_promises(&self, t: &Table, f: Checked<'_>, now: u32) -> [usize; 2] {
        self.live_promises_with(t, f, now, None)
    }

    /// As [`live_promises`](Family::live_promises), with `fresh` (slot, generation, pages): a
    /// reservation this process has just made and counts as its own.
    fn live_promises_with(
        &self,
        t: &Table,
        f: Checked<'_>,
        now: u32,
        fresh: Option<(usize, u32, [u32; 2])>,
    ) -> [usize; 2] {
        let mut sum = [0usize; 2];
        for (i, s) in t.slots.iter().enumerate() {
            let w = s.word.load(Ordering::Acquire);
            let g = generation(w);
            let pages = match (self.own, fresh) {
                // This process's own promise lives as long as it does.
                (Some((o, pages)), _) if o == i => Some(pages),
                (_, Some((j, fg, pages))) if j == i && fg == g && state(w) == RESERVED => Some(pages),
                _ => {
                    let live = match state(w) {
                        RESERVED => now.wrapping_sub(s.reserved_at.load(Ordering::Relaxed)) < RESERVED_MS,
                        // The kernel's answer; a descriptor it cannot answer on counts the
                        // promise (the safe side).
                        HELD => f.held_by_another(i as u32) != Some(false),
                        // A move is waited for by its parent, and counts nothing; one left
                        // behind (its parent died waiting) goes once its child has let go.
                        MOVING => {
                            if f.held_by_another(i as u32) == Some(false)
                                && now.wrapping_sub(s.reserved_at.load(Ordering::Relaxed)) > RESERVED_MS
                            {
                                free(s, w);
                            }
                            continue;
                        }
                        _ => continue,
                    };
                    if !live {
                        free(s, w);
                        continue;
                    }
                    // What this process promised itself, from its own memory; a relative's,
                    // from the table.
                    let (mg, mp) = self.mine[i];
                    Some(if mg != 0 && mg == g { mp } else { [0, 1].map(|k| s.pages[k].load(Ordering::Relaxed)) })
                }
            };
            if let Some(p) = pages {
                sum[0] = sum[0].saturating_add(p[0] as usize);
                sum[1] = sum[1].saturating_add(p[1] as usize);
            }
        }
        sum
    }
}

/// A page count as the table keeps it.
fn clamp(pages: usize) -> u32 {
    pages.min(u32::MAX as usize) as u32
}

/// Whether `available` covers `held` besides `promised`, for each hugetlb kind held.
fn covered(held: [usize; 2], available: [Option<usize>; 2], promised: [usize; 2]) -> bool {
    (0..2).all(|k| held[k] == 0 || available[k].is_none_or(|a| a.saturating_sub(promised[k]) >= held[k]))
}

/// Reserves a free slot in `state` for `pages` at `now`: its index and generation (`None` when
/// every slot is taken). A free slot whose byte some process still holds locked is passed over
/// (its lock would pass for the new child's). The time and pages are written before the slot is
/// published as well as after (a concurrent claim of the same slot may have overwritten them),
/// so that no relative sees the reservation with another's time.
fn claim(t: &Table, f: Checked<'_>, state_to: u32, pages: [u32; 2], now: u32) -> Option<(usize, u32)> {
    for (i, s) in t.slots.iter().enumerate() {
        let w = s.word.load(Ordering::Acquire);
        if state(w) != FREE || f.held_by_another(i as u32) != Some(false) {
            continue;
        }
        // Generation 0 is never used: `Family::mine` takes it for "none".
        let g = match generation(w).wrapping_add(1) & (u32::MAX >> 2) {
            0 => 1,
            g => g,
        };
        let publish = || {
            s.reserved_at.store(now, Ordering::Relaxed);
            s.pages[0].store(pages[0], Ordering::Relaxed);
            s.pages[1].store(pages[1], Ordering::Relaxed);
        };
        publish();
        if s.word.compare_exchange(w, word(state_to, g), Ordering::AcqRel, Ordering::Relaxed).is_ok() {
            publish();
            return Some((i, g));
        }
    }
    None
}

/// Makes reserved slot `i` (in word `expect`) this process's: locks its byte and marks it
/// held. False, letting go of the lock, if another process holds the byte or the slot is no
/// longer the reservation named.
fn hold(t: &Table, f: Checked<'_>, i: usize, expect: u32) -> bool {
    let Some(s) = t.slots.get(i) else { return false };
    if f.try_hold(i as u32) != Hold::Taken {
        return false;
    }
    if s.word.compare_exchange(expect, word(HELD, generation(expect)), Ordering::AcqRel, Ordering::Relaxed).is_ok() {
        return true;
    }
    f.release(i as u32);
    false
}

/// Frees slot `s` if it is still in word `expect` (else someone changed it meanwhile, and it
/// is theirs to free).
fn free(s: &Slot, expect: u32) {
    let _ = s.word.compare_exchange(expect, word(FREE, generation(expect)), Ordering::AcqRel, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A slot is free in the table but its byte still locked (the child that moved out frees
    /// the slot as it lets go; a child that outlived its parent's wait): a new reservation must
    /// not take it, or that process's lock would pass for the new child's.
    #[test]
    #[cfg_attr(miri, ignore = "a child process and a lock file, which Miri does not run")]
    fn a_free_slot_still_locked_is_not_reserved() {
        let mut fam = Family::none();
        assert!(fam.ensure());
        let (t, f) = fam.usable().expect("table");
        let child =
            crate::os::lockfile::testing::LockingChild::spawn(f, 0, None).expect("the child's lock was never seen");
        assert_eq!(state(t.slots[0].word.load(Ordering::Relaxed)), FREE);
        fam.decide([1, 0], [Some(100), None], 1_000);
        drop(child);
        match fam.decision {
            Decision::Promised(i, _) => assert_ne!(i, 0, "the locked slot was reserved"),
            d => panic!("{d:?}"),
        }
    }
}
