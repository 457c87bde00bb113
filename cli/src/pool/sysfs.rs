//! The hugetlb pools as the kernel shows them (sysfs, under a root directory that tests replace
//! with a fake tree), resized by writing `nr_hugepages`, and what `hugeheap pool --release`
//! puts back: the sizes before the first reservation, kept in `run/hugeheap/pools` under the
//! root (a tmpfs: lost at reboot, as the pools are).

use hugeheap::PageKind;
use hugeheap::internal::PoolInfo;
use std::path::{Path, PathBuf};

/// The two pool kinds, largest first, with their names.
pub const KINDS: [(PageKind, &str); 2] = [(PageKind::Gib1, "1 GiB"), (PageKind::Mib2, "2 MiB")];

/// The pools of the machine whose /sys and /run are under a root.
#[derive(Clone, Debug)]
pub struct Pools {
    root: PathBuf,
}

impl Pools {
    /// The pools under `root` (`/` for this machine).
    pub fn at(root: &Path) -> Pools {
        Pools { root: root.to_path_buf() }
    }

    /// The pool of `kind`; `None` where the kernel has none.
    pub fn read(&self, kind: PageKind) -> Option<PoolInfo> {
        PoolInfo::read(self.root.as_os_str().as_encoded_bytes(), kind)
    }

    /// Pages of `kind` free and not promised to a mapping already.
    pub fn unclaimed(&self, kind: PageKind) -> usize {
        self.read(kind).map_or(0, |p| p.free.saturating_sub(p.reserved))
    }

    fn file(&self, kind: PageKind) -> PathBuf {
        self.root.join(kind.pool_dir()).join("nr_hugepages")
    }

    /// Whether the pools can be resized here (the files exist and this process may write them).
    pub fn writable(&self) -> bool {
        std::fs::OpenOptions::new().write(true).open(self.file(PageKind::Mib2)).is_ok()
    }

    /// Asks for a pool of `pages` pages of `kind`; returns the size the kernel then shows (it may
    /// find fewer pages, or keep pages in use as surplus).
    pub fn resize(&self, kind: PageKind, pages: usize) -> Result<usize, String> {
        let file = self.file(kind);
        std::fs::write(&file, pages.to_string()).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
        Ok(self.read(kind).map_or(0, |p| p.total))
    }

    /// Bytes of memory the kernel could give without swapping (`MemAvailable`) and in all
    /// (`MemTotal`); `None` where /proc/meminfo cannot be read.
    pub fn memory(&self) -> Option<(usize, usize)> {
        let text = std::fs::read(self.root.join("proc/meminfo")).ok()?;
        let kib = |key: &[u8]| hugeheap::internal::field_kib(&text, key).map(|k| k << 10);
        Some((kib(b"MemAvailable:")?, kib(b"MemTotal:")?))
    }

    fn state_file(&self) -> PathBuf {
        self.root.join("run/hugeheap/pools")
    }

    /// The sizes (1 GiB, 2 MiB pages) before the first reservation not yet released.
    pub fn saved(&self) -> Option<(usize, usize)> {
        let text = std::fs::read_to_string(self.state_file()).ok()?;
        let mut words = text.split_whitespace().map(|w| w.parse::<usize>().ok());
        Some((words.next()??, words.next()??))
    }

    /// Keeps `sizes` (1 GiB, 2 MiB pages) for `--release`, unless sizes are kept already (a
    /// second reservation releases to the first one's "before").
    pub fn save(&self, sizes: (usize, usize)) -> Result<(), String> {
        if self.saved().is_some() {
            return Ok(());
        }
        let file = self.state_file();
        let fail = |e: std::io::Error| format!("cannot write {}: {e}", file.display());
        std::fs::create_dir_all(file.parent().unwrap_or(&self.root)).map_err(fail)?;
        std::fs::write(&file, format!("{} {}\n", sizes.0, sizes.1)).map_err(fail)
    }

    /// Forgets the kept sizes.
    pub fn forget(&self) -> Result<(), String> {
        let file = self.state_file();
        std::fs::remove_file(&file).map_err(|e| format!("cannot remove {}: {e}", file.display()))
    }
}
