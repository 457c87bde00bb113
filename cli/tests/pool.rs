//! `hugeheap pool` against fake sysfs trees (sizing, a second call, persistence files under a
//! fake /etc, release to the sizes before, bad input and heaps larger than the machine
//! changing nothing), and once on this
//! machine (root): pools for a 2 GiB heap, a 2 GiB Python heap under `hugeheap run` in hugetlb
//! pages whose four writing children all survive, and the pools given back exactly.

mod common;

use common::{hugeheap, skip};
use std::path::{Path, PathBuf};
use std::process::Output;

const G1: &str = "sys/kernel/mm/hugepages/hugepages-1048576kB";
const M2: &str = "sys/kernel/mm/hugepages/hugepages-2048kB";

/// A fake /sys with both pools, `(total, free)` each.
struct Fake(PathBuf);

impl Fake {
    fn new(name: &str, gib: (usize, usize), mib: (usize, usize)) -> Fake {
        let d = std::env::temp_dir().join(format!("hugeheap-pool-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        for (dir, (total, free)) in [(G1, gib), (M2, mib)] {
            std::fs::create_dir_all(d.join(dir)).unwrap();
            for (file, v) in [("nr_hugepages", total), ("free_hugepages", free)] {
                std::fs::write(d.join(dir).join(file), format!("{v}\n")).unwrap();
            }
            for file in ["resv_hugepages", "surplus_hugepages", "nr_overcommit_hugepages"] {
                std::fs::write(d.join(dir).join(file), "0\n").unwrap();
            }
        }
        std::fs::create_dir_all(d.join("proc")).unwrap();
        std::fs::write(d.join("proc/meminfo"), "MemTotal:       25165824 kB\nMemAvailable:   24117248 kB\n").unwrap();
        Fake(d)
    }
    fn total(&self, dir: &str) -> usize {
        std::fs::read_to_string(self.0.join(dir).join("nr_hugepages")).unwrap().trim().parse().unwrap()
    }
    fn pool(&self, args: &[&str]) -> Output {
        hugeheap().arg("pool").args(args).arg("--root").arg(&self.0).output().unwrap()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn reserves_the_heap_and_its_copy_then_gives_back_exactly_what_was_there() {
    let fake = Fake::new("reserve", (0, 0), (16, 16));
    let o = fake.pool(&["--for", "2G"]);
    assert!(o.status.success(), "{}", text(&o));
    // 2 GiB + 1/8 = 2.25 GiB per copy, two copies: one 1 GiB page and 640 x 2 MiB each; the 16
    // free pages count.
    assert_eq!((fake.total(G1), fake.total(M2)), (2, 16 + 1280 - 16), "{}", text(&o));
    assert!(text(&o).contains("fits in hugetlb pages"), "{}", text(&o));
    // A second call finds the pages there (the fake kernel leaves `free` as it was, so it asks
    // again for what is not free) and keeps the first call's sizes for the release.
    let again = fake.pool(&["--for", "1G", "--children", "0"]);
    assert!(again.status.success(), "{}", text(&again));
    let release = fake.pool(&["--release"]);
    assert!(release.status.success(), "{}", text(&release));
    assert_eq!((fake.total(G1), fake.total(M2)), (0, 16), "{}", text(&release));
    let twice = fake.pool(&["--release"]);
    assert!(!twice.status.success() && text(&twice).contains("nothing to release"), "{}", text(&twice));
}

#[test]
fn more_children_more_copies_and_two_mib_pages_make_up_for_missing_gigabytes() {
    let fake = Fake::new("children", (0, 0), (0, 0));
    // A kernel (or CPU) with no 1 GiB pages at all.
    std::fs::remove_dir_all(fake.0.join(G1)).unwrap();
    let o = fake.pool(&["--for", "3G", "--children", "3"]);
    assert!(o.status.success(), "{}", text(&o));
    // 3 GiB + 1/8 = 3.375 GiB = 1728 x 2 MiB per copy, four copies.
    assert_eq!(fake.total(M2), 1728 * 4, "{}", text(&o));
    assert!(text(&o).contains("1 GiB pool: not offered"), "{}", text(&o));
}

#[test]
fn persistence_lines_land_under_a_fake_etc() {
    let fake = Fake::new("persist", (2, 2), (1280, 1280));
    let etc = fake.0.join("image");
    let o = fake.pool(&["--persist", "--write", "--prefix", etc.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let sysctl = std::fs::read_to_string(etc.join("etc/sysctl.d/90-hugeheap.conf")).unwrap();
    assert!(sysctl.lines().any(|l| l == "vm.nr_hugepages = 1280"), "{sysctl}");
    let unit = std::fs::read_to_string(etc.join("etc/systemd/system/hugeheap-pools.service")).unwrap();
    assert!(unit.contains("echo 2 > /sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages"), "{unit}");
    assert!(text(&o).contains("hugepagesz=1G hugepages=2"), "{}", text(&o));
    let printed = fake.pool(&["--persist"]);
    assert!(text(&printed).contains("vm.nr_hugepages = 1280") && text(&printed).contains("[Unit]"));
}

#[test]
fn bad_input_says_one_thing_and_changes_nothing() {
    let fake = Fake::new("bad", (0, 0), (8, 8));
    for args in [
        &["--for", "banana"][..],
        &["--for", "0"],
        &["--for", "-1G"],
        &["--children", "2"],
        &["--for", "1G", "--release"],
        &["--for", "16E"],
        &["--for", "12G"],
        &["--for", "8T"],
        &["--release"],
        &["--write"],
    ] {
        let o = fake.pool(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} accepted: {}", text(&o));
        let first = err.lines().next().unwrap_or("");
        // clap's own message for a malformed command line, else the command's: one line.
        assert!(
            first.starts_with("error: ") || (first.starts_with("hugeheap pool: ") && err.lines().count() == 1),
            "{args:?}: {err}"
        );
        assert_eq!((fake.total(G1), fake.total(M2)), (0, 8), "{args:?} changed the pools");
        assert!(!fake.0.join("run/hugeheap/pools").exists(), "{args:?} kept sizes");
    }
    let empty = Fake::new("empty", (0, 0), (0, 0));
    let o = empty.pool(&["--persist"]);
    assert!(!o.status.success() && text(&o).contains("pools are empty"), "{}", text(&o));
}

fn kib(status: &str, key: &str) -> usize {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn sizes() -> (String, String) {
    let read = |d: &str| std::fs::read_to_string(Path::new("/").join(d).join("nr_hugepages")).unwrap_or_default();
    (read(G1), read(M2))
}

#[test]
fn on_this_machine_a_python_heap_fills_the_pool_and_its_writing_children_survive() {
    if !common::root() {
        return skip("root", "`hugeheap pool --for` resizes the machine's pools");
    }
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    if kib(&meminfo, "MemAvailable:") < 14 << 20 {
        return skip("memory", "fewer than 14 GiB available for a 2 GiB heap, its pool and four children");
    }
    let before = sizes();
    let o = hugeheap().args(["pool", "--for", "2G"]).output().unwrap();
    let restore = scopeguard(|| {
        let r = hugeheap().args(["pool", "--release"]).output().unwrap();
        assert!(r.status.success(), "{}", text(&r));
    });
    assert!(o.status.success(), "{}", text(&o));
    println!("{}", text(&o));
    // A 2 GiB heap of bytearrays; four children alive at once each write every one of them.
    let prog = r#"
import os, sys
blobs = [bytearray(1000) for _ in range(2_000_000)]
status = open('/proc/self/status').read()
tlb = int(status.split('HugetlbPages:')[1].split()[0])
pids = []
for _ in range(4):
    pid = os.fork()
    if pid == 0:
        for b in blobs:
            b[0] = 1
        os._exit(0)
    pids.append(pid)
codes = [os.waitstatus_to_exitcode(os.waitpid(p, 0)[1]) for p in pids]
print(f"hugetlb_kib={tlb} children={codes}")
"#;
    let run = hugeheap().args(["run", "--", "python3", "-c", prog]).output().unwrap();
    let out = text(&run);
    println!("{out}");
    assert!(run.status.success(), "{out}");
    assert!(out.contains("children=[0, 0, 0, 0]"), "a child died: {out}");
    let tlb: usize = out.split("hugetlb_kib=").nth(1).and_then(|v| v.split_whitespace().next()?.parse().ok()).unwrap();
    assert!(tlb >= 3 << 19, "the heap is not in hugetlb pages: {tlb} kB");
    drop(restore);
    assert_eq!(sizes(), before, "the release did not restore the pools");
}

/// Runs `f` when dropped, whatever happens (a failed assertion included).
fn scopeguard(f: impl FnOnce()) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    Guard(Some(f))
}
