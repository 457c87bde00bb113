//! `hugeheap doctor` against fake /proc and /sys trees (THP never / madvise / always; pools
//! empty and filled; cgroup limits), and once against this machine.

use std::path::PathBuf;
use std::process::Command;

struct Tree(PathBuf);

impl Tree {
    fn new(name: &str) -> Tree {
        let d = std::env::temp_dir().join(format!("hugeheap-doctor-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let t = Tree(d);
        t.put("proc/sys/kernel/osrelease", "6.1.0-test");
        t
    }
    fn put(&self, rel: &str, text: &str) -> &Tree {
        let p = self.0.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
        self
    }
    fn thp(&self, mode: &str) -> &Tree {
        let line =
            ["always", "madvise", "never"].map(|m| if m == mode { format!("[{m}]") } else { m.to_string() }).join(" ");
        self.put("sys/kernel/mm/transparent_hugepage/enabled", &line);
        self.put("sys/kernel/mm/transparent_hugepage/defrag", "always defer defer+madvise [madvise] never")
    }
    fn pool(&self, kib: usize, total: usize, free: usize) -> &Tree {
        let d = format!("sys/kernel/mm/hugepages/hugepages-{kib}kB");
        self.put(&format!("{d}/nr_hugepages"), &total.to_string());
        self.put(&format!("{d}/free_hugepages"), &free.to_string());
        self.put(&format!("{d}/resv_hugepages"), "0");
        self.put(&format!("{d}/surplus_hugepages"), "0");
        self.put(&format!("{d}/nr_overcommit_hugepages"), "0")
    }
    fn doctor(&self, json: bool) -> String {
        let mut c = Command::new(env!("CARGO_BIN_EXE_hugeheap"));
        c.args(["doctor", "--root"]).arg(&self.0);
        if json {
            c.arg("--json");
        }
        let out = c.output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.doctor(true)).unwrap()
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn available(v: &serde_json::Value) -> Vec<String> {
    v["available_now"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().split(' ').next().unwrap().to_string())
        .collect()
}

fn advice(v: &serde_json::Value) -> String {
    v["advice"].as_array().unwrap().iter().map(|x| x.as_str().unwrap()).collect::<Vec<_>>().join("\n")
}

#[test]
fn thp_never_and_empty_pools_leave_only_4k() {
    let t = Tree::new("never");
    t.thp("never").pool(2048, 0, 0).pool(1048576, 0, 0);
    let v = t.json();
    assert_eq!(available(&v), ["4k"]);
    let a = advice(&v);
    assert!(a.contains("echo madvise > /sys/kernel/mm/transparent_hugepage/enabled"), "{a}");
    assert!(a.contains("echo 1024 > /proc/sys/vm/nr_hugepages"), "{a}");
    assert!(a.contains("hugeheap pool --for 2G"), "{a}");
    assert!(a.contains("/etc/sysctl.d/"), "{a}");
    assert!(a.contains("hugepagesz=1G hugepages=4"), "{a}");
    assert_eq!(v["kernel"], "6.1.0-test");
}

#[test]
fn thp_madvise_gives_thp() {
    let t = Tree::new("madvise");
    t.thp("madvise").pool(2048, 0, 0).pool(1048576, 0, 0);
    let v = t.json();
    assert_eq!(available(&v), ["thp", "4k"]);
    assert!(!advice(&v).contains("transparent_hugepage/enabled"));
    let text = t.doctor(false);
    assert!(text.contains("hugeheap can use now: thp (madvise mode), 4k (always)"), "{text}");
}

#[test]
fn thp_always_and_filled_pools_give_everything() {
    let t = Tree::new("always");
    t.thp("always").pool(2048, 512, 300).pool(1048576, 4, 2);
    let v = t.json();
    assert_eq!(available(&v), ["1g", "2m", "thp", "4k"]);
    assert_eq!(v["pool_2m"]["free"], 300);
    assert_eq!(v["pool_1g"]["total"], 4);
    assert!(advice(&v).is_empty(), "{}", advice(&v));
    assert!(t.doctor(false).contains("1g (2 pages free), 2m (300 pages free)"));
    // The rule for forked children, with this pool: 600 MiB free covers a heap of 600 / (1 + N).
    let children = v["children"].as_str().unwrap();
    assert!(children.contains("H x (1 + N) MiB"), "{children}");
    assert!(children.contains("300 MiB with 1 child, 200 MiB with 2 children, 120 MiB with 4 children"), "{children}");
}

#[test]
fn reserved_pages_do_not_count_and_overcommit_does() {
    let t = Tree::new("resv");
    t.thp("madvise").pool(2048, 10, 10).pool(1048576, 0, 0);
    t.put("sys/kernel/mm/hugepages/hugepages-2048kB/resv_hugepages", "10");
    assert_eq!(available(&t.json()), ["thp", "4k"]);
    t.put("sys/kernel/mm/hugepages/hugepages-2048kB/nr_overcommit_hugepages", "64");
    assert_eq!(available(&t.json()), ["2m", "thp", "4k"]);
}

#[test]
fn no_1g_support_and_cgroup_limits() {
    let t = Tree::new("cgroup");
    t.thp("madvise").pool(2048, 100, 100);
    t.put("proc/self/cgroup", "0::/svc/app\n");
    t.put("sys/fs/cgroup/svc/app/memory.max", "4294967296");
    t.put("sys/fs/cgroup/svc/app/hugetlb.2MB.max", "0");
    let v = t.json();
    assert_eq!(available(&v), ["thp", "4k"], "a hugetlb.2MB.max of 0 stops 2m");
    let a = advice(&v);
    assert!(a.contains("no hugepages-1048576kB"), "{a}");
    assert!(a.contains("hugetlb.2MB.max = 0"), "{a}");
    assert!(a.contains("leave this process 4.00 GiB"), "{a}");
}

#[test]
fn an_ancestors_memory_limit_counts_as_the_allocator_reads_it() {
    let t = Tree::new("ancestor");
    t.thp("madvise").pool(2048, 0, 0);
    t.put("proc/self/cgroup", "0::/svc/app\n");
    t.put("sys/fs/cgroup/svc/memory.max", "1073741824");
    t.put("sys/fs/cgroup/svc/memory.current", "536870912");
    t.put("sys/fs/cgroup/svc/app/memory.max", "max");
    let v = t.json();
    assert_eq!(v["cgroup_room"], 512u64 << 20, "the parent's limit less its usage: {v}");
    assert!(t.doctor(false).contains("memory cgroup: its limits leave this process 512.0 MiB"));
}

#[test]
fn this_machine() {
    let out = Command::new(env!("CARGO_BIN_EXE_hugeheap")).arg("doctor").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("hugeheap can use now:") && text.contains("4k (always)"), "{text}");
    let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
    assert_eq!(text.contains("thp ("), thp.contains("[madvise]") || thp.contains("[always]"), "{text}");
}

#[test]
fn a_balloon_that_reports_free_pages_is_named() {
    let t = Tree::new("balloon");
    t.thp("madvise").pool(2048, 0, 0).pool(1048576, 0, 0);
    // A network device, then a balloon without free page reporting: nothing to say.
    t.put("sys/bus/virtio/devices/virtio0/device", "0x0001\n");
    t.put("sys/bus/virtio/devices/virtio0/features", "1111110000000000\n");
    t.put("sys/bus/virtio/devices/virtio1/device", "0x0005\n");
    t.put("sys/bus/virtio/devices/virtio1/features", "0110000100000000\n");
    let v = t.json();
    assert_eq!(v["free_page_reporting"], false);
    assert!(!advice(&v).contains("free page reporting"));
    // The balloon offering feature 5 (bits from 0, left to right).
    t.put("sys/bus/virtio/devices/virtio1/features", "0110010100000000\n");
    let v = t.json();
    assert_eq!(v["free_page_reporting"], true);
    assert!(advice(&v).contains("virtio free page reporting"), "{}", advice(&v));
    // No wait to read (upstream's fixed 2 s): nothing said of it.
    assert_eq!(v["reporting_wait_ms"], serde_json::Value::Null);
    assert!(!advice(&v).contains("min_free_ms"), "{}", advice(&v));
    // A kernel that reports a block as soon as it is free: the way to make it wait is given.
    t.put("sys/module/page_reporting/parameters/min_free_ms", "0\n");
    let v = t.json();
    assert_eq!(v["reporting_wait_ms"], 0);
    assert!(advice(&v).contains("echo 10000 > /sys/module/page_reporting/parameters/min_free_ms"), "{}", advice(&v));
    // One that waits as long as upstream's does: nothing to change.
    t.put("sys/module/page_reporting/parameters/min_free_ms", "5000\n");
    let v = t.json();
    assert_eq!(v["reporting_wait_ms"], 5000);
    assert!(!advice(&v).contains("min_free_ms"), "{}", advice(&v));
    // Blocks of order 9 and up reported, of orders 0-10 kept: reporting is on.
    t.put("proc/buddyinfo", "Node 0, zone      DMA      0      0      0      0      0      0      0      0      1      1      3\nNode 0, zone   Normal  58003  40237  27825  18686  11990   3694   1428    806    491    754   1048\n");
    t.put("sys/module/page_reporting/parameters/page_reporting_order", "9\n");
    assert_eq!(t.json()["free_page_reporting"], true);
    t.put("sys/module/page_reporting/parameters/page_reporting_order", "10\n");
    assert_eq!(t.json()["free_page_reporting"], true);
    // An order past every block's (a VM kernel that takes it): nothing is reported.
    t.put("sys/module/page_reporting/parameters/page_reporting_order", "11\n");
    let v = t.json();
    assert_eq!(v["free_page_reporting"], false);
    assert!(!advice(&v).contains("free page reporting"), "{}", advice(&v));
}
