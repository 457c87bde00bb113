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
    // SAFETY: both sets are plain values written by sigfillset and pthread_sigmask.
    let (mut all, mut old): (libc::sigset_t, libc::sigset_t) = unsafe { (core::mem::zeroed(), core::mem::zeroed()) };
    // SAFETY: `all` and `old` are valid sets; changing this thread's mask has no other effect.
    let blocked =
        unsafe { libc::sigfillset(&mut all) == 0 && libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old) == 0 };
    if !blocked {
        // A thread that would take the program's signals is worse than no helper.
        return false;
    }
    // SAFETY: attr is initialised before use and destroyed once; entry is valid for the
    // process's life and takes no argument (null); the thread id stays in this frame.
    let ok = unsafe {
        let mut attr: libc::pthread_attr_t = core::mem::zeroed();
        if libc::pthread_attr_init(&mut attr) != 0 {
            false
        } else {
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
    };
    // SAFETY: `old` is the mask this thread had, read above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, core::ptr::null_mut()) };
    ok
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
