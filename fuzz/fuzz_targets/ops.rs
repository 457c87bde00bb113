//! Drives hugeheap with sequences of alloc / alloc_zeroed / realloc / dealloc / cross-thread
//! dealloc / fork decoded from the fuzzer's bytes, against the shadow model of what every live
//! block must hold (`tests/common/shadow.rs`, shared with the model test). Any difference
//! (contents, alignment, zeroing, overlap), a failed child, or an invariant breach is a crash
//! for libFuzzer to report.
//!
//! Run: `cargo fuzz run ops -s none` (in this directory's parent; `.ci/run` runs it bounded).
#![no_main]

#[path = "../../tests/common/shadow.rs"]
mod shadow;

use hugeheap::HugeAlloc;
use libfuzzer_sys::fuzz_target;
use shadow::Shadow;

#[global_allocator]
static A: HugeAlloc = HugeAlloc::new();

/// Reads the fuzzer's bytes as numbers, zeros once they run out.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else { return 0 };
        self.0 = rest;
        b
    }
    fn u16(&mut self) -> u16 {
        u16::from(self.u8()) | u16::from(self.u8()) << 8
    }
    /// A size: mostly small, sometimes up to 256 KiB (slab classes), now and then up to 8 MiB.
    fn size(&mut self) -> usize {
        match self.u8() % 16 {
            0 => 0,
            1..=10 => usize::from(self.u16() % 512),
            11..=14 => usize::from(self.u16()) * 4,
            _ => usize::from(self.u16()) * 128,
        }
    }
    /// An alignment from 1 to 2 MiB.
    fn align(&mut self) -> usize {
        match self.u8() % 8 {
            0..=4 => 1 << (self.u8() % 5),
            5 | 6 => 1 << (self.u8() % 17),
            _ => 1 << (self.u8() % 22),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    let mut model = Shadow::new();
    while !b.0.is_empty() {
        let pick = |b: &mut Bytes| usize::from(b.u16());
        match b.u8() % 16 {
            op @ 0..=6 => {
                let (size, align) = (b.size(), b.align());
                model.alloc(&A, size, align, op == 6);
            }
            7 | 8 => {
                let (i, size) = (pick(&mut b), b.size());
                model.realloc(&A, i, size);
            }
            9..=12 => {
                let i = pick(&mut b);
                model.free(&A, i);
            }
            13 => {
                // Freed by another thread (a remote free), possibly one with no heap yet.
                let i = pick(&mut b);
                let allocate_first = b.u8() % 2 == 0;
                if let Some(block) = model.take(i) {
                    std::thread::spawn(move || {
                        if allocate_first {
                            drop(vec![0u8; 64]);
                        }
                        block.free(&A);
                    })
                    .join()
                    .unwrap();
                }
            }
            14 => {
                // Fork: the child must see every live block intact and be able to allocate.
                // SAFETY: the child only reads, allocates and frees, then leaves with _exit.
                let pid = unsafe { libc::fork() };
                assert!(pid >= 0);
                if pid == 0 {
                    let ok = model.blocks().iter().all(|blk| blk.holds());
                    let v: Vec<Vec<u8>> = (0..100).map(|i| vec![i as u8; i * 37]).collect();
                    let ok = ok && v.iter().enumerate().all(|(i, x)| x.iter().all(|&y| y == i as u8));
                    // SAFETY: ends the child at once.
                    unsafe { libc::_exit(if ok { 0 } else { 1 }) };
                }
                let mut status = 0;
                // SAFETY: pid is our child.
                unsafe { libc::waitpid(pid, &mut status, 0) };
                assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "forked child failed: {status}");
            }
            _ => model.check_all(),
        }
    }
    model.clear(&A);
    hugeheap::internal::check_invariants();
});
