//! The re-collapse helper: one thread, started at the first fork of a process whose heap has
//! THP, or when the heap outgrows the small phase (`HUGEHEAP_HUGE_FROM`: its 4 KiB pages are
//! then collapsed at once, without the CPU budget's rests, and a fork before it is done
//! finishes the job itself, so that the child finds them whole; see [`start_if_promoted`]),
//! that works through
//! the sweeps [`super::recollapse`] hands out, off `malloc`'s path: for each huge page, it
//! reads `/proc/self/pagemap` and leaves alone a page a child still shares, else asks the
//! kernel to collapse it (where the pagemap cannot be read, it collapses nothing: whether a
//! child shares a page is then unknown). It spends at most `HUGEHEAP_COLLAPSE` percent of one
//! CPU (measured on its own CPU clock; it sleeps the rest) and sleeps on a futex when no sweep
//! is pending; a fork wakes it. While children share pages, it looks again after a wait that
//! doubles (50 ms to 1 s) as long as they go on sharing as many, and a fork does not cut that
//! wait short. `HUGEHEAP_COLLAPSE=0` keeps it from starting (THP split by copy-on-write then
//! waits for khugepaged); the small phase of a process that never forked is then collapsed by
//! the allocating thread, which needs no thread.
//!
//! Before the first fork, it also populates the free huge pages a growing heap takes next
//! ([`super::prefault`]): a process that never forks starts it when its THP heap, holding
//! 32 MiB or more, grows, and the next chunk of the program's own mappings that the entry
//! layer places in huge pages ([`populate_later`]).
//!
//! The thread is named `hugeheap-thp`. It is the only thread hugeheap starts, and a process
//! that stays in the small phase and never forks, or has no THP, never gets it. A forked child
//! has none (threads do not survive fork) until it forks or grows in turn. It runs with every
//! signal blocked, so the signals a program blocks to collect them (`sigwait`, `signalfd`)
//! still reach the program. It is a thread the C library does not know, holding no privilege
//! (root's takes nobody's ids: [`thread::spawn_helper`]), so glibc's forks stay on their
//! single-threaded path; the kernel counts it all the same, and a few system calls refuse a
//! multi-threaded process (`unshare(CLONE_NEWUSER)`, for one): such programs set
//! `HUGEHEAP_COLLAPSE=0`. It calls only system-call wrappers, atomics and the page heap under
//! its lock: nothing that allocates or needs the C library's thread state.
//!
//! It has a descriptor table of its own, emptied at its start ([`thread::private_descriptors`]):
//! the pagemap it opens is in no table a fork copies, so no child forked by another thread
//! inherits it (a child that drops privileges would read its parent's pagemap, physical frame
//! numbers included when the parent opened it as root), and no fork waits for it.

use super::fork_pages::bell;
use super::keepup::{self, KeepUp};
use super::prefault::Populated;
use super::recollapse::Outcome;
use crate::os::{mem, thread};
use crate::units::HUGE_SIZE;
use core::sync::atomic::{AtomicU32, Ordering};

/// Huge pages per batch (a batch is looked at and collapsed outside the lock).
const BATCH: usize = 8;

/// How long the helper waits before sweeping again when a sweep left pages a child shared:
/// the first wait, and the longest (it doubles while children keep sharing). A child's
/// lifetime is unknown (a save may take minutes); each sweep then costs one pagemap read per
/// huge page, so the longest wait bounds both that cost and how late the work starts once
/// the last child is gone.
const SHARED_WAIT_MS: (u32, u32) = (50, 1000);

/// How long no fork must have been made before the helper sweeps after one, ms; and the longest
/// it waits for such a pause. A program that forks in a loop (a job runner, a prefork master
/// replacing workers) would otherwise be swept during its next forks: the sweep's pagemap reads
/// take the memory-map lock each fork needs, and a second running thread of the process makes
/// each fork's flush of the parent's TLB reach another CPU (docs/benchmarks.md, "Figures behind
/// the code").
const SETTLE_MS: (u32, u32) = (20, 1000);

/// Percent of one CPU the helper may use (0: no helper).
static BUDGET: AtomicU32 = AtomicU32::new(0);
/// CPU time the helper has used, microseconds (for `stats()`).
static CPU_US: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Sets the helper's CPU budget, percent of one CPU (start-up).
pub fn set_budget(percent: u32) {
    BUDGET.store(percent.min(100), Ordering::Relaxed);
}

/// CPU time the helper has used so far, microseconds.
pub fn cpu_us() -> u64 {
    CPU_US.load(Ordering::Relaxed)
}

/// After a fork, in the parent (no allocator lock held): wakes the helper, starting it the
/// first time.
pub fn kick() {
    if BUDGET.load(Ordering::Relaxed) == 0 {
        return;
    }
    if bell().advised.load(Ordering::Relaxed) == 1 {
        keepup::tell(bell());
    }
    if bell().started.load(Ordering::Relaxed) == 0 && bell().started.swap(1, Ordering::AcqRel) == 0 {
        bell().kick.fetch_add(1, Ordering::Release);
        if !thread::spawn_helper(helper, c"hugeheap-thp", 256 << 10) {
            bell().started.store(0, Ordering::Relaxed);
        }
        return;
    }
    bell().ring();
}

/// Whether [`populate_later`] would be heard now: the helper may run and the process has
/// never forked.
pub fn may_populate_later() -> bool {
    BUDGET.load(Ordering::Relaxed) != 0 && !bell().forked.load(Ordering::Relaxed)
}

/// Asks the helper to populate `[addr, addr + 2 MiB)` ahead of use, memory outside the page
/// heap that the program takes next (the mapping zone's next chunk) and whose owner holds
/// `held` bytes, under the rules of the page heap's own populating ([`super::prefault`]);
/// starts the helper if need be. One request at a time: a newer one replaces one not yet
/// taken (that memory is then faulted in by the program, as it would have been). Populating
/// never changes what the memory holds, so the owner may hand it out, write it or give it
/// back meanwhile; it must stay the owner's (mapped or reserved) for good.
///
/// Called where no allocator lock is held: starting a thread may allocate.
pub fn populate_later(addr: usize, held: usize) {
    debug_assert!(addr % HUGE_SIZE == 0 && addr != 0);
    if !may_populate_later() {
        return;
    }
    bell().other_held.store(held, Ordering::Relaxed);
    bell().other.store(addr, Ordering::Release);
    kick();
}

/// In the prepare handler of a process that has never forked, before it takes any lock: the
/// collapse a promotion asked for, if the helper has not finished it (a program that builds
/// its heap and forks at once), done here, so that the child and the forks after it find the
/// small phase's pages whole (a page a child shares is never collapsed after).
/// Pages the helper is collapsing at that moment are waited for (at most [`FINISH_WAIT_MS`]:
/// a page busy for longer is left to the sweeps after the fork).
pub fn finish_before_fork() {
    let mut waited = 0;
    while bell().urgent.load(Ordering::Relaxed) != 0 && !bell().forked.load(Ordering::Relaxed) {
        if collapse_unshared() || waited >= FINISH_WAIT_MS {
            return;
        }
        thread::sleep_us(1000);
        waited += 1;
    }
}

/// The longest a fork waits for the helper's collapse of the small phase's pages, ms (a batch
/// takes a few milliseconds, tens where the host backs each fresh huge page).
const FINISH_WAIT_MS: u32 = 200;

/// Before every fork (the prepare handler): marks the process as one that has forked.
pub fn note_fork() {
    bell().forked.store(true, Ordering::Relaxed);
}

/// Has the small heap's pages collapsed if they were turned into THP since this was last
/// asked (`Doorbell::promoted`): by the helper, started if need be, without its budget's
/// rests; here, in the allocating thread, when there is no helper (`HUGEHEAP_COLLAPSE=0`) and
/// the process has never forked (no page can be shared, so no pagemap is read: a program that
/// must stay single-threaded would otherwise fork its first 32 MiB in 4 KiB pages for good).
/// Not here when there is a helper: the copy of up to `HUGEHEAP_HUGE_FROM` into fresh huge
/// pages held up the allocation that outgrew the small phase, and every thread waiting on
/// that one, for up to a tenth of a second on this VM, whose host backs each fresh huge page
/// (docs/benchmarks.md, "The small phase's pages collapsed off the program's path"). A
/// program that forks before the helper is done has the rest collapsed by its first fork
/// ([`finish_before_fork`]), so that the child finds the pages whole. Called at the end of
/// allocation slow paths, where no allocator lock is held and no thread heap is midway
/// through a change: starting a thread may allocate.
#[inline]
pub fn start_if_promoted() {
    if bell().promoted.load(Ordering::Relaxed) != 0 && bell().promoted.swap(0, Ordering::Relaxed) != 0 {
        let here = BUDGET.load(Ordering::Relaxed) == 0 && !bell().forked.load(Ordering::Relaxed);
        if !(here && collapse_unshared()) {
            kick();
        }
    }
    if bell().populate.load(Ordering::Relaxed) != 0 && bell().populate.swap(0, Ordering::Relaxed) != 0 {
        kick();
    }
}

/// Works through the sweep a promotion asked for, in this thread, collapsing each page the
/// page heap hands out without asking the pagemap (the process has never forked). Returns
/// whether the sweep completed; not when a page was busy or a fork came meanwhile (the helper
/// takes over then).
#[cold]
#[inline(never)]
fn collapse_unshared() -> bool {
    let mut addrs = [0usize; BATCH];
    let mut outcomes = [Outcome::Collapsed; BATCH];
    while !bell().forked.load(Ordering::Relaxed) {
        let n = match super::process_heap::lock().as_mut() {
            Some(ph) => ph.collapse_batch(&mut addrs),
            None => return false,
        };
        if n == 0 {
            let pending = super::process_heap::lock().as_ref().is_some_and(|ph| ph.recollapse_pending());
            if !pending {
                bell().urgent.store(0, Ordering::Relaxed);
            }
            return !pending;
        }
        for i in 0..n {
            outcomes[i] = collapse(addrs[i]);
        }
        if let Some(ph) = super::process_heap::lock().as_mut() {
            ph.collapse_done(&addrs[..n], &outcomes[..n]);
        }
    }
    false
}

/// Asks the kernel to collapse the huge page at `addr`, and says what became of it.
fn collapse(addr: usize) -> Outcome {
    match mem::collapse(addr, HUGE_SIZE) {
        Ok(()) => Outcome::Collapsed,
        Err(mem::EAGAIN) => Outcome::Busy,
        Err(_) => Outcome::Failed,
    }
}

/// After a wake: waits until the process has made no fork for `SETTLE_MS.0` (at most
/// `SETTLE_MS.1`), so that the sweep runs between forks, not during the next ones; a
/// promotion's sweep (`urgent`) does not wait.
fn settle() {
    let mut waited = 0;
    // Before any fork, the rings are the page heap's (a promotion, pages to populate).
    while bell().forked.load(Ordering::Relaxed) && bell().urgent.load(Ordering::Relaxed) == 0 && waited < SETTLE_MS.1 {
        let k = bell().kick.load(Ordering::Acquire);
        thread::sleep_us(u64::from(SETTLE_MS.0) * 1000);
        waited += SETTLE_MS.0;
        if bell().kick.load(Ordering::Acquire) == k {
            break;
        }
    }
}

/// In a forked child (its handler, its only thread): the parent's helper is not there, and
/// the fork gate the forking thread took is open. The wiped page is zeroed already, unless the
/// kernel could not wipe one: its words are then set by hand. The child has forked, as far as
/// sharing pages goes: its parent shares them.
pub fn forget_in_child() {
    let gate = super::fork_pages::gate();
    if gate.is_locked() {
        // SAFETY: the forking thread took the gate in the prepare handler, and is this
        // child's only thread; no guard of it exists.
        unsafe { gate.force_unlock() };
    }
    bell().started.store(0, Ordering::Relaxed);
    bell().asleep.store(0, Ordering::Relaxed);
    bell().forked.store(true, Ordering::Relaxed);
    // The child's own sweeps, if it forks in turn, decide whether it is told.
    bell().advised.store(0, Ordering::Relaxed);
    CPU_US.store(0, Ordering::Relaxed);
}

/// Populates the free huge pages the page heap wants populated ahead ([`super::prefault`]),
/// batch by batch, until it wants none, then the memory outside it asked for
/// ([`populate_later`]); whether it populated any.
fn populate_ahead(addrs: &mut [usize; BATCH]) -> bool {
    let mut done = [Populated::No; BATCH];
    let mut any = false;
    loop {
        let n = match super::process_heap::helper_lock().as_mut() {
            Some(ph) => ph.prefault_batch(addrs),
            None => return any,
        };
        if n == 0 {
            break;
        }
        any = true;
        for i in 0..n {
            done[i] = populate(addrs[i]);
        }
        if let Some(ph) = super::process_heap::helper_lock().as_mut() {
            ph.prefault_done(&addrs[..n], &done[..n]);
        }
        if done[..n].contains(&Populated::No) {
            return any;
        }
    }
    let other = bell().other.swap(0, Ordering::Acquire);
    let held = bell().other_held.load(Ordering::Relaxed);
    if other == 0 || !super::process_heap::helper_lock().as_ref().is_some_and(|ph| ph.populates_other(held)) {
        return any;
    }
    let populated = populate(other);
    if let Some(ph) = super::process_heap::helper_lock().as_mut() {
        ph.other_done(populated);
    }
    true
}

/// Populates the 2 MiB at `addr`.
fn populate(addr: usize) -> Populated {
    match mem::populate_write(addr, HUGE_SIZE) {
        Ok(()) => Populated::Yes,
        Err(mem::EINVAL) => Populated::Refused,
        Err(_) => Populated::No,
    }
}

extern "C" fn helper(_: *mut core::ffi::c_void) -> *mut core::ffi::c_void {
    // What this thread opens (its pagemap) must never reach a child another thread forks.
    let private = thread::private_descriptors();
    // The pagemap, opened before the thread gives up any privilege (only the process's owner
    // opens it) and kept; where it could not be opened, tried again at each sweep's first
    // batch.
    let mut pagemap = if private { mem::Pagemap::open() } else { None };
    let mut retry = false;
    if !thread::hold_no_privilege() {
        // The next kick starts a helper that can.
        bell().started.store(0, Ordering::Relaxed);
        return core::ptr::null_mut();
    }
    let mut addrs = [0usize; BATCH];
    let mut outcomes = [Outcome::Collapsed; BATCH];
    let spent_base = thread::cpu_time_us();
    let mut shared_wait = SHARED_WAIT_MS.0;
    // Pages found shared by the sweep under way, and by the last one: while the count does
    // not fall (no child has let go of anything), the wait before the next sweep doubles.
    let (mut shared_now, mut shared_last) = (0usize, usize::MAX);
    // Whether the sweeps keep up with copy-on-write, and `kick` when the sweep under way began.
    let mut watch = KeepUp::new();
    let mut sweep_kick = None;
    settle();
    loop {
        // Read before the populating: a ring after it wakes the sleep below.
        let kick = bell().kick.load(Ordering::Acquire);
        if populate_ahead(&mut addrs) {
            CPU_US.store(thread::cpu_time_us() - spent_base, Ordering::Relaxed);
        }
        let n = {
            let mut guard = super::process_heap::helper_lock();
            let Some(ph) = guard.as_mut() else { return core::ptr::null_mut() };
            ph.collapse_batch(&mut addrs)
        };
        if n == 0 {
            retry = true;
            let forked = sweep_kick.take().is_some_and(|k| k != bell().kick.load(Ordering::Acquire));
            if let Some((split, looked)) = watch.sweep_end(forked) {
                let thp = super::process_heap::helper_lock().as_ref().map_or(0, |ph| ph.thp_bytes());
                bell().advise(split, looked, thp);
            }
            let pending = super::process_heap::helper_lock().as_ref().is_some_and(|ph| ph.recollapse_pending());
            // A promotion's sweep is done when a sweep completes, or finds children sharing
            // pages (they would keep it pending, and urgent, as long as they live); one asked
            // for during this sweep keeps it for the next.
            if !pending || shared_now > 0 {
                bell().urgent.store(0, Ordering::Relaxed);
            }
            if !pending {
                // Complete: sleep until the next fork.
                (shared_wait, shared_last, shared_now) = (SHARED_WAIT_MS.0, usize::MAX, 0);
                bell().sleep(kick, 1000);
                if bell().kick.load(Ordering::Relaxed) != kick {
                    settle();
                }
            } else if shared_now == 0 {
                // Only busy pages, or a fork during the sweep: sweep again soon.
                thread::sleep_us(u64::from(SHARED_WAIT_MS.0) * 1000);
            } else {
                // Children still share pages: look again later, sooner if fewer were shared
                // than last time (children are exiting). A fork meanwhile does not hurry it:
                // it only adds a child sharing the same pages, and a server that forks a
                // worker every few milliseconds would otherwise be swept without end, the
                // sweeps' pagemap reads holding the memory-map lock each fork needs.
                shared_wait =
                    if shared_now < shared_last { SHARED_WAIT_MS.0 } else { (shared_wait * 2).min(SHARED_WAIT_MS.1) };
                (shared_last, shared_now) = (shared_now, 0);
                thread::sleep_us(u64::from(shared_wait) * 1000);
            }
            continue;
        }
        sweep_kick.get_or_insert(kick);
        let t0 = thread::cpu_time_us();
        if pagemap.is_none() && retry && private {
            pagemap = mem::Pagemap::open();
            retry = false;
        }
        // Before any fork no other process can share a page (a promotion's sweep): collapsed
        // without asking the pagemap, which may be unreadable (a fork that comes meanwhile
        // leaves its child the pages as they were, the parent a copy of what was shared).
        let unshared = !bell().forked.load(Ordering::Relaxed);
        for i in 0..n {
            if unshared {
                // Not a split by copy-on-write: nothing for `watch`.
                outcomes[i] = collapse(addrs[i]);
                continue;
            }
            outcomes[i] = match pagemap.as_ref().map(|p| p.sharing(addrs[i], HUGE_SIZE)) {
                Some(Some((0, _))) => Outcome::Empty,
                // Mapped whole already (a sweep after each fork of a loop finds most so):
                // `MADV_COLLAPSE` would only drain every CPU's page lists to say so.
                Some(Some((_, 0))) if pagemap.as_ref().is_some_and(|p| p.whole_huge(addrs[i])) => Outcome::Whole,
                Some(Some((_, 0))) => collapse(addrs[i]),
                Some(_) => Outcome::Shared,
                // The pagemap cannot be read (a process that changed its user is not dumpable,
                // and its /proc files are root's; a /proc that is not procfs; no private
                // descriptor table): whether a child shares the page is unknown, so it is left
                // to khugepaged, and the sweep ends.
                None => Outcome::Failed,
            };
            shared_now += usize::from(outcomes[i] == Outcome::Shared);
            watch.page(outcomes[i], || pagemap.as_ref().and_then(|p| p.whole(addrs[i])));
        }
        if let Some(ph) = super::process_heap::helper_lock().as_mut() {
            ph.collapse_done(&addrs[..n], &outcomes[..n]);
        }
        let t1 = thread::cpu_time_us();
        CPU_US.store(t1 - spent_base, Ordering::Relaxed);
        // Stay within the budget: after using `used` µs, rest `used * (100 - b) / b` µs;
        // a promotion's sweep does not rest.
        if bell().urgent.load(Ordering::Relaxed) == 0 {
            let b = u64::from(BUDGET.load(Ordering::Relaxed).max(1));
            let used = t1 - t0;
            thread::sleep_us(used * (100 - b) / b);
        }
    }
}
