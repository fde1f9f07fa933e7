//! Unit tests of `migrate` on an in-memory store, over documents the previous release itself
//! wrote (`fixtures/documents-format-1.jsonl`, one per old state): each is rewritten in the
//! current format with the state, flow and disposition it meant; the format is recorded and a
//! second run rewrites nothing; a corrupt document fails the migration; transfers left CREDITED
//! complete.

use std::sync::Arc;

use chrono::NaiveDate;
use yibao_domain::classify::{
    BalanceDisposition, FlowKind, PayoutReason, RetireePayout, Settlement,
};
use yibao_domain::population;
use yibao_domain::transfer::in_side::InState;
use yibao_domain::transfer::out_side::{AbortFallback, BalanceRoute, OutState};
use yibao_domain::transfer::{RefusalReason, Side, TransferState};
use yibao_runtime::directory::BureauRole;
use yibao_store::TransferRow;

use crate::error::Error;
use crate::migrate::{self, FORMAT, FORMAT_SETTING};
use crate::services::Services;
use crate::testing;

/// The previous release's documents, one per line.
const FIXTURE: &str = include_str!("../../fixtures/documents-format-1.jsonl");

/// What each fixture line must become, in order: the state column the previous release wrote
/// beside it, and the document's state now.
fn expected_states() -> Vec<(&'static str, TransferState)> {
    let in_transit = OutState::InTransit {
        balance: BalanceRoute::MovesWithForm,
    };
    let aborting = OutState::Aborting {
        balance: BalanceRoute::ToBankAfterCredit,
        fallback: AbortFallback::PayToBank,
    };
    let out = TransferState::Out;
    let inn = TransferState::In;
    vec![
        ("IN_TRANSIT", out(in_transit)),
        ("ABORTING", out(aborting)),
        ("PAYOUT_PENDING", out(OutState::PayoutPending)),
        ("COMPLETED", out(OutState::Completed)),
        ("REJECTED", out(OutState::Rejected(RefusalReason::Arrears))),
        ("RETURNED", out(OutState::Returned(RefusalReason::Aborted))),
        ("PAID_TO_BANK", out(OutState::PaidToBank)),
        ("APPLIED", inn(InState::Applied)),
        ("REQUESTED", inn(InState::Requested)),
        ("CREDITED", inn(InState::Credited)),
        ("COMPLETED", inn(InState::Completed)),
        (
            "REJECTED",
            inn(InState::Rejected(RefusalReason::NotEnrolledAtTransferIn)),
        ),
        ("ABORTED", inn(InState::Aborted)),
    ]
}

/// The flow and disposition fixture line `index` must have: the lines cycle through the wire
/// flows 1 (cross-province, balance moved: disposition 1), 5 (retiree payout, paid to the bank:
/// 2), 2 (intra-province shared account, stays usable: 3) and 3 (intra-province, moved: 1);
/// see `proto/yibao/common/v1/common.proto`.
fn expected_flow(index: usize) -> (FlowKind, BalanceDisposition) {
    let retiree = BalanceDisposition::PayToBank(PayoutReason::RetireeRelocated);
    match index % 4 {
        0 => (FlowKind::CrossProvince, BalanceDisposition::MoveToAccount),
        1 => (FlowKind::RetireePayout, retiree),
        2 => (
            FlowKind::IntraProvinceSharedAccount,
            BalanceDisposition::StaysUsableInProvince,
        ),
        _ => (FlowKind::IntraProvince, BalanceDisposition::MoveToAccount),
    }
}

fn lines() -> Vec<&'static str> {
    FIXTURE
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect()
}

/// Whether the previous release counted a state name as open.
fn open(state: &str) -> bool {
    matches!(
        state,
        "IN_TRANSIT" | "ABORTING" | "PAYOUT_PENDING" | "APPLIED" | "REQUESTED" | "CREDITED"
    )
}

/// The transfer id of a fixture line.
fn id_of(line: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(line).expect("a fixture line is JSON");
    value["transfer_id"]
        .as_str()
        .expect("a fixture line has a transfer id")
        .to_owned()
}

/// The row the previous release stored for fixture line `index`. Every fixture names the same
/// person; the store allows one open transfer per person, so each row gets its own `certno`
/// column (the document keeps its own).
fn row(index: usize, state: &str, document: &str) -> TransferRow {
    let index = u64::try_from(index).expect("a small index");
    let certno = population::person(testing::SEED, index)
        .expect("in range")
        .certno;
    let created = chrono::DateTime::parse_from_rfc3339("2026-09-21T14:13:20Z")
        .expect("a valid time")
        .to_utc();
    TransferRow {
        transfer_id: id_of(document),
        certno: certno.expose_unmasked().to_owned(),
        state: state.to_owned(),
        open: open(state),
        whole_process_due_on: NaiveDate::from_ymd_opt(2026, 11, 2),
        created_at: created,
        updated_at: created,
        document: document.to_owned(),
    }
}

/// A bureau whose store holds the fixture as the previous release left it.
async fn store_with_fixture() -> Arc<Services> {
    let services = testing::services(BureauRole::TransferIn);
    let rows: Vec<TransferRow> = lines()
        .into_iter()
        .zip(expected_states())
        .enumerate()
        .map(|(index, (line, (state, _)))| row(index, state, line))
        .collect();
    services
        .store
        .write(move |tx| -> Result<(), Error> {
            for row in &rows {
                tx.insert_transfer(row)?;
            }
            Ok(())
        })
        .await
        .expect("the fixture rows insert");
    services
}

async fn upgrade(services: &Services) -> Result<u64, Error> {
    migrate::upgrade_documents(services).await
}

async fn raw_documents(services: &Services) -> Vec<String> {
    testing::read(services, |tx| Ok(tx.transfers_after("", 100)?))
        .await
        .into_iter()
        .map(|row| row.document)
        .collect()
}

#[test]
fn the_fixture_covers_every_old_state_once_per_side() {
    assert_eq!(lines().len(), 13);
    assert_eq!(expected_states().len(), 13);
    for line in lines() {
        assert!(
            crate::record::decode_document(line).is_err(),
            "a format-1 document does not read as format 2: {line}"
        );
    }
}

#[tokio::test]
async fn every_document_of_the_previous_release_loads_with_the_state_it_meant() {
    let services = store_with_fixture().await;
    assert_eq!(upgrade(&services).await.expect("the migration runs"), 13);
    let cases = lines().into_iter().zip(expected_states()).enumerate();
    for (index, (line, (state, expected_state))) in cases {
        let id = id_of(line);
        let (flow, balance) = expected_flow(index);
        let document = testing::document(&services, &id).await;
        assert_eq!(document.state, expected_state, "{id}");
        assert_eq!(
            document.state.name(),
            state,
            "{id}: the state column still fits"
        );
        assert_eq!(document.flow, Some(flow), "{id}");
        assert_eq!(document.balance, Some(balance), "{id}");
        let side = match expected_state {
            TransferState::Out(_) => Side::Out,
            TransferState::In(_) => Side::In,
        };
        assert_eq!(document.side(), side, "{id}");
        assert_eq!(document.amount_cents, 123_456, "{id}");
        assert_eq!(document.contribution_months, 60, "{id}");
        assert_eq!(document.certno, "110101199003074514", "{id}");
        assert_eq!(
            document.applied_on,
            NaiveDate::from_ymd_opt(2026, 9, 21).expect("a day")
        );
    }
}

#[tokio::test]
async fn the_flags_of_the_previous_release_become_the_domain_values() {
    let services = store_with_fixture().await;
    upgrade(&services).await.expect("the migration runs");
    let completed = testing::document(&services, "540100202609210000003").await;
    assert_eq!(completed.settlement, Settlement::Instant);
    let account = completed.bank_account.expect("the bank account is kept");
    assert_eq!(account.account_number, "6222000011112222333");
    let returned = testing::document(&services, "540100202609210000005").await;
    assert_eq!(returned.retiree_payout, RetireePayout::Requested);
    assert_eq!(returned.settlement, Settlement::Asynchronous);
    let credited = testing::document(&services, "540100202609210000009").await;
    assert_eq!(
        credited.form_received_on,
        NaiveDate::from_ymd_opt(2026, 9, 21)
    );
    assert_eq!(credited.retiree_payout, RetireePayout::NotRequested);
}

#[tokio::test]
async fn the_format_is_recorded_and_a_second_run_rewrites_nothing() {
    let services = store_with_fixture().await;
    upgrade(&services).await.expect("the migration runs");
    let setting = testing::read(&services, |tx| Ok(tx.setting(FORMAT_SETTING)?)).await;
    assert_eq!(setting.as_deref(), Some(FORMAT));
    let after_first = raw_documents(&services).await;
    assert_eq!(upgrade(&services).await.expect("a second run"), 0);
    assert_eq!(raw_documents(&services).await, after_first);
    // Even with the record lost, documents already in the current format are left alone.
    services
        .store
        .write(|tx| -> Result<(), Error> { Ok(tx.put_setting(FORMAT_SETTING, "1")?) })
        .await
        .expect("the setting is reset");
    assert_eq!(upgrade(&services).await.expect("a third run"), 0);
    assert_eq!(raw_documents(&services).await, after_first);
}

#[tokio::test]
async fn a_corrupt_document_fails_the_migration_and_is_never_defaulted() {
    for corrupt in [
        "{not json",
        r#"{"transfer_id":"540100202609210000099","side":"out"}"#,
        &lines()[0].replace(r#""in_transit""#, r#""teleported""#),
    ] {
        let services = store_with_fixture().await;
        let broken = TransferRow {
            transfer_id: "540100202609210000099".to_owned(),
            ..row(99, "IN_TRANSIT", lines()[0])
        };
        let broken = TransferRow {
            document: corrupt.to_owned(),
            ..broken
        };
        services
            .store
            .write(move |tx| -> Result<(), Error> { Ok(tx.insert_transfer(&broken)?) })
            .await
            .expect("the corrupt row inserts");
        let result = upgrade(&services).await;
        assert!(
            matches!(result, Err(Error::Internal(_))),
            "{corrupt}: {result:?}"
        );
        let setting = testing::read(&services, |tx| Ok(tx.setting(FORMAT_SETTING)?)).await;
        assert_eq!(setting, None, "{corrupt}: not recorded as migrated");
        let id = "540100202609210000099".to_owned();
        let loaded = testing::read(&services, move |tx| {
            Ok(crate::record::load(tx, &id).map(drop).is_err())
        })
        .await;
        assert!(loaded, "{corrupt}: loading it stays an error");
    }
}

#[tokio::test]
async fn a_transfer_left_credited_by_an_earlier_version_completes() {
    let services = store_with_fixture().await;
    upgrade(&services).await.expect("the migration runs");
    migrate::complete_credited(&services)
        .await
        .expect("completing runs");
    let credited = "540100202609210000009";
    let document = testing::document(&services, credited).await;
    assert_eq!(document.state, TransferState::In(InState::Completed));
    let events = testing::events(&services, credited).await;
    assert_eq!(testing::kinds(&events), vec!["SETTLEMENT_CONFIRMED"]);
    let id = credited.to_owned();
    let row = testing::read(&services, move |tx| Ok(tx.transfer(&id)?))
        .await
        .expect("the row is stored");
    assert_eq!((row.state.as_str(), row.open), ("COMPLETED", false));
    for (line, (_, expected_state)) in lines().into_iter().zip(expected_states()) {
        let id = id_of(line);
        if id != credited {
            let state = testing::document(&services, &id).await.state;
            assert_eq!(state, expected_state, "{id} is left as it was");
        }
    }
}

#[tokio::test]
async fn run_rewrites_the_documents_then_completes_the_credited_ones() {
    let services = store_with_fixture().await;
    assert_eq!(
        migrate::run(&services).await.expect("the migration runs"),
        13
    );
    let document = testing::document(&services, "540100202609210000009").await;
    assert_eq!(document.state, TransferState::In(InState::Completed));
    assert_eq!(migrate::run(&services).await.expect("a second run"), 0);
}

/// An earlier release could store a transfer without a due date; the completion finds it.
#[tokio::test]
async fn a_transfer_left_credited_without_a_due_date_completes_too() {
    let services = testing::services(BureauRole::TransferIn);
    let line = lines()[9];
    let undated = TransferRow {
        whole_process_due_on: None,
        ..row(9, "CREDITED", line)
    };
    services
        .store
        .write(move |tx| -> Result<(), Error> { Ok(tx.insert_transfer(&undated)?) })
        .await
        .expect("the row inserts");
    migrate::run(&services).await.expect("the migration runs");
    let document = testing::document(&services, &id_of(line)).await;
    assert_eq!(document.state, TransferState::In(InState::Completed));
}

/// The current format, as the fixtures of the previous one become: a change to how a stored
/// document serialises (a renamed variant or field) fails here and needs a migration of its own.
const FORMAT_2: &str = include_str!("../../fixtures/documents-format-2.jsonl");

#[test]
fn the_current_document_format_is_pinned_by_a_fixture() {
    let old: Vec<&str> = FIXTURE.lines().filter(|line| !line.is_empty()).collect();
    let now: Vec<&str> = FORMAT_2.lines().filter(|line| !line.is_empty()).collect();
    assert_eq!(old.len(), now.len(), "one current line per old line");
    for (old, now) in old.iter().zip(&now) {
        let upgraded = migrate::upgrade(old).expect("the old line upgrades");
        let written = serde_json::to_string(&upgraded).expect("serialises");
        assert_eq!(&written, now, "the stored format changed");
        let read = crate::record::decode_document(now).expect("the current line decodes");
        assert_eq!(read, upgraded);
    }
}
