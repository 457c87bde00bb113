//! Threads and process events: yielding, thread-exit keys, fork and exit handlers. None of
//! these allocates through hugeheap (glibc keeps the first 32 keys' values in the thread
//! descriptor; `pthread_atfork` and `atexit` may call `malloc`, so callers register them only
//! once the allocator is ready).

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

/// Whether the C library knows of no thread but the calling one (glibc's
/// `__libc_single_threaded`, which it clears for good when a second thread is created; the
/// helper of [`spawn_helper`], unseen, leaves it set). No other thread of the C library can
/// then be inside anything the calling thread is not.
#[cfg(target_env = "gnu")]
pub fn c_library_single_threaded() -> bool {
    unsafe extern "C" {
        static __libc_single_threaded: core::ffi::c_char;
    }
    // SAFETY: a byte glibc (2.32 and later, which the library needs anyway) defines and
    // writes only when the process goes multi-threaded; read as it may change.
    unsafe { core::ptr::read_volatile(&raw const __libc_single_threaded) != 0 }
}

/// Elsewhere the answer is not known: treated as multi-threaded.
#[cfg(not(target_env = "gnu"))]
pub fn c_library_single_threaded() -> bool {
    false
}

/// Whether the calling thread is the process's only one: the C library knows of no other
/// ([`c_library_single_threaded`]) and the kernel counts one (`Threads:` of
/// `/proc/self/status`, which counts threads the C library does not know, hugeheap's helper
/// among them). False where either cannot say. Nothing can start another thread while the
/// calling one is busy with something else, so the answer holds until it returns.
pub fn only_thread() -> bool {
    if !c_library_single_threaded() {
        return false;
    }
    let mut buf = [0u8; 2048];
    let Some(n) = super::files::read_proc_file(c"/proc/self/status", &mut buf) else { return false };
    super::files::field_kib(&buf[..n], b"Threads:") == Some(1)
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

/// Starts a detached thread running `entry`, named `name` (at most 15 bytes, as the kernel
/// keeps them), with a small stack (`stack` bytes) and every signal blocked. Returns false if
/// it could not start. The C library maps the stack itself and may allocate the thread's TLS
/// with `malloc`: callers hold no allocator lock.
///
/// Signals: a process-directed signal goes to any thread that does not block it, so a thread
/// of ours that took signals would take the ones the program blocks in its own threads to
/// collect with `sigwait` or `signalfd` (and run their default action: for most, the end of
/// the process). The new thread starts with the creating thread's mask, so the creating
/// thread blocks everything for the moment of `pthread_create` and then puts its own mask
/// back.
pub fn spawn_detached(
    entry: extern "C" fn(*mut core::ffi::c_void) -> *mut core::ffi::c_void,
    name: &core::ffi::CStr,
    stack: usize,
) -> bool {
    debug_assert!(name.to_bytes().len() <= 15);
    let started = with_signals_blocked(|| {
        // SAFETY: attr is initialised before use and destroyed once; entry is valid for the
        // process's life and takes no argument (null); the thread id stays in this frame.
        unsafe {
            let mut attr: libc::pthread_attr_t = core::mem::zeroed();
            if libc::pthread_attr_init(&mut attr) != 0 {
                return false;
            }
            libc::pthread_attr_setdetachstate(&mut attr, libc::PTHREAD_CREATE_DETACHED);
            libc::pthread_attr_setstacksize(&mut attr, stack.max(libc::PTHREAD_STACK_MIN));
            let mut tid: libc::pthread_t = 0;
            let ok = libc::pthread_create(&mut tid, &attr, entry, core::ptr::null_mut()) == 0;
            libc::pthread_attr_destroy(&mut attr);
            if ok {
                libc::pthread_setname_np(tid, name.as_ptr());
            }
            ok
        }
    });
    // A thread that would take the program's signals is worse than no helper.
    started.unwrap_or(false)
}

/// Starts the allocator's helper thread running `entry(null)`, named `name`: where it can,
/// a thread the C library does not know ([`spawn_unseen`]: the process's forks stay on
/// glibc's single-threaded path), else a C library thread ([`spawn_detached`]).
///
/// Credentials are per thread to the kernel, and glibc changes them in every thread it knows
/// of (`setuid` and the like signal each one); a thread it does not know would keep the old
/// ones after a daemon drops root's. So the unseen thread holds no privilege: where the
/// process's credentials can never change (one user id, not root, for real, effective and
/// saved; one group id; no capability) it keeps them; where the process may change them and
/// can set user and group 65534 (`nobody`: root, or a process with `CAP_SETUID` and
/// `CAP_SETGID` whose user namespace maps 65534), the thread takes those and drops every
/// capability at its start ([`hold_no_privilege`], which the entry calls first, and which the
/// creating thread waits for: until then the thread holds the creator's ids); elsewhere,
/// or once that failed, the helper is a C library thread, whose credentials glibc keeps in
/// step with the program's.
pub fn spawn_helper(
    entry: extern "C" fn(*mut core::ffi::c_void) -> *mut core::ffi::c_void,
    name: &core::ffi::CStr,
    stack: usize,
) -> bool {
    use core::sync::atomic::Ordering::Relaxed;
    let unseen = !UNSEEN_REFUSED.load(Relaxed) && credentials() != Credentials::Changeable;
    HELPER_UNSEEN.store(unseen, Relaxed);
    HELPER_SETTLED.store(0, Relaxed);
    if unseen && spawn_unseen(entry, name, stack) {
        // The new thread holds the creating thread's credentials until `hold_no_privilege`
        // has run: this thread (one that may go on to drop them) waits for that.
        while HELPER_SETTLED.load(core::sync::atomic::Ordering::Acquire) == 0 {
            wait(&HELPER_SETTLED, 0, 100);
        }
        return true;
    }
    HELPER_UNSEEN.store(false, Relaxed);
    spawn_detached(entry, name, stack)
}

/// The helper of [`spawn_helper`] is a thread the C library does not know.
static HELPER_UNSEEN: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
/// 1 once the unseen helper has settled its credentials (`hold_no_privilege`).
static HELPER_SETTLED: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);
/// An unseen helper could not give up its privileges: helpers are C library threads from then on.
static UNSEEN_REFUSED: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// The user and group an unseen helper takes where the process may change its credentials.
const NOBODY: u32 = 65534;

/// What the calling thread's credentials allow (see [`spawn_helper`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Credentials {
    /// They can never change.
    Fixed,
    /// They may change, and the thread can take user and group [`NOBODY`].
    CanDrop,
    /// They may change, and the thread cannot take [`NOBODY`]'s.
    Changeable,
}

/// The calling thread's credentials, as [`Credentials`] sorts them.
fn credentials() -> Credentials {
    let Some(caps) = effective_and_permitted_caps() else {
        return Credentials::Changeable;
    };
    let (mut r, mut e, mut s) = (0, 0, 0);
    // SAFETY: getresuid writes three ids into our variables.
    let uids = unsafe { libc::getresuid(&mut r, &mut e, &mut s) } == 0;
    let one_user = uids && r != 0 && r == e && r == s;
    let (mut gr, mut ge, mut gs) = (0, 0, 0);
    // SAFETY: getresgid writes three ids into our variables.
    let gids = unsafe { libc::getresgid(&mut gr, &mut ge, &mut gs) } == 0;
    let one_group = gids && gr == ge && gr == gs;
    if one_user && one_group && caps == (0, 0) {
        return Credentials::Fixed;
    }
    // CAP_SETGID is 6, CAP_SETUID 7 (<linux/capability.h>).
    const SETID: u64 = 1 << 6 | 1 << 7;
    if caps.0 & SETID == SETID && maps_nobody(c"/proc/self/uid_map") && maps_nobody(c"/proc/self/gid_map") {
        return Credentials::CanDrop;
    }
    Credentials::Changeable
}

/// `struct __user_cap_header_struct`, version 3 (64-bit sets in two halves).
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

impl CapHeader {
    /// The calling thread's sets, version 3.
    fn this_thread() -> CapHeader {
        CapHeader { version: 0x2008_0522, pid: 0 }
    }
}

/// `struct __user_cap_data_struct`: one half of each set.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// The calling thread's effective and permitted capability sets.
fn effective_and_permitted_caps() -> Option<(u64, u64)> {
    let mut header = CapHeader::this_thread();
    let mut data = [CapData::default(); 2];
    // SAFETY: capget reads the header and writes two data structs (version 3), both ours.
    if unsafe { libc::syscall(libc::SYS_capget, &mut header as *mut CapHeader, data.as_mut_ptr()) } != 0 {
        return None;
    }
    let join = |lo: u32, hi: u32| u64::from(lo) | u64::from(hi) << 32;
    Some((join(data[0].effective, data[1].effective), join(data[0].permitted, data[1].permitted)))
}

/// Whether the id map at `path` (`/proc/self/uid_map` or `gid_map`) maps [`NOBODY`].
fn maps_nobody(path: &core::ffi::CStr) -> bool {
    let mut buf = [0u8; 1024];
    let Some(n) = super::files::read_proc_file(path, &mut buf) else {
        return false;
    };
    buf[..n].split(|&b| b == b'\n').any(|line| {
        let mut f = line.split(|&b| b == b' ').filter(|w| !w.is_empty()).map(super::files::parse_decimal);
        match (f.next(), f.next(), f.next()) {
            (Some(Some(inside)), Some(Some(_)), Some(Some(count))) => {
                (inside..inside.saturating_add(count)).contains(&(NOBODY as usize))
            }
            _ => false,
        }
    })
}

/// Called first by the helper's entry: makes sure the thread holds no privilege the program
/// might drop (see [`spawn_helper`]). A C library thread has nothing to do (glibc keeps its
/// credentials in step); an unseen one whose credentials can change takes user and group
/// [`NOBODY`] and drops every capability, through the system calls themselves (glibc's
/// wrappers would change every thread it knows). Returns false if the thread must not go on:
/// it could not; the next helper is a C library thread.
pub fn hold_no_privilege() -> bool {
    use core::sync::atomic::Ordering::{Relaxed, Release};
    if !HELPER_UNSEEN.load(Relaxed) {
        return true;
    }
    let settled = settle_credentials();
    HELPER_SETTLED.store(1, Release);
    wake(&HELPER_SETTLED);
    settled
}

/// [`hold_no_privilege`] for an unseen thread.
fn settle_credentials() -> bool {
    use core::sync::atomic::Ordering::Relaxed;
    match credentials() {
        Credentials::Fixed => return true,
        Credentials::Changeable => {}
        Credentials::CanDrop => {
            let n = NOBODY as libc::c_long;
            // SAFETY: each call changes only the calling thread's credentials (the raw system
            // calls, not glibc's process-wide wrappers); the group list is empty (null, 0).
            unsafe {
                libc::syscall(libc::SYS_setgroups, 0 as libc::c_long, core::ptr::null::<libc::gid_t>());
                libc::syscall(libc::SYS_setresgid, n, n, n);
                libc::syscall(libc::SYS_setresuid, n, n, n);
            }
            drop_capabilities();
            if credentials() == Credentials::Fixed {
                return true;
            }
        }
    }
    UNSEEN_REFUSED.store(true, Relaxed);
    false
}

/// Empties the calling thread's capability sets (what a change of user leaves, with
/// `SECBIT_KEEP_CAPS` set).
fn drop_capabilities() {
    let mut header = CapHeader::this_thread();
    let data = [CapData::default(); 2];
    // SAFETY: capset reads the header and two zeroed data structs (version 3): the calling
    // thread's sets become empty, which is always allowed.
    unsafe { libc::syscall(libc::SYS_capset, &mut header as *mut CapHeader, data.as_ptr()) };
}

/// Starts a thread running `entry(null)` that the C library does not know of, named `name` (at
/// most 15 bytes) before it runs, with a stack of `stack` bytes and every signal blocked (see [`spawn_detached`] for why); it leaves with
/// `exit` when `entry` returns (its stack is not given back). Returns false if it could not
/// start.
///
/// Why: glibc's `fork` takes a longer path in a process it knows to be multi-threaded (it
/// locks and unlocks its stdio list, its own malloc arenas and the NSS state around the
/// clone, so the parent and the child each fault on the pages those locks are on). A thread
/// made by `clone` directly is a thread to the kernel, not to glibc, and a fork then costs about
/// what it costs with no second thread (docs/benchmarks.md, "Figures behind the code").
///
/// The thread's own state: glibc keeps a thread's state (errno, the cancellation word) at
/// fixed offsets from the thread pointer, so the thread gets a thread pointer of its own: a
/// zeroed thread control block whose self pointers point to itself (what x86-64's TLS ABI asks
/// for), the creating thread's stack and pointer guards, and room below it for the static TLS
/// block (as far down as this thread's errno, plus a margin). A C library function the thread
/// calls finds itself in a thread of its own that is not cancelled, and writes its errno there.
/// What it must not use: dynamic TLS (no DTV), `pthread_self()`'s descriptor as a real one,
/// locale state, `malloc`: the entry runs only system-call wrappers and atomics.
#[cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))]
fn spawn_unseen(
    entry: extern "C" fn(*mut core::ffi::c_void) -> *mut core::ffi::c_void,
    name: &core::ffi::CStr,
    stack: usize,
) -> bool {
    const PAGE: usize = crate::units::OS_PAGE_SIZE;
    /// Room above the thread pointer: glibc's thread descriptor starts there (about 2.3 KiB).
    const ABOVE: usize = 16 << 10;
    /// Room below errno's place for the rest of the static TLS block.
    const MARGIN: usize = 64 << 10;
    let tp = thread_pointer();
    // SAFETY: __errno_location has no preconditions; only the address is used.
    let errno = unsafe { libc::__errno_location() } as usize;
    // Variant II TLS: the static block lies below the thread pointer.
    let Some(depth) = tp.checked_sub(errno).filter(|&d| d < 64 << 20) else {
        return false;
    };
    let below = (depth + MARGIN).next_multiple_of(PAGE);
    let stack = stack.next_multiple_of(PAGE);
    // [guard | stack | static TLS | control block and descriptor]: two mappings, as a C
    // library thread's stack is (each costs every fork a little). The stack grows down, away
    // from the TLS room, whose depth covers the C library's block with a margin.
    let len = PAGE + stack + below + ABOVE;
    let Some(base) = super::mem::map_metadata(len) else {
        return false;
    };
    let stack_top = base + PAGE + stack;
    let tcb = stack_top + below;
    // SAFETY: the guard is the first whole page of the mapping just made, used by nothing yet.
    let guarded = unsafe { libc::mprotect(base as *mut libc::c_void, PAGE, libc::PROT_NONE) == 0 };
    if !guarded {
        // SAFETY: the mapping just made, which nothing uses.
        unsafe { super::mem::unmap(base, len) };
        return false;
    }
    // The control block (tcbhead_t): its own address at 0 (`tcb`) and 16 (`self`); the guards
    // at 0x28 and 0x30 as this thread has them (code built with stack protection compares
    // against its own thread's copy; any value is consistent).
    for (offset, value) in [(0, tcb), (16, tcb), (0x28, read_fs(0x28)), (0x30, read_fs(0x30))] {
        // SAFETY: tcb + offset lies in the descriptor room of the mapping, which nothing
        // else uses yet; word-aligned (tcb is page-aligned).
        unsafe { *((tcb + offset) as *mut usize) = value };
    }
    // The entry point, for the new thread to pop from its stack.
    let sp = stack_top - 16;
    // SAFETY: the top of the new stack, in the mapping, used by nothing yet.
    unsafe { *(sp as *mut usize) = entry as usize };
    // The flags glibc's pthread_create gives clone, so that a seccomp policy written for
    // threads allows this one too. The descriptor table is shared until the helper makes its
    // own (`private_descriptors`, before it opens anything); the kernel writes the thread's id
    // into, and clears it at exit from, the last word of the descriptor room.
    let flags = libc::CLONE_VM
        | libc::CLONE_FS
        | libc::CLONE_FILES
        | libc::CLONE_SIGHAND
        | libc::CLONE_THREAD
        | libc::CLONE_SYSVSEM
        | libc::CLONE_SETTLS
        | libc::CLONE_PARENT_SETTID
        | libc::CLONE_CHILD_CLEARTID;
    let tid_word = tcb + ABOVE - 8;
    let started = with_signals_blocked(|| {
        let ret: isize;
        // SAFETY: the new thread runs on `sp` (its own stack in the mapping) with `tcb` as its
        // thread pointer; it pops `entry`, calls it with a null argument on a 16-byte-aligned
        // stack, and leaves with exit(0) without returning here; the kernel writes its id to
        // `tid_word` (in the mapping, used by nothing else) and clears it when it leaves. This
        // thread's side clobbers only rax, rcx and r11 and touches no stack.
        unsafe {
            core::arch::asm!(
                "syscall",
                "test rax, rax",
                "jnz 2f",
                "xor ebp, ebp",
                "pop rax",
                "add rsp, 8",
                "xor edi, edi",
                "call rax",
                "mov eax, 60",
                "xor edi, edi",
                "syscall",
                "ud2",
                "2:",
                inlateout("rax") libc::SYS_clone as isize => ret,
                in("rdi") flags as usize,
                in("rsi") sp,
                in("rdx") tid_word,
                in("r10") tid_word,
                in("r8") tcb,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        if ret > 0 {
            name_thread(ret as i32, name);
        }
        ret > 0
    })
    .unwrap_or(false);
    if !started {
        // SAFETY: no thread started on it; nothing uses the mapping.
        unsafe { super::mem::unmap(base, len) };
    }
    started
}

/// Where [`spawn_unseen`] cannot work (another architecture or C library): no such thread;
/// [`spawn_helper`] starts a C library thread instead.
#[cfg(not(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu")))]
fn spawn_unseen(
    _: extern "C" fn(*mut core::ffi::c_void) -> *mut core::ffi::c_void,
    _: &core::ffi::CStr,
    _: usize,
) -> bool {
    false
}

/// The calling thread's thread pointer (`%fs:0` holds it, by the x86-64 TLS ABI).
#[cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))]
fn thread_pointer() -> usize {
    read_fs(0)
}

/// The word at `offset` from the calling thread's thread pointer.
#[cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))]
fn read_fs(offset: usize) -> usize {
    let v: usize;
    // SAFETY: a load from the calling thread's control block, which the C library set up;
    // offsets 0, 0x28 and 0x30 are in its header (tcbhead_t).
    unsafe {
        core::arch::asm!("mov {v}, fs:[{o}]", v = out(reg) v, o = in(reg) offset, options(nostack, readonly, preserves_flags))
    };
    v
}

/// Runs `f` with every signal blocked in the calling thread (a thread started meanwhile
/// inherits that mask), then puts the mask back. `None` if the mask could not be changed.
pub fn with_signals_blocked<R>(f: impl FnOnce() -> R) -> Option<R> {
    // SAFETY: both sets are plain values written by sigfillset and pthread_sigmask.
    let (mut all, mut old): (libc::sigset_t, libc::sigset_t) = unsafe { (core::mem::zeroed(), core::mem::zeroed()) };
    // SAFETY: `all` and `old` are valid sets; changing this thread's mask has no other effect.
    let blocked =
        unsafe { libc::sigfillset(&mut all) == 0 && libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old) == 0 };
    if !blocked {
        return None;
    }
    let r = f();
    // SAFETY: `old` is the mask this thread had, read above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, core::ptr::null_mut()) };
    Some(r)
}

/// Names thread `tid` of this process (at most 15 bytes, as the kernel keeps them), through
/// `/proc/self/task/TID/comm`, as glibc names its threads: from the creating thread, so that
/// the name is there before the thread first runs. Nothing if /proc cannot be written.
#[cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))]
fn name_thread(tid: i32, name: &core::ffi::CStr) {
    use core::fmt::Write;
    debug_assert!(tid > 0 && name.to_bytes().len() <= 15);
    let mut path = super::StackWriter::<48>::new();
    if write!(path, "/proc/self/task/{tid}/comm\0").is_err() {
        return;
    }
    let Ok(path) = core::ffi::CStr::from_bytes_with_nul(path.as_bytes()) else {
        return;
    };
    // SAFETY: opening a file write-only with a NUL-terminated path.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return;
    }
    super::stderr::write_fd(fd, name.to_bytes());
    // SAFETY: closing the descriptor just opened, once.
    unsafe { libc::close(fd) };
}

/// Gives the calling thread a descriptor table of its own (`unshare(CLONE_FILES)`) and closes
/// every descriptor in it (the copies of the process's: holding them would keep the program's
/// files, pipes and sockets open after it closes them). What the thread opens from then on is
/// in no other thread's table, so no fork by another thread copies it into a child. False if
/// the table could not be made private and emptied (the thread must then open nothing a child
/// must not see).
pub fn private_descriptors() -> bool {
    // SAFETY: unshare(CLONE_FILES) affects only the calling thread's descriptor table.
    if unsafe { libc::unshare(libc::CLONE_FILES) } != 0 {
        return false;
    }
    // SAFETY: close_range on the calling thread's own (now private) table.
    if unsafe { libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32) } == 0 {
        return true;
    }
    // No close_range (before Linux 5.9): close them one by one, up to the descriptor limit.
    // SAFETY: rlimit is plain data, filled by getrlimit.
    let mut lim: libc::rlimit = unsafe { core::mem::zeroed() };
    // SAFETY: getrlimit writes into our struct.
    let max = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        lim.rlim_cur.min(1 << 16)
    } else {
        1 << 16
    };
    for fd in 0..max as libc::c_int {
        // SAFETY: closing this thread's private copies; EBADF for numbers not in use.
        unsafe { libc::close(fd) };
    }
    true
}

/// Waits while `word` holds `expected`, at most `timeout_ms` (a futex: no allocation, no
/// lock); returns on a [`wake`], a timeout, or a spurious wake-up.
pub fn wait(word: &core::sync::atomic::AtomicU32, expected: u32, timeout_ms: u32) {
    let ts =
        libc::timespec { tv_sec: (timeout_ms / 1000) as _, tv_nsec: ((timeout_ms % 1000) as i64 * 1_000_000) as _ };
    // SAFETY: futex(FUTEX_WAIT_PRIVATE) on a live atomic of this process, with a valid timeout.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            &ts as *const libc::timespec,
        );
    }
}

/// Wakes the threads waiting on `word`.
pub fn wake(word: &core::sync::atomic::AtomicU32) {
    // SAFETY: futex(FUTEX_WAKE_PRIVATE) on a live atomic of this process.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG, i32::MAX);
    }
}

/// As [`wait`], on a word in memory shared between processes.
pub fn wait_shared(word: &core::sync::atomic::AtomicU32, expected: u32, timeout_ms: u32) {
    let ts =
        libc::timespec { tv_sec: (timeout_ms / 1000) as _, tv_nsec: ((timeout_ms % 1000) as i64 * 1_000_000) as _ };
    // SAFETY: futex(FUTEX_WAIT) on a live atomic, with a valid timeout.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAIT, expected, &ts as *const libc::timespec);
    }
}

/// As [`wake`], on a word in memory shared between processes.
pub fn wake_shared(word: &core::sync::atomic::AtomicU32) {
    // SAFETY: futex(FUTEX_WAKE) on a live atomic.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, i32::MAX);
    }
}

/// CPU time this thread has used, in microseconds.
pub fn cpu_time_us() -> u64 {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: t is a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as u64 * 1_000_000 + t.tv_nsec as u64 / 1000
}

/// Sleeps for `us` microseconds.
pub fn sleep_us(us: u64) {
    let ts = libc::timespec { tv_sec: (us / 1_000_000) as _, tv_nsec: ((us % 1_000_000) * 1000) as _ };
    // SAFETY: a valid timespec; the remainder is not wanted.
    unsafe { libc::nanosleep(&ts, core::ptr::null_mut()) };
}
