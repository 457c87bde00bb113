//! Address space and memory: reserving, committing with a page kind, giving back, collapsing
//! into transparent huge pages again, and the metadata mappings.

use super::errno;
use crate::pagekind::PageKind;

/// Reserves `len` bytes of address space aligned to `align` (a power of two, at least 4 KiB),
/// inaccessible (`PROT_NONE`) and uncharged (`MAP_NORESERVE`). Returns its address.
pub fn reserve(len: usize, align: usize) -> Option<usize> {
    debug_assert!(align.is_power_of_two() && align >= 4096 && len % 4096 == 0);
    let total = len.checked_add(align)?;
    // SAFETY: an anonymous PROT_NONE mapping at an address of the kernel's choosing touches no
    // existing memory.
    let p = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            total,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return None;
    }
    let start = p as usize;
    let aligned = (start + align - 1) & !(align - 1);
    let head = aligned - start;
    let tail = total - head - len;
    // SAFETY: both pieces lie inside the mapping just made and belong to nobody else.
    unsafe {
        if head > 0 {
            libc::munmap(p, head);
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
    // SAFETY: a fresh anonymous mapping at an address of the kernel's choosing.
    let p = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED { None } else { Some(p as usize) }
}

/// Unmaps `[start, start + len)`.
///
/// # Safety
/// The range must be a mapping hugeheap made (by [`reserve`] or [`map_metadata`]) that nothing
/// refers to any more.
pub unsafe fn unmap(start: usize, len: usize) {
    debug_assert!(start % 4096 == 0 && len % 4096 == 0);
    // SAFETY: caller's contract: the range is ours and unused.
    unsafe { libc::munmap(start as *mut libc::c_void, len) };
}

/// Backs `[addr, addr + len)`, which lies inside the arena reservation and is `PROT_NONE`,
/// with pages of `kind`. On success the range is readable, writable and zero.
///
/// hugetlb memory is mapped without `MAP_NORESERVE`, so the pool pages are reserved now and a
/// pool that runs dry shows up here as an error, never later as a SIGBUS on first touch.
/// `thp_always` says whether THP is in `always` mode (then `4k` needs `MADV_NOHUGEPAGE`).
///
/// # Safety
/// `[addr, addr + len)` must be a `PROT_NONE` part of a reservation made by [`reserve`] that
/// nothing else uses; `addr` and `len` must be multiples of the kind's page size.
pub unsafe fn commit(addr: usize, len: usize, kind: PageKind, thp_always: bool) -> Result<(), i32> {
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
                // SAFETY: the range is ours (see above); NOREPLACE never clobbers a mapping.
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
            // SAFETY: the range is our own reservation (caller's contract).
            if unsafe { libc::mprotect(ptr, len, libc::PROT_READ | libc::PROT_WRITE) } != 0 {
                return Err(errno());
            }
            let advice = if kind == PageKind::Thp {
                Some(libc::MADV_HUGEPAGE)
            } else if thp_always {
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
    // SAFETY: caller's contract: the range is ours and unused.
    unsafe { libc::madvise(addr as *mut libc::c_void, len, libc::MADV_DONTNEED) == 0 }
}

/// Asks the kernel to back `[addr, addr + len)` with transparent huge pages again now
/// (`MADV_COLLAPSE`, Linux 6.1+), after copy-on-write has split them. False if it could not
/// (an older kernel, no free huge page, pages still shared with a child).
pub fn collapse(addr: usize, len: usize) -> bool {
    const MADV_COLLAPSE: libc::c_int = 25;
    // SAFETY: the range is committed heap memory; collapsing keeps its contents.
    unsafe { libc::madvise(addr as *mut libc::c_void, len, MADV_COLLAPSE) == 0 }
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
}
