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
