//! Address space and memory: reserving, committing with a page kind, giving back, collapsing
//! into transparent huge pages again, and the metadata mappings.

use super::errno;
use crate::pagekind::PageKind;

/// Reserves `len` bytes of address space aligned to `align` (a power of two, at least 4 KiB),
/// inaccessible (`PROT_NONE`) and uncharged (`MAP_NORESERVE`). Returns its address.
pub fn reserve(len: usize, align: usize) -> Option<usize> {
    debug_assert!(align.is_power_of_two() && align >= 4096 && len % 4096 == 0);
    let total = len.checked_add(align)?;
    let start = map_fresh(total, libc::PROT_NONE, libc::MAP_PRIVATE | libc::MAP_NORESERVE)?;
    let aligned = (start + align - 1) & !(align - 1);
    let head = aligned - start;
    let tail = total - head - len;
    // SAFETY: both pieces lie inside the mapping just made and belong to nobody else.
    unsafe {
        if head > 0 {
            libc::munmap(start as *mut libc::c_void, head);
        }
        if tail > 0 {
            libc::munmap((aligned + len) as *mut libc::c_void, tail);
        }
    }
    Some(aligned)
}

/// Maps `len` bytes of zeroed, readable and writable memory for allocator metadata, lazily
/// backed by 4 KiB pages. Returns its address.
pub fn map_metadata(len: usize) -> Option<usize> {
    map_fresh(len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_NORESERVE)
}

/// A new zeroed mapping of `len` bytes that `fork()` does not copy: the child finds it zeroed
/// again, and the parent's pages are not write-protected, so the parent writes them after a
/// fork without a page fault (`MADV_WIPEONFORK`). `None` where the kernel cannot wipe one
/// (before Linux 4.14), or the mapping fails.
pub fn map_wiped_on_fork(len: usize) -> Option<usize> {
    let a = map_fresh(len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE)?;
    // SAFETY: advice on the mapping just made, which nothing else knows of.
    if unsafe { libc::madvise(a as *mut libc::c_void, len, libc::MADV_WIPEONFORK) } != 0 {
        // SAFETY: the mapping just made, unused.
        unsafe { unmap(a, len) };
        return None;
    }
    Some(a)
}

/// A new anonymous mapping of `len` bytes (`prot`, `MAP_ANONYMOUS | flags`) at an address of
/// the kernel's choosing. Returns its address.
fn map_fresh(len: usize, prot: libc::c_int, flags: libc::c_int) -> Option<usize> {
    // SAFETY: a fresh anonymous mapping at an address of the kernel's choosing touches no
    // existing memory.
    let p = unsafe { libc::mmap(core::ptr::null_mut(), len, prot, flags | libc::MAP_ANONYMOUS, -1, 0) };
    if p == libc::MAP_FAILED { None } else { Some(p as usize) }
}

/// Unmaps `[start, start + len)`.
///
/// # Safety
/// The range must be a mapping hugeheap made (by [`reserve`] or [`map_metadata`]) that nothing
/// refers to any more.
pub unsafe fn unmap(start: usize, len: usize) {
    debug_assert!(start % 4096 == 0 && len % 4096 == 0);
    // SAFETY: the range is a mapping hugeheap made that nothing refers to any more (this
    // function's contract): unmapping it invalidates no live reference.
    unsafe { libc::munmap(start as *mut libc::c_void, len) };
}

/// Asks for THP on `[addr, addr + len)`, committed memory of 4 KiB pages (`MADV_HUGEPAGE`):
/// new faults there take huge pages, and `MADV_COLLAPSE` or khugepaged may collapse what is
/// already there. Returns the errno when the kernel refuses.
///
/// # Safety
/// The range must be committed memory of the arena (advice changes no contents, but on
/// another mapping it would change that mapping's behaviour).
pub unsafe fn advise_huge(addr: usize, len: usize) -> Result<(), i32> {
    debug_assert!(addr % 4096 == 0 && len % 4096 == 0 && len > 0);
    // SAFETY: the range is committed memory of the arena (this function's contract), and
    // MADV_HUGEPAGE changes no contents.
    match unsafe { libc::madvise(addr as *mut libc::c_void, len, libc::MADV_HUGEPAGE) } {
        0 => Ok(()),
        _ => Err(errno()),
    }
}

/// Backs `[addr, addr + len)`, which lies inside the arena reservation and is `PROT_NONE`,
/// with pages of `kind`. On success the range is readable, writable and zero.
///
/// hugetlb memory is mapped without `MAP_NORESERVE`, so the pool pages are reserved now and a
/// pool that runs dry shows up here as an error, never later as a SIGBUS on first touch.
/// `no_thp` asks, for 4 KiB pages, that THP stay away (`MADV_NOHUGEPAGE`: under THP `always`,
/// where 4 KiB pages were asked for).
///
/// # Safety
/// `[addr, addr + len)` must be a `PROT_NONE` part of a reservation made by [`reserve`] that
/// nothing else uses; `addr` and `len` must be multiples of the kind's page size.
pub unsafe fn commit(addr: usize, len: usize, kind: PageKind, no_thp: bool) -> Result<(), i32> {
    debug_assert!(addr % kind.page_size().max(4096) == 0 && len % kind.page_size().max(4096) == 0);
    let ptr = addr as *mut libc::c_void;
    match kind {
        PageKind::Gib1 | PageKind::Mib2 => {
            let size_flag = if kind == PageKind::Gib1 { libc::MAP_HUGE_1GB } else { libc::MAP_HUGE_2MB };
            // SAFETY: the caller guarantees the range is our own PROT_NONE reservation, so
            // replacing it with MAP_FIXED destroys nothing anyone uses. If the pool cannot
            // reserve the pages, the kernel fails before it touches the range.
            let p = unsafe {
                libc::mmap(
                    ptr,
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED | libc::MAP_HUGETLB | size_flag,
                    -1,
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                let e = errno();
                // Older kernels may have dropped the old mapping before failing: put the
                // reservation back. NOREPLACE keeps this harmless where it is still there.
                // SAFETY: the range lies in the arena reservation (this function's contract);
                // MAP_FIXED_NOREPLACE fails rather than replace a mapping still there.
                unsafe {
                    libc::mmap(
                        ptr,
                        len,
                        libc::PROT_NONE,
                        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_FIXED_NOREPLACE,
                        -1,
                        0,
                    )
                };
                return Err(e);
            }
            if p != ptr {
                // Cannot happen with MAP_FIXED; treat as a refusal rather than trust it.
                return Err(libc::EINVAL);
            }
            Ok(())
        }
        PageKind::Thp | PageKind::Small => {
            // SAFETY: the range lies in the arena reservation and holds nothing yet (this
            // function's contract): making it readable and writable exposes no other memory.
            if unsafe { libc::mprotect(ptr, len, libc::PROT_READ | libc::PROT_WRITE) } != 0 {
                return Err(errno());
            }
            let advice = if kind == PageKind::Thp {
                Some(libc::MADV_HUGEPAGE)
            } else if no_thp {
                Some(libc::MADV_NOHUGEPAGE)
            } else {
                None
            };
            if let Some(advice) = advice {
                // SAFETY: advice on our own mapping; it changes no contents.
                if unsafe { libc::madvise(ptr, len, advice) } != 0 {
                    let e = errno();
                    if kind == PageKind::Thp {
                        // Undo, so the caller can fall back to 4 KiB pages cleanly.
                        // SAFETY: same range, ours.
                        unsafe { libc::mprotect(ptr, len, libc::PROT_NONE) };
                        return Err(e);
                    }
                }
            }
            Ok(())
        }
    }
}

/// Gives the physical memory of `[addr, addr + len)` back to the OS; the range stays mapped and
/// reads as zero afterwards. Only for anonymous (THP or 4 KiB) chunks: a private hugetlb page
/// that was given back could not be faulted in again once its pool runs dry (SIGBUS).
///
/// # Safety
/// The range must be a committed anonymous part of the arena holding no live allocation.
pub unsafe fn release(addr: usize, len: usize) -> bool {
    debug_assert!(addr % 4096 == 0 && len % 4096 == 0);
    // SAFETY: the range is a committed anonymous part of the arena holding no live
    // allocation (this function's contract), so zeroing it loses nothing anyone reads.
    unsafe { libc::madvise(addr as *mut libc::c_void, len, libc::MADV_DONTNEED) == 0 }
}

/// The kernel refused [`move_memory`] once (before Linux 5.7, `MREMAP_DONTUNMAP` is unknown):
/// the page heap stops asking.
static MOVE_REFUSED: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Moves the memory of `[from, from + len)` to `[to, to + len)`, page tables and all, without
/// copying or faulting it in again (`mremap` with `MREMAP_DONTUNMAP`): `to` afterwards holds
/// what `from` held, `from` stays mapped and reads as zero, as after [`release`]. Whole THP
/// huge pages move as they are. The memory at `to` keeps the mapping offset it had at `from`,
/// so the kernel makes it a mapping of its own unless its neighbours' offsets follow on
/// ([`renew_thp`] gives a range its own again). False, with nothing changed, when the kernel
/// refuses (and from then on without asking).
///
/// # Safety
/// Both ranges must be committed anonymous memory of the arena, 2 MiB aligned, apart, with the
/// same protection and advice; nothing may live at `to` (it is replaced) and nothing may
/// refer to `from`'s contents any more except through `to`.
pub unsafe fn move_memory(from: usize, to: usize, len: usize) -> bool {
    debug_assert!(from % (2 << 20) == 0 && to % (2 << 20) == 0 && len % (2 << 20) == 0 && len > 0);
    debug_assert!(from + len <= to || to + len <= from);
    if MOVE_REFUSED.load(core::sync::atomic::Ordering::Relaxed) {
        return false;
    }
    let flags = libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED | libc::MREMAP_DONTUNMAP;
    // SAFETY: both ranges are committed anonymous arena memory (this function's contract);
    // `to` holds nothing live, so replacing it loses nothing, and `from`'s contents are wanted
    // only at `to`.
    let p = unsafe { libc::mremap(from as *mut libc::c_void, len, len, flags, to as *mut libc::c_void) };
    if p == libc::MAP_FAILED {
        if errno() == libc::EINVAL {
            MOVE_REFUSED.store(true, core::sync::atomic::Ordering::Relaxed);
        }
        return false;
    }
    debug_assert_eq!(p as usize, to);
    true
}

/// What [`renew_thp`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Renewed {
    /// The range is a fresh zeroed THP mapping with its own offset.
    Yes,
    /// The kernel refused; the range is mapped as before.
    Kept,
    /// The kernel dropped the old mapping and could not map the range again: a hole, which
    /// nothing may be placed in.
    Lost,
}

/// Maps `[addr, addr + len)` afresh, zeroed, readable and writable and advised for THP, as a
/// commit of THP memory maps it: the range gets back the mapping offset of its address, so
/// that the kernel merges it with its neighbours again after [`move_memory`] left it one of
/// its own.
///
/// # Safety
/// The range must be committed anonymous THP memory of the arena holding nothing live.
pub unsafe fn renew_thp(addr: usize, len: usize) -> Renewed {
    debug_assert!(addr % 4096 == 0 && len % 4096 == 0 && len > 0);
    let prot = libc::PROT_READ | libc::PROT_WRITE;
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
    let ptr = addr as *mut libc::c_void;
    // SAFETY: the range is arena memory holding nothing live (this function's contract):
    // replacing it destroys nothing anyone uses.
    let mut p = unsafe { libc::mmap(ptr, len, prot, flags | libc::MAP_FIXED, -1, 0) };
    if p == libc::MAP_FAILED {
        // Kernels before 6.12 may have unmapped the range before failing: fill the hole, if
        // there is one (NOREPLACE fails where the old mapping is still there).
        // SAFETY: as above; NOREPLACE replaces nothing.
        p = unsafe { libc::mmap(ptr, len, prot, flags | libc::MAP_FIXED_NOREPLACE, -1, 0) };
        if p == libc::MAP_FAILED {
            return if errno() == libc::EEXIST { Renewed::Kept } else { Renewed::Lost };
        }
    }
    if p != ptr {
        // Only the second try, on a kernel that takes NOREPLACE as a hint (before 4.17), maps
        // elsewhere: the range was a hole, and still is.
        // SAFETY: the mapping just made elsewhere, which nothing knows of.
        unsafe { libc::munmap(p, len) };
        return Renewed::Lost;
    }
    // SAFETY: advice on the mapping just made; it changes no contents. Refused, the range is
    // memory of 4 KiB pages, correct all the same.
    unsafe { libc::madvise(ptr, len, libc::MADV_HUGEPAGE) };
    Renewed::Yes
}

/// Asks the kernel to back `[addr, addr + len)` with transparent huge pages again now
/// (`MADV_COLLAPSE`, Linux 6.1+), after copy-on-write has split them. The error is the errno:
/// `EAGAIN` when some page was busy (locked, in use elsewhere: worth another try later),
/// `ENOMEM` when no huge page could be had, `EINVAL` on kernels without `MADV_COLLAPSE`.
pub fn collapse(addr: usize, len: usize) -> Result<(), i32> {
    const MADV_COLLAPSE: libc::c_int = 25;
    // SAFETY: the range is committed heap memory; collapsing keeps its contents.
    match unsafe { libc::madvise(addr as *mut libc::c_void, len, MADV_COLLAPSE) } {
        0 => Ok(()),
        _ => Err(errno()),
    }
}

/// Faults in `[addr, addr + len)` writable now, as a write by the program would
/// (`MADV_POPULATE_WRITE`, Linux 5.14+); pages already in memory are left as they are, so
/// what the range holds never changes. The error is the errno: `EINVAL` on kernels without
/// it, `ENOMEM`/`EFAULT` when the memory could not be had.
pub fn populate_write(addr: usize, len: usize) -> Result<(), i32> {
    const MADV_POPULATE_WRITE: libc::c_int = 23;
    // SAFETY: the range is committed heap memory; populating keeps its contents.
    match unsafe { libc::madvise(addr as *mut libc::c_void, len, MADV_POPULATE_WRITE) } {
        0 => Ok(()),
        _ => Err(errno()),
    }
}

/// `EINVAL`, for callers outside this module.
pub const EINVAL: i32 = libc::EINVAL;

/// `EAGAIN`, for callers outside this module.
pub const EAGAIN: i32 = libc::EAGAIN;

/// `struct pm_scan_arg` of <linux/fs.h>: a `PAGEMAP_SCAN` request.
#[repr(C)]
struct PmScanArg {
    size: u64,
    flags: u64,
    start: u64,
    end: u64,
    walk_end: u64,
    vec: u64,
    vec_len: u64,
    max_pages: u64,
    category_inverted: u64,
    category_mask: u64,
    category_anyof_mask: u64,
    return_mask: u64,
}

/// `struct page_region`: a run of pages of the same categories.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct PageRegion {
    start: u64,
    end: u64,
    categories: u64,
}

/// The category of pages mapped by a huge entry.
const PAGE_IS_HUGE: u64 = 1 << 6;
/// `_IOWR('f', 16, struct pm_scan_arg)`.
const PAGEMAP_SCAN: u64 = (3 << 30) | ((size_of::<PmScanArg>() as u64) << 16) | ((b'f' as u64) << 8) | 16;

/// `/proc/self/pagemap`, open: tells which 4 KiB pages of this process are present and which
/// of those are shared with another process (a forked child, or the parent that forked this
/// one), from the "present" and "exclusively mapped" bits. Closed when dropped. `O_CLOEXEC`
/// keeps it from programs the process execs, not from children it forks: only a thread whose
/// descriptor table is its own may open it (a child would read its parent's pagemap).
pub struct Pagemap {
    fd: libc::c_int,
}

impl Pagemap {
    const PRESENT: u64 = 1 << 63;
    const EXCLUSIVE: u64 = 1 << 56;

    /// Opens this process's pagemap; `None` if it cannot be read (a process that changed its
    /// user is not dumpable, and its /proc files are root's) or is not procfs's own (a /proc
    /// that is some other file system answers what it likes).
    pub fn open() -> Option<Pagemap> {
        // SAFETY: opening a file read-only with a NUL-terminated path.
        let fd = unsafe { libc::open(c"/proc/self/pagemap".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        if fd < 0 {
            return None;
        }
        let p = Pagemap { fd };
        super::files::is_procfs(fd).then_some(p)
    }

    /// Bytes of `[start, end)` mapped by huge page-table entries (a whole THP or hugetlb
    /// page), exactly for the range, as the kernel's `PAGEMAP_SCAN` request (Linux 6.7+)
    /// reports them; `None` where the kernel has no such request. (smaps' AnonHugePages counts
    /// whole mappings.)
    pub fn huge_bytes(&self, start: usize, end: usize) -> Option<usize> {
        debug_assert!(start % 4096 == 0 && end % 4096 == 0 && start <= end);
        let mut regions = [PageRegion::default(); 16];
        let (mut at, mut total) = (start, 0);
        while at < end {
            let mut arg = PmScanArg {
                size: size_of::<PmScanArg>() as u64,
                flags: 0,
                start: at as u64,
                end: end as u64,
                walk_end: 0,
                vec: regions.as_mut_ptr() as u64,
                vec_len: regions.len() as u64,
                max_pages: 0,
                category_inverted: 0,
                category_mask: PAGE_IS_HUGE,
                category_anyof_mask: 0,
                return_mask: PAGE_IS_HUGE,
            };
            // SAFETY: PAGEMAP_SCAN on our own pagemap: the kernel reads and writes `arg`, a
            // live pm_scan_arg of the size it states, and fills at most `vec_len` entries of
            // `regions`, which outlives the call; it writes nothing else.
            let n = unsafe { libc::ioctl(self.fd, PAGEMAP_SCAN as _, &mut arg) };
            if n < 0 {
                return None;
            }
            let found = &regions[..(n as usize).min(regions.len())];
            total += found.iter().map(|r| (r.end - r.start) as usize).sum::<usize>();
            if arg.walk_end as usize <= at {
                break;
            }
            at = arg.walk_end as usize;
        }
        Some(total)
    }

    /// Whether the 2 MiB at `addr` are mapped by one huge entry; `None` when the kernel cannot
    /// tell (no `PAGEMAP_SCAN`).
    pub fn whole(&self, addr: usize) -> Option<bool> {
        debug_assert!(addr % (2 << 20) == 0);
        self.huge_bytes(addr, addr + (2 << 20)).map(|b| b == 2 << 20)
    }

    /// Whether the 2 MiB at `addr` are mapped by one huge entry (nothing to collapse); false
    /// when they are not, or the kernel cannot tell.
    pub fn whole_huge(&self, addr: usize) -> bool {
        self.whole(addr) == Some(true)
    }

    /// Reads the entries of the pages from `addr` on into `out`; false on a short read.
    fn read(&self, addr: usize, out: &mut [u64]) -> bool {
        let bytes = core::mem::size_of_val(out);
        // SAFETY: reading into our own buffer of `bytes` bytes at the pages' offset.
        let got = unsafe { libc::pread(self.fd, out.as_mut_ptr().cast(), bytes, (addr / 4096 * 8) as libc::off_t) };
        got == bytes as isize
    }

    /// Of the 4 KiB pages of `[addr, addr + len)` (at most 2 MiB): how many are present, and
    /// how many of those are shared; `None` if they cannot be read. When the first page is
    /// present and shared, that answers whether the range is shared and the rest is not read
    /// (the answer is then `(1, 1)`): while a child lives, a sweep costs one 8-byte read per
    /// huge page. Otherwise all entries are read into a stack buffer, no allocation (the kernel
    /// walks 512 entries for a split 2 MiB page: docs/benchmarks.md, "Figures behind the
    /// code").
    pub fn sharing(&self, addr: usize, len: usize) -> Option<(usize, usize)> {
        debug_assert!(addr % 4096 == 0 && len % 4096 == 0 && len > 0 && len <= 2 << 20);
        let mut entries = [0u64; 512];
        let n = (len / 4096).min(512);
        if !self.read(addr, &mut entries[..1]) {
            return None;
        }
        if entries[0] & Self::PRESENT != 0 && entries[0] & Self::EXCLUSIVE == 0 {
            return Some((1, 1));
        }
        if n > 1 && !self.read(addr + 4096, &mut entries[1..n]) {
            return None;
        }
        let present = entries[..n].iter().filter(|&&e| e & Self::PRESENT != 0);
        let shared = present.clone().filter(|&&e| e & Self::EXCLUSIVE == 0).count();
        Some((present.count(), shared))
    }
}

impl Drop for Pagemap {
    fn drop(&mut self) {
        // SAFETY: closing the descriptor this value owns, once.
        unsafe { libc::close(self.fd) };
    }
}

/// Whether the page at `addr` (the first of a mapping's page: a whole hugetlb page) is in
/// memory (`mincore`: no /proc needed, and asking reads nothing, so a hugetlb hole takes no
/// page from the pool); `None` when the kernel will not say.
pub fn resident(addr: usize) -> Option<bool> {
    debug_assert!(addr % 4096 == 0);
    let mut v = 0u8;
    // SAFETY: one page asked, one byte of answer written into `v`.
    (unsafe { libc::mincore(addr as *mut libc::c_void, 1, &mut v) } == 0).then_some(v & 1 == 1)
}

/// Replaces the hugetlb memory `[addr, addr + len)` with anonymous memory advised for THP,
/// holding the same contents in the 2 MiB pieces `keep(i)` says are worth copying and that are
/// present ([`resident`]: a piece never touched is not read, since reading a private hugetlb
/// hole would take a page from the pool); the others read as zero. Returns false, with nothing
/// changed, when the memory for the copy cannot be had.
///
/// # Safety
/// `[addr, addr + len)` must be a whole hugetlb mapping of the arena (or whole 1 GiB pieces of
/// one) that no other thread touches meanwhile; `keep(i)` false only for pieces whose contents
/// do not matter.
pub unsafe fn move_to_anon(addr: usize, len: usize, keep: impl Fn(usize) -> bool) -> bool {
    // A piece whose presence cannot be asked is copied (the safe side for its contents).
    let copy = |i: usize| keep(i) && resident(addr + i * MOVE_PIECE).unwrap_or(true);
    // SAFETY: this function's contract is `move_over`'s, for anonymous memory.
    unsafe { move_over(addr, len, libc::MAP_PRIVATE, Some(libc::MADV_HUGEPAGE), copy) }
}

/// Replaces the anonymous memory `[addr, addr + len)` with private 2 MiB hugetlb pages holding
/// the same contents in the 2 MiB pieces `keep(i)` says are worth copying; the others read as
/// zero. The pool reserves every page before anything is copied: returns false, with nothing
/// changed, when it cannot, or when the kernel cannot move hugetlb mappings (before 5.17).
///
/// # Safety
/// `[addr, addr + len)` must be committed anonymous memory of the arena, 2 MiB aligned, that
/// nothing else reads or writes meanwhile (no other thread, no signal handler); `keep(i)`
/// false only for pieces whose contents do not matter.
pub unsafe fn move_to_hugetlb(addr: usize, len: usize, keep: impl Fn(usize) -> bool) -> bool {
    let flags = libc::MAP_PRIVATE | libc::MAP_HUGETLB | libc::MAP_HUGE_2MB;
    // SAFETY: this function's contract is `move_over`'s.
    unsafe { move_over(addr, len, flags, None, keep) }
}

/// The unit [`move_to_anon`] and [`move_to_hugetlb`] copy in.
const MOVE_PIECE: usize = 2 << 20;

/// Maps `len` fresh bytes with `flags` (and `advice`), copies into them the 2 MiB pieces of
/// `[addr, addr + len)` that `copy(i)` names, and moves the new mapping over the old one in
/// one step (`mremap`), so that the range never reads as anything but its contents. False,
/// with nothing changed, when the new mapping cannot be made or moved.
///
/// # Safety
/// `[addr, addr + len)` must be a mapping of the arena, `MOVE_PIECE` aligned, that nothing
/// else reads or writes meanwhile; `copy(i)` false only for pieces whose contents do not
/// matter.
unsafe fn move_over(
    addr: usize,
    len: usize,
    flags: libc::c_int,
    advice: Option<libc::c_int>,
    copy: impl Fn(usize) -> bool,
) -> bool {
    debug_assert!(addr % MOVE_PIECE == 0 && len % MOVE_PIECE == 0 && len > 0);
    let Some(new) = map_fresh(len, libc::PROT_READ | libc::PROT_WRITE, flags) else {
        return false;
    };
    let new = new as *mut libc::c_void;
    if let Some(advice) = advice {
        // SAFETY: advice on the mapping just made.
        unsafe { libc::madvise(new, len, advice) };
    }
    for i in 0..len / MOVE_PIECE {
        if copy(i) {
            // SAFETY: both ranges are mapped and `MOVE_PIECE` long at offset i; they do not
            // overlap.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    (addr + i * MOVE_PIECE) as *const u8,
                    (new as *mut u8).add(i * MOVE_PIECE),
                    MOVE_PIECE,
                )
            };
        }
    }
    // SAFETY: moves the new mapping over the old one (which the caller hands over whole).
    let moved =
        unsafe { libc::mremap(new, len, len, libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED, addr as *mut libc::c_void) };
    if moved == libc::MAP_FAILED {
        // SAFETY: the copy is ours and unused.
        unsafe { libc::munmap(new, len) };
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_is_aligned() {
        let a = reserve(8 << 20, 1 << 30).expect("reserve");
        assert_eq!(a % (1 << 30), 0);
        // SAFETY: unmapping the reservation just made, which nothing uses.
        unsafe { unmap(a, 8 << 20) };
    }

    #[test]
    fn resident_tells_touched_pages_from_holes() {
        let a = map_metadata(3 * 4096).expect("map");
        // SAFETY: the mapping just made is ours; its middle page is written.
        unsafe { *((a + 4096) as *mut u8) = 1 };
        assert_eq!(resident(a), Some(false));
        assert_eq!(resident(a + 4096), Some(true));
        // SAFETY: unmapping the mapping made above, which nothing else uses.
        unsafe { unmap(a, 3 * 4096) };
    }

    #[test]
    fn pagemap_sees_what_a_child_shares() {
        let len = 64 << 10;
        let a = map_metadata(len).expect("map");
        // SAFETY: the mapping just made is ours, `len` bytes long.
        unsafe { core::ptr::write_bytes(a as *mut u8, 1, len) };
        let pm = Pagemap::open().expect("pagemap");
        assert_eq!(pm.sharing(a, len), Some((16, 0)), "all present, none shared");
        // SAFETY: the child only sleeps and exits; it touches no lock or allocator.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: async-signal-safe calls only, in the child.
            unsafe {
                libc::sleep(30);
                libc::_exit(0);
            }
        }
        assert!(pid > 0);
        let shared = Pagemap::open().expect("pagemap").sharing(a, len);
        // SAFETY: ending and reaping our own child.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, core::ptr::null_mut(), 0);
        }
        assert_eq!(shared, Some((1, 1)), "the first page shared answers for the range");
        assert_eq!(pm.sharing(a, len), Some((16, 0)), "exclusive again once the child is gone");
        // SAFETY: unmapping the mapping made above, which nothing else uses.
        unsafe { unmap(a, len) };
    }

    #[test]
    fn pagemap_counts_huge_entries_only() {
        // 4 MiB of 4 KiB pages (no THP asked for, and refused outright): none is huge, whether
        // or not the kernel can tell (None: no PAGEMAP_SCAN before Linux 6.7).
        let len = 4 << 20;
        let a = map_metadata(len).expect("map");
        // SAFETY: advising and writing the mapping just made, ours, `len` bytes long.
        unsafe {
            libc::madvise(a as *mut libc::c_void, len, libc::MADV_NOHUGEPAGE);
            core::ptr::write_bytes(a as *mut u8, 1, len);
        }
        let pm = Pagemap::open().expect("pagemap");
        let huge = pm.huge_bytes(a, a + len);
        assert!(matches!(huge, Some(0) | None), "{huge:?}");
        assert!(!pm.whole_huge(a.next_multiple_of(2 << 20)));
        // SAFETY: unmapping the mapping made above, which nothing else uses.
        unsafe { unmap(a, len) };
    }
}
