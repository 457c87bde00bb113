//! The engine the allocation benchmarks (`alloc`, `cpath`) share: cells of samples per
//! workload and contestant, the schedule that runs them (repetitions, contestants interleaved
//! within each and rotated between them, so that drift on a shared machine hits all alike), a
//! progress bar, and the results written as text, JSON and CSV.

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// What a run of an allocation benchmark is asked for.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Repetitions (the median is reported).
    pub reps: usize,
    /// Work scale (1.0: about a second per workload under glibc).
    pub scale: f64,
    /// Workloads to run (empty: all).
    pub workloads: Vec<String>,
    /// Contestants to run (empty: all).
    pub only: Vec<String>,
    /// Output directory.
    pub out_dir: PathBuf,
}

/// The results of one workload for one contestant, in the allocation benchmarks (`alloc`,
/// `cpath`): every sample, and why a repetition failed or the cell did not run.
#[derive(Clone, Debug, Serialize)]
pub struct Cell<S> {
    /// Workload.
    pub workload: &'static str,
    /// Contestant.
    pub contestant: &'static str,
    /// All samples.
    pub samples: Vec<S>,
    /// Why a repetition failed or the cell did not run, if so.
    pub error: Option<String>,
}

impl<S> Cell<S> {
    /// A cell with no samples yet.
    pub fn new(workload: &'static str, contestant: &'static str, error: Option<String>) -> Cell<S> {
        Cell { workload, contestant, samples: Vec::new(), error }
    }

    /// The median of `f` over the samples; none if there are none, or if a repetition failed
    /// (a cell with a failure shows the failure, not the figures of the runs that went well).
    pub fn median(&self, f: impl Fn(&S) -> f64) -> Option<f64> {
        if self.error.is_some() || self.samples.is_empty() {
            return None;
        }
        let mut v: Vec<f64> = self.samples.iter().map(f).collect();
        Some(crate::figures::median(&mut v))
    }
}

/// A progress bar on stderr for `len` steps.
pub fn progress(len: usize) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .expect("template")
            .progress_chars("=> "),
    );
    bar
}

/// Runs every cell `reps` times, workload by workload: within a repetition each contestant once,
/// and each repetition starting one contestant later than the one before, so that none always
/// runs after the same one (a run finds the memory the one before it freed; on a VM that
/// reports free memory to its host, still backed for a few seconds). Cells that carry an error
/// are passed over. `one(cell)` runs one repetition and records it in the cell.
pub fn interleave<S>(cells: &mut [Cell<S>], reps: usize, mut one: impl FnMut(&mut Cell<S>)) {
    let mut workloads: Vec<&'static str> = Vec::new();
    let mut contestants: Vec<&'static str> = Vec::new();
    for c in cells.iter() {
        if !workloads.contains(&c.workload) {
            workloads.push(c.workload);
        }
        if !contestants.contains(&c.contestant) {
            contestants.push(c.contestant);
        }
    }
    let bar = progress(workloads.len() * contestants.len() * reps);
    for w in &workloads {
        for rep in 0..reps {
            for c in contestants.iter().cycle().skip(rep % contestants.len().max(1)).take(contestants.len()) {
                bar.set_message(format!("{w} {c} #{}", rep + 1));
                bar.inc(1);
                if let Some(cell) = cells.iter_mut().find(|x| x.workload == *w && x.contestant == *c) {
                    if cell.error.is_none() {
                        one(cell);
                    }
                }
            }
        }
    }
    bar.finish_and_clear();
}

/// Writes a benchmark's results into `dir` as `NAME.txt` (`text`, also printed), `NAME.json`
/// (`json`) and `NAME.csv` (`header`, then `row(sample)` for each sample of each cell, after
/// its workload, contestant and repetition).
pub fn write_results<S>(
    dir: &Path,
    name: &str,
    text: &str,
    json: &impl Serialize,
    cells: &[Cell<S>],
    header: &str,
    row: impl Fn(&S) -> String,
) -> std::io::Result<()> {
    print!("{text}");
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(format!("{name}.txt")), text)?;
    std::fs::write(
        dir.join(format!("{name}.json")),
        serde_json::to_string_pretty(json).map_err(std::io::Error::other)?,
    )?;
    let mut csv = format!("workload,contestant,rep,{header}\n");
    for c in cells {
        for (i, s) in c.samples.iter().enumerate() {
            csv.push_str(&format!("{},{},{},{}\n", c.workload, c.contestant, i, row(s)));
        }
    }
    std::fs::write(dir.join(format!("{name}.csv")), csv)?;
    eprintln!("hugeheap-bench {name}: wrote {}/{name}.{{csv,json,txt}}", dir.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cell_runs_each_repetition_and_contestants_rotate() {
        let mut cells: Vec<Cell<u32>> = ["w1", "w2"]
            .iter()
            .flat_map(|&w| ["a", "b", "c"].into_iter().map(move |c| Cell::new(w, c, None)))
            .collect();
        cells[5].error = Some("SKIPPED: missing".into());
        let mut order = Vec::new();
        interleave(&mut cells, 3, |cell| {
            order.push(format!("{}{}", cell.workload, cell.contestant));
            cell.samples.push(1);
        });
        let first: Vec<&str> = order.iter().take(9).map(String::as_str).collect();
        assert_eq!(first, ["w1a", "w1b", "w1c", "w1b", "w1c", "w1a", "w1c", "w1a", "w1b"]);
        assert_eq!(order.len(), 9 + 6, "the cell with an error is passed over");
        assert!(cells[..5].iter().all(|c| c.samples.len() == 3));
        assert!(cells[5].samples.is_empty() && cells[5].median(|&s| f64::from(s)).is_none());
        assert_eq!(cells[0].median(|&s| f64::from(s)), Some(1.0));
    }
}
