//! Facts of this process: errno, the environment (read without allocating), secure
//! execution, its id, its random seed, the machine's memory, a coarse clock.

use core::ffi::CStr;

/// The last OS error number of this thread.
#[inline]
pub fn errno() -> i32 {
    // SAFETY: __errno_location returns a valid pointer to this thread's errno.
    unsafe { *libc::__errno_location() }
}

/// Sets this thread's errno (the C API reports ENOMEM through it).
#[inline]
pub fn set_errno(e: i32) {
    // SAFETY: __errno_location returns a valid pointer to this thread's errno.
    unsafe { *libc::__errno_location() = e }
}

/// `ENOMEM`, for callers outside this module.
pub const ENOMEM: i32 = libc::ENOMEM;
/// `EINVAL`, for callers outside this module.
pub const EINVAL: i32 = libc::EINVAL;

/// 64 random bits the kernel gave the process at exec (AT_RANDOM), or a fixed pattern mixed
/// with an address if there are none.
pub fn random_word() -> usize {
    // SAFETY: getauxval has no preconditions; AT_RANDOM, when present, points to 16 bytes
    // that live for the process.
    unsafe {
        let p = libc::getauxval(libc::AT_RANDOM) as *const u8;
        if p.is_null() {
            return 0x9e37_79b9_7f4a_7c15 ^ (&raw const ADDRESS_SEED as usize);
        }
        usize::from_ne_bytes(core::ptr::read_unaligned(p.cast::<[u8; 8]>()))
    }
}

/// A static whose address (randomised by ASLR) seeds `random_word` without AT_RANDOM.
static ADDRESS_SEED: u8 = 0;

/// Whether this process runs in secure-execution mode (setuid, capabilities): then the
/// `HUGEHEAP_*` variables are ignored, as glibc ignores its malloc tunables.
pub fn secure_exec() -> bool {
    // SAFETY: getauxval has no preconditions.
    unsafe { libc::getauxval(libc::AT_SECURE) != 0 }
}

/// Finds `name` in the process environment by scanning `environ` directly: `getenv` is not
/// safe to call while the C library itself is still starting (the preload case), and std's
/// `env::var` allocates. The returned slice lives as long as the environment entry.
pub fn env_var(name: &[u8]) -> Option<&'static [u8]> {
    // SAFETY: environ is either null or a null-terminated array of NUL-terminated strings,
    // maintained by the C library; we only read it.
    unsafe {
        let mut p = libc::environ as *const *const libc::c_char;
        if p.is_null() {
            return None;
        }
        while !(*p).is_null() {
            let entry = CStr::from_ptr(*p).to_bytes();
            if entry.len() > name.len() && entry.starts_with(name) && entry[name.len()] == b'=' {
                return Some(&entry[name.len() + 1..]);
            }
            p = p.add(1);
        }
    }
    None
}

/// This process's id.
pub fn pid() -> u32 {
    // SAFETY: getpid has no preconditions.
    unsafe { libc::getpid() as u32 }
}

/// Whether THP is switched off for this process with `prctl(PR_SET_THP_DISABLE)` (by the
/// program itself — Redis does so when THP is `always` — or inherited from its parent). Then
/// `MADV_HUGEPAGE` still succeeds, but the kernel backs nothing with huge pages.
pub fn thp_disabled() -> bool {
    // SAFETY: PR_GET_THP_DISABLE reads a flag of this process; the other arguments must be 0.
    unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) == 1 }
}

/// Physical memory of the machine in bytes (0 if unknown).
pub fn physical_memory() -> usize {
    // SAFETY: sysconf has no preconditions.
    let (pages, size) = unsafe { (libc::sysconf(libc::_SC_PHYS_PAGES), libc::sysconf(libc::_SC_PAGESIZE)) };
    if pages <= 0 || size <= 0 { 0 } else { (pages as usize).saturating_mul(size as usize) }
}

/// Milliseconds of a coarse monotonic clock (a vDSO read, no system call), wrapping.
pub fn now_ms() -> u32 {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: t is a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut t) };
    (t.tv_sec as u64).wrapping_mul(1000).wrapping_add(t.tv_nsec as u64 / 1_000_000) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_var_finds_path() {
        assert!(env_var(b"PATH").is_some());
        assert!(env_var(b"HUGEHEAP_SURELY_NOT_SET_XYZ").is_none());
    }
}
