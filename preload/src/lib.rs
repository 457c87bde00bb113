//! `libhugeheap.so`: the whole C allocation API with glibc's semantics, on hugeheap, for
//! `LD_PRELOAD` (or `hugeheap run`). Each export is a thin wrapper around the library's C API
//! (`hugeheap::internal::c`, where the semantics are written down); the Rust code inside the
//! library allocates from the same heap (hugeheap is its global allocator). One export is not
//! an allocation function: `prctl`, so that a program switching THP off for itself keeps THP
//! for its heap (`HUGEHEAP_THP_OFF`).
//!
//! Safe from the first call: the dynamic loader and constructors call `malloc` before `main`;
//! hugeheap's start-up reads the environment through `environ` and allocates nothing.
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

use core::ffi::{c_char, c_int, c_void};
use heap::HugeAlloc;
use heap::internal::c;

#[global_allocator]
static A: HugeAlloc = HugeAlloc::new();

/// # Safety
/// C `malloc`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn malloc(size: usize) -> *mut c_void {
    // SAFETY: C's contract, passed on.
    unsafe { c::malloc(size) }
}

/// # Safety
/// C `free`: `p` is null or a live allocation.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn free(p: *mut c_void) {
    // SAFETY: C's contract, passed on.
    unsafe { c::free(p) }
}

/// # Safety
/// C `calloc`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn calloc(n: usize, size: usize) -> *mut c_void {
    // SAFETY: C's contract, passed on.
    unsafe { c::calloc(n, size) }
}

/// # Safety
/// C `realloc`: `p` is null or a live allocation.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    // SAFETY: C's contract, passed on.
    unsafe { c::realloc(p, size) }
}

/// # Safety
/// C `reallocarray`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn reallocarray(p: *mut c_void, n: usize, size: usize) -> *mut c_void {
    // SAFETY: C's contract, passed on.
    unsafe { c::reallocarray(p, n, size) }
}

/// # Safety
/// C `posix_memalign`: `out` is a valid pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> i32 {
    // SAFETY: C's contract, passed on.
    unsafe { c::posix_memalign(out, align, size) }
}

/// # Safety
/// C `aligned_alloc`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    // SAFETY: C's contract, passed on.
    unsafe { c::aligned_alloc(align, size) }
}

/// # Safety
/// glibc `memalign`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memalign(align: usize, size: usize) -> *mut c_void {
    // SAFETY: C's contract, passed on.
    unsafe { c::memalign(align, size) }
}

/// # Safety
/// `valloc`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valloc(size: usize) -> *mut c_void {
    // SAFETY: C's contract, passed on.
    unsafe { c::valloc(size) }
}

/// # Safety
/// `pvalloc`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pvalloc(size: usize) -> *mut c_void {
    // SAFETY: C's contract, passed on.
    unsafe { c::pvalloc(size) }
}

/// # Safety
/// `malloc_usable_size`: `p` is null or a live allocation.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn malloc_usable_size(p: *mut c_void) -> usize {
    // SAFETY: C's contract, passed on.
    unsafe { c::malloc_usable_size(p) }
}

/// # Safety
/// C23 `free_sized`: as `free` (the size is not needed).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn free_sized(p: *mut c_void, _size: usize) {
    // SAFETY: C's contract, passed on.
    unsafe { c::free(p) }
}

/// # Safety
/// C23 `free_aligned_sized`: as `free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn free_aligned_sized(p: *mut c_void, _align: usize, _size: usize) {
    // SAFETY: C's contract, passed on.
    unsafe { c::free(p) }
}

/// glibc `mallinfo2`: hugeheap's figures.
#[unsafe(no_mangle)]
pub extern "C" fn mallinfo2() -> c::MallInfo2 {
    c::mallinfo2()
}

/// glibc `mallinfo` (figures cut at `INT_MAX`).
#[unsafe(no_mangle)]
pub extern "C" fn mallinfo() -> c::MallInfo {
    c::mallinfo()
}

/// glibc `malloc_trim`: free huge pages beyond `pad` go back to the OS now.
#[unsafe(no_mangle)]
pub extern "C" fn malloc_trim(pad: usize) -> c_int {
    c::malloc_trim(pad)
}

/// glibc `malloc_stats`: the figures on stderr.
#[unsafe(no_mangle)]
pub extern "C" fn malloc_stats() {
    c::malloc_stats()
}

/// glibc `mallopt`: accepted, without effect (said once).
#[unsafe(no_mangle)]
pub extern "C" fn mallopt(param: c_int, value: c_int) -> c_int {
    c::mallopt(param, value)
}

/// # Safety
/// jemalloc `mallctl`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mallctl(
    name: *const c_char,
    oldp: *mut c_void,
    oldlenp: *mut usize,
    newp: *mut c_void,
    newlen: usize,
) -> c_int {
    // SAFETY: jemalloc's contract, passed on.
    unsafe { c::mallctl(name, oldp, oldlenp, newp, newlen) }
}

/// jemalloc `nallocx`.
#[unsafe(no_mangle)]
pub extern "C" fn nallocx(size: usize, flags: c_int) -> usize {
    c::nallocx(size, flags)
}

/// # Safety
/// jemalloc `sallocx`: `p` is a live allocation.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sallocx(p: *const c_void, flags: c_int) -> usize {
    // SAFETY: jemalloc's contract, passed on.
    unsafe { c::sallocx(p, flags) }
}

/// # Safety
/// jemalloc `malloc_stats_print`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn malloc_stats_print(write_cb: c::WriteCb, cbopaque: *mut c_void, opts: *const c_char) {
    // SAFETY: jemalloc's contract, passed on.
    unsafe { c::malloc_stats_print(write_cb, cbopaque, opts) }
}

/// Linux `prctl`, declared `int prctl(int option, ...)`: the five integer-register arguments
/// are read as named ones, as glibc's wrapper does (the x86-64 and AArch64 calling conventions
/// pass a variadic call's integer arguments in the same registers). `PR_SET_THP_DISABLE` keeps
/// THP for the heap (`HUGEHEAP_THP_OFF`); everything else goes to the kernel as made.
///
/// # Safety
/// glibc `prctl`: the arguments an option reads as pointers are valid for it.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn prctl(
    option: c_int,
    arg2: core::ffi::c_ulong,
    arg3: core::ffi::c_ulong,
    arg4: core::ffi::c_ulong,
    arg5: core::ffi::c_ulong,
) -> c_int {
    // SAFETY: glibc's contract, passed on.
    unsafe { c::prctl(option, arg2, arg3, arg4, arg5) }
}

/// # Safety
/// C `mmap`: a program's small anonymous mappings are placed in THP chunks (`HUGEHEAP_MMAP`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mmap(
    addr: *mut c_void,
    len: usize,
    prot: c_int,
    flags: c_int,
    fd: c_int,
    off: i64,
) -> *mut c_void {
    // SAFETY: glibc's contract, passed on.
    unsafe { c::mmap(addr, len, prot, flags, fd, off) }
}

/// # Safety
/// glibc `mmap64` (the same call on 64-bit targets).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mmap64(
    addr: *mut c_void,
    len: usize,
    prot: c_int,
    flags: c_int,
    fd: c_int,
    off: i64,
) -> *mut c_void {
    // SAFETY: glibc's contract, passed on.
    unsafe { c::mmap(addr, len, prot, flags, fd, off) }
}

/// # Safety
/// C `munmap`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn munmap(addr: *mut c_void, len: usize) -> c_int {
    // SAFETY: glibc's contract, passed on.
    unsafe { c::munmap(addr, len) }
}

/// # Safety
/// C `mprotect`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mprotect(addr: *mut c_void, len: usize, prot: c_int) -> c_int {
    // SAFETY: glibc's contract, passed on.
    unsafe { c::mprotect(addr, len, prot) }
}

/// Linux `mremap`, declared `void *mremap(void *old, size_t old_len, size_t new_len, int flags,
/// ...)`: the optional fifth argument is read as a named one, as for [`prctl`].
///
/// # Safety
/// glibc `mremap`.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mremap(
    old: *mut c_void,
    old_len: usize,
    new_len: usize,
    flags: c_int,
    new_addr: *mut c_void,
) -> *mut c_void {
    // SAFETY: glibc's contract, passed on.
    unsafe { c::mremap(old, old_len, new_len, flags, new_addr) }
}

/// # Safety
/// C `madvise`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn madvise(addr: *mut c_void, len: usize, advice: c_int) -> c_int {
    // SAFETY: glibc's contract, passed on.
    unsafe { c::madvise(addr, len, advice) }
}
