//! Builds libhugeheap.so (the `hugeheap-preload` crate) and embeds it in the `hugeheap`
//! command, so that an installed command carries the library it preloads (`src/embedded.rs`
//! writes it out when needed).
//!
//! The preload crate is a dependency of this one only so that its source directory reaches
//! this script (`DEP_HUGEHEAP_PRELOAD_SOURCE`, from its `links` metadata): in the workspace
//! that is `../preload`, built where it is; installed from crates.io it is the unpacked
//! package, copied under `OUT_DIR` and built there as a workspace of its own (a registry's
//! source stays untouched). Either way a nested `cargo rustc` with the `preload` profile
//! below builds the cdylib alone into a directory of its own beside the target's profiles
//! (shared by every profile, so `cargo test`, `clippy` and `doc` build it once), and copies it
//! there as `libhugeheap.so` (`target/hugeheap-preload-embed/libhugeheap.so`).
//! `HUGEHEAP_EMBED_LIB=/path/to/libhugeheap.so` embeds a library built elsewhere instead.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The library's profile: release with one optimisation unit and fat LTO, so the C entry points
/// reach the page map and the heap's other statics directly, not through the GOT; it never
/// unwinds. The build asks for the cdylib alone: for a build that also makes the crate's rlib
/// (its manifest lists both), Cargo passes no `-C lto` at all (an rlib is not link-time
/// optimised), and the library's code kept every static behind a GOT load and every call to
/// the slow paths behind a GOT jump (twice the size, and the free fast path one dependent load
/// longer).
const PROFILE: [&str; 4] = [
    "profile.preload.inherits=\"release\"",
    "profile.preload.lto=\"fat\"",
    "profile.preload.codegen-units=1",
    "profile.preload.panic=\"abort\"",
];

fn main() {
    let manifest = PathBuf::from(var("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(var("OUT_DIR"));
    println!("cargo::rerun-if-env-changed=HUGEHEAP_EMBED_LIB");
    let lib = match std::env::var_os("HUGEHEAP_EMBED_LIB") {
        Some(p) => PathBuf::from(p),
        None => build_preload(&manifest, &out),
    };
    let bytes = std::fs::read(&lib).unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", lib.display())));
    std::fs::write(out.join("libhugeheap.so"), &bytes).unwrap_or_else(|e| fail(&format!("cannot write OUT_DIR: {e}")));
    println!("cargo::rustc-env=HUGEHEAP_LIB_DIGEST={:016x}", fnv1a(&bytes));
}

/// Builds the preload crate with the cargo running this script; returns the library's path.
fn build_preload(manifest: &Path, out: &Path) -> PathBuf {
    let source = PathBuf::from(var("DEP_HUGEHEAP_PRELOAD_SOURCE"));
    let in_workspace = source.file_name().is_some_and(|n| n == "preload") && source.parent() == manifest.parent();
    let crate_dir = if in_workspace {
        let ws = manifest.parent().unwrap_or(manifest);
        for p in ["src", "preload/src", "preload/build.rs", "Cargo.toml", "preload/Cargo.toml", "Cargo.lock"] {
            println!("cargo::rerun-if-changed={}", ws.join(p).display());
        }
        source
    } else {
        copy_package(&source, &out.join("preload-src"))
    };
    // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out: build beside the profiles.
    let dir = match out.ancestors().nth(2) {
        Some(b) if b.file_name().is_some_and(|n| n == "build") => b.parent().and_then(Path::parent).unwrap_or(out),
        _ => out,
    }
    .join("hugeheap-preload-embed");
    let mut cargo = Command::new(var("CARGO"));
    cargo
        .args(["rustc", "--profile", "preload", "--lib", "--crate-type", "cdylib", "--manifest-path"])
        .arg(crate_dir.join("Cargo.toml"));
    for setting in PROFILE {
        cargo.args(["--config", setting]);
    }
    let status = cargo
        .arg("--target-dir")
        .arg(&dir)
        // Cargo hands its build scripts the outer build's flags in this variable, which a
        // nested cargo would take as its own; RUSTFLAGS and the config still apply. The
        // workspace wrapper is clippy's under `cargo clippy`: the library is built, not linted
        // (and not rebuilt each time clippy and a plain build take turns).
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .status()
        .unwrap_or_else(|e| fail(&format!("cannot run cargo: {e}")));
    if !status.success() {
        fail("building libhugeheap.so (hugeheap-preload) failed; see the output above");
    }
    // Under the name users preload, for the .deb and the checks (`scripts/`).
    let lib = dir.join("libhugeheap.so");
    std::fs::copy(dir.join("preload/libhugeheap_preload.so"), &lib)
        .unwrap_or_else(|e| fail(&format!("cannot copy the built library to {}: {e}", lib.display())));
    lib
}

/// Copies the unpacked preload package at `from` to `to` as a workspace of its own (so that
/// no workspace around the target directory claims it), leaving `from` as it was; returns
/// `to`.
fn copy_package(from: &Path, to: &Path) -> PathBuf {
    copy_tree(from, to).unwrap_or_else(|e| fail(&format!("cannot copy {} to {}: {e}", from.display(), to.display())));
    let toml = to.join("Cargo.toml");
    let text = std::fs::read_to_string(&toml).unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", toml.display())));
    if !text.lines().any(|l| l.trim() == "[workspace]") {
        std::fs::write(&toml, format!("{text}\n[workspace]\n"))
            .unwrap_or_else(|e| fail(&format!("cannot write {}: {e}", toml.display())));
    }
    to.to_path_buf()
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type()?.is_dir() {
            if entry.file_name() != "target" {
                copy_tree(&src, &dst)?;
            }
        } else {
            std::fs::copy(&src, &dst)?;
        }
    }
    Ok(())
}

/// FNV-1a, 64 bits: names the written-out copy by its contents.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| fail(&format!("{name} is not set (run by cargo?)")))
}

fn fail(msg: &str) -> ! {
    eprintln!("hugeheap-cli build: {msg}");
    std::process::exit(1);
}
