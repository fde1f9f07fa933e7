//! Black-box tests of idempotent applications (`client_request_id`): the same key and request
//! return the same transfer in its current state, also after it completed, and move money once;
//! a key reused for another request, or a malformed key, is refused naming the field and
//! writes nothing.

use yibao_domain::population::Flow;
use yibao_proto::bureau::v1::bureau_service_client::BureauServiceClient;
use yibao_proto::common::v1::TransferState;
use yibao_tests::*;

/// Applies `request` at transfer-in, expects it refused with `code` and a message starting with
/// `prefix` (the field or the reason), and returns the message.
async fn refused(
    bureau: &mut BureauServiceClient<tonic::transport::Channel>,
    request: yibao_proto::bureau::v1::ApplyTransferRequest,
    code: tonic::Code,
    prefix: &str,
) -> String {
    let status = bureau.apply_transfer(request).await.expect_err(prefix);
    assert_eq!(status.code(), code, "{prefix}: {}", status.message());
    assert!(status.message().starts_with(prefix), "{}", status.message());
    status.message().to_owned()
}

#[tokio::test]
async fn the_same_key_and_request_return_the_same_transfer_as_it_stands_now() {
    let pair = seeded_pair().await;
    let person = someone(Flow::CrossProvince);
    let mut bureau_in = BureauServiceClient::new(channel(pair.in_endpoint()).await);
    let mut request = application(&person);
    request.client_request_id = "retry-me-1".to_owned();
    let first = bureau_in
        .apply_transfer(request.clone())
        .await
        .expect("applied")
        .into_inner()
        .transfer
        .expect("a transfer");
    let completed = until_state(
        pair.in_endpoint(),
        &first.transfer_id,
        TransferState::Completed,
    )
    .await;
    let again = bureau_in
        .apply_transfer(request.clone())
        .await
        .expect("a repeat is answered, not ALREADY_EXISTS")
        .into_inner()
        .transfer
        .expect("a transfer");
    assert_eq!(again.transfer_id, first.transfer_id, "the same transfer");
    assert_eq!(again.state, completed.state, "as it stands now");
    let inn = totals(pair.in_endpoint()).await;
    assert_eq!(
        cents(&inn.credited_total),
        person.balance.cents(),
        "credited once"
    );

    let mut other = request;
    other.retiree_payout_requested = true;
    refused(
        &mut bureau_in,
        other,
        tonic::Code::InvalidArgument,
        "client_request_id:",
    )
    .await;
    assert_conserved(&pair).await;
}

#[tokio::test]
async fn a_malformed_key_is_refused_and_nothing_is_written() {
    let pair = seeded_pair().await;
    let person = someone(Flow::CrossProvince);
    let mut bureau_in = BureauServiceClient::new(channel(pair.in_endpoint()).await);
    for key in ["k".repeat(65), "with space".to_owned()] {
        let mut request = application(&person);
        request.client_request_id = key;
        refused(
            &mut bureau_in,
            request,
            tonic::Code::InvalidArgument,
            "client_request_id:",
        )
        .await;
    }
    let inn = totals(pair.in_endpoint()).await;
    assert!(
        inn.transfers_by_state.is_empty(),
        "nothing written: {inn:?}"
    );
}

#[tokio::test]
async fn an_applicant_must_be_the_person_and_a_payout_their_own_account() {
    use yibao_proto::common::v1::BankAccount;
    let pair = seeded_pair().await;
    let person = someone(Flow::CrossProvince);
    let mut bureau_in = BureauServiceClient::new(channel(pair.in_endpoint()).await);

    let mut someone_else = application(&person);
    someone_else.psn_name = "王五".to_owned();
    let refused_message = refused(
        &mut bureau_in,
        someone_else,
        tonic::Code::FailedPrecondition,
        "UNKNOWN_PERSON",
    )
    .await;
    assert!(!refused_message.contains(&person.name), "no personal data");

    let mut control = application(&person);
    control.psn_name = format!("{}\u{0}", person.name);
    refused(
        &mut bureau_in,
        control,
        tonic::Code::InvalidArgument,
        "psn_name:",
    )
    .await;

    let mut elsewhere = application(&person);
    elsewhere.bank_account = Some(BankAccount {
        bank_name: "中国工商银行".to_owned(),
        account_number: "6222020200112233".to_owned(),
        account_holder_name: "王五".to_owned(),
    });
    refused(
        &mut bureau_in,
        elsewhere,
        tonic::Code::InvalidArgument,
        "bank_account.account_holder_name:",
    )
    .await;

    let inn = totals(pair.in_endpoint()).await;
    assert!(
        inn.transfers_by_state.is_empty(),
        "nothing written: {inn:?}"
    );
    assert_conserved(&pair).await;
}

#[tokio::test]
async fn an_application_at_transfer_out_names_the_scheme_the_person_joins() {
    let pair = seeded_pair().await;
    let person = someone(Flow::CrossProvinceOutInitiated);
    let mut bureau_out = BureauServiceClient::new(channel(pair.out_endpoint()).await);
    let mut unnamed = application(&person);
    unnamed.insutype_at_transfer_in = yibao_proto::common::v1::Scheme::Unspecified as i32;
    let message = refused(
        &mut bureau_out,
        unnamed,
        tonic::Code::InvalidArgument,
        "insutype_at_transfer_in:",
    )
    .await;
    assert!(message.contains("required"), "{message}");
    let out = totals(pair.out_endpoint()).await;
    assert!(
        out.transfers_by_state.is_empty(),
        "nothing written: {out:?}"
    );
}
