//! The program's own small anonymous mappings, in huge pages: `libhugeheap.so` exports `mmap`,
//! `munmap`, `mremap`, `mprotect` and `madvise`, and places the mappings that interpreters make
//! for their object memory (CPython's 1 MiB arenas, Ruby 3.1's 16 KiB heap pages cut from
//! 32 KiB mappings: private, anonymous, read-write, 16 KiB to 1 MiB, no address asked) in a
//! zone of 2 MiB chunks that are mapped whole and advised for THP. Made one by one by the kernel, such mappings stay in 4 KiB pages:
//! each is touched before the mappings around it fill its 2 MiB, so the kernel faults small
//! pages there. Everything else goes to the kernel as made (`HUGEHEAP_MMAP=kernel`: all of it).
//!
//! What a program sees is what the kernel gives: a new mapping reads as zeroes (pages handed
//! out again are cleared first), `munmap` of any part of one ends it (the zone takes the pages
//! back; a chunk that is wholly free goes back to the OS), `mprotect` and `madvise` act on it
//! as on any mapping (after an `mprotect`, or advice that outlives contents such as
//! `MADV_DONTFORK`, in the zone, pages taken back are made read-write and plainly advised
//! again), and `mremap` moves or shrinks it. Not served in the zone: `MREMAP_FIXED` and
//! `MREMAP_DONTUNMAP` on zone memory (`EINVAL`), which interpreters do not use.
//!
//! A zone that grows past its first 32 MiB, in a process that has never forked, commits the
//! chunk after the one it starts on as well, and the helper thread populates it before the
//! program reaches it (`pageheap::prefault`, `pageheap::collapser::populate_later`): the
//! kernel's 2 MiB fault, a clear of the whole page, then costs another CPU, not the program's.
//! At most one chunk is so held ahead of use.
//!
//! Invariants: `used` has a bit for every 4 KiB page of the committed chunks, set exactly while
//! the page belongs to a mapping the program holds; `dirty` is set for every page that may hold
//! non-zero bytes (set when handed out, cleared when zeroed); `free[c]` counts the clear `used`
//! bits of chunk `c`. The zone's lock is held across `fork()` (handlers registered at the first
//! placement).

use crate::os::{self, EINVAL, ENOMEM};
use crate::pageheap;
use crate::pagekind::PageKind;
use crate::sync::SpinLock;
use core::ffi::{c_int, c_void};
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// A chunk: one huge page, mapped and advised whole.
const CHUNK: usize = 2 << 20;
/// Pages of a chunk.
const PAGES: usize = CHUNK / 4096;
/// Words of a chunk's bitmap.
const WORDS: usize = PAGES / 64;
/// Chunks the zone can hold (16 GiB of address space, reserved at the first placement).
const CHUNKS: usize = 8192;
/// Smallest mapping placed in the zone (Ruby 3.1 asks for 32 KiB at a time).
pub const MIN_LEN: usize = 16 << 10;
/// Largest mapping placed in the zone.
pub const MAX_LEN: usize = 1 << 20;

/// Start of the zone's committed chunks (0 until the first placement), and their end: read
/// without the lock by `munmap` and `mprotect`, which the page heap's own calls reach too (the
/// zone's own calls, made under its lock, go to the kernel directly or miss the range).
static BASE: AtomicUsize = AtomicUsize::new(0);
static END: AtomicUsize = AtomicUsize::new(0);
/// The program has called `mprotect` on zone memory.
static PROTECTED: AtomicBool = AtomicBool::new(false);
/// The program has given zone memory advice that outlives a mapping's contents (not to be
/// copied by `fork`, wiped in a child, left out of core dumps).
static ADVISED: AtomicBool = AtomicBool::new(false);

/// Whether `[addr, addr + len)` meets the committed chunks.
fn meets(addr: usize, len: usize) -> bool {
    let (base, end) = (BASE.load(Ordering::Acquire), END.load(Ordering::Acquire));
    base != 0 && addr < end && addr.saturating_add(len) > base
}

/// The zone's state (see the module doc for its invariants).
struct Zone {
    /// Start of the reservation (0 until the first placement; `usize::MAX` if it failed).
    base: usize,
    /// Chunks mapped so far, from `base` up.
    committed: usize,
    /// Pages held by the program, per chunk.
    used: [[u64; WORDS]; CHUNKS],
    /// Pages that may hold non-zero bytes, per chunk.
    dirty: [[u64; WORDS]; CHUNKS],
    /// Clear `used` bits per chunk.
    free: [u16; CHUNKS],
}

static ZONE: SpinLock<Zone> = SpinLock::new(Zone {
    base: 0,
    committed: 0,
    used: [[0; WORDS]; CHUNKS],
    dirty: [[0; WORDS]; CHUNKS],
    free: [0; CHUNKS],
});

/// Whether a `mmap` call is one the zone places: no address asked, read-write, private and
/// anonymous with no other flag, [`MIN_LEN`] to [`MAX_LEN`].
pub const fn placeable(addr: usize, len: usize, prot: c_int, flags: c_int) -> bool {
    addr == 0
        && prot == libc::PROT_READ | libc::PROT_WRITE
        && flags == libc::MAP_PRIVATE | libc::MAP_ANONYMOUS
        && len >= MIN_LEN
        && len <= MAX_LEN
}

/// The highest run of `n` clear bits in `bits` (a chunk's `used`), as the page index of its
/// start. Highest, because a program that maps `2a` to cut an `a`-aligned `a` out of it
/// (Ruby's heap pages) unmaps the lower part: the next mapping, placed just below, takes that
/// part back, and the pages kept lie side by side with no hole between them.
fn find_run(bits: &[u64; WORDS], n: usize) -> Option<usize> {
    debug_assert!(n > 0 && n <= PAGES);
    let mut run = 0;
    for page in (0..PAGES).rev() {
        if bits[page / 64] >> (page % 64) & 1 == 0 {
            run += 1;
            if run == n {
                return Some(page);
            }
        } else {
            run = 0;
        }
    }
    None
}

fn set_bits(bits: &mut [u64; WORDS], from: usize, n: usize, on: bool) {
    for page in from..from + n {
        let m = 1u64 << (page % 64);
        if on {
            bits[page / 64] |= m;
        } else {
            bits[page / 64] &= !m;
        }
    }
}

/// The set bits among pages `[from, from + n)` of `bits`.
fn count_bits(bits: &[u64; WORDS], from: usize, n: usize) -> usize {
    (from..from + n).filter(|&page| bits[page / 64] >> (page % 64) & 1 == 1).count()
}

impl Zone {
    /// Pages `[from, from + n)` of chunk `c`, as an address.
    fn addr(&self, c: usize, page: usize) -> usize {
        self.base + c * CHUNK + page * 4096
    }

    /// Places a mapping of `pages` 4 KiB pages: the highest run that fits in the lowest
    /// committed chunk that has one, else a new chunk. Returns its address, zeroed, and the
    /// address of a chunk committed ahead for the helper to populate (see the module doc).
    fn place(&mut self, pages: usize) -> Option<(usize, Option<usize>)> {
        if self.base == 0 {
            self.base = os::mem::reserve(CHUNKS * CHUNK, CHUNK).unwrap_or(usize::MAX);
        }
        if self.base == usize::MAX {
            return None;
        }
        let found = (0..self.committed)
            .filter(|&c| self.free[c] as usize >= pages)
            .find_map(|c| find_run(&self.used[c], pages).map(|p| (c, p)));
        let (c, page) = match found {
            Some(f) => f,
            None => {
                let c = self.committed;
                if !self.commit_next() {
                    return None;
                }
                (c, PAGES - pages)
            }
        };
        // The program reached the highest chunk: the next is committed for the helper to
        // populate (once the zone holds FROM chunks, before any fork).
        let mut ahead = None;
        if c + 1 == self.committed
            && self.committed >= pageheap::prefault::FROM
            && pageheap::collapser::may_populate_later()
            && self.commit_next()
        {
            ahead = Some(self.addr(c + 1, 0));
        }
        let addr = self.addr(c, page);
        if count_bits(&self.dirty[c], page, pages) > 0 {
            // SAFETY: the pages are the zone's (their used bits are clear) and mapped
            // read-write (taken back pages were made read-write again).
            unsafe { core::ptr::write_bytes(addr as *mut u8, 0, pages * 4096) };
        }
        set_bits(&mut self.used[c], page, pages, true);
        set_bits(&mut self.dirty[c], page, pages, true);
        self.free[c] -= pages as u16;
        Some((addr, ahead))
    }

    /// Commits the next chunk (mapped read-write, advised for THP, all its pages free);
    /// whether it could.
    fn commit_next(&mut self) -> bool {
        let c = self.committed;
        if c == CHUNKS {
            return false;
        }
        // SAFETY: chunk c is a PROT_NONE part of the zone's own reservation, never handed
        // out, 2 MiB aligned. (Its mprotect, through the exported one, misses the committed
        // range, which ends at this chunk.)
        if unsafe { os::mem::commit(self.addr(c, 0), CHUNK, PageKind::Thp, false) }.is_err() {
            return false;
        }
        self.committed += 1;
        BASE.store(self.base, Ordering::Release);
        END.store(self.addr(self.committed, 0), Ordering::Release);
        self.free[c] = PAGES as u16;
        true
    }

    /// Takes back the pages of `[addr, addr + len)` (4 KiB aligned) that lie in the committed
    /// chunks and that the program holds; a chunk left wholly free goes back to the OS.
    /// Returns the parts outside the zone, below and above it.
    fn take_back(&mut self, addr: usize, len: usize) -> [(usize, usize); 2] {
        let (lo, hi) = (self.base, self.base + self.committed * CHUNK);
        let end = addr + len;
        let (from, to) = (addr.max(lo), end.min(hi));
        let outside = [(addr, lo.saturating_sub(addr).min(len)), (hi.max(addr), end.saturating_sub(hi.max(addr)))];
        if from >= to {
            return [(addr, len), (0, 0)];
        }
        if PROTECTED.load(Ordering::Relaxed) {
            // SAFETY: the range is zone memory; read-write is what the zone hands out.
            unsafe { libc::syscall(libc::SYS_mprotect, from, to - from, libc::PROT_READ | libc::PROT_WRITE) };
        }
        if ADVISED.load(Ordering::Relaxed) {
            for advice in [libc::MADV_DOFORK, libc::MADV_KEEPONFORK, libc::MADV_DODUMP] {
                // SAFETY: the range is zone memory; this is the advice it is handed out with.
                unsafe { libc::syscall(libc::SYS_madvise, from, to - from, advice) };
            }
        }
        let mut a = from;
        while a < to {
            let c = (a - lo) / CHUNK;
            let chunk_end = (lo + (c + 1) * CHUNK).min(to);
            let first = (a - lo) % CHUNK / 4096;
            let n = (chunk_end - a) / 4096;
            // Pages not held (a second munmap, a range never handed out) change nothing.
            self.free[c] += count_bits(&self.used[c], first, n) as u16;
            set_bits(&mut self.used[c], first, n, false);
            if self.free[c] as usize == PAGES {
                // SAFETY: the whole chunk is the zone's again; its contents do not matter.
                if unsafe { os::mem::release(self.addr(c, 0), CHUNK) } {
                    self.dirty[c] = [0; WORDS];
                }
            }
            a = chunk_end;
        }
        outside
    }
}

/// The `mmap` system call, with glibc's return convention (`MAP_FAILED` and `errno`).
///
/// # Safety
/// As the system call: a fixed address replaces whatever is mapped there.
unsafe fn sys_mmap(addr: *mut c_void, len: usize, prot: c_int, flags: c_int, fd: c_int, off: i64) -> *mut c_void {
    // SAFETY: the caller's request, passed on (this function's contract).
    unsafe { libc::syscall(libc::SYS_mmap, addr, len, prot, flags, fd, off) as *mut c_void }
}

/// C `mmap`, as `libhugeheap.so` exports it (see the module doc).
///
/// # Safety
/// As glibc's `mmap`.
pub unsafe fn mmap(addr: *mut c_void, len: usize, prot: c_int, flags: c_int, fd: c_int, off: i64) -> *mut c_void {
    if placeable(addr as usize, len, prot, flags) && crate::runtime::map_zone_on() {
        if !FORK_HANDLERS.swap(true, Ordering::AcqRel) {
            // Before the lock: registering may allocate.
            os::thread::atfork(before_fork, after_fork, after_fork);
        }
        let placed = {
            let mut zone = ZONE.lock();
            zone.place(len.div_ceil(4096)).map(|(p, ahead)| (p, ahead, zone.committed * CHUNK))
        };
        if let Some((p, ahead, held)) = placed {
            if let Some(a) = ahead {
                // After the zone's lock: this may start the helper thread.
                pageheap::collapser::populate_later(a, held);
            }
            return p as *mut c_void;
        }
    }
    // SAFETY: the program's call, passed on unchanged (this function's contract).
    unsafe { sys_mmap(addr, len, prot, flags, fd, off) }
}

/// C `munmap`, as `libhugeheap.so` exports it: zone pages go back to the zone, the rest to the
/// kernel.
///
/// # Safety
/// As glibc's `munmap`: nothing uses the range afterwards.
pub unsafe fn munmap(addr: *mut c_void, len: usize) -> c_int {
    let a = addr as usize;
    if a % 4096 != 0 || len == 0 {
        os::set_errno(EINVAL);
        return -1;
    }
    let len = len.saturating_add(4095) & !4095;
    if !meets(a, len) {
        // SAFETY: the program's call, outside the zone, passed on unchanged.
        return unsafe { libc::syscall(libc::SYS_munmap, addr, len) as c_int };
    }
    let outside = ZONE.lock().take_back(a, len);
    for (start, n) in outside {
        if n > 0 {
            // SAFETY: the parts of the program's range outside the zone, passed on.
            if unsafe { libc::syscall(libc::SYS_munmap, start, n) } != 0 {
                return -1;
            }
        }
    }
    0
}

/// C `mprotect`, as `libhugeheap.so` exports it: passed on; the zone notes that its memory
/// may have lost write access.
///
/// # Safety
/// As glibc's `mprotect`.
pub unsafe fn mprotect(addr: *mut c_void, len: usize, prot: c_int) -> c_int {
    if meets(addr as usize, len) {
        PROTECTED.store(true, Ordering::Relaxed);
    }
    // SAFETY: the program's call, passed on unchanged.
    unsafe { libc::syscall(libc::SYS_mprotect, addr, len, prot) as c_int }
}

/// C `madvise`, as `libhugeheap.so` exports it: passed on; the zone notes advice on its
/// memory that would outlive the mapping (`MADV_DONTFORK`, `MADV_WIPEONFORK`,
/// `MADV_DONTDUMP`), to undo it when the pages are taken back.
///
/// # Safety
/// As glibc's `madvise`.
pub unsafe fn madvise(addr: *mut c_void, len: usize, advice: c_int) -> c_int {
    if matches!(advice, libc::MADV_DONTFORK | libc::MADV_WIPEONFORK | libc::MADV_DONTDUMP) && meets(addr as usize, len)
    {
        ADVISED.store(true, Ordering::Relaxed);
    }
    // SAFETY: the program's call, passed on unchanged.
    unsafe { libc::syscall(libc::SYS_madvise, addr, len, advice) as c_int }
}

/// C `mremap`, as `libhugeheap.so` exports it: zone mappings shrink in place or move (a new
/// mapping, the contents copied, the old one taken back); the rest goes to the kernel.
///
/// # Safety
/// As glibc's `mremap`.
pub unsafe fn mremap(
    old: *mut c_void,
    old_len: usize,
    new_len: usize,
    flags: c_int,
    new_addr: *mut c_void,
) -> *mut c_void {
    if !meets(old as usize, old_len.max(1)) {
        // SAFETY: the program's call, passed on unchanged.
        return unsafe { libc::syscall(libc::SYS_mremap, old, old_len, new_len, flags, new_addr) as *mut c_void };
    }
    let fail = |e| {
        os::set_errno(e);
        libc::MAP_FAILED
    };
    if flags & !libc::MREMAP_MAYMOVE != 0 || old as usize % 4096 != 0 || new_len == 0 {
        return fail(EINVAL);
    }
    let (old_pages, new_pages) = (old_len.div_ceil(4096) * 4096, new_len.div_ceil(4096) * 4096);
    if new_pages <= old_pages {
        if new_pages < old_pages {
            // SAFETY: the tail of the program's own mapping, which it gives up.
            unsafe { munmap((old as usize + new_pages) as *mut c_void, old_pages - new_pages) };
        }
        return old;
    }
    if flags & libc::MREMAP_MAYMOVE == 0 {
        return fail(ENOMEM);
    }
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    // SAFETY: a new mapping at an address of the zone's or the kernel's choosing.
    let new = unsafe { mmap(core::ptr::null_mut(), new_len, rw, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0) };
    if new == libc::MAP_FAILED {
        return new;
    }
    // SAFETY: the old mapping is the program's, `old_len` readable bytes (its contract); the
    // new one is fresh and longer; they do not overlap.
    unsafe { core::ptr::copy_nonoverlapping(old as *const u8, new as *mut u8, old_len) };
    // SAFETY: the old mapping is the program's, which it gives up by moving it.
    unsafe { munmap(old, old_pages) };
    new
}

/// The fork handlers are registered (at the first placement).
static FORK_HANDLERS: AtomicBool = AtomicBool::new(false);

/// Takes the zone's lock for `fork()`, so that no thread is inside it when the address space
/// is copied (released by [`after_fork`] on both sides).
unsafe extern "C" fn before_fork() {
    ZONE.raw_lock();
}

/// Releases the lock [`before_fork`] took (in the child, the forking thread is its only one).
unsafe extern "C" fn after_fork() {
    // SAFETY: before_fork took the lock in this thread, without a guard.
    unsafe { ZONE.force_unlock() };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_interpreter_shaped_mappings_are_placed() {
        let rw = libc::PROT_READ | libc::PROT_WRITE;
        let anon = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
        assert!(placeable(0, 1 << 20, rw, anon));
        assert!(placeable(0, 128 << 10, rw, anon));
        assert!(!placeable(0, 4096, rw, anon), "small");
        assert!(!placeable(0, 2 << 20, rw, anon), "large");
        assert!(!placeable(0x7000_0000, 1 << 20, rw, anon), "an address asked");
        assert!(!placeable(0, 1 << 20, libc::PROT_NONE, anon), "a reservation");
        assert!(!placeable(0, 1 << 20, rw, anon | libc::MAP_STACK), "a thread stack");
        assert!(!placeable(0, 1 << 20, rw, anon | libc::MAP_NORESERVE));
        assert!(!placeable(0, 1 << 20, rw, libc::MAP_SHARED | libc::MAP_ANONYMOUS), "shared");
    }

    #[test]
    fn runs_are_found_highest_first() {
        let mut bits = [0u64; WORDS];
        assert_eq!(find_run(&bits, PAGES), Some(0));
        set_bits(&mut bits, 120, PAGES - 120, true);
        set_bits(&mut bits, 0, 16, true);
        set_bits(&mut bits, 20, 96, true);
        assert_eq!(find_run(&bits, 4), Some(116));
        assert_eq!(find_run(&bits, 5), None);
        assert!(count_bits(&bits, 15, 2) == 1 && count_bits(&bits, 16, 4) == 0);
        set_bits(&mut bits, 0, PAGES, true);
        assert_eq!(find_run(&bits, 1), None);
    }

    /// Ruby's heap pages: 8 pages mapped, the lower 4 unmapped at once (the aligned half kept).
    /// Placed highest first, the kept halves lie side by side and every page but the lowest
    /// half's is in use: the chunk holds 63 of them, not 32.
    #[test]
    fn mappings_cut_in_half_pack_without_holes() {
        let mut bits = [0u64; WORDS];
        let mut kept = 0;
        while let Some(p) = find_run(&bits, 8) {
            set_bits(&mut bits, p, 8, true);
            set_bits(&mut bits, p, 4, false);
            kept += 1;
        }
        assert_eq!(kept, PAGES / 4 - 1);
        let used: u32 = bits.iter().map(|w| w.count_ones()).sum();
        assert_eq!(used as usize, PAGES - 4);
    }
}
