//! What programs ask their malloc, answered with hugeheap's own figures: glibc's `mallinfo`,
//! `mallinfo2`, `malloc_stats`, `malloc_trim`, `mallopt`, and jemalloc's `mallctl` (the names
//! programs such as Redis read), `nallocx`, `sallocx`, `malloc_stats_print`. A program linked
//! against jemalloc and run under `libhugeheap.so` would otherwise ask an unused jemalloc.
//!
//! `mallctl` names answered: `epoch` (refreshes the figures, as jemalloc's does), `stats.*`
//! (`allocated`, `active`, `metadata`, `resident`, `mapped`, `retained`), `arenas.narenas`,
//! `arena.<i>.purge` and `arena.<i>.decay` (give free huge pages back now), `thread.tcache.flush`,
//! `background_thread` (reads false; writes accepted, without effect: hugeheap has no background
//! purging thread), `version`. Any other name: `ENOENT`, as jemalloc answers an unknown one.

use crate::heap::size_class::{SMALL_MAX, class_of, class_size, small_size_for};
use crate::os::{EINVAL, StackWriter, fatal_misuse};
use crate::stats::heap_stats;
use crate::stats::{Stats, stats, trim};
use crate::sync::SpinLock;
use crate::units::PAGE_SIZE;
use core::ffi::{CStr, c_char, c_int, c_void};
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, Ordering};

/// `ENOENT`: an unknown `mallctl` name.
const ENOENT: c_int = 2;

/// glibc's `struct mallinfo2`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct MallInfo2 {
    /// Bytes the heap has committed (glibc: non-mmapped space).
    pub arena: usize,
    /// Free chunks (glibc): wholly free huge pages here.
    pub ordblks: usize,
    /// Free fastbin blocks (glibc): 0.
    pub smblks: usize,
    /// Mmapped regions (glibc): 0.
    pub hblks: usize,
    /// Bytes in mmapped regions (glibc): 0; hugeheap's large allocations are in `arena`.
    pub hblkhd: usize,
    /// Unused (glibc).
    pub usmblks: usize,
    /// Free bytes in fastbins (glibc): 0.
    pub fsmblks: usize,
    /// Bytes in use.
    pub uordblks: usize,
    /// Free bytes: committed but not in use.
    pub fordblks: usize,
    /// Bytes `malloc_trim` could give back now: free huge pages still backed.
    pub keepcost: usize,
}

/// glibc's older `struct mallinfo` (ints: figures past 2 GiB are cut at `i32::MAX`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct MallInfo {
    /// As in [`MallInfo2`].
    pub arena: c_int,
    /// As in [`MallInfo2`].
    pub ordblks: c_int,
    /// As in [`MallInfo2`].
    pub smblks: c_int,
    /// As in [`MallInfo2`].
    pub hblks: c_int,
    /// As in [`MallInfo2`].
    pub hblkhd: c_int,
    /// As in [`MallInfo2`].
    pub usmblks: c_int,
    /// As in [`MallInfo2`].
    pub fsmblks: c_int,
    /// As in [`MallInfo2`].
    pub uordblks: c_int,
    /// As in [`MallInfo2`].
    pub fordblks: c_int,
    /// As in [`MallInfo2`].
    pub keepcost: c_int,
}

/// glibc `mallinfo2`.
pub fn mallinfo2() -> MallInfo2 {
    let s = heap_stats();
    MallInfo2 {
        arena: s.committed,
        ordblks: s.free / crate::units::HUGE_SIZE,
        uordblks: s.in_use,
        fordblks: s.committed.saturating_sub(s.in_use),
        keepcost: s.free.saturating_sub(s.released_now),
        ..MallInfo2::default()
    }
}

/// glibc `mallinfo`.
pub fn mallinfo() -> MallInfo {
    let m = mallinfo2();
    let int = |v: usize| v.min(c_int::MAX as usize) as c_int;
    MallInfo {
        arena: int(m.arena),
        ordblks: int(m.ordblks),
        uordblks: int(m.uordblks),
        fordblks: int(m.fordblks),
        keepcost: int(m.keepcost),
        ..MallInfo::default()
    }
}

/// glibc `malloc_trim`: gives free huge pages beyond `pad` bytes back to the OS now; 1 if any
/// memory went back, else 0.
pub fn malloc_trim(pad: usize) -> c_int {
    c_int::from(trim(pad) > 0)
}

/// glibc `malloc_stats`: the figures on stderr.
pub fn malloc_stats() {
    let mut w = StackWriter::<4096>::new();
    let _ = write!(w, "hugeheap:\n{}", stats());
    w.flush_stderr();
}

/// Whether `mallopt`'s having no effect has been said.
static SAID_MALLOPT: AtomicBool = AtomicBool::new(false);

/// glibc `mallopt`: accepted (1) whatever it asks, since hugeheap has none of glibc's arenas,
/// bins or thresholds to tune; says so once on stderr, with what tunes hugeheap instead.
pub fn mallopt(param: c_int, value: c_int) -> c_int {
    if !SAID_MALLOPT.swap(true, Ordering::Relaxed) {
        let mut w = StackWriter::<256>::new();
        let _ = writeln!(
            w,
            "hugeheap: mallopt({param}, {value}) has no effect (hugeheap has none of glibc's arenas or thresholds; \
             the HUGEHEAP_* variables tune it)"
        );
        w.flush_stderr();
    }
    1
}

/// The bytes a request of `size` gets (its size class, or whole 64 KiB pages), for an
/// alignment of `align`; 0 when no allocation of that size could succeed.
fn usable_for(size: usize, align: usize) -> usize {
    match small_size_for(size, align) {
        Some(s) => class_size(class_of(s.max(1))),
        None => size.checked_next_multiple_of(PAGE_SIZE).unwrap_or(0),
    }
}

/// The alignment jemalloc's `flags` ask for (`MALLOCX_LG_ALIGN`: the low 6 bits, log2).
fn flags_align(flags: c_int) -> usize {
    match flags & 0x3f {
        0 => 16,
        lg => 1usize.checked_shl(lg as u32).unwrap_or(0),
    }
}

/// jemalloc `nallocx`: the usable size `mallocx(size, flags)` would give, without allocating
/// (0 when it could not succeed).
pub fn nallocx(size: usize, flags: c_int) -> usize {
    let align = flags_align(flags);
    if align == 0 || size > isize::MAX as usize {
        return 0;
    }
    debug_assert!(usable_for(SMALL_MAX, 16) == SMALL_MAX);
    usable_for(size, align)
}

/// jemalloc `sallocx`: the usable size of `p`.
///
/// # Safety
/// `p` must be a live allocation of this heap.
pub unsafe fn sallocx(p: *const c_void, _flags: c_int) -> usize {
    if p.is_null() {
        fatal_misuse("sallocx(): null pointer", 0);
    }
    // SAFETY: p is live (caller).
    unsafe { super::alloc::usable_size(p as *mut u8) }
}

/// The figures `mallctl("stats.*")` reads, refreshed by writing `epoch` (as in jemalloc).
static SNAPSHOT: SpinLock<(u64, Option<Stats>)> = SpinLock::new((1, None));

fn snapshot(refresh: bool) -> (u64, Stats) {
    let mut g = SNAPSHOT.lock();
    if refresh || g.1.is_none() {
        g.0 += u64::from(refresh);
        g.1 = Some(heap_stats());
    }
    (g.0, g.1.unwrap_or_default())
}

/// Copies `value` out through `oldp`/`oldlenp` (if given), as jemalloc does: `EINVAL` when the
/// room differs from the value's size.
///
/// # Safety
/// `oldp` and `oldlenp` must be null or valid for `*oldlenp` and one `usize`.
unsafe fn read_out<T: Copy>(value: T, oldp: *mut c_void, oldlenp: *mut usize) -> c_int {
    if oldp.is_null() || oldlenp.is_null() {
        return 0;
    }
    // SAFETY: oldlenp is valid (caller).
    if unsafe { *oldlenp } != size_of::<T>() {
        return EINVAL;
    }
    // SAFETY: oldp holds size_of::<T>() bytes (caller, checked above).
    unsafe { (oldp as *mut T).write_unaligned(value) };
    0
}

/// jemalloc `mallctl`, for the names in the module doc.
///
/// # Safety
/// As jemalloc's: `name` a C string; `oldp`/`oldlenp` null or valid for `*oldlenp` bytes;
/// `newp` null or valid for `newlen` bytes.
pub unsafe fn mallctl(
    name: *const c_char,
    oldp: *mut c_void,
    oldlenp: *mut usize,
    newp: *mut c_void,
    newlen: usize,
) -> c_int {
    if name.is_null() {
        return EINVAL;
    }
    // SAFETY: name is a C string (caller).
    let name = unsafe { CStr::from_ptr(name) }.to_bytes();
    let stat = |f: fn(&Stats) -> usize| -> c_int {
        let (_, s) = snapshot(false);
        // SAFETY: `oldp`/`oldlenp` are null or valid as `read_out` asks (mallctl's contract).
        unsafe { read_out(f(&s), oldp, oldlenp) }
    };
    match name {
        b"epoch" => {
            let (epoch, _) = snapshot(!newp.is_null() && newlen == size_of::<u64>());
            // SAFETY: as just above: `oldp`/`oldlenp` as mallctl's contract gives them.
            unsafe { read_out(epoch, oldp, oldlenp) }
        }
        b"stats.allocated" => stat(|s| s.in_use),
        b"stats.active" => stat(|s| s.active),
        b"stats.metadata" => stat(|s| s.metadata),
        b"stats.resident" => stat(|s| s.committed - s.released_now + s.metadata),
        b"stats.mapped" => stat(|s| s.committed),
        b"stats.retained" => stat(|s| s.released_now),
        // SAFETY: `oldp`/`oldlenp` as mallctl's contract gives them, as `read_out` asks.
        b"arenas.narenas" => unsafe { read_out(1u32, oldp, oldlenp) },
        // SAFETY: the same.
        b"background_thread" => unsafe { read_out(false, oldp, oldlenp) },
        b"thread.tcache.flush" => 0,
        // SAFETY: the same; the string is static.
        b"version" => unsafe { read_out(c"hugeheap-0.1.0".as_ptr(), oldp, oldlenp) },
        n if n.starts_with(b"arena.") && (n.ends_with(b".purge") || n.ends_with(b".decay")) => {
            trim(0);
            0
        }
        _ => ENOENT,
    }
}

/// A `malloc_stats_print` write callback.
pub type WriteCb = Option<unsafe extern "C" fn(*mut c_void, *const c_char)>;

/// jemalloc `malloc_stats_print`: hugeheap's figures, through `write_cb` (or on stderr).
///
/// # Safety
/// `write_cb`, if given, must be callable with `cbopaque` and a C string.
pub unsafe fn malloc_stats_print(write_cb: WriteCb, cbopaque: *mut c_void, _opts: *const c_char) {
    let mut w = StackWriter::<4096>::new();
    let _ = write!(w, "___ Begin hugeheap statistics ___\n{}___ End hugeheap statistics ___\n\0", stats());
    match write_cb {
        // SAFETY: the buffer ends in a NUL (written above; a cut text keeps the NUL below).
        Some(cb) => unsafe {
            let bytes = w.as_bytes();
            let mut text = [0u8; 4097];
            text[..bytes.len()].copy_from_slice(bytes);
            cb(cbopaque, text.as_ptr().cast())
        },
        None => {
            let bytes = w.as_bytes();
            crate::os::stderr::write_stderr(&bytes[..bytes.len().saturating_sub(1)]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nallocx_gives_class_sizes_and_pages() {
        assert_eq!(nallocx(1, 0), 16);
        assert_eq!(nallocx(100, 0), 112);
        assert_eq!(nallocx(SMALL_MAX, 0), SMALL_MAX);
        assert_eq!(nallocx(SMALL_MAX + 1, 0), SMALL_MAX + PAGE_SIZE);
        assert_eq!(nallocx(10, 6), 64, "MALLOCX_LG_ALIGN(6)");
        assert_eq!(nallocx(usize::MAX, 0), 0);
    }

    #[test]
    fn mallctl_answers_sizes_and_refuses_unknown_names() {
        let mut v = 0usize;
        let mut len = size_of::<usize>();
        // SAFETY: valid pointers for a size_t.
        unsafe {
            assert_eq!(
                mallctl(c"stats.allocated".as_ptr(), (&raw mut v).cast(), &mut len, core::ptr::null_mut(), 0),
                0
            );
            assert_eq!(
                mallctl(c"no.such.name".as_ptr(), (&raw mut v).cast(), &mut len, core::ptr::null_mut(), 0),
                ENOENT
            );
            let mut short = 4usize;
            assert_eq!(
                mallctl(c"stats.active".as_ptr(), (&raw mut v).cast(), &mut short, core::ptr::null_mut(), 0),
                EINVAL
            );
            let mut n = 0u32;
            let mut nlen = 4usize;
            assert_eq!(
                mallctl(c"arenas.narenas".as_ptr(), (&raw mut n).cast(), &mut nlen, core::ptr::null_mut(), 0),
                0
            );
            assert_eq!(n, 1);
        }
    }
}
