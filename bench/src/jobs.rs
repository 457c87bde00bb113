//! The jobs a benchmark child runs, by kind: the one place that knows every benchmark's child
//! side (the [`harness`](crate::harness) starts children and knows none).

use crate::harness::{print_result, requested_job};
use crate::{alloc, fork};
use serde::de::DeserializeOwned;

/// If this process is a benchmark child, does its job, prints its result and returns true.
pub fn child_main_if_requested() -> bool {
    let Some((kind, spec)) = requested_job() else { return false };
    match kind.as_str() {
        fork::JOB => print_result(&fork::child::run(&parse(&kind, &spec))),
        alloc::JOB => print_result(&alloc::child_run(&parse(&kind, &spec))),
        _ => fail(&format!("unknown job kind {kind:?}")),
    }
    true
}

fn parse<S: DeserializeOwned>(kind: &str, spec: &str) -> S {
    serde_json::from_str(spec).unwrap_or_else(|e| fail(&format!("bad {kind} job {spec:?}: {e}")))
}

fn fail(why: &str) -> ! {
    eprintln!("hugeheap-bench: {why}");
    std::process::exit(2);
}
