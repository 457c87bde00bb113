//! Process-wide state: the one-time start-up, the page heap behind its lock, the thread-exit
//! key, the fork handlers and the exit report.
//!
//! Start-up happens at the first allocation: options (code defaults, then the environment),
//! a probe of the machine, the arena reservation. It allocates nothing; a second thread that
//! arrives meanwhile waits. Whatever might call `malloc` itself (`pthread_atfork`, `atexit`)
//! is called only after the allocator is ready.

use crate::heap::{self, Heap};
use crate::options::Config;
use crate::os::{self, OsInfo, StackWriter, ThreadKey};
use crate::pageheap::PageHeap;
use crate::sync::{SpinGuard, SpinLock};
use core::fmt::Write;
use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

const UNINIT: u8 = 0;
const RUNNING: u8 = 1;
const READY: u8 = 2;
const FAILED: u8 = 3;

static STATE: AtomicU8 = AtomicU8::new(UNINIT);
static KEY: AtomicUsize = AtomicUsize::new(usize::MAX);
/// The process that started the heap: forked children (which inherit the exit handler) do not
/// report.
static START_PID: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);
/// Where the exit report goes (see `os::stderr_dup`).
static REPORT_FD: core::sync::atomic::AtomicI32 = core::sync::atomic::AtomicI32::new(2);

/// The process-wide state behind the lock.
pub struct Runtime {
    /// The page heap (`None` before start-up, or if it failed).
    pub heap: Option<PageHeap>,
    /// Heaps of exited threads, waiting for a new thread to adopt them.
    pub abandoned: *mut Heap,
}

// SAFETY: the raw heap pointers refer to metadata that lives for the process; Runtime is only
// reached through its lock.
unsafe impl Send for Runtime {}

/// The global state, behind the only lock of the allocator.
pub static RUNTIME: SpinLock<Runtime> = SpinLock::new(Runtime { heap: None, abandoned: core::ptr::null_mut() });

/// Takes the lock.
#[inline]
pub fn lock() -> SpinGuard<'static, Runtime> {
    RUNTIME.lock()
}

/// Makes sure start-up has run, with `config` as the code defaults. Returns false if the
/// allocator could not start (no address space at all): allocations then return null.
#[inline]
pub fn ensure_init(config: &Config) -> bool {
    match STATE.load(Ordering::Acquire) {
        READY => true,
        FAILED => false,
        _ => init_slow(config),
    }
}

#[cold]
#[inline(never)]
fn init_slow(config: &Config) -> bool {
    if STATE.compare_exchange(UNINIT, RUNNING, Ordering::Acquire, Ordering::Acquire).is_ok() {
        heap::set_free_key(os::random_word());
        let cfg = config.with_process_env();
        let info = OsInfo::probe();
        let ph = PageHeap::create(&cfg, &info);
        let ok = ph.is_some();
        lock().heap = ph;
        if let Some(key) = os::thread_key_create(thread_exit) {
            KEY.store(key as usize, Ordering::Relaxed);
        }
        STATE.store(if ok { READY } else { FAILED }, Ordering::Release);
        if !ok {
            os::write_stderr(b"hugeheap: could not reserve address space for the heap; allocations will fail\n");
            return false;
        }
        // These may allocate: only now that the allocator is ready.
        os::atfork(fork_prepare, fork_parent, fork_child);
        if cfg.verbose {
            START_PID.store(os::pid(), Ordering::Relaxed);
            REPORT_FD.store(os::stderr_dup(), Ordering::Relaxed);
            os::atexit(report_exit);
        }
        return true;
    }
    // Another thread is starting the allocator: wait for it.
    loop {
        match STATE.load(Ordering::Acquire) {
            READY => return true,
            FAILED => return false,
            _ => os::yield_now(),
        }
    }
}

/// Registers `heap` to be flushed when this thread exits.
pub fn register_thread_exit(heap: *mut Heap) {
    let key = KEY.load(Ordering::Relaxed);
    if key != usize::MAX {
        os::thread_key_set(key as ThreadKey, heap as usize);
    }
}

unsafe extern "C" fn thread_exit(arg: *mut core::ffi::c_void) {
    // SAFETY: the key's value is only ever set to this thread's heap.
    unsafe { heap::thread_done(arg.cast()) };
}

// Fork: the forking thread takes the lock so that no other thread is inside the page heap
// when the address space is copied; both sides release it. In the child, heaps of threads
// that no longer exist are simply never adopted (they are not on the abandoned list): their
// memory stays theirs, and frees into them still land in their lock-free inboxes.
unsafe extern "C" fn fork_prepare() {
    RUNTIME.raw_lock();
}

unsafe extern "C" fn fork_parent() {
    crate::pageheap::FORKS.fetch_add(1, Ordering::Relaxed);
    crate::pageheap::LAST_FORK_MS.store(os::now_ms(), Ordering::Relaxed);
    // SAFETY: fork_prepare took the lock in this thread.
    unsafe { RUNTIME.force_unlock() };
}

unsafe extern "C" fn fork_child() {
    // SAFETY: the forking thread took the lock in fork_prepare and is the child's only thread.
    unsafe { RUNTIME.force_unlock() };
}

extern "C" fn report_exit() {
    if os::pid() != START_PID.load(Ordering::Relaxed) {
        return;
    }
    if let Some(ph) = lock().heap.as_mut() {
        ph.arena.say_start();
    }
    let s = crate::stats();
    let k = crate::KernelView::read();
    let mut w = StackWriter::<4096>::new();
    let _ = writeln!(w, "hugeheap: at exit (pid {})\n{s}  kernel says  {k}", os::pid());
    w.flush_to(REPORT_FD.load(Ordering::Relaxed));
}
