//! Which model answers a request: the champion ("baseline") or, while a challenger is
//! rolled out, the challenger ("canary") for a share of traffic.
//!
//! Key decision: sticky assignment by a stable hash of the entity id: xxh3-64 (seed 0) of
//! the id's UTF-8 bytes, scaled to [0, 1), compared with the ratio. The hash is a fixed
//! published algorithm, so a user lands in the same bucket in every process and release,
//! and because the comparison is `bucket < ratio`, raising the ratio only moves users from
//! baseline to canary, never back: everyone who was on the canary at 5% still is at 20%.

use driftline_core::config::CanaryAssignment;

use crate::metrics::Variant;

/// The user's fixed position in [0, 1).
pub fn bucket(entity: &str) -> f64 {
    let hash = xxhash_rust::xxh3::xxh3_64(entity.as_bytes());
    // The top 53 bits as a fraction: exact in f64, uniform in [0, 1).
    (hash >> 11) as f64 / (1u64 << 53) as f64
}

/// The variant for `entity` at canary `ratio` (0..=1).
pub fn assign(entity: &str, ratio: f64, assignment: CanaryAssignment) -> Variant {
    let position = match assignment {
        CanaryAssignment::Sticky => bucket(entity),
        CanaryAssignment::Random => rand::random::<f64>(),
    };
    if position < ratio {
        Variant::Canary
    } else {
        Variant::Baseline
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_pinned_so_they_never_change_across_releases() {
        // If these change, every user's variant changes: that must be a deliberate decision.
        for (user, expected) in PINNED {
            assert_eq!(bucket(user), expected, "{user}");
        }
    }

    /// xxh3-64 (seed 0) of the id, top 53 bits over 2^53, recorded when this was written.
    const PINNED: [(&str, f64); 3] = [
        ("user-00042", 0.4889134536403591),
        ("user-123", 0.9855264883703664),
        ("", 0.1758804333447428),
    ];

    #[test]
    fn the_canary_share_matches_the_ratio_and_only_grows_with_it() {
        let users: Vec<String> = (0..20_000).map(|i| format!("user-{i:05}")).collect();
        let canary_at = |ratio: f64| -> Vec<bool> {
            users
                .iter()
                .map(|u| assign(u, ratio, CanaryAssignment::Sticky) == Variant::Canary)
                .collect()
        };
        let (at5, at20) = (canary_at(0.05), canary_at(0.20));
        let share = |v: &[bool]| v.iter().filter(|&&c| c).count() as f64 / v.len() as f64;
        assert!((share(&at5) - 0.05).abs() < 0.01, "{}", share(&at5));
        assert!((share(&at20) - 0.20).abs() < 0.015, "{}", share(&at20));
        assert!(
            at5.iter().zip(&at20).all(|(&five, &twenty)| !five || twenty),
            "monotone in the ratio"
        );
        assert!(canary_at(0.0).iter().all(|&c| !c));
        assert!(canary_at(1.0).iter().all(|&c| c));
    }
}
