//! `hugeheap doctor`: can this machine give huge pages right now, and how to turn on the
//! rest. The THP mode, the hugetlb pools and the memory cgroup's room come from the library's
//! own probe (`OsInfo::probe_at`), so the doctor reports what the allocator will read; the
//! kernel release and the cgroup's hugetlb limits, which the allocator does not read (a limit
//! shows up there as a refused `mmap`), are read here. Everything is read under a root
//! directory that tests replace with fake trees.

use hugeheap::internal::{Bytes, OsInfo, PoolInfo, ThpMode};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// One hugetlb pool.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Pool {
    /// Page size in KiB (2048 or 1048576).
    pub page_kib: usize,
    /// The kernel supports this size (its sysfs directory exists).
    pub supported: bool,
    /// Pages reserved (`nr_hugepages`).
    pub total: usize,
    /// Pages free (`free_hugepages`).
    pub free: usize,
    /// Free pages already reserved by existing mappings, not yet touched (`resv_hugepages`).
    pub reserved: usize,
    /// Surplus pages in use (`surplus_hugepages`).
    pub surplus: usize,
    /// Surplus pages allowed (`nr_overcommit_hugepages`).
    pub overcommit: usize,
    /// Pages a new mapping could get now (the library's own count).
    pub available: usize,
}

impl Pool {
    fn of(page_kib: usize, p: Option<PoolInfo>) -> Pool {
        let p_or = p.unwrap_or_default();
        Pool {
            page_kib,
            supported: p.is_some(),
            total: p_or.total,
            free: p_or.free,
            reserved: p_or.reserved,
            surplus: p_or.surplus,
            overcommit: p_or.overcommit,
            available: p_or.available(),
        }
    }
}

/// What the doctor found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// Kernel release.
    pub kernel: String,
    /// THP mode in force (`always`, `madvise`, `never`, or `unknown`).
    pub thp: String,
    /// THP defrag setting in force.
    pub thp_defrag: String,
    /// The 2 MiB pool.
    pub pool_2m: Pool,
    /// The 1 GiB pool.
    pub pool_1g: Pool,
    /// The room the memory cgroup limits leave this process, bytes (the smallest over the
    /// cgroup and its ancestors, v2 or v1); `None` when nothing limits it.
    pub cgroup_room: Option<usize>,
    /// cgroup v2 `hugetlb.2MB.max`, if any.
    pub cgroup_hugetlb_2m_max: Option<String>,
    /// cgroup v2 `hugetlb.1GB.max`, if any.
    pub cgroup_hugetlb_1g_max: Option<String>,
    /// Page kinds hugeheap can get right now, best first.
    pub available_now: Vec<String>,
    /// What to do about the rest, one item each (commands included).
    pub advice: Vec<String>,
    /// The pool-sizing rule for forked children, with this machine's 2 MiB pool.
    pub children: String,
    /// This machine is a VM whose balloon device reports free memory to its host (see
    /// [`free_page_reporting`]).
    pub free_page_reporting: bool,
    /// How long a free block stays free before the guest reports it, ms, where the kernel
    /// lets it be set (`page_reporting.min_free_ms`, a parameter some VM kernels add; upstream
    /// waits 2 s and has no such parameter).
    pub reporting_wait_ms: Option<u64>,
}

fn read(root: &Path, rel: &str) -> Option<String> {
    std::fs::read_to_string(root.join(rel.trim_start_matches('/'))).ok().map(|s| s.trim().to_string())
}

/// Examines the machine whose /proc and /sys are under `root` (`/` for this one).
pub fn examine(root: &Path) -> Report {
    let info = OsInfo::probe_at(root.as_os_str().as_encoded_bytes());
    let mut r = Report {
        kernel: read(root, "proc/sys/kernel/osrelease").unwrap_or_else(|| "unknown".into()),
        thp: info.thp.name().into(),
        thp_defrag: info.thp_defrag.name().into(),
        pool_2m: Pool::of(2048, info.pool_2m),
        pool_1g: Pool::of(1048576, info.pool_1g),
        cgroup_room: (info.cgroup_room > 0).then_some(info.cgroup_room),
        ..Report::default()
    };
    // cgroup v2: "0::/path" in /proc/self/cgroup.
    if let Some(path) =
        read(root, "proc/self/cgroup").and_then(|c| c.lines().find_map(|l| l.strip_prefix("0::").map(String::from)))
    {
        let dir = format!("sys/fs/cgroup/{}", path.trim_start_matches('/'));
        r.cgroup_hugetlb_2m_max = read(root, &format!("{dir}/hugetlb.2MB.max"));
        r.cgroup_hugetlb_1g_max = read(root, &format!("{dir}/hugetlb.1GB.max"));
    }
    r.free_page_reporting = free_page_reporting(root);
    r.reporting_wait_ms = reporting_wait_ms(root);
    advise(&mut r, &info);
    r.children = children_rule(r.pool_2m.available);
    r
}

/// Where a VM kernel that has it keeps how long a free block waits before it is reported.
const REPORTING_WAIT: &str = "sys/module/page_reporting/parameters/min_free_ms";

/// Below this wait (ms), blocks freed by one process are reported before the next one takes
/// them: upstream's fixed delay is 2 s.
const SHORT_REPORTING_WAIT_MS: u64 = 2000;

/// How long a free block waits before it is reported on the machine under `root`, ms, where
/// its kernel lets it be set (see [`Report::reporting_wait_ms`]).
pub fn reporting_wait_ms(root: &Path) -> Option<u64> {
    read(root, REPORTING_WAIT).and_then(|v| v.parse().ok())
}

/// Whether the machine under `root` is a VM whose balloon device reports free memory to its
/// host (a virtio device of type 5, the balloon, offering feature 5, free page reporting), and
/// its kernel reports some free blocks (see [`reporting_order_above_every_block`]). The guest
/// then hands free 2 MiB blocks back to the host, and a huge page later taken from one faults
/// on the host again: a new THP heap's first touch is slow there, where 4 KiB pages the guest
/// still holds are not (docs/benchmarks.md, the C path).
pub fn free_page_reporting(root: &Path) -> bool {
    let Ok(devices) = std::fs::read_dir(root.join("sys/bus/virtio/devices")) else {
        return false;
    };
    let balloon = devices.flatten().any(|d| {
        let dir = d.path();
        read(&dir, "device").is_some_and(|t| t == "0x0005")
            && read(&dir, "features").is_some_and(|f| f.as_bytes().get(5) == Some(&b'1'))
    });
    balloon && !reporting_order_above_every_block(root)
}

/// Where the kernel keeps the order of the smallest free block it reports (9, 2 MiB, by
/// default).
const REPORTING_ORDER: &str = "sys/module/page_reporting/parameters/page_reporting_order";

/// Whether the kernel under `root` reports no free block at all: its reporting order is above
/// the largest block its buddy allocator keeps (the orders are `/proc/buddyinfo`'s columns).
/// Upstream refuses such an order; a VM kernel that takes it has reporting off, and its free
/// memory stays backed.
pub fn reporting_order_above_every_block(root: &Path) -> bool {
    let order = read(root, REPORTING_ORDER).and_then(|v| v.parse::<usize>().ok());
    let orders = read(root, "proc/buddyinfo")
        .and_then(|b| b.lines().map(|l| l.split_whitespace().skip(4).count()).max())
        .filter(|&n| n > 0);
    matches!((order, orders), (Some(o), Some(n)) if o >= n)
}

/// The rule for a 2 MiB pool and forked children (docs/tuning.md), with what a pool of
/// `available` free pages covers.
fn children_rule(available: usize) -> String {
    let rule = "a heap of H MiB whose process keeps N forked children alive at once (fork without exec: \
                worker pools, prefork servers, snapshots) stays in 2 MiB pages, children included, with a pool \
                of H x (1 + N) MiB; with less, hugeheap takes at most half the pool and the children beyond \
                what it covers move their heap into THP at fork (none dies of SIGBUS). Children that exec at \
                once need nothing: HUGEHEAP_COW_RESERVE=0 lets the heap use the whole pool";
    if available == 0 {
        return format!("{rule}.");
    }
    let mib = available * 2;
    let covers: Vec<String> = [1, 2, 4]
        .iter()
        .map(|n| format!("{} MiB with {n} child{}", mib / (1 + n), if *n == 1 { "" } else { "ren" }))
        .collect();
    format!("{rule}. This pool ({mib} MiB free) covers a heap of {}.", covers.join(", "))
}

fn advise(r: &mut Report, info: &OsInfo) {
    let capped = |v: &Option<String>| v.as_deref().is_some_and(|v| v != "max");
    if r.pool_1g.available > 0 && !capped(&r.cgroup_hugetlb_1g_max) {
        r.available_now.push(format!("1g ({} pages free)", r.pool_1g.available));
    } else if !r.pool_1g.supported {
        r.advice.push(
            "1 GiB pages: this kernel or CPU offers none (no hugepages-1048576kB in sysfs); check \
             `grep pdpe1gb /proc/cpuinfo` and a kernel with CONFIG_HUGETLB_PAGE."
                .into(),
        );
    } else {
        r.advice.push(
            "1 GiB pages: the pool is empty. They need contiguous gigabytes, best reserved at boot: add \
             `hugepagesz=1G hugepages=4` to the kernel command line (GRUB_CMDLINE_LINUX in /etc/default/grub, \
             then `update-grub` and reboot); at run time, as root, try \
             `echo 4 > /sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages` and check what you got."
                .into(),
        );
    }
    if r.pool_2m.available > 0 && !capped(&r.cgroup_hugetlb_2m_max) {
        r.available_now.push(format!("2m ({} pages free)", r.pool_2m.available));
    } else if !r.pool_2m.supported {
        r.advice.push("2 MiB hugetlb pages: not supported by this kernel (no hugepages-2048kB in sysfs).".into());
    } else {
        r.advice.push(
            "2 MiB hugetlb pages: the pool is empty. As root: `hugeheap pool --for 2G` reserves what a 2 GiB heap \
             and one forked child need (1 GiB pages too where the kernel finds them; `--persist` keeps it), or by \
             hand `echo 1024 > /proc/sys/vm/nr_hugepages` (1024 x 2 MiB = 2 GiB), or let it grow on demand with `echo 1024 > /proc/sys/vm/nr_overcommit_hugepages`; to keep it \
             across reboots put `vm.nr_hugepages = 1024` in /etc/sysctl.d/90-hugepages.conf."
                .into(),
        );
    }
    if capped(&r.cgroup_hugetlb_2m_max) || capped(&r.cgroup_hugetlb_1g_max) {
        r.advice.push(format!(
            "this cgroup limits hugetlb memory (hugetlb.2MB.max = {}, hugetlb.1GB.max = {}): hugeheap falls back \
             past it; raise the limit in the container or service settings.",
            r.cgroup_hugetlb_2m_max.as_deref().unwrap_or("-"),
            r.cgroup_hugetlb_1g_max.as_deref().unwrap_or("-")
        ));
    }
    match info.thp {
        ThpMode::Always | ThpMode::Madvise => {
            r.available_now.push(format!("thp ({} mode)", r.thp));
            if matches!(info.thp_defrag, ThpMode::Never | ThpMode::Defer) {
                r.advice.push(format!(
                    "THP defrag is `{}`: faults in advised memory do not wait for huge pages, so coverage \
                     depends on khugepaged. For more: `echo madvise > /sys/kernel/mm/transparent_hugepage/defrag`.",
                    r.thp_defrag
                ));
            }
        }
        ThpMode::Never => r.advice.push(
            "THP is `never`: as root, `echo madvise > /sys/kernel/mm/transparent_hugepage/enabled` (hugeheap \
             advises its own memory; `madvise` leaves other programs alone); at boot: \
             `transparent_hugepage=madvise` on the kernel command line."
                .into(),
        ),
        _ => r.advice.push("THP: this kernel has no transparent huge pages (no sysfs entry).".into()),
    }
    r.available_now.push("4k (always)".into());
    if r.free_page_reporting && matches!(info.thp, ThpMode::Always | ThpMode::Madvise) {
        let mut text = String::from(
            "this VM's balloon device reports free memory to its host (virtio free page reporting): free 2 MiB \
             blocks go back to the host, and a huge page taken from one faults on the host again, so a new THP \
             heap is slow to touch the first time (on one such VM, 256 MiB in 469 ms against 42 ms once backed, \
             4 KiB pages 190-200 ms); a long-running process pays it once. The host's settings turn it off.",
        );
        if let Some(ms) = r.reporting_wait_ms.filter(|&ms| ms < SHORT_REPORTING_WAIT_MS) {
            text.push_str(&format!(
                " Here a block is reported once it has been free {ms} ms, so even the memory a process has \
                 just freed is the host's again when the next one faults it in: as root, `echo 10000 > \
                 /{REPORTING_WAIT}` keeps what was freed in the last 10 s backed (the host gets freed memory \
                 back 10 s later; on one such VM, `hugeheap bench cpath`'s `sort` under hugeheap \
                 took 0.76 s so, against 1.05 s with the wait at 0, where tcmalloc took 0.81 and 0.78 s)."
            ));
        }
        r.advice.push(text);
    }
    if let Some(room) = r.cgroup_room {
        r.advice.push(format!(
            "the memory cgroup limits leave this process {}: hugeheap caps its heap there, so that a full \
             heap returns NULL instead of meeting the OOM killer; its 2 MiB granularity counts against it.",
            Bytes(room)
        ));
    }
}

impl Report {
    /// The human-readable form.
    pub fn text(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "kernel {}", self.kernel);
        let _ = writeln!(o, "THP: {} (defrag {})", self.thp, self.thp_defrag);
        for p in [&self.pool_2m, &self.pool_1g] {
            let name = if p.page_kib == 2048 { "2 MiB" } else { "1 GiB" };
            if p.supported {
                let _ = writeln!(
                    o,
                    "hugetlb {name} pool: {} pages, {} free ({} of them reserved by mappings not yet touched); \
                     may grow on demand by {} ({} grown so far) => {} pages available now",
                    p.total, p.free, p.reserved, p.overcommit, p.surplus, p.available
                );
            } else {
                let _ = writeln!(o, "hugetlb {name}: not supported");
            }
        }
        match self.cgroup_room {
            Some(room) => {
                let _ = writeln!(o, "memory cgroup: its limits leave this process {}", Bytes(room));
            }
            None => {
                let _ = writeln!(o, "memory cgroup: no limit");
            }
        }
        let _ = writeln!(o, "\nhugeheap can use now: {}", self.available_now.join(", "));
        let _ = writeln!(o, "\nforked children: {}", self.children);
        if !self.advice.is_empty() {
            let _ = writeln!(o, "\nto get more:");
            for a in &self.advice {
                let _ = writeln!(o, "- {a}");
            }
        }
        o
    }
}

/// Runs `hugeheap doctor`.
pub fn run(root: Option<PathBuf>, json: bool) -> std::io::Result<()> {
    let r = examine(&root.unwrap_or_else(|| PathBuf::from("/")));
    if json {
        println!("{}", serde_json::to_string_pretty(&r).map_err(std::io::Error::other)?);
    } else {
        print!("{}", r.text());
    }
    Ok(())
}
