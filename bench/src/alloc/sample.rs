//! What the allocation benchmark measures of one run, and the cells the runs fill.

use serde::{Deserialize, Serialize};

/// One measurement.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct Sample {
    /// Seconds of the workload.
    pub secs: f64,
    /// Peak RSS + hugetlb, bytes.
    pub peak: usize,
    /// RSS + hugetlb at the end, bytes.
    pub end: usize,
}

/// Results of one workload for one contestant.
pub type Cell = crate::Cell<Sample>;
