//! `hugeheap run -- CMD ARGS...`: runs any dynamically linked program on hugeheap by
//! preloading libhugeheap.so, with no change to the program.

use crate::cli::OptionFlags;
use hugeheap::internal::{OsInfo, PoolInfo};
use hugeheap::{PageChain, PageKind};
use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The library's file name.
pub const LIB: &str = "libhugeheap.so";

/// Finds libhugeheap.so: `explicit`, then `HUGEHEAP_LIB`, then in `../lib` from the running
/// binary (as a package installs it: `/usr/bin/hugeheap`, `/usr/lib/libhugeheap.so`), then the
/// copy this command carries, written out to the user's cache ([`crate::embedded`]). A path
/// with a space or a colon, which `LD_PRELOAD` would split into two, is refused (given) or
/// passed over (found).
///
/// A library beside the binary is not taken: in a build tree that is `target/<profile>/`, where
/// the preload crate's own build lies — built with that profile, not the preload one (no LTO:
/// its fast path calls through the GOT and `__tls_get_addr`), and stale after any build that
/// did not rebuild it. The carried copy is always this command's own, built with the preload
/// profile.
pub fn find_lib(explicit: Option<&Path>) -> Result<PathBuf, String> {
    // Made absolute: the program may change directory before it execs another (a pyenv shim
    // does), and a relative LD_PRELOAD entry would then not be found.
    let given = |p: &Path, what: &str| {
        let real = p
            .canonicalize()
            .ok()
            .filter(|p| p.is_file())
            .ok_or_else(|| format!("{what}{}: no such file", p.display()))?;
        if !crate::embedded::preloadable(&real) {
            return Err(format!(
                "{what}{}: LD_PRELOAD splits paths at spaces and colons, so this one would load another file; \
                 copy the library to a path without them",
                real.display()
            ));
        }
        Ok(real)
    };
    if let Some(p) = explicit {
        return given(p, "--lib ");
    }
    if let Some(p) = std::env::var_os("HUGEHEAP_LIB") {
        return given(Path::new(&p), "HUGEHEAP_LIB=");
    }
    if let Ok(exe) = std::env::current_exe() {
        let dir = exe.parent().unwrap_or(Path::new("."));
        let installed = dir.join("../lib").join(LIB);
        if let Ok(real) = given(&installed, "") {
            return Ok(real);
        }
    }
    crate::embedded::path()
        .map_err(|e| format!("{LIB}: none in ../lib from this program, and its own copy: {e} (pass --lib)"))
}

/// The environment `hugeheap run` adds: LD_PRELOAD (prepended) and the HUGEHEAP_* settings its
/// flags ask for. On THP, CPython keeps its own allocator: its arenas are `mmap`s that the
/// library's map zone puts in THP, and pymalloc is faster for Python's objects than any
/// `malloc` (docs/benchmarks.md, "Figures behind the code"). PYTHONMALLOC=malloc is set (unless
/// set already) so that its objects come from the heap instead where the heap does better: when
/// a hugetlb pool the page chain lists has free pages (pages copy-on-write never splits, which
/// the zone does not use), or with `HUGEHEAP_MMAP=kernel` (the arenas would stay in 4 KiB
/// pages).
pub fn environment(lib: &Path, flags: &OptionFlags) -> Vec<(String, OsString)> {
    let mut preload = OsString::from(lib);
    if let Some(old) = std::env::var_os("LD_PRELOAD").filter(|o| !o.is_empty()) {
        preload.push(" ");
        preload.push(old);
    }
    let mut env = vec![("LD_PRELOAD".to_string(), preload)];
    for (var, value) in &flags.vars {
        env.push((var.to_string(), value.into()));
    }
    if flags.verbose {
        // This process execs the program, which keeps the pid: only it reports, not the
        // helper processes a wrapper script (a pyenv shim, say) starts on the way.
        env.push(("HUGEHEAP_VERBOSE".into(), format!("pid:{}", std::process::id()).into()));
    }
    // A setting as the program will see it: the flag's, else this environment's.
    let setting = |name: &str| {
        flags
            .vars
            .iter()
            .rev()
            .find(|(var, _)| *var == name)
            .map(|(_, v)| v.clone())
            .or_else(|| std::env::var(name).ok())
    };
    if std::env::var_os("PYTHONMALLOC").is_none() && python_objects_to_heap(setting) {
        env.push(("PYTHONMALLOC".into(), "malloc".into()));
    }
    env
}

/// Whether CPython's objects should come from the heap (`PYTHONMALLOC=malloc`) rather than
/// pymalloc's arenas in the map zone, given the program's `HUGEHEAP_*` settings (`setting`):
/// when a hugetlb pool the page chain lists has free pages now, or with `HUGEHEAP_MMAP=kernel`
/// (see [`environment`]).
pub fn python_objects_to_heap(setting: impl Fn(&str) -> Option<String>) -> bool {
    if setting("HUGEHEAP_MMAP").is_some_and(|v| v.trim() == "kernel") {
        return true;
    }
    let chain = setting("HUGEHEAP_PAGES").and_then(|v| PageChain::parse(v.as_bytes())).unwrap_or(PageChain::AUTO);
    let os = OsInfo::probe();
    let pool_free =
        |kind: PageKind, pool: Option<PoolInfo>| chain.kinds().contains(&kind) && pool.is_some_and(|p| p.free > 0);
    pool_free(PageKind::Mib2, os.pool_2m) || pool_free(PageKind::Gib1, os.pool_1g)
}

/// Replaces this process with `cmd` under hugeheap. Returns only on failure.
pub fn exec(lib: &Path, flags: &OptionFlags, cmd: &[OsString]) -> String {
    let Some((program, args)) = cmd.split_first() else {
        return "no command given (hugeheap run -- CMD ARGS...)".into();
    };
    let err = Command::new(program).args(args).envs(environment(lib, flags)).exec();
    format!("cannot run {}: {err}", program.to_string_lossy())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(vars: &[(&'static str, &str)], verbose: bool) -> OptionFlags {
        OptionFlags { vars: vars.iter().map(|(k, v)| (*k, v.to_string())).collect(), verbose }
    }

    #[test]
    fn the_environment_preloads_the_library_first_and_sets_the_flags() {
        let env = environment(Path::new("/x/libhugeheap.so"), &flags(&[("HUGEHEAP_RETAIN", "0")], true));
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.to_string_lossy().into_owned());
        assert!(get("LD_PRELOAD").unwrap().starts_with("/x/libhugeheap.so"));
        assert_eq!(get("HUGEHEAP_RETAIN").as_deref(), Some("0"));
        assert_eq!(get("HUGEHEAP_VERBOSE"), Some(format!("pid:{}", std::process::id())));
    }

    #[test]
    fn python_objects_go_to_the_heap_only_where_it_does_better() {
        let with = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        };
        assert!(python_objects_to_heap(with(&[("HUGEHEAP_MMAP", "kernel")])));
        // No hugetlb kind in the chain: the pools do not matter.
        assert!(!python_objects_to_heap(with(&[("HUGEHEAP_PAGES", "thp,4k")])));
    }
}
