//! Field maps: declared fields are personal data of their category whatever the detectors
//! say; fields the map does not know are reported in the record and a metric; config errors
//! name file, line and key.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use domicile_tests::client::{self, post_json};
use domicile_tests::{Backend, Gateway};

const EU_IP: &str = "192.0.2.10";

const OPENAPI: &str = r##"{
  "openapi": "3.0.3",
  "info": { "title": "clinic", "version": "1" },
  "paths": {
    "/visits/{id}": {
      "put": {
        "requestBody": { "content": { "application/json": {
          "schema": { "$ref": "#/components/schemas/Visit" } } } }
      }
    }
  },
  "components": { "schemas": {
    "Visit": { "type": "object", "properties": {
      "patient": { "type": "string", "x-personal-data": "name" },
      "diagnosis": { "type": "string", "x-personal-data": "health" },
      "room": { "type": "string" },
      "tags": { "type": "array", "items": { "type": "string" } }
    } }
  } }
}"##;

const ROUTES: &str = r#"
[[routes]]
id = "orders"
path = "/orders"
purpose = "processing"
placement = "fixed"
region = "us-east"
fields = [
  { path = "/customer/full_name", category = "name" },
  { path = "/lines/*/ship_to", category = "address" },
  { path = "/lines/*/sku", category = "none" },
]

[[routes]]
id = "visits"
path = "/visits"
purpose = "processing"
placement = "fixed"
region = "us-east"
openapi = "clinic.openapi.json"
"#;

async fn gateway(eu: &Backend, us: &Backend) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    domicile_tests::write(dir.path(), "clinic.openapi.json", OPENAPI);
    let trace = dir.path().join("traces");
    let text = domicile_tests::two_regions(&eu.url(), &us.url(), &trace, ROUTES);
    Gateway::start(dir, &text, false).await
}

#[tokio::test]
async fn declared_fields_are_personal_data_and_unknown_fields_are_reported() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let gw = gateway(&eu, &us).await;
    // No detector recognises a name or a street; the map does.
    let body = r#"{"customer":{"full_name":"Jane Roe","tier":"gold"},
                   "lines":[{"sku":"A-1","ship_to":{"street":"Hauptstr. 1"},"gift":true}]}"#;
    let r = post_json(&gw.url("/orders"), EU_IP, body).await;
    assert_eq!(r.status, 451, "{}", r.text());
    let rec = gw.record(r.header("domicile-decision").unwrap());
    let findings: Vec<(String, String, String)> = rec["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["category"].as_str().unwrap().to_owned(),
                f["location"].as_str().unwrap().to_owned(),
                f["detector"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        findings,
        vec![
            (
                "name".into(),
                "/customer/full_name".into(),
                "field_map".into()
            ),
            (
                "address".into(),
                "/lines/0/ship_to".into(),
                "field_map".into()
            ),
        ]
    );
    assert_eq!(
        rec["inspection"]["unmapped_fields"],
        serde_json::json!(["/customer/tier", "/lines/*/gift"])
    );
    assert!(!gw.trace_text().contains("Jane Roe"));

    // Declared fields that are absent or empty are not findings; unknown ones still count.
    let r = post_json(
        &gw.url("/orders"),
        EU_IP,
        r#"{"customer":{"full_name":""},"lines":[{"sku":"A-1"}],"coupon":"X"}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let rec = gw.record(r.header("domicile-decision").unwrap());
    assert_eq!(
        rec["inspection"]["unmapped_fields"],
        serde_json::json!(["/coupon"])
    );
    let m = client::get(&gw.admin_url("/metrics")).await.text();
    assert!(
        m.contains("domicile_unmapped_fields_total{route=\"orders\"} 3"),
        "{m}"
    );
    gw.running.shutdown().await;
}

#[tokio::test]
async fn a_large_body_is_inspected_with_its_routes_field_map_as_a_small_one_is() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let gw = gateway(&eu, &us).await;
    // Past 64 KiB a body is inspected on a blocking thread: with the same options and result.
    // (Only declared fields: the unmapped-field counter is the process's, and another test
    // counts it.)
    let pad: Vec<String> = (0..6000).map(|n| format!(r#"{{"sku":"A-{n}"}}"#)).collect();
    let body = format!(
        r#"{{"customer":{{"full_name":"Jane Roe, jane@example.com"}},"lines":[{}]}}"#,
        pad.join(",")
    );
    assert!(body.len() > 64 * 1024);
    let r = post_json(&gw.url("/orders"), EU_IP, &body).await;
    assert_eq!(r.status, 451, "{}", r.text());
    let rec = gw.record(r.header("domicile-decision").unwrap());
    assert_eq!(rec["inspection"]["status"], "complete");
    let findings: Vec<(&str, &str)> = domicile_tests::findings_of(&rec);
    assert!(
        findings.contains(&("name", "/customer/full_name")),
        "{findings:?}"
    );
    // What the detectors find in a declared field stays beside the declared category.
    assert!(
        findings.contains(&("email", "/customer/full_name")),
        "{findings:?}"
    );
    // No field the map does not know (the record lists none).
    assert!(rec["inspection"]["unmapped_fields"].is_null(), "{rec}");
    assert_eq!(eu.count() + us.count(), 0);
    gw.running.shutdown().await;
}

#[tokio::test]
async fn openapi_schemas_declare_fields_per_operation() {
    let (eu, us) = (Backend::start("eu").await, Backend::start("us").await);
    let gw = gateway(&eu, &us).await;
    let body = r#"{"patient":"J. Roe","diagnosis":"J45.909","room":"3","tags":["a"],"bed":2}"#;
    let r = client::send(
        http::Request::put(gw.url("/visits/41"))
            .header("x-forwarded-for", EU_IP)
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .unwrap(),
        false,
    )
    .await;
    assert_eq!(r.status, 451, "{}", r.text());
    let rec = gw.record(r.header("domicile-decision").unwrap());
    let cats: Vec<&str> = rec["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["category"].as_str().unwrap())
        .collect();
    // Declared fields in the order the body has them.
    assert_eq!(cats, vec!["name", "health"]);
    assert_eq!(
        rec["inspection"]["unmapped_fields"],
        serde_json::json!(["/bed"])
    );
    // Another operation (POST has no schema) gets no map: only the detectors speak (the
    // field-name lexicon still knows a diagnosis), and nothing is reported as unmapped.
    let r = post_json(&gw.url("/visits/41"), EU_IP, body).await;
    assert_eq!(r.status, 451, "{}", r.text());
    let rec = gw.record(r.header("domicile-decision").unwrap());
    assert!(rec["inspection"].get("unmapped_fields").is_none(), "{rec}");
    let detectors: Vec<&str> = rec["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["detector"].as_str().unwrap())
        .collect();
    assert!(!detectors.contains(&"field_map"), "{rec}");
    assert!(detectors.contains(&"field.health"), "{rec}");
    assert_eq!(us.count(), 0);
    gw.running.shutdown().await;
}

#[test]
fn field_map_errors_name_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    domicile_tests::write(
        dir.path(),
        "bad.openapi.json",
        &OPENAPI.replace("\"health\"", "\"helth\""),
    );
    let routes = r#"
[[routes]]
id = "a"
path = "/a"
purpose = "processing"
placement = "home"
fields = [
  { path = "customer/name", category = "name" },
  { path = "/customer/name", category = "nmae" },
]

[[routes]]
id = "b"
path = "/b"
purpose = "processing"
placement = "home"
openapi = "missing.json"

[[routes]]
id = "c"
path = "/c"
purpose = "processing"
placement = "home"
openapi = "bad.openapi.json"
"#;
    let text = domicile_tests::two_regions(
        "http://127.0.0.1:1",
        "http://127.0.0.1:2",
        dir.path(),
        routes,
    );
    let err = domicile_gateway::Config::from_str(&text, "domicile.toml", dir.path())
        .unwrap_err()
        .to_string();
    // line:column of a quoted value in the config text.
    let at = |value: &str| {
        let quoted = format!("\"{value}\"");
        let (n, l) = text
            .lines()
            .enumerate()
            .find(|(_, l)| l.contains(&quoted))
            .unwrap();
        format!("{}:{}", n + 1, l.find(&quoted).unwrap() + 1)
    };
    let expect = [
        format!(
            "domicile.toml:{}: routes[3].fields[0].path: \"customer/name\" is not a JSON pointer",
            at("customer/name")
        ),
        format!(
            "domicile.toml:{}: routes[3].fields[1].category: unknown data category \"nmae\"",
            at("nmae")
        ),
        format!(
            "domicile.toml:{}: routes[4].openapi: cannot read ",
            at("missing.json")
        ),
        format!(
            "domicile.toml:{}: routes[5].openapi: {}: /components/schemas/Visit/properties/diagnosis/x-personal-data: unknown data category \"helth\"",
            at("bad.openapi.json"),
            dir.path().join("bad.openapi.json").display()
        ),
    ];
    for e in expect {
        assert!(err.contains(&e), "expected {e:?} in:\n{err}");
    }
}
