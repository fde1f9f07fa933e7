//! Conversions between wire types and domain or stored types, in one place.

use yibao_domain::id::{ResidentId, mask_name};
use yibao_domain::money::Money;
use yibao_domain::month::ContributionPeriod;
use yibao_domain::region::RegionCode;
use yibao_domain::scheme::Scheme;
use yibao_domain::transfer::RefusalReason;
use yibao_proto::bureau::v1 as bureau_wire;
use yibao_proto::common::v1 as wire;
use yibao_store::EventRow;

use crate::document::{Initiator, Side, TransferDocument};
use crate::error::Error;
use crate::messages::timestamp;
use crate::record;
use crate::state::Bureau;

/// A resident ID number from a request field.
pub fn certno(field: &'static str, text: &str) -> Result<ResidentId, Error> {
    ResidentId::parse(text).map_err(|error| Error::invalid(field, error))
}

/// A region code from a request field.
pub fn region(field: &'static str, text: &str) -> Result<RegionCode, Error> {
    RegionCode::parse(text).map_err(|error| Error::invalid(field, error))
}

/// The wire scheme of a stored `insutype` code.
pub fn wire_scheme(code: u16) -> wire::Scheme {
    match Scheme::from_code(code) {
        Ok(Scheme::Employee) => wire::Scheme::Employee,
        Ok(Scheme::Resident) => wire::Scheme::Resident,
        Err(_) => wire::Scheme::Unspecified,
    }
}

/// The domain scheme of a wire value.
pub fn domain_scheme(value: i32) -> Option<Scheme> {
    match wire::Scheme::try_from(value) {
        Ok(wire::Scheme::Employee) => Some(Scheme::Employee),
        Ok(wire::Scheme::Resident) => Some(Scheme::Resident),
        _ => None,
    }
}

/// A contribution period on the wire.
pub fn wire_period(period: &ContributionPeriod) -> wire::ContributionPeriod {
    wire::ContributionPeriod {
        from_month: period.from().to_string(),
        to_month: period.to().to_string(),
        scheme: wire_scheme(period.scheme().code()) as i32,
        region_code: period.region().to_string(),
    }
}

/// Cents as a two-place decimal string.
pub fn money_text(cents: u64) -> String {
    Money::from_cents(cents)
        .map(|money| money.to_string())
        .unwrap_or_else(|_| "0.00".to_owned())
}

/// The wire initiator.
pub fn wire_initiator(initiator: Initiator) -> wire::Initiator {
    match initiator {
        Initiator::TransferIn => wire::Initiator::TransferInBureau,
        Initiator::TransferOut => wire::Initiator::TransferOutBureau,
    }
}

/// The wire refusal reason.
pub fn wire_reason(reason: RefusalReason) -> wire::RefusalReason {
    use wire::RefusalReason as W;
    match reason {
        RefusalReason::UnknownPerson => W::UnknownPerson,
        RefusalReason::NotStoppedAtTransferOut => W::NotStoppedAtTransferOut,
        RefusalReason::Arrears => W::Arrears,
        RefusalReason::NotEnrolledAtTransferIn => W::NotEnrolledAtTransferIn,
        RefusalReason::SamePoolingRegion => W::SamePoolingRegion,
        RefusalReason::OpenTransferExists => W::OpenTransferExists,
        RefusalReason::RetireeMustRegisterRelocation => W::RetireeMustRegisterRelocation,
        RefusalReason::BankAccountRequired => W::BankAccountRequired,
        RefusalReason::RegionNotHosted => W::RegionNotHosted,
        RefusalReason::Aborted => W::Aborted,
    }
}

/// The domain refusal reason of a wire value (unknown values read as `Aborted`: not credited).
pub fn domain_reason(value: i32) -> RefusalReason {
    RefusalReason::ALL
        .into_iter()
        .find(|reason| wire_reason(*reason) as i32 == value)
        .unwrap_or(RefusalReason::Aborted)
}

/// A transfer as the bureau API shows it: personal data masked, deadlines computed on `today`.
pub fn wire_transfer(
    bureau: &Bureau,
    document: &TransferDocument,
    events: &[EventRow],
) -> bureau_wire::Transfer {
    let deadlines = record::deadlines(bureau, document.applied_on, document.form_received_on);
    let today = bureau.clock.today();
    let deadlines = deadlines.map(|d| bureau_wire::Deadlines {
        transfer_out_due_on: d.transfer_out_due.due_on.to_string(),
        transfer_in_due_on: d.transfer_in_due.due_on.to_string(),
        whole_process_due_on: d.whole_process_due.due_on.to_string(),
        overdue: !document.state.is_terminal() && d.whole_process_due.is_overdue(today),
        estimated_weekends_only: !d.whole_process_due.basis.is_official()
            || !d.transfer_in_due.basis.is_official(),
    });
    let refusal = document.state.refusal();
    bureau_wire::Transfer {
        transfer_id: document.transfer_id.clone(),
        side: match document.side {
            Side::Out => wire::Side::TransferOut,
            Side::In => wire::Side::TransferIn,
        } as i32,
        initiator: wire_initiator(document.initiator) as i32,
        state: document.state.wire() as i32,
        flow_kind: document.flow_kind,
        balance_disposition: document.balance_disposition,
        masked_certno: ResidentId::parse(&document.certno)
            .map(|id| id.masked())
            .unwrap_or_default(),
        trafout_admdvs: document.trafout_admdvs.clone(),
        trafin_admdvs: document.trafin_admdvs.clone(),
        personal_account_balance: money_text(document.amount_cents),
        contribution_months: document.contribution_months,
        deadlines,
        history: events
            .iter()
            .map(|event| bureau_wire::TransferEvent {
                at: Some(timestamp(event.at)),
                kind: event.kind.clone(),
                from_state: crate::document::state_from_name(&event.from_state),
                to_state: crate::document::state_from_name(&event.to_state),
                detail: event.detail.clone(),
                attempt: event.attempt,
            })
            .collect(),
        refusal_reason: refusal.map(|r| wire_reason(r) as i32).unwrap_or_default(),
        refusal_message: refusal.map(|r| r.message().to_owned()).unwrap_or_default(),
        created_at: Some(timestamp(document.created_at)),
        updated_at: Some(timestamp(document.updated_at)),
    }
}

/// A masked name.
pub fn masked_name(name: &str) -> String {
    mask_name(name)
}
