//! Walker/Vose alias table: draw an index with probability proportional to its weight.
//!
//! Key decision: O(1) per draw (one bucket index, one coin), because every legit event
//! draws a user from the skewed activity distribution, often several times (see
//! [`super::population`]). Built once per generator, in a deterministic order.

use rand::Rng;

/// A discrete distribution over `0..len`, proportional to the weights it was built from.
#[derive(Debug, Clone)]
pub(crate) struct AliasTable {
    /// Probability of keeping bucket `i` rather than taking its alias.
    keep: Vec<f64>,
    alias: Vec<u32>,
}

impl AliasTable {
    /// Builds the table; `weights` must be non-empty, finite and non-negative with a
    /// positive sum.
    pub(crate) fn new(weights: &[f64]) -> Self {
        let len = weights.len();
        let total: f64 = weights.iter().sum();
        let mut keep: Vec<f64> = weights.iter().map(|w| w * len as f64 / total).collect();
        let mut alias: Vec<u32> = (0..len as u32).collect();
        let (mut small, mut large): (Vec<u32>, Vec<u32>) =
            (0..len as u32).partition(|&i| keep[i as usize] < 1.0);
        while let (Some(&s), Some(&l)) = (small.last(), large.last()) {
            small.pop();
            alias[s as usize] = l;
            keep[l as usize] -= 1.0 - keep[s as usize];
            if keep[l as usize] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        // Leftovers are 1 up to rounding error.
        for i in small.into_iter().chain(large) {
            keep[i as usize] = 1.0;
        }
        Self { keep, alias }
    }

    /// Draws one index.
    pub(crate) fn sample(&self, rng: &mut impl Rng) -> u32 {
        let bucket = rng.random_range(0..self.keep.len());
        if rng.random::<f64>() < self.keep[bucket] {
            bucket as u32
        } else {
            self.alias[bucket]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn frequencies_follow_the_weights() {
        let weights = [1.0, 0.0, 5.0, 2.0, 12.0];
        let table = AliasTable::new(&weights);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut counts = [0u32; 5];
        let draws = 200_000;
        for _ in 0..draws {
            counts[table.sample(&mut rng) as usize] += 1;
        }
        let total: f64 = weights.iter().sum();
        for (count, weight) in counts.iter().zip(weights) {
            let observed = f64::from(*count) / f64::from(draws);
            assert!(
                (observed - weight / total).abs() < 0.005,
                "{counts:?} does not follow {weights:?}"
            );
        }
    }
}
