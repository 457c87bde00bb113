//! The hugetlb pools' counters, kept open. A process holding hugetlb pages reads three of them
//! before each fork (the copy-on-write decision, `pageheap::children`); other reads (a growth
//! choosing its pages) open and close them, so that a process that holds no hugetlb page keeps
//! no descriptor. Opening a sysfs file costs about 7 µs on this project's machine, reading one
//! already open under 1 µs: three files were 21 µs of every such fork. So each counter's file
//! is opened once, kept ([`super::kept`]: a high, close-on-exec descriptor checked before each
//! read), and read at offset 0, where sysfs produces the value afresh. A forked child shares
//! the descriptors; after exec the new program opens its own.

use super::files;
use super::kept::{Kept, KeptCell};
use crate::pagekind::PageKind;

/// The counters kept, in this order, per pool.
const FILES: [&[u8]; 4] = [b"free_hugepages", b"resv_hugepages", b"nr_overcommit_hugepages", b"surplus_hugepages"];

/// The kept descriptors: the 2 MiB pool's, then the 1 GiB pool's.
static CELLS: [[KeptCell; FILES.len()]; 2] = [const { [const { KeptCell::new() }; FILES.len()] }; 2];

/// The number in `file` (one of [`FILES`]) of the pool of `kind`; `None` where it cannot be
/// read.
pub fn number(kind: PageKind, file: &[u8]) -> Option<usize> {
    let path = || files::Path::join(b"/", &[kind.pool_dir().as_bytes(), file]);
    let Some(i) = FILES.iter().position(|&f| f == file) else {
        return files::read_number(path()?.as_cstr());
    };
    let cell = &CELLS[usize::from(kind == PageKind::Gib1)][i];
    match cell.take() {
        Ok(kept) => files::pread_number(kept.fd()),
        Err(install) => {
            let path = path()?;
            if !install {
                // Another thread is opening it.
                return files::read_number(path.as_cstr());
            }
            let kept = files::open_read(path.as_cstr()).and_then(Kept::keep);
            cell.install(kept);
            match kept {
                Some(k) => files::pread_number(k.fd()),
                None => files::read_number(path.as_cstr()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kept counters agree with a fresh read, read after read, and once the program has
    /// closed one under them.
    #[test]
    #[cfg_attr(miri, ignore = "sysfs")]
    fn kept_counters_read_as_fresh_ones() {
        for kind in [PageKind::Mib2, PageKind::Gib1] {
            let path = files::Path::join(b"/", &[kind.pool_dir().as_bytes(), b"nr_overcommit_hugepages"]).unwrap();
            let fresh = || files::read_number(path.as_cstr());
            let Some(want) = fresh() else {
                eprintln!("skipped for {kind}: this kernel has no such pool");
                continue;
            };
            assert_eq!(number(kind, b"nr_overcommit_hugepages"), Some(want));
            assert_eq!(number(kind, b"nr_overcommit_hugepages"), fresh());
            let cell = &CELLS[usize::from(kind == PageKind::Gib1)][2];
            let Ok(kept) = cell.take() else { panic!("not kept") };
            // SAFETY: closing the test's own kept descriptor, as a program might.
            unsafe { libc::close(kept.fd()) };
            assert_eq!(number(kind, b"nr_overcommit_hugepages"), fresh(), "reopened");
            assert!(cell.take().is_ok(), "kept again");
        }
    }
}
