//! Fuzzing the bureau API's request decoding and conversion by property (issue 10, item 6):
//! arbitrary bytes, and valid requests with bytes replaced, inserted or removed, are decoded
//! with prost as every request type and converted as its handler converts it. Each conversion
//! must give domain values or `INVALID_ARGUMENT` naming one of the request's fields, never a
//! panic. Generated requests of nearly valid fields reach the rules past the first field.
//!
//! The handlers call exactly these conversions before anything is read or written: `applicant`
//! (`ApplyTransfer`), `listing` (`ListTransfers`), `holder` (`IssueCertificate`), and one
//! `convert` function each for the requests of one field. Named `fuzz_…`; `PROPTEST_CASES`
//! raises the default 256 cases.

use proptest::prelude::*;
use prost::Message;
use yibao_proto::bureau::v1 as wire;
use yibao_proto::common::v1 as common;

use super::{applicant, holder, listing};
use crate::convert;
use crate::testing::{byte_edits, converted, edited_bytes};

/// A valid ID number and the name that goes with it in these tests.
const CERTNO: &str = "150102197001010001";
const NAME: &str = "刘娟涛";

/// The China date the requests arrive on: the tests' clock's day.
fn today() -> chrono::NaiveDate {
    crate::testing::start().date_naive()
}

/// A valid request of every kind, encoded.
fn valid_requests() -> Vec<Vec<u8>> {
    let account = common::BankAccount {
        bank_name: "中国工商银行".to_owned(),
        account_number: "6222020200112233".to_owned(),
        account_holder_name: NAME.to_owned(),
    };
    let transfer_id = "150100202603020000001".to_owned();
    vec![
        wire::ApplyTransferRequest {
            certno: CERTNO.to_owned(),
            psn_name: NAME.to_owned(),
            trafout_admdvs: "150100".to_owned(),
            trafin_admdvs: "540100".to_owned(),
            bank_account: Some(account),
            retiree_payout_requested: true,
            channel: 1,
            client_request_id: "apply-0001".to_owned(),
            insutype_at_transfer_in: 1,
            payout_requested: true,
        }
        .encode_to_vec(),
        wire::GetTransferRequest {
            transfer_id: transfer_id.clone(),
        }
        .encode_to_vec(),
        wire::WatchTransferRequest { transfer_id }.encode_to_vec(),
        wire::ListTransfersRequest {
            certno: CERTNO.to_owned(),
            state: 3,
        }
        .encode_to_vec(),
        wire::GetPersonRequest {
            certno: CERTNO.to_owned(),
        }
        .encode_to_vec(),
        wire::IssueCertificateRequest {
            certno: CERTNO.to_owned(),
            psn_name: NAME.to_owned(),
        }
        .encode_to_vec(),
        wire::VerifyCertificateRequest {
            verification_code: "0123456789ABCDEFGHJK".to_owned(),
        }
        .encode_to_vec(),
    ]
}

/// Decodes `bytes` as every bureau-API request and converts each that decodes.
fn convert_every_request(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(request) = wire::ApplyTransferRequest::decode(bytes) {
        let fields = [
            "certno",
            "psn_name",
            "trafout_admdvs",
            "trafin_admdvs",
            "bank_account",
            "client_request_id",
        ];
        converted(applicant(request, today()), &fields)?;
    }
    if let Ok(request) = wire::GetTransferRequest::decode(bytes) {
        let id = convert::transfer_id("transfer_id", &request.transfer_id);
        converted(id, &["transfer_id"])?;
    }
    if let Ok(request) = wire::WatchTransferRequest::decode(bytes) {
        let id = convert::transfer_id("transfer_id", &request.transfer_id);
        converted(id, &["transfer_id"])?;
    }
    if let Ok(request) = wire::ListTransfersRequest::decode(bytes) {
        converted(listing(&request, today()), &["certno", "state"])?;
    }
    if let Ok(request) = wire::GetPersonRequest::decode(bytes) {
        converted(
            convert::certno("certno", &request.certno, today()),
            &["certno"],
        )?;
    }
    if let Ok(request) = wire::IssueCertificateRequest::decode(bytes) {
        converted(holder(&request, today()), &["certno", "psn_name"])?;
    }
    if let Ok(request) = wire::VerifyCertificateRequest::decode(bytes) {
        let code = convert::verification_code(&request.verification_code);
        converted(code, &["verification_code"])?;
    }
    Ok(())
}

/// A field that is sometimes right, sometimes nearly right and sometimes anything.
fn field(valid: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(valid).prop_map(str::to_owned),
        Just(String::new()),
        "[0-9xX]{0,24}",
        "[ -~]{0,70}",
        any::<String>(),
    ]
}

/// An application of nearly valid fields.
fn any_application() -> impl Strategy<Value = wire::ApplyTransferRequest> {
    let account = (
        field(&["中国工商银行", " ", "\u{7}"]),
        field(&[
            "6222020200112233",
            " 622202020011 ",
            "62220202001122334455667788990011",
        ]),
        field(&[NAME, " 刘娟涛 ", "刘"]),
    )
        .prop_map(
            |(bank_name, account_number, account_holder_name)| common::BankAccount {
                bank_name,
                account_number,
                account_holder_name,
            },
        );
    let identity = (
        field(&[CERTNO, "15010219700101000X", "150102197002300001"]),
        field(&[NAME, " ", "刘\n娟"]),
        field(&["150100", "540100", "150102", "999999"]),
        field(&["540100", "440300", "150100"]),
    );
    let rest = (
        proptest::option::of(account),
        any::<bool>(),
        any::<i32>(),
        field(&["a-1", "x y", ""]),
    );
    (identity, rest).prop_map(
        |((certno, psn_name, out_region, in_region), (account, retiree, channel, key))| {
            wire::ApplyTransferRequest {
                certno,
                psn_name,
                trafout_admdvs: out_region,
                trafin_admdvs: in_region,
                bank_account: account,
                retiree_payout_requested: retiree,
                channel,
                client_request_id: key,
                insutype_at_transfer_in: channel % 3,
                payout_requested: retiree,
            }
        },
    )
}

/// Future birth dates: every bureau-API request that names a person refuses an ID number
/// whose birth date is after today, naming certno.
#[test]
fn a_certno_born_after_today_is_refused_naming_certno() {
    let tomorrow = today().succ_opt().expect("a date");
    let region = yibao_domain::region::RegionCode::parse("150102").expect("a region");
    let unborn = yibao_domain::id::ResidentId::from_parts(region, tomorrow, 1).expect("parts");
    let certno = unborn.expose_unmasked().to_owned();
    let refused = |result: Result<(), crate::error::Error>| {
        let error = result.expect_err("born tomorrow").to_string();
        assert!(error.starts_with("certno: "), "{error}");
    };
    let requests = valid_requests();
    let mut apply = wire::ApplyTransferRequest::decode(requests[0].as_slice()).expect("decodes");
    apply.certno.clone_from(&certno);
    refused(applicant(apply, today()).map(|_| ()));
    let list = wire::ListTransfersRequest {
        certno: certno.clone(),
        state: 0,
    };
    refused(listing(&list, today()).map(|_| ()));
    let issue = wire::IssueCertificateRequest {
        certno: certno.clone(),
        psn_name: NAME.to_owned(),
    };
    refused(holder(&issue, today()).map(|_| ()));
    refused(convert::certno("certno", &certno, today()).map(|_| ()));
    // The day after, the same number is someone born yesterday.
    assert!(convert::certno("certno", &certno, tomorrow).is_ok());
}

#[test]
fn the_valid_requests_convert() {
    let requests = valid_requests();
    let apply = wire::ApplyTransferRequest::decode(requests[0].as_slice()).expect("decodes");
    let applied = applicant(apply, today()).expect("converts");
    assert_eq!(applied.certno.expose_unmasked(), CERTNO);
    assert!(applied.key.is_some() && applied.bank_account.is_some());
    let list = wire::ListTransfersRequest::decode(requests[3].as_slice()).expect("decodes");
    assert!(listing(&list, today()).is_ok());
    let issue = wire::IssueCertificateRequest::decode(requests[5].as_slice()).expect("decodes");
    assert!(holder(&issue, today()).is_ok());
}

proptest! {
    #[test]
    fn fuzz_bureau_requests_from_arbitrary_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        convert_every_request(&bytes)?;
    }

    #[test]
    fn fuzz_bureau_requests_near_valid_ones(which in 0usize..7, edits in byte_edits()) {
        let valid = valid_requests().swap_remove(which);
        convert_every_request(&edited_bytes(valid, &edits))?;
    }

    #[test]
    fn fuzz_bureau_apply_transfer_of_any_fields(request in any_application()) {
        let fields = [
            "certno",
            "psn_name",
            "trafout_admdvs",
            "trafin_admdvs",
            "bank_account",
            "client_request_id",
        ];
        converted(applicant(request, today()), &fields)?;
    }

    #[test]
    fn fuzz_bureau_list_transfers_of_any_fields(
        certno in field(&[CERTNO, ""]),
        state in prop_oneof![-2i32..20, any::<i32>()],
    ) {
        converted(listing(&wire::ListTransfersRequest { certno, state }, today()), &["certno", "state"])?;
    }
}

/// A watch reports every change of a transfer, even one whose save time equals the last one it
/// sent (two steps of one transfer can commit within the same millisecond, and stored times
/// keep only milliseconds): here a history event appended without a new save time.
#[tokio::test]
async fn a_watch_reports_a_change_whose_save_time_is_unchanged() {
    use std::time::Duration;

    use tokio_stream::StreamExt;
    use tonic::Request;
    use yibao_proto::bureau::v1::bureau_service_server::BureauService;
    use yibao_runtime::directory::BureauRole;

    use crate::record::Happening;
    use crate::testing;

    let services = testing::services(BureauRole::TransferIn);
    let id = testing::transfer_id("540100", 1);
    open_a_transfer(&services, &id).await;
    let api = super::BureauApi::new(services.clone());
    let mut stream = api
        .watch_transfer(Request::new(wire::WatchTransferRequest {
            transfer_id: id.clone(),
        }))
        .await
        .expect("a watch")
        .into_inner();
    let first = stream.next().await.expect("the first message").expect("ok");
    let before = first.transfer.expect("a transfer");
    let noted = id.clone();
    testing::step(&services, move |step| {
        step.note(
            &noted,
            Happening {
                kind: "delivery_attempted",
                from_state: "REQUESTED",
                detail: "attempt 2".to_owned(),
                attempt: 2,
            },
        )
    })
    .await
    .expect("noted");
    let next = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("the watch spoke within 10 s")
        .expect("a second message")
        .expect("ok")
        .transfer
        .expect("a transfer");
    assert_eq!(
        next.updated_at, before.updated_at,
        "the save time did not move"
    );
    assert_eq!(
        next.history.len(),
        before.history.len() + 1,
        "one more event"
    );
}

/// Stores a transfer-in transfer under `id`, as an application would open it.
async fn open_a_transfer(services: &std::sync::Arc<crate::services::Services>, id: &str) {
    use yibao_domain::transfer::in_side::InState;
    use yibao_domain::transfer::{Initiator, TransferState};

    use crate::document::TransferDocument;
    use crate::record::Happening;

    let opened = id.to_owned();
    crate::testing::step(services, move |step| {
        let now = step.ctx.now;
        let mut document = TransferDocument::opening(
            opened,
            Initiator::TransferIn,
            TransferState::In(InState::Requested),
            crate::testing::day(),
            now,
        );
        step.insert(
            &mut document,
            Happening {
                kind: "opened",
                from_state: "",
                detail: "a test transfer".to_owned(),
                attempt: 0,
            },
        )
    })
    .await
    .expect("opened");
}
