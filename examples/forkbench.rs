//! Fork latency of a Rust program whose only change is its global allocator.
//!
//! For each heap size and contestant (the system allocator, hugeheap with each page kind), a
//! fresh process (this binary, re-executed) builds the heap from small objects (16-256 bytes
//! mostly, some up to 4 KiB), then measures `fork()` as the parent sees it (the child
//! `_exit`s at once) and fork + exec + wait of /bin/true, and reads VmPTE, AnonHugePages,
//! HugetlbPages and the mapping count from /proc. Medians and p90s; ratios to the system
//! allocator come from the same run. "huge %" is AnonHugePages + HugetlbPages over the heap
//! in use (hugeheap's `stats().in_use`; RSS for the system allocator), capped at 100.
//!
//! `cargo run --release --example forkbench -- [--sizes 512M,4G] [--forks 100] [--kinds auto,1g,2m,thp,4k]`

use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Instant;

#[path = "common/switch.rs"]
mod switch;
use switch::{CHOICE, SYSTEM};

fn parse_size(s: &str) -> usize {
    hugeheap::options::parse_size(s.as_bytes()).unwrap_or_else(|| panic!("bad size {s}"))
}

/// Builds about `bytes` of live heap from small objects, with some churn.
fn build_heap(bytes: usize) -> Vec<Box<[u8]>> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut live: Vec<Box<[u8]>> = Vec::with_capacity(bytes / 100);
    let mut total = 0;
    while total < bytes {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let n = match x % 100 {
            0..=89 => 16 + (x >> 8) as usize % 241,
            90..=98 => 256 + (x >> 8) as usize % 3841,
            _ => 4096 + (x >> 8) as usize % 60_000,
        };
        live.push(vec![x as u8; n].into_boxed_slice());
        total += n;
        // churn: replace an older object now and then
        if x % 16 == 0 && live.len() > 10 {
            let i = (x >> 20) as usize % live.len();
            total -= live[i].len();
            live[i] = vec![1u8; n / 2 + 1].into_boxed_slice();
            total += n / 2 + 1;
        }
    }
    // Exact size: unused capacity would count as heap in use without ever being touched.
    live.shrink_to_fit();
    live
}

fn fork_once() -> f64 {
    let t = Instant::now();
    // SAFETY: the child only calls _exit.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: async-signal-safe.
        unsafe { libc::_exit(0) };
    }
    let dt = t.elapsed().as_secs_f64();
    let mut st = 0;
    // SAFETY: our child.
    unsafe { libc::waitpid(pid, &mut st, 0) };
    dt
}

fn fork_exec_once() -> f64 {
    let path = c"/bin/true";
    let argv = [path.as_ptr(), std::ptr::null()];
    let envp = [std::ptr::null::<libc::c_char>()];
    let t = Instant::now();
    // SAFETY: the child only calls execve and _exit.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: argv/envp are null-terminated arrays prepared before fork.
        unsafe {
            libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
            libc::_exit(127);
        }
    }
    let mut st = 0;
    // SAFETY: our child.
    unsafe { libc::waitpid(pid, &mut st, 0) };
    t.elapsed().as_secs_f64()
}

fn quantile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// The child: build, measure, print one `@` line.
fn child(bytes: usize, forks: usize) {
    let t = Instant::now();
    let heap = build_heap(bytes);
    let build = t.elapsed().as_secs_f64();
    let k = hugeheap::KernelView::read();
    let in_use = if CHOICE.load(Ordering::Relaxed) != SYSTEM { hugeheap::stats().in_use } else { k.rss };
    let mut f: Vec<f64> = (0..forks).map(|_| fork_once()).collect();
    let mut fe: Vec<f64> = (0..forks.min(50)).map(|_| fork_exec_once()).collect();
    println!(
        "@build={build:.3} fork_med={:.6} fork_p90={:.6} fexec_med={:.6} vm_pte={} anon_huge={} hugetlb={} rss={} maps={} in_use={in_use}",
        quantile(&mut f, 0.5),
        quantile(&mut f, 0.9),
        quantile(&mut fe, 0.5),
        k.vm_pte,
        k.anon_huge,
        k.hugetlb,
        k.rss,
        k.mappings
    );
    std::hint::black_box(&heap);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let get = |name: &str| args.iter().position(|a| a == name).map(|i| args[i + 1].clone());
    if let Ok(spec) = std::env::var("FORKBENCH_CHILD") {
        let (bytes, forks) = spec.split_once(':').unwrap();
        child(bytes.parse().unwrap(), forks.parse().unwrap());
        return;
    }
    let sizes = get("--sizes").unwrap_or_else(|| "512M,4G".into());
    let forks: usize = get("--forks").map_or(100, |s| s.parse().unwrap());
    let kinds = get("--kinds").unwrap_or_else(|| "auto,1g,2m,thp,4k".into());
    let exe = std::env::current_exe().unwrap();
    println!(
        "{:>6} {:<14} {:>9} {:>9} {:>8} {:>11} {:>9} {:>10} {:>10} {:>7} {:>6} {:>8}",
        "heap",
        "allocator",
        "fork ms",
        "p90 ms",
        "x system",
        "f+exec ms",
        "VmPTE KiB",
        "THP MiB",
        "hugetlb MiB",
        "huge %",
        "maps",
        "build s"
    );
    for size in sizes.split(',') {
        let bytes = parse_size(size);
        let mut contestants: Vec<(String, Vec<(&str, String)>)> =
            vec![("system".into(), vec![("FORKBENCH_ALLOC", "system".into())])];
        for k in kinds.split(',') {
            contestants.push((format!("hugeheap {k}"), vec![("HUGEHEAP_PAGES", k.to_string())]));
        }
        let mut system_fork = None;
        for (name, env) in contestants {
            let out = Command::new(&exe)
                .env("FORKBENCH_CHILD", format!("{bytes}:{forks}"))
                .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            let Some(line) = text.lines().find_map(|l| l.strip_prefix('@')) else {
                println!("{size:>6} {name:<14} failed: {:?} {}", out.status, String::from_utf8_lossy(&out.stderr));
                continue;
            };
            let v: std::collections::HashMap<&str, f64> = line
                .split_whitespace()
                .filter_map(|p| p.split_once('='))
                .map(|(k, v)| (k, v.parse().unwrap()))
                .collect();
            let fork = v["fork_med"];
            let base = *system_fork.get_or_insert(fork);
            println!(
                "{:>6} {:<14} {:>9.3} {:>9.3} {:>8.1} {:>11.3} {:>9.0} {:>10.0} {:>10.0} {:>7.1} {:>6} {:>8.2}",
                size,
                name,
                fork * 1e3,
                v["fork_p90"] * 1e3,
                base / fork,
                v["fexec_med"] * 1e3,
                v["vm_pte"] / 1024.0,
                v["anon_huge"] / 1048576.0,
                v["hugetlb"] / 1048576.0,
                (100.0 * (v["anon_huge"] + v["hugetlb"]) / v["in_use"]).min(100.0),
                v["maps"],
                v["build"]
            );
        }
    }
}
