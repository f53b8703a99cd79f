//! Summaries of repeated measurements: every published figure is a median with its spread.

use serde::{Deserialize, Serialize};

/// n, median and spread of one set of samples (all in the figure's unit).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub n: usize,
    pub median: f64,
    pub p10: f64,
    pub p90: f64,
    pub min: f64,
    pub max: f64,
}

impl Stats {
    /// `None` for no samples; non-finite samples are ignored.
    pub fn of(samples: &[f64]) -> Option<Self> {
        let mut sorted: Vec<f64> = samples.iter().copied().filter(|v| v.is_finite()).collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        Some(Self {
            n: sorted.len(),
            median: quantile_sorted(&sorted, 0.5),
            p10: quantile_sorted(&sorted, 0.1),
            p90: quantile_sorted(&sorted, 0.9),
            min: sorted[0],
            max: sorted[sorted.len() - 1],
        })
    }

    /// `median` with n and the p10–p90 range, e.g. `12.3 ms (n=30, p10–p90 11.0–14.2)`.
    pub fn show(&self, unit: Unit) -> String {
        format!(
            "{} (n={}, p10–p90 {}–{})",
            unit.fmt(self.median),
            self.n,
            unit.bare(self.p10),
            unit.bare(self.p90)
        )
    }

    /// `median` with n and min–max: for figures that are themselves medians of runs.
    pub fn show_range(&self, unit: Unit) -> String {
        format!(
            "{} (n={}, min–max {}–{})",
            unit.fmt(self.median),
            self.n,
            unit.bare(self.min),
            unit.bare(self.max)
        )
    }
}

/// Linear interpolation between closest ranks; `sorted` must be ascending and non-empty.
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    if sorted.len() == 1 {
        return sorted[0];
    }
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let frac = pos - lo as f64;
    sorted[lo] + (sorted[hi] - sorted[lo]) * frac
}

/// Quantile of unsorted samples; `None` when empty.
pub fn quantile(samples: &[f64], q: f64) -> Option<f64> {
    let mut sorted: Vec<f64> = samples.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    Some(quantile_sorted(&sorted, q))
}

/// How a figure is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Ms,
    Secs,
    PerSec,
    Ratio,
}

impl Unit {
    pub fn bare(self, v: f64) -> String {
        match self {
            Unit::Ms if v < 1.0 => format!("{v:.3}"),
            Unit::Ms if v < 10.0 => format!("{v:.2}"),
            Unit::Ms => format!("{v:.1}"),
            Unit::Secs if v < 10.0 => format!("{v:.2}"),
            Unit::Secs => format!("{v:.1}"),
            Unit::PerSec => format!("{v:.0}"),
            Unit::Ratio => format!("{v:.2}"),
        }
    }

    pub fn fmt(self, v: f64) -> String {
        let bare = self.bare(v);
        match self {
            Unit::Ms => format!("{bare} ms"),
            Unit::Secs => format!("{bare} s"),
            Unit::PerSec => format!("{bare} req/s"),
            Unit::Ratio => format!("{bare}×"),
        }
    }
}

/// A human duration for ETAs: `45 s`, `3 min 05 s`.
pub fn eta(secs: f64) -> String {
    let secs = secs.max(0.0).round() as u64;
    if secs < 60 {
        format!("{secs} s")
    } else {
        format!("{} min {:02} s", secs / 60, secs % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_quantiles_interpolate() {
        let s = Stats::of(&[5.0, 1.0, 3.0, 2.0, 4.0]).expect("samples");
        assert_eq!(s.n, 5);
        assert_eq!(s.median, 3.0);
        assert_eq!(s.min, 1.0);
        assert_eq!(s.max, 5.0);
        assert!((s.p10 - 1.4).abs() < 1e-9);
        assert!((s.p90 - 4.6).abs() < 1e-9);
        let even = Stats::of(&[1.0, 2.0, 3.0, 4.0]).expect("samples");
        assert_eq!(even.median, 2.5);
    }

    #[test]
    fn empty_and_non_finite_samples() {
        assert!(Stats::of(&[]).is_none());
        assert!(Stats::of(&[f64::NAN]).is_none());
        assert_eq!(Stats::of(&[f64::NAN, 2.0]).map(|s| s.n), Some(1));
        assert_eq!(quantile(&[], 0.99), None);
        assert_eq!(quantile(&[7.0], 0.99), Some(7.0));
    }

    #[test]
    fn units_print_readably() {
        assert_eq!(Unit::Ms.fmt(0.1234), "0.123 ms");
        assert_eq!(Unit::Ms.fmt(12.34), "12.3 ms");
        assert_eq!(Unit::Ratio.fmt(1.054), "1.05×");
        assert_eq!(eta(125.0), "2 min 05 s");
        assert_eq!(eta(-3.0), "0 s");
    }
}
