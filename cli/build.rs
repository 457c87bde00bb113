//! Builds libhugeheap.so (the `hugeheap-preload` crate, `preload` profile: release with fat LTO,
//! one codegen unit and no unwinding, see Cargo.toml) and embeds it in the
//! `hugeheap` command, so that an installed command carries the library it preloads
//! (`src/embedded.rs` writes it out when needed).
//!
//! The library is built by a nested `cargo build` into a directory of its own beside the
//! target's profiles (shared by every profile, so `cargo test`, `clippy` and `doc` build it
//! once). `HUGEHEAP_EMBED_LIB=/path/to/libhugeheap.so` embeds a library built elsewhere
//! instead.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(var("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(var("OUT_DIR"));
    println!("cargo:rerun-if-env-changed=HUGEHEAP_EMBED_LIB");
    let lib = match std::env::var_os("HUGEHEAP_EMBED_LIB") {
        Some(p) => PathBuf::from(p),
        None => build_preload(&manifest, &out),
    };
    let bytes = std::fs::read(&lib).unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", lib.display())));
    std::fs::write(out.join("libhugeheap.so"), &bytes).unwrap_or_else(|e| fail(&format!("cannot write OUT_DIR: {e}")));
    println!("cargo:rustc-env=HUGEHEAP_LIB_DIGEST={:016x}", fnv1a(&bytes));
}

/// Builds `../preload` with the cargo running this script; returns the library's path.
fn build_preload(manifest: &Path, out: &Path) -> PathBuf {
    let ws = manifest.parent().unwrap_or(manifest);
    let preload = ws.join("preload/Cargo.toml");
    if !preload.is_file() {
        fail(&format!(
            "{} is missing: build from the hugeheap workspace, or set HUGEHEAP_EMBED_LIB to a libhugeheap.so",
            preload.display()
        ));
    }
    for p in ["src", "preload/src", "preload/build.rs", "Cargo.toml", "preload/Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", ws.join(p).display());
    }
    // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out: build beside the profiles.
    let dir = match out.ancestors().nth(2) {
        Some(b) if b.file_name().is_some_and(|n| n == "build") => b.parent().and_then(Path::parent).unwrap_or(out),
        _ => out,
    }
    .join("hugeheap-preload-embed");
    let status = Command::new(var("CARGO"))
        .args(["build", "--profile", "preload", "--manifest-path"])
        .arg(&preload)
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
    dir.join("preload/libhugeheap.so")
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
