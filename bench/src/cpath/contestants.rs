//! The C path's contestants: glibc (nothing preloaded), the peers' libraries where installed
//! ([`crate::peers`]), and `libhugeheap.so`.

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
}

/// The contestants in table order: glibc, the peers, hugeheap (`lib`).
pub fn contestants(lib: &Path) -> Vec<Contestant> {
    let mut v = vec![Contestant { name: "glibc", lib: None, missing: None }];
    for peer in &crate::peers::PEERS {
        let (lib, missing) = match peer.find() {
            Ok(p) => (Some(p), None),
            Err(why) => (None, Some(why)),
        };
        v.push(Contestant { name: peer.name, lib, missing });
    }
    v.push(Contestant { name: "hugeheap", lib: Some(lib.to_path_buf()), missing: None });
    v
}
