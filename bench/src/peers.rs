//! The peer allocators' C libraries, as distributions install them (Debian's packages), and the
//! one place that finds them: the C-path benchmark and the real-program benchmarks preload them
//! beside hugeheap. The multiarch directory is this machine's (`/usr/lib/<arch>-linux-gnu`),
//! then the other usual library directories.

use std::path::PathBuf;

/// A peer: its short name, its library's file name, and the Debian package that installs it.
#[derive(Clone, Copy, Debug)]
pub struct Peer {
    /// Short name (a contestant's name in the tables).
    pub name: &'static str,
    /// The shared library to preload.
    pub file: &'static str,
    /// The Debian package that installs it.
    pub package: &'static str,
}

/// The peers, in table order.
pub const PEERS: [Peer; 3] = [
    Peer { name: "jemalloc", file: "libjemalloc.so.2", package: "libjemalloc2" },
    Peer { name: "mimalloc", file: "libmimalloc.so.2", package: "libmimalloc2.0" },
    Peer { name: "tcmalloc", file: "libtcmalloc_minimal.so.4", package: "libtcmalloc-minimal4" },
];

/// The directories searched for a peer's library, in order.
pub fn lib_dirs() -> Vec<PathBuf> {
    let multiarch = format!("/usr/lib/{}-linux-gnu", std::env::consts::ARCH);
    [multiarch.as_str(), "/usr/lib64", "/usr/lib", "/usr/local/lib"].iter().map(PathBuf::from).collect()
}

impl Peer {
    /// Where its library is installed: the first of [`lib_dirs`] that holds it; otherwise why
    /// not, with the command that installs it.
    pub fn find(&self) -> Result<PathBuf, String> {
        self.find_in(&lib_dirs())
    }

    fn find_in(&self, dirs: &[PathBuf]) -> Result<PathBuf, String> {
        dirs.iter().map(|d| d.join(self.file)).find(|p| p.is_file()).ok_or_else(|| {
            let looked: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
            format!("{} not found in {}: apt-get install {}", self.file, looked.join(", "), self.package)
        })
    }
}

/// The peer called `name`.
pub fn peer(name: &str) -> Option<&'static Peer> {
    PEERS.iter().find(|p| p.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_is_found_in_the_first_directory_that_holds_it() {
        let root = std::env::temp_dir().join(format!("hugeheap-peers-{}", std::process::id()));
        let (a, b) = (root.join("a"), root.join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let je = peer("jemalloc").unwrap();
        let err = je.find_in(&[a.clone(), b.clone()]).unwrap_err();
        assert!(err.contains("apt-get install libjemalloc2") && err.contains(&b.display().to_string()), "{err}");
        std::fs::write(b.join(je.file), b"").unwrap();
        assert_eq!(je.find_in(&[a.clone(), b.clone()]), Ok(b.join(je.file)));
        std::fs::write(a.join(je.file), b"").unwrap();
        assert_eq!(je.find_in(&[a.clone(), b]), Ok(a.join(je.file)));
        let _ = std::fs::remove_dir_all(root);
        assert!(lib_dirs()[0].ends_with(format!("{}-linux-gnu", std::env::consts::ARCH)));
    }
}
