//! What the machine can do, probed once into plain data, and what the kernel says the process
//! holds (the truth behind hugeheap's own counters).

use super::read_file;
use core::ffi::CStr;

/// The transparent huge page mode (`/sys/kernel/mm/transparent_hugepage/enabled`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThpMode {
    /// Every anonymous mapping may get huge pages.
    Always,
    /// Only mappings advised with `MADV_HUGEPAGE` get them.
    Madvise,
    /// THP is off: advising does nothing.
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
            b"never" => ThpMode::Never,
            _ => ThpMode::Unknown,
        }
    }
}

/// What the OS offers, read once at start.
#[derive(Clone, Copy, Debug)]
pub struct OsInfo {
    /// THP mode.
    pub thp: ThpMode,
    /// A 2 MiB hugetlb pool exists (it may be empty).
    pub has_2m: bool,
    /// A 1 GiB hugetlb pool exists (it may be empty).
    pub has_1g: bool,
    /// Pages the 2 MiB pool could give at start.
    pub avail_2m: usize,
    /// Pages the 1 GiB pool could give at start.
    pub avail_1g: usize,
    /// Physical memory in bytes.
    pub phys_mem: usize,
    /// Memory the process's cgroup limits leave at start (bytes; 0 when there is no limit):
    /// the smallest `limit - usage` over its memory cgroup and their ancestors (v2
    /// `memory.max`/`memory.current`, v1 `memory.limit_in_bytes`/`memory.usage_in_bytes`).
    pub cgroup_room: usize,
}

impl OsInfo {
    /// Probes the running system. Reads a handful of sysfs files; allocates nothing.
    pub fn probe() -> OsInfo {
        let mut buf = [0u8; 128];
        let thp = match read_file(c"/sys/kernel/mm/transparent_hugepage/enabled", &mut buf) {
            Some(n) => ThpMode::parse(&buf[..n]),
            None => ThpMode::Unknown,
        };
        let avail_2m = super::pool_available(super::PageKind::Mib2);
        let avail_1g = super::pool_available(super::PageKind::Gib1);
        OsInfo {
            thp,
            has_2m: avail_2m.is_some(),
            has_1g: avail_1g.is_some(),
            avail_2m: avail_2m.unwrap_or(0),
            avail_1g: avail_1g.unwrap_or(0),
            phys_mem: super::physical_memory(),
            cgroup_room: cgroup_room(),
        }
    }
}

/// What the machine offers: `thp=madvise, 2m pool 0 pages free, no 1g pool, no cgroup memory
/// limit`.
impl core::fmt::Display for OsInfo {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "thp={}", self.thp.name())?;
        for (has, avail, name) in [(self.has_2m, self.avail_2m, "2m"), (self.has_1g, self.avail_1g, "1g")] {
            match has {
                true => write!(f, ", {name} pool {avail} pages free")?,
                false => write!(f, ", no {name} pool")?,
            }
        }
        match self.cgroup_room {
            0 => write!(f, ", no cgroup memory limit"),
            room => write!(f, ", cgroup memory limit leaves {}", crate::units::Bytes(room)),
        }
    }
}

/// Limits at or above this are "no limit" (cgroup v1 writes its unlimited as ~2^63).
const NO_LIMIT: usize = 1 << 60;

/// See [`OsInfo::cgroup_room`]. Reads `/proc/self/cgroup` and the memory files of each level
/// of the hierarchy; allocates nothing.
pub fn cgroup_room() -> usize {
    let mut buf = [0u8; 1024];
    let Some(n) = read_file(c"/proc/self/cgroup", &mut buf) else { return 0 };
    let mut room = usize::MAX;
    for line in buf[..n].split(|&c| c == b'\n') {
        // "id:controllers:path"
        let mut parts = line.splitn(3, |&c| c == b':');
        let (Some(id), Some(ctl), Some(path)) = (parts.next(), parts.next(), parts.next()) else { continue };
        let v2 = id == b"0" && ctl.is_empty();
        let v1 = ctl.split(|&c| c == b',').any(|c| c == b"memory");
        let levels: &[(&[u8], &[u8], &[u8])] = if v2 {
            &[
                (b"/sys/fs/cgroup", b"/memory.max", b"/memory.current"),
                (b"/sys/fs/cgroup/unified", b"/memory.max", b"/memory.current"),
            ]
        } else if v1 {
            &[(b"/sys/fs/cgroup/memory", b"/memory.limit_in_bytes", b"/memory.usage_in_bytes")]
        } else {
            continue;
        };
        for &(root, limit_file, usage_file) in levels {
            // The cgroup itself, then each ancestor ("/a/b" → "/a" → "").
            let mut p = path;
            loop {
                if let Some(limit) = cgroup_number(root, p, limit_file).filter(|&l| l < NO_LIMIT) {
                    let usage = cgroup_number(root, p, usage_file).unwrap_or(0);
                    room = room.min(limit.saturating_sub(usage));
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

/// The number in file `root + path + file`, if it exists and holds one ("max" does not).
fn cgroup_number(root: &[u8], path: &[u8], file: &[u8]) -> Option<usize> {
    let mut full = [0u8; 512];
    let len = root.len() + path.len() + file.len();
    if len + 1 > full.len() {
        return None;
    }
    full[..root.len()].copy_from_slice(root);
    full[root.len()..root.len() + path.len()].copy_from_slice(path);
    full[root.len() + path.len()..len].copy_from_slice(file);
    let c = CStr::from_bytes_with_nul(&full[..=len]).ok()?;
    super::read_number(c)
}

/// What the kernel reports about this process's memory, in bytes: the truth behind
/// [`Stats`](crate::Stats)' per-kind counts (THP is advice the kernel may not follow).
///
/// ```rust,standalone_crate
/// #[global_allocator]
/// static A: hugeheap::HugeAlloc = hugeheap::HugeAlloc::new();
///
/// let v = vec![1u8; 64 << 20];
/// let k = hugeheap::KernelView::read();
/// // Huge pages of either kind, as the kernel counts them (0 where THP is off and no pool).
/// let huge = k.anon_huge + k.hugetlb;
/// assert!(k.rss + k.hugetlb >= 64 << 20 && k.vm_pte > 0 && huge <= k.rss + k.hugetlb);
/// println!("{k}"); // THP 64.0 MiB (AnonHugePages), hugetlb 0 B (HugetlbPages), ...
/// # drop(v);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelView {
    /// `AnonHugePages` of `/proc/self/smaps_rollup`: anonymous memory in transparent huge pages.
    pub anon_huge: usize,
    /// `HugetlbPages` of `/proc/self/status`: hugetlb memory mapped by the process.
    pub hugetlb: usize,
    /// `VmPTE` of `/proc/self/status`: page-table size.
    pub vm_pte: usize,
    /// `VmRSS` of `/proc/self/status`.
    pub rss: usize,
    /// Lines of `/proc/self/maps`: the number of mappings (VMAs).
    pub mappings: usize,
}

impl KernelView {
    /// Reads the kernel's view of this process. Allocates nothing (stack buffers).
    pub fn read() -> KernelView {
        let mut buf = [0u8; 8192];
        let mut v = KernelView::default();
        if let Some(n) = read_file(c"/proc/self/smaps_rollup", &mut buf) {
            v.anon_huge = field_kib(&buf[..n], b"AnonHugePages:").unwrap_or(0) * 1024;
        }
        if let Some(n) = read_file(c"/proc/self/status", &mut buf) {
            let s = &buf[..n];
            v.hugetlb = field_kib(s, b"HugetlbPages:").unwrap_or(0) * 1024;
            v.vm_pte = field_kib(s, b"VmPTE:").unwrap_or(0) * 1024;
            v.rss = field_kib(s, b"VmRSS:").unwrap_or(0) * 1024;
        }
        v.mappings = count_lines(c"/proc/self/maps");
        v
    }
}

impl core::fmt::Display for KernelView {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        use crate::units::Bytes;
        write!(
            f,
            "THP {} (AnonHugePages), hugetlb {} (HugetlbPages), page tables {} (VmPTE), RSS {} (VmRSS, \
             hugetlb not included), {} mappings",
            Bytes(self.anon_huge),
            Bytes(self.hugetlb),
            Bytes(self.vm_pte),
            Bytes(self.rss),
            self.mappings
        )
    }
}

/// Counts the lines of a file of any size, reading it in pieces.
fn count_lines(path: &CStr) -> usize {
    // The whole file may exceed any stack buffer: read it through a small window.
    let mut lines = 0;
    let mut buf = [0u8; 4096];
    // SAFETY: path is NUL-terminated.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return 0;
    }
    loop {
        // SAFETY: reading into our own buffer.
        let r = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if r <= 0 {
            break;
        }
        lines += buf[..r as usize].iter().filter(|&&c| c == b'\n').count();
    }
    // SAFETY: closing the fd opened above.
    unsafe { libc::close(fd) };
    lines
}

/// The number after `key` in a `Key:   123 kB` line.
pub fn field_kib(text: &[u8], key: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i + key.len() <= text.len() {
        if (i == 0 || text[i - 1] == b'\n') && text[i..].starts_with(key) {
            return super::parse_decimal(&text[i + key.len()..]);
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thp_mode_parses_kernel_form() {
        assert_eq!(ThpMode::parse(b"always [madvise] never\n"), ThpMode::Madvise);
        assert_eq!(ThpMode::parse(b"[always] madvise never"), ThpMode::Always);
        assert_eq!(ThpMode::parse(b"always madvise [never]"), ThpMode::Never);
        assert_eq!(ThpMode::parse(b"garbage"), ThpMode::Unknown);
    }

    #[test]
    fn field_kib_finds_line_starts_only() {
        let s = b"Name:\tx\nVmPTE:\t   120 kB\nXVmRSS: 5 kB\nVmRSS:\t 7 kB\n";
        assert_eq!(field_kib(s, b"VmPTE:"), Some(120));
        assert_eq!(field_kib(s, b"VmRSS:"), Some(7));
        assert_eq!(field_kib(s, b"Nope:"), None);
    }

    #[test]
    fn kernel_view_reads_this_process() {
        let v = KernelView::read();
        assert!(v.rss > 0);
        assert!(v.mappings > 5);
    }
}
