//! Start-up, in one place above the page heap and the thread heaps; the fork handlers; the
//! exit report.
//!
//! Start-up happens at the first allocation, called from the entry points: options (code
//! defaults, then the environment), a probe of the machine, the page heap (arena and
//! metadata), then the thread heaps' storage. It allocates nothing; a second thread that
//! arrives meanwhile waits. Whatever might call `malloc` itself (`pthread_atfork`, `atexit`)
//! is called only after the allocator is ready.
//!
//! Fork: the forking thread takes the thread heaps' lock (when the C library knows of other
//! threads: only they use it) and then the page heap's, so that no thread is inside either
//! when the address space is copied; both sides release them. The
//! parent tells the page heap (copy-on-write will split its THP from now on). In the child,
//! heaps of threads that no longer exist are simply never adopted (they are not on the
//! abandoned list): their memory stays theirs, and frees into them still land in their
//! lock-free inboxes.

use crate::heap::{lifecycle, misuse, storage};
use crate::options::{Config, ThpOff};
use crate::os::probe::ThpMode;
use crate::os::{OsInfo, StackWriter, process, stderr, thread};
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
    let storage = {
        let mut slot = pageheap::lock();
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
    collapser::note_fork();
    // Only threads the C library knows use the thread heaps' registry (the helper never
    // does): with none but this one, no thread can be inside it, and its lock's page is left
    // unwritten (one page fault a fork less).
    let others = !thread::c_library_single_threaded();
    if others {
        storage::lock_for_fork();
    }
    pageheap::the_lock().raw_lock();
    let flag = pageheap::fork_flag();
    if flag.load(Ordering::Relaxed) != others {
        flag.store(others, Ordering::Relaxed);
    }
    // SAFETY: just taken by this thread, without a guard.
    if let Some(ph) = unsafe { pageheap::the_lock().get_held() }.as_mut() {
        ph.before_fork();
    }
}

unsafe extern "C" fn fork_parent() {
    // SAFETY: fork_prepare took both locks in this thread; the page heap's is held until the
    // force_unlock below, so this is the only access.
    let has_thp = unsafe {
        let slot = pageheap::the_lock().get_held();
        let has_thp = slot.as_mut().is_some_and(|ph| {
            ph.after_fork_in_parent();
            ph.on_fork()
        });
        let took_storage = pageheap::fork_flag().load(Ordering::Relaxed);
        pageheap::the_lock().force_unlock();
        if took_storage {
            storage::unlock_after_fork();
        }
        has_thp
    };
    // With the locks released: copy-on-write may split THP from now on.
    if has_thp {
        collapser::kick();
    }
}

unsafe extern "C" fn fork_child() {
    // SAFETY: the forking thread took both locks in fork_prepare and is the child's only
    // thread: before releasing the page heap's, the child takes its share of copy-on-write
    // room, or moves out of the pools.
    unsafe {
        if let Some(ph) = pageheap::the_lock().get_held().as_mut() {
            ph.after_fork_in_child();
        }
        let took_storage = pageheap::fork_flag().load(Ordering::Relaxed);
        pageheap::the_lock().force_unlock();
        if took_storage {
            storage::unlock_after_fork();
        }
    }
    collapser::forget_in_child();
}

extern "C" fn report_exit() {
    if process::pid() != START_PID.load(Ordering::Relaxed) {
        return;
    }
    if let Some(ph) = pageheap::lock().as_mut() {
        ph.arena.say_start();
    }
    let s = crate::stats();
    let mut w = StackWriter::<4096>::new();
    let _ = writeln!(w, "hugeheap: at exit (pid {})\n{s}", process::pid());
    w.flush_to(REPORT_FD.load(Ordering::Relaxed));
}
