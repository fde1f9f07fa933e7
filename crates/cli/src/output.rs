//! Printing results: short aligned text for people, or one JSON object per result with
//! `--json`; and the renderings of the contract's messages in both forms.
//!
//! Enum values print without their prefix in text (`COMPLETED`) and in full in JSON
//! (`TRANSFER_STATE_COMPLETED`, the protobuf JSON form). Writes to a closed pipe are ignored, so
//! `yibao persons --flow list | head -1` ends quietly.

use std::io::Write;

use prost_types::Timestamp;
use serde_json::{Value, json};
use yibao_proto::bureau::v1::{InsuranceCertificate, PersonRecord, Transfer};

use crate::error::CliError;

/// Where results go, and in which form.
#[derive(Clone, Copy, Debug)]
pub struct Output {
    /// One JSON object per result instead of text.
    json: bool,
}

impl Output {
    /// Text, or JSON when `json`.
    pub fn new(json: bool) -> Output {
        Output { json }
    }

    /// Whether results print as JSON.
    pub fn is_json(self) -> bool {
        self.json
    }

    /// Prints one result: `value` as a JSON line, or the text `human` builds.
    pub fn emit(self, value: &Value, human: impl FnOnce() -> String) {
        if self.json {
            print_line(&value.to_string());
        } else {
            print_line(&human());
        }
    }

    /// Prints a failure: a JSON error object on standard output, or `error: …` on standard
    /// error.
    pub fn error(self, error: &CliError) {
        if self.json {
            print_line(&error.to_json().to_string());
        } else {
            let _ = writeln!(std::io::stderr().lock(), "error: {error}");
        }
    }
}

/// Writes a line to standard output, ignoring a closed pipe.
fn print_line(text: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

/// Rows of `label  value`, the labels padded to the widest.
pub fn aligned(rows: &[(&str, String)]) -> String {
    let width = rows
        .iter()
        .map(|(label, _)| label.chars().count())
        .max()
        .unwrap_or(0);
    rows.iter()
        .map(|(label, value)| format!("{label:<width$}  {value}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// An enum's value name without its type prefix: `TRANSFER_STATE_COMPLETED` → `COMPLETED`.
pub fn short(name: &'static str, prefix: &str) -> &'static str {
    name.strip_prefix(prefix).unwrap_or(name)
}

/// A timestamp in RFC 3339, or an empty string when absent.
pub fn time(at: Option<&Timestamp>) -> String {
    at.map(ToString::to_string).unwrap_or_default()
}

/// A transfer as JSON, with the contract's field names.
pub fn transfer_json(transfer: &Transfer) -> Value {
    let deadlines = transfer.deadlines.as_ref().map(|due| {
        json!({
            "transfer_out_due_on": due.transfer_out_due_on,
            "transfer_in_due_on": due.transfer_in_due_on,
            "whole_process_due_on": due.whole_process_due_on,
            "overdue": due.overdue,
            "transfer_out_overdue": due.transfer_out_overdue,
            "transfer_in_overdue": due.transfer_in_overdue,
            "whole_process_overdue": due.whole_process_overdue,
            "estimated_weekends_only": due.estimated_weekends_only,
        })
    });
    let history: Vec<Value> = transfer
        .history
        .iter()
        .map(|step| {
            json!({
                "at": time(step.at.as_ref()),
                "kind": step.kind,
                "from_state": step.from_state().as_str_name(),
                "to_state": step.to_state().as_str_name(),
                "detail": step.detail,
                "attempt": step.attempt,
            })
        })
        .collect();
    json!({
        "transfer_id": transfer.transfer_id,
        "side": transfer.side().as_str_name(),
        "initiator": transfer.initiator().as_str_name(),
        "state": transfer.state().as_str_name(),
        "flow_kind": transfer.flow_kind().as_str_name(),
        "balance_disposition": transfer.balance_disposition().as_str_name(),
        "masked_certno": transfer.masked_certno,
        "trafout_admdvs": transfer.trafout_admdvs,
        "trafin_admdvs": transfer.trafin_admdvs,
        "personal_account_balance": transfer.personal_account_balance,
        "contribution_months": transfer.contribution_months,
        "deadlines": deadlines,
        "history": history,
        "refusal_reason": transfer.refusal_reason().as_str_name(),
        "refusal_message": transfer.refusal_message,
        "created_at": time(transfer.created_at.as_ref()),
        "updated_at": time(transfer.updated_at.as_ref()),
    })
}

/// A transfer's state, without prefix.
pub fn state_of(transfer: &Transfer) -> &'static str {
    short(transfer.state().as_str_name(), "TRANSFER_STATE_")
}

/// The few lines `apply` prints.
pub fn transfer_brief(transfer: &Transfer) -> String {
    aligned(&[
        ("transfer", transfer.transfer_id.clone()),
        ("state", state_of(transfer).to_owned()),
        (
            "at",
            short(transfer.side().as_str_name(), "SIDE_").to_lowercase(),
        ),
    ])
}

/// Everything `status` prints: the transfer, its deadlines and its history.
pub fn transfer_text(transfer: &Transfer) -> String {
    let mut rows = vec![
        ("transfer", transfer.transfer_id.clone()),
        ("state", state_of(transfer).to_owned()),
        (
            "side",
            format!(
                "{} (applied at {})",
                short(transfer.side().as_str_name(), "SIDE_"),
                short(transfer.initiator().as_str_name(), "INITIATOR_")
            ),
        ),
        (
            "flow",
            format!(
                "{}, balance {}",
                short(transfer.flow_kind().as_str_name(), "FLOW_KIND_"),
                short(
                    transfer.balance_disposition().as_str_name(),
                    "BALANCE_DISPOSITION_"
                )
            ),
        ),
        ("person", transfer.masked_certno.clone()),
        (
            "regions",
            format!("{} -> {}", transfer.trafout_admdvs, transfer.trafin_admdvs),
        ),
        ("balance", or_dash(&transfer.personal_account_balance)),
        ("months", transfer.contribution_months.to_string()),
    ];
    if let Some(due) = &transfer.deadlines {
        let mut text = format!(
            "transfer-out {}, transfer-in {}, whole process {}",
            or_dash(&due.transfer_out_due_on),
            or_dash(&due.transfer_in_due_on),
            or_dash(&due.whole_process_due_on)
        );
        if due.overdue {
            let missed: Vec<&str> = [
                (due.transfer_out_overdue, "transfer-out"),
                (due.transfer_in_overdue, "transfer-in"),
                (due.whole_process_overdue, "whole process"),
            ]
            .into_iter()
            .filter_map(|(late, name)| late.then_some(name))
            .collect();
            text.push_str(&format!("  OVERDUE: {}", missed.join(", ")));
        }
        if due.estimated_weekends_only {
            text.push_str("  (estimated: weekends only)");
        }
        rows.push(("due", text));
    }
    if transfer.refusal_reason != 0 {
        rows.push((
            "refusal",
            format!(
                "{}: {}",
                short(transfer.refusal_reason().as_str_name(), "REFUSAL_REASON_"),
                transfer.refusal_message
            ),
        ));
    }
    rows.push(("created", time(transfer.created_at.as_ref())));
    rows.push(("updated", time(transfer.updated_at.as_ref())));
    let mut text = aligned(&rows);
    text.push_str(&history_text(transfer));
    text
}

/// The history part of `status`: one line per step under "history", or nothing.
fn history_text(transfer: &Transfer) -> String {
    let mut text = String::new();
    if !transfer.history.is_empty() {
        text.push_str("\nhistory");
        for step in &transfer.history {
            let mut line = format!(
                "\n  {}  {} -> {}  {}",
                time(step.at.as_ref()),
                short(step.from_state().as_str_name(), "TRANSFER_STATE_"),
                short(step.to_state().as_str_name(), "TRANSFER_STATE_"),
                step.kind
            );
            if step.attempt > 0 {
                line.push_str(&format!("  attempt {}", step.attempt));
            }
            if !step.detail.is_empty() {
                line.push_str(&format!("  {}", step.detail));
            }
            text.push_str(&line);
        }
    }
    text
}

/// The one line `watch` prints per change.
pub fn transfer_change(transfer: &Transfer) -> String {
    let step = transfer.history.last();
    format!(
        "{}  {:<14}  {}",
        time(transfer.updated_at.as_ref()),
        state_of(transfer),
        step.map(|step| step.kind.as_str()).unwrap_or("")
    )
}

/// A person's record as JSON.
pub fn person_json(person: &PersonRecord) -> Value {
    let periods: Vec<Value> = person
        .periods
        .iter()
        .map(|period| {
            json!({
                "from_month": period.from_month,
                "to_month": period.to_month,
                "scheme": period.scheme().as_str_name(),
                "region_code": period.region_code,
            })
        })
        .collect();
    json!({
        "masked_certno": person.masked_certno,
        "masked_psn_name": person.masked_psn_name,
        "poolarea_no": person.poolarea_no,
        "insu_admdvs": person.insu_admdvs,
        "insutype": person.insutype().as_str_name(),
        "psn_insu_stas": person.psn_insu_stas().as_str_name(),
        "fst_insu_ym": person.fst_insu_ym,
        "periods": periods,
        "contribution_months": person.contribution_months,
        "deemed_months": person.deemed_months,
        "personal_account_balance": person.personal_account_balance,
        "arrears_amount": person.arrears_amount,
        "retired": person.retired,
    })
}

/// A person's record as text.
pub fn person_text(person: &PersonRecord) -> String {
    let mut text = aligned(&[
        (
            "person",
            format!("{} {}", person.masked_certno, person.masked_psn_name),
        ),
        (
            "region",
            format!(
                "{} (enrolled at {})",
                person.poolarea_no, person.insu_admdvs
            ),
        ),
        (
            "scheme",
            short(person.insutype().as_str_name(), "SCHEME_").to_owned(),
        ),
        (
            "enrolment",
            short(person.psn_insu_stas().as_str_name(), "ENROLMENT_STATE_").to_owned(),
        ),
        ("first insured", person.fst_insu_ym.clone()),
        (
            "months",
            format!(
                "{} ({} deemed)",
                person.contribution_months, person.deemed_months
            ),
        ),
        ("balance", person.personal_account_balance.clone()),
        ("arrears", person.arrears_amount.clone()),
        (
            "retired",
            if person.retired { "yes" } else { "no" }.to_owned(),
        ),
    ]);
    if !person.periods.is_empty() {
        text.push_str("\nperiods");
        for period in &person.periods {
            text.push_str(&format!(
                "\n  {}-{}  {:<8}  {}",
                period.from_month,
                period.to_month,
                short(period.scheme().as_str_name(), "SCHEME_"),
                period.region_code
            ));
        }
    }
    text
}

/// A certificate as JSON.
pub fn certificate_json(certificate: &InsuranceCertificate) -> Value {
    json!({
        "psn_name": certificate.psn_name,
        "certno": certificate.certno,
        "insutype": certificate.insutype().as_str_name(),
        "insuring_region_code": certificate.insuring_region_code,
        "insuring_region_name": certificate.insuring_region_name,
        "insured_from_month": certificate.insured_from_month,
        "insured_to_month": certificate.insured_to_month,
        "benefits_from_month": certificate.benefits_from_month,
        "benefits_to_month": certificate.benefits_to_month,
        "personal_account_balance": certificate.personal_account_balance,
        "personal_account_balance_in_capitals": certificate.personal_account_balance_in_capitals,
        "issuing_bureau": certificate.issuing_bureau,
        "printed_at": time(certificate.printed_at.as_ref()),
        "verification_code": certificate.verification_code,
    })
}

/// A certificate as text.
pub fn certificate_text(certificate: &InsuranceCertificate) -> String {
    aligned(&[
        (
            "person",
            format!("{} {}", certificate.certno, certificate.psn_name),
        ),
        (
            "scheme",
            short(certificate.insutype().as_str_name(), "SCHEME_").to_owned(),
        ),
        (
            "region",
            format!(
                "{} {}",
                certificate.insuring_region_code, certificate.insuring_region_name
            ),
        ),
        (
            "insured",
            format!(
                "{}-{}",
                certificate.insured_from_month, certificate.insured_to_month
            ),
        ),
        (
            "benefits",
            format!(
                "{}-{}",
                certificate.benefits_from_month, certificate.benefits_to_month
            ),
        ),
        (
            "balance",
            format!(
                "{} ({})",
                certificate.personal_account_balance,
                certificate.personal_account_balance_in_capitals
            ),
        ),
        ("issued by", certificate.issuing_bureau.clone()),
        ("printed", time(certificate.printed_at.as_ref())),
        ("code", certificate.verification_code.clone()),
    ])
}

/// The text, or `-` when it is empty.
fn or_dash(text: &str) -> String {
    if text.is_empty() {
        "-".to_owned()
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yibao_proto::common::v1::TransferState;

    #[test]
    fn labels_are_padded_to_the_widest() {
        let text = aligned(&[("a", "1".to_owned()), ("long", "2".to_owned())]);
        assert_eq!(text, "a     1\nlong  2");
    }

    #[test]
    fn a_transfer_prints_its_state_without_prefix_and_in_full_in_json() {
        let transfer = Transfer {
            transfer_id: "T-1".to_owned(),
            state: TransferState::PaidToBank as i32,
            ..Transfer::default()
        };
        assert!(transfer_brief(&transfer).contains("PAID_TO_BANK"));
        assert_eq!(
            transfer_json(&transfer)["state"],
            "TRANSFER_STATE_PAID_TO_BANK"
        );
    }
}
