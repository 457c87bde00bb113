//! Running out of memory, from C through libhugeheap.so: a `HUGEHEAP_MAX_HEAP` cap, an
//! address-space limit (`ulimit -v`) and a cgroup memory limit. Each time malloc, calloc,
//! realloc and posix_memalign must fail cleanly (NULL / ENOMEM, the old block untouched), no
//! data may be lost, and the program must be able to free memory and go on.

mod common;

use common::{build, hugeheap, lib, skip};
use std::collections::HashMap;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn values(out: &Output) -> HashMap<String, i64> {
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find_map(|l| l.strip_prefix('@')).unwrap_or_else(|| {
        panic!("no result line: {:?}\n{text}\n{}", out.status, String::from_utf8_lossy(&out.stderr))
    });
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.parse().unwrap()))
        .collect()
}

fn run(prog: &Path, max_mib: u64, env: &[(&str, &str)]) -> Command {
    let mut cmd = hugeheap();
    cmd.args(["run", "--lib"]).arg(lib()).arg("--").arg(prog).arg(max_mib.to_string()).envs(env.iter().copied());
    cmd
}

/// The promise: out of memory before `max_mib`, every entry point failing cleanly, data
/// intact, and half of what was freed allocated again.
fn assert_ran_out_cleanly(what: &str, out: &Output, max_mib: i64) -> HashMap<String, i64> {
    assert!(out.status.success(), "{what}: {:?}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    let v = values(out);
    assert!(v["blocks"] > 0 && v["blocks"] < max_mib, "{what}: {v:?}");
    assert_eq!(v["errno_ok"], 1, "{what}: malloc's NULL came without ENOMEM: {v:?}");
    assert_eq!(v["other_ok"], 1, "{what}: calloc/posix_memalign/realloc did not fail cleanly: {v:?}");
    assert_eq!(v["data_ok"], 1, "{what}: data lost: {v:?}");
    assert!(v["again"] >= v["blocks"] / 2 - 1, "{what}: could not allocate again after freeing: {v:?}");
    v
}

#[test]
fn cap_runs_out_cleanly() {
    let Some(prog) = build("exhaust.c", "cc", &[]) else { return };
    let out = run(&prog, 4096, &[("HUGEHEAP_MAX_HEAP", "256M")]).output().unwrap();
    let v = assert_ran_out_cleanly("HUGEHEAP_MAX_HEAP=256M", &out, 4096);
    // 1 MiB blocks take a little more than 1 MiB each (span rounding), never more than the cap.
    assert!((200..=256).contains(&v["blocks"]), "{v:?}");
}

#[test]
fn address_space_limit_runs_out_cleanly() {
    let Some(prog) = build("exhaust.c", "cc", &[]) else { return };
    const LIMIT: u64 = 2 << 30;
    let mut cmd = run(&prog, 4096, &[]);
    // SAFETY: setrlimit is async-signal-safe and allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit { rlim_cur: LIMIT, rlim_max: LIMIT };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    let v = assert_ran_out_cleanly("ulimit -v 2 GiB", &out, 4096);
    // The arena halves until it and its metadata fit under the limit (512 MiB here).
    assert!(v["blocks"] >= 256, "the heap found too little room under the limit: {v:?}");
}

/// A memory cgroup made for one test (v2 where the memory controller is on, else v1), removed
/// on drop. `None` (and the reason printed) where it cannot be made.
struct MemCgroup {
    dir: PathBuf,
    procs: std::fs::File,
}

impl MemCgroup {
    /// A group named after `tag` and this process (the tests of this file run at once).
    fn new(tag: &str, limit: u64) -> Option<MemCgroup> {
        let name = format!("hugeheap-test-{tag}-{}", std::process::id());
        let v2 = std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
            .is_ok_and(|c| c.split_whitespace().any(|w| w == "memory"));
        let (dir, file) = if v2 {
            (Path::new("/sys/fs/cgroup").join(&name), "memory.max")
        } else if Path::new("/sys/fs/cgroup/memory/cgroup.procs").exists() {
            (Path::new("/sys/fs/cgroup/memory").join(&name), "memory.limit_in_bytes")
        } else {
            skip("cgroup", "no memory cgroup controller (v2 or v1) mounted");
            return None;
        };
        if let Err(e) = std::fs::create_dir(&dir) {
            skip("cgroup", &format!("cannot create {} ({e}; needs root)", dir.display()));
            return None;
        }
        std::fs::write(dir.join(file), limit.to_string()).expect("set the memory limit");
        let _ = std::fs::write(dir.join(if v2 { "memory.swap.max" } else { "memory.swappiness" }), "0");
        let procs = std::fs::OpenOptions::new().write(true).open(dir.join("cgroup.procs")).expect("cgroup.procs");
        Some(MemCgroup { dir, procs })
    }

    /// Makes `cmd`'s process join the cgroup before it execs.
    fn enter(&self, cmd: &mut Command) {
        use std::os::fd::AsRawFd;
        let fd = self.procs.as_raw_fd();
        // SAFETY: write(2) is async-signal-safe; "0" names the writing process.
        unsafe {
            cmd.pre_exec(move || {
                if libc::write(fd, b"0\n".as_ptr().cast(), 2) != 2 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}

impl Drop for MemCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}

#[test]
fn cgroup_limit_runs_out_cleanly() {
    let Some(prog) = build("exhaust.c", "cc", &[]) else { return };
    const LIMIT: u64 = 384 << 20;
    let Some(cg) = MemCgroup::new("limit", LIMIT) else { return };
    let mut cmd = run(&prog, 4096, &[]);
    cg.enter(&mut cmd);
    let out = cmd.output().unwrap();
    let v = assert_ran_out_cleanly("cgroup limit 384 MiB", &out, 4096);
    assert!(v["blocks"] >= 128, "the heap found too little room under the cgroup limit: {v:?}");
    // Without hugeheap the same program meets the kernel's OOM killer, not a NULL: the
    // promise above is hugeheap's doing. (Only without swap, where the outcome is certain.)
    let swap = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    if swap.lines().any(|l| l.starts_with("SwapTotal:") && l.split_whitespace().nth(1) == Some("0")) {
        let mut plain = Command::new(&prog);
        plain.arg("4096");
        cg.enter(&mut plain);
        let out = plain.output().unwrap();
        assert_eq!(out.status.signal(), Some(libc::SIGKILL), "plain glibc under the limit: {:?}", out.status);
    } else {
        skip("no-swap", "the plain-glibc contrast: swap is on, so its outcome is not certain");
    }
}

/// Page cache charged to the cgroup is not memory the heap lacks: the kernel reclaims it under
/// the limit. A 200 MiB group holding ~170 MiB of a file's clean cache must still give a
/// program 64 MiB (glibc's malloc gets it; hugeheap once capped the heap at the 30 MiB left
/// beside the cache and returned NULL).
#[test]
fn a_cgroup_full_of_page_cache_still_gives_memory() {
    let Some(prog) = build("exhaust.c", "cc", &[]) else { return };
    let Some(cg) = MemCgroup::new("cache", 200 << 20) else { return };
    let file = common::tmp("cache-fill").join("fill");
    let mut dd = Command::new("dd");
    dd.args(["if=/dev/zero", "bs=1M", "count=170", "conv=fsync", "status=none"]).arg(format!("of={}", file.display()));
    cg.enter(&mut dd);
    let st = dd.status().expect("dd");
    assert!(st.success(), "filling the cgroup's page cache: {st:?}");
    let mut cmd = run(&prog, 64, &[]);
    cg.enter(&mut cmd);
    let out = cmd.output().unwrap();
    let _ = std::fs::remove_file(&file);
    assert!(out.status.success(), "{:?}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    let v = values(&out);
    assert_eq!(
        v["blocks"],
        64,
        "the heap was capped beside the cache: {v:?}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
