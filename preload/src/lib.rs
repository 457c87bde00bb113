//! `libhugeheap.so`: the whole C allocation API with glibc's semantics, on hugeheap, for
//! `LD_PRELOAD` (or `hugeheap run`). The Rust code inside the library allocates from the same
//! heap (it is this library's global allocator).
//!
//! Safe from the first call: the dynamic loader and constructors call `malloc` before `main`;
//! hugeheap's start-up reads the environment through `environ` and allocates nothing. Errors
//! follow glibc: NULL with `errno = ENOMEM`; `calloc` and `reallocarray` detect overflow;
//! `realloc(p, 0)` frees `p` and returns NULL; `free(NULL)` does nothing; `posix_memalign`
//! returns `EINVAL` for an alignment that is not a power of two multiple of `sizeof(void *)`.
//! Pointers hugeheap did not hand out (from the loader's early allocator) are ignored by
//! `free`.
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

use core::ffi::c_void;
use core::ptr;
use heap::os::{EINVAL, ENOMEM, set_errno};
use heap::{Config, HugeAlloc, alloc};

#[global_allocator]
static A: HugeAlloc = HugeAlloc::new();

/// glibc's `MALLOC_ALIGNMENT` on x86_64: what `malloc` guarantees.
const MIN_ALIGN: usize = 16;
const PAGE: usize = 4096;

fn cfg() -> &'static Config {
    A.config()
}

/// Allocates or sets errno.
#[inline]
fn checked(p: *mut u8) -> *mut c_void {
    if p.is_null() {
        set_errno(ENOMEM);
    }
    p.cast()
}

/// # Safety
/// C `malloc`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn malloc(size: usize) -> *mut c_void {
    // SAFETY: MIN_ALIGN is a power of two.
    checked(unsafe { alloc::alloc(cfg(), size, MIN_ALIGN) })
}

/// # Safety
/// C `free`: `p` is null or a live allocation.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn free(p: *mut c_void) {
    // SAFETY: caller's contract; foreign pointers are ignored by alloc::free.
    unsafe { alloc::free(p.cast()) }
}

/// # Safety
/// C `calloc`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn calloc(n: usize, size: usize) -> *mut c_void {
    let Some(total) = n.checked_mul(size) else {
        set_errno(ENOMEM);
        return ptr::null_mut();
    };
    // SAFETY: MIN_ALIGN is a power of two.
    checked(unsafe { alloc::alloc_zeroed(cfg(), total, MIN_ALIGN) })
}

/// # Safety
/// C `realloc`: `p` is null or a live allocation.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
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
    // SAFETY: p is live (caller; a pointer that is not ours aborts in `alloc::realloc`, as
    // glibc's "realloc(): invalid pointer" does). C does not say how many bytes are meaningful:
    // `usize::MAX` lets `alloc::realloc` keep all of the block's usable bytes, which it looks up
    // once for both the copy and the in-place decision.
    unsafe { checked(alloc::realloc(cfg(), p.cast(), usize::MAX, size, MIN_ALIGN)) }
}

/// # Safety
/// C `reallocarray`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn reallocarray(p: *mut c_void, n: usize, size: usize) -> *mut c_void {
    match n.checked_mul(size) {
        // SAFETY: as realloc.
        Some(total) => unsafe { realloc(p, total) },
        None => {
            set_errno(ENOMEM);
            ptr::null_mut()
        }
    }
}

/// Aligned allocation; `align` is already a power of two.
fn aligned(align: usize, size: usize) -> *mut c_void {
    // SAFETY: align is a power of two (checked by every caller).
    checked(unsafe { alloc::alloc(cfg(), size, align.max(MIN_ALIGN)) })
}

/// # Safety
/// C `posix_memalign`: `out` is a valid pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> i32 {
    if !align.is_power_of_two() || align % size_of::<*mut c_void>() != 0 {
        return EINVAL;
    }
    let e = heap::os::errno();
    let p = aligned(align, size);
    if p.is_null() {
        set_errno(e); // posix_memalign reports through its result, not errno
        return ENOMEM;
    }
    // SAFETY: out is valid (caller).
    unsafe { *out = p };
    0
}

/// # Safety
/// C `aligned_alloc` (C11; an alignment that is not a power of two gets EINVAL, as in glibc
/// 2.38 and later).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    if !align.is_power_of_two() {
        set_errno(EINVAL);
        return ptr::null_mut();
    }
    aligned(align, size)
}

/// # Safety
/// C `memalign` (glibc: an alignment that is not a power of two is rounded up to one).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memalign(align: usize, size: usize) -> *mut c_void {
    match align.checked_next_power_of_two() {
        Some(a) => aligned(a, size),
        None => {
            set_errno(EINVAL);
            ptr::null_mut()
        }
    }
}

/// # Safety
/// C `valloc`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valloc(size: usize) -> *mut c_void {
    aligned(PAGE, size)
}

/// # Safety
/// C `pvalloc` (the size is rounded up to whole pages; 0 gets one page).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pvalloc(size: usize) -> *mut c_void {
    match size.max(1).checked_next_multiple_of(PAGE) {
        Some(s) => aligned(PAGE, s),
        None => {
            set_errno(ENOMEM);
            ptr::null_mut()
        }
    }
}

/// # Safety
/// C `malloc_usable_size`: `p` is null or a live allocation.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn malloc_usable_size(p: *mut c_void) -> usize {
    if p.is_null() {
        return 0;
    }
    // SAFETY: p is live (caller).
    unsafe { alloc::usable_size(p.cast()) }
}

/// # Safety
/// C23 `free_sized`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn free_sized(p: *mut c_void, _size: usize) {
    // SAFETY: as free.
    unsafe { free(p) }
}

/// # Safety
/// C23 `free_aligned_sized`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn free_aligned_sized(p: *mut c_void, _align: usize, _size: usize) {
    // SAFETY: as free.
    unsafe { free(p) }
}
