//! Start-up, in one place above the page heap and the thread heaps; the fork handlers; the
//! exit report.
//!
//! Start-up happens at the first allocation, called from the entry points: options (code
//! defaults, then the environment), a probe of the machine, the page heap (arena and
//! metadata), then the thread heaps' storage. It allocates nothing; a second thread that
//! arrives meanwhile waits. Whatever might call `malloc` itself (`pthread_atfork`, `atexit`)
//! is called only after the allocator is ready.
//!
//! Fork: the forking thread takes the fork gate, which keeps the helper off the page heap;
//! then, unless the process is single-threaded for the C library and the fork has nothing to
//! decide for the child (see `pageheap::fork_pages`: such a fork writes no page that fork
//! copies), the thread heaps' locks (their registry's and the shared classes', when the C
//! library knows of other threads: only they use them) and the page heap's, so that no thread
//! is inside any of them when the address space is copied; both sides release what it took.
//! The parent counts the fork for the helper (copy-on-write will split its THP from now on).
//! In the child, heaps of threads that no longer exist are simply never adopted (they are not
//! on the abandoned list): their memory stays theirs (their caches of shared classes too, at
//! most 32 KiB or one block a class), and frees into them still land in their lock-free
//! inboxes.

use crate::heap::{central, lifecycle, misuse, storage};
use crate::options::{Config, ThpOff};
use crate::os::probe::ThpMode;
use crate::os::{OsInfo, StackWriter, process, stderr, thread};
use crate::pageheap::fork_pages;
use crate::pageheap::process_heap::{self, TOOK_HEAP, TOOK_STORAGE};
use crate::pageheap::{self, PageHeap, collapser};
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, AtomicU32, Ordering};

const UNINIT: u8 = 0;
const RUNNING: u8 = 1;
const READY: u8 = 2;
const FAILED: u8 = 3;

static STATE: AtomicU8 = AtomicU8::new(UNINIT);
/// The process that started the heap: forked children (which inherit the exit handler) do not
/// report.
static START_PID: AtomicU32 = AtomicU32::new(0);
/// Where the exit report goes (see `stderr::stderr_dup`).
static REPORT_FD: AtomicI32 = AtomicI32::new(2);
/// `HUGEHEAP_THP_OFF` (as `ThpOff as u8`), the machine's THP mode (its index in
/// [`THP_MODES`]) and whether the process is verbose, one byte each, for the `prctl` wrapper.
static THP_OFF: AtomicU32 = AtomicU32::new(0);
/// `HUGEHEAP_MMAP=huge` and THP is there to be had: the program's small anonymous mappings go
/// to the map zone.
static MAP_ZONE: AtomicBool = AtomicBool::new(false);
/// The THP modes, indexed as [`THP_OFF`] stores them.
const THP_MODES: [ThpMode; 6] =
    [ThpMode::Unknown, ThpMode::Always, ThpMode::Madvise, ThpMode::Never, ThpMode::Defer, ThpMode::DeferMadvise];

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
    if STATE.compare_exchange(UNINIT, RUNNING, Ordering::Acquire, Ordering::Acquire).is_err() {
        // Another thread is starting the allocator: wait for it.
        loop {
            match STATE.load(Ordering::Acquire) {
                READY => return true,
                FAILED => return false,
                _ => thread::yield_now(),
            }
        }
    }
    misuse::set_free_key(process::random_word());
    let cfg = config.with_process_env();
    collapser::set_budget(cfg.collapse);
    let info = OsInfo::probe();
    let mode = THP_MODES.iter().position(|&m| m == info.thp).unwrap_or(0) as u32;
    THP_OFF.store(cfg.thp_off as u32 | mode << 8 | u32::from(cfg.verbose) << 16, Ordering::Relaxed);
    MAP_ZONE.store(cfg.map_zone && !matches!(info.thp, ThpMode::Never | ThpMode::Unknown), Ordering::Relaxed);
    fork_pages::map_wiped_page();
    let storage = {
        let mut slot = process_heap::lock();
        match PageHeap::create(pageheap::backing::OsBacking, &cfg, &info, storage::META_BYTES) {
            Some(mut ph) => {
                let storage = storage::reserve(&mut ph);
                ph.publish();
                *slot = Some(ph);
                storage
            }
            None => None,
        }
    };
    let ok = storage.is_some();
    if let Some(s) = storage {
        lifecycle::init(s);
    }
    STATE.store(if ok { READY } else { FAILED }, Ordering::Release);
    if !ok {
        stderr::write_stderr(b"hugeheap: could not reserve address space for the heap; allocations will fail\n");
        return false;
    }
    // These may allocate: only now that the allocator is ready.
    thread::atfork(fork_prepare, fork_parent, fork_child);
    if cfg.verbose {
        START_PID.store(process::pid(), Ordering::Relaxed);
        REPORT_FD.store(stderr::stderr_dup(), Ordering::Relaxed);
        thread::atexit(report_exit);
    }
    true
}

/// What the `prctl` wrapper needs: `HUGEHEAP_THP_OFF`, the machine's THP mode, and whether
/// the process is verbose (the allocator is started first if it was not).
pub fn thp_off_settings() -> (ThpOff, ThpMode, bool) {
    ensure_init(&Config::DEFAULT);
    let v = THP_OFF.load(Ordering::Relaxed);
    (ThpOff::from_u8(v as u8), THP_MODES[((v >> 8) as u8 as usize).min(THP_MODES.len() - 1)], v >> 16 & 1 == 1)
}

/// Whether the map zone places the program's small anonymous mappings (the allocator is
/// started first if it was not).
pub fn map_zone_on() -> bool {
    ensure_init(&Config::DEFAULT) && MAP_ZONE.load(Ordering::Relaxed)
}

unsafe extern "C" fn fork_prepare() {
    collapser::finish_before_fork();
    collapser::note_fork();
    // The helper keeps off the page heap from here to the parent's handler.
    fork_pages::gate().raw_lock();
    let single = thread::c_library_single_threaded();
    let lock = process_heap::the_lock();
    // A process the C library counts single-threaded has no other thread that could be
    // inside the page heap now (the helper waits at the gate; a thread made behind the C
    // library's back that allocates is not supported, as by glibc's own malloc, which skips
    // its locks then too); when the fork has nothing to decide for the child, it leaves the
    // page heap's page unwritten. (A locked page heap here means that a signal handler
    // interrupted this thread inside it: that fork then waits for the lock for good; POSIX
    // no longer counts fork async-signal-safe, and `_Fork` runs no handlers.)
    let quiet = single
        && !lock.is_locked()
        // SAFETY: single-threaded for the C library, the gate held, the lock free: no thread
        // takes the lock while the reference lives.
        && unsafe { lock.peek() }.as_ref().is_none_or(|ph| ph.forks_quietly());
    let took = match (quiet, single) {
        (true, _) => 0,
        // Only threads the C library knows use the thread heaps' registry (the helper never
        // does): with none but this one, no thread can be inside it.
        (false, true) => TOOK_HEAP,
        (false, false) => TOOK_HEAP | TOOK_STORAGE,
    };
    if took & TOOK_STORAGE != 0 {
        storage::lock_for_fork();
        central::lock_for_fork();
    }
    if took & TOOK_HEAP != 0 {
        lock.raw_lock();
        // SAFETY: just taken by this thread, without a guard.
        if let Some(ph) = unsafe { lock.get_held() }.as_mut() {
            ph.before_fork();
        }
    }
    let flag = process_heap::fork_took();
    if flag.load(Ordering::Relaxed) != took {
        flag.store(took, Ordering::Relaxed);
    }
}

unsafe extern "C" fn fork_parent() {
    let lock = process_heap::the_lock();
    let took = process_heap::fork_took().load(Ordering::Relaxed);
    let has_thp = if took & TOOK_HEAP != 0 {
        // SAFETY: fork_prepare took the page heap's lock in this thread and holds it until the
        // force_unlock below, so this is the only access; likewise the registry's.
        unsafe {
            let has_thp = lock.get_held().as_mut().is_some_and(|ph| {
                ph.after_fork_in_parent();
                ph.has_thp()
            });
            lock.force_unlock();
            if took & TOOK_STORAGE != 0 {
                central::unlock_after_fork();
                storage::unlock_after_fork();
            }
            has_thp
        }
    } else {
        // SAFETY: a quiet fork (see fork_prepare): the process is single-threaded for the C
        // library and this thread still holds the gate, so no thread takes the lock while the
        // reference lives. Nothing was decided for the child: nothing to wait for.
        unsafe { lock.peek() }.as_ref().is_some_and(|ph| ph.has_thp())
    };
    if has_thp {
        // Copy-on-write may split the heap's THP from now on: counted for the helper's sweeps
        // (the page heap counts it in when the helper next takes it, behind the gate).
        fork_pages::fork_count().fetch_add(1, Ordering::Relaxed);
    }
    // SAFETY: fork_prepare took the gate in this thread, without a guard.
    unsafe { fork_pages::gate().force_unlock() };
    if has_thp {
        collapser::kick();
    }
}

unsafe extern "C" fn fork_child() {
    // The forking thread is the child's only thread: it holds what fork_prepare took.
    collapser::forget_in_child();
    let lock = process_heap::the_lock();
    let took = process_heap::fork_took().load(Ordering::Relaxed);
    if took & TOOK_HEAP == 0 {
        lock.raw_lock();
    }
    // SAFETY: held by this thread now, without a guard: taken by fork_prepare (the forking
    // thread is the child's only thread) or just above; likewise the registry's.
    unsafe {
        // Before releasing it, the child takes its share of copy-on-write room, or moves out
        // of the pools.
        if let Some(ph) = lock.get_held().as_mut() {
            ph.after_fork_in_child();
            ph.forget_forks();
        }
        lock.force_unlock();
        if took & TOOK_STORAGE != 0 {
            central::unlock_after_fork();
            storage::unlock_after_fork();
        }
    }
}

extern "C" fn report_exit() {
    if process::pid() != START_PID.load(Ordering::Relaxed) {
        return;
    }
    if let Some(ph) = process_heap::lock().as_mut() {
        ph.arena.say_start();
    }
    let s = crate::stats();
    let mut w = StackWriter::<4096>::new();
    let _ = writeln!(w, "hugeheap: at exit (pid {})\n{s}", process::pid());
    w.flush_to(REPORT_FD.load(Ordering::Relaxed));
}
