//! A store that cannot commit, black-box: the admin API's storage fault (the store's commit-hook
//! seam, not a full disk) turned on at transfer-in while transfers are in flight. Transfer-in
//! reports NOT_SERVING on both listeners for every service, answers UNAVAILABLE to a person and
//! to the peer's platform messages, writes nothing; transfer-out retries and parks nothing; with
//! the fault off transfer-in reports SERVING again, every transfer completes and the ledger is
//! exact.

use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use yibao_domain::population::Flow;
use yibao_proto::admin::v1::{SetStorageFaultRequest, StorageFault};
use yibao_proto::bureau::v1::{GetTransferRequest, Transfer};
use yibao_proto::common::v1::TransferState;
use yibao_tests::*;

/// The names transfer-in's main listener reports health for (the admin API is enabled).
const MAIN_NAMES: [&str; 3] = [
    "",
    "yibao.bureau.v1.BureauService",
    "yibao.admin.v1.AdminService",
];
/// The names its platform listener reports health for.
const PLATFORM_NAMES: [&str; 3] = [
    "",
    "yibao.platform.v1.TransferOutPlatformService",
    "yibao.platform.v1.TransferInPlatformService",
];

/// Waits until every name on `channel` reports `wanted`.
async fn until_health(channel: Channel, names: &[&str], wanted: ServingStatus) {
    let client = HealthClient::new(channel);
    for name in names {
        poll(DEADLINE, || {
            let mut client = client.clone();
            async move {
                let request = HealthCheckRequest {
                    service: (*name).to_owned(),
                };
                let status = client.check(request).await.ok()?.into_inner().status;
                (status == wanted as i32).then_some(())
            }
        })
        .await;
    }
}

/// Waits until both of transfer-in's listeners report `wanted` for every name.
async fn until_transfer_in(pair: &Pair, wanted: ServingStatus) {
    until_health(pair.channel(Side::In), &MAIN_NAMES, wanted).await;
    let platform = pair.platform_channel(Side::In).expect("platform channel");
    until_health(platform, &PLATFORM_NAMES, wanted).await;
}

async fn set_fault(pair: &Pair, fault: StorageFault) -> bool {
    pair.admin_in()
        .set_storage_fault(SetStorageFaultRequest {
            fault: fault as i32,
        })
        .await
        .expect("the fault is set")
        .into_inner()
        .serving
}

fn has_event(transfer: &Transfer, kind: &str) -> bool {
    transfer.history.iter().any(|event| event.kind == kind)
}

#[tokio::test]
async fn a_store_that_cannot_commit_is_not_serving_loses_nothing_and_recovers() {
    let pair = seeded_pair().await;
    let movers = pair.persons(Flow::CrossProvince, 3).expect("movers");
    let (earlier, refused) = movers.split_at(2);
    let refused = &refused[0];
    let mut ids = Vec::new();
    for who in earlier {
        ids.push(pair.apply(who).await.expect("applied").transfer_id);
    }

    assert!(
        !set_fault(&pair, StorageFault::DiskFull).await,
        "the commit it tried failed"
    );
    until_transfer_in(&pair, ServingStatus::NotServing).await;
    until_health(
        pair.channel(Side::Out),
        &MAIN_NAMES[..2],
        ServingStatus::Serving,
    )
    .await;

    // A person applying at transfer-in: UNAVAILABLE, nothing written.
    let status = pair
        .bureau_in()
        .apply_transfer(application(refused))
        .await
        .expect_err("transfer-in cannot commit");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");

    // Transfers opened at transfer-out meanwhile: their forms are answered UNAVAILABLE, retried,
    // and nothing of them lands at transfer-in.
    let senders = pair
        .persons(Flow::CrossProvinceOutInitiated, 2)
        .expect("movers");
    for who in &senders {
        // This flow applies at transfer-out, which commits.
        let id = pair.apply(who).await.expect("applied").transfer_id;
        let retried = pair
            .wait_for(Side::Out, &id, |t| has_event(t, "DELIVERY_RETRY"), DEADLINE)
            .await
            .expect("the form is retried");
        assert!(!has_event(&retried, "DELIVERY_PARKED"), "{retried:?}");
        let unknown = pair
            .bureau_in()
            .get_transfer(GetTransferRequest {
                transfer_id: id.clone(),
            })
            .await
            .expect_err("nothing of it was written at transfer-in");
        assert_eq!(unknown.code(), tonic::Code::NotFound, "{unknown:?}");
        ids.push(id);
    }

    assert!(
        set_fault(&pair, StorageFault::None).await,
        "the commit it tried succeeded"
    );
    until_transfer_in(&pair, ServingStatus::Serving).await;
    ids.push(pair.apply(refused).await.expect("applied now").transfer_id);

    for id in &ids {
        for side in [Side::Out, Side::In] {
            pair.wait_for_state(side, id, TransferState::Completed, DEADLINE)
                .await
                .expect("every transfer completes");
        }
    }
    assert_conserved(&pair).await;
    pair.assert_ledger_conserved().await;
}

#[tokio::test]
async fn an_unspecified_storage_fault_is_refused_naming_the_field() {
    let pair = seeded_pair().await;
    let status = pair
        .admin_in()
        .set_storage_fault(SetStorageFaultRequest::default())
        .await
        .expect_err("refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().starts_with("fault:"), "{status:?}");
}
