//! Contract validation: every bad field reported, coercions, ids, label records.

use super::*;

fn fraud() -> Contract {
    Contract::new(&ContractConfig::default()).unwrap()
}

fn ctx() -> ValidateContext<'static> {
    ValidateContext {
        now: Timestamp::parse_rfc3339("2024-06-01T00:00:00Z").unwrap(),
        default_entity: None,
        path_prefix: "",
        ids: IdSource::DerivedFrom(b"seed"),
    }
}

fn event(record: Record) -> Event {
    match record {
        Record::Event(e) => e,
        other => panic!("expected an event, got {other:?}"),
    }
}

#[test]
fn the_reference_quickstart_body_validates_with_the_request_user_id() {
    let body =
        br#"{"transaction_amount":83.2,"country":"DE","device":"ios","event_ts":"2024-03-01T12:00:00Z"}"#;
    let ctx = ValidateContext {
        default_entity: Some("user-42"),
        path_prefix: "event.",
        ..ctx()
    };
    let e = event(fraud().validate_json(body, &ctx).unwrap());
    assert_eq!(e.entity, "user-42");
    assert_eq!(e.values[0], FieldValue::Number(83.2));
    assert_eq!(e.values[1], FieldValue::Category(3));
    assert_eq!(e.values[2], FieldValue::Category(0));
    assert_eq!(e.label, None);
    assert_eq!(e.event_id.len(), 26, "a generated ULID");
    assert!(e.event_id.parse::<ulid::Ulid>().is_ok());
}

#[test]
fn every_bad_field_is_reported_with_its_path_in_one_error() {
    let body = br#"{"user_id":"u-1","event_id":"short","transaction_amount":6000,"country":"XX","device":7,"event_ts":"yesterday","label":2}"#;
    let err = fraud()
        .validate_json(
            body,
            &ValidateContext {
                path_prefix: "event.",
                ..ctx()
            },
        )
        .unwrap_err();
    let fields: Vec<&str> = err.errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "event.event_ts",
            "event.event_id",
            "event.label",
            "event.transaction_amount",
            "event.country",
            "event.device"
        ]
    );
    let text = err.to_string();
    assert!(text.starts_with("6 invalid fields"), "{text}");
    assert!(text.contains("6000 is above the maximum 5000"), "{text}");
    assert!(
        text.contains("'XX' is not one of US, CA, GB, DE, FR, IN, BR"),
        "{text}"
    );
}

#[test]
fn missing_required_fields_are_named() {
    let err = fraud()
        .validate_json(br#"{"user_id":"u-1"}"#, &ctx())
        .unwrap_err();
    let fields: Vec<&str> = err.errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["event_ts", "transaction_amount", "country", "device"]);
    assert!(err.errors.iter().all(|e| e.reason == "is required"));
}

#[test]
fn timestamps_beyond_the_clock_skew_are_rejected_and_within_it_accepted() {
    let at = |ts: &str| {
        format!(r#"{{"user_id":"u","transaction_amount":1,"country":"US","device":"web","event_ts":"{ts}"}}"#)
    };
    let c = fraud();
    assert!(
        c.validate_json(at("2024-06-01T00:04:59Z").as_bytes(), &ctx())
            .is_ok()
    );
    let err = c
        .validate_json(at("2024-06-01T00:05:01Z").as_bytes(), &ctx())
        .unwrap_err();
    assert_eq!(err.errors[0].field, "event_ts");
    assert!(err.errors[0].reason.contains("in the future"), "{err}");
}

#[test]
fn malformed_json_is_a_whole_record_error() {
    for bad in [&b"{\"user_id\": "[..], b"[1,2]", b"", b"{} trailing"] {
        let err = fraud().validate_json(bad, &ctx()).unwrap_err();
        assert_eq!(err.errors[0].field, "$");
        assert!(err.errors[0].reason.contains("not a valid JSON object"), "{err}");
    }
}

#[test]
fn derived_ids_are_stable_for_the_same_bytes_and_differ_otherwise() {
    let body = br#"{"user_id":"u","transaction_amount":1,"country":"US","device":"web","event_ts":"2024-03-01T00:00:00Z"}"#;
    let c = fraud();
    let a = event(c.validate_json(body, &ctx()).unwrap()).event_id;
    let b = event(c.validate_json(body, &ctx()).unwrap()).event_id;
    let other = ValidateContext {
        ids: IdSource::DerivedFrom(b"other"),
        ..ctx()
    };
    let d = event(c.validate_json(body, &other).unwrap()).event_id;
    assert_eq!(a, b);
    assert_ne!(a, d);
    assert!(a.starts_with("01HQ"), "ULID time prefix follows event time: {a}");
}

#[test]
fn a_record_with_only_an_id_and_a_label_is_a_delayed_label() {
    let r = fraud()
        .validate_json(br#"{"event_id":"01HQA7F9G4G1YJ2R4D8K2J3A5S","label":1}"#, &ctx())
        .unwrap();
    assert_eq!(
        r,
        Record::Label(LabelUpdate {
            event_id: "01HQA7F9G4G1YJ2R4D8K2J3A5S".into(),
            label: true
        })
    );
}

#[test]
fn request_and_event_entities_must_agree() {
    let body = br#"{"user_id":"user-1","transaction_amount":1,"country":"US","device":"web","event_ts":"2024-03-01T00:00:00Z"}"#;
    let ctx = ValidateContext {
        default_entity: Some("user-2"),
        path_prefix: "event.",
        ..ctx()
    };
    let err = fraud().validate_json(body, &ctx).unwrap_err();
    assert_eq!(err.errors[0].field, "event.user_id");
}

#[test]
fn text_values_as_csv_rows_carry_them_are_coerced_by_the_contract() {
    let c = fraud();
    let row = br#"{"event_id":"01HQA7F9K4K7QZ6M9X2P7N4C8","user_id":"user-042","transaction_amount":"312.77","country":"DE","device":"ios","event_ts":"2024-02-25T12:03:32Z","label":"1"}"#;
    let e = event(c.validate_json(row, &ctx()).unwrap());
    assert_eq!(e.event_id, "01HQA7F9K4K7QZ6M9X2P7N4C8");
    assert_eq!(e.values[0], FieldValue::Number(312.77));
    assert_eq!(e.label, Some(true));
    let empty_amount = br#"{"user_id":"user-042","transaction_amount":null,"country":"DE","device":"ios","event_ts":"2024-02-25T12:03:32Z"}"#;
    let err = c.validate_json(empty_amount, &ctx()).unwrap_err();
    assert_eq!(err.errors[0].field, "transaction_amount");
    let words = br#"{"user_id":"user-042","transaction_amount":"lots","country":"DE","device":"ios","event_ts":"2024-02-25T12:03:32Z"}"#;
    let err = c.validate_json(words, &ctx()).unwrap_err();
    assert_eq!(err.errors[0].reason, "must be a number, got 'lots'");
}

#[test]
fn unknown_fields_are_ignored_by_default_and_rejected_on_request() {
    let body = br#"{"user_id":"u","transaction_amount":1,"country":"US","device":"web","event_ts":"2024-03-01T00:00:00Z","extra":{"a":[1]}}"#;
    assert!(fraud().validate_json(body, &ctx()).is_ok());
    let strict = Contract::new(&ContractConfig {
        unknown_fields: UnknownFields::Reject,
        ..ContractConfig::default()
    })
    .unwrap();
    let err = strict.validate_json(body, &ctx()).unwrap_err();
    assert_eq!(err.errors[0].field, "extra");
}

#[test]
fn contract_configs_with_contradictions_are_rejected_naming_the_key() {
    let mut config = ContractConfig::default();
    config.fields[1].min = Some(1.0);
    assert!(
        Contract::new(&config)
            .unwrap_err()
            .contains("contract.fields[1] (country)")
    );
    let mut config = ContractConfig::default();
    config.fields[2].name = "country".into();
    assert!(Contract::new(&config).unwrap_err().contains("used twice"));
}

#[test]
fn event_ids_with_spaces_or_controls_are_rejected_and_lengths_count_characters() {
    let c = fraud();
    let body = |id: &str| {
        format!(
            r#"{{"event_id":"{id}","user_id":"u","transaction_amount":1,"country":"US","device":"web","event_ts":"2024-03-01T00:00:00Z"}}"#
        )
    };
    for bad in ["has space-0001", "tab\\there-0001", "del\\u007f-00001"] {
        let err = c.validate_json(body(bad).as_bytes(), &ctx()).unwrap_err();
        assert!(err.to_string().contains("whitespace or control"), "{bad}: {err}");
    }
    // Ten characters, twenty bytes: long enough.
    assert!(c.validate_json(body("éééééééééé").as_bytes(), &ctx()).is_ok());
    assert!(c.validate_json(body("ééééééééé").as_bytes(), &ctx()).is_err());
}
