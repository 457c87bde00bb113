//! The C path's text report.

use super::contestants::HH_4K;
use super::sample::Cell;
use super::workloads::Workload;
use std::fmt::Write as _;

/// The peers hugeheap is measured against.
const PEER_NAMES: [&str; 4] = ["glibc", "jemalloc", "mimalloc", "tcmalloc"];

/// The C path's targets, which the report checks: hugeheap's geometric-mean time at most this
/// fraction of mimalloc's and of tcmalloc's,
const GEOMEAN_TARGET: f64 = 0.90;
/// no workload slower than this many times the fastest peer,
const WORST_TARGET: f64 = 1.10;
/// and peak RSS at most this many times jemalloc's on workloads of 16 MiB or more.
const RSS_TARGET: f64 = 1.05;
/// A workload over `WORST_TARGET` is the kernel's first touch of memory every contestant
/// touches alike (which the target excepts) when hugeheap has the kernel prepare (fault in or
/// collapse) at most this many times the fastest peer's memory and spends at most
/// `WORST_TARGET` of its CPU time in the program.
const TOUCH_ALIKE: f64 = 1.10;

/// The text report: time and peak RSS per workload and contestant, hugeheap's ratio to the
/// fastest peer and to jemalloc's RSS, geometric means, and the targets checked; `pooled`: the
/// free hugetlb pool pages there were when the run began (its RSS figures are then not
/// comparable); `reporting`: the machine is a VM that hands free memory back to its host
/// (`doctor::free_page_reporting`), which makes hugeheap's fresh huge pages slow to touch,
/// with how long a block stays free before it goes back where the kernel says
/// (`doctor::reporting_wait_ms`).
pub fn table(cells: &[Cell], ws: &[Workload], cs: &[&str], pooled: usize, reporting: Option<Option<u64>>) -> String {
    let get = |w: &str, c: &str| cells.iter().find(|x| x.workload == w && x.contestant == c);
    let secs = |w: &str, c: &str| get(w, c).and_then(|x| x.median(|s| s.secs));
    let peak = |w: &str, c: &str| get(w, c).and_then(|x| x.median(|s| s.peak as f64));
    let user = |w: &str, c: &str| get(w, c).and_then(|x| x.median(|s| s.user));
    let sys = |w: &str, c: &str| get(w, c).and_then(|x| x.median(|s| s.sys));
    let touched = |w: &str, c: &str| {
        let x = get(w, c)?;
        x.samples.iter().all(|s| s.touched().is_some()).then(|| x.median(|s| s.touched().unwrap_or(0.0)))?
    };
    let fastest =
        |w: &str| PEER_NAMES.iter().filter_map(|p| secs(w, p).map(|t| (t, *p))).min_by(|a, b| a.0.total_cmp(&b.0));
    // Says what hugeheap's time over the fastest peer's (`r`) is made of, and whether it is the
    // kernel's first touch: CPU time in the program within `WORST_TARGET` of the peer's, and
    // memory prepared within `TOUCH_ALIKE` of it.
    let first_touch = |w: &str, who: &str, r: f64| -> (String, bool) {
        let ratio = |f: &dyn Fn(&str, &str) -> Option<f64>| {
            f(w, "hugeheap").zip(f(w, who)).filter(|&(_, p)| p > 0.0).map(|(h, p)| h / p)
        };
        let show = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}x"));
        // Kernel time under 10 ms is too little to divide by.
        let kernel = |c: &str| sys(w, c).zip(sys(w, who)).filter(|&(_, p)| p >= 0.01).map(|(h, p)| h / p);
        let (u, k, t) = (ratio(&user), kernel("hugeheap"), ratio(&touched));
        let alike = u.is_some_and(|u| u <= WORST_TARGET) && t.is_some_and(|t| t <= TOUCH_ALIKE);
        let why = if alike {
            "the kernel's first touch: as much memory prepared, in huge pages"
        } else if t.is_some_and(|t| t > TOUCH_ALIKE) {
            "hugeheap's own: it has the kernel prepare more memory"
        } else {
            "hugeheap's own: more CPU time in the program"
        };
        let mut line = format!(
            "{w} {r:.2}x over {who}; CPU in the program {}, in the kernel {}, memory prepared {} ({why})",
            show(u),
            show(k),
            show(t)
        );
        if let Some(r4) = secs(w, HH_4K).zip(secs(w, who)).map(|(h, p)| h / p) {
            let _ = write!(line, "; in 4 KiB pages {r4:.2}x, in the kernel {}", show(kernel(HH_4K)));
        }
        (line, alike)
    };
    let mut out = String::new();
    let _ = writeln!(out, "C path (LD_PRELOAD): median wall time, ms; hh/best: hugeheap over the fastest peer");
    if cs.contains(&HH_4K) {
        let _ = writeln!(
            out,
            "(hh-4k: hugeheap in 4 KiB pages, HUGEHEAP_PAGES=4k; no peer, and not in the targets: the same \
             allocator without the kernel's cost of fresh huge pages)"
        );
    }
    if let Some(wait) = reporting {
        let when = match wait {
            Some(ms) => format!(", each free 2 MiB block once it has been free {ms} ms (page_reporting.min_free_ms)"),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "(this VM's balloon reports free memory to its host{when}: each fresh huge page hugeheap touches \
             faults on the host, where the peers' 4 KiB pages mostly come from memory the guest still holds; \
             `hugeheap doctor`)"
        );
    }
    let _ = write!(out, "{:<9}", "workload");
    for c in cs {
        let _ = write!(out, " {c:>9}");
    }
    let _ = writeln!(out, " {:>8} {:>9}", "hh/best", "best");
    let mut logs = vec![(0.0f64, 0usize); cs.len()];
    let mut worst: Option<(f64, &str)> = None;
    for w in ws {
        let _ = write!(out, "{:<9}", w.name);
        for (i, c) in cs.iter().enumerate() {
            match secs(w.name, c) {
                Some(t) => {
                    let _ = write!(out, " {:>9.1}", t * 1e3);
                    logs[i].0 += t.ln();
                    logs[i].1 += 1;
                }
                None => {
                    let _ =
                        write!(out, " {:>9}", if get(w.name, c).is_some_and(|x| x.error.is_some()) { "-" } else { "" });
                }
            }
        }
        match (secs(w.name, "hugeheap"), fastest(w.name)) {
            (Some(h), Some((b, who))) => {
                let _ = writeln!(out, " {:>8.2} {who:>9}", h / b);
                if worst.is_none_or(|(r, _)| h / b > r) {
                    worst = Some((h / b, w.name));
                }
            }
            _ => {
                let _ = writeln!(out, " {:>8} {:>9}", "-", "-");
            }
        }
    }
    let _ = write!(out, "{:<9}", "geomean");
    for (s, n) in &logs {
        if *n > 0 {
            let _ = write!(out, " {:>9.1}", (s / *n as f64).exp() * 1e3);
        } else {
            let _ = write!(out, " {:>9}", "-");
        }
    }
    let _ = writeln!(out, "  (over the workloads each ran)");

    let _ = writeln!(out, "\npeak RSS, MiB (ru_maxrss); hh/je: hugeheap over jemalloc");
    if pooled > 0 {
        let _ = writeln!(
            out,
            "(NOT comparable: the hugetlb pools hold {pooled} free pages, and hugetlb memory is not in ru_maxrss; \
             empty them, echo 0 > /proc/sys/vm/nr_hugepages, to compare)"
        );
    }
    let _ = write!(out, "{:<9}", "workload");
    for c in cs {
        let _ = write!(out, " {c:>9}");
    }
    let _ = writeln!(out, " {:>8}", "hh/je");
    for w in ws {
        let _ = write!(out, "{:<9}", w.name);
        for c in cs {
            let v = peak(w.name, c);
            let _ = write!(out, " {:>9}", v.map_or("-".into(), |b| crate::figures::mib_number(b as usize, 1)));
        }
        let r = peak(w.name, "hugeheap").zip(peak(w.name, "jemalloc")).map(|(h, j)| h / j);
        let _ = writeln!(out, " {:>8}", r.map_or("-".into(), |r| format!("{r:.2}")));
    }

    let _ = writeln!(
        out,
        "\nCPU time in the program + in the kernel, s, and memory the kernel prepared, MiB (pages of 4 KiB and 2 MiB \
         faulted in, huge pages collapsed; `-`: the machine's THP counts were unreadable)"
    );
    let _ = write!(out, "{:<9}", "workload");
    for c in cs {
        let _ = write!(out, " {c:>16}");
    }
    let _ = writeln!(out);
    for w in ws {
        let _ = write!(out, "{:<9}", w.name);
        for c in cs {
            let cpu = user(w.name, c).zip(sys(w.name, c)).map(|(u, k)| format!("{u:.2}+{k:.2}"));
            let mem = touched(w.name, c).map_or("-".to_string(), |t| format!("{:.0}", t / f64::from(1 << 20)));
            let _ = write!(out, " {:>16}", cpu.map_or("-".to_string(), |cpu| format!("{cpu} {mem}")));
        }
        let _ = writeln!(out);
    }

    // The targets (issue 37's): geometric-mean time at most `GEOMEAN_TARGET` of mimalloc's
    // and of tcmalloc's (each over the workloads both ran), no workload over `WORST_TARGET`
    // the fastest peer, peak RSS at most `RSS_TARGET` jemalloc's from 16 MiB.
    let _ = writeln!(out);
    for peer in ["mimalloc", "tcmalloc"] {
        let both: Vec<&Workload> =
            ws.iter().filter(|w| secs(w.name, "hugeheap").is_some() && secs(w.name, peer).is_some()).collect();
        if both.is_empty() {
            continue;
        }
        let g =
            |c: &str| (both.iter().map(|w| secs(w.name, c).unwrap_or(1.0).ln()).sum::<f64>() / both.len() as f64).exp();
        let r = g("hugeheap") / g(peer);
        let verdict = if r <= GEOMEAN_TARGET { "met" } else { "NOT met" };
        let _ = writeln!(out, "geomean time, hugeheap / {peer}: {r:.2} (target {GEOMEAN_TARGET:.2}: {verdict})");
    }
    // A workload above the bound is the kernel's first touch when hugeheap's CPU time in the
    // program is within the bound of that peer's and the memory prepared about the same:
    // what is left is the kernel clearing the same memory in pages of another size.
    let above: Vec<(String, bool)> = ws
        .iter()
        .filter_map(|w| {
            let (h, (b, who)) = secs(w.name, "hugeheap").zip(fastest(w.name))?;
            (h / b > WORST_TARGET).then(|| first_touch(w.name, who, h / b))
        })
        .collect();
    if let Some((r, w)) = worst {
        let verdict = match (r <= WORST_TARGET, above.iter().all(|a| a.1)) {
            (true, _) => "met",
            (false, true) => "met but for the kernel's first touch of memory all touch alike",
            (false, false) => "NOT met",
        };
        let _ = writeln!(
            out,
            "worst workload against the fastest peer: {w} {r:.2}x (target {WORST_TARGET:.2}x: {verdict})"
        );
    }
    for (line, _) in &above {
        let _ = writeln!(out, "  {line}");
    }
    let big: Vec<String> = ws
        .iter()
        .filter_map(|w| {
            let (h, j) = peak(w.name, "hugeheap").zip(peak(w.name, "jemalloc"))?;
            (crate::figures::mib(j as usize) >= 16.0 && h > RSS_TARGET * j).then(|| format!("{} {:.2}x", w.name, h / j))
        })
        .collect();
    let verdict = match (pooled, big.is_empty()) {
        (0, true) => "none".to_string(),
        (0, false) => big.join(", "),
        _ => "not checked (hugetlb pools present)".to_string(),
    };
    let _ = writeln!(out, "peak RSS over {RSS_TARGET:.2}x jemalloc's on workloads of 16 MiB or more: {verdict}");
    for c in cells.iter().filter(|c| c.error.is_some()) {
        let _ = writeln!(out, "{} {}: {}", c.workload, c.contestant, c.error.as_deref().unwrap_or(""));
    }
    let _ = writeln!(out, "\nworkloads:");
    for w in ws {
        let _ = writeln!(out, "  {:<9} {}", w.name, w.what);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpath::sample::Sample;

    /// A cell of one run of `secs`, `mib` peak RSS, all of it CPU time in the program and
    /// 4 KiB pages faulted in.
    fn cell(workload: &'static str, contestant: &'static str, secs: f64, mib: usize) -> Cell {
        let mut c = Cell::new(workload, contestant, None);
        let faults = (mib as u64) << 8;
        let (thp_faults, collapses) = (Some(0), Some(0));
        c.samples.push(Sample { secs, peak: mib << 20, user: secs, sys: 0.0, faults, thp_faults, collapses });
        c
    }

    /// The five contestants' cells of workload `w`: time, and CPU time in the program, in the
    /// kernel and huge pages touched for hugeheap (the peers touch 100 MiB in 4 KiB pages).
    fn cells_of(w: &'static str, t: [f64; 5], hh: (f64, f64, u64)) -> Vec<Cell> {
        let cs = ["glibc", "jemalloc", "mimalloc", "tcmalloc", "hugeheap"];
        let mut v: Vec<Cell> = cs.iter().zip(t).map(|(c, t)| cell(w, c, t, 100)).collect();
        let s = &mut v[4].samples[0];
        (s.user, s.sys, s.thp_faults, s.faults) = (hh.0, hh.1, Some(hh.2), hh.2 + 100);
        v
    }

    fn workload(name: &'static str) -> Workload {
        Workload { name, what: "", argv: Vec::new(), env: Vec::new(), missing: None }
    }

    /// The targets are checked against both peers' geometric means, the fastest peer per
    /// workload and jemalloc's RSS, each at its own bound.
    #[test]
    fn the_targets_are_the_c_paths() {
        let cs = ["glibc", "jemalloc", "mimalloc", "tcmalloc", "hugeheap"];
        let ws = [workload("a"), workload("b")];
        // hugeheap over mimalloc sqrt(0.70 * 1.08) = 0.87, over tcmalloc sqrt(0.70 / 0.9 *
        // 1.08) = 0.92; b 1.08x its fastest peer; peak RSS 1.10x jemalloc's on a, 1.05x on b.
        let mut cells = Vec::new();
        for (w, t, rss) in [
            ("a", [2.0, 1.0, 1.0, 0.9, 0.70], [20, 20, 30, 30, 22]),
            ("b", [2.0, 1.0, 1.0, 1.0, 1.08], [20, 20, 20, 20, 21]),
        ] {
            for (i, c) in cs.iter().enumerate() {
                cells.push(cell(w, c, t[i], rss[i]));
            }
        }
        let report = table(&cells, &ws, &cs, 0, None);
        assert!(report.contains("geomean time, hugeheap / mimalloc: 0.87 (target 0.90: met)"), "{report}");
        assert!(report.contains("geomean time, hugeheap / tcmalloc: 0.92 (target 0.90: NOT met)"), "{report}");
        assert!(report.contains("worst workload against the fastest peer: b 1.08x (target 1.10x: met)"), "{report}");
        assert!(
            report.contains("peak RSS over 1.05x jemalloc's on workloads of 16 MiB or more: a 1.10x\n"),
            "{report}"
        );
    }

    /// A workload over the bound is excepted as the kernel's first touch only when hugeheap
    /// spends no more CPU time in the program and has the kernel touch as much memory.
    #[test]
    fn only_the_same_memory_touched_is_the_kernels_first_touch() {
        let cs = ["glibc", "jemalloc", "mimalloc", "tcmalloc", "hugeheap"];
        let ws = [workload("touch"), workload("more")];
        let t = [2.0, 2.0, 1.0, 1.5, 1.3];
        // `touch`: 0.9 s in the program (the peer's 1.0) and 50 huge pages, 100 MiB, as the
        // peers' 25,600 small ones.
        let touch = cells_of("touch", t, (0.9, 0.4, 50));
        let report = table(&touch, &ws[..1], &cs, 0, None);
        assert!(
            report.contains("(target 1.10x: met but for the kernel's first touch of memory all touch alike)"),
            "{report}"
        );
        assert!(
            report.contains(
                "touch 1.30x over mimalloc; CPU in the program 0.90x, in the kernel -, memory prepared 1.00x"
            ),
            "{report}"
        );
        // `more`: as fast in the program, but 130 huge pages: 2.6 times the memory.
        let mut both = touch;
        both.extend(cells_of("more", t, (0.9, 0.4, 130)));
        let report = table(&both, &ws, &cs, 0, None);
        assert!(
            report.contains("worst workload against the fastest peer: touch 1.30x (target 1.10x: NOT met)"),
            "{report}"
        );
        assert!(report.contains("memory prepared 2.60x (hugeheap's own"), "{report}");
        // Slower in the program, the same memory: not the kernel's.
        let slow = cells_of("touch", t, (1.2, 0.1, 50));
        let report = table(&slow, &ws[..1], &cs, 0, None);
        assert!(
            report.contains("(target 1.10x: NOT met)") && report.contains("more CPU time in the program"),
            "{report}"
        );
    }

    /// hugeheap in 4 KiB pages is shown beside a workload over the bound, and is no peer: a
    /// time faster than every peer's is neither the fastest nor in the targets.
    #[test]
    fn hugeheap_in_4k_pages_is_shown_and_is_no_peer() {
        let cs = ["glibc", "jemalloc", "mimalloc", "tcmalloc", "hugeheap", HH_4K];
        let ws = [workload("w")];
        let mut cells = cells_of("w", [2.0, 2.0, 1.0, 1.5, 1.3], (0.9, 0.4, 50));
        cells.push(cell("w", HH_4K, 0.5, 100));
        let report = table(&cells, &ws, &cs, 0, None);
        assert!(report.contains("(hh-4k: hugeheap in 4 KiB pages"), "{report}");
        assert!(report.contains("w 1.30x over mimalloc;") && report.contains("; in 4 KiB pages 0.50x"), "{report}");
        assert!(report.contains("worst workload against the fastest peer: w 1.30x"), "{report}");
        assert!(report.contains("geomean time, hugeheap / mimalloc: 1.30"), "{report}");
        let report = table(&cells[..5], &ws, &cs[..5], 0, None);
        assert!(!report.contains("hh-4k") && !report.contains("in 4 KiB pages"), "{report}");
    }

    /// A VM that hands free memory to its host is named in the header, with how long a block
    /// waits where the kernel says; none, nothing.
    #[test]
    fn the_hosts_reporting_is_named_with_its_wait() {
        let cs = ["glibc", "jemalloc", "mimalloc", "tcmalloc", "hugeheap"];
        let ws = [workload("w")];
        let cells = cells_of("w", [2.0, 2.0, 1.0, 1.5, 1.3], (0.9, 0.4, 50));
        let report = table(&cells, &ws, &cs, 0, Some(Some(0)));
        assert!(
            report.contains("reports free memory to its host, each free 2 MiB block once it has been free 0 ms"),
            "{report}"
        );
        let report = table(&cells, &ws, &cs, 0, Some(None));
        assert!(report.contains("reports free memory to its host: each fresh huge page"), "{report}");
        let report = table(&cells, &ws, &cs, 0, None);
        assert!(!report.contains("reports free memory"), "{report}");
    }
}
