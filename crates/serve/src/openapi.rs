//! The OpenAPI 3.1 document of the HTTP API, served at `GET /openapi.json`.
//!
//! Key decision: written by hand as data, next to [`ROUTES`], the list of every route the
//! router serves; a test checks that the two agree and that every listed route answers, so
//! the document cannot silently drift from the server.

use serde_json::{Value, json};

/// Every (method, path) the router serves.
pub const ROUTES: [(&str, &str); 16] = [
    ("get", "/v1/drift"),
    ("post", "/v1/retrain"),
    ("get", "/"),
    ("get", "/v1/traffic"),
    ("post", "/v1/events"),
    ("post", "/v1/feedback"),
    ("post", "/predict"),
    ("post", "/v1/predict/batch"),
    ("get", "/health"),
    ("get", "/ready"),
    ("get", "/metrics"),
    ("get", "/v1/models"),
    ("get", "/v1/rollout"),
    ("post", "/v1/rollout"),
    ("get", "/v1/audit"),
    ("get", "/openapi.json"),
];

fn error_response(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

fn json_response(description: &str, schema: Value) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema}}})
}

/// The W3C `traceparent` a prediction joins; every response names its span in one too.
fn traceparent_parameter() -> Value {
    json!({"name": "traceparent", "in": "header", "required": false,
        "description": "W3C Trace Context of the caller: the prediction's span becomes its child and `trace_id` is its trace. Malformed values are ignored (a new trace). The response carries a `traceparent` naming the prediction's span.",
        "schema": {"type": "string", "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}"}})
}

fn traffic_schema() -> Value {
    let seconds = json!({"type": ["number", "null"]});
    json!({"type": "object", "properties": {
        "window_seconds": {"type": "number"},
        "variants": {"type": "array", "items": {"type": "object", "properties": {
            "variant": {"type": "string", "enum": ["baseline", "canary"]},
            "requests": {"type": "integer"}, "errors": {"type": "integer"},
            "p50_seconds": seconds, "p95_seconds": seconds, "p99_seconds": seconds,
            "live_roc_auc": {"type": ["number", "null"]}, "live_labelled": {"type": "integer"}}}}}})
}

/// The document.
pub fn document() -> Value {
    let quickstart = json!({"user_id": "user-42", "event": {"transaction_amount": 83.2, "country": "DE", "device": "ios", "event_ts": "2024-03-01T12:00:00Z"}});
    json!({
        "openapi": "3.1.0",
        "info": {"title": "driftline", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Predictions with online features, canary and shadow models, rollout control."},
        "paths": {
            "/predict": {"post": {
                "summary": "Score one event of a user with the champion (or the canary).",
                "parameters": [traceparent_parameter()],
                "requestBody": {"required": true, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/PredictRequest"}, "example": quickstart}}},
                "responses": {
                    "200": json_response("The prediction.", json!({"$ref": "#/components/schemas/PredictResponse"})),
                    "413": error_response("The body is larger than 64 KiB."),
                    "422": error_response("Malformed JSON or invalid fields; `field` names the first."),
                    "503": error_response("No model is serving yet.")}}},
            "/v1/predict/batch": {"post": {
                "summary": "Score up to 1,000 requests; each is answered or refused on its own.",
                "parameters": [traceparent_parameter()],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["requests"],
                    "properties": {"requests": {"type": "array", "maxItems": 1000,
                        "items": {"$ref": "#/components/schemas/PredictRequest"}}}}}}},
                "responses": {
                    "200": json_response("One result per request, in order: a prediction or {error}.",
                        json!({"type": "object", "properties": {"results": {"type": "array"}}})),
                    "422": error_response("Malformed JSON or more than 1,000 requests."),
                    "503": error_response("No model is serving yet.")}}},
            "/health": {"get": {"summary": "Liveness.", "responses": {"200": json_response("Alive.", json!({"type": "object"}))}}},
            "/ready": {"get": {"summary": "Readiness: a model is serving.", "responses": {
                "200": json_response("Ready.", json!({"type": "object"})),
                "503": json_response("No model yet.", json!({"type": "object"}))}}},
            "/metrics": {"get": {"summary": "Prometheus text exposition.", "responses": {
                "200": {"description": "Metrics.", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
            "/v1/models": {"get": {"summary": "The models loaded: champion, challenger (during a rollout) and shadow, with their cards.", "responses": {
                "200": json_response("The loaded models; challenger and shadow are null when absent.", json!({"type": "object",
                    "required": ["champion", "challenger", "shadow"]})),
                "503": error_response("No model is serving yet.")}}},
            "/v1/rollout": {
                "get": {"summary": "Champion, challenger, canary share and the controller's state.",
                        "responses": {"200": json_response("The rollout.", json!({"$ref": "#/components/schemas/Rollout"}))}},
                "post": {"summary": "Start, steer, promote or roll back a rollout (admin).",
                         "security": [{"bearer": []}],
                         "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RolloutAction"}}}},
                         "responses": {
                            "200": json_response("The rollout after the action.", json!({"$ref": "#/components/schemas/Rollout"})),
                            "401": error_response("The admin token is configured and was not given."),
                            "404": error_response("Unknown version."),
                            "409": error_response("The registry refused (rejected version, nothing to roll back, no challenger)."),
                            "422": error_response("Malformed action or an out-of-range value.")}}},
            "/v1/audit": {"get": {"summary": "The registry's audit log, newest first.",
                "parameters": [{"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50}}],
                "responses": {"200": json_response("Audit entries.", json!({"type": "array"})),
                              "422": error_response("A limit out of range.")}}},
            "/v1/events": {"post": {
                "summary": "Append events to the event log (admin): one event, or {\"events\": [...]} (up to 10,000).",
                "security": [{"bearer": []}],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object"}}}},
                "responses": {
                    "202": json_response("Durably appended; ingest applies them.", json!({"$ref": "#/components/schemas/Appended"})),
                    "401": error_response("The admin token is configured and was not given."),
                    "413": error_response("The body is larger than 16 MiB."),
                    "422": error_response("A record is invalid; nothing was appended. Each bad field is named with its index."),
                    "503": error_response("Another producer holds the event log.")}}},
            "/v1/feedback": {"post": {
                "summary": "Append delayed labels (admin): {\"event_id\", \"label\"}, or {\"labels\": [...]}.",
                "security": [{"bearer": []}],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object"}}}},
                "responses": {
                    "202": json_response("Durably appended.", json!({"$ref": "#/components/schemas/Appended"})),
                    "401": error_response("The admin token is configured and was not given."),
                    "422": error_response("A label is invalid; nothing was appended."),
                    "503": error_response("Another producer holds the event log.")}}},
            "/": {"get": {"summary": "The dashboard: one self-contained HTML page polling this API.", "responses": {
                "200": {"description": "The page.", "content": {"text/html": {"schema": {"type": "string"}}}}}}},
            "/v1/drift": {"get": {"summary": "The live monitors: concept-drift detectors (ADWIN, Page-Hinkley, DDM) on the champion's labelled errors, and the retrainer's state and history.",
                "responses": {"200": json_response("Monitor state.", json!({"type": "object", "properties": {
                    "concept": {"type": "object"}, "retrain": {"type": ["object", "null"]}}}))}}},
            "/v1/retrain": {"post": {
                "summary": "Ask for a retraining now (admin): trained on the most recent labelled events, judged by the gates, rolled out when it passes.",
                "security": [{"bearer": []}],
                "requestBody": {"required": false, "content": {"application/json": {"schema": {"type": "object", "properties": {"reason": {"type": "string"}}}}}},
                "responses": {
                    "202": json_response("Queued; the retrainer's status.", json!({"type": "object"})),
                    "401": error_response("The admin token is configured and was not given."),
                    "409": error_response("A retraining is already running."),
                    "422": error_response("Malformed body.")}}},
            "/v1/traffic": {"get": {"summary": "Per variant: requests and errors since start, latency quantiles over the last minute, live ROC AUC on joined labels.",
                "responses": {"200": json_response("Traffic.", traffic_schema())}}},
            "/openapi.json": {"get": {"summary": "This document.", "responses": {"200": json_response("OpenAPI 3.1.", json!({"type": "object"}))}}}
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "PredictRequest": {"type": "object", "required": ["user_id", "event"], "properties": {
                    "user_id": {"type": "string"},
                    "event": {"type": "object", "description": "The contract's fields: transaction_amount (0..5000), country, device, event_ts (RFC 3339); event_id, user_id and label optional.",
                              "properties": {
                                  "event_id": {"type": "string"}, "user_id": {"type": "string"},
                                  "transaction_amount": {"type": "number", "minimum": 0, "maximum": 5000},
                                  "country": {"type": "string", "enum": ["US", "CA", "GB", "DE", "FR", "IN", "BR"]},
                                  "device": {"type": "string", "enum": ["ios", "android", "web"]},
                                  "event_ts": {"type": "string", "format": "date-time"},
                                  "label": {"type": "integer", "enum": [0, 1]}}}}},
                "PredictResponse": {"type": "object",
                    "required": ["user_id", "model_version", "score", "decision", "canary_variant", "trace_id", "event_id", "features"],
                    "properties": {
                        "user_id": {"type": "string"}, "model_version": {"type": "string"},
                        "score": {"type": "number", "minimum": 0, "maximum": 1},
                        "decision": {"type": "string", "enum": ["approve", "decline"]},
                        "canary_variant": {"type": "string", "enum": ["baseline", "canary"]},
                        "trace_id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
                        "event_id": {"type": "string"},
                        "features": {"type": "string", "enum": ["online", "request_only"],
                            "description": "online: computed from the user's state in the online store. request_only: the store (Redis) did not answer within redis.timeout_ms or is down, so the vector holds the request's own fields and no history (counted in driftline_online_store_degraded_total); the answer is still a 200."}}},
                "Error": {"type": "object", "required": ["code", "message"], "properties": {
                    "code": {"type": "string", "enum": ["malformed_json", "invalid_input", "body_too_large", "no_model", "not_found", "conflict", "unauthorized", "busy", "internal"]},
                    "message": {"type": "string"},
                    "field": {"type": ["string", "null"]},
                    "errors": {"type": "array", "items": {"type": "object", "properties": {"field": {"type": "string"}, "reason": {"type": "string"}}}}}},
                "Appended": {"type": "object", "required": ["accepted", "first_offset"], "properties": {
                    "accepted": {"type": "integer"}, "first_offset": {"type": "integer"}}},
                "Rollout": {"type": "object", "properties": {
                    "champion": {"type": ["integer", "null"]}, "challenger": {"type": ["integer", "null"]},
                    "canary_ratio": {"type": "number"}, "assignment": {"type": "string", "enum": ["sticky", "random"]},
                    "controller": {"type": "object"}}},
                "RolloutAction": {"oneOf": [
                    {"type": "object", "required": ["action", "version"], "properties": {
                        "action": {"const": "start"}, "version": {"type": "integer"},
                        "ratio": {"type": "number", "minimum": 0, "maximum": 1}, "plan": {"type": "object"}, "reason": {"type": "string"}}},
                    {"type": "object", "required": ["action", "ratio"], "properties": {"action": {"const": "set_ratio"}, "ratio": {"type": "number", "minimum": 0, "maximum": 1}}},
                    {"type": "object", "required": ["action"], "properties": {"action": {"const": "promote"}, "reason": {"type": "string"}}},
                    {"type": "object", "required": ["action"], "properties": {"action": {"const": "rollback"}, "reason": {"type": "string"}}}]}
            }
        }
    })
}
