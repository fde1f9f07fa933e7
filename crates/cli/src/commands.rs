//! The commands that talk to running bureaus (and `persons`, which needs none): each converts
//! its arguments into one request, makes the call, and prints the answer.

use std::time::Duration;

use serde_json::{Value, json};
use yibao_domain::population::{Flow, MAX_INDEX, SyntheticPerson, index_of, person};
use yibao_harness::population::{
    SYNTHETIC_BANK_NAME, applies_at, needs_bank_account, persons_of_flow,
};
use yibao_harness::{Side, clock, is_terminal, ledger};
use yibao_proto::admin::v1::GetClockRequest;
use yibao_proto::bureau::v1::{
    ApplicationChannel, ApplyTransferRequest, GetPersonRequest, GetTransferRequest,
    IssueCertificateRequest, VerifyCertificateRequest, WatchTransferRequest,
};
use yibao_proto::common::v1::{BankAccount, Scheme};

use crate::Outcome;
use crate::args::{
    AccountArgs, AdvanceArgs, ApplyArgs, Bureau, CertificateArgs, ChannelArg, DEFAULT_IN,
    DEFAULT_OUT, FlowChoice, PersonsArgs, SchemeArg, StatusArgs, VerifyArgs,
};
use crate::connect::Endpoints;
use crate::error::CliError;
use crate::output::{
    Output, aligned, certificate_json, certificate_text, person_json, person_text, time,
    transfer_brief, transfer_change, transfer_json, transfer_text,
};

/// Attempts of an application whose fate is unknown, the same key each time: pauses of 100 ms to
/// 1.6 s, 3.1 s in all.
const APPLY_ATTEMPTS: u32 = 5;
/// The first pause before repeating an application.
const FIRST_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

/// Whether an application's fate is unknown (it may or may not have been applied), so that it is
/// repeated with the same key; any other status is the bureau's answer.
pub fn fate_unknown(code: tonic::Code) -> bool {
    use tonic::Code;
    matches!(
        code,
        Code::Unavailable | Code::Unknown | Code::Cancelled | Code::DeadlineExceeded
    )
}

/// A fresh idempotency key for an application given without `--request-id`: `cli-` and 16 hex
/// digits from the process's random hasher seed.
pub fn fresh_request_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    format!("cli-{:016x}", hasher.finish())
}

/// `yibao apply`: ApplyTransfer at the chosen bureau, repeated with the same key while its fate
/// is unknown.
pub async fn apply(
    args: &ApplyArgs,
    endpoints: &Endpoints,
    output: Output,
) -> Result<Outcome, CliError> {
    let bank_account = match (&args.bank_account, &args.bank_name) {
        (Some(number), Some(bank)) => Some(BankAccount {
            bank_name: bank.clone(),
            account_number: number.clone(),
            account_holder_name: args.name.clone(),
        }),
        _ => None,
    };
    let request = ApplyTransferRequest {
        certno: args.certno.clone(),
        psn_name: args.name.clone(),
        trafout_admdvs: args.from.clone(),
        trafin_admdvs: args.to.clone(),
        bank_account,
        retiree_payout_requested: args.retiree_payout,
        payout_requested: args.payout,
        channel: match args.channel {
            ChannelArg::Online => ApplicationChannel::Online,
            ChannelArg::Counter => ApplicationChannel::Counter,
        } as i32,
        // Every application carries a key, so that repeating one whose fate is unknown is safe.
        client_request_id: args.request_id.clone().unwrap_or_else(fresh_request_id),
        insutype_at_transfer_in: match args.scheme_at_in {
            Some(SchemeArg::Employee) => Scheme::Employee as i32,
            Some(SchemeArg::Resident) => Scheme::Resident as i32,
            None => Scheme::Unspecified as i32,
        },
    };
    let service = Side::from(args.at).service();
    let mut bureau = endpoints.bureau(args.at).await?;
    let mut pause = FIRST_RETRY_PAUSE;
    let mut attempt = 1;
    let answer = loop {
        match bureau.apply_transfer(request.clone()).await {
            Ok(answer) => break answer.into_inner(),
            Err(status) if fate_unknown(status.code()) && attempt < APPLY_ATTEMPTS => {
                tokio::time::sleep(pause).await;
                pause = pause.saturating_mul(2);
                attempt += 1;
            }
            Err(status) => return Err(CliError::rpc(service, "ApplyTransfer")(status)),
        }
    };
    let transfer = answer
        .transfer
        .ok_or_else(|| CliError::Failed(format!("{service} answered without a transfer")))?;
    output.emit(&transfer_json(&transfer), || transfer_brief(&transfer));
    Ok(Outcome::Success)
}

/// `yibao status`: GetTransfer, with history and deadlines.
pub async fn status(
    args: &StatusArgs,
    endpoints: &Endpoints,
    output: Output,
) -> Result<Outcome, CliError> {
    let service = Side::from(args.bureau).service();
    let answer = endpoints
        .bureau(args.bureau)
        .await?
        .get_transfer(GetTransferRequest {
            transfer_id: args.transfer_id.clone(),
        })
        .await
        .map_err(CliError::rpc(service, "GetTransfer"))?
        .into_inner();
    let transfer = answer
        .transfer
        .ok_or_else(|| CliError::Failed(format!("{service} answered without a transfer")))?;
    output.emit(&transfer_json(&transfer), || transfer_text(&transfer));
    Ok(Outcome::Success)
}

/// `yibao watch`: WatchTransfer, one line (or JSON object) per change until terminal.
pub async fn watch(
    args: &StatusArgs,
    endpoints: &Endpoints,
    output: Output,
) -> Result<Outcome, CliError> {
    let service = Side::from(args.bureau).service();
    let mut stream = endpoints
        .bureau(args.bureau)
        .await?
        .watch_transfer(WatchTransferRequest {
            transfer_id: args.transfer_id.clone(),
        })
        .await
        .map_err(CliError::rpc(service, "WatchTransfer"))?
        .into_inner();
    while let Some(message) = stream
        .message()
        .await
        .map_err(CliError::rpc(service, "WatchTransfer"))?
    {
        let Some(transfer) = message.transfer else {
            continue;
        };
        output.emit(&transfer_json(&transfer), || transfer_change(&transfer));
        if is_terminal(transfer.state()) {
            return Ok(Outcome::Success);
        }
    }
    Err(CliError::Failed(format!(
        "{service} ended the watch before the transfer reached a terminal state; watch again"
    )))
}

/// `yibao account`: GetPerson.
pub async fn account(
    args: &AccountArgs,
    endpoints: &Endpoints,
    output: Output,
) -> Result<Outcome, CliError> {
    let service = Side::from(args.bureau).service();
    let answer = endpoints
        .bureau(args.bureau)
        .await?
        .get_person(GetPersonRequest {
            certno: args.certno.clone(),
        })
        .await
        .map_err(CliError::rpc(service, "GetPerson"))?
        .into_inner();
    let person = answer
        .person
        .ok_or_else(|| CliError::Failed(format!("{service} answered without a person")))?;
    output.emit(&person_json(&person), || person_text(&person));
    Ok(Outcome::Success)
}

/// `yibao certificate`: IssueCertificate.
pub async fn certificate(
    args: &CertificateArgs,
    endpoints: &Endpoints,
    output: Output,
) -> Result<Outcome, CliError> {
    let service = Side::from(args.bureau).service();
    let answer = endpoints
        .bureau(args.bureau)
        .await?
        .issue_certificate(IssueCertificateRequest {
            certno: args.certno.clone(),
            psn_name: args.name.clone(),
        })
        .await
        .map_err(CliError::rpc(service, "IssueCertificate"))?
        .into_inner();
    let certificate = answer
        .certificate
        .ok_or_else(|| CliError::Failed(format!("{service} answered without a certificate")))?;
    output.emit(&certificate_json(&certificate), || {
        certificate_text(&certificate)
    });
    Ok(Outcome::Success)
}

/// `yibao verify`: VerifyCertificate. An unknown code exits 1.
pub async fn verify(
    args: &VerifyArgs,
    endpoints: &Endpoints,
    output: Output,
) -> Result<Outcome, CliError> {
    let service = Side::from(args.bureau).service();
    let answer = endpoints
        .bureau(args.bureau)
        .await?
        .verify_certificate(VerifyCertificateRequest {
            verification_code: args.code.clone(),
        })
        .await
        .map_err(CliError::rpc(service, "VerifyCertificate"))?
        .into_inner();
    let value = json!({
        "valid": answer.valid,
        "certificate": answer.certificate.as_ref().map(certificate_json),
    });
    output.emit(&value, || match (&answer.certificate, answer.valid) {
        (Some(certificate), true) => format!("valid\n{}", certificate_text(certificate)),
        (None, true) => "valid".to_owned(),
        _ => format!("not valid: {service} issued no certificate with this code"),
    });
    Ok(if answer.valid {
        Outcome::Success
    } else {
        Outcome::Refused
    })
}

/// `yibao persons`: synthetic persons of a flow, or the list of flows; no bureau is asked.
pub fn persons(
    args: &PersonsArgs,
    endpoints: &Endpoints,
    output: Output,
) -> Result<Outcome, CliError> {
    let flow = match args.flow {
        FlowChoice::List => return list_flows(args.seed, output),
        FlowChoice::Flow(flow) => flow,
    };
    let found = if args.first == 0 {
        persons_of_flow(args.seed, flow, args.count, MAX_INDEX)?
    } else {
        let last = args.first.saturating_add(args.count as u64);
        (args.first..last)
            .map(|n| person(args.seed, index_of(flow, n)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| CliError::Failed(format!("--first {}: {error}", args.first)))?
    };
    if output.is_json() {
        for someone in &found {
            output.emit(&person_summary_json(someone, endpoints), String::new);
        }
    } else {
        let rows: Vec<String> = found
            .iter()
            .map(|someone| {
                format!(
                    "{:>7}  {}  {:<4}  {} -> {}  at {:<3}  balance {:>10}\n         {}",
                    someone.index,
                    someone.certno.expose_unmasked(),
                    someone.name,
                    someone.out_region,
                    someone.in_region,
                    bureau_name(applies_at(someone.flow)),
                    someone.balance.to_string(),
                    apply_command(someone, endpoints)
                )
            })
            .collect();
        output.emit(&Value::Null, || rows.join("\n"));
    }
    Ok(Outcome::Success)
}

/// `yibao persons --flow list`.
fn list_flows(seed: u64, output: Output) -> Result<Outcome, CliError> {
    let mut lines = Vec::new();
    for flow in Flow::ALL {
        let first = person(seed, index_of(flow, 0)).map_err(yibao_harness::HarnessError::from)?;
        let value = json!({
            "flow": flow.name(),
            "applies_at": bureau_name(applies_at(flow)),
            "trafout_admdvs": first.out_region.to_string(),
            "trafin_admdvs": first.in_region.to_string(),
        });
        if output.is_json() {
            output.emit(&value, String::new);
        } else {
            lines.push(format!(
                "{:<30}  {} -> {}  apply at {}",
                flow.name(),
                first.out_region,
                first.in_region,
                bureau_name(applies_at(flow))
            ));
        }
    }
    if !output.is_json() {
        output.emit(&Value::Null, || lines.join("\n"));
    }
    Ok(Outcome::Success)
}

/// A synthetic person as JSON, unmasked (synthetic data), with the command that applies.
pub fn person_summary_json(someone: &SyntheticPerson, endpoints: &Endpoints) -> Value {
    json!({
        "index": someone.index,
        "flow": someone.flow.name(),
        "certno": someone.certno.expose_unmasked(),
        "name": someone.name,
        "trafout_admdvs": someone.out_region.to_string(),
        "trafin_admdvs": someone.in_region.to_string(),
        "applies_at": bureau_name(applies_at(someone.flow)),
        "balance": someone.balance.to_string(),
        "retired": someone.retired,
        "scheme_at_transfer_out": someone.out_scheme.name(),
        "scheme_at_transfer_in": someone.in_scheme.name(),
        "state_at_transfer_out": someone.out_state.name(),
        "arrears": someone.arrears.to_string(),
        "enrolled_at_transfer_in": someone.enrolled_at_transfer_in,
        "enrolled_at_transfer_in_from": someone.in_enrolled_from.to_string(),
        "first_insured": someone.first_insured.to_string(),
        "periods": someone.periods.iter().map(|p| json!({
            "from_month": p.from().to_string(),
            "to_month": p.to().to_string(),
            "scheme": p.scheme().name(),
            "region_code": p.region().to_string(),
        })).collect::<Vec<_>>(),
        "bank_account_number": someone.bank_account_number,
        "apply": apply_command(someone, endpoints),
    })
}

/// The `yibao apply …` command line that applies for a synthetic person as the flow expects.
pub fn apply_command(someone: &SyntheticPerson, endpoints: &Endpoints) -> String {
    let mut command = String::from("yibao");
    if endpoints.out != DEFAULT_OUT {
        command.push_str(&format!(" --out {}", endpoints.out));
    }
    if endpoints.inn != DEFAULT_IN {
        command.push_str(&format!(" --in {}", endpoints.inn));
    }
    command.push_str(&format!(
        " apply --certno {} --name {} --from {} --to {} --at {}",
        someone.certno.expose_unmasked(),
        someone.name,
        someone.out_region,
        someone.in_region,
        bureau_name(applies_at(someone.flow))
    ));
    if needs_bank_account(someone.flow) {
        command.push_str(&format!(
            " --bank-account {} --bank-name {SYNTHETIC_BANK_NAME}",
            someone.bank_account_number
        ));
    }
    if someone.flow == Flow::RetireePayout {
        command.push_str(" --retiree-payout");
    }
    if someone.flow == Flow::NotConnected {
        command.push_str(" --payout");
    }
    if applies_at(someone.flow) == Side::Out {
        command.push_str(&format!(" --scheme-at-in {}", someone.in_scheme.name()));
    }
    command
}

/// `in` or `out`, as `--at` and `--bureau` spell it.
pub fn bureau_name(side: Side) -> &'static str {
    match Bureau::from(side) {
        Bureau::In => "in",
        Bureau::Out => "out",
    }
}

/// `yibao ledger check`: the harness's conservation check; exit 1 on a violation.
pub async fn ledger_check(endpoints: &Endpoints, output: Output) -> Result<Outcome, CliError> {
    let (mut admin_out, mut admin_in) = endpoints.admins().await?;
    let report = ledger::fetch_and_check(&mut admin_out, &mut admin_in).await?;
    let value = serde_json::to_value(&report)
        .map_err(|error| CliError::Failed(format!("cannot render the report: {error}")))?;
    output.emit(&value, || report.to_string());
    Ok(if report.holds {
        Outcome::Success
    } else {
        Outcome::Refused
    })
}

/// `yibao clock advance`: both bureaus' test clocks, together.
pub async fn clock_advance(
    args: &AdvanceArgs,
    endpoints: &Endpoints,
    output: Output,
) -> Result<Outcome, CliError> {
    let (mut admin_out, mut admin_in) = endpoints.admins().await?;
    let by = Duration::from_secs(u64::from(args.days) * 24 * 3600);
    let times = clock::advance_both(&mut admin_out, &mut admin_in, by).await?;
    print_clocks(
        output,
        time(Some(&times.transfer_out)),
        time(Some(&times.transfer_in)),
    );
    Ok(Outcome::Success)
}

/// `yibao clock show`: both bureaus' clocks.
pub async fn clock_show(endpoints: &Endpoints, output: Output) -> Result<Outcome, CliError> {
    let (mut admin_out, mut admin_in) = endpoints.admins().await?;
    let (out, inn) = tokio::join!(
        admin_out.get_clock(GetClockRequest {}),
        admin_in.get_clock(GetClockRequest {}),
    );
    let out = out.map_err(CliError::rpc("transfer-out", "GetClock"))?;
    let inn = inn.map_err(CliError::rpc("transfer-in", "GetClock"))?;
    print_clocks(
        output,
        time(out.get_ref().now.as_ref()),
        time(inn.get_ref().now.as_ref()),
    );
    Ok(Outcome::Success)
}

/// Prints both clocks.
fn print_clocks(output: Output, out: String, inn: String) {
    let value = json!({"transfer_out": out, "transfer_in": inn});
    output.emit(&value, || {
        aligned(&[("transfer-out", out.clone()), ("transfer-in", inn.clone())])
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_application_of_unknown_fate_is_repeated_and_an_answer_is_not() {
        for code in [
            tonic::Code::Unavailable,
            tonic::Code::Unknown,
            tonic::Code::Cancelled,
            tonic::Code::DeadlineExceeded,
        ] {
            assert!(fate_unknown(code), "{code:?}");
        }
        for code in [
            tonic::Code::InvalidArgument,
            tonic::Code::FailedPrecondition,
        ] {
            assert!(!fate_unknown(code), "{code:?}");
        }
    }

    #[test]
    fn a_fresh_request_id_is_a_valid_key_and_not_repeated() {
        let first = fresh_request_id();
        assert!(
            first.len() <= 64 && first.bytes().all(|b| b.is_ascii_graphic()),
            "{first}"
        );
        assert_ne!(first, fresh_request_id());
    }
}
