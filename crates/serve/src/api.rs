//! The HTTP API: `POST /predict` with the reference stack's request and response, health,
//! readiness, Prometheus metrics and the serving model.
//!
//! Key decision: `fn app(state) -> Router`, so tests drive it with `oneshot` without a port,
//! and each handler extracts, calls one function, maps the result. The prediction path
//! validates the event with the same contract as ingest and computes the vector with the
//! same engine as training, from the entity's online state *before* this event, which is
//! exactly the row training used for such an event: one code path, no skew. Each
//! prediction is a `predict` span (children `validate`, `feature_lookup`, `model_score`,
//! `shadow_handoff`) joined to the caller's W3C trace; its trace id is the one returned.
//! The children are built only when the trace records them (see [`RequestTrace::step`]),
//! so with export off, or for an unsampled trace, a prediction makes one span at most.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use driftline_core::contract::{IdSource, ValidateContext};
use driftline_core::event::{Event, FieldError, LabelUpdate, Record};
use driftline_core::features::FeatureVector;
use driftline_core::time::Timestamp;
use driftline_features::online::EmbeddedOnlineStore;
use driftline_features::redis::ReadError;
use driftline_features::state::{AsOf, EntityState, EventKey};
use driftline_models::model::Model;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tracing::Instrument;
use tracing::field::Empty;

use driftline_registry::CHALLENGER;

use crate::canary;
use crate::controller;
use crate::error::ApiError;
use crate::feedback::Prediction;
use crate::ingest::{Appended, Kind, MAX_RECORDS};
use crate::metrics::{StoreOp, Variant};
use crate::models::reload;
use crate::rollout::{self, RolloutPlan};
use crate::shadow::ShadowJob;
use crate::state::{AppState, OnlineState};
use crate::trace::{self, RequestTrace};

/// The routes of the server.
pub fn app(state: Arc<AppState>) -> Router {
    let limit = state.body_limit;
    Router::new()
        .route("/predict", post(predict))
        .route("/v1/predict/batch", post(predict_batch))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/v1/models", get(models))
        .route("/v1/rollout", get(rollout).post(change_rollout))
        .route("/v1/audit", get(audit))
        .route("/v1/retrain", post(request_retrain))
        .route("/v1/drift", get(drift))
        .route(
            "/v1/events",
            post(ingest_events).layer(DefaultBodyLimit::max(INGEST_BODY_LIMIT)),
        )
        .route(
            "/v1/feedback",
            post(ingest_feedback).layer(DefaultBodyLimit::max(INGEST_BODY_LIMIT)),
        )
        .route("/openapi.json", get(openapi))
        .route("/", get(crate::dashboard::page))
        .route("/v1/traffic", get(crate::dashboard::traffic))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// `{"user_id": ..., "event": {...}}`, the reference stack's request.
#[derive(Deserialize)]
struct PredictRequest<'a> {
    #[serde(borrow)]
    user_id: &'a str,
    #[serde(borrow)]
    event: &'a RawValue,
}

/// The reference stack's response, plus the event id the prediction was made for (delayed
/// labels join on it).
#[derive(Debug, Serialize)]
pub struct PredictResponse {
    pub user_id: String,
    pub model_version: String,
    pub score: f64,
    /// `decline` when the score reaches the model's decision threshold, else `approve`.
    pub decision: &'static str,
    pub canary_variant: &'static str,
    pub trace_id: String,
    pub event_id: String,
    /// `online` (the entity's state was read) or `request_only` (the online store did not
    /// answer within its deadline, so only the request's own fields were used).
    pub features: &'static str,
}

async fn predict(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let span = prediction_span("server", Some("/predict"));
    let trace = RequestTrace::join(&span, &headers);
    let outcome = match body {
        Ok(body) => predict_one(&state, &body, &trace).instrument(span.clone()).await,
        Err(rejection) => Outcome::refused(body_error(rejection, state.body_limit)),
    };
    span.in_scope(|| {
        outcome.record(&state, started);
        outcome.annotate(&span, &trace);
        traced_response(&span, &trace, outcome.result.map(Json))
    })
}

/// Validates one request, fetches its entity's state (from Redis within the deadline,
/// when that is the store) and scores it.
async fn predict_one(state: &AppState, body: &[u8], trace: &RequestTrace) -> Outcome {
    let validate = trace.step(|| tracing::debug_span!("validate"));
    let event = match validate.in_scope(|| parse_event(state, body)) {
        Ok(event) => event,
        Err(error) => return Outcome::refused(error),
    };
    let lookup = trace.step(|| tracing::debug_span!("feature_lookup"));
    let lookup_started = Instant::now();
    let fetched = fetch(state, &event.entity).instrument(lookup.clone()).await;
    score(state, event, (fetched, lookup_started, &lookup), trace)
}

/// The span of one prediction: `server` (with its route) when it is the whole request,
/// `internal` for an item of a batch. Only what judges the model is recorded, never the
/// entity id or the event's fields (they may be personal data).
fn prediction_span(kind: &'static str, route: Option<&'static str>) -> tracing::Span {
    tracing::debug_span!(
        "predict",
        otel.kind = kind,
        otel.status_code = Empty,
        http.route = route,
        http.response.status_code = Empty,
        model.version = Empty,
        model.variant = Empty,
        prediction.decision = Empty,
        error.type = Empty,
    )
}

/// The response with a `traceparent` header naming the request's span, and its status
/// recorded on the span (when it is recorded). Built inside the span, so an error logged
/// on the way carries it.
fn traced_response(span: &tracing::Span, trace: &RequestTrace, result: impl IntoResponse) -> Response {
    let mut response = result.into_response();
    response
        .headers_mut()
        .insert(trace::TRACEPARENT, trace.ids.traceparent());
    if trace.steps_traced() {
        span.record("http.response.status_code", response.status().as_u16());
        if response.status().is_server_error() {
            span.record("otel.status_code", "error");
        }
    }
    response
}

/// A scored request, or why not, with the variant that answered (baseline when none did).
struct Outcome {
    variant: Variant,
    result: Result<PredictResponse, ApiError>,
}

impl Outcome {
    fn refused(error: ApiError) -> Self {
        Outcome {
            variant: Variant::Baseline,
            result: Err(error),
        }
    }

    fn record(&self, state: &AppState, started: Instant) {
        match &self.result {
            Ok(_) => state.metrics.observe_request(self.variant, started.elapsed()),
            Err(ApiError::Internal(_)) => state.metrics.observe_exception(self.variant),
            Err(_) => state.metrics.observe_invalid(),
        }
    }

    /// Records the model and decision, or the error, on the prediction's span (when its
    /// trace records it).
    fn annotate(&self, span: &tracing::Span, trace: &RequestTrace) {
        if !trace.steps_traced() {
            return;
        }
        match &self.result {
            Ok(response) => {
                span.record("model.version", response.model_version.as_str());
                span.record("model.variant", response.canary_variant);
                span.record("prediction.decision", response.decision);
            }
            Err(error) => {
                let (status, code) = error.status_and_code();
                span.record("error.type", code);
                if status.is_server_error() {
                    span.record("otel.status_code", "error");
                }
            }
        }
    }
}

/// `{"requests": [<predict request>, ...]}`, at most [`MAX_BATCH`] of them.
#[derive(Deserialize)]
struct BatchRequest<'a> {
    #[serde(borrow)]
    requests: Vec<&'a RawValue>,
}

/// The largest batch accepted.
pub const MAX_BATCH: usize = 1000;

/// One answer per request, in order: a prediction or the error that request had.
#[derive(Serialize)]
struct BatchResponse {
    results: Vec<serde_json::Value>,
}

/// Scores every request of a batch independently: a bad request gets its own error entry
/// (with its index in the field path) and does not fail the others.
async fn predict_batch(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let span = tracing::debug_span!(
        "predict_batch",
        otel.kind = "server",
        otel.status_code = Empty,
        http.route = "/v1/predict/batch",
        http.response.status_code = Empty,
        batch.size = Empty,
        error.type = Empty,
    );
    let trace = RequestTrace::join(&span, &headers);
    let result = score_batch(&state, body, &trace).instrument(span.clone()).await;
    span.in_scope(|| {
        if trace.steps_traced() {
            match &result {
                Ok(batch) => span.record("batch.size", batch.results.len()),
                Err(error) => span.record("error.type", error.status_and_code().1),
            };
        }
        traced_response(&span, &trace, result)
    })
}

/// Every request of a batch, each in its own `predict` span under the batch's; the
/// entities' states fetched at once (one `MGET` from Redis).
async fn score_batch(
    state: &AppState,
    body: Result<Bytes, BytesRejection>,
    trace: &RequestTrace,
) -> Result<Json<BatchResponse>, ApiError> {
    let body = body.map_err(|r| body_error(r, state.body_limit))?;
    let batch: BatchRequest =
        serde_json::from_slice(&body).map_err(|e| ApiError::Malformed(e.to_string()))?;
    if batch.requests.len() > MAX_BATCH {
        return Err(ApiError::Invalid(vec![FieldError {
            field: "requests".into(),
            reason: format!("{} requests; at most {MAX_BATCH} per batch", batch.requests.len()),
        }]));
    }
    if state.champion.load().is_none() {
        return Err(ApiError::NoModel);
    }
    // Each request in its own `predict` span; validation and scoring are its children.
    let spans: Vec<tracing::Span> = batch
        .requests
        .iter()
        .map(|_| trace.step(|| prediction_span("internal", None)))
        .collect();
    let events: Vec<Result<Event, ApiError>> = batch
        .requests
        .iter()
        .zip(&spans)
        .map(|(request, span)| {
            trace
                .step(|| tracing::debug_span!(parent: span, "validate"))
                .in_scope(|| parse_event(state, request.get().as_bytes()))
        })
        .collect();
    let mut fetched = fetch_batch(state, &events).await.into_iter();
    let mut results = Vec::with_capacity(batch.requests.len());
    for (i, (event, span)) in events.into_iter().zip(spans).enumerate() {
        let started = Instant::now();
        let outcome = match event {
            Ok(event) => {
                let lookup = trace.step(|| tracing::debug_span!(parent: &span, "feature_lookup"));
                let fetched = fetched.next().expect("one per event");
                span.in_scope(|| score(state, event, (fetched, started, &lookup), trace))
            }
            Err(error) => Outcome::refused(error),
        };
        outcome.record(state, started);
        outcome.annotate(&span, trace);
        results.push(match outcome.result {
            Ok(response) => serde_json::to_value(response).expect("responses serialise"),
            Err(error) => batch_error(i, error),
        });
    }
    Ok(Json(BatchResponse { results }))
}

fn batch_error(index: usize, error: ApiError) -> serde_json::Value {
    let (_, code) = error.status_and_code();
    let field = match &error {
        ApiError::Invalid(errors) => errors.first().map(|e| format!("requests[{index}].{}", e.field)),
        _ => Some(format!("requests[{index}]")),
    };
    serde_json::json!({"error": {"code": code, "message": error.to_string(), "field": field}})
}

fn body_error(rejection: BytesRejection, limit: usize) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::TooLarge { limit }
    } else {
        ApiError::Malformed(rejection.body_text())
    }
}

/// Picks the variant for a validated event, computes the entity's vector from its
/// fetched state (in the `feature_lookup` span) and scores it. Each model slot is read
/// once, so one request sees one consistent set of models.
fn score(
    state: &AppState,
    event: Event,
    (fetched, lookup_started, lookup): (Fetched, Instant, &tracing::Span),
    trace: &RequestTrace,
) -> Outcome {
    let Some(champion) = state.champion.load_full() else {
        return Outcome::refused(ApiError::NoModel);
    };
    // A challenger present means a rollout is on.
    let challenger = state.challenger.load_full();
    let (variant, model) = match &challenger {
        Some(challenger)
            if canary::assign(&event.entity, state.canary_ratio(), state.assignment) == Variant::Canary =>
        {
            (Variant::Canary, challenger.clone())
        }
        _ => (Variant::Baseline, champion.clone()),
    };
    state.observe_event_time(event.ts);
    let (vector, features) = lookup.in_scope(|| online_vector(state, &event, fetched, lookup_started));
    let score = trace
        .step(|| tracing::debug_span!("model_score", model.version = model.version.version))
        .in_scope(|| model.bundle.model.predict_proba_row(&vector.values));
    if !score.is_finite() {
        let error = ApiError::Internal(format!("model v{} produced score {score}", model.version.version));
        return Outcome {
            variant,
            result: Err(error),
        };
    }
    let decline = score >= model.bundle.decision_threshold;
    if variant == Variant::Baseline {
        state.data_drift.observe(&vector.values, score);
    }
    if variant == Variant::Canary {
        // The same vector through the champion: the disagreement the rollout is judged on.
        let champion_score = champion.bundle.model.predict_proba_row(&vector.values);
        state
            .metrics
            .observe_comparison(decline != (champion_score >= champion.bundle.decision_threshold));
    }
    // Remembered so delayed labels can judge live quality, the rollout and concept drift.
    state.feedback.lock().expect("feedback lock").remember(
        &event.event_id,
        Prediction {
            variant,
            score,
            decline,
            hour: event.ts.hour_of_day() as u8,
        },
    );
    offer_to_shadow(
        state,
        trace,
        &event.event_id,
        vector,
        (model.version.version, decline, score),
    );
    let response = PredictResponse {
        user_id: event.entity,
        model_version: model.version.version.to_string(),
        score,
        decision: if decline { "decline" } else { "approve" },
        canary_variant: variant.name(),
        trace_id: trace.ids.trace_hex(),
        event_id: event.event_id,
        features: features.name(),
    };
    Outcome {
        variant,
        result: Ok(response),
    }
}

/// A copy of the prediction (the primary's version, decision and score) for the shadow
/// model, when shadowing is on and one is loaded.
fn offer_to_shadow(
    state: &AppState,
    trace: &RequestTrace,
    event_id: &str,
    vector: FeatureVector,
    (version, decision, score): (u32, bool, f64),
) {
    if !state.shadow_enabled || state.shadow_model.load().is_none() {
        return;
    }
    if let Some(shadow) = state.shadow.get() {
        let span = trace.step(|| tracing::debug_span!("shadow_handoff", shadow.queued = Empty));
        let _entered = span.enter();
        let job = ShadowJob {
            event_id: event_id.to_string(),
            vector: vector.values,
            primary_version: version,
            primary_score: score,
            primary_decision: decision,
            trace: trace.steps_traced().then(|| trace::context_of(&span)),
        };
        let queued = shadow.offer(job, &state.shadow_metrics);
        span.record("shadow.queued", queued);
    }
}

/// The request's event, validated by the contract with the request's user as entity.
fn parse_event(state: &AppState, body: &[u8]) -> Result<Event, ApiError> {
    let request: PredictRequest =
        serde_json::from_slice(body).map_err(|e| ApiError::Malformed(e.to_string()))?;
    let ctx = ValidateContext {
        now: Timestamp::now(),
        default_entity: Some(request.user_id),
        path_prefix: "event.",
        ids: IdSource::Random,
    };
    match state.contract.validate_json(request.event.get().as_bytes(), &ctx) {
        Ok(Record::Event(event)) => Ok(event),
        Ok(Record::Label(_)) => Err(ApiError::Invalid(vec![FieldError {
            field: "event".into(),
            reason: "holds only an id and a label: a prediction needs the event's fields".into(),
        }])),
        Err(invalid) => Err(ApiError::Invalid(invalid.errors)),
    }
}

/// An entity's state as fetched for a request.
enum Fetched<'a> {
    /// The embedded store: read in place when the vector is computed, no copy.
    InPlace(&'a EmbeddedOnlineStore),
    /// Read from Redis (`None`: no state yet).
    Remote(Option<EntityState>),
    /// The store did not answer in time, or is marked down.
    Unavailable,
}

/// What a prediction's features were computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Features {
    Online,
    RequestOnly,
}

impl Features {
    fn name(self) -> &'static str {
        match self {
            Features::Online => "online",
            Features::RequestOnly => "request_only",
        }
    }
}

/// The state of one entity: nothing to do for the embedded store, one `GET` with the
/// deadline for Redis.
async fn fetch<'a>(state: &'a AppState, entity: &str) -> Fetched<'a> {
    match &state.store {
        OnlineState::Embedded(store) => Fetched::InPlace(store),
        OnlineState::Redis(reader) => match reader.get(entity).await {
            Ok(found) => Fetched::Remote(found),
            Err(error) => unavailable(state, &error),
        },
    }
}

/// The states of a batch's valid events (one per `Ok`, in order): for Redis one `MGET`.
async fn fetch_batch<'a>(state: &'a AppState, events: &[Result<Event, ApiError>]) -> Vec<Fetched<'a>> {
    let entities: Vec<&str> = events.iter().flatten().map(|e| e.entity.as_str()).collect();
    match &state.store {
        OnlineState::Embedded(store) => entities.iter().map(|_| Fetched::InPlace(store)).collect(),
        OnlineState::Redis(reader) => match reader.get_many(&entities).await {
            Ok(found) => found.into_iter().map(Fetched::Remote).collect(),
            Err(error) => {
                unavailable(state, &error);
                entities.iter().map(|_| Fetched::Unavailable).collect()
            }
        },
    }
}

/// Counts a failed read (one that reached Redis; a breaker skip is not an error).
fn unavailable<'a>(state: &AppState, error: &ReadError) -> Fetched<'a> {
    if error.attempted() {
        state.metrics.observe_store_error(StoreOp::Get);
        tracing::debug!(%error, "online state read failed");
    }
    Fetched::Unavailable
}

/// The entity's vector for `event` from its online state strictly before the event, or
/// from the request alone when the state could not be fetched.
fn online_vector(
    state: &AppState,
    event: &Event,
    fetched: Fetched,
    started: Instant,
) -> (FeatureVector, Features) {
    let as_of = AsOf::Before(EventKey::of(event));
    let empty = || EntityState::new(event.values.len());
    let result = match fetched {
        Fetched::InPlace(store) => {
            let vector = store.with_state(&event.entity, |entity| match entity {
                Some(entity) => state.engine.vector(entity, Some(event), as_of),
                None => state.engine.vector(&empty(), Some(event), as_of),
            });
            (vector, Features::Online)
        }
        Fetched::Remote(entity) => {
            let entity = entity.unwrap_or_else(empty);
            (state.engine.vector(&entity, Some(event), as_of), Features::Online)
        }
        Fetched::Unavailable => {
            state.metrics.observe_degraded();
            (
                state.engine.vector(&empty(), Some(event), as_of),
                Features::RequestOnly,
            )
        }
    };
    state.metrics.observe_lookup(started.elapsed());
    result
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

/// 200 once a model is serving, 503 before.
async fn ready(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    match state.champion.load().as_ref() {
        Some(model) => (
            StatusCode::OK,
            Json(serde_json::json!({"status": "ready", "model_version": model.version.version})),
        ),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"status": "not_ready", "reason": ApiError::NoModel.to_string()})),
        ),
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let mut text = state.metrics.render();
    state.metrics.render_online_store(&mut text, state.store.is_up());
    state.shadow_metrics.render(&mut text);
    state.data_drift.render(&mut text);
    state.concept.render(&mut text);
    if let Some(retrainer) = state.retrainer.get() {
        retrainer.render(&mut text);
    }
    render_live_quality(&state, &mut text);
    crate::metrics::render_trace_export(&mut text);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        text,
    )
}

/// `driftline_live_roc_auc{model_variant}`: ROC AUC of each variant's latest labelled
/// predictions (absent while undefined).
fn render_live_quality(state: &AppState, out: &mut String) {
    use std::fmt::Write;
    let feedback = state.feedback.lock().expect("feedback lock");
    let _ = writeln!(
        out,
        "# HELP driftline_live_roc_auc ROC AUC of the latest labelled predictions (POST /v1/feedback) per variant.\n# TYPE driftline_live_roc_auc gauge"
    );
    for variant in Variant::ALL {
        if let (Some(auc), _) = feedback.live_roc_auc(variant) {
            let _ = writeln!(
                out,
                "driftline_live_roc_auc{{model_variant=\"{}\"}} {auc}",
                variant.name()
            );
        }
    }
}

/// The traffic split: champion, challenger, canary ratio and assignment.
async fn rollout(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let version = |slot: &arc_swap::ArcSwapOption<crate::state::LoadedModel>| {
        slot.load().as_ref().map(|m| m.version.version)
    };
    let challenger = version(&state.challenger);
    let controller = state.rollout.lock().expect("rollout status lock").clone();
    Json(serde_json::json!({
        "champion": version(&state.champion),
        "challenger": challenger,
        "canary_ratio": if challenger.is_some() { state.canary_ratio() } else { 0.0 },
        "assignment": state.assignment,
        "controller": controller,
    }))
}

/// An admin action on the rollout.
#[derive(Debug, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
enum RolloutAction {
    /// Make `version` the challenger. With `ratio`, hold that share until told otherwise;
    /// without, the rollout controller takes it through `plan` (default steps and gates).
    Start {
        version: u32,
        ratio: Option<f64>,
        /// Overrides of the configured `[serve.rollout]` plan, field by field.
        plan: Option<serde_json::Map<String, serde_json::Value>>,
        reason: Option<String>,
    },
    /// Set the canary share (0..=1).
    SetRatio { ratio: f64 },
    /// The challenger becomes champion (the old champion stays in the audit log).
    Promote { reason: Option<String> },
    /// With a challenger: abort its canary (alias removed, share 0). Without one: the
    /// champion goes back to the version before its last change.
    Rollback { reason: Option<String> },
}

const ADMIN_ACTOR: &str = "driftline serve api";

async fn change_rollout(
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    authorize(&state, &headers)?;
    let body = body.map_err(|r| body_error(r, state.body_limit))?;
    let action: RolloutAction =
        serde_json::from_slice(&body).map_err(|e| ApiError::Malformed(e.to_string()))?;
    let control = state
        .control
        .get()
        .ok_or_else(|| ApiError::Internal("the registry is not open yet".into()))?;
    let (registry, model) = (control.registry.as_ref(), control.model.as_str());
    let reason = |given: Option<String>, default: &str| given.unwrap_or_else(|| default.to_string());
    match action {
        RolloutAction::Start {
            version,
            ratio,
            plan,
            reason: why,
        } => {
            check_ratio(ratio)?;
            let plan = plan_with(&state.rollout_plan, plan)?;
            plan.check().map_err(|reason| {
                ApiError::Invalid(vec![FieldError {
                    field: format!("plan.{}", reason.split(':').next().unwrap_or_default()),
                    reason,
                }])
            })?;
            // Recorded before the alias moves, so every replica reads the share (and the
            // controller the plan) as soon as the new challenger reaches it.
            let (driven, share) = match ratio {
                Some(ratio) => (None, ratio),
                None => (Some(&plan), plan.steps[0]),
            };
            controller::record_start(control, version, driven, share).await?;
            registry
                .set_alias(
                    model,
                    CHALLENGER,
                    version,
                    &reason(why, "rollout started"),
                    ADMIN_ACTOR,
                )
                .await?;
            reload(&state, control).await;
            state.set_canary_ratio(share);
            if driven.is_some() && state.is_controller() {
                // Another replica's controller resumes it from the tags instead.
                tokio::spawn(rollout::run(state.clone(), version, plan, 0));
            }
        }
        RolloutAction::SetRatio { ratio } => {
            check_ratio(Some(ratio))?;
            if let Some(challenger) = state.challenger.load().as_ref() {
                controller::record_share(control, challenger.version.version, ratio).await?;
            }
            state.set_canary_ratio(ratio);
        }
        RolloutAction::Promote { reason: why } => {
            registry
                .promote(model, None, &reason(why, "promoted through the API"), ADMIN_ACTOR)
                .await?;
        }
        RolloutAction::Rollback { reason: why } => {
            let why = reason(why, "rolled back through the API");
            if state.challenger.load().is_some() {
                state.set_canary_ratio(0.0);
                registry
                    .remove_alias(model, CHALLENGER, &why, ADMIN_ACTOR)
                    .await?;
            } else {
                registry.rollback(model, &why, ADMIN_ACTOR).await?;
            }
        }
    }
    reload(&state, control).await;
    Ok(rollout(State(state)).await)
}

/// The configured plan with the request's overrides applied; unknown fields are refused.
fn plan_with(
    configured: &RolloutPlan,
    overrides: Option<serde_json::Map<String, serde_json::Value>>,
) -> Result<RolloutPlan, ApiError> {
    let mut merged = serde_json::to_value(configured).expect("plans serialise");
    if let (Some(fields), Some(object)) = (overrides, merged.as_object_mut()) {
        object.extend(fields);
    }
    serde_json::from_value(merged).map_err(|e| {
        ApiError::Invalid(vec![FieldError {
            field: "plan".into(),
            reason: e.to_string(),
        }])
    })
}

fn check_ratio(ratio: Option<f64>) -> Result<(), ApiError> {
    match ratio {
        Some(r) if !(0.0..=1.0).contains(&r) => Err(ApiError::Invalid(vec![FieldError {
            field: "ratio".into(),
            reason: format!("{r} is not between 0 and 1"),
        }])),
        _ => Ok(()),
    }
}

/// Admin endpoints need `Authorization: Bearer <token>` when a token is configured.
fn authorize(state: &AppState, headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    let Some(token) = &state.admin_token else {
        return Ok(());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

/// Equality whose time does not depend on where the inputs first differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The largest ingest request body (a batch of events), in bytes.
pub const INGEST_BODY_LIMIT: usize = 16 << 20;

async fn ingest_events(
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Appended>), ApiError> {
    ingest(state, &headers, body, Kind::Events).await
}

async fn ingest_feedback(
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Appended>), ApiError> {
    ingest(state, &headers, body, Kind::Labels).await
}

/// One record, or `{"events": [...]}` / `{"labels": [...]}`, validated and appended to the
/// event log (202 once durable).
async fn ingest(
    state: Arc<AppState>,
    headers: &axum::http::HeaderMap,
    body: Result<Bytes, BytesRejection>,
    kind: Kind,
) -> Result<(StatusCode, Json<Appended>), ApiError> {
    authorize(&state, headers)?;
    let body = body.map_err(|r| body_error(r, INGEST_BODY_LIMIT))?;
    let shared = state.clone();
    let appended = tokio::task::spawn_blocking(move || {
        let state = shared;
        let sink = state
            .log
            .get()
            .ok_or_else(|| ApiError::Internal("no event log is open".into()))?;
        let records = records_of(&body, kind)?;
        sink.append(&state.contract, &records, kind)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("ingest task: {e}")))??;
    state.metrics.observe_ingested(appended.accepted as u64);
    let unmatched = join_labels(&state, &appended.labels);
    if let OnlineState::Redis(reader) = &state.store {
        // Another replica may have served these predictions (see features::redis::labels).
        if let Err(error) = reader.publish_labels(&unmatched).await {
            tracing::debug!(%error, labels = unmatched.len(), "labels not shared with other replicas");
        }
    }
    Ok((StatusCode::ACCEPTED, Json(appended)))
}

/// Joins labels with this replica's remembered predictions and feeds the joined ones to
/// the concept-drift monitors (and through them the retrainer); returns the labels whose
/// prediction this replica did not make.
pub(crate) fn join_labels(state: &AppState, labels: &[LabelUpdate]) -> Vec<LabelUpdate> {
    if labels.is_empty() {
        return Vec::new();
    }
    let (joined, unmatched) = state.feedback.lock().expect("feedback lock").join(labels);
    state.metrics.observe_labels_joined(joined.len() as u64);
    let drifts = state.concept.observe(&joined);
    if let Some(retrainer) = state.retrainer.get() {
        for drift in drifts {
            retrainer.observe_concept_drift(drift.detector, drift.error_rate, drift.harmful);
        }
    }
    unmatched
}

/// The records of an ingest body: the `events`/`labels` array, or the body as one record.
fn records_of(body: &[u8], kind: Kind) -> Result<Vec<&RawValue>, ApiError> {
    let object: std::collections::BTreeMap<String, &RawValue> =
        serde_json::from_slice(body).map_err(|e| ApiError::Malformed(e.to_string()))?;
    let records = match object.get(kind.field()) {
        Some(list) if object.len() == 1 => serde_json::from_str::<Vec<&RawValue>>(list.get())
            .map_err(|e| ApiError::Malformed(format!("{}: {e}", kind.field())))?,
        _ => vec![serde_json::from_slice::<&RawValue>(body).map_err(|e| ApiError::Malformed(e.to_string()))?],
    };
    if records.is_empty() || records.len() > MAX_RECORDS {
        return Err(ApiError::Invalid(vec![FieldError {
            field: kind.field().into(),
            reason: format!("{} records; send 1 to {MAX_RECORDS}", records.len()),
        }]));
    }
    Ok(records)
}

/// The live monitors: the latest data-drift verdict of the champion's traffic (absent
/// until the first evaluation), concept drift on its errors, and the retrainer's state.
async fn drift(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let mut body = match state.data_drift.latest() {
        Some(snapshot) => serde_json::to_value(snapshot).expect("snapshots serialise"),
        None => serde_json::json!({"status": "not_evaluated"}),
    };
    let object = body.as_object_mut().expect("an object");
    object.insert(
        "concept".into(),
        serde_json::to_value(state.concept.snapshot()).expect("snapshots serialise"),
    );
    object.insert(
        "retrain".into(),
        serde_json::to_value(state.retrainer.get().map(|r| r.status())).expect("statuses serialise"),
    );
    Json(body)
}

/// `{"reason": "..."}`: why a person asks for a retraining.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetrainRequest {
    reason: Option<String>,
}

/// Queues a manual retraining (admin); 409 while one runs.
async fn request_retrain(
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    authorize(&state, &headers)?;
    let body = body.map_err(|r| body_error(r, state.body_limit))?;
    let request: RetrainRequest = if body.is_empty() {
        RetrainRequest { reason: None }
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::Malformed(e.to_string()))?
    };
    let retrainer = state
        .retrainer
        .get()
        .ok_or_else(|| ApiError::Internal("the retrainer is not running".into()))?;
    retrainer
        .request(
            request
                .reason
                .unwrap_or_else(|| "requested through the API".into()),
        )
        .map_err(|why| ApiError::Conflict(why.into()))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::to_value(retrainer.status()).expect("statuses serialise")),
    ))
}

async fn openapi() -> Json<serde_json::Value> {
    Json(crate::openapi::document())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    limit: Option<usize>,
}

/// The registry's audit log of the model served, newest first.
async fn audit(
    State(state): State<Arc<AppState>>,
    query: Result<axum::extract::Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let query = query.map_err(|e| ApiError::Malformed(e.body_text()))?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::Invalid(vec![FieldError {
            field: "limit".into(),
            reason: format!("{limit} is not between 1 and 1000"),
        }]));
    }
    let control = state
        .control
        .get()
        .ok_or_else(|| ApiError::Internal("the registry is not open yet".into()))?;
    let entries = match control.registry.audit(Some(&control.model), limit).await {
        Err(driftline_registry::RegistryError::ModelNotFound { .. }) => Vec::new(),
        other => other?,
    };
    Ok(Json(
        serde_json::to_value(entries).expect("audit entries serialise"),
    ))
}

/// The models loaded (champion, challenger, shadow), with their cards.
async fn models(State(state): State<Arc<AppState>>) -> Result<Json<serde_json::Value>, ApiError> {
    let champion = state.champion.load_full().ok_or(ApiError::NoModel)?;
    let describe = |model: &crate::state::LoadedModel| {
        serde_json::json!({
            "model": model.version.model,
            "version": model.version.version,
            "created_at": model.version.created_at,
            "card": model.version.card,
            "decision_threshold": model.bundle.decision_threshold,
        })
    };
    Ok(Json(serde_json::json!({
        "champion": describe(&champion),
        "challenger": state.challenger.load().as_deref().map(describe),
        "shadow": state.shadow_model.load().as_deref().map(describe),
    })))
}
