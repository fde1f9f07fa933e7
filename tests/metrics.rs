//! Prometheus metrics, black-box: both bureaus started with `YIBAO_METRICS_LISTEN=127.0.0.1:0`
//! serve `GET /metrics` on a listener of their own; after one transfer (whose first request
//! loses its answer to a fault rule, so it is retried) the scraped counts have moved at both
//! — transfers by state, messages sent and received, retries, injected faults, handshake steps,
//! RPCs, store commits — and every line of both pages is Prometheus text format.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use yibao_domain::population::Flow;
use yibao_proto::admin::v1::{AddFaultRuleRequest, FaultDirection, FaultKind, FaultRule};
use yibao_proto::bureau::v1::bureau_service_client::BureauServiceClient;
use yibao_proto::common::v1::TransferState;
use yibao_tests::*;

/// One sample: its metric name, labels and value.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A scraped page, parsed.
#[derive(Debug)]
struct Page {
    samples: Vec<Sample>,
    types: BTreeMap<String, String>,
}

impl Page {
    /// The sum of the samples of `name` whose labels include every pair of `labels` (0 when
    /// none does: a counter not yet incremented is absent).
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|sample| sample.name == name)
            .filter(|sample| {
                labels
                    .iter()
                    .all(|(key, value)| sample.labels.get(*key).map(String::as_str) == Some(value))
            })
            .map(|sample| sample.value)
            .sum()
    }
}

/// `GET path` from the metrics listener at `address`: the status line's code, the headers and
/// the body.
async fn get(address: SocketAddr, path: &str) -> (u16, String, String) {
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("the metrics listener accepts");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("request sent");
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .await
        .expect("an answer in UTF-8");
    let (head, body) = answer.split_once("\r\n\r\n").expect("headers, then a body");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    (status, head.to_ascii_lowercase(), body.to_owned())
}

/// Scrapes `side` and parses the page, checking every line.
async fn scrape(pair: &Pair, side: Side) -> Page {
    let address = pair
        .metrics_address(side)
        .expect("the bureau reported its metrics address");
    let (status, head, body) = get(address, "/metrics").await;
    assert_eq!(status, 200, "{head}");
    assert!(
        head.contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    parse(&body)
}

/// Scrapes `side` until its outbox is empty (polling, up to the deadline).
async fn emptied(pair: &Pair, side: Side) -> Page {
    poll(DEADLINE, || async {
        let page = scrape(pair, side).await;
        let depth = page.sum("yibao_outbox_depth", &[]);
        let gauge_present = page.samples.iter().any(|s| s.name == "yibao_outbox_depth");
        (gauge_present && depth == 0.0).then_some(page)
    })
    .await
}

/// Parses Prometheus text format (version 0.0.4) strictly: every line is blank, `# HELP`,
/// `# TYPE name counter|gauge|histogram|summary|untyped`, or a sample
/// `name{label="value",…} value`; panics naming the first line that is not.
fn parse(text: &str) -> Page {
    let mut page = Page {
        samples: Vec::new(),
        types: BTreeMap::new(),
    };
    for (number, line) in text.lines().enumerate() {
        let fail = |why: &str| -> ! { panic!("line {}: {why}: {line:?}", number + 1) };
        if line.trim().is_empty() || line.starts_with("# HELP ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or_else(|| fail("a TYPE line"));
            if !is_name(name) {
                fail("a metric name");
            }
            if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                fail("a metric type");
            }
            page.types.insert(name.to_owned(), kind.to_owned());
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        page.samples
            .push(sample(line).unwrap_or_else(|why| fail(&why)));
    }
    page
}

/// A metric or label name.
fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_' || first == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// One sample line.
fn sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..name_end];
    if !is_name(name) {
        return Err("a metric name".to_owned());
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(inside) = rest.strip_prefix('{') {
        let (parsed, after) = label_set(inside)?;
        labels = parsed;
        rest = after;
    }
    let mut fields = rest.trim_start_matches(' ').split(' ');
    let value = fields.next().ok_or("no value")?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        number => number.parse().map_err(|_| "a value")?,
    };
    if let Some(timestamp) = fields.next() {
        timestamp.parse::<i64>().map_err(|_| "a timestamp")?;
    }
    if fields.next().is_some() {
        return Err("more after the timestamp".to_owned());
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// The labels after a `{`, and what follows the closing `}`.
fn label_set(mut text: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    loop {
        if let Some(after) = text.strip_prefix('}') {
            return Ok((labels, after));
        }
        let (name, after) = text.split_once("=\"").ok_or("a label")?;
        if !is_name(name) {
            return Err("a label name".to_owned());
        }
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next().ok_or("an unterminated label value")? {
                (at, '"') => break at,
                (_, '\\') => match chars.next().ok_or("an escape")?.1 {
                    'n' => value.push('\n'),
                    escaped @ ('\\' | '"') => value.push(escaped),
                    _ => return Err("an escape".to_owned()),
                },
                (_, c) => value.push(c),
            }
        };
        labels.insert(name.to_owned(), value);
        text = &after[end + 1..];
        text = text.strip_prefix(',').unwrap_or(text);
    }
}

/// Every sample carries the bureau label; every histogram's `+Inf` bucket is its count.
fn assert_well_formed(page: &Page, bureau: &str) {
    assert!(!page.samples.is_empty(), "a page with samples");
    for sample in &page.samples {
        assert_eq!(
            sample.labels.get("bureau").map(String::as_str),
            Some(bureau),
            "{sample:?}"
        );
    }
    for (name, kind) in &page.types {
        if kind != "histogram" {
            continue;
        }
        let count = format!("{name}_count");
        for sample in page.samples.iter().filter(|s| s.name == count) {
            let mut labels: Vec<(&str, &str)> = sample
                .labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            labels.push(("le", "+Inf"));
            assert_eq!(
                page.sum(&format!("{name}_bucket"), &labels),
                sample.value,
                "{name} {labels:?}"
            );
        }
    }
}

/// A transfer's messages as both bureaus counted them: sent, received and (at transfer-in) the
/// retry of a lost answer.
fn assert_messages_counted(before: [&Page; 2], after: [&Page; 2]) {
    let moved = |pages: [&Page; 2], labels: &[(&str, &str)]| {
        pages[1].sum("yibao_platform_messages_total", labels)
            - pages[0].sum("yibao_platform_messages_total", labels)
    };
    let [out_before, in_before] = before;
    let [out_after, in_after] = after;
    let sent = ("direction", "sent");
    let received = ("direction", "received");
    let request = ("kind", "REQUEST_TRANSFER_OUT");
    let form = ("kind", "DELIVER_FORM");
    let answered = ("infcode", "0");
    let pages_in = [in_before, in_after];
    let pages_out = [out_before, out_after];
    assert!(moved(pages_in, &[sent, request, answered]) >= 1.0);
    assert!(
        moved(pages_in, &[sent, request, ("infcode", "none")]) >= 1.0,
        "the attempt whose answer was lost read no reply"
    );
    // Sent once or twice: the form's arrival withdraws a request still waiting for its retry.
    assert!(moved(pages_out, &[received, request, answered]) >= 1.0);
    assert!(moved(pages_out, &[sent, form, answered]) >= 1.0);
    assert!(moved(pages_in, &[received, form, answered]) >= 1.0);
    let retried = |page: &Page| page.sum("yibao_platform_messages_retried_total", &[request]);
    assert!(retried(in_after) - retried(in_before) >= 1.0);
}

#[tokio::test]
async fn both_bureaus_export_prometheus_metrics_that_move_with_a_transfer() {
    let pair = Pair::start(PairOptions {
        seed: SEED,
        persons: PERSONS,
        extra_env: vec![(
            OsString::from("YIBAO_METRICS_LISTEN"),
            OsString::from("127.0.0.1:0"),
        )],
        ..PairOptions::default()
    })
    .await
    .expect("both bureaus start with metrics");
    let lose_first_answer = FaultRule {
        label: "metrics-test".to_owned(),
        direction: FaultDirection::Sending as i32,
        message_kind: "REQUEST_TRANSFER_OUT".to_owned(),
        fault: FaultKind::LoseAnswer as i32,
        first_attempts: 1,
        ..FaultRule::default()
    };
    let rule_id = pair
        .admin(Side::In)
        .add_fault_rule(AddFaultRuleRequest {
            rule: Some(lose_first_answer),
        })
        .await
        .expect("the rule is added")
        .into_inner()
        .rule
        .expect("the rule comes back")
        .rule_id;
    let out_before = scrape(&pair, Side::Out).await;
    let in_before = scrape(&pair, Side::In).await;
    assert_well_formed(&out_before, "transfer-out");
    assert_well_formed(&in_before, "transfer-in");

    let person = someone(Flow::CrossProvince);
    let id = BureauServiceClient::new(pair.channel(Side::In))
        .apply_transfer(application(&person))
        .await
        .expect("accepted")
        .into_inner()
        .transfer
        .expect("a transfer")
        .transfer_id;
    until_state(pair.in_endpoint(), &id, TransferState::Completed).await;
    until_state(pair.out_endpoint(), &id, TransferState::Completed).await;

    // The request whose answer was lost may still wait for its retry after the form arrived.
    let out_after = emptied(&pair, Side::Out).await;
    let in_after = emptied(&pair, Side::In).await;
    assert_well_formed(&out_after, "transfer-out");
    assert_well_formed(&in_after, "transfer-in");
    for (before, after) in [(&out_before, &out_after), (&in_before, &in_after)] {
        let completed = |page: &Page| page.sum("yibao_transfers", &[("state", "COMPLETED")]);
        assert_eq!(
            completed(after),
            completed(before) + 1.0,
            "transfers by state"
        );
        let commits = |page: &Page| page.sum("yibao_store_commit_seconds_count", &[]);
        assert!(commits(after) > commits(before), "store commits timed");
        assert!(after.sum("yibao_store_batch_size_count", &[]) >= commits(after));
        assert_eq!(
            after.sum("yibao_outbox_depth", &[]),
            0.0,
            "nothing left to send"
        );
        assert!(
            !after
                .samples
                .iter()
                .any(|s| s.name == "yibao_overdue_transfers" && s.value != 0.0)
        );
        assert!(after.sum("yibao_ledger_balance_cents", &[("account_class", "person")]) > 0.0);
        assert_eq!(
            after.types.get("yibao_rpc_seconds").map(String::as_str),
            Some("histogram")
        );
    }
    assert_messages_counted([&out_before, &in_before], [&out_after, &in_after]);
    assert_eq!(
        in_after.sum("yibao_faults_injected_total", &[("rule", &rule_id)]),
        1.0
    );
    assert!(in_after.sum("yibao_handshake_step_seconds_count", &[("step", "request")]) >= 1.0);
    assert!(out_after.sum("yibao_handshake_step_seconds_count", &[("step", "form")]) >= 1.0);
    let apply = [
        ("service", "yibao.bureau.v1.BureauService"),
        ("method", "ApplyTransfer"),
        ("code", "OK"),
    ];
    assert_eq!(
        in_after.sum("yibao_rpc_total", &apply) - in_before.sum("yibao_rpc_total", &apply),
        1.0
    );
    let platform = [("service", "yibao.platform.v1.TransferOutPlatformService")];
    assert!(
        out_after.sum("yibao_rpc_total", &platform) > out_before.sum("yibao_rpc_total", &platform)
    );

    let address = pair.metrics_address(Side::Out).expect("an address");
    assert_eq!(get(address, "/").await.0, 404, "only /metrics is served");
    assert_dashboard_queries_exported(&[&out_after, &in_after]);
}

/// Every metric the Grafana dashboard (deploy/grafana/dashboards/yibao.json) queries is one the
/// bureaus export (a histogram's `_bucket`, `_sum` and `_count` series under its name), so a
/// renamed metric cannot leave a panel empty unnoticed.
fn assert_dashboard_queries_exported(pages: &[&Page]) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/grafana/dashboards/yibao.json"
    );
    let text = std::fs::read_to_string(path).expect("the dashboard");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let exported: std::collections::BTreeSet<&str> = pages
        .iter()
        .flat_map(|page| page.types.keys().map(String::as_str))
        .collect();
    let mut queried = 0;
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("a PromQL expression");
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if !word.starts_with("yibao_") {
                    continue;
                }
                let name = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|suffix| word.strip_suffix(suffix))
                    .unwrap_or(word);
                assert!(
                    exported.contains(name),
                    "the dashboard's panel {:?} queries {word}, which no bureau exports",
                    panel["title"]
                );
                queried += 1;
            }
        }
    }
    assert!(
        queried >= 13,
        "the dashboard queries the metrics: {queried}"
    );
}
