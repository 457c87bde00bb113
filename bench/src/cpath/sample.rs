//! What the C path measures of one run, and the cells the runs fill.

use serde::Serialize;

/// One run of one workload under one contestant.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Sample {
    /// Wall time, seconds.
    pub secs: f64,
    /// Peak RSS, bytes.
    pub peak: usize,
    /// CPU time in the program, seconds.
    pub user: f64,
    /// CPU time in the kernel on the program's behalf (its page faults among it), seconds.
    pub sys: f64,
    /// Minor page faults (a huge page faulted in counts one).
    pub faults: u64,
    /// Huge pages faulted in while it ran (the machine's count: see `launch.c`), if known.
    pub thp_faults: Option<u64>,
    /// Huge pages filled by copying 4 KiB ones while it ran (collapses; the machine's count),
    /// if known.
    pub collapses: Option<u64>,
}

impl Sample {
    /// Parses the launcher's line: peak RSS in KiB, user and system time in microseconds,
    /// minor faults, THP faults and collapses (-1: unknown).
    pub fn from_launcher(line: &str, secs: f64) -> Option<Sample> {
        let f: Vec<i64> = line.split_whitespace().map(str::parse).collect::<Result<_, _>>().ok()?;
        let [kib, user, sys, faults, thp, collapses] = f[..] else { return None };
        Some(Sample {
            secs,
            peak: usize::try_from(kib).ok()? * 1024,
            user: user as f64 / 1e6,
            sys: sys as f64 / 1e6,
            faults: u64::try_from(faults).ok()?,
            thp_faults: u64::try_from(thp).ok(),
            collapses: u64::try_from(collapses).ok(),
        })
    }

    /// Memory the kernel prepared for the run, bytes: each page it faulted in (cleared, or
    /// read in), 4 KiB or 2 MiB, and each huge page it filled by copying 4 KiB ones (a
    /// collapse: that memory is prepared twice). None when the huge page counts are unknown.
    pub fn touched(&self) -> Option<f64> {
        let thp = self.thp_faults?.min(self.faults);
        let huge = thp + self.collapses?;
        Some(((self.faults - thp) as f64) * 4096.0 + (huge as f64) * f64::from(2 << 20))
    }
}

/// Results of one workload for one contestant.
pub type Cell = crate::Cell<Sample>;

#[cfg(test)]
mod tests {
    use super::Sample;

    #[test]
    fn the_launchers_line_is_read_whole_or_not_at_all() {
        let s = Sample::from_launcher("2048 1500000 250000 1000 10 2\n", 2.0).unwrap();
        assert_eq!(s.peak, 2 << 20);
        assert_eq!((s.user, s.sys, s.faults, s.thp_faults, s.collapses), (1.5, 0.25, 1000, Some(10), Some(2)));
        assert_eq!(s.touched(), Some(990.0 * 4096.0 + 12.0 * f64::from(2 << 20)));
        let unknown = Sample::from_launcher("2048 1 2 3 -1 0", 1.0).unwrap();
        assert_eq!((unknown.thp_faults, unknown.touched()), (None, None));
        assert_eq!(Sample::from_launcher("2048 1 2 3 0 -1", 1.0).unwrap().touched(), None);
        assert!(Sample::from_launcher("2048 1 2 3 4", 1.0).is_none(), "an older launcher's line");
        assert!(Sample::from_launcher("2048 1 2 x 4 5", 1.0).is_none());
    }
}
