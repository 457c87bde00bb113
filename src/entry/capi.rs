//! The C allocation API with glibc's semantics, for `libhugeheap.so` (which exports each of
//! these under its C name). Not part of the crate's public API: reached through
//! [`crate::internal`].
//!
//! Errors follow glibc: NULL with `errno = ENOMEM`; `calloc` and `reallocarray` detect
//! overflow; `realloc(p, 0)` frees `p` and returns NULL; `free(NULL)` does nothing;
//! `posix_memalign` returns `EINVAL` for an alignment that is not a power of two multiple of
//! `sizeof(void *)`. A pointer hugeheap did not hand out aborts `free` and `realloc` with a
//! message naming the misuse, as glibc's "free(): invalid pointer" does.

use super::alloc;
use crate::options::Config;
use crate::os::{self, EINVAL, ENOMEM};
use core::ffi::c_void;
use core::ptr;

/// glibc's `MALLOC_ALIGNMENT` on x86_64: what `malloc` guarantees.
const MIN_ALIGN: usize = 16;
/// The page size `valloc` and `pvalloc` align to.
const PAGE: usize = crate::units::OS_PAGE_SIZE;

/// The C API starts the heap with the option table's defaults (and the environment).
const CFG: &Config = &Config::DEFAULT;

/// `p`, with `errno = ENOMEM` when it is null.
#[inline]
fn checked(p: *mut u8) -> *mut c_void {
    if p.is_null() {
        os::set_errno(ENOMEM);
    }
    p.cast()
}

/// C `malloc`.
///
/// # Safety
/// None beyond C's: the memory is the caller's until it is passed to `free` or `realloc`.
#[inline]
pub unsafe fn malloc(size: usize) -> *mut c_void {
    // SAFETY: MIN_ALIGN is a power of two.
    let p = unsafe { alloc::alloc_fast(size, MIN_ALIGN) };
    if !p.is_null() {
        return p.cast();
    }
    malloc_slow(size)
}

/// `malloc` past the fast path, out of line so that the fast path saves no register.
#[cold]
#[inline(never)]
fn malloc_slow(size: usize) -> *mut c_void {
    checked(alloc::alloc_slow(CFG, size, MIN_ALIGN))
}

/// C `free`.
///
/// # Safety
/// `p` must be null or a live allocation of this heap, not used afterwards.
#[inline]
pub unsafe fn free(p: *mut c_void) {
    // SAFETY: `p` is null or a live allocation of this heap, not used afterwards (this
    // function's contract, `alloc::free`'s too); misuse that can be seen cheaply aborts there.
    unsafe { alloc::free(p.cast()) }
}

/// C `calloc`.
///
/// # Safety
/// As for [`malloc`].
#[inline]
pub unsafe fn calloc(n: usize, size: usize) -> *mut c_void {
    let Some(total) = n.checked_mul(size) else {
        os::set_errno(ENOMEM);
        return ptr::null_mut();
    };
    // SAFETY: MIN_ALIGN is a power of two.
    checked(unsafe { alloc::alloc_zeroed(CFG, total, MIN_ALIGN) })
}

/// C `realloc`.
///
/// # Safety
/// `p` must be null or a live allocation of this heap; on success it must not be used again.
#[inline]
pub unsafe fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    if p.is_null() {
        // SAFETY: as malloc.
        return unsafe { malloc(size) };
    }
    if size == 0 {
        // glibc: realloc(p, 0) frees p and returns NULL.
        // SAFETY: p is live (caller).
        unsafe { free(p) };
        return ptr::null_mut();
    }
    // SAFETY: p is live (caller; a pointer that is not ours aborts in `alloc::realloc`). C does
    // not say how many bytes are meaningful: `usize::MAX` keeps all of the block's usable
    // bytes, which `alloc::realloc` looks up once for both the copy and the in-place decision.
    unsafe { checked(alloc::realloc(CFG, p.cast(), usize::MAX, size, MIN_ALIGN)) }
}

/// C `reallocarray`.
///
/// # Safety
/// As for [`realloc`].
#[inline]
pub unsafe fn reallocarray(p: *mut c_void, n: usize, size: usize) -> *mut c_void {
    match n.checked_mul(size) {
        // SAFETY: as realloc.
        Some(total) => unsafe { realloc(p, total) },
        None => {
            os::set_errno(ENOMEM);
            ptr::null_mut()
        }
    }
}

/// Aligned allocation; `align` is a power of two.
fn aligned(align: usize, size: usize) -> *mut c_void {
    debug_assert!(align.is_power_of_two());
    // SAFETY: align is a power of two (checked by every caller).
    checked(unsafe { alloc::alloc(CFG, size, align.max(MIN_ALIGN)) })
}

/// C `posix_memalign`.
///
/// # Safety
/// `out` must be valid for a pointer write.
#[inline]
pub unsafe fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> i32 {
    debug_assert!(!out.is_null());
    if !align.is_power_of_two() || align % size_of::<*mut c_void>() != 0 {
        return EINVAL;
    }
    let e = os::errno();
    let p = aligned(align, size);
    if p.is_null() {
        os::set_errno(e); // posix_memalign reports through its result, not errno
        return ENOMEM;
    }
    // SAFETY: out is valid (caller).
    unsafe { *out = p };
    0
}

/// C11 `aligned_alloc` (an alignment that is not a power of two gets `EINVAL`, as in glibc
/// 2.38 and later).
///
/// # Safety
/// As for [`malloc`].
#[inline]
pub unsafe fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    if !align.is_power_of_two() {
        os::set_errno(EINVAL);
        return ptr::null_mut();
    }
    aligned(align, size)
}

/// glibc `memalign` (an alignment that is not a power of two is rounded up to one).
///
/// # Safety
/// As for [`malloc`].
#[inline]
pub unsafe fn memalign(align: usize, size: usize) -> *mut c_void {
    match align.checked_next_power_of_two() {
        Some(a) => aligned(a, size),
        None => {
            os::set_errno(EINVAL);
            ptr::null_mut()
        }
    }
}

/// `valloc`: page-aligned.
///
/// # Safety
/// As for [`malloc`].
#[inline]
pub unsafe fn valloc(size: usize) -> *mut c_void {
    aligned(PAGE, size)
}

/// `pvalloc`: page-aligned, the size rounded up to whole pages (0 gets one page).
///
/// # Safety
/// As for [`malloc`].
#[inline]
pub unsafe fn pvalloc(size: usize) -> *mut c_void {
    match size.max(1).checked_next_multiple_of(PAGE) {
        Some(s) => aligned(PAGE, s),
        None => {
            os::set_errno(ENOMEM);
            ptr::null_mut()
        }
    }
}

/// `malloc_usable_size` (0 for null).
///
/// # Safety
/// `p` must be null or a live allocation of this heap.
#[inline]
pub unsafe fn malloc_usable_size(p: *mut c_void) -> usize {
    if p.is_null() {
        return 0;
    }
    // SAFETY: p is live (caller).
    unsafe { alloc::usable_size(p.cast()) }
}
