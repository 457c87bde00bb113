//! What the machine can do, probed once into plain data: the THP mode, the hugetlb pools, the
//! room the memory cgroup leaves. Read under a root directory (`/` here; `hugeheap doctor
//! --root` and its tests use copied trees), so that the doctor reports exactly what the
//! allocator reads.

use super::files::{Path, read_file, read_number, read_proc_file, stat_value};
use crate::pagekind::PageKind;
use crate::units::Bytes;
use core::fmt;

/// A setting of `/sys/kernel/mm/transparent_hugepage/{enabled,defrag}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThpMode {
    /// Every anonymous mapping may get huge pages (`defrag`: faults wait for compaction).
    Always,
    /// Only mappings advised with `MADV_HUGEPAGE` (`defrag`: advised faults wait).
    Madvise,
    /// `defrag` only: faults never wait; khugepaged collapses later.
    Defer,
    /// `defrag` only: advised faults wait, others defer.
    DeferMadvise,
    /// THP is off (`defrag`: no fault waits).
    Never,
    /// The file is missing or unreadable (kernel without THP, or no sysfs).
    Unknown,
}

impl ThpMode {
    /// The name the kernel uses.
    pub const fn name(self) -> &'static str {
        match self {
            ThpMode::Always => "always",
            ThpMode::Madvise => "madvise",
            ThpMode::Defer => "defer",
            ThpMode::DeferMadvise => "defer+madvise",
            ThpMode::Never => "never",
            ThpMode::Unknown => "unknown",
        }
    }

    /// Parses the kernel's `a [b] c` form, where the bracketed word is the mode in force.
    pub fn parse(text: &[u8]) -> ThpMode {
        let Some(open) = text.iter().position(|&c| c == b'[') else {
            return ThpMode::Unknown;
        };
        let rest = &text[open + 1..];
        let Some(close) = rest.iter().position(|&c| c == b']') else {
            return ThpMode::Unknown;
        };
        match &rest[..close] {
            b"always" => ThpMode::Always,
            b"madvise" => ThpMode::Madvise,
            b"defer" => ThpMode::Defer,
            b"defer+madvise" => ThpMode::DeferMadvise,
            b"never" => ThpMode::Never,
            _ => ThpMode::Unknown,
        }
    }

    fn read(root: &[u8], file: &[u8]) -> ThpMode {
        let mut buf = [0u8; 128];
        let Some(path) = Path::join(root, &[b"sys/kernel/mm/transparent_hugepage/", file]) else {
            return ThpMode::Unknown;
        };
        match read_file(path.as_cstr(), &mut buf) {
            Some(n) => ThpMode::parse(&buf[..n]),
            None => ThpMode::Unknown,
        }
    }
}

/// A hugetlb pool, as sysfs counts it (in pages of its size).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolInfo {
    /// Pages in the pool (`nr_hugepages`).
    pub total: usize,
    /// Pages free (`free_hugepages`).
    pub free: usize,
    /// Free pages already reserved by mappings that have not touched them (`resv_hugepages`).
    pub reserved: usize,
    /// Pages the pool may grow by on demand (`nr_overcommit_hugepages`).
    pub overcommit: usize,
    /// Pages it has grown by so far (`surplus_hugepages`).
    pub surplus: usize,
}

impl PoolInfo {
    /// Pages a new private mapping could reserve now: the free ones no mapping has reserved,
    /// plus what the pool may still grow by.
    pub fn available(&self) -> usize {
        self.free.saturating_sub(self.reserved) + self.overcommit.saturating_sub(self.surplus)
    }

    /// As `read(root, kind).map(|p| p.available())`, reading only the files that figure takes
    /// (three when the pool may not grow).
    pub fn read_available(root: &[u8], kind: PageKind) -> Option<usize> {
        Self::available_from(|file| pool_number(root, kind, file))
    }

    /// [`available`](PoolInfo::available), with each counter read by `number` (given the
    /// file's name in the pool's sysfs directory), and only the counters it takes.
    pub fn available_from(number: impl Fn(&[u8]) -> Option<usize>) -> Option<usize> {
        let free = number(b"free_hugepages")?;
        let reserved = number(b"resv_hugepages").unwrap_or(0);
        let overcommit = number(b"nr_overcommit_hugepages").unwrap_or(0);
        let surplus = if overcommit == 0 { 0 } else { number(b"surplus_hugepages").unwrap_or(0) };
        Some(PoolInfo { free, reserved, overcommit, surplus, ..PoolInfo::default() }.available())
    }

    /// Reads the pool of `kind` under `root`; `None` where the kernel has no such pool (or
    /// sysfs cannot be read).
    pub fn read(root: &[u8], kind: PageKind) -> Option<PoolInfo> {
        let number = |file: &[u8]| pool_number(root, kind, file);
        Some(PoolInfo {
            free: number(b"free_hugepages")?,
            total: number(b"nr_hugepages").unwrap_or(0),
            reserved: number(b"resv_hugepages").unwrap_or(0),
            overcommit: number(b"nr_overcommit_hugepages").unwrap_or(0),
            surplus: number(b"surplus_hugepages").unwrap_or(0),
        })
    }
}

/// The number in `file` of the sysfs directory of the pool of `kind` under `root`.
fn pool_number(root: &[u8], kind: PageKind, file: &[u8]) -> Option<usize> {
    read_number(Path::join(root, &[kind.pool_dir().as_bytes(), file])?.as_cstr())
}

/// Pages of `kind` a new private mapping could reserve now (see [`PoolInfo::available`]);
/// `None` where sysfs cannot be read.
pub fn pool_available(kind: PageKind) -> Option<usize> {
    PoolInfo::read_available(b"/", kind)
}

/// As [`pool_available`], from counters kept open ([`super::pool_counters`]), for a process
/// that asks before each of its forks (it holds hugetlb pages); a process that never does
/// keeps no descriptor of them.
pub fn pool_available_kept(kind: PageKind) -> Option<usize> {
    PoolInfo::available_from(|file| super::pool_counters::number(kind, file))
}

/// What the OS offers, read once at start.
#[derive(Clone, Copy, Debug)]
pub struct OsInfo {
    /// THP mode.
    pub thp: ThpMode,
    /// THP defrag setting (whether faults wait for a huge page).
    pub thp_defrag: ThpMode,
    /// The 2 MiB hugetlb pool, if the kernel has one (it may be empty).
    pub pool_2m: Option<PoolInfo>,
    /// The 1 GiB hugetlb pool, if the kernel has one.
    pub pool_1g: Option<PoolInfo>,
    /// Physical memory in bytes.
    pub phys_mem: usize,
    /// Memory the process's cgroup limits leave at start (bytes; 0 when there is no limit):
    /// the smallest `limit - (usage - page cache)` over its memory cgroup and their ancestors
    /// (v2 `memory.max`/`memory.current`, v1 `memory.limit_in_bytes`/`memory.usage_in_bytes`;
    /// the page cache is the active and inactive file pages of `memory.stat`, which the
    /// kernel reclaims before the limit fails anything). Re-read when the heap reaches it.
    pub cgroup_room: usize,
}

impl OsInfo {
    /// Probes this machine. Reads a handful of sysfs files; allocates nothing.
    pub fn probe() -> OsInfo {
        Self::probe_at(b"/")
    }

    /// Probes the machine whose /proc and /sys are under `root`.
    pub fn probe_at(root: &[u8]) -> OsInfo {
        OsInfo {
            thp: ThpMode::read(root, b"enabled"),
            thp_defrag: ThpMode::read(root, b"defrag"),
            pool_2m: PoolInfo::read(root, PageKind::Mib2),
            pool_1g: PoolInfo::read(root, PageKind::Gib1),
            phys_mem: super::process::physical_memory(),
            cgroup_room: cgroup_room(root),
        }
    }

    /// The pool of a hugetlb kind (`None` for the others, or where there is none).
    pub fn pool(&self, kind: PageKind) -> Option<PoolInfo> {
        match kind {
            PageKind::Mib2 => self.pool_2m,
            PageKind::Gib1 => self.pool_1g,
            _ => None,
        }
    }
}

/// What the machine offers: `thp=madvise, 2m pool 0 pages free, no 1g pool, no cgroup memory
/// limit`.
impl fmt::Display for OsInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "thp={}", self.thp.name())?;
        for kind in [PageKind::Mib2, PageKind::Gib1] {
            match self.pool(kind) {
                Some(p) => write!(f, ", {kind} pool {} pages free", p.available())?,
                None => write!(f, ", no {kind} pool")?,
            }
        }
        match self.cgroup_room {
            0 => write!(f, ", no cgroup memory limit"),
            room => write!(f, ", cgroup memory limit leaves {}", Bytes(room)),
        }
    }
}

/// Limits at or above this are "no limit" (cgroup v1 writes its unlimited as ~2^63).
const NO_LIMIT: usize = 1 << 60;

/// See [`OsInfo::cgroup_room`]. Reads `/proc/self/cgroup` and the memory files of each level
/// of the hierarchy under `root`; allocates nothing.
pub fn cgroup_room(root: &[u8]) -> usize {
    let mut buf = [0u8; 1024];
    let Some(path) = Path::join(root, &[b"proc/self/cgroup"]) else { return 0 };
    // The machine's own /proc must be procfs (a copied tree, for tests and `doctor --root`,
    // is read as it is).
    let read = if root == b"/" { read_proc_file } else { read_file };
    let Some(n) = read(path.as_cstr(), &mut buf) else { return 0 };
    let mut room = usize::MAX;
    for line in buf[..n].split(|&c| c == b'\n') {
        // "id:controllers:path"
        let mut parts = line.splitn(3, |&c| c == b':');
        let (Some(id), Some(ctl), Some(path)) = (parts.next(), parts.next(), parts.next()) else { continue };
        let v2 = id == b"0" && ctl.is_empty();
        let v1 = ctl.split(|&c| c == b',').any(|c| c == b"memory");
        // (directory, limit file, usage file, the page cache's keys in memory.stat)
        type Level = (&'static [u8], &'static [u8], &'static [u8], [&'static [u8]; 2]);
        const V2_CACHE: [&[u8]; 2] = [b"active_file", b"inactive_file"];
        let levels: &[Level] = if v2 {
            &[
                (b"sys/fs/cgroup", b"/memory.max", b"/memory.current", V2_CACHE),
                (b"sys/fs/cgroup/unified", b"/memory.max", b"/memory.current", V2_CACHE),
            ]
        } else if v1 {
            &[(
                b"sys/fs/cgroup/memory",
                b"/memory.limit_in_bytes",
                b"/memory.usage_in_bytes",
                [b"total_active_file", b"total_inactive_file"],
            )]
        } else {
            continue;
        };
        for &(dir, limit_file, usage_file, cache_keys) in levels {
            // The cgroup itself, then each ancestor ("/a/b" → "/a" → "").
            let mut p = path;
            loop {
                let number = |file: &[u8]| read_number(Path::join(root, &[dir, p, file])?.as_cstr());
                if let Some(limit) = number(limit_file).filter(|&l| l < NO_LIMIT) {
                    let usage = number(usage_file).unwrap_or(0);
                    // The page cache is charged to the group but given back under its limit
                    // before anything fails: not usage that leaves no room.
                    let mut stat = [0u8; 4096];
                    let cache = Path::join(root, &[dir, p, b"/memory.stat"])
                        .and_then(|f| read_file(f.as_cstr(), &mut stat))
                        .map_or(0, |n| cache_keys.iter().filter_map(|k| stat_value(&stat[..n], k)).sum());
                    room = room.min(limit.saturating_sub(usage.saturating_sub(cache)));
                }
                match p.iter().rposition(|&c| c == b'/') {
                    Some(i) if !p.is_empty() => p = &p[..i],
                    _ => break,
                }
            }
        }
    }
    if room == usize::MAX { 0 } else { room.max(1) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thp_mode_parses_kernel_form() {
        assert_eq!(ThpMode::parse(b"always [madvise] never\n"), ThpMode::Madvise);
        assert_eq!(ThpMode::parse(b"[always] madvise never"), ThpMode::Always);
        assert_eq!(ThpMode::parse(b"always madvise [never]"), ThpMode::Never);
        assert_eq!(ThpMode::parse(b"always defer [defer+madvise] madvise never"), ThpMode::DeferMadvise);
        assert_eq!(ThpMode::parse(b"garbage"), ThpMode::Unknown);
    }

    #[test]
    fn pool_availability_counts_reservations_and_overcommit() {
        let p = PoolInfo { total: 10, free: 8, reserved: 3, overcommit: 4, surplus: 1 };
        assert_eq!(p.available(), 5 + 3);
        assert_eq!(PoolInfo { free: 2, reserved: 5, ..PoolInfo::default() }.available(), 0);
    }

    #[test]
    fn probes_a_copied_tree() {
        let root = std::env::temp_dir().join(format!("hugeheap-probe-{}", std::process::id()));
        let put = |rel: &str, text: &str| {
            let p = root.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        put("sys/kernel/mm/transparent_hugepage/enabled", "always madvise [never]\n");
        put("sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages", "7\n");
        put("proc/self/cgroup", "0::/a/b\n");
        put("sys/fs/cgroup/a/memory.max", "1000000\n");
        put("sys/fs/cgroup/a/memory.current", "400000\n");
        put("sys/fs/cgroup/a/memory.stat", "anon 100000\nactive_file 50000\ninactive_file 100000\n");
        put("sys/fs/cgroup/a/b/memory.max", "max\n");
        let info = OsInfo::probe_at(root.to_str().unwrap().as_bytes());
        assert_eq!(info.thp, ThpMode::Never);
        assert_eq!(info.pool_2m.map(|p| p.available()), Some(7));
        assert!(info.pool_1g.is_none());
        assert_eq!(info.cgroup_room, 750_000, "the ancestor's limit counts, its page cache does not");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn availability_alone_reads_what_the_whole_pool_says() {
        let root = std::env::temp_dir().join(format!("hugeheap-avail-{}", std::process::id()));
        let dir = root.join("sys/kernel/mm/hugepages/hugepages-2048kB");
        std::fs::create_dir_all(&dir).unwrap();
        let r = root.to_str().unwrap().as_bytes();
        // (free, resv, overcommit, surplus), with the surplus left over from a pool that could
        // grow before (read only when it still may).
        for (free, resv, over, surplus) in [(8, 3, 4, 1), (2, 5, 0, 0), (9, 0, 0, 3), (0, 0, 6, 2), (5, 1, 2, 7)] {
            for (f, v) in [
                ("free_hugepages", free),
                ("resv_hugepages", resv),
                ("nr_overcommit_hugepages", over),
                ("surplus_hugepages", surplus),
                ("nr_hugepages", 10),
            ] {
                std::fs::write(dir.join(f), format!("{v}\n")).unwrap();
            }
            let whole = PoolInfo::read(r, PageKind::Mib2).map(|p| p.available());
            assert_eq!(PoolInfo::read_available(r, PageKind::Mib2), whole, "{free} {resv} {over} {surplus}");
        }
        assert_eq!(PoolInfo::read_available(r, PageKind::Gib1), None, "no such pool");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
