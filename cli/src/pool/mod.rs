//! `hugeheap pool`: the hugetlb pools shown, sized for a heap (root), given back, and made to
//! last across reboots — docs/tuning.md's reasoning as a command.
//!
//! `--for SIZE` makes the pools' unclaimed pages (free and not promised to a mapping) cover
//! the heap's copies ([`plan::Need`]): 1 GiB pages for the whole GiBs beyond the first where
//! the kernel still finds them, 2 MiB pages for the rest and for whatever 1 GiB pages it did
//! not find. Pages already free count, so a second call asks for nothing more. The pools never
//! take the memory the machine needs to run on (an eighth of it, at least 1 GiB): a heap they
//! cannot hold is refused before anything changes. The sizes before the first reservation are
//! kept for `--release`. Bad input or a missing privilege
//! changes nothing and says so in one line.

pub mod persist;
pub mod plan;
pub mod sysfs;

use hugeheap::PageKind;
use hugeheap::internal::{Bytes, Config, OPTIONS};
use persist::Persist;
use plan::{GIB1, Grant, MIB2, Need};
use std::fmt::Write as _;
use std::path::PathBuf;
use sysfs::{KINDS, Pools};

/// What `hugeheap pool` was asked.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// Reserve for a heap of this many bytes.
    pub heap: Option<usize>,
    /// Forked children keeping the heap at once.
    pub children: usize,
    /// Give back what was reserved.
    pub release: bool,
    /// Print the lines that make the pools last.
    pub persist: bool,
    /// Write them under `prefix`.
    pub write: bool,
    /// Where /sys and /run are (`/`).
    pub root: PathBuf,
    /// Where /etc is written (`/`).
    pub prefix: PathBuf,
}

/// The copy-on-write reserve in force for programs started from here: `HUGEHEAP_COW_RESERVE`
/// as the library reads it, or its default.
pub fn cow_reserve() -> Result<u32, String> {
    let mut config = Config::DEFAULT;
    let Some(row) = OPTIONS.iter().find(|r| r.env == "HUGEHEAP_COW_RESERVE") else {
        return Ok(config.cow_reserve);
    };
    match std::env::var("HUGEHEAP_COW_RESERVE") {
        Ok(v) if !(row.apply)(&mut config, v.as_bytes()) => {
            Err(format!("HUGEHEAP_COW_RESERVE={v} is not {}", row.accepts))
        }
        _ => Ok(config.cow_reserve),
    }
}

/// Runs the request; returns what to print.
pub fn run(req: &Request) -> Result<String, String> {
    let pools = Pools::at(&req.root);
    if pools.read(PageKind::Mib2).is_none() {
        return Err(format!(
            "this kernel has no hugetlb pools (no {} under {})",
            PageKind::Mib2.pool_dir(),
            req.root.display()
        ));
    }
    let mut out = String::new();
    if req.release {
        out += &release(&pools)?;
    } else if let Some(heap) = req.heap {
        out += &reserve(&pools, heap, req.children)?;
    } else if !req.persist {
        out += &show(&pools)?;
    }
    if req.persist {
        let size = |kind| pools.read(kind).map_or(0, |p| p.total);
        let lines = Persist { gib: size(PageKind::Gib1), mib: size(PageKind::Mib2) };
        if lines.gib == 0 && lines.mib == 0 {
            return Err(
                "the pools are empty, so there is nothing to keep: reserve first (hugeheap pool --for SIZE)".into()
            );
        }
        if req.write {
            for path in lines.write(&req.prefix)? {
                let _ = writeln!(out, "wrote {}", path.display());
            }
            if lines.unit().is_some() {
                let _ = writeln!(
                    out,
                    "then: `systemctl enable hugeheap-pools.service`, or on the kernel command line: {}",
                    lines.cmdline().unwrap_or_default()
                );
            }
        } else {
            out += &lines.text();
        }
    }
    Ok(out)
}

fn show(pools: &Pools) -> Result<String, String> {
    let mut out = String::new();
    for (kind, name) in KINDS {
        match pools.read(kind) {
            Some(p) => {
                let _ = writeln!(
                    out,
                    "{name} pool: {} pages, {} free ({} of them promised to mappings), may grow by {} on demand",
                    p.total, p.free, p.reserved, p.overcommit
                );
            }
            None => {
                let _ = writeln!(out, "{name} pool: not offered by this kernel");
            }
        }
    }
    let reserve = cow_reserve()?;
    let copies = Need::of(1, 1, reserve).map_or(2, |n| n.copies);
    let per_copy = pools.unclaimed(PageKind::Gib1) / copies * GIB1 + pools.unclaimed(PageKind::Mib2) / copies * MIB2;
    if per_copy == 0 {
        out += "No page is unclaimed: hugeheap's heap goes to THP.\n";
    } else {
        let _ = writeln!(
            out,
            "The unclaimed pages cover a heap of {} with one forked child keeping it (HUGEHEAP_COW_RESERVE {reserve}%).",
            Bytes(per_copy / 9 * 8)
        );
    }
    out += "To reserve for a heap (root): hugeheap pool --for 4G [--children N]; to keep the pools across \
            reboots: hugeheap pool --persist [--write].\n";
    Ok(out)
}

fn reserve(pools: &Pools, heap: usize, children: usize) -> Result<String, String> {
    let reserve = cow_reserve()?;
    let need = Need::of(heap, children, reserve).ok_or_else(|| format!("no pool can hold a heap of {heap} bytes"))?;
    let mut out = format!(
        "for a heap of {} ({} with its growth steps), {} cop{} (the heap, and {} for forked children: \
         --children {children}, HUGEHEAP_COW_RESERVE {reserve}%)\n",
        Bytes(heap),
        Bytes(need.counted),
        need.copies,
        if need.copies == 1 { "y" } else { "ies" },
        if need.copies == 1 { "none".to_string() } else { format!("{} more", need.copies - 1) },
    );
    if !pools.writable() {
        return Err(format!(
            "reserving needs root (the pools are kernel settings): for a heap of {} it would ask for {} x 1 GiB \
             and {} x 2 MiB pages beyond those free; nothing changed",
            Bytes(heap),
            need.gib_pages * need.copies,
            need.mib_pages(need.gib_pages) * need.copies
        ));
    }
    // The pools must leave the machine memory to run on: an eighth of it, at least 1 GiB.
    let adding = (need.counted * need.copies)
        .saturating_sub(pools.unclaimed(PageKind::Gib1) * GIB1 + pools.unclaimed(PageKind::Mib2) * MIB2);
    if let Some((available, total)) = pools.memory() {
        let spare = available.saturating_sub((total / 8).max(GIB1));
        if adding > spare {
            return Err(format!(
                "a heap of {} with {} cop{} takes {} more than the pools have, and this machine has {} \
                 available, of which {} stays for it to run on: nothing changed (a smaller heap, fewer --children, \
                 or HUGEHEAP_COW_RESERVE=0 for children that exec)",
                Bytes(heap),
                need.copies,
                if need.copies == 1 { "y" } else { "ies" },
                Bytes(adding),
                Bytes(available),
                Bytes((total / 8).max(GIB1))
            ));
        }
    }
    let size = |kind| pools.read(kind).map_or(0, |p| p.total);
    pools.save((size(PageKind::Gib1), size(PageKind::Mib2)))?;
    // 1 GiB pages first: the kernel may find fewer than asked, and 2 MiB pages make up the rest.
    let mut gib_per_copy = 0;
    let mut gib = Grant::default();
    if need.gib_pages > 0 && pools.read(PageKind::Gib1).is_some() {
        let (was, have) = (size(PageKind::Gib1), pools.unclaimed(PageKind::Gib1));
        let asked = was + (need.gib_pages * need.copies).saturating_sub(have);
        let now = if asked > was { pools.resize(PageKind::Gib1, asked)? } else { was };
        gib_per_copy = ((have + now.saturating_sub(was)) / need.copies).min(need.gib_pages);
        // Pages that do not make a whole copy's worth go back.
        let keep = was + (gib_per_copy * need.copies).saturating_sub(have);
        let now = if now > keep { pools.resize(PageKind::Gib1, keep)? } else { now };
        gib = Grant { was, asked, now };
    }
    let (was, have) = (size(PageKind::Mib2), pools.unclaimed(PageKind::Mib2));
    let asked = was + (need.mib_pages(gib_per_copy) * need.copies).saturating_sub(have);
    let now = if asked > was { pools.resize(PageKind::Mib2, asked)? } else { was };
    let mib = Grant { was, asked, now };
    if need.gib_pages > 0 {
        match pools.read(PageKind::Gib1) {
            Some(_) => {
                let _ = writeln!(out, "1 GiB pool: {gib}");
            }
            None => out += "1 GiB pool: not offered by this kernel (2 MiB pages instead)\n",
        }
    }
    let _ = writeln!(out, "2 MiB pool: {mib}");
    // The pages the kernel added are free: what was unclaimed and what it added is what copies get.
    let mib_per_copy = ((have + now.saturating_sub(was)) / need.copies).min(need.mib_pages(gib_per_copy));
    let covered = gib_per_copy * GIB1 + mib_per_copy * MIB2;
    if covered >= need.counted {
        let _ = writeln!(out, "the heap fits in hugetlb pages, with room for its copies.");
    } else {
        let _ = writeln!(
            out,
            "hugetlb pages cover {} of each copy; hugeheap puts the rest of the heap in THP, and forked children \
             beyond what the pool covers move their heap into THP at fork (none dies of SIGBUS).",
            Bytes(covered)
        );
    }
    out += "lost at reboot: `hugeheap pool --persist` prints what keeps it, `hugeheap pool --release` gives it back.\n";
    Ok(out)
}

fn release(pools: &Pools) -> Result<String, String> {
    let Some((gib_was, mib_was)) = pools.saved() else {
        return Err("nothing to release: `hugeheap pool --for` has reserved nothing since boot; nothing changed".into());
    };
    if !pools.writable() {
        return Err("releasing needs root (the pools are kernel settings); nothing changed".into());
    }
    let mut out = String::new();
    for (kind, name, to) in [(PageKind::Gib1, "1 GiB", gib_was), (PageKind::Mib2, "2 MiB", mib_was)] {
        let Some(p) = pools.read(kind) else { continue };
        let now = if p.total != to { pools.resize(kind, to)? } else { to };
        let surplus = pools.read(kind).map_or(0, |p| p.surplus);
        let _ = write!(out, "{name} pool: {now} pages (was {})", p.total);
        if surplus > 0 {
            let _ = write!(out, "; {surplus} more still in use by running programs, given back as they exit");
        }
        out.push('\n');
    }
    pools.forget()?;
    Ok(out)
}
