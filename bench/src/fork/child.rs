//! One contestant in its own process: build the heap, measure, print one result line.
//!
//! The workload is a heap built the way real programs build theirs ([`super::heap`]); then,
//! each way of starting a process timed by [`super::spawn`]:
//! - `fork()` seen by the parent, the child `_exit`ing at once (median, p90);
//! - fork + exec + wait of /bin/true (or the contestant's own way to start a program);
//! - the kernel's view: VmPTE, AnonHugePages, HugetlbPages, RSS, mappings;
//! - sustained (at one size): fork+exec cycles, then fork-without-exec cycles (the child lives
//!   10 ms, as a prefork server's or a worker pool's), while a thread writes into the heap;
//!   latency and huge-page coverage at the start against the end, and the writer's throughput;
//! - copy-on-write: fork, the child stays alive, the parent rewrites 10% of the heap; time and
//!   extra memory (free memory and free pool pages before against after), and whether the
//!   child survived.

use super::heap::{Heap, build_heap};
use super::spawn::{Helper, fork_exec, fork_exit, fork_no_exec, posix_spawn, vfork_exec, wait};
use crate::contestant::{Method, Promise};
use crate::figures::{median, percentile};
use crate::rng::Rng;
use hugeheap::KernelView;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// What a fork-benchmark child is asked to do.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ForkSpec {
    /// Heap bytes to build.
    pub size: usize,
    /// fork() samples.
    pub forks: usize,
    /// fork+exec (or spawn) samples.
    pub execs: usize,
    /// Sustained fork+exec cycles (0: none).
    pub sustained: usize,
    /// Measure copy-on-write.
    pub cow: bool,
    /// How programs are started.
    pub method: Method,
}

/// Sustained forking while the heap is written: fork+exec, or fork without exec.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Sustained {
    /// Cycles run.
    pub cycles: usize,
    /// Median latency (fork+exec+wait; fork alone without exec) over the first tenth of the
    /// cycles (at most 100), ms.
    pub exec_start_ms: f64,
    /// Median over the last tenth, ms.
    pub exec_end_ms: f64,
    /// AnonHugePages + HugetlbPages before, bytes.
    pub huge_start: usize,
    /// ... and after.
    pub huge_end: usize,
    /// VmPTE before, bytes.
    pub vm_pte_start: usize,
    /// ... and after.
    pub vm_pte_end: usize,
    /// The writing thread's byte writes per second during the cycles.
    pub writes_per_s: f64,
}

/// Copy-on-write cost.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Cow {
    /// Time the parent took to rewrite a tenth of its objects while the child lived, ms.
    pub ms: f64,
    /// Bytes rewritten.
    pub rewritten: usize,
    /// System free memory (incl. free pool pages) consumed meanwhile, bytes.
    pub extra_bytes: usize,
    /// How the child ended.
    pub child: String,
}

/// What a child measured.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Measured {
    /// Time to build the heap, s.
    pub build_s: f64,
    /// Bytes in the heap's objects.
    pub heap_bytes: usize,
    /// fork() median, ms.
    pub fork_med_ms: Option<f64>,
    /// fork() p90, ms.
    pub fork_p90_ms: Option<f64>,
    /// fork() median after a quiet second (what a long-running program sees: the allocator's
    /// own work after building, a helper's collapses, done), ms.
    #[serde(default)]
    pub fork_steady_ms: Option<f64>,
    /// Rounds the fork and fork+exec figures are the median of (1: one process's).
    pub rounds: usize,
    /// fork+exec+wait (or spawn+wait) median, ms.
    pub exec_med_ms: Option<f64>,
    /// ... p90.
    pub exec_p90_ms: Option<f64>,
    /// VmPTE, bytes.
    pub vm_pte: usize,
    /// AnonHugePages, bytes.
    pub anon_huge: usize,
    /// HugetlbPages, bytes.
    pub hugetlb: usize,
    /// Of which in 2 MiB pages (from /proc/self/smaps), bytes.
    #[serde(default)]
    pub hugetlb_2m: usize,
    /// Of which in 1 GiB pages, bytes.
    #[serde(default)]
    pub hugetlb_1g: usize,
    /// VmRSS, bytes.
    pub rss: usize,
    /// Lines of /proc/self/maps.
    pub mappings: usize,
    /// Sustained fork+exec figures, at the sustained size.
    pub sustained: Option<Sustained>,
    /// Sustained fork-without-exec figures, at the sustained size.
    #[serde(default)]
    pub sustained_nox: Option<Sustained>,
    /// Copy-on-write figures.
    pub cow: Option<Cow>,
}

impl Measured {
    /// The share of the heap (0..=1) in the page kind `promise` names, from the kernel's
    /// counters.
    pub fn share(&self, promise: Promise) -> f64 {
        let total = (self.rss + self.hugetlb).max(1) as f64;
        let bytes = match promise {
            Promise::Nothing => return 1.0,
            Promise::Thp => self.anon_huge,
            Promise::Hugetlb => self.hugetlb,
            Promise::Gib1 => self.hugetlb_1g,
            Promise::Huge => self.anon_huge + self.hugetlb,
        };
        bytes as f64 / total
    }
}

impl Measured {
    /// Folds the later rounds' figures of the same contestant and size into this, the first
    /// round's: each fork and fork+exec figure becomes the median over the rounds; the rest
    /// (the heap's pages, the sustained cycles, copy-on-write) stays the first round's.
    pub fn fold_rounds(&mut self, later: &[Measured]) {
        if later.is_empty() {
            return;
        }
        self.rounds = 1 + later.len();
        let fold = |mine: &mut Option<f64>, get: fn(&Measured) -> Option<f64>| {
            let mut all: Vec<f64> = mine.iter().copied().chain(later.iter().filter_map(get)).collect();
            if !all.is_empty() {
                *mine = Some(median(&mut all));
            }
        };
        fold(&mut self.fork_med_ms, |m| m.fork_med_ms);
        fold(&mut self.fork_p90_ms, |m| m.fork_p90_ms);
        fold(&mut self.fork_steady_ms, |m| m.fork_steady_ms);
        fold(&mut self.exec_med_ms, |m| m.exec_med_ms);
        fold(&mut self.exec_p90_ms, |m| m.exec_p90_ms);
    }
}

/// The quiet time before the steady-state forks.
const QUIET: std::time::Duration = std::time::Duration::from_secs(1);

/// Runs the child described by `spec`; returns its figures: forks right after building the
/// heap, and (a heap of some size) again after a quiet second.
pub fn run(spec: &ForkSpec) -> Measured {
    let helper = (spec.method == Method::Helper).then(Helper::start);
    let t = Instant::now();
    let mut heap = build_heap(spec.size);
    let build_s = t.elapsed().as_secs_f64();
    // The first fork, counted among the samples below, comes before the kernel's view is read,
    // so that the page kinds are those the forks found: an allocator may finish work there that
    // it left to another thread while building (hugeheap collapses the rest of its small phase).
    let first = (spec.method == Method::Fork && spec.forks > 0).then(fork_exit);
    let k = KernelView::read();
    let mut m = Measured {
        build_s,
        heap_bytes: heap.bytes,
        vm_pte: k.vm_pte,
        anon_huge: k.anon_huge,
        hugetlb: k.hugetlb,
        hugetlb_2m: hugetlb_of_size(2048),
        hugetlb_1g: hugetlb_of_size(1 << 20),
        rss: k.rss,
        mappings: k.mappings,
        rounds: 1,
        ..Measured::default()
    };
    if spec.method == Method::Fork {
        let mut forks: Vec<f64> = first.into_iter().chain((1..spec.forks).map(|_| fork_exit())).collect();
        m.fork_med_ms = Some(median(&mut forks) * 1e3);
        m.fork_p90_ms = Some(percentile(&mut forks, 90.0) * 1e3);
        if spec.size > 0 {
            std::thread::sleep(QUIET);
            let mut steady: Vec<f64> = (0..spec.forks).map(|_| fork_exit()).collect();
            m.fork_steady_ms = Some(median(&mut steady) * 1e3);
        }
    }
    let spawn = |h: &Option<Helper>| match spec.method {
        Method::Fork => fork_exec(),
        Method::PosixSpawn => posix_spawn(),
        Method::Vfork => vfork_exec(),
        Method::Helper => h.as_ref().expect("helper").run(),
    };
    let mut execs: Vec<f64> = (0..spec.execs).map(|_| spawn(&helper)).collect();
    if !execs.is_empty() {
        m.exec_med_ms = Some(median(&mut execs) * 1e3);
        m.exec_p90_ms = Some(percentile(&mut execs, 90.0) * 1e3);
    }
    if spec.method == Method::Fork && spec.sustained > 0 {
        m.sustained = Some(sustained(&mut heap, spec.sustained, fork_exec));
        m.sustained_nox = Some(sustained(&mut heap, spec.sustained, fork_no_exec));
    }
    if spec.method == Method::Fork && spec.cow && spec.size > 0 {
        m.cow = Some(cow(&mut heap));
    }
    std::hint::black_box(&heap);
    m
}

/// Bytes of hugetlb memory this process maps in pages of `kib` KiB, from /proc/self/smaps.
fn hugetlb_of_size(kib: usize) -> usize {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap_or_default();
    let field =
        |l: &str, key: &str| l.strip_prefix(key).and_then(|v| v.split_whitespace().next()?.parse::<usize>().ok());
    let (mut page_kib, mut total) = (0, 0);
    for l in smaps.lines() {
        if let Some(v) = field(l, "KernelPageSize:") {
            page_kib = v;
        } else if let Some(v) = field(l, "Private_Hugetlb:").or_else(|| field(l, "Shared_Hugetlb:")) {
            if page_kib == kib {
                total += v * 1024;
            }
        }
    }
    total
}

/// `cycles` of `cycle` (fork+exec, or fork without exec) while a thread keeps writing into the
/// heap.
fn sustained(heap: &mut Heap, cycles: usize, cycle: fn() -> f64) -> Sustained {
    let before = KernelView::read();
    let stop = AtomicBool::new(false);
    let written = AtomicU64::new(0);
    let mut lat = Vec::with_capacity(cycles);
    let objects = &mut heap.objects;
    let t = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut r = Rng::new(7);
            let n = objects.len();
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..256 {
                    let o = &mut objects[(r.next_u64() >> 8) as usize % n];
                    let at = (r.next_u64() >> 8) as usize % o.len();
                    o[at] = o[at].wrapping_add(1);
                }
                written.fetch_add(256, Ordering::Relaxed);
            }
        });
        for _ in 0..cycles {
            lat.push(cycle());
        }
        stop.store(true, Ordering::Relaxed);
    });
    let secs = t.elapsed().as_secs_f64();
    let after = KernelView::read();
    let edge = (cycles / 10).clamp(1, 100);
    let mut first = lat[..edge].to_vec();
    let mut last = lat[cycles - edge..].to_vec();
    Sustained {
        cycles,
        exec_start_ms: median(&mut first) * 1e3,
        exec_end_ms: median(&mut last) * 1e3,
        huge_start: before.anon_huge + before.hugetlb,
        huge_end: after.anon_huge + after.hugetlb,
        vm_pte_start: before.vm_pte,
        vm_pte_end: after.vm_pte,
        writes_per_s: written.load(Ordering::Relaxed) as f64 / secs,
    }
}

/// System-wide free memory: MemFree plus free hugetlb pages of each size, in bytes.
fn free_memory() -> usize {
    crate::free_bytes("MemFree:", true)
}

/// Copy-on-write: the child stays alive while the parent rewrites every tenth object.
fn cow(heap: &mut Heap) -> Cow {
    let mut p = [0; 2];
    // SAFETY: valid out-array.
    assert_eq!(unsafe { libc::pipe(p.as_mut_ptr()) }, 0);
    // SAFETY: the child blocks on read, touches nothing, and leaves with _exit.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let mut b = [0u8; 1];
        // SAFETY: blocking read of one byte, then exit.
        unsafe {
            libc::close(p[1]);
            libc::read(p[0], b.as_mut_ptr().cast(), 1);
            libc::_exit(0);
        }
    }
    // SAFETY: the parent keeps only the write end.
    unsafe { libc::close(p[0]) };
    let before = free_memory();
    let t = Instant::now();
    let mut rewritten = 0;
    for o in heap.objects.iter_mut().step_by(10) {
        o.fill(0x5A);
        rewritten += o.len();
    }
    let secs = t.elapsed().as_secs_f64();
    let after = free_memory();
    // SAFETY: releasing the child, then reaping it.
    unsafe {
        libc::write(p[1], [1u8].as_ptr().cast(), 1);
        libc::close(p[1]);
    }
    let status = wait(pid);
    let child = if libc::WIFSIGNALED(status) {
        format!("killed by signal {}", libc::WTERMSIG(status))
    } else {
        format!("exit {}", libc::WEXITSTATUS(status))
    };
    Cow { ms: secs * 1e3, rewritten, extra_bytes: before.saturating_sub(after), child }
}

#[cfg(test)]
mod tests {
    use super::Measured;

    #[test]
    fn rounds_fold_into_the_median_of_their_medians() {
        let m = |fork: f64, steady: Option<f64>| Measured {
            fork_med_ms: Some(fork),
            fork_steady_ms: steady,
            vm_pte: fork as usize,
            rounds: 1,
            ..Measured::default()
        };
        let mut first = m(5.0, Some(1.0));
        first.fold_rounds(&[m(1.0, Some(3.0)), m(2.0, None)]);
        assert_eq!(first.rounds, 3);
        assert_eq!(first.fork_med_ms, Some(2.0), "the middle of 5, 1, 2");
        // A round without the figure does not count for it: the median of 1 and 3, the lower
        // middle (`figures::median`), not of 1, 3 and nothing.
        assert_eq!(first.fork_steady_ms, Some(1.0));
        // The heap's other figures stay the first round's.
        assert_eq!(first.vm_pte, 5);
        let mut alone = m(4.0, None);
        alone.fold_rounds(&[]);
        assert_eq!((alone.rounds, alone.fork_med_ms, alone.fork_steady_ms), (1, Some(4.0), None));
    }
}
