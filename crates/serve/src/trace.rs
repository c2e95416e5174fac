//! W3C trace context for predictions: the request's `traceparent` (and `tracestate`), the
//! span that joins it, and the trace id a prediction answers with.
//!
//! Key decision: the ids come from the span when an OpenTelemetry layer records it (so the
//! exported spans and the response agree), and otherwise from the request's `traceparent`
//! or a fresh random trace id, so every response carries a valid W3C trace id that joins
//! the caller's trace whether export is on or off. With export off the spans are disabled
//! at their callsites, and all this costs a header parse and a random number. A malformed
//! header is ignored (a new trace starts), never refused: tracing must not fail a request.
//! A request's steps get spans only when they can be recorded ([`RequestTrace::step`]):
//! with export off, and for the unsampled share of traces with export on, no step span is
//! built at all, so sampling 1% costs about 1% of tracing everything plus one span.

use std::str::FromStr;

use axum::http::{HeaderMap, HeaderValue};
use opentelemetry::Context;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The request header carrying the caller's trace and span (W3C Trace Context).
pub const TRACEPARENT: &str = "traceparent";
/// The vendor-specific companion of `traceparent`, passed on unchanged.
pub const TRACESTATE: &str = "tracestate";

/// Where a request sits in a distributed trace: its trace and the span that answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceIds {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    /// Whether the trace is being recorded (the `sampled` flag passed on downstream).
    pub sampled: bool,
}

impl TraceIds {
    /// The trace id as 32 lowercase hex digits, as the API returns it.
    pub fn trace_hex(&self) -> String {
        format!("{:032x}", self.trace_id)
    }

    /// A `traceparent` value naming this request's span, for the response.
    pub fn traceparent(&self) -> HeaderValue {
        let flags = if self.sampled { "01" } else { "00" };
        let value = format!("00-{:032x}-{:016x}-{flags}", self.trace_id, self.span_id);
        HeaderValue::from_str(&value).expect("hex digits and dashes are a valid header value")
    }
}

/// A request's place in its trace, and whether its steps get spans of their own.
#[derive(Debug, Clone, Copy)]
pub struct RequestTrace {
    pub ids: TraceIds,
    /// The request's span is live (some layer records or logs it) and, when traces record
    /// it, sampled: only then are its steps worth a span each.
    steps_traced: bool,
}

impl RequestTrace {
    /// Makes `span` a child of the request's caller (when it sent a valid `traceparent`)
    /// and decides whether its steps are traced.
    pub fn join(span: &tracing::Span, headers: &HeaderMap) -> Self {
        let (ids, recorded) = join_recorded(span, headers);
        RequestTrace {
            ids,
            steps_traced: !span.is_disabled() && (ids.sampled || !recorded),
        }
    }

    /// The span `make` builds, when the request's steps are traced; else a disabled span,
    /// without building it (no attributes, no bookkeeping in the OpenTelemetry layer).
    pub fn step(&self, make: impl FnOnce() -> tracing::Span) -> tracing::Span {
        if self.steps_traced {
            make()
        } else {
            tracing::Span::none()
        }
    }

    /// Whether the request's steps (and the annotations of its span) are recorded.
    pub fn steps_traced(&self) -> bool {
        self.steps_traced
    }
}

/// Makes `span` a child of the request's caller (when it sent a valid `traceparent`);
/// returns the ids the request answers with, and whether an OpenTelemetry layer records
/// `span` (so its ids are the span's).
fn join_recorded(span: &tracing::Span, headers: &HeaderMap) -> (TraceIds, bool) {
    let parent = headers
        .get(TRACEPARENT)
        .and_then(|value| value.to_str().ok())
        .and_then(parse_traceparent);
    if !span.is_disabled() {
        if let Some(parent) = &parent {
            let state = headers
                .get(TRACESTATE)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| TraceState::from_str(value).ok())
                .unwrap_or_default();
            let remote = SpanContext::new(
                parent.trace_id,
                parent.span_id,
                TraceFlags::new(u8::from(parent.sampled)),
                true,
                state,
            );
            // Fails only without an OpenTelemetry layer: then the fallback below applies.
            let _ = span.set_parent(Context::new().with_remote_span_context(remote));
        }
        if let Some(recorded) = recorded_ids(span) {
            return (recorded, true);
        }
    }
    let ids = match parent {
        Some(parent) => TraceIds {
            span_id: random_span_id(),
            ..parent
        },
        None => TraceIds {
            trace_id: random_trace_id(),
            span_id: random_span_id(),
            sampled: false,
        },
    };
    (ids, false)
}

/// The ids of `span` as an OpenTelemetry layer records it; `None` without one.
pub fn recorded_ids(span: &tracing::Span) -> Option<TraceIds> {
    let context = span.context();
    let recorded = context.span().span_context().clone();
    recorded.is_valid().then(|| TraceIds {
        trace_id: recorded.trace_id(),
        span_id: recorded.span_id(),
        sampled: recorded.is_sampled(),
    })
}

/// The OpenTelemetry context of `span`, to parent work that outlives it (the shadow's
/// scoring); empty when nothing records the span.
pub fn context_of(span: &tracing::Span) -> Context {
    if span.is_disabled() {
        Context::new()
    } else {
        span.context()
    }
}

/// Parents `span` on `context` when it holds a span (see [`context_of`]).
pub fn continue_in(span: &tracing::Span, context: Context) {
    if context.has_active_span() && !span.is_disabled() {
        let _ = span.set_parent(context);
    }
}

/// The caller's ids from a `traceparent` value: version 00 exactly, or a later version's
/// first four fields; `None` for anything malformed (upper-case hex, all-zero ids,
/// version ff, wrong lengths), as the W3C Trace Context recommendation requires.
pub fn parse_traceparent(value: &str) -> Option<TraceIds> {
    let value = value.trim_matches([' ', '\t']);
    let fields = value.get(..55)?;
    let rest = &value[55..];
    let mut parts = fields.split('-');
    let (version, trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version.len() != 2 || trace.len() != 32 || span.len() != 16 || flags.len() != 2 {
        return None;
    }
    let version = lower_hex(version)? as u8;
    let well_ended = match version {
        0xff => false,
        0 => rest.is_empty(),
        _ => rest.is_empty() || rest.starts_with('-'),
    };
    let trace_id = lower_hex(trace)?;
    let span_id = lower_hex(span)? as u64;
    let flags = lower_hex(flags)? as u8;
    (well_ended && trace_id != 0 && span_id != 0).then(|| TraceIds {
        trace_id: TraceId::from(trace_id),
        span_id: SpanId::from(span_id),
        sampled: flags & 1 == 1,
    })
}

/// The value of lowercase hex digits (at most 32 of them); `None` for any other character.
fn lower_hex(digits: &str) -> Option<u128> {
    digits.bytes().try_fold(0u128, |value, byte| {
        let digit = match byte {
            b'0'..=b'9' => byte - b'0',
            b'a'..=b'f' => byte - b'a' + 10,
            _ => return None,
        };
        Some(value << 4 | u128::from(digit))
    })
}

fn random_trace_id() -> TraceId {
    loop {
        let id = rand::random::<u128>();
        if id != 0 {
            return TraceId::from(id);
        }
    }
}

fn random_span_id() -> SpanId {
    loop {
        let id = rand::random::<u64>();
        if id != 0 {
            return SpanId::from(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const SPAN: &str = "00f067aa0ba902b7";

    #[test]
    fn a_w3c_traceparent_parses_with_its_sampled_flag() {
        let ids = parse_traceparent(&format!("00-{TRACE}-{SPAN}-01")).unwrap();
        assert_eq!(format!("{:032x}", ids.trace_id), TRACE);
        assert_eq!(format!("{:016x}", ids.span_id), SPAN);
        assert!(ids.sampled);
        let unsampled = parse_traceparent(&format!("00-{TRACE}-{SPAN}-00")).unwrap();
        assert!(!unsampled.sampled);
    }

    #[test]
    fn a_later_version_is_read_by_its_first_four_fields() {
        assert!(parse_traceparent(&format!("01-{TRACE}-{SPAN}-01-future")).is_some());
        assert!(parse_traceparent(&format!("01-{TRACE}-{SPAN}-01")).is_some());
        assert!(parse_traceparent(&format!("01-{TRACE}-{SPAN}-01x")).is_none());
    }

    #[test]
    fn malformed_traceparents_are_ignored() {
        for bad in [
            String::new(),
            "garbage".into(),
            format!("00-{TRACE}-{SPAN}-01-extra"),
            format!("ff-{TRACE}-{SPAN}-01"),
            format!("00-{}-{SPAN}-01", TRACE.to_uppercase()),
            format!("00-{}-{SPAN}-01", "0".repeat(32)),
            format!("00-{TRACE}-{}-01", "0".repeat(16)),
            format!("00-{TRACE}-{SPAN}-0g"),
            format!("00_{TRACE}_{SPAN}_01"),
            format!("00-{TRACE}1-{}-01", &SPAN[1..]),
            format!("0-{TRACE}-{SPAN}-011"),
            format!("00-{}é-{SPAN}-01", &TRACE[..30]),
        ] {
            assert_eq!(parse_traceparent(&bad), None, "{bad:?}");
        }
    }

    #[test]
    fn without_a_recording_layer_the_callers_trace_is_kept_or_a_new_one_starts() {
        let span = tracing::Span::none();
        let mut headers = HeaderMap::new();
        headers.insert(TRACEPARENT, format!("00-{TRACE}-{SPAN}-01").parse().unwrap());
        let joined = RequestTrace::join(&span, &headers).ids;
        assert_eq!(joined.trace_hex(), TRACE);
        assert_ne!(format!("{:016x}", joined.span_id), SPAN);
        assert!(joined.sampled);

        let fresh = RequestTrace::join(&span, &HeaderMap::new()).ids;
        let other = RequestTrace::join(&span, &HeaderMap::new()).ids;
        assert_ne!(fresh.trace_id, other.trace_id);
        assert_ne!(fresh.trace_id, TraceId::INVALID);
        let header = fresh.traceparent();
        let parsed = parse_traceparent(header.to_str().unwrap()).unwrap();
        assert_eq!(parsed, fresh);
    }
}
