//! Every line the gateway writes conforms to the JSON Schemas in `gateway/schema/`, so the
//! documented schema and the records cannot drift apart.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use domicile_tests::client::{self, post_json};
use domicile_tests::{Backend, Gateway};
use serde_json::Value;

/// A small validator for the keywords the schemas use: type, const, enum, properties,
/// required, additionalProperties: false, items.
fn validate(schema: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    if let Some(c) = schema.get("const")
        && c != v
    {
        errors.push(format!("{at}: expected {c}, got {v}"));
    }
    if let Some(e) = schema.get("enum").and_then(Value::as_array)
        && !e.contains(v)
    {
        errors.push(format!("{at}: {v} is not one of {e:?}"));
    }
    if let Some(t) = schema.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let ok = types.iter().any(|t| match *t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "integer" => v.is_u64() || v.is_i64(),
            "boolean" => v.is_boolean(),
            "null" => v.is_null(),
            _ => false,
        });
        if !ok {
            errors.push(format!("{at}: {v} is not of type {types:?}"));
            return;
        }
    }
    if let Some(obj) = v.as_object() {
        let props = schema.get("properties").and_then(Value::as_object);
        for req in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let k = req.as_str().unwrap();
            if !obj.contains_key(k) {
                errors.push(format!("{at}: missing required {k}"));
            }
        }
        for (k, val) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(s) => validate(s, val, &format!("{at}/{k}"), errors),
                None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    errors.push(format!("{at}: {k} is not in the schema"))
                }
                None => {}
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
        for (n, item) in arr.iter().enumerate() {
            validate(items, item, &format!("{at}/{n}"), errors);
        }
    }
}

#[tokio::test]
async fn every_trace_line_conforms_to_the_published_schemas() {
    let decision: Value = serde_json::from_str(include_str!(
        "../../../gateway/schema/decision-1.schema.json"
    ))
    .unwrap();
    let outcome: Value = serde_json::from_str(include_str!(
        "../../../gateway/schema/outcome-1.schema.json"
    ))
    .unwrap();
    let refusal: Value = serde_json::from_str(include_str!(
        "../../../gateway/schema/refusal-1.schema.json"
    ))
    .unwrap();
    let checkpoint: Value = serde_json::from_str(include_str!(
        "../../../gateway/schema/checkpoint-1.schema.json"
    ))
    .unwrap();
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    std::fs::write(keys.join("sign.key"), "07".repeat(32)).unwrap();
    let text = domicile_tests::two_regions(
        &eu.url(),
        &us.url(),
        &dir.path().join("traces"),
        "",
    )
    .replace(
        "durability = \"batch\"",
        "durability = \"batch\"\nrotate_bytes = 4096\nsigning_key = \"keys/sign.key\"\n\
         subject_id_header = \"x-customer-id\"\n\
         pseudonym_keys = { eu-central = { key = \"0101010101010101010101010101010101010101010101010101010101010101\" }, \
         us-east = { key = \"0202020202020202020202020202020202020202020202020202020202020202\" } }",
    );
    let gw = Gateway::start(dir, &text, false).await;
    client::get(&gw.url("/nowhere")).await;
    // Enough records for a rotation, each with a subject identifier to pseudonymise.
    for n in 0..6 {
        let req = http::Request::post(gw.url("/customers"))
            .header("content-type", "application/json")
            .header("x-forwarded-for", "192.0.2.10")
            .header("x-customer-id", format!("cust-{n}"))
            .body(http_body_util::Full::new(bytes::Bytes::from_static(
                br#"{"email":"a@example.com"}"#,
            )))
            .unwrap();
        assert_eq!(client::send(req, false).await.status, 200);
    }
    post_json(
        &gw.url("/customers"),
        "192.0.2.10",
        r#"{"email":"a@example.com","phone":"+49 30 901820"}"#,
    )
    .await;
    post_json(
        &gw.url("/customers"),
        "198.51.100.7",
        r#"{"phone":"+49 30 901820"}"#,
    )
    .await;
    post_json(
        &gw.url("/analytics"),
        "192.0.2.10",
        r#"{"email":"a@example.com"}"#,
    )
    .await;
    post_json(
        &gw.url("/customers"),
        "127.0.0.1",
        r#"{"email":"a@example.com"}"#,
    )
    .await;
    post_json(&gw.url("/customers"), "192.0.2.10", r#"{"email":"#).await;
    client::get(&gw.url("/catalog/x?q=1")).await;
    let lines = gw.lines();
    assert!(lines.len() >= 8, "{lines:#?}");
    let mut errors = Vec::new();
    for line in &lines {
        let schema = match line["schema"].as_str() {
            Some("domicile.decision/1") => &decision,
            Some("domicile.outcome/1") => &outcome,
            Some("domicile.refusal/1") => &refusal,
            Some("domicile.checkpoint/1") => &checkpoint,
            other => panic!("unknown schema {other:?}"),
        };
        validate(schema, line, "", &mut errors);
    }
    assert!(errors.is_empty(), "{errors:#?}");
    for kind in ["domicile.refusal/1", "domicile.checkpoint/1"] {
        assert!(lines.iter().any(|l| l["schema"] == kind), "no {kind} line");
    }
    // The check itself bites: an extra field or a missing one is reported.
    let mut tampered = gw.records()[0].clone();
    tampered["subject"]["email"] = Value::from("a@example.com");
    tampered.as_object_mut().unwrap().remove("verdict");
    let mut errors = Vec::new();
    validate(&decision, &tampered, "", &mut errors);
    assert_eq!(errors.len(), 2, "{errors:#?}");
    // Fields written only sometimes are in the schema too (an ignored X-Forwarded-For's
    // claim: `proxy.rs` has the gateway write it).
    let mut sometimes = gw.records()[0].clone();
    sometimes["subject"]["forwarded_for_ignored"] = Value::from(true);
    sometimes["subject"]["forwarded_for_claimed"] = Value::from("203.0.113.0/24");
    let mut errors = Vec::new();
    validate(&decision, &sometimes, "", &mut errors);
    assert!(errors.is_empty(), "{errors:#?}");
    gw.running.shutdown().await;
}
