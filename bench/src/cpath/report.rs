//! The C path's text report.

use super::sample::Cell;
use super::workloads::Workload;
use std::fmt::Write as _;

/// The peers hugeheap is measured against.
const PEER_NAMES: [&str; 4] = ["glibc", "jemalloc", "mimalloc", "tcmalloc"];

/// The text report: time and peak RSS per workload and contestant, hugeheap's ratio to the
/// fastest peer and to jemalloc's RSS, geometric means, and the targets checked; `pooled`: the
/// free hugetlb pool pages there were when the run began (its RSS figures are then not
/// comparable); `reporting`: the machine is a VM that hands free memory back to its host
/// (`doctor::free_page_reporting`), which makes hugeheap's fresh huge pages slow to touch.
pub fn table(cells: &[Cell], ws: &[Workload], cs: &[&str], pooled: usize, reporting: bool) -> String {
    let get = |w: &str, c: &str| cells.iter().find(|x| x.workload == w && x.contestant == c);
    let secs = |w: &str, c: &str| get(w, c).and_then(|x| x.median(|s| s.secs));
    let peak = |w: &str, c: &str| get(w, c).and_then(|x| x.median(|s| s.peak as f64));
    let mut out = String::new();
    let _ = writeln!(out, "C path (LD_PRELOAD): median wall time, ms; hh/best: hugeheap over the fastest peer");
    if reporting {
        let _ = writeln!(
            out,
            "(this VM's balloon reports free memory to its host: each fresh huge page hugeheap touches faults on \
             the host, where the peers' 4 KiB pages mostly come from memory the guest still holds; `hugeheap doctor`)"
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
        let best =
            PEER_NAMES.iter().filter_map(|p| secs(w.name, p).map(|t| (t, *p))).min_by(|a, b| a.0.total_cmp(&b.0));
        match (secs(w.name, "hugeheap"), best) {
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

    // The targets: geometric-mean time at most mimalloc's (over the workloads both ran), no
    // workload over 1.10x the fastest peer, peak RSS at most 1.1x jemalloc's from 16 MiB.
    let _ = writeln!(out);
    let both: Vec<&Workload> =
        ws.iter().filter(|w| secs(w.name, "hugeheap").is_some() && secs(w.name, "mimalloc").is_some()).collect();
    if !both.is_empty() {
        let g =
            |c: &str| (both.iter().map(|w| secs(w.name, c).unwrap_or(1.0).ln()).sum::<f64>() / both.len() as f64).exp();
        let r = g("hugeheap") / g("mimalloc");
        let _ =
            writeln!(out, "geomean time, hugeheap / mimalloc: {r:.2} ({})", if r <= 1.0 { "met" } else { "NOT met" });
    }
    if let Some((r, w)) = worst {
        let verdict = if r <= 1.10 { "met" } else { "NOT met" };
        let _ = writeln!(out, "worst workload against the fastest peer: {w} {r:.2}x (target 1.10x: {verdict})");
    }
    let big: Vec<String> = ws
        .iter()
        .filter_map(|w| {
            let (h, j) = peak(w.name, "hugeheap").zip(peak(w.name, "jemalloc"))?;
            (crate::figures::mib(j as usize) >= 16.0 && h > 1.1 * j).then(|| format!("{} {:.2}x", w.name, h / j))
        })
        .collect();
    let verdict = match (pooled, big.is_empty()) {
        (0, true) => "none".to_string(),
        (0, false) => big.join(", "),
        _ => "not checked (hugetlb pools present)".to_string(),
    };
    let _ = writeln!(out, "peak RSS over 1.1x jemalloc's on workloads of 16 MiB or more: {verdict}");
    for c in cells.iter().filter(|c| c.error.is_some()) {
        let _ = writeln!(out, "{} {}: {}", c.workload, c.contestant, c.error.as_deref().unwrap_or(""));
    }
    let _ = writeln!(out, "\nworkloads:");
    for w in ws {
        let _ = writeln!(out, "  {:<9} {}", w.name, w.what);
    }
    out
}
