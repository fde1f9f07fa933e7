//! Every flow of DOMAIN.md through the bureau API, both services as real processes: what happens
//! to years and balance, and every refusal with its own reason code. The ledger is checked after
//! each test.

use yibao_domain::population::{Flow, SyntheticPerson};
use yibao_proto::bureau::v1::bureau_service_client::BureauServiceClient;
use yibao_proto::bureau::v1::{ApplyTransferRequest, GetPersonRequest, PersonRecord, Transfer};
use yibao_proto::common::v1::{BankAccount, RefusalReason, TransferState};
use yibao_tests::*;

fn with_bank(person: &SyntheticPerson) -> ApplyTransferRequest {
    let mut request = application(person);
    request.bank_account = Some(BankAccount {
        bank_name: "中国建设银行".to_owned(),
        account_number: person.bank_account_number.clone(),
        account_holder_name: person.name.clone(),
    });
    request
}

async fn apply(endpoint: &str, request: ApplyTransferRequest) -> Result<Transfer, tonic::Status> {
    let mut client = BureauServiceClient::new(channel(endpoint).await);
    Ok(client
        .apply_transfer(request)
        .await?
        .into_inner()
        .transfer
        .expect("transfer"))
}

async fn person(endpoint: &str, who: &SyntheticPerson) -> PersonRecord {
    let mut client = BureauServiceClient::new(channel(endpoint).await);
    client
        .get_person(GetPersonRequest {
            certno: who.certno.expose_unmasked().to_owned(),
        })
        .await
        .expect("person")
        .into_inner()
        .person
        .expect("person")
}

fn refusal_of(status: &tonic::Status) -> String {
    status
        .metadata()
        .get("yibao-refusal-reason")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn a_transfer_out_initiated_transfer_runs_the_same_exchange() {
    let pair = seeded_pair().await;
    // The bureaus' days differ: the transfer-in bureau's deadlines must still count from the day
    // the person applied at the transfer-out bureau, which only the form tells it.
    pair.admin_in()
        .advance_clock(yibao_proto::admin::v1::AdvanceClockRequest {
            by: Some(prost_types::Duration {
                seconds: 10 * 86_400,
                nanos: 0,
            }),
        })
        .await
        .expect("advance the transfer-in clock");
    let who = someone(Flow::CrossProvinceOutInitiated);
    let applied = apply(pair.out_endpoint(), application(&who))
        .await
        .expect("accepted");
    let out = until_state(
        pair.out_endpoint(),
        &applied.transfer_id,
        TransferState::Completed,
    )
    .await;
    let inn = until_state(
        pair.in_endpoint(),
        &applied.transfer_id,
        TransferState::Completed,
    )
    .await;
    assert_eq!(cents(&inn.personal_account_balance), who.balance.cents());
    let due = |t: &yibao_proto::bureau::v1::Transfer| {
        t.deadlines
            .as_ref()
            .map(|d| d.transfer_out_due_on.clone())
            .unwrap_or_default()
    };
    assert!(!due(&out).is_empty());
    assert_eq!(due(&inn), due(&out), "both count from the application day");
    assert_eq!(
        cents(
            &person(pair.in_endpoint(), &who)
                .await
                .personal_account_balance
        ),
        who.balance.cents()
    );
    assert_eq!(
        cents(
            &person(pair.out_endpoint(), &who)
                .await
                .personal_account_balance
        ),
        0
    );
    assert_conserved(&pair).await;
}

#[tokio::test]
async fn a_shared_provincial_account_moves_years_but_no_money() {
    let pair = seeded_pair().await;
    let who = someone(Flow::IntraProvinceShared);
    let applied = apply(pair.in_endpoint(), application(&who))
        .await
        .expect("accepted");
    until_state(
        pair.in_endpoint(),
        &applied.transfer_id,
        TransferState::Completed,
    )
    .await;
    let at_in = person(pair.in_endpoint(), &who).await;
    assert!(at_in.deemed_months > 0, "years moved");
    assert_eq!(cents(&at_in.personal_account_balance), 0, "no money moved");
    assert_eq!(
        cents(
            &person(pair.out_endpoint(), &who)
                .await
                .personal_account_balance
        ),
        who.balance.cents(),
        "the balance stays usable across the province"
    );
    assert_eq!(
        cents(&totals(pair.out_endpoint()).await.debited_to_transit_total),
        0
    );
    assert_conserved(&pair).await;
}

#[tokio::test]
async fn instant_mode_completes_within_the_request() {
    let pair = seeded_pair().await;
    let who = someone(Flow::Instant);
    let applied = apply(pair.in_endpoint(), application(&who))
        .await
        .expect("accepted");
    assert_eq!(
        applied.state,
        TransferState::Completed as i32,
        "秒到账: done when the answer comes"
    );
    assert_eq!(
        cents(
            &person(pair.in_endpoint(), &who)
                .await
                .personal_account_balance
        ),
        who.balance.cents()
    );
    assert_conserved(&pair).await;
}

#[tokio::test]
async fn employee_to_resident_moves_years_and_pays_the_balance_out() {
    let pair = seeded_pair().await;
    let who = someone(Flow::EmployeeToResident);
    let refused = apply(pair.in_endpoint(), application(&who))
        .await
        .expect("applied");
    // Without a bank account the transfer-out bureau refuses: the balance would have nowhere to go.
    let refused = until_state(
        pair.in_endpoint(),
        &refused.transfer_id,
        TransferState::Rejected,
    )
    .await;
    assert_eq!(
        refused.refusal_reason,
        RefusalReason::BankAccountRequired as i32
    );

    let applied = apply(pair.in_endpoint(), with_bank(&who))
        .await
        .expect("applied");
    until_state(
        pair.out_endpoint(),
        &applied.transfer_id,
        TransferState::PaidToBank,
    )
    .await;
    until_state(
        pair.in_endpoint(),
        &applied.transfer_id,
        TransferState::Completed,
    )
    .await;
    let at_in = person(pair.in_endpoint(), &who).await;
    assert!(at_in.deemed_months > 0, "years moved");
    assert_eq!(
        cents(&at_in.personal_account_balance),
        0,
        "the resident scheme has no account"
    );
    assert_eq!(
        cents(&totals(pair.out_endpoint()).await.paid_to_bank_total),
        who.balance.cents()
    );
    assert_conserved(&pair).await;
}

#[tokio::test]
async fn resident_to_employee_converts_resident_years() {
    let pair = seeded_pair().await;
    let who = someone(Flow::ResidentToEmployee);
    let applied = apply(pair.in_endpoint(), application(&who))
        .await
        .expect("applied");
    let done = until_state(
        pair.in_endpoint(),
        &applied.transfer_id,
        TransferState::Completed,
    )
    .await;
    let resident_months: u32 = who.periods.iter().map(|p| p.months()).sum();
    // Xi'an's policy in deploy/regions.toml: 1 resident year counts as 3 employee months.
    assert_eq!(done.contribution_months, resident_months * 3 / 12);
    assert_eq!(
        person(pair.in_endpoint(), &who).await.deemed_months,
        resident_months * 3 / 12
    );
    assert_eq!(cents(&done.personal_account_balance), 0);
    assert_conserved(&pair).await;
}

#[tokio::test]
async fn a_relocated_retiree_is_paid_out_only_on_request() {
    let pair = seeded_pair().await;
    let refused_retiree = someone(Flow::RefusedRetiree);
    let status = apply(pair.out_endpoint(), with_bank(&refused_retiree))
        .await
        .expect_err("not a transfer");
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert_eq!(
        refusal_of(&status),
        "REFUSAL_REASON_RETIREE_MUST_REGISTER_RELOCATION"
    );

    let who = someone(Flow::RetireePayout);
    let mut request = with_bank(&who);
    request.retiree_payout_requested = true;
    let applied = apply(pair.out_endpoint(), request).await.expect("accepted");
    until_state(
        pair.out_endpoint(),
        &applied.transfer_id,
        TransferState::PaidToBank,
    )
    .await;
    assert_eq!(
        cents(&totals(pair.out_endpoint()).await.paid_to_bank_total),
        who.balance.cents()
    );
    assert_conserved(&pair).await;
}

#[tokio::test]
async fn a_region_that_pays_out_instead_moves_years_and_pays_the_bank() {
    let pair = seeded_pair().await;
    let who = someone(Flow::RegionPaysOut);
    let applied = apply(pair.in_endpoint(), with_bank(&who))
        .await
        .expect("applied");
    until_state(
        pair.out_endpoint(),
        &applied.transfer_id,
        TransferState::PaidToBank,
    )
    .await;
    until_state(
        pair.in_endpoint(),
        &applied.transfer_id,
        TransferState::Completed,
    )
    .await;
    assert!(person(pair.in_endpoint(), &who).await.deemed_months > 0);
    assert_eq!(
        cents(&totals(pair.out_endpoint()).await.paid_to_bank_total),
        who.balance.cents()
    );
    assert_conserved(&pair).await;
}

#[tokio::test]
async fn the_transfer_out_bureau_refuses_with_its_reason_and_nothing_moves() {
    let pair = seeded_pair().await;
    for (flow, reason) in [
        (
            Flow::RefusedNotStopped,
            RefusalReason::NotStoppedAtTransferOut,
        ),
        (Flow::RefusedArrears, RefusalReason::Arrears),
    ] {
        let who = someone(flow);
        let applied = apply(pair.in_endpoint(), application(&who))
            .await
            .expect("applied");
        let refused = until_state(
            pair.in_endpoint(),
            &applied.transfer_id,
            TransferState::Rejected,
        )
        .await;
        assert_eq!(refused.refusal_reason, reason as i32, "{}", flow.name());
        assert!(!refused.refusal_message.is_empty());
        assert_eq!(
            cents(
                &person(pair.out_endpoint(), &who)
                    .await
                    .personal_account_balance
            ),
            who.balance.cents()
        );
    }
    assert_eq!(
        cents(&totals(pair.out_endpoint()).await.debited_to_transit_total),
        0
    );
    assert_conserved(&pair).await;
}

#[tokio::test]
async fn applications_that_cannot_be_transfers_are_refused_at_once() {
    let pair = seeded_pair().await;
    let not_enrolled = someone(Flow::RefusedNotEnrolled);
    let status = apply(pair.in_endpoint(), application(&not_enrolled))
        .await
        .expect_err("refused");
    assert_eq!(
        (status.code(), refusal_of(&status).as_str()),
        (
            tonic::Code::FailedPrecondition,
            "REFUSAL_REASON_NOT_ENROLLED_AT_TRANSFER_IN"
        )
    );

    let stranger = yibao_domain::population::person(SEED, PERSONS + 7).expect("in range");
    let status = apply(pair.out_endpoint(), with_bank(&stranger))
        .await
        .expect_err("refused");
    assert_eq!(refusal_of(&status), "REFUSAL_REASON_UNKNOWN_PERSON");

    let mover = someone(Flow::CrossProvince);
    let mut same = application(&mover);
    same.trafin_admdvs = "150105".to_owned(); // a county of Hohhot itself
    let status = apply(pair.out_endpoint(), same).await.expect_err("refused");
    assert_eq!(refusal_of(&status), "REFUSAL_REASON_SAME_POOLING_REGION");

    let first = apply(pair.in_endpoint(), application(&mover))
        .await
        .expect("applied");
    // The first transfer may already be done; a second application is refused only while it is open.
    let second = apply(pair.in_endpoint(), application(&mover)).await;
    if let Err(status) = second {
        assert_eq!(status.code(), tonic::Code::AlreadyExists);
        assert!(
            status.message().contains(&first.transfer_id),
            "names the open transfer"
        );
    }
    let totals_in = totals(pair.in_endpoint()).await;
    assert!(
        totals_in
            .transfers_by_state
            .iter()
            .map(|s| s.count)
            .sum::<u64>()
            >= 1
    );
    assert_conserved(&pair).await;
}
