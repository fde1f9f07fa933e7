//! The one place wire types meet domain types: every protobuf message the bureau reads is
//! turned into a domain value here (a failure is `INVALID_ARGUMENT` naming the field), and every
//! domain value it shows or sends becomes its protobuf form here. Handlers and the outbox
//! transport call these; nothing else in the crate sees a generated type.

use chrono::{DateTime, NaiveDate, Utc};
use yibao_domain::application::{
    ApplicationChannel, BankAccount, check_name, check_payout_account,
};
use yibao_domain::certificate;
use yibao_domain::classify::{BalanceDisposition, FlowKind, PayoutReason, RetireePayout};
use yibao_domain::continuity::{BackPay, Continuity};
use yibao_domain::credit::{self, FormFigure};
use yibao_domain::id::{ResidentId, mask_name};
use yibao_domain::money::Money;
use yibao_domain::month::{ContributionPeriod, YearMonth};
use yibao_domain::overdue::Overdue;
use yibao_domain::population::Flow;
use yibao_domain::region::{Pooling, RegionCode};
use yibao_domain::remittance::RemittanceCheck;
use yibao_domain::scheme::Scheme;
use yibao_domain::transfer::{Initiator, RefusalReason, Side, Stage, TransferId};
use yibao_proto::bureau::v1 as bureau_wire;
use yibao_proto::common::v1 as wire;
use yibao_proto::platform::v1 as platform;
use yibao_runtime::clock::china_date;
use yibao_store::EventRow;

use crate::certificates::Certificate;
use crate::context::Site;
use crate::document::TransferDocument;
use crate::error::Error;
use crate::faults::{Direction, Fault, Rule, RuleSpec};
use crate::messages::{
    Addressed, Credit, Decision, Envelope, FormOutcome, InsuranceForm, Remittance,
    RemittanceReturn, TransferApplication,
};
use crate::persons::PersonRecord;

/// The length bounds of wire strings that no domain parser bounds, in characters; the proto
/// comments state the same. Names, bank details, ID numbers, region codes, months, transfer ids
/// and idempotency keys are bounded by the domain's own parsers and rules, which name their
/// bound.
pub mod bound {
    /// An amount: `999999999999.99`, the largest the contract allows.
    pub const AMOUNT: usize = 15;
    /// A day, `YYYY-MM-DD`.
    pub const DAY: usize = 10;
    /// A year-month, `YYYYMM`.
    pub const MONTH: usize = 6;
    /// A region code.
    pub const REGION_CODE: usize = 6;
    /// A transfer id.
    pub const TRANSFER_ID: usize = yibao_domain::transfer::TransferId::LENGTH;
    /// A platform transaction code (`infno`).
    pub const INFNO: usize = 4;
    /// A flow's name (admin API).
    pub const FLOW_NAME: usize = 64;
    /// A sentence for people: a reason, an error message, a refusal message.
    pub const TEXT: usize = 200;
}

/// A wire string within its bound of `max_chars` characters; a longer one is refused naming
/// the field and the bound (never echoing the value).
pub fn bounded<'a>(field: &'static str, text: &'a str, max_chars: usize) -> Result<&'a str, Error> {
    if text.len() > max_chars && text.chars().count() > max_chars {
        return Err(Error::invalid(
            field,
            format!("at most {max_chars} characters"),
        ));
    }
    Ok(text)
}

/// Text from a peer's answer (an error message, a refusal's sentence), kept to
/// [`bound::TEXT`] characters: answers are read leniently, so a longer one is cut, not refused,
/// and it never grows a log line or a stored outcome without limit.
pub fn peer_text(text: &str) -> String {
    match text.char_indices().nth(bound::TEXT) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// A flow of the synthetic population, by its name (admin API).
pub fn population_flow(field: &'static str, text: &str) -> Result<Flow, Error> {
    Flow::from_name(bounded(field, text, bound::FLOW_NAME)?).ok_or_else(|| {
        let names: Vec<_> = Flow::ALL.iter().map(|f| f.name()).collect();
        Error::invalid(field, format!("unknown flow; one of {}", names.join(", ")))
    })
}

/// A resident ID number from a request field, received on `today` (the China date of the
/// service clock): a birth date after `today` is refused like any malformed number.
pub fn certno(field: &'static str, text: &str, today: NaiveDate) -> Result<ResidentId, Error> {
    ResidentId::parse_received_on(text, today).map_err(|error| Error::invalid(field, error))
}

/// A region code from a request field.
pub fn region(field: &'static str, text: &str) -> Result<RegionCode, Error> {
    RegionCode::parse(text).map_err(|error| Error::invalid(field, error))
}

/// A transfer id from a request field.
pub fn transfer_id(field: &'static str, text: &str) -> Result<String, Error> {
    TransferId::parse(text)
        .map(|id| id.to_string())
        .map_err(|error| Error::invalid(field, error))
}

/// A message about one transfer from its transfer-out bureau, addressed as its envelope says.
pub fn addressed(
    envelope: Option<&platform::Envelope>,
    transfer_id_text: &str,
) -> Result<Addressed, Error> {
    let envelope = envelope.ok_or_else(|| Error::invalid("envelope", "required"))?;
    Ok(Addressed {
        transfer_id: transfer_id("transfer_id", transfer_id_text)?,
        out_region: envelope.sender_region_code.clone(),
        in_region: envelope.receiver_region_code.clone(),
    })
}

/// A verification code from `VerifyCertificateRequest.verification_code`, as stored: 20
/// characters of Crockford's base 32 (either case), or the 14 digits of an earlier release.
pub fn verification_code(text: &str) -> Result<String, Error> {
    certificate::normalize_verification_code(text).ok_or_else(|| {
        Error::invalid(
            "verification_code",
            "must be 20 characters of Crockford's base 32 (or the 14 digits of an earlier \
             certificate)",
        )
    })
}

/// A day (`YYYY-MM-DD`) from a request field; empty is `None`.
pub fn day(field: &'static str, text: &str) -> Result<Option<NaiveDate>, Error> {
    match bounded(field, text, bound::DAY)? {
        "" => Ok(None),
        text => NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map(Some)
            .map_err(|_| Error::invalid(field, "must be a day, YYYY-MM-DD")),
    }
}

/// Money from a request field.
pub fn money(field: &'static str, text: &str) -> Result<Money, Error> {
    Money::parse(bounded(field, text, bound::AMOUNT)?).map_err(|error| Error::invalid(field, error))
}

/// Cents as a two-place decimal string.
pub fn money_text(cents: u64) -> String {
    Money::from_cents(cents)
        .map(|money| money.to_string())
        .unwrap_or_else(|_| "0.00".to_owned())
}

/// A protobuf timestamp.
pub fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// A protobuf duration. A round trip is far below `i64::MAX` seconds; the sub-second nanoseconds
/// are below 10^9, within `i32`.
pub fn wire_duration(length: std::time::Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(length.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(length.subsec_nanos()).unwrap_or(0),
    }
}

/// A time from a protobuf timestamp field; a missing or invalid one is refused.
pub fn time(
    field: &'static str,
    at: Option<&prost_types::Timestamp>,
) -> Result<DateTime<Utc>, Error> {
    at.and_then(|t| DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).ok()?))
        .ok_or_else(|| Error::invalid(field, "required, a valid time"))
}

/// The wire scheme.
pub fn wire_scheme(scheme: Scheme) -> wire::Scheme {
    match scheme {
        Scheme::Employee => wire::Scheme::Employee,
        Scheme::Resident => wire::Scheme::Resident,
    }
}

/// The domain scheme of a wire value (`None` when unspecified or unknown).
pub fn scheme(value: i32) -> Option<Scheme> {
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
        scheme: wire_scheme(period.scheme()) as i32,
        region_code: period.region().to_string(),
    }
}

/// The contribution periods of a form; a malformed one is refused naming its index and part.
pub fn periods(periods: &[wire::ContributionPeriod]) -> Result<Vec<ContributionPeriod>, Error> {
    periods_of("form.periods", periods)
}

/// The contribution periods of a request's field `field`; a malformed one is refused naming
/// its index and part.
pub fn periods_of(
    field: &'static str,
    periods: &[wire::ContributionPeriod],
) -> Result<Vec<ContributionPeriod>, Error> {
    periods
        .iter()
        .enumerate()
        .map(|(index, wire)| {
            period(wire).map_err(|rule| Error::invalid(field, format!("[{index}].{rule}")))
        })
        .collect()
}

/// One contribution period, or the part that is wrong and why.
fn period(period: &wire::ContributionPeriod) -> Result<ContributionPeriod, String> {
    let month = |part: &str, text: &str| YearMonth::parse(text).map_err(|e| format!("{part}: {e}"));
    let scheme = scheme(period.scheme).ok_or_else(|| "scheme: required".to_owned())?;
    let region = RegionCode::parse(&period.region_code).map_err(|e| format!("region_code: {e}"))?;
    ContributionPeriod::new(
        month("from_month", &period.from_month)?,
        month("to_month", &period.to_month)?,
        scheme,
        region,
    )
    .map_err(|error| format!("to_month: {error}"))
}

/// The wire initiator.
pub fn wire_initiator(initiator: Initiator) -> wire::Initiator {
    match initiator {
        Initiator::TransferIn => wire::Initiator::TransferInBureau,
        Initiator::TransferOut => wire::Initiator::TransferOutBureau,
    }
}

/// The domain initiator (an unspecified one is the transfer-out bureau, which sends forms).
pub fn initiator(value: i32) -> Initiator {
    match wire::Initiator::try_from(value) {
        Ok(wire::Initiator::TransferInBureau) => Initiator::TransferIn,
        _ => Initiator::TransferOut,
    }
}

/// The wire side.
pub fn wire_side(side: Side) -> wire::Side {
    match side {
        Side::Out => wire::Side::TransferOut,
        Side::In => wire::Side::TransferIn,
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
        RefusalReason::DeadlineExpired => W::DeadlineExpired,
        RefusalReason::NotKnownAtTransferOut => W::NotKnownAtTransferOut,
        RefusalReason::FormMismatch => W::FormMismatch,
        RefusalReason::RegionNotConnected => W::RegionNotConnected,
    }
}

/// The domain refusal reason of a wire value (unknown values read as `Aborted`: not credited).
pub fn reason(value: i32) -> RefusalReason {
    RefusalReason::ALL
        .into_iter()
        .find(|reason| wire_reason(*reason) as i32 == value)
        .unwrap_or(RefusalReason::Aborted)
}

/// The wire stage of a transfer.
pub fn wire_stage(stage: Stage) -> wire::TransferState {
    use wire::TransferState as W;
    match stage {
        Stage::Applied => W::Applied,
        Stage::Accepted => W::Accepted,
        Stage::InTransit => W::InTransit,
        Stage::Credited => W::Credited,
        Stage::Completed => W::Completed,
        Stage::Rejected => W::Rejected,
        Stage::Returned => W::Returned,
        Stage::PayoutPending => W::PayoutPending,
        Stage::PaidToBank => W::PaidToBank,
        Stage::Aborting => W::Aborting,
        Stage::Aborted => W::Aborted,
        Stage::NeedsOperator => W::NeedsOperator,
        Stage::Querying => W::Querying,
        Stage::AwaitingConnection => W::AwaitingConnection,
        Stage::UnderReview => W::UnderReview,
        Stage::AwaitingFunds => W::AwaitingFunds,
    }
}

/// The domain stage of a wire state value; `None` for unspecified or unknown values.
pub fn stage(value: i32) -> Option<Stage> {
    Stage::ALL
        .into_iter()
        .find(|stage| wire_stage(*stage) as i32 == value)
}

/// A peer's snapshot of a transfer, read leniently: its stage (`None` when it is not one this
/// bureau knows) and its refusal reason, if any.
pub fn snapshot_stage(
    snapshot: &platform::TransferSnapshot,
) -> Option<(Stage, Option<RefusalReason>)> {
    let refusal = (snapshot.refusal_reason != 0).then(|| reason(snapshot.refusal_reason));
    stage(snapshot.state).map(|stage| (stage, refusal))
}

/// The wire state value of a stored state name (unspecified for an unknown name).
pub fn wire_state_of_name(name: &str) -> i32 {
    Stage::of_state_name(name)
        .map(wire_stage)
        .unwrap_or(wire::TransferState::Unspecified) as i32
}

/// The wire flow kind.
pub fn wire_flow(flow: FlowKind) -> wire::FlowKind {
    match flow {
        FlowKind::CrossProvince => wire::FlowKind::CrossProvince,
        FlowKind::IntraProvince => wire::FlowKind::IntraProvince,
        FlowKind::IntraProvinceSharedAccount => wire::FlowKind::IntraProvinceSharedAccount,
        FlowKind::EmployeeToResident => wire::FlowKind::EmployeeToResident,
        FlowKind::ResidentToEmployee => wire::FlowKind::ResidentToEmployee,
        FlowKind::NotConnectedPayout => wire::FlowKind::NotConnectedPayout,
        FlowKind::RetireePayout => wire::FlowKind::RetireePayout,
        FlowKind::RegionPayout => wire::FlowKind::RegionPayout,
    }
}

/// The domain flow kind of a wire value (`None` when unspecified or unknown).
pub fn flow(value: i32) -> Option<FlowKind> {
    FlowKind::ALL
        .into_iter()
        .find(|flow| wire_flow(*flow) as i32 == value)
}

/// The wire balance disposition.
pub fn wire_disposition(balance: BalanceDisposition) -> wire::BalanceDisposition {
    match balance {
        BalanceDisposition::MoveToAccount => wire::BalanceDisposition::MoveToAccount,
        BalanceDisposition::PayToBank(_) => wire::BalanceDisposition::PayToBank,
        BalanceDisposition::StaysUsableInProvince => {
            wire::BalanceDisposition::StaysUsableInProvince
        }
        BalanceDisposition::KeptUsableAtOrigin => wire::BalanceDisposition::KeptUsableAtOrigin,
        BalanceDisposition::NoPersonalAccount => wire::BalanceDisposition::NoPersonalAccount,
    }
}

/// The domain balance disposition of a wire value; the flow says why a payout is paid out.
pub fn disposition(value: i32, flow: Option<FlowKind>) -> Option<BalanceDisposition> {
    use wire::BalanceDisposition as W;
    Some(match W::try_from(value).ok()? {
        W::Unspecified => return None,
        W::MoveToAccount => BalanceDisposition::MoveToAccount,
        W::PayToBank => BalanceDisposition::PayToBank(
            flow.and_then(FlowKind::payout_reason)
                .unwrap_or(PayoutReason::DestinationNotConnected),
        ),
        W::StaysUsableInProvince => BalanceDisposition::StaysUsableInProvince,
        W::KeptUsableAtOrigin => BalanceDisposition::KeptUsableAtOrigin,
        W::NoPersonalAccount => BalanceDisposition::NoPersonalAccount,
    })
}

/// A bank account from a request field, checked by the domain's rule.
pub fn bank_account(account: Option<&wire::BankAccount>) -> Result<Option<BankAccount>, Error> {
    account
        .map(|account| {
            BankAccount::new(
                &account.bank_name,
                &account.account_number,
                &account.account_holder_name,
            )
            .map_err(Error::from)
        })
        .transpose()
}

/// A payout account, which must be the applicant's own.
pub fn payout_account(
    account: Option<&wire::BankAccount>,
    applicant: &str,
) -> Result<Option<BankAccount>, Error> {
    let account = bank_account(account)?;
    if let Some(account) = &account {
        check_payout_account(account, applicant)?;
    }
    Ok(account)
}

/// A bank account on the wire.
pub fn wire_bank_account(account: &BankAccount) -> wire::BankAccount {
    wire::BankAccount {
        bank_name: account.bank_name.clone(),
        account_number: account.account_number.clone(),
        account_holder_name: account.account_holder_name.clone(),
    }
}

/// The platform envelope on the wire.
pub fn wire_envelope(envelope: Envelope) -> platform::Envelope {
    platform::Envelope {
        infno: envelope.infno.to_owned(),
        msgid: envelope.msgid,
        sender_region_code: envelope.sender_region,
        receiver_region_code: envelope.receiver_region,
        sent_at: Some(timestamp(envelope.sent_at)),
        transfer_id: envelope.transfer_id,
    }
}

/// A transfer application on the wire (taken by value: it is built to be sent).
pub fn wire_application(application: TransferApplication) -> platform::TransferApplication {
    let retiree_payout_requested = application.retiree_payout == RetireePayout::Requested;
    platform::TransferApplication {
        transfer_id: application.transfer_id,
        certno: application.certno.expose_unmasked().to_owned(),
        psn_name: application.psn_name,
        insutype_at_transfer_in: application
            .in_scheme
            .map(|scheme| wire_scheme(scheme) as i32)
            .unwrap_or_default(),
        trafout_admdvs: application.out_region.to_string(),
        trafin_admdvs: application.in_region.to_string(),
        applied_at: Some(timestamp(application.applied_at)),
        bank_account: application.bank_account.as_ref().map(wire_bank_account),
        retiree_payout_requested,
        channel: wire_channel(application.channel) as i32,
    }
}

/// A transfer application from the platform; one without an application time is taken as
/// applied when it arrived (`received_at`).
pub fn application(
    wire: Option<&platform::TransferApplication>,
    received_at: DateTime<Utc>,
) -> Result<TransferApplication, Error> {
    let wire = wire.ok_or_else(|| Error::invalid("application", "required"))?;
    check_name(&wire.psn_name).map_err(|error| Error::from(error).within("application."))?;
    Ok(TransferApplication {
        transfer_id: transfer_id("application.transfer_id", &wire.transfer_id)?,
        certno: certno("application.certno", &wire.certno, china_date(received_at))?,
        psn_name: wire.psn_name.clone(),
        in_scheme: scheme(wire.insutype_at_transfer_in),
        out_region: region("application.trafout_admdvs", &wire.trafout_admdvs)?,
        in_region: region("application.trafin_admdvs", &wire.trafin_admdvs)?,
        applied_at: match wire.applied_at.as_ref() {
            None => received_at,
            Some(at) => time("application.applied_at", Some(at))?,
        },
        bank_account: payout_account(wire.bank_account.as_ref(), &wire.psn_name)
            .map_err(|error| error.within("application."))?,
        retiree_payout: RetireePayout::from(wire.retiree_payout_requested),
        // A request from the transfer-in bureau is for a connected destination: never a payout
        // asked for because the region is not connected.
        payout_requested: false,
        channel: channel(wire.channel),
    })
}

/// The channel on the wire.
pub fn wire_channel(channel: ApplicationChannel) -> wire::ApplicationChannel {
    match channel {
        ApplicationChannel::Online => wire::ApplicationChannel::Online,
        ApplicationChannel::Counter => wire::ApplicationChannel::Counter,
    }
}

/// A channel from the wire (either package's enum has the same values): counter when it says
/// so, online otherwise (unspecified, or a value from a later version, is read as online).
pub fn channel(value: i32) -> ApplicationChannel {
    if value == wire::ApplicationChannel::Counter as i32 {
        ApplicationChannel::Counter
    } else {
        ApplicationChannel::Online
    }
}

/// An insurance information form on the wire (taken by value: it is built to be sent).
pub fn wire_form(form: InsuranceForm) -> platform::InsuranceInformationForm {
    let out_region = form.out_region.to_string();
    platform::InsuranceInformationForm {
        transfer_id: form.transfer_id,
        certno: form.certno.expose_unmasked().to_owned(),
        psn_name: form.psn_name,
        insutype: form
            .scheme
            .map(|s| wire_scheme(s) as i32)
            .unwrap_or_default(),
        trafin_admdvs: form.in_region.to_string(),
        fst_insu_ym: form.first_insured,
        contribution_months: form.contribution_months,
        periods: form.periods.iter().map(wire_period).collect(),
        deemed_months: form.deemed_months,
        personal_account_balance: form.balance.to_string(),
        balance_disposition: form
            .balance_disposition
            .map(|d| wire_disposition(d) as i32)
            .unwrap_or_default(),
        flow_kind: form.flow.map(|f| wire_flow(f) as i32).unwrap_or_default(),
        initiator: wire_initiator(form.initiator) as i32,
        issued_at: Some(timestamp(form.issued_at)),
        issuing_bureau_region_code: out_region.clone(),
        trafout_admdvs: out_region,
        applied_on: form.applied_on.map(|d| d.to_string()).unwrap_or_default(),
        remittance_follows: form.remittance_follows,
    }
}

/// An insurance information form from the platform, received at `received_at`.
pub fn form(
    wire: Option<&platform::InsuranceInformationForm>,
    received_at: DateTime<Utc>,
) -> Result<InsuranceForm, Error> {
    let wire = wire.ok_or_else(|| Error::invalid("form", "required"))?;
    check_name(&wire.psn_name).map_err(|error| Error::from(error).within("form."))?;
    bounded("form.fst_insu_ym", &wire.fst_insu_ym, bound::MONTH)?;
    bounded(
        "form.issuing_bureau_region_code",
        &wire.issuing_bureau_region_code,
        bound::REGION_CODE,
    )?;
    let flow = flow(wire.flow_kind);
    let balance = money(
        "form.personal_account_balance",
        &wire.personal_account_balance,
    )?;
    credit::form_figures_within_caps(wire.contribution_months, wire.deemed_months, balance)
        .map_err(over_cap)?;
    Ok(InsuranceForm {
        transfer_id: transfer_id("form.transfer_id", &wire.transfer_id)?,
        certno: certno("form.certno", &wire.certno, china_date(received_at))?,
        psn_name: wire.psn_name.clone(),
        scheme: scheme(wire.insutype),
        out_region: region("form.trafout_admdvs", &wire.trafout_admdvs)?,
        in_region: region("form.trafin_admdvs", &wire.trafin_admdvs)?,
        first_insured: wire.fst_insu_ym.clone(),
        contribution_months: wire.contribution_months,
        periods: periods(&wire.periods)?,
        deemed_months: wire.deemed_months,
        balance,
        balance_disposition: disposition(wire.balance_disposition, flow),
        flow,
        initiator: initiator(wire.initiator),
        issued_at: time("form.issued_at", wire.issued_at.as_ref()).unwrap_or_default(),
        applied_on: day("form.applied_on", &wire.applied_on)?,
        remittance_follows: wire.remittance_follows,
    })
}

/// A remittance (infno 9106) from the platform: the amount within the form's cap.
pub fn remittance(wire: &platform::RemitBalanceRequest) -> Result<Remittance, Error> {
    let amount = money("amount", &wire.amount)?;
    credit::form_figures_within_caps(0, 0, amount).map_err(|_| {
        Error::invalid(
            "amount",
            "is above the national cap of a form's balance (10000000.00)",
        )
    })?;
    Ok(Remittance {
        addressed: addressed(wire.envelope.as_ref(), &wire.transfer_id)?,
        amount,
        remitted_at: time("remitted_at", wire.remitted_at.as_ref())?,
        msgid: wire
            .envelope
            .as_ref()
            .map(|envelope| envelope.msgid.clone())
            .unwrap_or_default(),
    })
}

/// A returned remittance (infno 9107) from the platform: the remittance's msgid, the amount
/// within the form's cap, and why it was refused (short or over).
pub fn remittance_return(
    wire: &platform::ReturnRemittanceRequest,
) -> Result<RemittanceReturn, Error> {
    let amount = money("amount", &wire.amount)?;
    credit::form_figures_within_caps(0, 0, amount).map_err(|_| {
        Error::invalid(
            "amount",
            "is above the national cap of a form's balance (10000000.00)",
        )
    })?;
    let msgid = &wire.remittance_msgid;
    if msgid.len() != 30 || !msgid.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(Error::invalid(
            "remittance_msgid",
            "must be the 30 ASCII letters and digits of the remittance's msgid",
        ));
    }
    let check = match remittance_check(wire.check) {
        Some(check @ (RemittanceCheck::Short | RemittanceCheck::Over)) => check,
        Some(RemittanceCheck::Matches) | None => {
            return Err(Error::invalid(
                "check",
                "must be SHORT or OVER: only a refused remittance is returned",
            ));
        }
    };
    // Sent by the transfer-in bureau: the envelope's sender is the transfer-in region.
    let sent = addressed(wire.envelope.as_ref(), &wire.transfer_id)?;
    Ok(RemittanceReturn {
        addressed: Addressed {
            transfer_id: sent.transfer_id,
            out_region: sent.in_region,
            in_region: sent.out_region,
        },
        remittance_msgid: msgid.clone(),
        amount,
        check,
    })
}

/// A remittance's check on the wire.
pub fn wire_remittance_check(check: RemittanceCheck) -> platform::RemittanceCheck {
    match check {
        RemittanceCheck::Matches => platform::RemittanceCheck::Matched,
        RemittanceCheck::Short => platform::RemittanceCheck::Short,
        RemittanceCheck::Over => platform::RemittanceCheck::Over,
    }
}

/// The domain check of a wire value; `None` for unspecified or unknown values.
pub fn remittance_check(value: i32) -> Option<RemittanceCheck> {
    match platform::RemittanceCheck::try_from(value).ok()? {
        platform::RemittanceCheck::Matched => Some(RemittanceCheck::Matches),
        platform::RemittanceCheck::Short => Some(RemittanceCheck::Short),
        platform::RemittanceCheck::Over => Some(RemittanceCheck::Over),
        platform::RemittanceCheck::Unspecified => None,
    }
}

/// The refusal of a form figure over its national cap, naming the field and the cap.
fn over_cap(figure: FormFigure) -> Error {
    let months = credit::MAX_FORM_MONTHS;
    match figure {
        FormFigure::ContributionMonths => Error::invalid(
            "form.contribution_months",
            format!("at most {months} months"),
        ),
        FormFigure::DeemedMonths => {
            Error::invalid("form.deemed_months", format!("at most {months} months"))
        }
        FormFigure::Balance => Error::invalid(
            "form.personal_account_balance",
            format!(
                "at most {} (national cap)",
                Money::from_cents(credit::MAX_FORM_BALANCE_CENTS).unwrap_or(Money::ZERO)
            ),
        ),
    }
}

/// A fault rule from the admin API, as written (its enums read; `FaultRules::add` checks it).
pub fn fault_rule(wire: Option<&yibao_proto::admin::v1::FaultRule>) -> Result<RuleSpec, Error> {
    use yibao_proto::admin::v1::{FaultDirection, FaultKind};
    let wire = wire.ok_or_else(|| Error::invalid("rule", "required"))?;
    let direction = match FaultDirection::try_from(wire.direction) {
        Ok(FaultDirection::Sending) => Direction::Sending,
        Ok(FaultDirection::Receiving) => Direction::Receiving,
        Ok(FaultDirection::Unspecified) => Direction::Any,
        Err(_) => return Err(Error::invalid("rule.direction", "not a FaultDirection")),
    };
    let fault = match FaultKind::try_from(wire.fault) {
        Ok(FaultKind::Delay) => Fault::Delay,
        Ok(FaultKind::Status) => Fault::Status,
        Ok(FaultKind::Infcode) => Fault::Infcode,
        Ok(FaultKind::NeverAnswer) => Fault::NeverAnswer,
        Ok(FaultKind::ResetConnection) => Fault::ResetConnection,
        Ok(FaultKind::LoseAnswer) => Fault::LoseAnswer,
        Ok(FaultKind::DeliverTwice) => Fault::DeliverTwice,
        Ok(FaultKind::Reorder) => Fault::Reorder,
        Ok(FaultKind::BankFail) => Fault::BankFail,
        Ok(FaultKind::BankDelay) => Fault::BankDelay,
        Ok(FaultKind::RegionDisconnected) => Fault::RegionDisconnected,
        Ok(FaultKind::RegionConnected) => Fault::RegionConnected,
        Ok(FaultKind::Unspecified) | Err(_) => {
            return Err(Error::invalid("rule.fault", "required: a FaultKind"));
        }
    };
    let spec = RuleSpec {
        label: wire.label.clone(),
        direction,
        message_kind: wire.message_kind.clone(),
        sender_region_code: wire.sender_region_code.clone(),
        receiver_region_code: wire.receiver_region_code.clone(),
        transfer_id: wire.transfer_id.clone(),
        certno: wire.certno.clone(),
        first_attempts: wire.first_attempts,
        probability: wire.probability,
        fault: Some(fault),
        delay_min_ms: wire.delay_min_ms,
        delay_max_ms: wire.delay_max_ms,
        grpc_code: wire.grpc_code,
        message: wire.message.clone(),
        infcode: wire.infcode,
        region_code: wire.region_code.clone(),
        status_details: wire.status_details.clone(),
    };
    // Checked once, where rules are added (`FaultRules::add`), as the TOML file's are.
    Ok(spec)
}

/// A rule in force, on the wire.
pub fn wire_fault_rule(rule: &Rule) -> yibao_proto::admin::v1::FaultRule {
    use yibao_proto::admin::v1::{FaultDirection, FaultKind};
    let spec = &rule.spec;
    let fault = match spec.fault {
        Some(Fault::Delay) => FaultKind::Delay,
        Some(Fault::Status) => FaultKind::Status,
        Some(Fault::Infcode) => FaultKind::Infcode,
        Some(Fault::NeverAnswer) => FaultKind::NeverAnswer,
        Some(Fault::ResetConnection) => FaultKind::ResetConnection,
        Some(Fault::LoseAnswer) => FaultKind::LoseAnswer,
        Some(Fault::DeliverTwice) => FaultKind::DeliverTwice,
        Some(Fault::Reorder) => FaultKind::Reorder,
        Some(Fault::BankFail) => FaultKind::BankFail,
        Some(Fault::BankDelay) => FaultKind::BankDelay,
        Some(Fault::RegionDisconnected) => FaultKind::RegionDisconnected,
        Some(Fault::RegionConnected) => FaultKind::RegionConnected,
        None => FaultKind::Unspecified,
    };
    yibao_proto::admin::v1::FaultRule {
        rule_id: rule.id.clone(),
        label: spec.label.clone(),
        direction: match spec.direction {
            Direction::Any => FaultDirection::Unspecified,
            Direction::Sending => FaultDirection::Sending,
            Direction::Receiving => FaultDirection::Receiving,
        } as i32,
        message_kind: spec.message_kind.clone(),
        sender_region_code: spec.sender_region_code.clone(),
        receiver_region_code: spec.receiver_region_code.clone(),
        transfer_id: spec.transfer_id.clone(),
        certno: spec.certno.clone(),
        first_attempts: spec.first_attempts,
        probability: spec.probability,
        fault: fault as i32,
        delay_min_ms: spec.delay_min_ms,
        delay_max_ms: spec.delay_max_ms,
        grpc_code: spec.grpc_code,
        message: spec.message.clone(),
        infcode: spec.infcode,
        region_code: spec.region_code.clone(),
        injected: rule.injected.load(std::sync::atomic::Ordering::Relaxed),
        status_details: spec.status_details.clone(),
    }
}

/// A message journal entry on the wire.
pub fn wire_journal_entry(
    entry: crate::exchanges::Entry,
) -> yibao_proto::admin::v1::MessageJournalEntry {
    use yibao_proto::admin::v1::MessageWay;
    yibao_proto::admin::v1::MessageJournalEntry {
        at: Some(timestamp(entry.at)),
        way: match entry.way {
            crate::exchanges::Way::Sent => MessageWay::Sent,
            crate::exchanges::Way::Received => MessageWay::Received,
        } as i32,
        kind: entry.kind.to_owned(),
        msgid: entry.msgid,
        sender_region_code: entry.sender,
        receiver_region_code: entry.receiver,
        transfer_id: entry.transfer_id,
        attempt: entry.attempt,
        outcome: peer_text(&entry.outcome.to_string()),
        fault: entry.fault,
        round_trip: entry.round_trip.map(wire_duration),
    }
}

/// A refusal on the wire.
pub fn wire_rejection(reason: RefusalReason) -> platform::TransferRejection {
    platform::TransferRejection {
        reason_code: wire_reason(reason) as i32,
        reason: reason.message().to_owned(),
    }
}

/// A decision on a request, on the wire.
pub fn wire_decision(decision: &Decision) -> platform::request_transfer_out_response::Decision {
    use platform::request_transfer_out_response::Decision as W;
    match decision {
        Decision::Accepted {
            accepted_at,
            transfer_out_due_on,
        } => W::Accepted(platform::TransferAcceptance {
            accepted_at: Some(timestamp(*accepted_at)),
            transfer_out_due_on: transfer_out_due_on
                .map(|d| d.to_string())
                .unwrap_or_default(),
        }),
        Decision::UnderReview {
            received_at,
            decided_on,
            transfer_out_due_on,
        } => W::UnderReview(platform::TransferUnderReview {
            received_at: Some(timestamp(*received_at)),
            decided_on: decided_on.map(|d| d.to_string()).unwrap_or_default(),
            transfer_out_due_on: transfer_out_due_on
                .map(|d| d.to_string())
                .unwrap_or_default(),
        }),
        Decision::Refused { reason, .. } => W::Rejected(wire_rejection(*reason)),
    }
}

/// A decision on a request, from the platform's answer.
pub fn decision(wire: &platform::request_transfer_out_response::Decision) -> Decision {
    use platform::request_transfer_out_response::Decision as W;
    match wire {
        W::Accepted(acceptance) => Decision::Accepted {
            accepted_at: time("accepted_at", acceptance.accepted_at.as_ref()).unwrap_or_default(),
            transfer_out_due_on: day("transfer_out_due_on", &acceptance.transfer_out_due_on)
                .ok()
                .flatten(),
        },
        W::UnderReview(review) => Decision::UnderReview {
            received_at: time("received_at", review.received_at.as_ref()).unwrap_or_default(),
            decided_on: day("decided_on", &review.decided_on).ok().flatten(),
            transfer_out_due_on: day("transfer_out_due_on", &review.transfer_out_due_on)
                .ok()
                .flatten(),
        },
        W::Rejected(rejection) => Decision::Refused {
            reason: reason(rejection.reason_code),
            open_transfer: None,
        },
    }
}

/// A credit on the wire.
pub fn wire_credit(credit: &Credit) -> platform::Credited {
    platform::Credited {
        credited_months: credit.months,
        credited_amount: money_text(credit.amount_cents),
        credited_at: Some(timestamp(credit.at)),
    }
}

/// A form's outcome on the wire.
pub fn wire_form_outcome(outcome: &FormOutcome) -> platform::CreditAcknowledgement {
    use platform::credit_acknowledgement::Outcome;
    platform::CreditAcknowledgement {
        outcome: Some(match outcome {
            FormOutcome::Credited(credit) => Outcome::Credited(wire_credit(credit)),
            FormOutcome::Refused(reason) => Outcome::Refused(wire_rejection(*reason)),
        }),
    }
}

/// A form's outcome from the platform's answer.
pub fn form_outcome(wire: &platform::credit_acknowledgement::Outcome) -> FormOutcome {
    use platform::credit_acknowledgement::Outcome;
    match wire {
        Outcome::Credited(credited) => FormOutcome::Credited(Credit {
            months: credited.credited_months,
            amount_cents: Money::parse(&credited.credited_amount)
                .map(Money::cents)
                .unwrap_or(0),
            at: time("credited_at", credited.credited_at.as_ref()).unwrap_or_default(),
        }),
        Outcome::Refused(rejection) => FormOutcome::Refused(reason(rejection.reason_code)),
    }
}

/// A stored ID number, masked: empty stays empty (a transfer known only by its id), and one
/// that does not parse is masked whole rather than shown.
pub fn masked_certno(text: &str) -> String {
    match ResidentId::parse(text) {
        Ok(id) => id.masked(),
        Err(_) if text.is_empty() => String::new(),
        Err(_) => "*".repeat(text.chars().count().min(18)),
    }
}

/// Whether a certificate is shown to its holder (issued) or to anyone checking a code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disclosure {
    /// The holder's own copy, for a caller who named the holder: everything in full.
    Full,
    /// A verification, for anyone holding the code: name and ID number masked, and no balance
    /// (the verifier checks that the certificate exists and whose it is, not the money).
    Masked,
}

/// A certificate on the wire.
pub fn wire_certificate(
    certificate: &Certificate,
    disclosure: Disclosure,
    issuing_bureau: &str,
) -> bureau_wire::InsuranceCertificate {
    let body = &certificate.body;
    let (psn_name, certno, balance, balance_in_capitals) = match disclosure {
        Disclosure::Full => (
            body.psn_name.clone(),
            body.certno.clone(),
            certificate.balance.to_string(),
            certificate.balance.to_chinese_capital(),
        ),
        Disclosure::Masked => (
            mask_name(&body.psn_name),
            certificate.holder.masked(),
            String::new(),
            String::new(),
        ),
    };
    bureau_wire::InsuranceCertificate {
        psn_name,
        certno,
        insutype: body.insutype,
        insuring_region_code: body.region.clone(),
        insuring_region_name: body.region_name.clone(),
        insured_from_month: body.from.clone(),
        insured_to_month: body.to.clone(),
        benefits_from_month: body.from.clone(),
        benefits_to_month: body.benefits_to.clone(),
        personal_account_balance: balance,
        personal_account_balance_in_capitals: balance_in_capitals,
        issuing_bureau: issuing_bureau.to_owned(),
        printed_at: Some(timestamp(body.printed_at)),
        verification_code: body.code.clone(),
    }
}

/// A masked name.
pub fn masked_name(name: &str) -> String {
    mask_name(name)
}

/// A person's record as the APIs show it (参保信息): personal data masked, the balance in
/// `balance_cents`.
pub fn wire_person(
    person: &PersonRecord,
    balance_cents: u64,
    pooling: &Pooling,
) -> bureau_wire::PersonRecord {
    bureau_wire::PersonRecord {
        masked_certno: masked_certno(&person.row.certno),
        masked_psn_name: masked_name(&person.row.psn_name),
        poolarea_no: pooling.pooling_region(person.facts.region).to_string(),
        insu_admdvs: person.row.insu_admdvs.clone(),
        insutype: wire_scheme(person.facts.scheme) as i32,
        psn_insu_stas: i32::from(person.row.psn_insu_stas),
        fst_insu_ym: person.row.fst_insu_ym.clone(),
        contribution_months: credit::months_on_record(
            &person.periods,
            person.row.deemed_months,
            person.facts.region,
            pooling,
        ),
        periods: person.periods.iter().map(wire_period).collect(),
        deemed_months: person.row.deemed_months,
        personal_account_balance: money_text(balance_cents),
        arrears_amount: person.facts.arrears.to_string(),
        retired: person.row.retired,
        // GetPerson fills it from the person's transfers (persons::latest_continuity).
        benefit_continuity: None,
    }
}

/// A transfer as the bureau API shows it: personal data masked, deadlines computed on `today`.
pub fn wire_transfer(
    site: &Site,
    today: NaiveDate,
    document: &TransferDocument,
    events: &[EventRow],
) -> bureau_wire::Transfer {
    let deadlines = site
        .deadlines(document.applied_on, document.form_received_on)
        .map(|d| {
            let remittance_due_on = document.remittance_deadline(&site.calendar);
            let overdue = Overdue::of_transfer(&d, document.state, remittance_due_on, today);
            bureau_wire::Deadlines {
                transfer_out_due_on: d.transfer_out_due.due_on.to_string(),
                transfer_in_due_on: d.transfer_in_due.due_on.to_string(),
                whole_process_due_on: d.whole_process_due.due_on.to_string(),
                overdue: overdue.any(),
                estimated_weekends_only: !d.whole_process_due.basis.is_official()
                    || !d.transfer_in_due.basis.is_official(),
                transfer_out_overdue: overdue.transfer_out,
                transfer_in_overdue: overdue.transfer_in,
                whole_process_overdue: overdue.whole_process,
                remittance_due_on: remittance_due_on
                    .map(|day| day.to_string())
                    .unwrap_or_default(),
                remittance_overdue: overdue.remittance,
            }
        });
    let refusal = document.state.refusal();
    bureau_wire::Transfer {
        transfer_id: document.transfer_id.clone(),
        side: wire_side(document.side()) as i32,
        initiator: wire_initiator(document.initiator) as i32,
        state: wire_stage(document.state.stage()) as i32,
        flow_kind: document
            .flow
            .map(|f| wire_flow(f) as i32)
            .unwrap_or_default(),
        balance_disposition: document
            .balance
            .map(|b| wire_disposition(b) as i32)
            .unwrap_or_default(),
        masked_certno: masked_certno(&document.certno),
        trafout_admdvs: document.trafout_admdvs.clone(),
        trafin_admdvs: document.trafin_admdvs.clone(),
        personal_account_balance: money_text(document.amount_cents),
        contribution_months: document.contribution_months,
        deadlines,
        history: events.iter().map(wire_event).collect(),
        refusal_reason: refusal.map(|r| wire_reason(r) as i32).unwrap_or_default(),
        refusal_message: refusal.map(|r| r.message().to_owned()).unwrap_or_default(),
        created_at: Some(timestamp(document.created_at)),
        updated_at: Some(timestamp(document.updated_at)),
        benefit_continuity: document.continuity.as_ref().map(wire_continuity),
    }
}

/// Benefit continuity on the wire.
pub fn wire_continuity(continuity: &Continuity) -> bureau_wire::BenefitContinuity {
    let (back_pay_allowed, back_pay_months) = match continuity.back_pay {
        BackPay::Allowed { months } => (true, months),
        BackPay::NotAllowed => (false, 0),
    };
    bureau_wire::BenefitContinuity {
        gap_months: continuity.gap_months,
        back_pay_allowed,
        back_pay_months,
        waiting_period_months: u32::from(continuity.waiting_period_months),
        benefits_start_month: continuity.benefits_start.to_string(),
    }
}

fn wire_event(event: &EventRow) -> bureau_wire::TransferEvent {
    bureau_wire::TransferEvent {
        at: Some(timestamp(event.at)),
        kind: event.kind.clone(),
        from_state: wire_state_of_name(&event.from_state),
        to_state: wire_state_of_name(&event.to_state),
        detail: event.detail.clone(),
        attempt: event.attempt,
    }
}

/// A transfer as the platform's query shows it.
pub fn wire_snapshot(document: &TransferDocument) -> platform::TransferSnapshot {
    let refusal = document.state.refusal();
    platform::TransferSnapshot {
        transfer_id: document.transfer_id.clone(),
        state: wire_stage(document.state.stage()) as i32,
        side: wire_side(document.side()) as i32,
        updated_at: Some(timestamp(document.updated_at)),
        refusal_reason: refusal.map(|r| wire_reason(r) as i32).unwrap_or_default(),
        refusal_message: refusal.map(|r| r.message().to_owned()).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// bureau.proto, "Status codes": the `yibao-refusal-reason` trailer is the RefusalReason
    /// value name, for every reason.
    #[test]
    fn the_refusal_reason_trailer_is_the_contracts_enum_value_name() {
        for reason in RefusalReason::ALL {
            assert_eq!(
                crate::error::refusal_trailer(reason),
                wire_reason(reason).as_str_name()
            );
        }
        assert_eq!(
            crate::error::refusal_trailer(RefusalReason::Arrears),
            "REFUSAL_REASON_ARREARS"
        );
    }

    #[test]
    fn a_bound_counts_characters_and_names_the_field_never_the_value() {
        let fifty = "张".repeat(50);
        assert_eq!(bounded("psn_name", &fifty, 50).ok(), Some(fifty.as_str()));
        let error = bounded("form.fst_insu_ym", "2015070", bound::MONTH).expect_err("too long");
        assert_eq!(error.to_string(), "form.fst_insu_ym: at most 6 characters");
        let error = money("form.personal_account_balance", &"9".repeat(16)).expect_err("long");
        assert_eq!(
            error.to_string(),
            "form.personal_account_balance: at most 15 characters"
        );
        assert!(
            money("amount", "999999999999.99").is_ok(),
            "the largest fits"
        );
        assert!(day("applied_on", "2026-03-02-").is_err());
        let error = population_flow("flow", &"x".repeat(65)).expect_err("long");
        assert_eq!(error.to_string(), "flow: at most 64 characters");
    }

    #[test]
    fn a_peers_text_is_cut_to_the_bound() {
        assert_eq!(peer_text("短"), "短");
        let exact = "错".repeat(bound::TEXT);
        assert_eq!(peer_text(&exact), exact);
        let cut = peer_text(&"错".repeat(bound::TEXT + 50));
        assert_eq!(cut.chars().count(), bound::TEXT + 1);
        assert!(cut.ends_with('…'));
    }

    /// 10:00 on Tuesday 10 March 2026, China time.
    fn received_at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-10T02:00:00Z")
            .expect("a valid time")
            .with_timezone(&Utc)
    }

    /// A valid ID number of someone born on `birth` (YYYYMMDD).
    fn born(birth: &str) -> String {
        let birth = NaiveDate::parse_from_str(birth, "%Y%m%d").expect("a date");
        let region = RegionCode::parse("150102").expect("a region");
        ResidentId::from_parts(region, birth, 1)
            .expect("valid parts")
            .expose_unmasked()
            .to_owned()
    }

    /// Future birth dates: an ID number whose birth date is after the China date it arrives on
    /// is refused naming the field, in an application and in a form alike; born that day (in
    /// China, though still the day before in UTC) is accepted.
    #[test]
    fn a_platform_certno_born_after_today_is_refused_naming_the_field() {
        let application_of = |certno: String| platform::TransferApplication {
            transfer_id: "540100202603100000001".to_owned(),
            certno,
            psn_name: "刘娟涛".to_owned(),
            trafout_admdvs: "150100".to_owned(),
            trafin_admdvs: "540100".to_owned(),
            ..Default::default()
        };
        let form_of = |certno: String| platform::InsuranceInformationForm {
            transfer_id: "150100202603100000001".to_owned(),
            certno,
            psn_name: "刘娟涛".to_owned(),
            trafout_admdvs: "150100".to_owned(),
            trafin_admdvs: "540100".to_owned(),
            personal_account_balance: "0.00".to_owned(),
            ..Default::default()
        };
        // 00:30 on 11 March in Beijing is still 10 March in UTC.
        let just_after_midnight = DateTime::parse_from_rfc3339("2026-03-10T16:30:00Z")
            .expect("a valid time")
            .with_timezone(&Utc);
        assert!(application(Some(&application_of(born("20260311"))), just_after_midnight).is_ok());
        assert!(form(Some(&form_of(born("20260311"))), just_after_midnight).is_ok());
        let refused = application(Some(&application_of(born("20260311"))), received_at())
            .expect_err("born tomorrow");
        assert!(
            refused.to_string().starts_with("application.certno: "),
            "{refused}"
        );
        let refused =
            form(Some(&form_of(born("20260311"))), received_at()).expect_err("born tomorrow");
        assert!(
            refused.to_string().starts_with("form.certno: "),
            "{refused}"
        );
    }

    #[test]
    fn a_form_over_a_national_cap_is_refused_naming_the_figure() {
        let valid = platform::InsuranceInformationForm {
            transfer_id: "150100202603100000001".to_owned(),
            certno: "150102197001010001".to_owned(),
            psn_name: "刘娟涛".to_owned(),
            trafout_admdvs: "150100".to_owned(),
            trafin_admdvs: "540100".to_owned(),
            personal_account_balance: "1000000.00".to_owned(),
            contribution_months: 600,
            ..Default::default()
        };
        let received_at = received_at();
        assert!(
            form(Some(&valid), received_at).is_ok(),
            "a million and fifty years pass"
        );
        let over = |change: fn(&mut platform::InsuranceInformationForm)| {
            let mut wire = valid.clone();
            change(&mut wire);
            form(Some(&wire), received_at)
                .expect_err("over a cap")
                .to_string()
        };
        let message = over(|f| f.contribution_months = 1_201);
        assert!(
            message.starts_with("form.contribution_months: at most 1200"),
            "{message}"
        );
        let message = over(|f| f.deemed_months = 1_201);
        assert!(message.starts_with("form.deemed_months"), "{message}");
        let message = over(|f| f.personal_account_balance = "10000000.01".to_owned());
        assert!(
            message.starts_with("form.personal_account_balance: at most 10000000.00"),
            "{message}"
        );
    }
}
