//! The lifecycle rules, each test named after the DOMAIN.md rule it enforces.

use proptest::prelude::*;

use super::*;

fn ym(text: &str) -> YearMonth {
    YearMonth::parse(text).expect("a month")
}

fn region(text: &str) -> RegionCode {
    RegionCode::parse(text).expect("a region")
}

fn money(text: &str) -> Money {
    Money::parse(text).expect("money")
}

fn period(from: &str, to: &str, scheme: Scheme, code: &str) -> ContributionPeriod {
    ContributionPeriod::new(ym(from), ym(to), scheme, region(code)).expect("a period")
}

const HOHHOT: &str = "150100";

/// It is November 2026; Hohhot's back-pay window is the national 3 months.
fn facts() -> Facts<'static> {
    Facts {
        open_transfer: None,
        this_month: ym("202611"),
        back_pay_window_months: 3,
    }
}

/// An employee contributing at Hohhot since 2015-07, recorded paid through 2026-06.
fn contributing() -> Record {
    Record {
        region: region(HOHHOT),
        scheme: Scheme::Employee,
        enrolment: EnrolmentState::Normal,
        status: PersonStatus::Working,
        first_insured: ym("201507"),
        periods: vec![period("201507", "202606", Scheme::Employee, HOHHOT)],
        arrears: Money::ZERO,
        deemed_months: 0,
    }
}

fn stopped() -> Record {
    Record {
        enrolment: EnrolmentState::Suspended,
        ..contributing()
    }
}

fn change(record: Option<&Record>, change: Change) -> Result<Record, Refusal> {
    apply(record, &facts(), &change).map(|changed| changed.record)
}

fn enrol_at(code: &str, from: &str) -> Change {
    Change::Enrol(Enrolment {
        region: region(code),
        scheme: Scheme::Employee,
        from: ym(from),
    })
}

fn pay(amount: Option<&str>, months: Option<(&str, &str)>) -> Change {
    Change::Pay(Payment {
        amount: amount.map(money),
        months: months.map(|(from, to)| Months::new(ym(from), ym(to)).expect("months")),
    })
}

#[test]
fn a_new_person_enrolled_contributes_normally_from_the_month_given() {
    let record = change(None, enrol_at("540100", "202608")).expect("enrolled");
    assert_eq!(record.enrolment, EnrolmentState::Normal);
    assert_eq!(record.region, region("540100"));
    assert_eq!(record.first_insured, ym("202608"));
    assert_eq!(
        record.periods,
        vec![period("202608", "202608", Scheme::Employee, "540100")]
    );
    assert!(record.arrears.is_zero());
}

#[test]
fn nobody_is_enrolled_twice_so_a_person_who_contributes_here_is_refused() {
    assert_eq!(
        change(Some(&contributing()), enrol_at(HOHHOT, "202611")),
        Err(Refusal::AlreadyEnrolled)
    );
}

#[test]
fn a_month_is_insured_once_so_an_enrolment_starts_after_the_last_month_paid() {
    let refused = change(Some(&stopped()), enrol_at(HOHHOT, "202606"));
    assert_eq!(
        refused,
        Err(Refusal::AlreadyPaid {
            field: "from_month",
            month: ym("202606"),
            last_paid: ym("202606"),
        })
    );
    let resumed = change(Some(&stopped()), enrol_at("440100", "202607")).expect("resumed");
    assert_eq!(resumed.enrolment, EnrolmentState::Normal);
    assert_eq!(resumed.periods.len(), 2);
    assert_eq!(resumed.first_insured, ym("201507"), "the first month stays");
}

#[test]
fn no_month_is_paid_before_it_comes() {
    assert!(matches!(
        change(None, enrol_at(HOHHOT, "202612")),
        Err(Refusal::NotYetCome { .. })
    ));
    // Stopping from next month records this month as paid: allowed; from the month after, not.
    assert!(change(Some(&contributing()), Change::Stop { from: ym("202612") }).is_ok());
    assert!(matches!(
        change(Some(&contributing()), Change::Stop { from: ym("202701") }),
        Err(Refusal::NotYetCome { .. })
    ));
    let mut gap = stopped();
    gap.periods = vec![period("201507", "202609", Scheme::Employee, HOHHOT)];
    assert!(matches!(
        change(Some(&gap), pay(None, Some(("202610", "202612")))),
        Err(Refusal::NotYetCome { .. })
    ));
}

#[test]
fn a_relationship_that_left_starts_a_new_record_of_months_when_the_person_comes_back() {
    let left = Record {
        enrolment: EnrolmentState::Terminated,
        deemed_months: 24,
        ..contributing()
    };
    let back = change(Some(&left), enrol_at("440100", "202609")).expect("back");
    assert_eq!(
        back.periods,
        vec![period("202609", "202609", Scheme::Employee, "440100")]
    );
    assert_eq!(
        back.deemed_months, 0,
        "the months left with the relationship"
    );
    assert_eq!(back.first_insured, ym("201507"));
}

#[test]
fn a_retiree_does_not_enrol_to_contribute_again() {
    let retiree = Record {
        status: PersonStatus::Retired,
        ..stopped()
    };
    assert_eq!(
        change(Some(&retiree), enrol_at(HOHHOT, "202610")),
        Err(Refusal::Retired)
    );
}

#[test]
fn stopping_contributions_closes_the_open_period_and_suspends_the_person() {
    let stopped =
        change(Some(&contributing()), Change::Stop { from: ym("202609") }).expect("stopped");
    assert_eq!(stopped.enrolment, EnrolmentState::Suspended);
    assert_eq!(
        stopped.periods,
        vec![period("201507", "202608", Scheme::Employee, HOHHOT)]
    );
}

#[test]
fn stopping_cannot_unrecord_months_already_paid() {
    assert_eq!(
        change(Some(&contributing()), Change::Stop { from: ym("202606") }),
        Err(Refusal::AlreadyPaid {
            field: "from_month",
            month: ym("202606"),
            last_paid: ym("202606"),
        })
    );
}

#[test]
fn only_a_person_who_contributes_can_stop() {
    assert_eq!(
        change(Some(&stopped()), Change::Stop { from: ym("202609") }),
        Err(Refusal::NotContributing(EnrolmentState::Suspended))
    );
    let left = Record {
        enrolment: EnrolmentState::Terminated,
        ..stopped()
    };
    assert_eq!(
        change(Some(&left), Change::Stop { from: ym("202609") }),
        Err(Refusal::RelationshipLeft)
    );
    assert_eq!(
        change(None, Change::Stop { from: ym("202609") }),
        Err(Refusal::Unknown)
    );
}

#[test]
fn a_stop_leaves_months_paid_elsewhere_alone() {
    let mut record = contributing();
    record.periods = vec![
        period("201507", "201812", Scheme::Employee, HOHHOT),
        period("201901", "202012", Scheme::Employee, "500000"),
    ];
    let stopped = change(Some(&record), Change::Stop { from: ym("202101") }).expect("stopped");
    assert_eq!(stopped.periods, record.periods, "no open period to close");
}

#[test]
fn one_open_transfer_per_person_so_a_person_with_one_is_not_changed() {
    let with_transfer = Facts {
        open_transfer: Some("150100202611300001"),
        ..facts()
    };
    for what in [
        enrol_at(HOHHOT, "202611"),
        Change::Stop { from: ym("202609") },
        pay(None, None),
        Change::Retire { from: ym("202609") },
    ] {
        assert_eq!(
            apply(Some(&contributing()), &with_transfer, &what),
            Err(Refusal::OpenTransfer("150100202611300001".to_owned())),
            "{what:?}"
        );
    }
}

#[test]
fn the_person_owes_nothing_once_what_is_owed_is_paid_to_the_cent() {
    let owing = Record {
        arrears: money("1234.56"),
        ..stopped()
    };
    let part = apply(Some(&owing), &facts(), &pay(Some("1234.55"), None)).expect("paid");
    assert_eq!(part.paid, money("1234.55"));
    assert_eq!(part.record.arrears, money("0.01"));
    let all = apply(Some(&part.record), &facts(), &pay(None, None)).expect("paid");
    assert_eq!(all.paid, money("0.01"));
    assert!(all.record.arrears.is_zero());
    assert_eq!(
        change(Some(&all.record), pay(None, None)),
        Err(Refusal::NothingToPay)
    );
}

#[test]
fn paying_more_than_is_owed_is_refused() {
    let owing = Record {
        arrears: money("10.00"),
        ..stopped()
    };
    assert_eq!(
        change(Some(&owing), pay(Some("10.01"), None)),
        Err(Refusal::MoreThanOwed {
            owed: money("10.00")
        })
    );
}

#[test]
fn a_gap_of_three_months_or_less_may_be_back_paid_and_joins_the_periods_it_touches() {
    let mut gap = stopped();
    gap.periods = vec![
        period("201507", "202601", Scheme::Employee, HOHHOT),
        period("202605", "202606", Scheme::Employee, HOHHOT),
    ];
    let paid = change(Some(&gap), pay(None, Some(("202602", "202604")))).expect("back-paid");
    assert_eq!(
        paid.periods,
        vec![period("201507", "202606", Scheme::Employee, HOHHOT)]
    );
    let after = change(Some(&stopped()), pay(None, Some(("202607", "202608")))).expect("paid");
    assert_eq!(
        after.periods,
        vec![period("201507", "202608", Scheme::Employee, HOHHOT)]
    );
}

#[test]
fn a_gap_longer_than_the_back_pay_window_is_not_back_paid() {
    assert_eq!(
        change(Some(&stopped()), pay(None, Some(("202607", "202610")))),
        Err(Refusal::BackPayTooLong {
            months: 4,
            window: 3
        })
    );
    let narrower = Facts {
        back_pay_window_months: 1,
        ..facts()
    };
    assert!(matches!(
        apply(
            Some(&stopped()),
            &narrower,
            &pay(None, Some(("202607", "202608")))
        ),
        Err(Refusal::BackPayTooLong { .. })
    ));
}

#[test]
fn back_paid_months_must_close_a_gap_and_not_be_paid_already() {
    assert!(matches!(
        change(Some(&stopped()), pay(None, Some(("202605", "202607")))),
        Err(Refusal::AlreadyPaid { .. })
    ));
    assert_eq!(
        change(Some(&stopped()), pay(None, Some(("202608", "202609")))),
        Err(Refusal::BackPayNotJoined)
    );
}

#[test]
fn retired_employees_stop_contributing_and_keep_their_record() {
    let retired =
        change(Some(&contributing()), Change::Retire { from: ym("202609") }).expect("retired");
    assert_eq!(retired.status, PersonStatus::Retired);
    assert_eq!(retired.enrolment, EnrolmentState::Suspended);
    assert_eq!(
        retired.periods,
        vec![period("201507", "202608", Scheme::Employee, HOHHOT)]
    );
    assert_eq!(
        change(Some(&retired), Change::Retire { from: ym("202610") }),
        Err(Refusal::AlreadyRetired)
    );
    assert_eq!(
        change(Some(&retired), pay(None, Some(("202609", "202609")))),
        Err(Refusal::Retired),
        "a retiree back-pays no months"
    );
    let from_stopped =
        change(Some(&stopped()), Change::Retire { from: ym("202607") }).expect("retired");
    assert_eq!(from_stopped.periods, stopped().periods);
}

#[test]
fn a_created_history_counts_each_month_once() {
    let mut record = stopped();
    record.periods = vec![
        period("201507", "201812", Scheme::Employee, "500000"),
        period("201812", "202606", Scheme::Employee, HOHHOT),
    ];
    let error = create(None, record, Money::ZERO, ym("202611")).expect_err("overlap");
    assert_eq!(
        error,
        CreateError::Invalid(Invalid {
            field: "periods",
            rule: "[1] shares months with [0]: a month is insured once (不得重复参保)".to_owned(),
        })
    );
}

#[test]
fn a_created_history_is_sorted_and_starts_no_earlier_than_the_first_insured_month() {
    let mut record = stopped();
    record.periods = vec![
        period("201901", "202606", Scheme::Employee, HOHHOT),
        period("201507", "201812", Scheme::Resident, "500000"),
    ];
    let created = create(None, record.clone(), money("100.00"), ym("202611")).expect("created");
    assert_eq!(created.periods[0].from(), ym("201507"));
    record.first_insured = ym("201601");
    assert!(matches!(
        create(None, record, Money::ZERO, ym("202611")),
        Err(CreateError::Invalid(Invalid {
            field: "fst_insu_ym",
            ..
        }))
    ));
    assert_eq!(
        create(Some(&stopped()), stopped(), Money::ZERO, ym("202611")),
        Err(CreateError::AlreadyKnown)
    );
}

#[test]
fn the_resident_scheme_has_no_personal_account_so_a_created_resident_holds_no_balance() {
    let resident = Record {
        scheme: Scheme::Resident,
        periods: vec![period("201507", "202606", Scheme::Resident, HOHHOT)],
        ..stopped()
    };
    assert!(create(None, resident.clone(), Money::ZERO, ym("202611")).is_ok());
    assert!(matches!(
        create(None, resident, money("0.01"), ym("202611")),
        Err(CreateError::Invalid(Invalid {
            field: "personal_account_balance",
            ..
        }))
    ));
}

#[test]
fn a_created_record_holds_only_what_an_information_form_can_carry() {
    let mut record = stopped();
    record.deemed_months = 1_201;
    assert!(matches!(
        create(None, record, Money::ZERO, ym("202611")),
        Err(CreateError::Invalid(Invalid {
            field: "deemed_months",
            ..
        }))
    ));
    assert!(matches!(
        create(None, stopped(), money("10000000.01"), ym("202611")),
        Err(CreateError::Invalid(Invalid {
            field: "personal_account_balance",
            ..
        }))
    ));
    let mut future = stopped();
    future.periods = vec![period("201507", "202612", Scheme::Employee, HOHHOT)];
    assert!(matches!(
        create(None, future, Money::ZERO, ym("202611")),
        Err(CreateError::Invalid(Invalid {
            field: "periods",
            ..
        }))
    ));
}

#[test]
fn refusals_name_months_and_fields_but_no_person() {
    let text = Refusal::AlreadyPaid {
        field: "from_month",
        month: ym("202606"),
        last_paid: ym("202606"),
    }
    .to_string();
    assert_eq!(
        text,
        "from_month 202606: the months up to 202606 are on record; a month is insured once"
    );
}

fn any_month() -> impl Strategy<Value = YearMonth> {
    (0i32..180).prop_map(|offset| ym("201401").saturating_plus_months(offset))
}

fn any_change() -> impl Strategy<Value = Change> {
    (0u8..4, any_month(), any_month(), 0u64..200_000).prop_map(|(kind, a, b, cents)| match kind {
        0 => Change::Enrol(Enrolment {
            region: region(HOHHOT),
            scheme: Scheme::Employee,
            from: a,
        }),
        1 => Change::Stop { from: a },
        2 => Change::Pay(Payment {
            amount: (cents % 2 == 0).then(|| Money::from_cents(cents).unwrap_or(Money::ZERO)),
            months: Months::new(a.min(b), a.max(b)),
        }),
        _ => Change::Retire { from: a },
    })
}

proptest! {
    /// Whatever happens to a person, in any order, the record keeps two rules: a month is
    /// insured once, and no month is paid before it comes.
    #[test]
    fn a_life_of_changes_never_records_a_month_twice_or_in_the_future(
        changes in prop::collection::vec(any_change(), 1..20),
    ) {
        let facts = facts();
        let mut record: Option<Record> = None;
        for what in changes {
            if let Ok(changed) = apply(record.as_ref(), &facts, &what) {
                let periods = &changed.record.periods;
                let sum: u32 = periods.iter().map(ContributionPeriod::months).sum();
                prop_assert_eq!(total_months(periods), sum, "a month on record twice: {:?}", periods);
                prop_assert!(last_paid(periods).is_none_or(|last| last <= facts.this_month));
                record = Some(changed.record);
            }
        }
    }
}
