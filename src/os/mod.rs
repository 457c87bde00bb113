//! The OS contract: every system call hugeheap makes goes through this module, and `libc::`
//! appears nowhere else in the crate.
//!
//! Preconditions common to every function here:
//! - none of them allocates through the global allocator (they may run inside `malloc`);
//! - none of them panics;
//! - addresses and lengths passed to the mapping functions are page aligned and lie inside a
//!   mapping that hugeheap made itself (the arena or the metadata region).
//!
//! Linux only: the crate refuses to build elsewhere (see `lib.rs`).

use core::ffi::CStr;
use core::fmt;

pub mod probe;

pub use probe::{OsInfo, ThpMode};

/// The kinds of page that can back a chunk of the heap, best first.
///
/// ```
/// use hugeheap::PageKind;
///
/// assert_eq!(PageKind::ALL, [PageKind::Gib1, PageKind::Mib2, PageKind::Thp, PageKind::Small]);
/// assert_eq!(PageKind::Mib2.name(), "2m"); // the name HUGEHEAP_PAGES uses
/// assert!(PageKind::Gib1.is_hugetlb() && !PageKind::Thp.is_hugetlb());
/// assert_eq!(PageKind::Thp.page_size(), 2 << 20);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum PageKind {
    /// hugetlb, 1 GiB pages (`MAP_HUGETLB | MAP_HUGE_1GB`).
    Gib1 = 0,
    /// hugetlb, 2 MiB pages (`MAP_HUGETLB | MAP_HUGE_2MB`).
    Mib2 = 1,
    /// Transparent huge pages: anonymous memory advised with `MADV_HUGEPAGE`.
    Thp = 2,
    /// Plain 4 KiB pages (`MADV_NOHUGEPAGE` where THP is `always`, so that `4k` means it).
    Small = 3,
}

impl PageKind {
    /// All kinds, best first; `ALL[k as usize] == k`.
    pub const ALL: [PageKind; 4] = [PageKind::Gib1, PageKind::Mib2, PageKind::Thp, PageKind::Small];

    /// The name used in `HUGEHEAP_PAGES` and in messages.
    pub const fn name(self) -> &'static str {
        match self {
            PageKind::Gib1 => "1g",
            PageKind::Mib2 => "2m",
            PageKind::Thp => "thp",
            PageKind::Small => "4k",
        }
    }

    /// Whether this kind comes from a hugetlb pool.
    pub const fn is_hugetlb(self) -> bool {
        matches!(self, PageKind::Gib1 | PageKind::Mib2)
    }

    /// The size of one page of this kind (THP and 4k memory is committed in 2 MiB units).
    pub const fn page_size(self) -> usize {
        match self {
            PageKind::Gib1 => 1 << 30,
            PageKind::Mib2 | PageKind::Thp => 2 << 20,
            PageKind::Small => 4 << 10,
        }
    }

    /// The sysfs directory of this kind's hugetlb pool.
    const fn pool_dir(self) -> &'static str {
        match self {
            PageKind::Gib1 => "/sys/kernel/mm/hugepages/hugepages-1048576kB/",
            _ => "/sys/kernel/mm/hugepages/hugepages-2048kB/",
        }
    }
}

impl fmt::Display for PageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

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

/// Reserves `len` bytes of address space aligned to `align` (a power of two, at least 4 KiB),
/// inaccessible (`PROT_NONE`) and uncharged (`MAP_NORESERVE`). Returns its address.
pub fn reserve(len: usize, align: usize) -> Option<usize> {
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

/// Why a page kind was passed over for a chunk of the heap ([`Fallback::reason`](crate::Fallback)).
///
/// ```rust,standalone_crate
/// use hugeheap::{HugeAlloc, PageKind, Refusal};
///
/// #[global_allocator]
/// static A: HugeAlloc = HugeAlloc::new();
///
/// let v = vec![0u8; 8 << 20];
/// let s = hugeheap::stats();
/// for kind in PageKind::ALL {
///     if let Some(why) = s.fallback(kind).reason {
///         println!("{kind} passed over: {}", why.describe()); // e.g. "2m passed over: pool empty"
///         assert_ne!(why, Refusal::None);
///     }
/// }
/// # drop(v);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Refusal {
    /// Not refused (the zero value of counters).
    None = 0,
    /// The hugetlb pool had no free page (read from sysfs before trying).
    PoolEmpty = 1,
    /// The kernel refused the mapping (errno kept beside).
    MapFailed = 2,
    /// The chunk was too small or misaligned for this kind.
    Misfit = 3,
    /// This kind is off on this machine (THP `never`, no hugetlb support).
    Unsupported = 4,
    /// This kind failed recently; it is not retried until the pool has changed.
    Remembered = 5,
    /// The pool's free pages are kept for copy-on-write after fork (`HUGEHEAP_COW_RESERVE`).
    CowReserve = 6,
}

impl Refusal {
    /// A short human description.
    pub const fn describe(self) -> &'static str {
        match self {
            Refusal::None => "-",
            Refusal::PoolEmpty => "pool empty",
            Refusal::MapFailed => "mmap refused",
            Refusal::Misfit => "chunk too small or misaligned",
            Refusal::Unsupported => "unsupported here",
            Refusal::Remembered => "failed before, pool unchanged",
            Refusal::CowReserve => "rest of pool kept for copy-on-write",
        }
    }
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

/// Reads a file of at most `buf.len()` bytes into `buf`, without allocating. Returns the
/// number of bytes read, or `None` if it cannot be opened.
pub fn read_file(path: &CStr, buf: &mut [u8]) -> Option<usize> {
    // SAFETY: path is NUL-terminated; the flags open read-only.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    let mut n = 0;
    while n < buf.len() {
        // SAFETY: the destination is the unfilled tail of `buf`.
        let r = unsafe { libc::read(fd, buf[n..].as_mut_ptr().cast(), buf.len() - n) };
        if r <= 0 {
            break;
        }
        n += r as usize;
    }
    // SAFETY: fd was opened above and is closed once.
    unsafe { libc::close(fd) };
    Some(n)
}

/// Reads a sysfs/procfs file holding one decimal number.
pub fn read_number(path: &CStr) -> Option<usize> {
    let mut buf = [0u8; 32];
    let n = read_file(path, &mut buf)?;
    parse_decimal(buf.get(..n)?)
}

/// Parses leading ASCII digits (after optional spaces) of `s`.
pub fn parse_decimal(s: &[u8]) -> Option<usize> {
    let s = trim(s);
    let mut v: usize = 0;
    let mut any = false;
    for &c in s {
        if !c.is_ascii_digit() {
            break;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as usize)?;
        any = true;
    }
    any.then_some(v)
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if first.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    s
}

/// Free pages of a hugetlb pool that a new private mapping could reserve now
/// (`free_hugepages - resv_hugepages`), plus the surplus the pool may still grow by
/// (`nr_overcommit_hugepages - surplus_hugepages`). `None` where sysfs cannot be read.
pub fn pool_available(kind: PageKind) -> Option<usize> {
    let mut path = [0u8; 96];
    let read = |path: &mut [u8; 96], file: &str| -> Option<usize> {
        let dir = kind.pool_dir().as_bytes();
        let f = file.as_bytes();
        let len = dir.len() + f.len();
        if len + 1 > path.len() {
            return None;
        }
        path[..dir.len()].copy_from_slice(dir);
        path[dir.len()..len].copy_from_slice(f);
        path[len] = 0;
        let c = CStr::from_bytes_with_nul(&path[..=len]).ok()?;
        read_number(c)
    };
    let free = read(&mut path, "free_hugepages")?;
    let resv = read(&mut path, "resv_hugepages").unwrap_or(0);
    let over = read(&mut path, "nr_overcommit_hugepages").unwrap_or(0);
    let surplus = read(&mut path, "surplus_hugepages").unwrap_or(0);
    Some(free.saturating_sub(resv) + over.saturating_sub(surplus))
}

/// Writes `bytes` to standard error, ignoring failure (nothing better can be done inside
/// `malloc`).
pub fn write_stderr(bytes: &[u8]) {
    write_fd(2, bytes);
}

/// Reports heap misuse found by the allocator (`hugeheap: free(): double free detected:
/// 0x...`) and aborts the process, as glibc does: going on would corrupt the heap silently.
#[cold]
#[inline(never)]
pub fn fatal_misuse(what: &str, p: usize) -> ! {
    use core::fmt::Write;
    let mut w = StackWriter::<160>::new();
    let _ = writeln!(w, "hugeheap: {what}: {p:#x}");
    w.flush_stderr();
    // SAFETY: abort has no preconditions; it does not return.
    unsafe { libc::abort() }
}

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

/// A duplicate of standard error (close-on-exec, numbered 64 or above, out of the way of
/// programs that expect the lowest free descriptors), for reports written at exit: programs
/// such as coreutils close fd 2 in their own exit handler, before hugeheap's runs. Falls back
/// to 2.
pub fn stderr_dup() -> i32 {
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) on fd 2 creates a new descriptor or fails.
    let fd = unsafe { libc::fcntl(2, libc::F_DUPFD_CLOEXEC, 64) };
    if fd < 0 { 2 } else { fd }
}

/// Writes `bytes` to `fd`, ignoring failure.
pub fn write_fd(fd: i32, bytes: &[u8]) {
    let mut rest = bytes;
    while !rest.is_empty() {
        // SAFETY: rest is a valid readable slice.
        let r = unsafe { libc::write(fd, rest.as_ptr().cast(), rest.len()) };
        if r <= 0 {
            return;
        }
        rest = &rest[r as usize..];
    }
}

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

/// Writes `pid N (name)` for this process (its `comm`), for messages that must say which
/// process of a program's family speaks.
pub fn write_process(w: &mut impl fmt::Write) -> fmt::Result {
    let mut comm = [0u8; 32];
    let n = read_file(c"/proc/self/comm", &mut comm).unwrap_or(0);
    let name = core::str::from_utf8(&comm[..n]).unwrap_or("?").trim_end();
    write!(w, "pid {} ({name})", pid())
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

/// Yields the CPU (lock back-off).
#[inline]
pub fn yield_now() {
    // SAFETY: sched_yield has no preconditions.
    unsafe { libc::sched_yield() };
}

/// A thread-specific key whose destructor runs at thread exit, created without allocating
/// (glibc keeps the first 32 keys' values in the thread descriptor).
pub type ThreadKey = libc::pthread_key_t;

/// Creates a thread key with `dtor`, run at thread exit with the value set in that thread.
pub fn thread_key_create(dtor: unsafe extern "C" fn(*mut core::ffi::c_void)) -> Option<ThreadKey> {
    let mut key: ThreadKey = 0;
    // SAFETY: key is a valid out-pointer; dtor is a valid function for the process's life.
    (unsafe { libc::pthread_key_create(&mut key, Some(dtor)) } == 0).then_some(key)
}

/// Sets this thread's value of `key` (non-null values get the destructor at thread exit).
/// The value is stored, never dereferenced, by the C library.
pub fn thread_key_set(key: ThreadKey, value: usize) {
    // SAFETY: key was created by thread_key_create; the value is only stored.
    unsafe { libc::pthread_setspecific(key, value as *const core::ffi::c_void) };
}

/// Registers fork handlers (`runtime.rs` says what hugeheap's do).
pub fn atfork(prepare: unsafe extern "C" fn(), parent: unsafe extern "C" fn(), child: unsafe extern "C" fn()) {
    // SAFETY: the handlers are plain functions valid for the process's life.
    unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
}

/// Registers a function to run at normal process exit.
pub fn atexit(f: extern "C" fn()) {
    // SAFETY: f is valid for the process's life.
    unsafe { libc::atexit(f) };
}

/// A fixed buffer that implements `fmt::Write`, for formatting without allocating.
/// Output past its capacity is cut.
pub struct StackWriter<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> StackWriter<N> {
    /// An empty writer.
    pub const fn new() -> Self {
        StackWriter { buf: [0; N], len: 0 }
    }
    /// What has been written.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
    /// Writes the contents to standard error.
    pub fn flush_stderr(&mut self) {
        self.flush_to(2);
    }

    /// Writes the contents to `fd`.
    pub fn flush_to(&mut self, fd: i32) {
        write_fd(fd, self.as_bytes());
        self.len = 0;
    }
}

impl<const N: usize> Default for StackWriter<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> fmt::Write for StackWriter<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = N - self.len;
        let n = s.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::fmt::Write;

    #[test]
    fn parse_decimal_reads_leading_digits() {
        assert_eq!(parse_decimal(b" 42\n"), Some(42));
        assert_eq!(parse_decimal(b"0"), Some(0));
        assert_eq!(parse_decimal(b"x1"), None);
        assert_eq!(parse_decimal(b"99999999999999999999999"), None);
    }

    #[test]
    fn stack_writer_cuts_at_capacity() {
        let mut w = StackWriter::<4>::new();
        write!(w, "abcdef").unwrap();
        assert_eq!(w.as_bytes(), b"abcd");
    }

    #[test]
    fn reserve_is_aligned() {
        let a = reserve(8 << 20, 1 << 30).expect("reserve");
        assert_eq!(a % (1 << 30), 0);
        // SAFETY: unmapping the reservation just made.
        unsafe { libc::munmap(a as *mut _, 8 << 20) };
    }

    #[test]
    fn env_var_finds_path() {
        assert!(env_var(b"PATH").is_some());
        assert!(env_var(b"HUGEHEAP_SURELY_NOT_SET_XYZ").is_none());
    }
}
