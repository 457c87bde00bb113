//! Skipped checks, said out loud: a test that cannot run its check here (no pool, not root,
//! a program missing) calls [`skip`], which writes one line past libtest's output capture (so
//! it shows in a plain `cargo test`), or fails the test when the machine is supposed to have
//! what is missing: `HUGEHEAP_TEST_REQUIRE` lists the requirements that must be met (comma
//! separated, or `all`); `.ci/run` sets it for what its machine provides.
//!
//! Shared by the library's tests, the command's and the benchmarks' (`#[path]`-included by
//! each).

use std::io::Write;

/// The variable that lists what must not be skipped (children of tests inherit it).
pub const REQUIRE_VAR: &str = "HUGEHEAP_TEST_REQUIRE";

/// Whether `requirement` must be met on this machine (named in `HUGEHEAP_TEST_REQUIRE`).
fn required(requirement: &str) -> bool {
    std::env::var(REQUIRE_VAR).is_ok_and(|v| v.split(',').any(|r| r.trim() == requirement || r.trim() == "all"))
}

/// Reports that the calling test skips a check because `requirement` is not met (`why` says
/// what was found); panics instead when the requirement is listed in `HUGEHEAP_TEST_REQUIRE`.
#[track_caller]
pub fn skip(requirement: &str, why: &str) {
    let test = std::thread::current().name().unwrap_or("?").to_string();
    if required(requirement) {
        panic!("{test}: {why}, but {REQUIRE_VAR} requires {requirement:?} on this machine");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why} (needs {requirement})");
}
