//! `/predict` over the Redis online store, against a real Redis (`DRIFTLINE_TEST_REDIS_URL`,
//! skipped without one unless `DRIFTLINE_REQUIRE_BACKENDS=1`): the same answers as the
//! embedded store holding the same state, one `MGET` per batch, and request-only answers
//! (a 200, never a 5xx) counted in the metrics when Redis does not answer.

use std::sync::Arc;

use axum::http::StatusCode;
use driftline_core::config::{Config, RedisSettings};
use driftline_core::event::{Event, FieldValue};
use driftline_core::time::Timestamp;
use driftline_features::compute::FeatureEngine;
use driftline_features::online::{EmbeddedOnlineStore, OnlineStore};
use driftline_features::redis::testing::test_redis;
use driftline_features::redis::{RedisOnlineStore, RedisStateReader};

use crate::state::{AppState, OnlineState};
use crate::tests::{call, model};

const USERS: usize = 12;

/// Users with 0..USERS*4 events each of varied amounts, countries and devices.
fn history(config: &Config) -> EmbeddedOnlineStore {
    let store = EmbeddedOnlineStore::default();
    let mut events = Vec::new();
    for user in 0..USERS {
        for i in 0..user * 4 {
            events.push(Event {
                event_id: format!("hist-{user:03}-{i:05}"),
                entity: format!("user-{user:03}"),
                ts: Timestamp::from_unix_seconds(1_709_200_000 + (i as i64) * 3_000),
                label: None,
                values: vec![
                    FieldValue::Number(5.0 + ((user * 37 + i * 11) % 900) as f64),
                    FieldValue::Category(((user + i) % 7) as u16),
                    FieldValue::Category((i % 3) as u16),
                ],
            });
        }
    }
    let entities: Vec<&str> = events.iter().map(|e| e.entity.as_str()).collect();
    store
        .update_each(&entities, 3, &mut |i, state| {
            state.apply(&events[i], &config.features);
        })
        .unwrap();
    store
}

fn request(user: usize) -> String {
    format!(
        r#"{{"user_id":"user-{user:03}","event":{{"transaction_amount":{},"country":"GB","device":"web","event_ts":"2024-03-01T12:00:00Z"}}}}"#,
        40 + user * 13
    )
}

fn serving(config: &Config, store: OnlineState) -> Arc<AppState> {
    let state = AppState::with_store(config.contract.clone(), FeatureEngine::from_config(config), store);
    state.swap_champion(model(1, config));
    Arc::new(state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predictions_from_redis_equal_those_from_the_embedded_store_with_the_same_state() {
    let Some(redis) = test_redis() else { return };
    let config = Config::fraud_default();
    let local = history(&config);
    let names: Vec<String> = (0..USERS).map(|u| format!("user-{u:03}")).collect();
    let entities: Vec<&str> = names.iter().map(String::as_str).collect();
    let states = local.get_many(&entities).unwrap();
    let batch: Vec<(&str, &_)> = entities
        .iter()
        .zip(&states)
        .filter_map(|(e, s)| s.as_ref().map(|s| (*e, s)))
        .collect();
    RedisOnlineStore::open(&redis.settings, 1)
        .unwrap()
        .put_batch(&batch)
        .unwrap();

    let embedded = serving(&config, OnlineState::Embedded(Arc::new(local)));
    let remote = serving(
        &config,
        OnlineState::Redis(RedisStateReader::new(&redis.settings).unwrap()),
    );
    let mut scores = Vec::new();
    for user in 0..USERS {
        let (status, a) = call(&embedded, "POST", "/predict", &request(user)).await;
        assert_eq!(status, StatusCode::OK, "{a}");
        let (status, b) = call(&remote, "POST", "/predict", &request(user)).await;
        assert_eq!(status, StatusCode::OK, "{b}");
        assert_eq!(b["features"], "online", "{b}");
        assert_eq!(a["score"], b["score"], "user {user}: {a} vs {b}");
        scores.push(b["score"].as_f64().unwrap());
    }
    scores.dedup();
    assert!(
        scores.len() > USERS / 2,
        "histories make scores differ: {scores:?}"
    );

    let body = format!(
        r#"{{"requests":[{},{{"user_id":"x","event":{{"transaction_amount":-1}}}},{}]}}"#,
        request(3),
        request(USERS - 1)
    );
    let (_, a) = call(&embedded, "POST", "/v1/predict/batch", &body).await;
    let (status, b) = call(&remote, "POST", "/v1/predict/batch", &body).await;
    assert_eq!(status, StatusCode::OK, "{b}");
    for i in [0, 2] {
        assert_eq!(a["results"][i]["score"], b["results"][i]["score"], "{a} {b}");
        assert_eq!(b["results"][i]["features"], "online");
    }
    assert_eq!(b["results"][1]["error"]["code"], "invalid_input", "{b}");
    let (_, metrics) = call(&remote, "GET", "/metrics", "").await;
    let metrics = metrics.as_str().unwrap().to_string();
    assert!(metrics.contains("driftline_online_store_up 1"), "{metrics}");
    assert!(
        metrics.contains("driftline_online_store_degraded_total 0"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_answers_from_the_request_alone_and_says_so() {
    let config = Config::fraud_default();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let settings = RedisSettings {
        host: "127.0.0.1".into(),
        port,
        ..RedisSettings::default()
    };
    let remote = serving(
        &config,
        OnlineState::Redis(RedisStateReader::new(&settings).unwrap()),
    );
    let embedded = serving(
        &config,
        OnlineState::Embedded(Arc::new(EmbeddedOnlineStore::default())),
    );
    for user in 0..5 {
        let (status, json) = call(&remote, "POST", "/predict", &request(user)).await;
        assert_eq!(status, StatusCode::OK, "{json}");
        assert_eq!(json["features"], "request_only", "{json}");
        // Request-only features are those of a user with no history.
        let (_, fresh) = call(&embedded, "POST", "/predict", &request(user)).await;
        assert_eq!(json["score"], fresh["score"]);
    }
    let (status, json) = call(
        &remote,
        "POST",
        "/v1/predict/batch",
        &format!(r#"{{"requests":[{},{}]}}"#, request(1), request(2)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["results"][1]["features"], "request_only", "{json}");
    let (_, metrics) = call(&remote, "GET", "/metrics", "").await;
    let metrics = metrics.as_str().unwrap().to_string();
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("{name} missing in {metrics}"))
    };
    assert_eq!(value("driftline_online_store_degraded_total "), 7.0);
    assert_eq!(value("driftline_online_store_up "), 0.0);
    let errors = value("driftline_online_store_errors_total{op=\"get\"} ");
    assert!((1.0..=7.0).contains(&errors), "{metrics}");
    assert_eq!(
        value("serving_app_request_exceptions_total{model_variant=\"baseline\"} "),
        0.0
    );
}
