use hugeheap::HugeAlloc;
#[global_allocator]
static A: HugeAlloc = HugeAlloc::new();
fn main() {
    let mut v: Vec<Box<[u8; 40]>> = Vec::new();
    for i in 0..1_000_000u32 {
        v.push(Box::new([i as u8; 40]));
    }
    let big = vec![7u8; 100 << 20];
    println!("{}", hugeheap::stats());
    println!("{:?}", hugeheap::KernelView::read());
    assert!(v.iter().enumerate().all(|(i, b)| b[39] == i as u8));
    drop(big);
    drop(v);
    println!("{}", hugeheap::stats());
}
