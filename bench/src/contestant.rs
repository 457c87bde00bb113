//! The contestants: an allocator (chosen in the child by `switch.rs`), its environment, and,
//! for the fork benchmark, how it starts programs and which page kind its name promises. Their
//! properties are fields, never guessed from their names.

use crate::switch::Which;
use serde::{Deserialize, Serialize};

/// How a contestant starts a program from its big heap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Method {
    /// fork(), and fork + exec.
    Fork,
    /// posix_spawn (no fork-without-exec).
    PosixSpawn,
    /// vfork + exec (no fork-without-exec).
    Vfork,
    /// A helper started before the heap grew forks for the parent (no fork-without-exec).
    Helper,
}

/// The page kind a contestant's name promises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Promise {
    /// Nothing in particular (4 KiB pages are what it gets).
    Nothing,
    /// Transparent huge pages.
    Thp,
    /// hugetlb pages, 2 MiB or 1 GiB.
    Hugetlb,
    /// hugetlb 1 GiB pages.
    Gib1,
    /// Huge pages of any kind.
    Huge,
}

impl Promise {
    /// What the name promises, in words.
    pub fn describe(self) -> &'static str {
        match self {
            Promise::Nothing => "nothing",
            Promise::Thp => "THP",
            Promise::Hugetlb => "hugetlb pages",
            Promise::Gib1 => "1 GiB pages",
            Promise::Huge => "huge pages",
        }
    }
}

/// A contestant: an allocator, its environment, a way to start programs.
#[derive(Clone, Debug, Serialize)]
pub struct Contestant {
    /// Short name.
    pub name: &'static str,
    /// Its allocator.
    #[serde(skip)]
    pub alloc: Which,
    /// Extra environment.
    pub env: &'static [(&'static str, &'static str)],
    /// How it starts programs.
    pub method: Method,
    /// The page kind its name promises.
    pub promises: Promise,
    /// It may take memory from hugetlb pools (`--pool-2m` / `--pool-1g` are set for it).
    pub uses_pools: bool,
}

const fn c(
    name: &'static str,
    alloc: Which,
    env: &'static [(&'static str, &'static str)],
    method: Method,
    promises: Promise,
    uses_pools: bool,
) -> Contestant {
    Contestant { name, alloc, env, method, promises, uses_pools }
}

/// The contestants of the fork benchmark, in table order. `empty` is the floor: the same
/// process with no heap.
pub const FORK_CONTESTANTS: &[Contestant] = &[
    c("empty", Which::System, &[], Method::Fork, Promise::Nothing, false),
    c("glibc", Which::System, &[], Method::Fork, Promise::Nothing, false),
    c("glibc-thp", Which::System, &[("GLIBC_TUNABLES", "glibc.malloc.hugetlb=1")], Method::Fork, Promise::Thp, false),
    c(
        "glibc-hugetlb",
        Which::System,
        &[("GLIBC_TUNABLES", "glibc.malloc.hugetlb=2")],
        Method::Fork,
        Promise::Hugetlb,
        true,
    ),
    c("jemalloc", Which::Jemalloc, &[], Method::Fork, Promise::Nothing, false),
    c(
        "jemalloc-thp",
        Which::Jemalloc,
        &[("_RJEM_MALLOC_CONF", "thp:always,metadata_thp:always")],
        Method::Fork,
        Promise::Thp,
        false,
    ),
    c("jemalloc-hpa", Which::Jemalloc, &[("_RJEM_MALLOC_CONF", "hpa:true")], Method::Fork, Promise::Thp, false),
    c(
        "mimalloc-large",
        Which::Mimalloc,
        &[("MIMALLOC_ALLOW_LARGE_OS_PAGES", "1"), ("MIMALLOC_LARGE_OS_PAGES", "1")],
        Method::Fork,
        Promise::Huge,
        true,
    ),
    // Like glibc-hugetlb and mimalloc-large, the hugetlb contestants may use the whole pool
    // (no copy-on-write room; the default keeps half of a pool free, see docs/tuning.md).
    c(
        "hugeheap",
        Which::Hugeheap,
        &[("HUGEHEAP_PAGES", "auto"), ("HUGEHEAP_COW_RESERVE", "0")],
        Method::Fork,
        Promise::Huge,
        true,
    ),
    c(
        "hugeheap-1g",
        Which::Hugeheap,
        &[("HUGEHEAP_PAGES", "1g"), ("HUGEHEAP_COW_RESERVE", "0")],
        Method::Fork,
        Promise::Gib1,
        true,
    ),
    c(
        "hugeheap-2m",
        Which::Hugeheap,
        &[("HUGEHEAP_PAGES", "2m"), ("HUGEHEAP_COW_RESERVE", "0")],
        Method::Fork,
        Promise::Hugetlb,
        true,
    ),
    c("hugeheap-thp", Which::Hugeheap, &[("HUGEHEAP_PAGES", "thp")], Method::Fork, Promise::Thp, false),
    // The same with re-collapse off: what the helper's work costs the writing thread.
    c(
        "hugeheap-thp-nc",
        Which::Hugeheap,
        &[("HUGEHEAP_PAGES", "thp"), ("HUGEHEAP_COLLAPSE", "0")],
        Method::Fork,
        Promise::Thp,
        false,
    ),
    c("hugeheap-4k", Which::Hugeheap, &[("HUGEHEAP_PAGES", "4k")], Method::Fork, Promise::Nothing, false),
    c("posix_spawn", Which::System, &[], Method::PosixSpawn, Promise::Nothing, false),
    c("vfork+exec", Which::System, &[], Method::Vfork, Promise::Nothing, false),
    c("spawn-helper", Which::System, &[], Method::Helper, Promise::Nothing, false),
];

/// The contestants of the allocation benchmark (Rust's `GlobalAlloc`, through the switch).
pub const ALLOC_CONTESTANTS: &[Contestant] = &[
    c("glibc", Which::System, &[], Method::Fork, Promise::Nothing, false),
    c("jemalloc", Which::Jemalloc, &[], Method::Fork, Promise::Nothing, false),
    c("mimalloc", Which::Mimalloc, &[], Method::Fork, Promise::Nothing, false),
    c("hugeheap", Which::Hugeheap, &[("HUGEHEAP_PAGES", "auto")], Method::Fork, Promise::Huge, false),
    c("hugeheap-4k", Which::Hugeheap, &[("HUGEHEAP_PAGES", "4k")], Method::Fork, Promise::Nothing, false),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::allocator_var;

    #[test]
    fn the_tables_name_each_contestant_once_with_settings_its_allocator_reads() {
        for table in [FORK_CONTESTANTS, ALLOC_CONTESTANTS] {
            for (i, c) in table.iter().enumerate() {
                assert!(table[..i].iter().all(|d| d.name != c.name), "{} twice", c.name);
                for (k, v) in c.env {
                    // The harness clears these from a child's environment: a contestant's own
                    // must be among them, or another run's would leak into it.
                    assert!(allocator_var(k), "{}: {k} is not an allocator's variable", c.name);
                    if let Some(row) = hugeheap::internal::OPTIONS.iter().find(|r| r.env == *k) {
                        let mut scratch = hugeheap::internal::Config::DEFAULT;
                        assert!((row.apply)(&mut scratch, v.as_bytes()), "{}: {k}={v} is refused", c.name);
                    }
                }
                if c.alloc != Which::Hugeheap {
                    assert!(c.env.iter().all(|(k, _)| !k.starts_with("HUGEHEAP_")), "{}", c.name);
                }
            }
        }
        assert_eq!(FORK_CONTESTANTS[0].name, "empty", "the floor comes first");
        assert!(FORK_CONTESTANTS.iter().filter(|c| c.uses_pools).all(|c| c.promises != Promise::Nothing));
    }
}
