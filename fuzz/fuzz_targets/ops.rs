//! Drives hugeheap with sequences of alloc / alloc_zeroed / realloc / dealloc / cross-thread
//! dealloc / fork decoded from the fuzzer's bytes, against a model of what every live block
//! must hold. Any difference (contents, alignment, zeroing, overlap), a failed child, or a
//! page-heap invariant breach is a crash for libFuzzer to report.
//!
//! Run: `cargo fuzz run ops -s none` (in this directory's parent; `.ci/run` runs it bounded).
#![no_main]

use hugeheap::HugeAlloc;
use libfuzzer_sys::fuzz_target;
use std::alloc::{GlobalAlloc, Layout};

#[global_allocator]
static A: HugeAlloc = HugeAlloc::new();

struct Live {
    ptr: *mut u8,
    layout: Layout,
    tag: u8,
}

// SAFETY: the blocks are plain memory handed between threads by ownership.
unsafe impl Send for Live {}

fn fill(l: &Live) {
    // SAFETY: l.ptr holds l.layout.size() bytes.
    unsafe { std::ptr::write_bytes(l.ptr, l.tag, l.layout.size()) };
}

fn holds(l: &Live) -> bool {
    // SAFETY: as above.
    let s = unsafe { std::slice::from_raw_parts(l.ptr, l.layout.size()) };
    s.iter().all(|&b| b == l.tag)
}

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

fn new_block(zeroed: bool, size: usize, align: usize, tag: u8) -> Option<Live> {
    let layout = Layout::from_size_align(size.max(1), align).ok()?;
    // SAFETY: the layout has a non-zero size.
    let ptr = unsafe { if zeroed { A.alloc_zeroed(layout) } else { A.alloc(layout) } };
    assert!(!ptr.is_null(), "allocation of {layout:?} failed");
    assert_eq!(ptr as usize % align, 0, "misaligned {layout:?}: {ptr:p}");
    let l = Live { ptr, layout, tag };
    if zeroed {
        // SAFETY: ptr holds layout.size() bytes.
        let s = unsafe { std::slice::from_raw_parts(ptr, layout.size()) };
        assert!(s.iter().all(|&b| b == 0), "alloc_zeroed gave non-zero bytes");
    }
    fill(&l);
    Some(l)
}

fn free(l: Live) {
    assert!(holds(&l), "block {:p} ({:?}) lost its contents", l.ptr, l.layout);
    // SAFETY: l was allocated by A with this layout and is freed once.
    unsafe { A.dealloc(l.ptr, l.layout) };
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    let mut live: Vec<Live> = Vec::new();
    let mut tag = 1u8;
    while !b.0.is_empty() {
        tag = tag.wrapping_add(1).max(1);
        let pick = |b: &mut Bytes, n: usize| usize::from(b.u16()) % n;
        match b.u8() % 16 {
            0..=5 => {
                let (size, align) = (b.size(), b.align());
                live.extend(new_block(false, size, align, tag));
            }
            6 => {
                let (size, align) = (b.size(), b.align());
                live.extend(new_block(true, size, align, tag));
            }
            7 | 8 if !live.is_empty() => {
                let i = pick(&mut b, live.len());
                let new_size = b.size().max(1);
                let l = &mut live[i];
                assert!(holds(l));
                let old = l.layout.size();
                // SAFETY: l is live, allocated by A with l.layout; new_size is non-zero.
                let p = unsafe { A.realloc(l.ptr, l.layout, new_size) };
                assert!(!p.is_null(), "realloc to {new_size} failed");
                assert_eq!(p as usize % l.layout.align(), 0, "realloc lost the alignment");
                l.ptr = p;
                l.layout = Layout::from_size_align(new_size, l.layout.align()).unwrap();
                // SAFETY: the first min(old, new) bytes are the old contents.
                let kept = unsafe { std::slice::from_raw_parts(p, old.min(new_size)) };
                assert!(kept.iter().all(|&x| x == l.tag), "realloc lost contents");
                l.tag = tag;
                fill(l);
            }
            9..=12 if !live.is_empty() => {
                let i = pick(&mut b, live.len());
                free(live.swap_remove(i));
            }
            13 if !live.is_empty() => {
                // Freed by another thread (a remote free), possibly one with no heap yet.
                let i = pick(&mut b, live.len());
                let l = live.swap_remove(i);
                let allocate_first = b.u8() % 2 == 0;
                std::thread::spawn(move || {
                    if allocate_first {
                        drop(vec![0u8; 64]);
                    }
                    free(l);
                })
                .join()
                .unwrap();
            }
            14 => {
                // Fork: the child must see every live block intact and be able to allocate.
                // SAFETY: the child only reads, allocates and frees, then leaves with _exit.
                let pid = unsafe { libc::fork() };
                assert!(pid >= 0);
                if pid == 0 {
                    let ok = live.iter().all(holds);
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
            _ => {
                // No overlap between live blocks.
                let mut spans: Vec<(usize, usize)> =
                    live.iter().map(|l| (l.ptr as usize, l.ptr as usize + l.layout.size())).collect();
                spans.sort_unstable();
                assert!(spans.windows(2).all(|w| w[0].1 <= w[1].0), "live blocks overlap");
            }
        }
    }
    for l in live {
        free(l);
    }
    hugeheap::internal::check_invariants();
});
