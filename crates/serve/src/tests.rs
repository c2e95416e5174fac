//! Handler tests through `oneshot`, no port bound: the reference payloads, errors with
//! their codes and field paths, readiness, metrics and a hot swap.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use driftline_core::config::Config;
use driftline_core::profile::{ColumnKind, ProfileParams, ReferenceProfile};
use driftline_features::compute::FeatureEngine;
use driftline_features::online::EmbeddedOnlineStore;
use driftline_models::dataset::Dataset;
use driftline_models::estimator::FittedModel;
use driftline_models::logistic::LogisticRegressionParams;
use driftline_registry::{ArtifactRef, Lineage, ModelVersion, VersionStatus};
use driftline_training::bundle::{BUNDLE_FORMAT_VERSION, ModelBundle};
use driftline_training::rows::column_type;
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::api::app;
use crate::state::{AppState, LoadedModel};

/// A logistic model over the fraud features where a larger amount means fraud.
pub(crate) fn model(version: u32, config: &Config) -> LoadedModel {
    model_with(version, config, false)
}

/// The same, or with the labels inverted (a broken model: small amounts look like fraud).
fn model_with(version: u32, config: &Config, inverted: bool) -> LoadedModel {
    let engine = FeatureEngine::from_config(config);
    let columns: Vec<String> = engine.spec().names().map(String::from).collect();
    let kinds = ColumnKind::for_spec(engine.spec());
    let amount = columns.iter().position(|c| c == "transaction_amount").unwrap();
    let rows = 400;
    let mut features = Vec::with_capacity(rows * columns.len());
    let mut labels = Vec::with_capacity(rows);
    for i in 0..rows {
        for (j, kind) in kinds.iter().enumerate() {
            features.push(match kind {
                ColumnKind::Categorical => (i % 3) as f64,
                ColumnKind::Numeric if j == amount => (i % 100) as f64 * 10.0,
                ColumnKind::Numeric => ((i * 7 + j) % 11) as f64,
            });
        }
        labels.push((i % 100 >= 80) != inverted);
    }
    let types = kinds.iter().map(|k| column_type(*k)).collect();
    let data = Dataset::new(features.clone(), labels.clone(), columns.clone())
        .unwrap()
        .with_column_types(types)
        .unwrap();
    let fitted = LogisticRegressionParams::default().fit(&data).unwrap();
    let profile = ReferenceProfile::fit_row_major(
        &columns,
        &kinds,
        &features,
        Some(&labels),
        None,
        &ProfileParams::default(),
    )
    .unwrap();
    LoadedModel {
        version: ModelVersion {
            model: "fraud".into(),
            version,
            created_at: chrono::Utc::now(),
            status: VersionStatus::Registered,
            artifact: ArtifactRef {
                key: "models/fraud/x.bin".into(),
                sha256: "0".repeat(64),
                size: 1,
            },
            card: serde_json::json!({"estimator": "logistic"}),
            lineage: Lineage {
                data_from: None,
                data_to: None,
                events: rows as u64,
                rows_train: rows as u64,
                rows_holdout: 0,
                label_rate: 0.2,
                feature_fingerprint: engine.spec().fingerprint(),
                params: serde_json::Value::Null,
                driftline_version: "test".into(),
                seed: None,
                champion_at_training: None,
            },
            tags: Default::default(),
        },
        bundle: ModelBundle {
            format_version: BUNDLE_FORMAT_VERSION,
            driftline_version: "test".into(),
            feature_fingerprint: engine.spec().fingerprint(),
            decision_threshold: 0.5,
            model: FittedModel::Logistic(fitted),
            profile,
        },
    }
}

fn state(with_model: bool) -> Arc<AppState> {
    let config = Config::fraud_default();
    let state = AppState::new(
        config.contract.clone(),
        FeatureEngine::from_config(&config),
        Arc::new(EmbeddedOnlineStore::default()),
    );
    if with_model {
        state.swap_champion(model(1, &config));
    }
    Arc::new(state)
}

pub(crate) async fn call(
    state: &Arc<AppState>,
    method: &str,
    uri: &str,
    body: &str,
) -> (StatusCode, serde_json::Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = app(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, json)
}

const QUICKSTART: &str = r#"{"user_id":"user-42","event":{"transaction_amount":83.2,"country":"DE","device":"ios","event_ts":"2024-03-01T12:00:00Z"}}"#;
const CURL_EXAMPLE: &str = r#"{"user_id":"user-123","event":{"event_id":"01HQA7F9G4G1YJ2R4D8K2J3A5S","user_id":"user-123","transaction_amount":121.4,"country":"US","device":"android","event_ts":"2024-03-01T17:45:00Z","label":0}}"#;

#[tokio::test]
async fn the_reference_payloads_are_answered_in_the_reference_shape() {
    let state = state(true);
    for body in [QUICKSTART, CURL_EXAMPLE] {
        let (status, json) = call(&state, "POST", "/predict", body).await;
        assert_eq!(status, StatusCode::OK, "{json}");
        let keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
        for key in [
            "user_id",
            "model_version",
            "score",
            "decision",
            "canary_variant",
            "trace_id",
        ] {
            assert!(keys.contains(&key), "{key} missing from {json}");
        }
        let score = json["score"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&score));
        assert_eq!(json["model_version"], "1");
        assert_eq!(json["canary_variant"], "baseline");
        assert_eq!(json["trace_id"].as_str().unwrap().len(), 32);
    }
    let (_, json) = call(&state, "POST", "/predict", CURL_EXAMPLE).await;
    assert_eq!(json["event_id"], "01HQA7F9G4G1YJ2R4D8K2J3A5S");
    assert_eq!(json["user_id"], "user-123");
}

/// `/predict` with a `traceparent` header: the response's status, trace id and header.
async fn predict_traced(state: &Arc<AppState>, traceparent: &str) -> (StatusCode, String, String) {
    let request = Request::builder()
        .method("POST")
        .uri("/predict")
        .header("content-type", "application/json")
        .header("traceparent", traceparent)
        .body(Body::from(QUICKSTART))
        .unwrap();
    let response = app(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let header = response.headers()["traceparent"].to_str().unwrap().to_string();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    (status, json["trace_id"].as_str().unwrap().to_string(), header)
}

#[tokio::test]
async fn without_trace_export_the_callers_trace_id_is_still_returned_and_propagated() {
    let state = state(true);
    let caller = "4bf92f3577b34da6a3ce929d0e0e4736";
    let (status, trace_id, header) =
        predict_traced(&state, &format!("00-{caller}-00f067aa0ba902b7-01")).await;
    assert_eq!((status, trace_id.as_str()), (StatusCode::OK, caller));
    let ids = crate::trace::parse_traceparent(&header).unwrap();
    assert_eq!(format!("{:032x}", ids.trace_id), caller);
    assert!(ids.sampled);

    // Malformed: ignored, a new valid trace, never a 4xx.
    for malformed in [
        "nonsense",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
    ] {
        let (status, trace_id, header) = predict_traced(&state, malformed).await;
        assert_eq!(status, StatusCode::OK);
        assert_ne!(trace_id, caller);
        assert_eq!(
            crate::trace::parse_traceparent(&header)
                .unwrap()
                .trace_id
                .to_string(),
            trace_id
        );
    }
}

/// The names of the spans a subscriber is asked to create, in order.
#[derive(Clone, Default)]
struct SpanNames(Arc<std::sync::Mutex<Vec<&'static str>>>);

impl SpanNames {
    fn take(&self) -> Vec<&'static str> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for SpanNames {
    fn on_new_span(
        &self,
        attributes: &tracing::span::Attributes<'_>,
        _: &tracing::span::Id,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) {
        self.0.lock().unwrap().push(attributes.metadata().name());
    }
}

#[tokio::test]
async fn an_unsampled_prediction_builds_no_step_spans() {
    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    // The SDK's default sampler follows the caller's `sampled` flag.
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let names = SpanNames::default();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")))
        .with(names.clone());
    let _default = tracing::subscriber::set_default(subscriber);
    // While a single dispatcher is registered, tracing computes a callsite's interest from
    // the default of whichever thread reaches it first: another test's thread, without a
    // subscriber, would disable this test's spans. A second live one makes it ask both.
    let _second = tracing::Dispatch::new(tracing_subscriber::registry());
    let state = state(true);
    let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7";

    let (status, _, header) = predict_traced(&state, &format!("{caller}-00")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(header.ends_with("-00"), "{header}");
    assert_eq!(names.take(), ["predict"]);

    let (status, _, header) = predict_traced(&state, &format!("{caller}-01")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(header.ends_with("-01"), "{header}");
    assert_eq!(
        names.take(),
        ["predict", "validate", "feature_lookup", "model_score"]
    );
}

#[tokio::test]
async fn larger_amounts_score_higher_and_decide_decline() {
    let state = state(true);
    let body = |amount: f64| {
        format!(
            r#"{{"user_id":"u-1","event":{{"transaction_amount":{amount},"country":"US","device":"ios","event_ts":"2024-03-01T12:00:00Z"}}}}"#
        )
    };
    let (_, low) = call(&state, "POST", "/predict", &body(5.0)).await;
    let (_, high) = call(&state, "POST", "/predict", &body(990.0)).await;
    assert!(high["score"].as_f64() > low["score"].as_f64(), "{low} {high}");
    assert_eq!(low["decision"], "approve");
    assert_eq!(high["decision"], "decline");
}

#[tokio::test]
async fn bad_input_is_a_4xx_with_a_stable_code_and_the_field_path() {
    let state = state(true);
    let cases = [
        (
            "not json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "malformed_json",
            None,
        ),
        (
            r#"{"event":{}}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "malformed_json",
            None,
        ),
        (
            r#"{"user_id":"u","event":{"transaction_amount":-1,"country":"US","device":"ios","event_ts":"2024-03-01T12:00:00Z"}}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            Some("event.transaction_amount"),
        ),
        (
            r#"{"user_id":"u","event":{"user_id":"v","transaction_amount":1,"country":"US","device":"ios","event_ts":"2024-03-01T12:00:00Z"}}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            Some("event.user_id"),
        ),
        (
            r#"{"user_id":"u","event":{"transaction_amount":1,"country":"XX","device":"ios","event_ts":"2024-03-01T12:00:00Z"}}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            Some("event.country"),
        ),
    ];
    for (body, status, code, field) in cases {
        let (got, json) = call(&state, "POST", "/predict", body).await;
        assert_eq!(
            (got, json["code"].as_str()),
            (status, Some(code)),
            "{body}: {json}"
        );
        assert_eq!(json["field"].as_str(), field, "{body}: {json}");
        assert!(json["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let huge = format!(r#"{{"user_id":"u","event":{{"pad":"{}"}}}}"#, "x".repeat(100_000));
    let (status, json) = call(&state, "POST", "/predict", &huge).await;
    assert_eq!(
        (status, json["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("body_too_large")),
        "{json}"
    );
    let (_, metrics) = call(&state, "GET", "/metrics", "").await;
    let text = metrics.as_str().unwrap();
    assert!(text.contains("driftline_invalid_requests_total 6"), "{text}");
    assert!(text.contains("serving_app_request_exceptions_total{model_variant=\"baseline\"} 0"));
}

#[tokio::test]
async fn without_a_model_predict_and_ready_say_so_and_health_is_fine() {
    let state = state(false);
    let (status, json) = call(&state, "POST", "/predict", QUICKSTART).await;
    assert_eq!(
        (status, json["code"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("no_model"))
    );
    let (status, _) = call(&state, "GET", "/ready", "").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, json) = call(&state, "GET", "/health", "").await;
    assert_eq!((status, json["status"].as_str()), (StatusCode::OK, Some("ok")));
}

#[tokio::test]
async fn a_swapped_champion_answers_the_next_request_and_is_counted() {
    let state = state(true);
    let (_, before) = call(&state, "POST", "/predict", QUICKSTART).await;
    assert_eq!(before["model_version"], "1");
    assert_eq!(state.swap_champion(model(2, &Config::fraud_default())), Some(1));
    let (_, after) = call(&state, "POST", "/predict", QUICKSTART).await;
    assert_eq!(after["model_version"], "2");
    let (status, ready) = call(&state, "GET", "/ready", "").await;
    assert_eq!(
        (status, ready["model_version"].as_u64()),
        (StatusCode::OK, Some(2))
    );
    let (_, metrics) = call(&state, "GET", "/metrics", "").await;
    let text = metrics.as_str().unwrap();
    for line in [
        "serving_app_requests_total{model_variant=\"baseline\"} 2",
        "driftline_model_version 2",
        "driftline_model_swaps_total 2",
        "driftline_online_lookup_seconds_count 2",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?}:\n{text}");
    }
}

#[tokio::test]
async fn a_batch_answers_each_request_in_order_and_isolates_bad_ones() {
    let state = state(true);
    let bad = r#"{"user_id":"u","event":{"transaction_amount":1,"country":"XX","device":"ios","event_ts":"2024-03-01T12:00:00Z"}}"#;
    let body = format!(r#"{{"requests":[{QUICKSTART},{bad},{CURL_EXAMPLE}]}}"#);
    let (status, json) = call(&state, "POST", "/v1/predict/batch", &body).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let results = json["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["user_id"], "user-42");
    assert_eq!(results[1]["error"]["code"], "invalid_input");
    assert_eq!(results[1]["error"]["field"], "requests[1].event.country");
    assert_eq!(results[2]["user_id"], "user-123");
    let too_many = format!(r#"{{"requests":[{}]}}"#, vec!["{}"; 1001].join(","));
    let (status, json) = call(&state, "POST", "/v1/predict/batch", &too_many).await;
    assert_eq!(
        (status, json["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("requests"))
    );
}

#[tokio::test]
async fn a_challenger_answers_its_sticky_share_and_is_counted_as_canary() {
    let state = state(true);
    state.swap_challenger(Some(model(2, &Config::fraud_default())));
    let body = |user: &str| {
        format!(
            r#"{{"user_id":"{user}","event":{{"transaction_amount":50,"country":"US","device":"ios","event_ts":"2024-03-01T12:00:00Z"}}}}"#
        )
    };
    // user-00042 sits at 0.489 of the hash range, user-123 at 0.986.
    state.set_canary_ratio(0.5);
    for _ in 0..3 {
        let (_, json) = call(&state, "POST", "/predict", &body("user-00042")).await;
        assert_eq!(
            (json["canary_variant"].as_str(), json["model_version"].as_str()),
            (Some("canary"), Some("2"))
        );
        let (_, json) = call(&state, "POST", "/predict", &body("user-123")).await;
        assert_eq!(
            (json["canary_variant"].as_str(), json["model_version"].as_str()),
            (Some("baseline"), Some("1"))
        );
    }
    state.set_canary_ratio(0.0);
    let (_, json) = call(&state, "POST", "/predict", &body("user-00042")).await;
    assert_eq!(json["canary_variant"], "baseline");
    let (_, rollout) = call(&state, "GET", "/v1/rollout", "").await;
    assert_eq!(
        (rollout["champion"].as_u64(), rollout["challenger"].as_u64()),
        (Some(1), Some(2))
    );
    let (_, metrics) = call(&state, "GET", "/metrics", "").await;
    let text = metrics.as_str().unwrap();
    assert!(
        text.lines()
            .any(|l| l == "serving_app_requests_total{model_variant=\"canary\"} 3"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l == "serving_app_requests_total{model_variant=\"baseline\"} 4"),
        "{text}"
    );
    // Without a challenger nobody is on the canary, whatever the ratio.
    state.swap_challenger(None);
    state.set_canary_ratio(1.0);
    let (_, json) = call(&state, "POST", "/predict", &body("user-00042")).await;
    assert_eq!(json["canary_variant"], "baseline");
}

/// A state wired to a real SQLite registry holding versions 1 and 2, 1 as champion.
async fn state_with_registry(dir: &std::path::Path) -> Arc<AppState> {
    use driftline_registry::{ArtifactStore, NewVersion, Registry, SqliteOptions, SqliteRegistry};
    let config = Config::fraud_default();
    let registry: Arc<dyn Registry> = Arc::new(
        SqliteRegistry::open(&dir.join("registry.db"), &SqliteOptions::default())
            .await
            .unwrap(),
    );
    let artifacts = ArtifactStore::local(&dir.join("artifacts")).unwrap();
    for version in [1, 2, 3] {
        // Version 3 is broken: trained on inverted labels.
        let loaded = model_with(version, &config, version == 3);
        let artifact = artifacts.put("fraud", loaded.bundle.to_bytes()).await.unwrap();
        registry
            .register(NewVersion {
                model: "fraud".into(),
                status: VersionStatus::Registered,
                artifact,
                card: loaded.version.card.clone(),
                lineage: loaded.version.lineage.clone(),
                tags: Default::default(),
                reason: "test".into(),
                actor: "test".into(),
            })
            .await
            .unwrap();
    }
    registry
        .set_alias("fraud", "champion", 1, "test", "test")
        .await
        .unwrap();
    let state = state(false);
    let control = crate::models::Control {
        registry,
        artifacts,
        model: "fraud".into(),
    };
    crate::models::reload(&state, &control).await;
    state.control.set(control).ok().unwrap();
    let sink = crate::ingest::LogSink::new(dir.join("log"), driftline_stream::log::LogConfig::default());
    state.log.set(sink).ok().unwrap();
    state
}

#[tokio::test]
async fn the_rollout_api_starts_promotes_and_rolls_back_through_the_registry() {
    let dir = tempfile::tempdir().unwrap();
    let state = state_with_registry(dir.path()).await;
    let (_, json) = call(&state, "GET", "/v1/rollout", "").await;
    assert_eq!(
        (json["champion"].as_u64(), json["challenger"].as_u64()),
        (Some(1), None)
    );

    let (status, json) = call(
        &state,
        "POST",
        "/v1/rollout",
        r#"{"action":"start","version":2,"ratio":0.5}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(
        (json["challenger"].as_u64(), json["canary_ratio"].as_f64()),
        (Some(2), Some(0.5))
    );

    let (status, json) = call(
        &state,
        "POST",
        "/v1/rollout",
        r#"{"action":"rollback","reason":"p95 too high"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(
        (json["challenger"].as_u64(), json["canary_ratio"].as_f64()),
        (None, Some(0.0))
    );

    call(
        &state,
        "POST",
        "/v1/rollout",
        r#"{"action":"start","version":2,"ratio":0.2}"#,
    )
    .await;
    let (_, json) = call(&state, "POST", "/v1/rollout", r#"{"action":"promote"}"#).await;
    assert_eq!(
        (json["champion"].as_u64(), json["challenger"].as_u64()),
        (Some(2), None)
    );
    let (_, predicted) = call(&state, "POST", "/predict", QUICKSTART).await;
    assert_eq!(predicted["model_version"], "2");

    // No challenger now: rollback puts the previous champion back.
    let (_, json) = call(&state, "POST", "/v1/rollout", r#"{"action":"rollback"}"#).await;
    assert_eq!(json["champion"].as_u64(), Some(1));

    let cases = [
        (
            r#"{"action":"start","version":9}"#,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            r#"{"action":"set_ratio","ratio":1.5}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        ),
        (r#"{"action":"promote"}"#, StatusCode::CONFLICT, "conflict"),
        (
            r#"{"action":"launch"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "malformed_json",
        ),
    ];
    for (body, status, code) in cases {
        let (got, json) = call(&state, "POST", "/v1/rollout", body).await;
        assert_eq!(
            (got, json["code"].as_str()),
            (status, Some(code)),
            "{body}: {json}"
        );
    }
}

#[tokio::test]
async fn admin_endpoints_need_the_configured_bearer_token() {
    let dir = tempfile::tempdir().unwrap();
    let mut state = Arc::into_inner(state_with_registry(dir.path()).await).unwrap();
    state.admin_token = Some("s3cret".into());
    let state = Arc::new(state);
    let body = r#"{"action":"set_ratio","ratio":0.3}"#;
    let (status, json) = call(&state, "POST", "/v1/rollout", body).await;
    assert_eq!(
        (status, json["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized"))
    );
    let request = Request::builder()
        .method("POST")
        .uri("/v1/rollout")
        .header("authorization", "Bearer s3cret")
        .body(Body::from(body))
        .unwrap();
    let response = app(state.clone()).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(state.canary_ratio(), 0.3);
    // Reading needs no token.
    let (status, _) = call(&state, "GET", "/v1/rollout", "").await;
    assert_eq!(status, StatusCode::OK);
}

async fn drive_rollout_until_it_ends(state: &Arc<AppState>, start: &str) -> serde_json::Value {
    let (status, json) = call(state, "POST", "/v1/rollout", start).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    for round in 0..400 {
        for user in 0..20 {
            let amount = (round * 7 + user * 13) % 1000;
            let body = format!(
                r#"{{"user_id":"user-{user:03}","event":{{"transaction_amount":{amount},"country":"US","device":"ios","event_ts":"2024-03-01T12:00:00Z"}}}}"#
            );
            call(state, "POST", "/predict", &body).await;
        }
        let (_, rollout) = call(state, "GET", "/v1/rollout", "").await;
        if !matches!(rollout["controller"]["state"].as_str(), Some("running")) {
            return rollout;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the rollout did not end");
}

const FAST_PLAN: &str =
    r#""plan":{"steps":[0.5,1.0],"interval_seconds":0.05,"min_requests":20,"failed_checks_to_rollback":2}"#;

#[tokio::test]
async fn a_challenger_that_disagrees_with_the_champion_is_rolled_back_automatically() {
    let dir = tempfile::tempdir().unwrap();
    let state = state_with_registry(dir.path()).await;
    let rollout = drive_rollout_until_it_ends(
        &state,
        &format!(r#"{{"action":"start","version":3,{FAST_PLAN}}}"#),
    )
    .await;
    assert_eq!(rollout["controller"]["state"], "rolled_back", "{rollout}");
    let reason = rollout["controller"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("decisions differ from the champion's"),
        "{reason}"
    );
    assert_eq!(
        (rollout["champion"].as_u64(), rollout["challenger"].as_u64()),
        (Some(1), None)
    );
    assert_eq!(state.canary_ratio(), 0.0);
    let control = state.control.get().unwrap();
    let audit = control.registry.audit(Some("fraud"), 1).await.unwrap();
    assert_eq!(audit[0].actor, "driftline rollout controller");
    assert!(
        audit[0].reason.starts_with("automatic rollback of v3"),
        "{}",
        audit[0].reason
    );
    let (_, metrics) = call(&state, "GET", "/metrics", "").await;
    let text = metrics.as_str().unwrap();
    assert!(text.lines().any(|l| l == "driftline_rollbacks_total 1"), "{text}");
    assert!(text.lines().any(|l| l == "driftline_rollout_state 3"), "{text}");
}

#[tokio::test]
async fn a_challenger_that_passes_every_step_is_promoted() {
    let dir = tempfile::tempdir().unwrap();
    let state = state_with_registry(dir.path()).await;
    let rollout = drive_rollout_until_it_ends(
        &state,
        &format!(r#"{{"action":"start","version":2,{FAST_PLAN}}}"#),
    )
    .await;
    assert_eq!(rollout["controller"]["state"], "promoted", "{rollout}");
    assert_eq!(
        (rollout["champion"].as_u64(), rollout["challenger"].as_u64()),
        (Some(2), None)
    );
    let (_, predicted) = call(&state, "POST", "/predict", QUICKSTART).await;
    assert_eq!(
        (
            predicted["model_version"].as_str(),
            predicted["canary_variant"].as_str()
        ),
        (Some("2"), Some("baseline"))
    );
}

#[tokio::test]
async fn a_shadow_scores_copies_off_the_response_path_and_logs_every_pair() {
    let dir = tempfile::tempdir().unwrap();
    let state = state_with_registry(dir.path()).await;
    let control = state.control.get().unwrap().clone();
    control
        .registry
        .set_alias("fraud", "shadow", 3, "shadow the broken one", "test")
        .await
        .unwrap();
    let mut state = Arc::into_inner(state).unwrap();
    state.shadow_enabled = true;
    let state = Arc::new(state);
    crate::models::reload(&state, &control).await;
    let log = dir.path().join("shadow.jsonl");
    state
        .shadow
        .set(crate::shadow::Shadow::start(state.clone(), log.clone()))
        .ok()
        .unwrap();
    for i in 0..50 {
        let body = format!(
            r#"{{"user_id":"user-{i}","event":{{"transaction_amount":{},"country":"US","device":"ios","event_ts":"2024-03-01T12:00:00Z"}}}}"#,
            i * 20
        );
        let (status, json) = call(&state, "POST", "/predict", &body).await;
        assert_eq!(
            (status, json["model_version"].as_str()),
            (StatusCode::OK, Some("1")),
            "the primary answers"
        );
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while state
        .shadow_metrics
        .scored
        .load(std::sync::atomic::Ordering::Relaxed)
        < 50
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the shadow did not score every copy"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let (_, metrics) = call(&state, "GET", "/metrics", "").await;
    let text = metrics.as_str().unwrap();
    assert!(
        text.lines().any(|l| l == "driftline_shadow_scored_total 50"),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l == "driftline_shadow_dropped_total 0"),
        "{text}"
    );
    // Flushed once the queue is empty.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let report = loop {
        let report = crate::shadow::report(&log).unwrap();
        if report.comparisons.first().is_some_and(|c| c.pairs == 50) || std::time::Instant::now() > deadline {
            break report;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let c = &report.comparisons[0];
    assert_eq!((c.primary_version, c.shadow_version, c.pairs), (1, 3, 50));
    assert!(c.agreement_rate < 0.9, "an inverted model disagrees often: {c:?}");
    assert!(c.max_abs_score_difference > 0.5, "{c:?}");
}

#[tokio::test]
async fn the_openapi_document_lists_exactly_the_routes_and_every_route_answers() {
    let dir = tempfile::tempdir().unwrap();
    let state = state_with_registry(dir.path()).await;
    let (status, doc) = call(&state, "GET", "/openapi.json", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented: Vec<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.clone(), path.clone()))
        })
        .collect();
    documented.sort();
    let mut routes: Vec<(String, String)> = crate::openapi::ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    routes.sort();
    assert_eq!(documented, routes);
    for (method, path) in crate::openapi::ROUTES {
        let (status, json) = call(&state, &method.to_uppercase(), path, "{}").await;
        assert!(
            status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}: {status} {json}"
        );
    }
    // Every documented error code is one the server can produce, and the example is valid.
    let codes = doc["components"]["schemas"]["Error"]["properties"]["code"]["enum"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(codes, 9);
    let example =
        doc["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["example"].to_string();
    let (status, _) = call(&state, "POST", "/predict", &example).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn the_audit_log_is_served_newest_first_with_a_checked_limit() {
    let dir = tempfile::tempdir().unwrap();
    let state = state_with_registry(dir.path()).await;
    let (status, json) = call(&state, "GET", "/v1/audit?limit=2", "").await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let entries = json.as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["action"], "alias_set");
    let (status, json) = call(&state, "GET", "/v1/audit?limit=0", "").await;
    assert_eq!(
        (status, json["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("limit"))
    );
    let (status, _) = call(&state, "GET", "/v1/audit?limit=abc", "").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

fn log_records(dir: &std::path::Path) -> Vec<String> {
    let Ok(mut reader) = driftline_stream::log::LogReader::open(&dir.join("log")) else {
        return Vec::new();
    };
    let mut batch = driftline_stream::log::RecordBatch::new();
    let mut out = Vec::new();
    while reader.read_into(100, &mut batch).unwrap() > 0 {
        out.extend(
            batch
                .iter()
                .map(|r| String::from_utf8(r.payload.to_vec()).unwrap()),
        );
    }
    out
}

#[tokio::test]
async fn http_ingest_appends_valid_events_and_labels_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = state_with_registry(dir.path()).await;
    let event = |id: &str, amount: f64| {
        format!(
            r#"{{"event_id":"{id}","user_id":"user-7","transaction_amount":{amount},"country":"US","device":"web","event_ts":"2024-03-01T12:00:00Z"}}"#
        )
    };
    let (status, json) = call(&state, "POST", "/v1/events", &event("evt-0000000001", 10.0)).await;
    assert_eq!(
        (status, json["accepted"].as_u64()),
        (StatusCode::ACCEPTED, Some(1)),
        "{json}"
    );
    let batch = format!(
        r#"{{"events":[{},{}]}}"#,
        event("evt-0000000002", 20.0),
        event("evt-0000000003", 30.0)
    );
    let (status, json) = call(&state, "POST", "/v1/events", &batch).await;
    assert_eq!(
        (status, json["first_offset"].as_u64()),
        (StatusCode::ACCEPTED, Some(1)),
        "{json}"
    );

    // One bad record refuses the whole batch, naming it by index.
    let bad = format!(
        r#"{{"events":[{},{}]}}"#,
        event("evt-0000000004", 40.0),
        event("evt-0000000005", -1.0)
    );
    let (status, json) = call(&state, "POST", "/v1/events", &bad).await;
    assert_eq!(
        (status, json["field"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("events[1].transaction_amount")
        ),
        "{json}"
    );
    let (status, json) = call(
        &state,
        "POST",
        "/v1/events",
        r#"{"event_id":"evt-0000000001","label":1}"#,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a label is not an event: {json}"
    );

    let (status, _) = call(
        &state,
        "POST",
        "/v1/feedback",
        r#"{"labels":[{"event_id":"evt-0000000001","label":1}]}"#,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, json) = call(
        &state,
        "POST",
        "/v1/feedback",
        r#"{"event_id":"evt-0000000002","label":7}"#,
    )
    .await;
    assert_eq!(
        (status, json["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("label")),
        "{json}"
    );

    let records = log_records(dir.path());
    assert_eq!(records.len(), 4, "{records:?}");
    assert_eq!(
        records[0],
        event("evt-0000000001", 10.0),
        "the bytes received, as received"
    );
    assert_eq!(records[3], r#"{"event_id":"evt-0000000001","label":1}"#);
    let (_, metrics) = call(&state, "GET", "/metrics", "").await;
    assert!(
        metrics
            .as_str()
            .unwrap()
            .lines()
            .any(|l| l == "driftline_http_ingested_records_total 4")
    );
}

#[tokio::test]
async fn a_challenger_worse_on_labelled_feedback_is_rolled_back_on_auc() {
    let dir = tempfile::tempdir().unwrap();
    let state = state_with_registry(dir.path()).await;
    // Disagreement and latency gates off: only quality can fail the broken version 3.
    let start = r#"{"action":"start","version":3,"plan":{"steps":[0.5,1.0],"interval_seconds":0.05,"min_requests":200,"max_disagreement":1.0,"max_p95_seconds":10.0,"min_labels":20,"failed_checks_to_rollback":2}}"#;
    let (status, json) = call(&state, "POST", "/v1/rollout", start).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    for round in 0..400 {
        let mut labels = Vec::new();
        for user in 0..20 {
            let amount = (round * 37 + user * 53) % 1000;
            let body = format!(
                r#"{{"user_id":"user-{user:03}","event":{{"transaction_amount":{amount},"country":"US","device":"ios","event_ts":"2024-03-01T12:00:00Z"}}}}"#
            );
            let (_, predicted) = call(&state, "POST", "/predict", &body).await;
            // The truth the good models learned: large amounts are fraud.
            labels.push(format!(
                r#"{{"event_id":"{}","label":{}}}"#,
                predicted["event_id"].as_str().unwrap(),
                u8::from(amount >= 800)
            ));
        }
        let (status, json) = call(
            &state,
            "POST",
            "/v1/feedback",
            &format!(r#"{{"labels":[{}]}}"#, labels.join(",")),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{json}");
        let (_, rollout) = call(&state, "GET", "/v1/rollout", "").await;
        if rollout["controller"]["state"] != "running" {
            assert_eq!(rollout["controller"]["state"], "rolled_back", "{rollout}");
            let reason = rollout["controller"]["reason"].as_str().unwrap();
            assert!(reason.contains("ROC AUC on labelled feedback"), "{reason}");
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the rollout did not end");
}
