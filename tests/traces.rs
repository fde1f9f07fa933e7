//! Traces across both bureaus, read from the trace files both processes write
//! (`--trace-file`, here `YIBAO_TRACE_FILE` through the harness): one transfer's spans at both
//! bureaus share one trace, the parent links cross the process boundary, another transfer has
//! another trace, and a client's own `traceparent` on `ApplyTransfer` is continued. And the
//! logs: every line a transfer's step writes names the transfer.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use tonic::metadata::MetadataValue;
use yibao_domain::population::Flow;
use yibao_proto::bureau::v1::bureau_service_client::BureauServiceClient;
use yibao_proto::common::v1::TransferState;
use yibao_tests::{
    PERSONS, Pair, PairOptions, SEED, Side, application, channel, someone, until_state,
};

/// The client's own trace, continued by the second transfer.
const CLIENT_TRACE: &str = "5f2c0e7b9a1d4c3e8b6a0f1e2d3c4b5a";
const CLIENT_SPAN: &str = "a1b2c3d4e5f60718";

/// One finished span, as a line of a trace file.
#[derive(Clone, Debug)]
struct Span {
    trace_id: String,
    span_id: String,
    parent: Option<String>,
    parent_is_remote: bool,
    name: String,
    service: String,
    transfer_id: Option<String>,
}

fn spans(pair: &Pair, side: Side) -> Vec<Span> {
    let path = pair.trace_file(side);
    let text = std::fs::read_to_string(&path).expect("the trace file was written");
    text.lines()
        .map(|line| {
            let value: Value = serde_json::from_str(line).expect("each line is one JSON object");
            let text = |key: &str| value[key].as_str().map(str::to_owned);
            Span {
                trace_id: text("trace_id").expect("trace_id"),
                span_id: text("span_id").expect("span_id"),
                parent: text("parent_span_id"),
                parent_is_remote: value["parent_is_remote"] == true,
                name: text("name").expect("name"),
                service: text("service").expect("service"),
                transfer_id: value["attributes"]["transfer_id"]
                    .as_str()
                    .map(str::to_owned),
            }
        })
        .collect()
}

/// The one span of this name and transfer.
fn one<'a>(spans: &'a [Span], name: &str, id: &str) -> &'a Span {
    let found: Vec<_> = spans
        .iter()
        .filter(|s| s.name == name && s.transfer_id.as_deref() == Some(id))
        .collect();
    assert_eq!(found.len(), 1, "one {name} span of {id}: {spans:#?}");
    found[0]
}

/// The trace ids of every span of a transfer.
fn traces_of(spans: &[&[Span]], id: &str) -> BTreeSet<String> {
    spans
        .iter()
        .flat_map(|side| side.iter())
        .filter(|s| s.transfer_id.as_deref() == Some(id))
        .map(|s| s.trace_id.clone())
        .collect()
}

/// Applies at transfer-in, with the client's own `traceparent` if given, and waits until both
/// bureaus completed the transfer; its id.
async fn transfer(pair: &Pair, index: usize, traceparent: Option<&str>) -> String {
    let person = (0..PERSONS)
        .map(|i| yibao_domain::population::person(SEED, i).expect("in range"))
        .filter(|p| p.flow == Flow::CrossProvince)
        .nth(index)
        .unwrap_or_else(|| someone(Flow::CrossProvince));
    let mut request = tonic::Request::new(application(&person));
    if let Some(traceparent) = traceparent {
        let value = MetadataValue::try_from(traceparent).expect("ASCII");
        request.metadata_mut().insert("traceparent", value);
    }
    let mut bureau = BureauServiceClient::new(channel(pair.in_endpoint()).await);
    let applied = bureau.apply_transfer(request).await.expect("accepted");
    let id = applied.into_inner().transfer.expect("transfer").transfer_id;
    until_state(pair.in_endpoint(), &id, TransferState::Completed).await;
    until_state(pair.out_endpoint(), &id, TransferState::Completed).await;
    id
}

// Long because it reads as one story: two transfers, a graceful stop that flushes the spans,
// then each claim about the trace files and the logs in turn.
#[tokio::test]
async fn a_transfers_spans_share_one_trace_across_both_bureaus() {
    let mut pair = Pair::start(PairOptions {
        seed: SEED,
        persons: PERSONS,
        trace_files: true,
        extra_env: vec![
            ("RUST_LOG".into(), "info,yibao_bureau=debug".into()),
            ("YIBAO_LOG_FORMAT".into(), "json".into()),
        ],
        ..PairOptions::default()
    })
    .await
    .expect("both bureaus start");
    let first = transfer(&pair, 0, None).await;
    let client = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let second = transfer(&pair, 1, Some(&client)).await;
    // A graceful stop flushes what is queued.
    pair.stop(Side::Out).await.expect("transfer-out stops");
    pair.stop(Side::In).await.expect("transfer-in stops");
    let (out, inn) = (spans(&pair, Side::Out), spans(&pair, Side::In));
    assert!(out.iter().all(|s| s.service == "transfer-out"), "{out:#?}");
    assert!(inn.iter().all(|s| s.service == "transfer-in"), "{inn:#?}");

    // One trace for the whole transfer, at both bureaus.
    let application = one(&inn, "application", &first);
    let traces = traces_of(&[&out, &inn], &first);
    assert_eq!(traces, BTreeSet::from([application.trace_id.clone()]));
    for name in ["receive request", "send form", "answer form"] {
        assert_eq!(
            one(&out, name, &first).trace_id,
            application.trace_id,
            "{name}"
        );
    }
    for name in ["send request", "answer request", "receive form"] {
        assert_eq!(
            one(&inn, name, &first).trace_id,
            application.trace_id,
            "{name}"
        );
    }
    assert_eq!(
        application.parent, None,
        "no client trace: the application starts it"
    );

    // The parent links cross the process boundary, both ways.
    let sent = one(&inn, "send request", &first);
    assert_eq!(sent.parent.as_deref(), Some(application.span_id.as_str()));
    let received = one(&out, "receive request", &first);
    assert_eq!(received.parent.as_deref(), Some(sent.span_id.as_str()));
    assert!(received.parent_is_remote);
    let form_sent = one(&out, "send form", &first);
    assert_eq!(form_sent.parent.as_deref(), Some(received.span_id.as_str()));
    let form_received = one(&inn, "receive form", &first);
    assert_eq!(
        form_received.parent.as_deref(),
        Some(form_sent.span_id.as_str())
    );
    assert!(form_received.parent_is_remote);
    let credit = one(&out, "answer form", &first);
    assert_eq!(credit.parent.as_deref(), Some(form_sent.span_id.as_str()));

    // Another transfer, another trace: the client's, continued.
    let continued = one(&inn, "application", &second);
    assert_eq!(continued.trace_id, CLIENT_TRACE);
    assert_eq!(continued.parent.as_deref(), Some(CLIENT_SPAN));
    assert_eq!(
        traces_of(&[&out, &inn], &second),
        BTreeSet::from([CLIENT_TRACE.to_owned()])
    );
    assert_ne!(application.trace_id, CLIENT_TRACE);

    every_saved_line_names_its_transfer(&pair, &[&first, &second]);
}

/// Every line a step writes when it saves a transfer carries the transfer's id (from its step's
/// span, not from the line's own fields), at both bureaus, for several steps of each transfer.
fn every_saved_line_names_its_transfer(pair: &Pair, ids: &[&str]) {
    for side in Side::BOTH {
        let path = &pair.log_files(side).stdout;
        let text = std::fs::read_to_string(path).expect("the log was written");
        let mut saved: BTreeMap<String, usize> = BTreeMap::new();
        for line in text.lines() {
            let Ok(value) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            if value["fields"]["message"] != "transfer saved" {
                continue;
            }
            let named = value["spans"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|span| span["transfer_id"].as_str())
                .next_back();
            let Some(id) = named else {
                panic!("a line inside a transfer without its transfer_id: {line}");
            };
            *saved.entry(id.to_owned()).or_default() += 1;
        }
        for id in ids {
            let count = saved.get(*id).copied().unwrap_or(0);
            assert!(
                count >= 2,
                "{side:?}: {count} saves of {id} named it: {saved:?}"
            );
        }
    }
}
