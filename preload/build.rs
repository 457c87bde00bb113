//! Links libgcc's unwinder statically into libhugeheap.so: the library never unwinds
//! (`panic = "abort"`), but Rust's standard library refers to the unwinder (to print a
//! backtrace), and as a shared dependency `libgcc_s.so.1` would be loaded into every program
//! the library is preloaded into: five more mappings, each one more for every `fork()` to
//! copy, and one more library to load at start. `--as-needed` then drops the `-lgcc_s` that
//! Rust's `unwind` crate asks for, as nothing is left for it to resolve.
//!
//! Also names this crate's source directory to the crates that depend on it (`links`
//! metadata, `DEP_HUGEHEAP_PRELOAD_SOURCE`): the command's build script builds the library
//! from there, in the workspace or from the package crates.io unpacked.

fn main() {
    println!("cargo::rustc-cdylib-link-arg=-Wl,--push-state,--whole-archive,-l:libgcc_eh.a,--pop-state");
    println!("cargo::rustc-cdylib-link-arg=-Wl,--as-needed");
    match std::env::var("CARGO_MANIFEST_DIR") {
        Ok(dir) => println!("cargo::metadata=source={dir}"),
        Err(_) => println!("cargo::warning=CARGO_MANIFEST_DIR is not set: the command cannot find this crate's source"),
    }
}
