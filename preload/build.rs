//! Links libgcc's unwinder statically into libhugeheap.so: the library never unwinds
//! (`panic = "abort"`), but Rust's standard library refers to the unwinder (to print a
//! backtrace), and as a shared dependency `libgcc_s.so.1` would be loaded into every program
//! the library is preloaded into: five more mappings, each one more for every `fork()` to
//! copy, and one more library to load at start. `--as-needed` then drops the `-lgcc_s` that
//! Rust's `unwind` crate asks for, as nothing is left for it to resolve.

fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,--push-state,--whole-archive,-l:libgcc_eh.a,--pop-state");
    println!("cargo:rustc-cdylib-link-arg=-Wl,--as-needed");
}
