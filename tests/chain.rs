//! A real chain A → B → C, black-box: three bureaus of one region directory
//! (`deploy/regions-3.toml`: north, west, south) as real processes. A person with a history at
//! Hohhot (north) — three years brought in from Chongqing, then Hohhot — moves to Lhasa (west),
//! applying there; contributes at Lhasa; then moves on to Shenzhen (south), applying at Lhasa's
//! own bureau, which now plays transfer-out for them. Every month (paid and deemed) and the
//! balance arrive at Shenzhen to the cent, and the ledgers of all three bureaus conserve money.

use std::time::Duration;

use chrono::NaiveDate;
use yibao_domain::id::ResidentId;
use yibao_domain::month::YearMonth;
use yibao_domain::region::RegionCode;
use yibao_harness::{Topology, TopologyOptions};
use yibao_proto::admin::v1 as admin;
use yibao_proto::admin::v1::GetClockRequest;
use yibao_proto::bureau::v1::{ApplyTransferRequest, GetPersonRequest, PersonRecord, Transfer};
use yibao_proto::common::v1::{ContributionPeriod, EnrolmentState, Scheme, TransferState};

const HOHHOT: &str = "150100";
const LHASA: &str = "540100";
const SHENZHEN: &str = "440300";
const CHONGQING: &str = "500000";
const DEADLINE: Duration = Duration::from_secs(30);

/// This bureau's month (China time), moved by `months`.
async fn month(topology: &Topology, months: i32) -> String {
    let now = topology
        .admin("north")
        .get_clock(GetClockRequest {})
        .await
        .expect("clock")
        .into_inner()
        .now
        .expect("a time");
    let today = chrono::DateTime::from_timestamp(now.seconds + 8 * 3600, 0)
        .expect("a valid time")
        .date_naive();
    let this_month = YearMonth::from_date(today).expect("a month");
    this_month.plus_months(months).expect("a month").to_string()
}

fn period(from: &str, to: &str, region: &str) -> ContributionPeriod {
    ContributionPeriod {
        from_month: from.to_owned(),
        to_month: to.to_owned(),
        scheme: Scheme::Employee as i32,
        region_code: region.to_owned(),
    }
}

fn enrolment(certno: &str, name: &str, region: &str, from: &str) -> admin::EnrolPersonRequest {
    admin::EnrolPersonRequest {
        certno: certno.to_owned(),
        psn_name: name.to_owned(),
        insu_admdvs: region.to_owned(),
        insutype: Scheme::Employee as i32,
        from_month: from.to_owned(),
    }
}

async fn record(topology: &Topology, bureau: &str, certno: &str) -> PersonRecord {
    topology
        .bureau(bureau)
        .get_person(GetPersonRequest {
            certno: certno.to_owned(),
        })
        .await
        .expect("the person is known there")
        .into_inner()
        .person
        .expect("a person")
}

/// Applies at `at` and waits until the transfer completed at both of its bureaus.
async fn moved(
    topology: &Topology,
    at: &str,
    other: &str,
    request: ApplyTransferRequest,
) -> Transfer {
    let applied = topology
        .bureau(at)
        .apply_transfer(request)
        .await
        .expect("applied")
        .into_inner()
        .transfer
        .expect("a transfer");
    let id = applied.transfer_id;
    let done = topology
        .wait_for_state(at, &id, TransferState::Completed, DEADLINE)
        .await
        .expect("completed where applied");
    topology
        .wait_for_state(other, &id, TransferState::Completed, DEADLINE)
        .await
        .expect("completed at the other bureau");
    done
}

fn regions_of(person: &PersonRecord) -> Vec<&str> {
    person
        .periods
        .iter()
        .map(|period| period.region_code.as_str())
        .collect()
}

// Long because it is one person's story, told in the order it happens.
#[tokio::test]
async fn a_person_moves_a_to_b_then_on_to_c_and_every_month_and_cent_arrives() {
    let topology = Topology::start(TopologyOptions::default())
        .await
        .expect("three bureaus start");
    assert_eq!(topology.names(), ["north", "south", "west"]);
    let region = RegionCode::parse("150102").expect("a region");
    let birth = NaiveDate::from_ymd_opt(1984, 4, 1).expect("a day");
    let certno = ResidentId::from_parts(region, birth, 321).expect("an ID number");
    let certno = certno.expose_unmasked().to_owned();
    let name = "链测试".to_owned();

    // A: Hohhot (north), stopped and paid up, after three years brought in from Chongqing.
    let last_paid = month(&topology, -6).await;
    topology
        .admin("north")
        .create_person(admin::CreatePersonRequest {
            certno: certno.clone(),
            psn_name: name.clone(),
            insu_admdvs: HOHHOT.to_owned(),
            insutype: Scheme::Employee as i32,
            psn_insu_stas: EnrolmentState::Suspended as i32,
            fst_insu_ym: "201207".to_owned(),
            periods: vec![
                period("201207", "201506", CHONGQING),
                period("201507", &last_paid, HOHHOT),
            ],
            deemed_months: 36,
            personal_account_balance: "8765.43".to_owned(),
            arrears_amount: String::new(),
            retired: false,
        })
        .await
        .expect("created at Hohhot");
    let at_a = record(&topology, "north", &certno).await;

    // A → B: applied at Lhasa (west), the transfer-in side.
    topology
        .admin("west")
        .enrol_person(enrolment(
            &certno,
            &name,
            LHASA,
            &month(&topology, -5).await,
        ))
        .await
        .expect("enrolled at Lhasa");
    let first = moved(
        &topology,
        "west",
        "north",
        ApplyTransferRequest {
            certno: certno.clone(),
            psn_name: name.clone(),
            trafout_admdvs: HOHHOT.to_owned(),
            trafin_admdvs: LHASA.to_owned(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(first.personal_account_balance, "8765.43");

    // Life at B: contributes at Lhasa, then stops, ready to move on.
    topology
        .admin("west")
        .stop_contributing(admin::StopContributingRequest {
            certno: certno.clone(),
            from_month: month(&topology, -1).await,
        })
        .await
        .expect("stopped at Lhasa");
    let at_b = record(&topology, "west", &certno).await;
    assert_eq!(at_b.personal_account_balance, "8765.43", "to the cent");
    assert_eq!(
        at_b.deemed_months, at_a.contribution_months,
        "A's months, paid and deemed"
    );
    assert!(
        at_b.contribution_months > at_a.contribution_months,
        "and Lhasa's own: {at_b:?}"
    );

    // B → C: applied at Lhasa's own bureau, now the transfer-out side, to Shenzhen (south).
    topology
        .admin("south")
        .enrol_person(enrolment(
            &certno,
            &name,
            SHENZHEN,
            &month(&topology, 0).await,
        ))
        .await
        .expect("enrolled at Shenzhen");
    let second = moved(
        &topology,
        "west",
        "south",
        ApplyTransferRequest {
            certno: certno.clone(),
            psn_name: name.clone(),
            trafout_admdvs: LHASA.to_owned(),
            trafin_admdvs: SHENZHEN.to_owned(),
            insutype_at_transfer_in: Scheme::Employee as i32,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(second.personal_account_balance, "8765.43");

    let at_c = record(&topology, "south", &certno).await;
    assert_eq!(at_c.personal_account_balance, "8765.43", "to the cent");
    assert_eq!(
        at_c.deemed_months, at_b.contribution_months,
        "every month of A and B, paid and deemed"
    );
    let regions = regions_of(&at_c);
    for region in [CHONGQING, HOHHOT, LHASA, SHENZHEN] {
        assert!(
            regions.contains(&region),
            "the history comes along: {regions:?}"
        );
    }
    let left_b = record(&topology, "west", &certno).await;
    assert_eq!(left_b.psn_insu_stas(), EnrolmentState::Terminated);
    assert_eq!(left_b.personal_account_balance, "0.00");

    let report = topology
        .wait_for_no_open_transfers(DEADLINE)
        .await
        .expect("nothing left open");
    assert!(report.holds, "{report}");
    assert_eq!(report.bureaus.len(), 3);
}
