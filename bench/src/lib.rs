//! hugeheap's benchmarks, a program of their own (`hugeheap-bench`, not installed with the
//! `hugeheap` command, which runs it for `hugeheap bench ...` when it lies beside it or on
//! PATH): `fork` (fork latency and its costs, hugeheap beside every alternative) and `alloc`
//! (allocation speed and memory on ordinary work, through Rust's `GlobalAlloc`). Both run each
//! contestant in a fresh process of this binary (the [`harness`]), on the allocator [`switch`]
//! selects, so two runs differ only in the allocator and its settings; both take their
//! contestants from [`contestant`]. `cpath` ([`cpath`]) measures the C API through
//! `LD_PRELOAD` against the peers' Debian libraries, with programs of its own and real ones;
//! `programs` ([`programs`]) real fork-heavy programs. [`args`] is the command line.
#![deny(missing_docs, unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

pub mod alloc;
pub mod args;
pub mod contestant;
pub mod cpath;
pub mod engine;
pub mod figures;
pub mod fork;
pub mod harness;
pub mod jobs;
pub mod machine;
pub mod peers;
pub mod pools;
pub mod programs;
pub mod rng;
pub mod switch;

use std::path::PathBuf;

pub use engine::{Cell, progress};

/// Where results go when `--out` is not given: `hugeheap-bench` beside cargo's build products
/// when this is a bench target (`<target>/<profile>/deps/<bench>`: cargo runs benches from the
/// package's directory, so a relative default would land in `cli/target`), else in the current
/// directory.
pub fn default_out_dir() -> PathBuf {
    let exe = std::env::current_exe().ok();
    let deps = exe.as_deref().and_then(|e| e.parent()).filter(|d| d.ends_with("deps"));
    match deps.and_then(|d| d.parent()?.parent()) {
        Some(target) => target.join("hugeheap-bench"),
        None => PathBuf::from("hugeheap-bench"),
    }
}

/// A /proc/meminfo field (`MemAvailable:`, `MemFree:`) in bytes, plus, with `pools`, the free
/// pages of both hugetlb pools.
pub fn free_bytes(field: &str, pools: bool) -> usize {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mut bytes = status_bytes(&meminfo, field);
    if pools {
        bytes += pool_free_pages(2048) * (2 << 20) + pool_free_pages(1 << 20) * (1 << 30);
    }
    bytes
}

/// Free pages of the hugetlb pool of `kib`-KiB pages now (0 if it cannot be read), as the
/// library reads its pools.
pub fn pool_free_pages(kib: usize) -> usize {
    let kind = if kib == 1 << 20 { hugeheap::PageKind::Gib1 } else { hugeheap::PageKind::Mib2 };
    hugeheap::internal::PoolInfo::read(b"/", kind).map_or(0, |p| p.free)
}

/// A field of /proc text in `key: N kB` lines (status, smaps_rollup, meminfo), in bytes.
pub fn status_bytes(status: &str, key: &str) -> usize {
    hugeheap::internal::field_kib(status.as_bytes(), key.as_bytes()).unwrap_or(0) * 1024
}

/// Field `i` of `/proc/PID/stat` counted from the one after the command's closing parenthesis
/// (0: the state, 1: the parent's pid, 11: user time, 12: system time), as a number; `None`
/// when the process is gone or the field is not a number.
pub fn stat_field(pid: u32, i: usize) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.split_whitespace().nth(i)?.parse().ok()
}

/// The kernel's DAMON monitors switched on now, by their kdamond threads' pids. A monitor of
/// physical memory (some VMs run one to report cold memory to the host) samples pages through
/// the reverse map, which walks every mapping of a sampled folio: a huge page that forked
/// children map with 4 KiB entries after their first writes costs it up to 512 entries per child.
pub fn kdamonds() -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/sys/kernel/mm/damon/admin/kdamonds") else { return Vec::new() };
    let read = |p: std::path::PathBuf| std::fs::read_to_string(p).map(|s| s.trim().to_string()).unwrap_or_default();
    dir.filter_map(|e| e.ok())
        .filter(|e| read(e.path().join("state")) == "on")
        .filter_map(|e| read(e.path().join("pid")).parse().ok())
        .filter(|&pid| pid > 0)
        .collect()
}

/// CPU seconds (user and system) the threads `pids` have used so far; threads gone count 0.
pub fn cpu_seconds(pids: &[u32]) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let ticks = |&pid: &u32| stat_field(pid, 11).unwrap_or(0) + stat_field(pid, 12).unwrap_or(0);
    pids.iter().map(ticks).sum::<u64>() as f64 / hz
}

#[cfg(test)]
mod tests {
    use super::{cpu_seconds, stat_field};

    #[test]
    fn stat_field_counts_from_after_the_command() {
        // SAFETY: getppid has no preconditions.
        let parent = unsafe { libc::getppid() } as u64;
        assert_eq!(stat_field(std::process::id(), 1), Some(parent));
        assert_eq!(stat_field(u32::MAX, 1), None);
    }

    #[test]
    fn cpu_seconds_counts_a_threads_own_time_and_nothing_for_threads_gone() {
        let me = [std::process::id()];
        let before = cpu_seconds(&me);
        // Spin until the kernel has charged this process a clock tick of CPU (a minute at most,
        // however busy the machine is): the count must move, and only forward.
        let spin = std::time::Instant::now();
        let mut x = 0u64;
        while cpu_seconds(&me) <= before && spin.elapsed() < std::time::Duration::from_secs(60) {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
        }
        assert!(cpu_seconds(&me) > before, "no CPU time counted after a minute of spinning");
        assert_eq!(cpu_seconds(&[u32::MAX]), 0.0);
    }
}
