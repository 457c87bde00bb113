//! A quick speed sanity check (issue 5 builds the real suite): the same workloads under the
//! system allocator or hugeheap, chosen by FORKBENCH_ALLOC=system. Prints seconds per workload.
use std::time::Instant;

#[path = "common/switch.rs"]
mod switch;

fn main() {
    let t = Instant::now();
    let mut v: Vec<Box<[u8]>> = Vec::new();
    for round in 0..20 {
        for i in 0..200_000usize {
            v.push(vec![round as u8; 16 + (i * 7) % 240].into_boxed_slice());
        }
        v.clear();
    }
    let lifo = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut m = std::collections::HashMap::new();
    for i in 0..2_000_000u64 {
        m.insert(i, format!("value {i}"));
        if i % 3 == 0 {
            m.remove(&(i / 2));
        }
    }
    let map = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let hs: Vec<_> = (0..2)
        .map(|_| {
            std::thread::spawn(|| {
                let mut keep = Vec::new();
                for i in 0..3_000_000usize {
                    keep.push(vec![1u8; 8 + i % 120]);
                    if keep.len() > 1000 {
                        keep.swap_remove(i % 1000);
                    }
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    let threads = t.elapsed().as_secs_f64();
    println!("lifo {lifo:.3}s hashmap {map:.3}s threads {threads:.3}s (n={})", m.len());
}
