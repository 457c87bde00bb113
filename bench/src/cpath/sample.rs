//! What the C path measures of one run, and the cells the runs fill.

use serde::Serialize;

/// One run of one workload under one contestant.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Sample {
    /// Wall time, seconds.
    pub secs: f64,
    /// Peak RSS, bytes.
    pub peak: usize,
}

/// Results of one workload for one contestant.
pub type Cell = crate::Cell<Sample>;
