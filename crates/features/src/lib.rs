//! driftline-features: per-entity feature state, the online and offline stores, the
//! ingest consumer and point-in-time training sets.
//!
//! The same [`compute::FeatureEngine`] turns an [`state::EntityState`] into a vector for
//! serving, for `features get` and for every training row, so there is no train/serve
//! skew to test away: there is one implementation.

pub mod compute;
pub mod ingest;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod offline;
#[cfg(feature = "postgres")]
pub mod offline_pg;
pub mod online;
pub mod paths;
#[cfg(feature = "redis")]
pub mod redis;
pub mod source;
pub mod state;
pub mod training;
