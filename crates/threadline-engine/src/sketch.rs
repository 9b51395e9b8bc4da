//! A mergeable quantile sketch for durations, in the manner of DDSketch: values fall in
//! logarithmic buckets of relative width 2%, so any quantile is returned within 1% of the true
//! value, whatever the distribution; two sketches merge by adding their bucket counts, so
//! shards (and time windows) combine exactly.

/// Relative accuracy of quantiles.
const ALPHA: f64 = 0.01;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sketch {
    /// Dense counts of buckets `offset..offset + len`; bucket `i` holds values in
    /// `(γ^(i-1), γ^i]`. Durations from a nanosecond to hours span a few hundred buckets.
    buckets: Vec<u32>,
    offset: i32,
    /// Count of zero values.
    zeros: u64,
    count: u64,
    /// Exact sum of the values (saturating).
    sum: u64,
}

/// The quantiles reported for a distribution, each within 1%; `None` when it is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Quantiles {
    pub p50: Option<u64>,
    pub p95: Option<u64>,
    pub p99: Option<u64>,
}

fn gamma() -> f64 {
    (1.0 + ALPHA) / (1.0 - ALPHA)
}

impl Sketch {
    pub fn add(&mut self, value: u64) {
        self.count += 1;
        self.sum = self.sum.saturating_add(value);
        if value == 0 {
            self.zeros += 1;
            return;
        }
        #[expect(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            reason = "log buckets"
        )]
        let index = ((value as f64).ln() / gamma().ln()).ceil() as i32;
        let slot = self.slot(index);
        *slot = slot.saturating_add(1);
    }

    /// The counter of bucket `index`, growing the dense range to include it.
    fn slot(&mut self, index: i32) -> &mut u32 {
        if self.buckets.is_empty() {
            self.offset = index;
        }
        if index < self.offset {
            let grow = usize::try_from(self.offset - index).unwrap_or(0);
            self.buckets.splice(0..0, std::iter::repeat_n(0, grow));
            self.offset = index;
        }
        let at = usize::try_from(index - self.offset).unwrap_or(0);
        if at >= self.buckets.len() {
            self.buckets.resize(at + 1, 0);
        }
        &mut self.buckets[at]
    }

    /// Non-empty buckets as (index, count), in increasing order.
    fn indexed(&self) -> impl Iterator<Item = (i32, u64)> + '_ {
        (self.offset..).zip(self.buckets.iter().map(|c| u64::from(*c))).filter(|(_, c)| *c > 0)
    }

    pub fn merge(&mut self, other: &Sketch) {
        self.count += other.count;
        self.sum = self.sum.saturating_add(other.sum);
        self.zeros += other.zeros;
        for (index, count) in other.indexed() {
            let slot = self.slot(index);
            *slot = slot.saturating_add(u32::try_from(count).unwrap_or(u32::MAX));
        }
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// The exact sum of every value added.
    pub fn sum(&self) -> u64 {
        self.sum
    }

    /// How many values are at most each of `bounds` (increasing), as a histogram's
    /// cumulative buckets: a value is counted under a bound when its bucket's midpoint is, so
    /// within 1% of the bound the split is approximate.
    pub fn cumulative(&self, bounds: &[u64]) -> Vec<u64> {
        let mut out = Vec::with_capacity(bounds.len());
        let mut buckets = self.indexed().peekable();
        let mut seen = self.zeros;
        for &bound in bounds {
            while let Some(&(index, count)) = buckets.peek() {
                let midpoint = 2.0 * gamma().powi(index) / (gamma() + 1.0);
                #[expect(clippy::cast_precision_loss, reason = "bounds are durations")]
                if midpoint > bound as f64 {
                    break;
                }
                seen += count;
                buckets.next();
            }
            out.push(seen);
        }
        out
    }

    /// The median and the 95th and 99th percentiles.
    pub fn quantiles(&self) -> Quantiles {
        Quantiles { p50: self.quantile(0.5), p95: self.quantile(0.95), p99: self.quantile(0.99) }
    }

    /// The `q`-quantile (0..=1), within 1% of the true value; `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        #[expect(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "ranks"
        )]
        let rank = (q.clamp(0.0, 1.0) * (self.count - 1) as f64).floor() as u64;
        if rank < self.zeros {
            return Some(0);
        }
        let mut seen = self.zeros;
        for (index, count) in self.indexed() {
            seen += count;
            if seen > rank {
                // The bucket's midpoint in relative terms: within ALPHA of any value in it.
                let value = 2.0 * gamma().powi(index) / (gamma() + 1.0);
                #[expect(
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss,
                    reason = "durations"
                )]
                return Some(value.round() as u64);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn cumulative_counts_and_sum_follow_the_values() {
        let mut sketch = Sketch::default();
        for v in [0, 5, 10, 10, 100, 1_000, 1_000_000] {
            sketch.add(v);
        }
        assert_eq!(sketch.sum(), 1_001_125);
        assert_eq!(sketch.cumulative(&[0, 9, 11, 500, 2_000, u64::MAX]), vec![1, 2, 4, 5, 6, 7]);
        let mut other = Sketch::default();
        other.add(7);
        sketch.merge(&other);
        assert_eq!((sketch.count(), sketch.sum()), (8, 1_001_132));
        assert_eq!(sketch.cumulative(&[9]), vec![3]);
    }

    proptest! {
        #[test]
        fn quantiles_are_within_one_percent(mut values in proptest::collection::vec(1u64..10_000_000_000, 1..300), q in 0.0f64..=1.0) {
            let mut sketch = Sketch::default();
            for v in &values {
                sketch.add(*v);
            }
            values.sort_unstable();
            #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let exact = values[(q * (values.len() - 1) as f64).floor() as usize] as f64;
            #[allow(clippy::cast_precision_loss)]
            let estimate = sketch.quantile(q).unwrap() as f64;
            prop_assert!((estimate - exact).abs() <= exact * 0.0101 + 1.0, "{} vs {}", estimate, exact);
        }

        #[test]
        fn merging_equals_adding_everything(a in proptest::collection::vec(0u64..1_000_000, 0..100), b in proptest::collection::vec(0u64..1_000_000, 0..100)) {
            let (mut left, mut right, mut all) = (Sketch::default(), Sketch::default(), Sketch::default());
            for v in &a { left.add(*v); all.add(*v); }
            for v in &b { right.add(*v); all.add(*v); }
            left.merge(&right);
            prop_assert_eq!(left, all);
        }
    }
}
