//! Figures a load run reports: distributions over sessions (nearest-rank percentiles) and
//! counts grouped by label (failure labels among them), as JSON or as text for BENCHMARKS.md.

use std::collections::BTreeMap;

use livegate_bench::error::ClientError;
use serde::Serialize;

/// The distribution of one figure over sessions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Distribution {
    pub count: usize,
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Distribution {
    /// `None` for no values. Nearest-rank percentiles: p50 of 1..=100 is 50, never an
    /// interpolated value no session had.
    pub fn of(values: &[f64]) -> Option<Distribution> {
        if values.is_empty() {
            return None;
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let index = (p / 100.0 * sorted.len() as f64).ceil() as usize;
            sorted[index.clamp(1, sorted.len()) - 1]
        };
        Some(Distribution {
            count: sorted.len(),
            min: sorted[0],
            p50: rank(50.0),
            p90: rank(90.0),
            p99: rank(99.0),
            max: sorted[sorted.len() - 1],
            mean: sorted.iter().sum::<f64>() / sorted.len() as f64,
        })
    }
}

/// Counts by label (failure reasons, DELETE statuses), most frequent first.
#[derive(Debug, Default, Clone)]
pub struct Tally(BTreeMap<String, usize>);

/// One label of a [`Tally`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TallyEntry {
    pub label: String,
    pub count: usize,
}

impl Tally {
    pub fn add(&mut self, label: impl Into<String>) {
        *self.0.entry(label.into()).or_default() += 1;
    }

    pub fn entries(&self) -> Vec<TallyEntry> {
        let mut entries: Vec<TallyEntry> = self
            .0
            .iter()
            .map(|(label, count)| TallyEntry {
                label: label.clone(),
                count: *count,
            })
            .collect();
        entries.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.label.cmp(&b.label)));
        entries
    }
}

/// Groups failures: the gateway's status and reason, or the kind of local failure without
/// the counts that would make every label unique.
pub fn failure_label(error: &ClientError) -> String {
    match error {
        ClientError::Status { status, reason, .. } => format!("HTTP {status} {reason}"),
        ClientError::Timeout { what, .. } => format!("timed out waiting for {what}"),
        ClientError::Closed { state, .. } => format!("connection {state}"),
        ClientError::Http(e) if e.is_timeout() => "HTTP request timed out".to_owned(),
        ClientError::Http(e) if e.is_connect() => "HTTP connection failed".to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let d = Distribution::of(&values).unwrap();
        assert_eq!(
            (d.min, d.p50, d.p90, d.p99, d.max),
            (1.0, 50.0, 90.0, 99.0, 100.0)
        );
        assert_eq!(d.mean, 50.5);
        let one = Distribution::of(&[7.0]).unwrap();
        assert_eq!((one.p50, one.p99, one.count), (7.0, 7.0, 1));
        let three = Distribution::of(&[30.0, 10.0, 20.0]).unwrap();
        assert_eq!((three.p50, three.p90), (20.0, 30.0));
        assert_eq!(Distribution::of(&[]), None);
    }

    #[test]
    fn tally_orders_by_count_then_label() {
        let mut tally = Tally::default();
        for label in [
            "409 no output",
            "200",
            "200",
            "429 too many",
            "409 no output",
            "200",
        ] {
            tally.add(label);
        }
        let entries = tally.entries();
        assert_eq!(
            entries
                .iter()
                .map(|e| (e.label.as_str(), e.count))
                .collect::<Vec<_>>(),
            [("200", 3), ("409 no output", 2), ("429 too many", 1)]
        );
    }
}
