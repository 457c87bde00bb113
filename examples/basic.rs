//! The one-line set-up, and what the heap looks like afterwards:
//! `cargo run --release --example basic` (try `HUGEHEAP_PAGES=4k` or `HUGEHEAP_VERBOSE=1`).

use hugeheap::HugeAlloc;

#[global_allocator]
static A: HugeAlloc = HugeAlloc::new();

fn main() {
    let v: Vec<Box<[u8; 40]>> = (0..1_000_000u32).map(|i| Box::new([i as u8; 40])).collect();
    let big = vec![7u8; 100 << 20];
    println!("hugeheap stats:\n{}", hugeheap::stats());
    println!("the kernel says: {:?}", hugeheap::KernelView::read());
    assert!(v.iter().enumerate().all(|(i, b)| b[39] == i as u8) && big[1] == 7);
}
