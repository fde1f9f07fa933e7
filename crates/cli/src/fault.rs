//! `yibao fault add|list|clear`: fault rules at a bureau, through its admin API. What each
//! fault does is documented in admin.proto (`FaultKind`) and the README ("Faults on purpose").

use serde_json::json;
use yibao_harness::Side;
use yibao_proto::admin::v1::{
    AddFaultRuleRequest, ClearFaultRulesRequest, FaultDirection, FaultKind, FaultRule,
    ListFaultRulesRequest,
};

use crate::Outcome;
use crate::args::{DirectionArg, FaultAddArgs, FaultArg, FaultClearArgs, FaultListArgs};
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
