//! Fuzzing the admin API's request decoding and conversion by property (issue 10, item 6):
//! arbitrary bytes, and valid requests with bytes replaced, inserted or removed, are decoded
//! with prost as every admin request that has fields and converted as its handler converts it
//! (`seeding`, `advance_by`, `sampling`, `resolution`, `retrying`). Each must give domain values
//! or `INVALID_ARGUMENT` naming one of the request's fields, never a panic. Named `fuzz_…`;
//! `PROPTEST_CASES` raises the default 256 cases.
//!
//! Found this way: an `AdvanceClock` of `by.seconds` beyond `i64::MAX / 1000` panicked in
//! chrono's `Duration::seconds` (a panicking handler drops the caller's connection); it is now
//! refused naming `by` (the regression test below).
//!
//! Also here: the ledger's count of overdue transfers agrees with the flags `GetTransfer`
//! shows, for each of the three statutory deadlines.

use proptest::prelude::*;
use prost::Message;
use tonic::Request;
use yibao_proto::admin::v1 as wire;
use yibao_proto::admin::v1::admin_service_server::AdminService;
use yibao_runtime::directory::BureauRole;

use super::{AdminApi, advance_by, resolution, retrying, sampling, seeding};
use crate::testing::{self, byte_edits, converted, edited_bytes};

/// A valid request of every kind with fields, encoded.
fn valid_requests() -> Vec<Vec<u8>> {
    vec![
        wire::SeedPopulationRequest {
            seed: testing::SEED,
            first_index: 10,
            count: 1_000,
        }
        .encode_to_vec(),
        wire::AdvanceClockRequest {
            by: Some(prost_types::Duration {
                seconds: 86_400,
                nanos: 5,
            }),
        }
        .encode_to_vec(),
        wire::SamplePersonsRequest {
            flow: "cross-province".to_owned(),
            limit: 10,
        }
        .encode_to_vec(),
        wire::ResolveTransferRequest {
            transfer_id: "150100202603020000001".to_owned(),
            operator: "王五".to_owned(),
            reason: "confirmed by telephone".to_owned(),
            outcome: wire::ResolveOutcome::NotCredited as i32,
        }
        .encode_to_vec(),
        wire::RetryOutboxMessagesRequest {
            message_id: 7,
            all: false,
            operator: "王五".to_owned(),
        }
        .encode_to_vec(),
    ]
}

/// Decodes `bytes` as every admin request with fields and converts each that decodes.
fn convert_every_request(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(request) = wire::SeedPopulationRequest::decode(bytes) {
        converted(seeding(&request), &["count", "first_index"])?;
    }
    if let Ok(request) = wire::AdvanceClockRequest::decode(bytes) {
        converted(advance_by(&request), &["by"])?;
    }
    if let Ok(request) = wire::SamplePersonsRequest::decode(bytes) {
        converted(sampling(&request), &["flow"])?;
    }
    if let Ok(request) = wire::ResolveTransferRequest::decode(bytes) {
        let fields = ["transfer_id", "operator", "reason", "outcome"];
        converted(resolution(&request), &fields)?;
    }
    if let Ok(request) = wire::RetryOutboxMessagesRequest::decode(bytes) {
        converted(retrying(&request), &["message_id", "operator"])?;
    }
    Ok(())
}

#[test]
fn the_valid_requests_convert() {
    let requests = valid_requests();
    let decode = |index: usize| requests[index].as_slice();
    let seed = wire::SeedPopulationRequest::decode(decode(0)).expect("decodes");
    assert_eq!(
        seeding(&seed).expect("converts"),
        (testing::SEED, 10..1_010)
    );
    let advance = wire::AdvanceClockRequest::decode(decode(1)).expect("decodes");
    let by = advance_by(&advance).expect("converts");
    assert_eq!(by.num_nanoseconds(), Some(86_400_000_000_005));
    let sample = wire::SamplePersonsRequest::decode(decode(2)).expect("decodes");
    assert!(sampling(&sample).is_ok());
    let resolve = wire::ResolveTransferRequest::decode(decode(3)).expect("decodes");
    assert!(resolution(&resolve).is_ok());
    let retry = wire::RetryOutboxMessagesRequest::decode(decode(4)).expect("decodes");
    assert_eq!(retrying(&retry).expect("converts").0, Some(7));
}

/// Before the fix this panicked ("TimeDelta::seconds out of bounds") inside the handler.
#[tokio::test]
async fn an_advance_beyond_time_arithmetic_is_refused_naming_by() {
    let api = AdminApi::new(testing::services(BureauRole::TransferOut));
    for (seconds, nanos) in [
        (i64::MAX, 999_999_999),
        (i64::MAX / 1000 + 1, 0),
        (31_622_401, 0),
    ] {
        let request = wire::AdvanceClockRequest {
            by: Some(prost_types::Duration { seconds, nanos }),
        };
        let status = api
            .advance_clock(Request::new(request))
            .await
            .expect_err("too far");
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{seconds}");
        assert!(status.message().starts_with("by: "), "{}", status.message());
    }
}

/// The ledger's `overdue_transfers` and `GetTransfer`'s deadline flags, on `today`.
async fn overdue_seen(
    services: &std::sync::Arc<crate::services::Services>,
    transfer_id: &str,
) -> (u64, (bool, bool, bool, bool)) {
    use yibao_proto::bureau::v1::GetTransferRequest;
    use yibao_proto::bureau::v1::bureau_service_server::BureauService;
    let totals = AdminApi::new(services.clone())
        .get_ledger_totals(Request::new(wire::GetLedgerTotalsRequest {}))
        .await
        .expect("totals")
        .into_inner()
        .totals
        .expect("totals");
    let transfer = crate::api::bureau::BureauApi::new(services.clone())
        .get_transfer(Request::new(GetTransferRequest {
            transfer_id: transfer_id.to_owned(),
        }))
        .await
        .expect("the transfer")
        .into_inner()
        .transfer
        .expect("the transfer");
    let due = transfer.deadlines.expect("deadlines");
    let flags = (
        due.overdue,
        due.transfer_out_overdue,
        due.transfer_in_overdue,
        due.whole_process_overdue,
    );
    (totals.overdue_transfers, flags)
}

/// The 10-working-day transfer-out deadline and the 5-working-day transfer-in deadline are
/// flagged overdue, not only the 15-day whole process: an application made at transfer-in on
/// Monday 2 March 2026 whose form never came is late on the transfer-out deadline from
/// Tuesday 17 March, and on all three from Tuesday 24 March; the ledger counts it from the
/// first day (the domain's tests check the count's cutoff against every day of 2026).
#[tokio::test]
async fn every_statutory_deadline_is_flagged_and_counted_overdue() {
    use yibao_domain::population::Flow;
    let services = testing::services(BureauRole::TransferIn);
    let person = testing::seed(&services, Flow::CrossProvince, 0).await;
    let application = testing::application_at_transfer_in(&person);
    let document = testing::step(&services, move |step| {
        crate::transfer_in::apply_here(step, &application)
    })
    .await
    .expect("applied");
    let id = document.transfer_id;
    let later = |days: i64| {
        services
            .clock
            .advance(chrono::TimeDelta::days(days))
            .expect("the test clock moves");
    };
    assert_eq!(
        overdue_seen(&services, &id).await,
        (0, (false, false, false, false))
    );
    later(14); // Monday 16 March: the transfer-out deadline's own day is on time.
    assert_eq!(
        overdue_seen(&services, &id).await,
        (0, (false, false, false, false))
    );
    later(1); // Tuesday 17 March.
    assert_eq!(
        overdue_seen(&services, &id).await,
        (1, (true, true, false, false))
    );
    later(7); // Tuesday 24 March: the transfer-in and whole-process deadlines passed too.
    assert_eq!(
        overdue_seen(&services, &id).await,
        (1, (true, true, true, true))
    );
}

proptest! {
    #[test]
    fn fuzz_admin_requests_from_arbitrary_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        convert_every_request(&bytes)?;
    }

    #[test]
    fn fuzz_admin_requests_near_valid_ones(which in 0usize..5, edits in byte_edits()) {
        let valid = valid_requests().swap_remove(which);
        convert_every_request(&edited_bytes(valid, &edits))?;
    }

    #[test]
    fn fuzz_admin_advance_clock_by_any_duration(
        seconds in prop_oneof![0i64..40_000_000, any::<i64>()],
        nanos in prop_oneof![0i32..1_000_000_000, any::<i32>()],
    ) {
        let request = wire::AdvanceClockRequest {
            by: Some(prost_types::Duration { seconds, nanos }),
        };
        let by = advance_by(&request);
        if let Ok(by) = &by {
            let expected = i128::from(seconds) * 1_000_000_000 + i128::from(nanos);
            prop_assert_eq!(by.num_nanoseconds().map(i128::from), Some(expected));
            prop_assert!(*by <= chrono::TimeDelta::days(366));
        }
        converted(by, &["by"])?;
    }

    #[test]
    fn fuzz_admin_seed_population_of_any_range(
        first_index in prop_oneof![0u64..2_000_000, any::<u64>()],
        count in prop_oneof![0u64..2_000_000, any::<u64>()],
    ) {
        let request = wire::SeedPopulationRequest { seed: 1, first_index, count };
        if let Ok((_, indices)) = seeding(&request) {
            prop_assert_eq!(indices.start, first_index);
            prop_assert_eq!(indices.end - indices.start, count);
        }
        converted(seeding(&request), &["count", "first_index"])?;
    }
}
