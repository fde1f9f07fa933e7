//! `yibao fault add|list|clear`: fault rules at a bureau, through its admin API. What each
//! fault does is documented in admin.proto (`FaultKind`) and the README ("Faults on purpose").
//! `yibao journal ID`: what the platform messages of a transfer met, at both bureaus.
//! `yibao region connect|disconnect CODE`: a region's connection to the platform, at both.

use serde_json::json;
use yibao_harness::Side;
use yibao_proto::admin::v1::{
    AddFaultRuleRequest, ClearFaultRulesRequest, FaultDirection, FaultKind, FaultRule,
    ListFaultRulesRequest, SetRegionConnectivityRequest,
};

use crate::Outcome;
use crate::args::{
    Bureau, DirectionArg, FaultAddArgs, FaultArg, FaultClearArgs, FaultListArgs, JournalArgs,
    RegionArgs,
};
use crate::connect::Endpoints;
use crate::error::CliError;
use crate::output::Output;

/// The wire form of a fault.
fn kind(fault: FaultArg) -> FaultKind {
    match fault {
        FaultArg::Delay => FaultKind::Delay,
        FaultArg::Status => FaultKind::Status,
        FaultArg::Infcode => FaultKind::Infcode,
        FaultArg::NeverAnswer => FaultKind::NeverAnswer,
        FaultArg::ResetConnection => FaultKind::ResetConnection,
        FaultArg::LoseAnswer => FaultKind::LoseAnswer,
        FaultArg::DeliverTwice => FaultKind::DeliverTwice,
        FaultArg::Reorder => FaultKind::Reorder,
        FaultArg::BankFail => FaultKind::BankFail,
        FaultArg::BankDelay => FaultKind::BankDelay,
        FaultArg::RegionDisconnected => FaultKind::RegionDisconnected,
        FaultArg::RegionConnected => FaultKind::RegionConnected,
    }
}

/// A rule as one line of text.
fn line(rule: &FaultRule) -> String {
    let fault = FaultKind::try_from(rule.fault)
        .map(|kind| {
            kind.as_str_name()
                .trim_start_matches("FAULT_KIND_")
                .to_owned()
        })
        .unwrap_or_else(|_| rule.fault.to_string());
    let direction = FaultDirection::try_from(rule.direction)
        .map(|d| {
            d.as_str_name()
                .trim_start_matches("FAULT_DIRECTION_")
                .to_owned()
        })
        .unwrap_or_default();
    let mut matchers = Vec::new();
    for (name, value) in [
        ("label", &rule.label),
        ("kind", &rule.message_kind),
        ("sender", &rule.sender_region_code),
        ("receiver", &rule.receiver_region_code),
        ("transfer", &rule.transfer_id),
        ("region", &rule.region_code),
    ] {
        if !value.is_empty() {
            matchers.push(format!("{name}={value}"));
        }
    }
    if rule.first_attempts > 0 {
        matchers.push(format!("first={}", rule.first_attempts));
    }
    format!(
        "{:<4} {fault:<20} {direction:<11} injected {:>6}  {}",
        rule.rule_id,
        rule.injected,
        matchers.join(" ")
    )
}

fn rule_json(rule: &FaultRule) -> serde_json::Value {
    json!({
        "rule_id": rule.rule_id,
        "label": rule.label,
        "fault": FaultKind::try_from(rule.fault).map(|k| k.as_str_name()).unwrap_or("?"),
        "direction": FaultDirection::try_from(rule.direction).map(|d| d.as_str_name()).unwrap_or("?"),
        "message_kind": rule.message_kind,
        "transfer_id": rule.transfer_id,
        "first_attempts": rule.first_attempts,
        "injected": rule.injected,
    })
}

/// `yibao fault add`.
pub async fn add(
    args: &FaultAddArgs,
    endpoints: &Endpoints,
    output: Output,
) -> Result<Outcome, CliError> {
    let service = Side::from(args.bureau).service();
    let direction = match args.direction {
        None => FaultDirection::Unspecified,
        Some(DirectionArg::Sending) => FaultDirection::Sending,
        Some(DirectionArg::Receiving) => FaultDirection::Receiving,
    };
    let rule = FaultRule {
        label: args.label.clone(),
        direction: direction as i32,
        message_kind: args.kind.clone(),
        sender_region_code: args.sender.clone(),
        receiver_region_code: args.receiver.clone(),
        transfer_id: args.transfer.clone(),
        certno: args.certno.clone(),
        first_attempts: args.first,
        probability: args.probability,
        fault: kind(args.fault) as i32,
        delay_min_ms: args.delay_ms,
        delay_max_ms: args.delay_max_ms.unwrap_or(args.delay_ms),
        grpc_code: args.grpc_code,
        message: args.message.clone(),
        infcode: args.infcode,
        region_code: args.region.clone(),
        ..FaultRule::default()
    };
    let added = endpoints
        .admin(args.bureau)
        .await?
        .add_fault_rule(AddFaultRuleRequest { rule: Some(rule) })
        .await
        .map_err(CliError::rpc(service, "AddFaultRule"))?
        .into_inner()
        .rule
        .unwrap_or_default();
    output.emit(&rule_json(&added), || {
        format!("{service}: added {}", line(&added))
    });
    Ok(Outcome::Success)
}

/// `yibao fault list`.
pub async fn list(
    args: &FaultListArgs,
    endpoints: &Endpoints,
    output: Output,
) -> Result<Outcome, CliError> {
    let service = Side::from(args.bureau).service();
    let rules = endpoints
        .admin(args.bureau)
        .await?
        .list_fault_rules(ListFaultRulesRequest {})
        .await
        .map_err(CliError::rpc(service, "ListFaultRules"))?
        .into_inner()
        .rules;
    let values: Vec<_> = rules.iter().map(rule_json).collect();
    output.emit(&json!({ "rules": values }), || {
        if rules.is_empty() {
            return format!("{service}: no fault rule");
        }
        rules.iter().map(line).collect::<Vec<_>>().join("\n")
    });
    Ok(Outcome::Success)
}

/// `yibao fault clear`.
pub async fn clear(
    args: &FaultClearArgs,
    endpoints: &Endpoints,
    output: Output,
) -> Result<Outcome, CliError> {
    let service = Side::from(args.bureau).service();
    let removed = endpoints
        .admin(args.bureau)
        .await?
        .clear_fault_rules(ClearFaultRulesRequest {
            label: args.label.clone(),
        })
        .await
        .map_err(CliError::rpc(service, "ClearFaultRules"))?
        .into_inner()
        .removed;
    output.emit(&json!({ "removed": removed }), || {
        format!("{service}: removed {removed} fault rule(s)")
    });
    Ok(Outcome::Success)
}

/// `yibao region connect|disconnect`: the change at both bureaus (each keeps its own view of
/// the directory).
pub async fn region(
    args: &RegionArgs,
    connected: bool,
    endpoints: &Endpoints,
    output: Output,
) -> Result<Outcome, CliError> {
    let mut lines = Vec::new();
    let mut values = Vec::new();
    for bureau in [Bureau::Out, Bureau::In] {
        let service = Side::from(bureau).service();
        let answer = endpoints
            .admin(bureau)
            .await?
            .set_region_connectivity(SetRegionConnectivityRequest {
                region_code: args.region_code.clone(),
                connected,
            })
            .await
            .map_err(CliError::rpc(service, "SetRegionConnectivity"))?
            .into_inner();
        let word = if answer.connected {
            "connected"
        } else {
            "not connected"
        };
        lines.push(format!(
            "{service}: {} is {word}",
            answer.pooling_region_code
        ));
        values.push(json!({
            "bureau": service,
            "pooling_region_code": answer.pooling_region_code,
            "connected": answer.connected,
        }));
    }
    output.emit(&json!({ "bureaus": values }), || lines.join("\n"));
    Ok(Outcome::Success)
}

/// One journal entry as a line: time, bureau, way, kind, msgid, outcome, round trip, fault.
fn journal_line(
    (seconds, nanos): (i64, i32),
    service: &str,
    way: &str,
    entry: &yibao_proto::admin::v1::MessageJournalEntry,
    round_trip_ms: Option<f64>,
) -> String {
    let time = chrono::DateTime::from_timestamp(seconds, u32::try_from(nanos).unwrap_or(0))
        .map(|at| at.format("%H:%M:%S%.3f").to_string())
        .unwrap_or_default();
    let fault = if entry.fault.is_empty() {
        String::new()
    } else {
        format!("  fault {}", entry.fault)
    };
    let round_trip = round_trip_ms
        .map(|ms| format!(" in {ms:.1} ms"))
        .unwrap_or_default();
    format!(
        "{time}  {service:<12} {way:<8} {:<20} {}  {}{round_trip}{fault}",
        entry.kind, entry.msgid, entry.outcome
    )
}

/// `yibao journal ID`: the transfer's messages at both bureaus, in time order.
pub async fn journal(
    args: &JournalArgs,
    endpoints: &Endpoints,
    output: Output,
) -> Result<Outcome, CliError> {
    use yibao_proto::admin::v1::{GetMessageJournalRequest, MessageWay};
    let mut lines = Vec::new();
    for bureau in [Bureau::Out, Bureau::In] {
        let service = Side::from(bureau).service();
        let answer = endpoints
            .admin(bureau)
            .await?
            .get_message_journal(GetMessageJournalRequest {
                transfer_id: args.transfer_id.clone(),
            })
            .await;
        let entries = match answer {
            Ok(answer) => answer.into_inner().entries,
            Err(status) => {
                eprintln!("{service}: {} {}", status.code(), status.message());
                continue;
            }
        };
        for entry in entries {
            let at = entry
                .at
                .as_ref()
                .map(|at| (at.seconds, at.nanos))
                .unwrap_or_default();
            let way = MessageWay::try_from(entry.way)
                .map(|way| {
                    way.as_str_name()
                        .trim_start_matches("MESSAGE_WAY_")
                        .to_owned()
                })
                .unwrap_or_default();
            lines.push((at, service, way, entry));
        }
    }
    lines.sort_by_key(|(at, ..)| *at);
    for ((seconds, nanos), service, way, entry) in &lines {
        let round_trip_ms = entry
            .round_trip
            .map(|trip| trip.seconds as f64 * 1e3 + f64::from(trip.nanos) / 1e6);
        let value = json!({
            "at_seconds": seconds, "at_nanos": nanos, "bureau": service, "way": way,
            "kind": entry.kind, "msgid": entry.msgid, "transfer_id": entry.transfer_id,
            "receiver": entry.receiver_region_code, "sender": entry.sender_region_code,
            "attempt": entry.attempt, "outcome": entry.outcome, "fault": entry.fault,
            "round_trip_ms": round_trip_ms,
        });
        output.emit(&value, || {
            journal_line((*seconds, *nanos), service, way, entry, round_trip_ms)
        });
    }
    if lines.is_empty() && !output.is_json() {
        println!("no message of {} in either journal", args.transfer_id);
    }
    Ok(Outcome::Success)
}
