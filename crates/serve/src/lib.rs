//! driftline-serve: the prediction server.
//!
//! - [`api`]: the routes (`/predict`, `/health`, `/ready`, `/metrics`, `/v1/models`).
//! - [`state`]: what handlers share, the models behind atomically swapped pointers.
//! - [`canary`]: sticky (entity-hash) or random assignment of requests to the canary.
//! - [`metrics`]: Prometheus metrics on atomics, with the reference stack's names.
//! - [`error`]: the API's errors and their one status/code table.
//! - [`feedback`]: delayed labels joined with recent predictions: live AUC, the rollout's
//!   AUC gate, the concept-drift error stream.
//! - [`ingest`]: HTTP ingest of events and delayed labels into the embedded log.
//! - [`models`]: loading the registry's champion and challenger, refusing bad ones.
//! - [`rollout`]: the metric-gated rollout controller (steps, checks, promote, roll back).
//! - [`controller`]: the elected replica that drives rollouts and retraining; the traffic
//!   split shared with every replica through registry tags.
//! - [`shadow`]: copies of predictions scored by a shadow model off the response path.
//! - [`monitor`]: concept-drift detectors on the champion's labelled errors.
//! - [`retrain`]: the closed loop: triggers, retraining through the gates, rollout.
//! - [`dashboard`]: the built-in dashboard page and `/v1/traffic`.
//! - [`openapi`]: the OpenAPI document, checked against the routes.
//! - [`trace`]: W3C trace context: the caller's `traceparent`, the trace id returned.
//! - [`server`]: startup (in-process ingest or the Redis online store, registry, hot
//!   swap) and the listener.
//!
//! Key decision: HTTP types live only here; every request is answered by the same
//! contract, feature engine and model code the rest of driftline uses.

pub mod api;
pub mod canary;
pub mod controller;
pub mod dashboard;
pub mod error;
pub mod feedback;
pub mod ingest;
pub mod metrics;
pub mod models;
pub mod monitor;
pub mod openapi;
pub mod retrain;
pub mod rollout;
pub mod server;
pub mod shadow;
pub mod state;
pub mod trace;

#[cfg(test)]
mod redis_tests;
#[cfg(test)]
mod tests;
