//! The allocation workloads. Each takes a scale (1.0: about a second on this machine under
//! glibc) and returns a checksum, so that no work can be optimised away. They run in the
//! child process, on whatever allocator the switch chose.

use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;
use std::sync::mpsc;

use crate::rng::Rng;

/// A workload: name, what it does, the function (scale in, checksum out).
pub type Workload = (&'static str, &'static str, fn(f64) -> u64);

/// Every workload.
pub const WORKLOADS: &[Workload] = &[
    ("lifo", "1M small objects (16-256 B) allocated, then freed newest first; x8", lifo),
    ("fifo", "the same, freed oldest first", fifo),
    ("random", "the same, freed in random order", random_order),
    ("mixed", "8 B - 32 KiB, random replacement in a 20k-slot working set", mixed),
    ("realloc", "10k vectors and strings grown by pushes, in random order", realloc_growth),
    ("collections", "HashMap<String, Vec<u32>> and BTreeMap<u64, String> churn", collections),
    ("threads", "2 threads, each the mixed workload on its own", threads_local),
    ("prodcons", "one thread allocates, another frees (batches of 256 over a channel)", producer_consumer),
    ("thread-churn", "short-lived threads (2 at a time) allocating and freeing", thread_churn),
    ("server", "rolling working set, random sizes and lifetimes, grows to ~400 MiB then shrinks", server),
    ("large", "64 KiB - 64 MiB buffers allocated, touched page by page, freed", large),
];

fn sizes16_256(i: usize) -> usize {
    16 + (i * 37) % 241
}

fn batch_free(scale: f64, order: impl Fn(&mut Vec<Box<[u8]>>, &mut Rng) -> u64) -> u64 {
    let n = 1_000_000;
    let mut sum = 0;
    let mut r = Rng::new(42);
    for _ in 0..((8.0 * scale).ceil() as usize) {
        let mut v: Vec<Box<[u8]>> = Vec::with_capacity(n);
        for i in 0..n {
            let mut b = vec![0u8; sizes16_256(i)].into_boxed_slice();
            b[0] = i as u8;
            v.push(b);
        }
        sum += order(&mut v, &mut r);
    }
    sum
}

/// Allocate a batch, free newest first.
pub fn lifo(scale: f64) -> u64 {
    batch_free(scale, |v, _| {
        let mut s = 0;
        while let Some(b) = v.pop() {
            s += b[0] as u64;
        }
        s
    })
}

/// Allocate a batch, free oldest first.
pub fn fifo(scale: f64) -> u64 {
    batch_free(scale, |v, _| {
        let mut s = 0;
        for b in v.drain(..) {
            s += b[0] as u64;
        }
        s
    })
}

/// Allocate a batch, free in random order.
pub fn random_order(scale: f64) -> u64 {
    batch_free(scale, |v, r| {
        let mut s = 0;
        let mut opts: Vec<Option<Box<[u8]>>> = v.drain(..).map(Some).collect();
        r.shuffle(&mut opts);
        for b in opts.iter_mut() {
            s += b.take().map_or(0, |b| b[0] as u64);
        }
        s
    })
}

fn mixed_on(seed: u64, iters: usize) -> u64 {
    let mut r = Rng::new(seed);
    let mut slots: Vec<Option<Box<[u8]>>> = (0..20_000).map(|_| None).collect();
    let mut s = 0;
    for _ in 0..iters {
        let i = r.next_u64() as usize % slots.len();
        let n = if r.next_u64() % 16 == 0 { r.log_size(512, 32 << 10) } else { r.log_size(8, 512) };
        let mut b = vec![0u8; n].into_boxed_slice();
        b[n - 1] = 1;
        if let Some(old) = slots[i].replace(b) {
            s += old.len() as u64;
        }
    }
    s
}

/// Sizes 8 B - 32 KiB replaced at random in a working set.
pub fn mixed(scale: f64) -> u64 {
    mixed_on(1, (6_000_000.0 * scale) as usize)
}

/// Vectors and strings grown by pushes.
pub fn realloc_growth(scale: f64) -> u64 {
    let mut r = Rng::new(3);
    let mut s = 0;
    for _ in 0..((3.0 * scale).ceil() as usize) {
        let mut vs: Vec<Vec<u64>> = (0..10_000).map(|_| Vec::new()).collect();
        let mut ss: Vec<String> = (0..10_000).map(|_| String::new()).collect();
        for k in 0..3_000_000u64 {
            let i = r.next_u64() as usize % 10_000;
            vs[i].push(k);
            ss[i].push_str("ab");
        }
        s += vs.iter().map(|v| v.len() as u64).sum::<u64>() + ss.iter().map(|v| v.len() as u64).sum::<u64>();
    }
    s
}

/// Maps, strings, formatting.
pub fn collections(scale: f64) -> u64 {
    let mut r = Rng::new(5);
    let mut h: HashMap<String, Vec<u32>> = HashMap::new();
    let mut b: BTreeMap<u64, String> = BTreeMap::new();
    let mut s = 0;
    for k in 0..((1_500_000.0 * scale) as u64) {
        let key = format!("key-{}", r.next_u64() % 200_000);
        h.entry(key).or_default().push(k as u32);
        b.insert(r.next_u64() % 300_000, format!("{k}"));
        if k % 3 == 0 {
            let del = format!("key-{}", r.next_u64() % 200_000);
            s += h.remove(&del).map_or(0, |v| v.len() as u64);
            b.remove(&(r.next_u64() % 300_000));
        }
    }
    s + h.len() as u64 + b.len() as u64
}

/// Two threads, each with its own working set.
pub fn threads_local(scale: f64) -> u64 {
    let iters = (4_000_000.0 * scale) as usize;
    let hs: Vec<_> = (0..2).map(|t| std::thread::spawn(move || mixed_on(10 + t, iters))).collect();
    hs.into_iter().map(|h| h.join().unwrap()).sum()
}

/// One thread allocates, the other frees.
pub fn producer_consumer(scale: f64) -> u64 {
    let (tx, rx) = mpsc::sync_channel::<Vec<Box<[u8]>>>(64);
    let n = (4_000_000.0 * scale) as usize;
    let prod = std::thread::spawn(move || {
        let mut batch = Vec::with_capacity(256);
        for i in 0..n {
            batch.push(vec![i as u8; sizes16_256(i)].into_boxed_slice());
            if batch.len() == 256 {
                tx.send(std::mem::replace(&mut batch, Vec::with_capacity(256))).unwrap();
            }
        }
        tx.send(batch).unwrap();
    });
    let mut s = 0u64;
    for batch in rx {
        for b in batch {
            s += b[0] as u64;
        }
    }
    prod.join().unwrap();
    s
}

/// Short-lived threads.
pub fn thread_churn(scale: f64) -> u64 {
    let mut s = 0;
    for round in 0..((1500.0 * scale) as u64) {
        let hs: Vec<_> = (0..2)
            .map(|t| {
                std::thread::spawn(move || {
                    let v: Vec<Box<[u8]>> =
                        (0..1000).map(|i| vec![(round + t) as u8; sizes16_256(i)].into_boxed_slice()).collect();
                    v.iter().map(|b| b[0] as u64).sum::<u64>()
                })
            })
            .collect();
        s += hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>();
    }
    s
}

/// A rolling working set: objects of random size and lifetime; the set grows to ~400 MiB,
/// then shrinks to a tenth. The caller reads RSS after it returns.
pub fn server(scale: f64) -> u64 {
    let mut r = Rng::new(9);
    let steps = (3_000_000.0 * scale) as usize;
    // A ring of "expiry buckets": an object lives 1..BUCKETS steps of 1/1000 of the run.
    const BUCKETS: usize = 256;
    let mut buckets: Vec<Vec<Box<[u8]>>> = (0..BUCKETS).map(|_| Vec::new()).collect();
    let mut s = 0u64;
    let tick = (steps / 1000).max(1);
    for step in 0..steps {
        let n = if r.next_u64() % 64 == 0 { r.log_size(4096, 64 << 10) } else { r.log_size(16, 1024) };
        let mut b = vec![0u8; n].into_boxed_slice();
        b[0] = step as u8;
        let life = 1 + (r.next_u64() as usize % (BUCKETS - 1));
        let now = step / tick;
        buckets[(now + life) % BUCKETS].push(b);
        if step % tick == 0 {
            for o in buckets[now % BUCKETS].drain(..) {
                s += o[0] as u64;
            }
        }
    }
    // Shrink: keep a tenth of the objects.
    for (i, bucket) in buckets.iter_mut().enumerate() {
        if i % 10 != 0 {
            s += bucket.drain(..).map(|o| o[0] as u64).sum::<u64>();
            bucket.shrink_to_fit();
        }
    }
    black_box(&buckets);
    s + buckets.iter().map(|b| b.len() as u64).sum::<u64>()
}

/// Large buffers, touched page by page.
pub fn large(scale: f64) -> u64 {
    let mut r = Rng::new(11);
    let mut s = 0;
    let mut keep: Vec<Vec<u8>> = Vec::new();
    for _ in 0..((1500.0 * scale) as usize) {
        let n = r.log_size(64 << 10, 64 << 20);
        let mut v = Vec::<u8>::with_capacity(n);
        // SAFETY-free touch: write one byte per 4 KiB page through the spare capacity.
        let spare = v.spare_capacity_mut();
        for p in (0..n).step_by(4096) {
            spare[p].write(p as u8);
        }
        s += n as u64;
        keep.push(v);
        if keep.len() > 4 {
            keep.remove(0);
        }
    }
    s
}
