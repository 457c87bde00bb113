//! Copy-on-write room for forked children that keep hugetlb pages. A private hugetlb page a
//! forked child shares needs a fresh pool page when either side writes it; when the pool has
//! none, the kernel kills the child with SIGBUS (or takes the page away from it when the parent
//! writes). The copy-on-write reserve (`HUGEHEAP_COW_RESERVE`) keeps room for the parent and one
//! child; this is the rest: any number of children, whatever the pool.
//!
//! The processes of a family (the first to take hugetlb pages, and every process forked from
//! it) share a table, in a page mapped `MAP_SHARED`. Before each fork, the parent decides for
//! the child: if the pools can cover the hugetlb pages the child will share, besides what the
//! family's live children have been promised, the child is *promised* them (a slot of the
//! table is reserved for it); else the child will move its hugetlb memory out of the pools,
//! copying it into THP memory, before it runs any of the program's code (the cost a writing
//! child would pay anyway, in memory and copies; a reading child pays it too, which is why it
//! is the fallback). Deciding in the parent, one fork at a time, keeps two children from both
//! counting on the same free pages.
//!
//! Right after fork, the child takes its slot: it locks the slot's robust mutex, which the
//! kernel releases when the child exits or execs, so a later look at the table counts only
//! children that still share pages. A slot reserved for a child that never took it (killed
//! before it ran) is freed after a while; a child that finds its slot gone decides again.

use crate::os::robust::{RobustMutex, Try};
use crate::os::{mem, process, thread};
use core::sync::atomic::{AtomicI32, AtomicU32, Ordering};

/// Promises the table holds (a page's worth).
const SLOTS: usize = 50;

/// How long a slot reserved for a child stays reserved without the child taking it, ms.
const RESERVED_MS: u32 = 10_000;

/// A slot is free.
const FREE: u32 = 0;
/// Reserved by a parent for the child it is forking.
const RESERVED: u32 = 1;
/// Held by a child (its mutex locked by the child).
const HELD: u32 = 2;

/// One promise: the robust mutex its child holds, its state, the pages promised per hugetlb
/// kind (2 MiB, 1 GiB), and when and how often it was reserved.
#[repr(C)]
struct Slot {
    mutex: RobustMutex,
    state: u32,
    generation: u32,
    reserved_at: u32,
    pid: i32,
    pages: [u32; 2],
}

/// The family's table, in shared memory.
#[repr(C)]
struct Table {
    lock: RobustMutex,
    /// The last move out of the pools a parent asked of a child, and the last one done (a
    /// futex the parent waits on), and the child doing it.
    move_asked: AtomicU32,
    move_done: AtomicU32,
    mover: AtomicI32,
    slots: [Slot; SLOTS],
}

const _: () = assert!(size_of::<Table>() <= 4096);

/// What the parent decided for the child it is forking (the child reads it from its copy of
/// the parent's memory).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The process holds no hugetlb page: nothing to do.
    Nothing,
    /// The child is promised its pages: slot and generation to take.
    Promised(usize, u32),
    /// The pools cannot cover the child: it moves out of them (the move's number, which the
    /// parent waits to see done).
    MoveOut(u32),
}

/// This process's view of its family's table.
pub struct Family {
    table: *mut Table,
    /// The decision for the child being forked (set before fork, read by the child).
    pub decision: Decision,
}

impl Family {
    /// No table yet (the process holds no hugetlb page).
    pub const fn none() -> Family {
        Family { table: core::ptr::null_mut(), decision: Decision::Nothing }
    }

    /// Makes the family's table, once (when the process first takes hugetlb pages). False if
    /// the shared page cannot be had.
    pub fn ensure(&mut self) -> bool {
        if !self.table.is_null() {
            return true;
        }
        let Some(at) = mem::map_shared(4096) else { return false };
        let t = at as *mut Table;
        // SAFETY: the page is fresh, zeroed, ours, and large enough for the table (asserted
        // above); every mutex is initialised before the table is published.
        let ok = unsafe {
            RobustMutex::init(&raw mut (*t).lock) && (0..SLOTS).all(|i| RobustMutex::init(&raw mut (*t).slots[i].mutex))
        };
        if ok {
            self.table = t;
        }
        ok
    }

    /// Runs `f` on the table under its lock (`None` without a table).
    fn with_table<R>(&self, f: impl FnOnce(&mut Table) -> R) -> Option<R> {
        if self.table.is_null() {
            return None;
        }
        // SAFETY: the table lives for the process (never unmapped); its lock serialises every
        // use by the family's processes.
        let t = unsafe { &mut *self.table };
        if !t.lock.lock() {
            return None;
        }
        let r = f(t);
        t.lock.unlock();
        Some(r)
    }

    /// Pages of each hugetlb kind (2 MiB, 1 GiB) promised to the family's live children (and
    /// to children being forked), as of `now` (ms).
    pub fn promised(&self, now: u32) -> [usize; 2] {
        self.with_table(|t| live_promises(t, now)).unwrap_or([0, 0])
    }

    /// Before fork, in the parent, which shares `held` pages of each hugetlb kind with the
    /// child to be: decides whether the child can be promised them, given what the pools
    /// could give now (`available`); reserves its slot if so.
    pub fn decide(&mut self, held: [usize; 2], available: [Option<usize>; 2], now: u32) {
        self.decision = if held == [0, 0] {
            Decision::Nothing
        } else {
            self.with_table(|t| match reserve(t, held, available, now) {
                Decision::MoveOut(_) => {
                    let n = t.move_asked.load(Ordering::Relaxed).wrapping_add(1);
                    t.move_asked.store(n, Ordering::Relaxed);
                    t.mover.store(0, Ordering::Relaxed);
                    Decision::MoveOut(n)
                }
                d => d,
            })
            .unwrap_or_else(|| {
                // No table: decide alone, on the pools as they are.
                if covered(held, available, [0, 0]) { Decision::Promised(usize::MAX, 0) } else { Decision::MoveOut(0) }
            })
        };
    }

    /// In the child right after fork: takes the promise the parent reserved. False if the
    /// child must move out of the pools (it was decided so, or its slot is gone and the pools
    /// cannot cover it now).
    pub fn take(&mut self, held: [usize; 2], now: u32, available: impl FnOnce() -> [Option<usize>; 2]) -> bool {
        match self.decision {
            Decision::Nothing => true,
            Decision::MoveOut(_) => {
                if let Some(t) = self.table() {
                    t.mover.store(process::pid() as i32, Ordering::Release);
                }
                false
            }
            Decision::Promised(usize::MAX, _) => true,
            Decision::Promised(slot, generation) => self
                .with_table(|t| {
                    let s = &mut t.slots[slot];
                    if s.state == RESERVED && s.generation == generation && hold(s) {
                        return true;
                    }
                    // The reservation expired meanwhile: decide again, for this child.
                    match reserve(t, held, available(), now) {
                        Decision::Promised(slot, _) => hold(&mut t.slots[slot]),
                        _ => false,
                    }
                })
                .unwrap_or(false),
        }
    }
}

impl Family {
    /// The table, without its lock, for its atomics (`None` without a table).
    fn table(&self) -> Option<&Table> {
        // SAFETY: the table lives for the process; only its atomics are read through this.
        (!self.table.is_null()).then(|| unsafe { &*self.table })
    }

    /// In a child that moved out of the pools (or tried to): tells the waiting parent.
    pub fn moved(&self) {
        if let (Decision::MoveOut(n), Some(t)) = (self.decision, self.table()) {
            t.move_done.store(n, Ordering::Release);
            thread::wake_shared(&t.move_done);
        }
    }

    /// After fork, in the parent: if the child must move out of the pools, waits until it has
    /// (or has died): until then it shares every hugetlb page, and a write by this process or
    /// another child would need one more copy from the pools than they were promised.
    pub fn wait_for_move(&self) {
        let (Decision::MoveOut(n), Some(t)) = (self.decision, self.table()) else { return };
        let mut waited_ms = 0u32;
        while t.move_done.load(Ordering::Acquire) != n {
            let done = t.move_done.load(Ordering::Relaxed);
            thread::wait_shared(&t.move_done, done, 20);
            waited_ms += 20;
            let mover = t.mover.load(Ordering::Acquire);
            // A child that died, or never started (after a second), will not move.
            if mover > 0 && !process::alive(mover) || mover == 0 && waited_ms > 1000 {
                return;
            }
        }
    }
}

/// Makes a reserved slot this process's: locks its robust mutex (a mutex left by a holder
/// that died is taken too). False, freeing the slot, if someone else holds it.
fn hold(s: &mut Slot) -> bool {
    if s.mutex.try_lock() == Try::Busy {
        s.state = FREE;
        return false;
    }
    s.state = HELD;
    s.pid = process::pid() as i32;
    true
}

/// Whether `available` covers `held` besides `promised`, for each hugetlb kind held.
fn covered(held: [usize; 2], available: [Option<usize>; 2], promised: [usize; 2]) -> bool {
    (0..2).all(|k| held[k] == 0 || available[k].is_none_or(|a| a.saturating_sub(promised[k]) >= held[k]))
}

/// Reserves a slot for `held` pages if `available` covers them besides the live promises.
fn reserve(t: &mut Table, held: [usize; 2], available: [Option<usize>; 2], now: u32) -> Decision {
    let promised = live_promises(t, now);
    if !covered(held, available, promised) {
        return Decision::MoveOut(0);
    }
    match t.slots.iter().position(|s| s.state == FREE) {
        Some(i) => {
            let s = &mut t.slots[i];
            s.state = RESERVED;
            s.generation = s.generation.wrapping_add(1);
            s.reserved_at = now;
            s.pid = 0;
            s.pages = held.map(|h| h.min(u32::MAX as usize) as u32);
            Decision::Promised(i, s.generation)
        }
        None => Decision::MoveOut(0), // no slot to promise with: as good as no room
    }
}

/// Sums the promises of live children and of children being forked, freeing the slots of
/// children that exited or exec'd and reservations never taken.
fn live_promises(t: &mut Table, now: u32) -> [usize; 2] {
    let mut sum = [0usize; 2];
    for s in t.slots.iter_mut() {
        let live = match s.state {
            HELD => match s.mutex.try_lock() {
                Try::Busy => true,
                // Its child is gone: the slot is free again.
                Try::Taken | Try::OwnerDied => {
                    s.mutex.unlock();
                    false
                }
            },
            RESERVED => now.wrapping_sub(s.reserved_at) < RESERVED_MS,
            _ => continue,
        };
        if live {
            sum[0] += s.pages[0] as usize;
            sum[1] += s.pages[1] as usize;
        } else {
            s.state = FREE;
            s.pages = [0, 0];
            s.pid = 0;
        }
    }
    sum
}
