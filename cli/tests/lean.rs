//! The installed command carries no benchmark: `hugeheap` links none of the contestants or the
//! benchmarks' reporting crates (they are `hugeheap-bench`'s), and `hugeheap bench` without
//! the benchmark program says how to get it. Nor does it link the preload library its build
//! depends on for the library's source: the command allocates with the C library's malloc.

mod common;

use common::{copy_command, skip};
use std::process::Command;

#[test]
fn the_command_links_no_benchmark_crate() {
    let out = Command::new(env!("CARGO"))
        .args(["tree", "--offline", "-p", "hugeheap-cli", "-e", "normal", "--prefix", "none"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo tree");
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{tree}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(tree.lines().any(|l| l.starts_with("clap ")), "cargo tree listed no clap: {tree}");
    for krate in ["tikv-jemallocator", "mimalloc", "plotters", "indicatif"] {
        assert!(!tree.lines().any(|l| l.starts_with(&format!("{krate} "))), "hugeheap links {krate}:\n{tree}");
    }
}

#[test]
fn the_command_defines_no_allocation_function() {
    let out = match Command::new("objdump").arg("-T").arg(env!("CARGO_BIN_EXE_hugeheap")).output() {
        Ok(o) => o,
        Err(e) => return skip("objdump", &format!("objdump cannot run: {e}; apt-get install binutils")),
    };
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let table = String::from_utf8_lossy(&out.stdout);
    let defines = |name: &str| table.lines().any(|l| l.contains(".text") && l.split_whitespace().last() == Some(name));
    assert!(!defines("malloc") && !defines("free"), "the command defines malloc or free:\n{table}");
    assert!(
        table.lines().any(|l| l.contains("*UND*") && l.ends_with(" malloc")),
        "no malloc taken from the C library:\n{table}"
    );
}

#[test]
fn bench_without_the_benchmark_program_says_how_to_get_it() {
    let dir = std::env::temp_dir().join(format!("hugeheap-lean-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("hugeheap");
    copy_command(&exe);
    let out = Command::new(&exe).args(["bench", "fork", "--list"]).env("PATH", &dir).output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(127), "{err}");
    assert!(err.contains("hugeheap-bench") && err.contains("cargo install --path bench"), "{err}");
}
