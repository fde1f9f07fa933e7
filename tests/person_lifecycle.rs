//! People whose lives change, black-box: both bureaus as real processes, a person created at
//! transfer-out with a history (months at Chongqing, then Hohhot) and a balance, enrolled at
//! transfer-in (Lhasa), and their transfer refused for what their record says until their life
//! changes: NOT_STOPPED until they stop contributing, ARREARS until they pay; then it completes
//! and the balance arrives to the cent, with every month as deemed months. A retiree is
//! handled by the retiree rule; a person with an open transfer is not changed; bad input is
//! refused naming the field, and a refusal writes nothing. The `yibao person` commands do the
//! same from the command line.

use chrono::NaiveDate;
use tonic::Code;
use yibao_domain::id::ResidentId;
use yibao_domain::month::YearMonth;
use yibao_domain::region::RegionCode;
use yibao_harness::AdminClient;
use yibao_proto::admin::v1 as admin;
use yibao_proto::bureau::v1::{ApplyTransferRequest, GetPersonRequest, PersonRecord, Transfer};
use yibao_proto::common::v1::{
    BankAccount, ContributionPeriod, EnrolmentState, RefusalReason, Scheme, TransferState,
};
use yibao_tests::*;

const HOHHOT: &str = "150100";
const LHASA: &str = "540100";
const CHONGQING: &str = "500000";

/// A pair with nobody seeded: every person here is made by the person calls.
async fn pair() -> Pair {
    Pair::start(PairOptions {
        persons: 0,
        ..PairOptions::default()
    })
    .await
    .expect("both bureaus start")
}

/// The `n`-th person of these tests: an ID number the population never makes (born 1985).
fn newcomer(n: u16) -> (String, String) {
    let region = RegionCode::parse("150102").expect("a region");
    let birth = NaiveDate::from_ymd_opt(1985, 5, 1).expect("a day");
    let certno = ResidentId::from_parts(region, birth, 100 + n).expect("an ID number");
    (certno.expose_unmasked().to_owned(), format!("测试{n}"))
}

/// The bureau's current month (China time), and the month `months` from it.
async fn month(pair: &Pair, months: i32) -> String {
    let this_month = YearMonth::from_date(today(pair, Side::Out).await).expect("a month");
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

/// A person contributing at Hohhot, paid through `last`, after three years at Chongqing
/// brought in by a transfer (36 deemed months), with ¥8,765.43 in the personal account and
/// owing ¥512.30.
fn history(certno: &str, name: &str, last: &str) -> admin::CreatePersonRequest {
    admin::CreatePersonRequest {
        certno: certno.to_owned(),
        psn_name: name.to_owned(),
        insu_admdvs: HOHHOT.to_owned(),
        insutype: Scheme::Employee as i32,
        psn_insu_stas: EnrolmentState::Normal as i32,
        fst_insu_ym: "201207".to_owned(),
        periods: vec![
            period("201207", "201506", CHONGQING),
            period("201507", last, HOHHOT),
        ],
        deemed_months: 36,
        personal_account_balance: "8765.43".to_owned(),
        arrears_amount: "512.30".to_owned(),
        retired: false,
    }
}

fn enrolment_at_lhasa(certno: &str, name: &str, from: &str) -> admin::EnrolPersonRequest {
    admin::EnrolPersonRequest {
        certno: certno.to_owned(),
        psn_name: name.to_owned(),
        insu_admdvs: LHASA.to_owned(),
        insutype: Scheme::Employee as i32,
        from_month: from.to_owned(),
    }
}

/// Enrols the person at Lhasa from last month.
async fn enrol_at_lhasa(pair: &Pair, certno: &str, name: &str) {
    let from = month(pair, -1).await;
    pair.admin(Side::In)
        .enrol_person(enrolment_at_lhasa(certno, name, &from))
        .await
        .expect("enrolled at Lhasa");
}

fn move_to_lhasa(certno: &str, name: &str) -> ApplyTransferRequest {
    ApplyTransferRequest {
        certno: certno.to_owned(),
        psn_name: name.to_owned(),
        trafout_admdvs: HOHHOT.to_owned(),
        trafin_admdvs: LHASA.to_owned(),
        ..Default::default()
    }
}

/// Applies at transfer-in (the usual path) and follows the transfer to its end there.
async fn transfer(pair: &Pair, request: ApplyTransferRequest) -> Transfer {
    let applied = pair
        .bureau_in()
        .apply_transfer(request)
        .await
        .expect("applied")
        .into_inner()
        .transfer
        .expect("a transfer");
    poll(DEADLINE, || async {
        yibao_tests::transfer(pair.in_endpoint(), &applied.transfer_id)
            .await
            .filter(|transfer| yibao_harness::is_terminal(transfer.state()))
    })
    .await
}

async fn record(pair: &Pair, side: Side, certno: &str) -> Result<PersonRecord, tonic::Status> {
    let answer = pair
        .bureau(side)
        .get_person(GetPersonRequest {
            certno: certno.to_owned(),
        })
        .await?;
    Ok(answer.into_inner().person.expect("a person"))
}

fn expect_refused(transfer: &Transfer, reason: RefusalReason) {
    assert_eq!(transfer.state(), TransferState::Rejected, "{transfer:?}");
    assert_eq!(transfer.refusal_reason(), reason, "{transfer:?}");
}

#[tokio::test]
async fn a_person_with_a_history_transfers_once_stopped_and_paid_up_and_the_balance_arrives() {
    let pair = pair().await;
    let mut out = pair.admin(Side::Out);
    let (certno, name) = newcomer(1);
    let last_paid = month(&pair, -4).await;
    let created = out
        .create_person(history(&certno, &name, &last_paid))
        .await
        .expect("created")
        .into_inner()
        .person
        .expect("a person");
    assert_eq!(created.personal_account_balance, "8765.43");
    assert_eq!(created.arrears_amount, "512.30");
    let months = created.contribution_months;
    assert_eq!(
        record(&pair, Side::Out, &certno).await.expect("shown"),
        created
    );
    enrol_at_lhasa(&pair, &certno, &name).await;

    let refused = transfer(&pair, move_to_lhasa(&certno, &name)).await;
    expect_refused(&refused, RefusalReason::NotStoppedAtTransferOut);

    let stopped = out
        .stop_contributing(admin::StopContributingRequest {
            certno: certno.clone(),
            from_month: month(&pair, -3).await,
        })
        .await
        .expect("stopped")
        .into_inner()
        .person
        .expect("a person");
    assert_eq!(stopped.psn_insu_stas(), EnrolmentState::Suspended);
    assert_eq!(
        stopped.contribution_months, months,
        "closed where it was paid"
    );
    let refused = transfer(&pair, move_to_lhasa(&certno, &name)).await;
    expect_refused(&refused, RefusalReason::Arrears);

    let paid = out
        .pay_arrears(admin::PayArrearsRequest {
            certno: certno.clone(),
            ..Default::default()
        })
        .await
        .expect("paid")
        .into_inner();
    assert_eq!(paid.paid_amount, "512.30");
    assert_eq!(paid.person.expect("a person").arrears_amount, "0.00");

    let completed = transfer(&pair, move_to_lhasa(&certno, &name)).await;
    assert_eq!(completed.state(), TransferState::Completed, "{completed:?}");
    assert_eq!(completed.personal_account_balance, "8765.43");
    let at_lhasa = record(&pair, Side::In, &certno).await.expect("shown");
    assert_eq!(at_lhasa.personal_account_balance, "8765.43", "to the cent");
    assert_eq!(
        at_lhasa.deemed_months, months,
        "every month, Chongqing's too"
    );
    let regions: Vec<&str> = at_lhasa
        .periods
        .iter()
        .map(|p| p.region_code.as_str())
        .collect();
    for region in [CHONGQING, HOHHOT, LHASA] {
        assert!(
            regions.contains(&region),
            "the history comes along: {regions:?}"
        );
    }
    let at_hohhot = record(&pair, Side::Out, &certno).await.expect("shown");
    assert_eq!(at_hohhot.psn_insu_stas(), EnrolmentState::Terminated);
    assert_eq!(at_hohhot.personal_account_balance, "0.00");
    assert_conserved(&pair).await;
}

#[tokio::test]
async fn a_retired_person_registers_a_relocation_or_is_paid_out_as_the_retiree_rule_says() {
    let pair = pair().await;
    let mut out = pair.admin(Side::Out);
    let (certno, name) = newcomer(2);
    let mut request = history(&certno, &name, &month(&pair, -4).await);
    request.arrears_amount = String::new();
    out.create_person(request).await.expect("created");
    enrol_at_lhasa(&pair, &certno, &name).await;
    let retired = out
        .retire_person(admin::RetirePersonRequest {
            certno: certno.clone(),
            from_month: month(&pair, -3).await,
        })
        .await
        .expect("retired")
        .into_inner()
        .person
        .expect("a person");
    assert!(retired.retired);
    assert_eq!(retired.psn_insu_stas(), EnrolmentState::Suspended);

    let refused = transfer(&pair, move_to_lhasa(&certno, &name)).await;
    expect_refused(&refused, RefusalReason::RetireeMustRegisterRelocation);

    // A relocated retiree asks the transfer-out bureau to pay the balance to their bank account.
    let mut payout = move_to_lhasa(&certno, &name);
    payout.retiree_payout_requested = true;
    payout.insutype_at_transfer_in = Scheme::Employee as i32;
    payout.bank_account = Some(BankAccount {
        bank_name: "中国工商银行".to_owned(),
        account_number: "6222020200112233".to_owned(),
        account_holder_name: name.clone(),
    });
    let applied = pair
        .bureau_out()
        .apply_transfer(payout)
        .await
        .expect("applied at transfer-out")
        .into_inner()
        .transfer
        .expect("a transfer");
    let paid = until_state(
        pair.out_endpoint(),
        &applied.transfer_id,
        TransferState::PaidToBank,
    )
    .await;
    assert_eq!(paid.personal_account_balance, "8765.43");
    assert_eq!(
        cents(&totals(pair.out_endpoint()).await.paid_to_bank_total),
        876_543
    );
    assert_conserved(&pair).await;
}

/// A person at Hohhot ready to move (stopped, paid up) and enrolled at Lhasa.
async fn ready_to_move(pair: &Pair, n: u16) -> (String, String) {
    let (certno, name) = newcomer(n);
    let mut request = history(&certno, &name, &month(pair, -4).await);
    request.psn_insu_stas = EnrolmentState::Suspended as i32;
    request.arrears_amount = String::new();
    pair.admin(Side::Out)
        .create_person(request)
        .await
        .expect("created");
    enrol_at_lhasa(pair, &certno, &name).await;
    (certno, name)
}

/// Expects a person call refused with `code` and a message starting with `prefix`.
fn expect_status<T: std::fmt::Debug>(
    answer: Result<tonic::Response<T>, tonic::Status>,
    code: Code,
    prefix: &str,
) {
    let status = answer.expect_err(prefix);
    assert_eq!(status.code(), code, "{prefix}: {}", status.message());
    assert!(
        status.message().starts_with(prefix),
        "{prefix}: {}",
        status.message()
    );
}

#[tokio::test]
async fn a_person_with_an_open_transfer_is_not_changed_at_either_bureau() {
    let pair = pair().await;
    let (certno, name) = ready_to_move(&pair, 3).await;
    // Transfer-in answers the form UNAVAILABLE until the rule is cleared: the transfer stays
    // open at both bureaus, transfer-out retrying.
    pair.admin(Side::In)
        .add_fault_rule(admin::AddFaultRuleRequest {
            rule: Some(admin::FaultRule {
                label: "hold-the-form".to_owned(),
                direction: admin::FaultDirection::Receiving as i32,
                message_kind: "DELIVER_FORM".to_owned(),
                fault: admin::FaultKind::Status as i32,
                grpc_code: Code::Unavailable as i32,
                message: "held by the test".to_owned(),
                ..Default::default()
            }),
        })
        .await
        .expect("a fault rule");
    let applied = pair
        .bureau_in()
        .apply_transfer(move_to_lhasa(&certno, &name))
        .await
        .expect("applied")
        .into_inner()
        .transfer
        .expect("a transfer");
    let before_in = record(&pair, Side::In, &certno).await.expect("shown");
    let stop_at_lhasa = admin::StopContributingRequest {
        certno: certno.clone(),
        from_month: month(&pair, 0).await,
    };
    let answer = pair.admin(Side::In).stop_contributing(stop_at_lhasa).await;
    expect_status(
        answer,
        Code::FailedPrecondition,
        "the person has an open transfer",
    );
    until_state(
        pair.out_endpoint(),
        &applied.transfer_id,
        TransferState::InTransit,
    )
    .await;
    let enrol_at_hohhot = admin::EnrolPersonRequest {
        insu_admdvs: HOHHOT.to_owned(),
        ..enrolment_at_lhasa(&certno, &name, &month(&pair, 0).await)
    };
    let answer = pair.admin(Side::Out).enrol_person(enrol_at_hohhot).await;
    expect_status(
        answer,
        Code::FailedPrecondition,
        "the person has an open transfer",
    );
    assert_eq!(
        record(&pair, Side::In, &certno).await.expect("shown"),
        before_in
    );

    pair.admin(Side::In)
        .clear_fault_rules(admin::ClearFaultRulesRequest {
            label: "hold-the-form".to_owned(),
        })
        .await
        .expect("cleared");
    let completed = until_state(
        pair.in_endpoint(),
        &applied.transfer_id,
        TransferState::Completed,
    )
    .await;
    assert_eq!(completed.personal_account_balance, "8765.43");
    assert_conserved(&pair).await;
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_field_and_a_refusal_writes_nothing() {
    let pair = pair().await;
    let mut out = pair.admin(Side::Out);
    let (certno, name) = newcomer(4);
    let last = month(&pair, -4).await;
    let good = history(&certno, &name, &last);
    let mut wrong_check = certno.clone();
    wrong_check.replace_range(17.., if certno.ends_with('0') { "1" } else { "0" });
    let cases: Vec<(admin::CreatePersonRequest, &str)> = vec![
        (
            admin::CreatePersonRequest {
                certno: wrong_check,
                ..good.clone()
            },
            "certno: ",
        ),
        (
            admin::CreatePersonRequest {
                insu_admdvs: LHASA.to_owned(),
                ..good.clone()
            },
            "insu_admdvs: region 540100 is not hosted by this bureau",
        ),
        (
            admin::CreatePersonRequest {
                periods: vec![
                    period("201207", "201512", CHONGQING),
                    period("201507", &last, HOHHOT),
                ],
                ..good.clone()
            },
            "periods: [1] shares months with [0]",
        ),
        (
            admin::CreatePersonRequest {
                fst_insu_ym: "2012-7".to_owned(),
                ..good.clone()
            },
            "fst_insu_ym: ",
        ),
        (
            admin::CreatePersonRequest {
                personal_account_balance: "8765.432".to_owned(),
                ..good.clone()
            },
            "personal_account_balance: ",
        ),
        (
            admin::CreatePersonRequest {
                psn_name: "x".repeat(51),
                ..good.clone()
            },
            "psn_name: ",
        ),
        (
            admin::CreatePersonRequest {
                fst_insu_ym: "2012070".to_owned(),
                ..good.clone()
            },
            "fst_insu_ym: at most 6 characters",
        ),
        (
            admin::CreatePersonRequest {
                arrears_amount: "1".repeat(16),
                ..good.clone()
            },
            "arrears_amount: at most 15 characters",
        ),
    ];
    for (request, prefix) in cases {
        expect_status(
            out.create_person(request).await,
            Code::InvalidArgument,
            prefix,
        );
    }
    let unknown = record(&pair, Side::Out, &certno)
        .await
        .expect_err("nothing written");
    assert_eq!(unknown.code(), Code::NotFound);
    let money = totals(pair.out_endpoint()).await;
    assert_eq!(cents(&money.accounts_balance_total), 0, "no account opened");

    out.create_person(good.clone()).await.expect("created");
    let before = record(&pair, Side::Out, &certno).await.expect("shown");
    let refusals: Vec<(Result<(), tonic::Status>, Code, &str)> = vec![
        (
            out.create_person(good).await.map(drop),
            Code::AlreadyExists,
            "the person is known at this bureau already",
        ),
        (
            pay(&mut out, &certno, "512.31").await,
            Code::FailedPrecondition,
            "amount is more than the 512.30 owed",
        ),
        (
            pay(&mut out, &certno, "0.001").await,
            Code::InvalidArgument,
            "amount: ",
        ),
        (
            out.stop_contributing(admin::StopContributingRequest {
                certno: certno.clone(),
                from_month: last.clone(),
            })
            .await
            .map(drop),
            Code::FailedPrecondition,
            "from_month",
        ),
        (
            out.retire_person(admin::RetirePersonRequest {
                certno: certno.clone(),
                from_month: month(&pair, 2).await,
            })
            .await
            .map(drop),
            Code::FailedPrecondition,
            "from_month",
        ),
    ];
    for (answer, code, prefix) in refusals {
        let status = answer.expect_err(prefix);
        assert_eq!(status.code(), code, "{prefix}: {}", status.message());
        assert!(
            status.message().starts_with(prefix),
            "{prefix}: {}",
            status.message()
        );
        assert!(
            !status.message().contains(&certno),
            "no ID number: {}",
            status.message()
        );
        assert!(
            !status.message().contains(&name),
            "no name: {}",
            status.message()
        );
    }
    assert_eq!(
        record(&pair, Side::Out, &certno).await.expect("shown"),
        before,
        "nothing changed"
    );
    let money = totals(pair.out_endpoint()).await;
    assert_eq!(
        cents(&money.accounts_balance_total),
        876_543,
        "one opening balance"
    );
}

async fn pay(out: &mut AdminClient, certno: &str, amount: &str) -> Result<(), tonic::Status> {
    out.pay_arrears(admin::PayArrearsRequest {
        certno: certno.to_owned(),
        amount: amount.to_owned(),
        ..Default::default()
    })
    .await
    .map(drop)
}

/// Runs `yibao --json person …` against the pair; the exit status and the JSON it printed.
async fn yibao_person(pair: &Pair, args: &[&str]) -> (bool, serde_json::Value) {
    let bin_dir = yibao_harness::default_bin_dir().expect("the binaries' directory");
    let output =
        tokio::process::Command::new(yibao_harness::locate::binary_path(&bin_dir, "yibao"))
            .args([
                "--json",
                "--out",
                pair.out_endpoint(),
                "--in",
                pair.in_endpoint(),
                "person",
            ])
            .args(args)
            .env_remove("YIBAO_ADMIN_TOKEN")
            .output()
            .await
            .expect("yibao runs (build it first: cargo build --workspace --bins)");
    // JSON goes to standard output, answers and errors alike.
    let printed = &output.stdout;
    let value = serde_json::from_slice(printed)
        .unwrap_or_else(|error| panic!("{error}: {}", printed_text(&output)));
    (output.status.success(), value)
}

fn printed_text(output: &std::process::Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test]
async fn the_yibao_person_commands_change_a_person_and_print_the_record() {
    let pair = pair().await;
    let (certno, name) = newcomer(5);
    let last = month(&pair, -4).await;
    let hohhot_period = format!("201507-{last}:employee:{HOHHOT}");
    let (ok, created) = yibao_person(
        &pair,
        &[
            "create",
            "--at",
            "out",
            "--certno",
            &certno,
            "--name",
            &name,
            "--region",
            HOHHOT,
            "--period",
            "201207-201506:employee:500000",
            "--period",
            &hohhot_period,
            "--deemed-months",
            "36",
            "--balance",
            "100.01",
            "--arrears",
            "20.00",
        ],
    )
    .await;
    assert!(ok, "{created}");
    assert_eq!(created["fst_insu_ym"], "201207");
    assert_eq!(created["personal_account_balance"], "100.01");
    assert_eq!(created["psn_insu_stas"], "ENROLMENT_STATE_NORMAL");

    let stop_from = month(&pair, -3).await;
    let (ok, stopped) = yibao_person(
        &pair,
        &[
            "stop", "--at", "out", "--certno", &certno, "--from", &stop_from,
        ],
    )
    .await;
    assert!(ok, "{stopped}");
    assert_eq!(stopped["psn_insu_stas"], "ENROLMENT_STATE_SUSPENDED");

    let (ok, refused) = yibao_person(
        &pair,
        &[
            "pay", "--at", "out", "--certno", &certno, "--amount", "20.01",
        ],
    )
    .await;
    assert!(!ok);
    assert_eq!(refused["error"]["code"], "FAILED_PRECONDITION", "{refused}");
    let (ok, paid) = yibao_person(&pair, &["pay", "--at", "out", "--certno", &certno]).await;
    assert!(ok, "{paid}");
    assert_eq!(paid["paid_amount"], "20.00");
    assert_eq!(paid["arrears_amount"], "0.00");

    let enrol_from = month(&pair, -1).await;
    let (ok, enrolled) = yibao_person(
        &pair,
        &[
            "enrol",
            "--at",
            "in",
            "--certno",
            &certno,
            "--name",
            &name,
            "--region",
            LHASA,
            "--from",
            &enrol_from,
        ],
    )
    .await;
    assert!(ok, "{enrolled}");
    assert_eq!(enrolled["insu_admdvs"], LHASA);

    let (ok, bad) = yibao_person(
        &pair,
        &[
            "retire", "--at", "out", "--certno", &certno, "--from", "2026-07",
        ],
    )
    .await;
    assert!(!ok);
    assert_eq!(bad["error"]["code"], "INVALID_ARGUMENT", "{bad}");
    assert!(
        bad["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("from_month: ")),
        "{bad}"
    );

    let (ok, retired) = yibao_person(
        &pair,
        &[
            "retire",
            "--at",
            "out",
            "--certno",
            &certno,
            "--from",
            &month(&pair, 0).await,
        ],
    )
    .await;
    assert!(ok, "{retired}");
    assert_eq!(retired["retired"], true);
}
