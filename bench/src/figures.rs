//! The figures every report computes and prints, defined once: medians and percentiles
//! (nearest rank), sizes in MiB, times in ms.

/// The `p`th percentile of `v` (sorted here), nearest rank: the smallest value with at least
/// `p`% of the values at or below it; 0 when `v` is empty.
pub fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// The median of `v` (sorted here): its 50th percentile, the lower middle value when there
/// are two; 0 when `v` is empty.
pub fn median(v: &mut [f64]) -> f64 {
    percentile(v, 50.0)
}

/// `bytes` in MiB.
pub fn mib(bytes: usize) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

/// `bytes` in MiB with `decimals` decimals, without the unit, for a column that says it.
pub fn mib_number(bytes: usize, decimals: usize) -> String {
    format!("{:.*}", decimals, mib(bytes))
}

/// `bytes` in whole MiB, with the unit, for a cell.
pub fn mib_cell(bytes: usize) -> String {
    format!("{} MiB", mib_number(bytes, 0))
}

/// Milliseconds for a cell: two decimals below 10 ms, one above.
pub fn ms(v: f64) -> String {
    if v < 10.0 { format!("{v:.2} ms") } else { format!("{v:.1} ms") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut v = [5.0, 1.0, 4.0, 2.0, 3.0];
        assert_eq!(median(&mut v), 3.0);
        assert_eq!(percentile(&mut v, 0.0), 1.0);
        assert_eq!(percentile(&mut v, 80.0), 4.0);
        assert_eq!(percentile(&mut v, 81.0), 5.0);
        assert_eq!(percentile(&mut v, 100.0), 5.0);
        // Two middle values: the lower.
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.0);
        assert_eq!(median(&mut []), 0.0);
        let mut hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&mut hundred, 90.0), 90.0);
        assert_eq!(percentile(&mut hundred, 99.0), 99.0);
    }

    #[test]
    fn sizes_and_times_format_as_columns_read_them() {
        assert_eq!(mib(3 << 19), 1.5);
        assert_eq!(mib_number(3 << 19, 1), "1.5");
        assert_eq!(mib_cell(64 << 20), "64 MiB");
        assert_eq!(mib_cell((64 << 20) + (1 << 19) - 1), "64 MiB");
        assert_eq!(ms(0.1234), "0.12 ms");
        assert_eq!(ms(12.345), "12.3 ms");
    }
}
