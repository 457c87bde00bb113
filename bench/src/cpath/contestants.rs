//! The C path's contestants: glibc (nothing preloaded), the peers' libraries where installed
//! ([`crate::peers`]), `libhugeheap.so`, and `libhugeheap.so` in 4 KiB pages (`hh-4k`,
//! `HUGEHEAP_PAGES=4k`): the same allocator without huge pages, which tells what hugeheap's
//! time owes to the kernel's first touch of huge pages from what it owes to its own work. It
//! is no peer: the targets compare hugeheap, in its default pages, with the peers.

use serde::Serialize;
use std::path::{Path, PathBuf};

/// A contestant: a library to preload (none for glibc) and how to install it.
#[derive(Clone, Debug, Serialize)]
pub struct Contestant {
    /// Short name.
    pub name: &'static str,
    /// The library preloaded, if any.
    pub lib: Option<PathBuf>,
    /// Why it cannot run here (its library is missing), with the command that installs it.
    pub missing: Option<String>,
    /// Environment it runs with (beside the workload's).
    pub env: Vec<(&'static str, &'static str)>,
}

/// The name of hugeheap in 4 KiB pages.
pub const HH_4K: &str = "hh-4k";

/// Every contestant's name, in table order.
pub const NAMES: [&str; 6] = ["glibc", "jemalloc", "mimalloc", "tcmalloc", "hugeheap", HH_4K];

/// The contestants in table order: glibc, the peers, hugeheap (`lib`), and hugeheap in 4 KiB
/// pages.
pub fn contestants(lib: &Path) -> Vec<Contestant> {
    let mut v = vec![Contestant { name: "glibc", lib: None, missing: None, env: Vec::new() }];
    for peer in &crate::peers::PEERS {
        let (lib, missing) = match peer.find() {
            Ok(p) => (Some(p), None),
            Err(why) => (None, Some(why)),
        };
        v.push(Contestant { name: peer.name, lib, missing, env: Vec::new() });
    }
    v.push(Contestant { name: "hugeheap", lib: Some(lib.to_path_buf()), missing: None, env: Vec::new() });
    v.push(Contestant {
        name: HH_4K,
        lib: Some(lib.to_path_buf()),
        missing: None,
        env: vec![("HUGEHEAP_PAGES", "4k")],
    });
    debug_assert!(v.iter().map(|c| c.name).eq(NAMES));
    v
}
