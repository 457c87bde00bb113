//! What the real-program benchmarks share: their settings, the setups a program runs under
//! (plain, a peer preloaded, hugeheap with or without a pool), the pools a setup holds, the
//! sections of the report, and the readers of a process's figures.

use crate::pools::Pools;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Settings of a run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Smaller data and fewer repetitions (a few minutes instead of half an hour).
    pub quick: bool,
    /// Programs to run (empty: all): `redis`, `python`, `perl`, `postgres`, `gunicorn`, `unicorn`.
    pub only: Vec<String>,
    /// The libhugeheap.so to preload.
    pub lib: PathBuf,
    /// Where the report goes.
    pub out_dir: PathBuf,
}

/// How a program is started: plain, or under hugeheap, with extra environment and a 2 MiB pool.
#[derive(Clone, Debug, Serialize)]
pub struct Setup {
    /// Short name, for the table.
    pub name: String,
    /// libhugeheap.so is preloaded.
    pub hugeheap: bool,
    /// Extra environment (beside LD_PRELOAD, which `hugeheap` implies).
    pub env: Vec<(String, String)>,
    /// 2 MiB pages the pool holds for the run; 0 empties the pools, `None` leaves them as they
    /// are.
    pub pool_2m: Option<usize>,
}

impl Setup {
    /// The program as installed, with the pools empty.
    pub fn plain() -> Setup {
        Setup { name: "plain".into(), hugeheap: false, env: Vec::new(), pool_2m: Some(0) }
    }

    /// Another allocator, `lib`, preloaded (pools empty).
    pub fn preloaded(name: &str, lib: &Path) -> Setup {
        Setup {
            name: name.into(),
            hugeheap: false,
            env: vec![("LD_PRELOAD".into(), lib.display().to_string())],
            pool_2m: Some(0),
        }
    }

    /// Under hugeheap on THP (pools empty), default settings.
    pub fn hugeheap_thp() -> Setup {
        Setup { name: "hugeheap THP".into(), hugeheap: true, env: Vec::new(), pool_2m: Some(0) }
    }

    /// Under hugeheap with a 2 MiB pool of `pages`, default settings.
    pub fn hugeheap_pool(pages: usize) -> Setup {
        Setup {
            name: format!("hugeheap, 2 MiB pool of {pages}"),
            hugeheap: true,
            env: Vec::new(),
            pool_2m: Some(pages),
        }
    }

    /// The environment for `cmd`: LD_PRELOAD of `lib` when under hugeheap, with
    /// PYTHONMALLOC=malloc where `hugeheap run` sets it (`run::python_objects_to_heap`, asked
    /// once the setup's pools are set), then the setup's own; allocator variables of this
    /// process removed first.
    pub fn apply(&self, cmd: &mut Command, lib: &Path) {
        for (k, _) in std::env::vars() {
            if k.starts_with("HUGEHEAP_") || k == "LD_PRELOAD" || k == "MALLOC_CONF" || k == "PYTHONMALLOC" {
                cmd.env_remove(k);
            }
        }
        if self.hugeheap {
            cmd.env("LD_PRELOAD", lib);
            let setting = |name: &str| self.env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
            if hugeheap_cli::run::python_objects_to_heap(setting) {
                cmd.env("PYTHONMALLOC", "malloc");
            }
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
    }
}

/// The pools for a setup: set for it (root), or the reason it cannot run as asked.
pub struct PoolHold(Option<Pools>);

impl PoolHold {
    /// Takes hold of the pools for the run (`None` inside without root: pools left as they are).
    pub fn take() -> PoolHold {
        let writable = std::fs::OpenOptions::new().write(true).open("/proc/sys/vm/nr_hugepages").is_ok();
        PoolHold(if writable { Pools::take((0, 0)) } else { None })
    }

    /// Whether the run holds the pools (root), so that the pool setups can run.
    pub fn holds_pools(&self) -> bool {
        self.0.is_some()
    }

    /// Sets the pools for `s`; an error says why `s` cannot run (no root for a pool setup, or
    /// the kernel gave fewer pages than asked).
    pub fn set_for(&self, s: &Setup) -> Result<(), String> {
        match (&self.0, s.pool_2m) {
            (_, None) => Ok(()),
            (None, Some(0)) => Ok(()),
            (None, Some(_)) => Err("skipped: setting a hugetlb pool needs root".into()),
            (Some(p), Some(n)) => match p.set_exact(n, 0) {
                None => Ok(()),
                Some(short) => Err(format!("skipped: the kernel gave {short}")),
            },
        }
    }
}

/// Whether `program` can be started (`--version` or the like succeeds).
pub fn installed(program: &str, arg: &str) -> bool {
    Command::new(program).arg(arg).output().is_ok_and(|o| o.status.success())
}

/// One program's section of the report.
#[derive(Clone, Debug, Serialize)]
pub struct Section {
    /// The program.
    pub program: String,
    /// What the run did, in a sentence.
    pub workload: String,
    /// The table's column names.
    pub columns: Vec<String>,
    /// One row per setup: its name and its cells (or the reason it did not run).
    pub rows: Vec<(String, Result<Vec<String>, String>)>,
    /// Notes under the table (checks that passed or failed, how the figures were read).
    pub notes: Vec<String>,
}

/// Free pages of the 2 MiB pool now.
pub fn pool_free_2m() -> usize {
    crate::pool_free_pages(2048)
}

/// Watches the 2 MiB pool's free pages from another thread until dropped; `used()` is the
/// most pages taken below the starting count meanwhile (copy-on-write from the pool).
pub struct PoolWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<usize>>,
}

impl PoolWatch {
    /// Starts watching.
    pub fn start() -> PoolWatch {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let start = pool_free_2m();
            let mut least = start;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                least = least.min(pool_free_2m());
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            start.saturating_sub(least.min(pool_free_2m()))
        });
        PoolWatch { stop, thread: Some(thread) }
    }

    /// Stops watching; the most 2 MiB pages taken meanwhile.
    pub fn used(mut self) -> usize {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.take().map_or(0, |t| t.join().unwrap_or(0))
    }
}

/// A process's field of /proc/PID/smaps_rollup or status, bytes.
pub fn proc_field(pid: u32, file: &str, key: &str) -> usize {
    crate::status_bytes(&std::fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap_or_default(), key)
}

/// A temporary directory of the run's own, emptied first.
pub fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hugeheap-programs-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch directory");
    d
}
