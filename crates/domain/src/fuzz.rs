//! Fuzzing by property (issue 10, item 6): every parser here that reads text from outside — the
//! resident ID number, money, region codes, months, transfer ids, calendar year files and region
//! policies — is given arbitrary text (any Unicode, control characters, arbitrary bytes read
//! lossily, very long runs) and valid text with a few characters changed, inserted or removed.
//! Each must answer every input with a value or an error, never a panic; whatever it accepts
//! must print back to text that parses to the same value and prints the same again.
//!
//! cargo-fuzz needs a nightly toolchain, which this project's machines and CI do not have, so
//! these are `proptest` properties over arbitrary inputs instead. Every one is named `fuzz_…` so
//! that `cargo test fuzz_` selects them; each runs proptest's default 256 cases, and
//! `PROPTEST_CASES` raises that (CI runs them again with more; README, "Fuzzing").

use chrono::{Datelike, NaiveDate};
use proptest::prelude::*;

use crate::calendar::{OFFICIAL_2026, WorkingCalendar, YearCalendar};
use crate::id::ResidentId;
use crate::money::Money;
use crate::month::YearMonth;
use crate::policy::{EmployeeToResidentBalance, MinimumContribution, RegionPolicy, ReviewTime};
use crate::region::RegionCode;
use crate::transfer::TransferId;

/// Arbitrary text: any Unicode string, arbitrary bytes read as UTF-8 lossily, any ASCII
/// (control characters included), the characters these parsers single out, and long runs.
fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        proptest::collection::vec(any::<u8>(), 0..64)
            .prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
        "[\\x00-\\x7f]{0,40}",
        "[0-9xX.,+\\-eE_' \t\n\u{3000}１中]{0,30}",
        // Long runs, made by repeating a short text (generating long texts directly is slow).
        ("[0-9]{1,10}", 1usize..300).prop_map(|(digits, times)| digits.repeat(times)),
        ("\\PC{1,20}", 1usize..500).prop_map(|(text, times)| text.repeat(times)),
    ]
}

/// A character an edit puts in: a digit, one the parsers single out, a control character, a
/// full-width digit or space, or any character at all.
fn edit_character() -> impl Strategy<Value = char> {
    prop_oneof![
        proptest::char::range('0', '9'),
        proptest::sample::select(vec![
            'x', 'X', '.', ',', '-', '+', 'e', ' ', '\t', '\n', '\0', '\u{7f}', '１', '\u{3000}',
            '中', '=', '"', '[', ']', '#', '\'', '\\',
        ]),
        any::<char>(),
    ]
}

/// One edit of a text, at a position taken modulo its length.
#[derive(Clone, Debug)]
enum Edit {
    /// Replace the character at the position.
    Replace(usize, char),
    /// Insert a character before the position.
    Insert(usize, char),
    /// Remove the character at the position.
    Remove(usize),
}

/// One to four edits.
fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let edit = prop_oneof![
        (any::<usize>(), edit_character()).prop_map(|(at, c)| Edit::Replace(at, c)),
        (any::<usize>(), edit_character()).prop_map(|(at, c)| Edit::Insert(at, c)),
        any::<usize>().prop_map(Edit::Remove),
    ];
    proptest::collection::vec(edit, 1..5)
}

/// `text` with `edits` applied, character by character.
fn edited(text: &str, edits: &[Edit]) -> String {
    let mut characters: Vec<char> = text.chars().collect();
    for edit in edits {
        let length = characters.len();
        match *edit {
            Edit::Replace(at, c) if length > 0 => characters[at % length] = c,
            Edit::Insert(at, c) => characters.insert(at % (length + 1), c),
            Edit::Remove(at) if length > 0 => {
                characters.remove(at % length);
            }
            Edit::Replace(..) | Edit::Remove(_) => {}
        }
    }
    characters.into_iter().collect()
}

/// A valid region code.
fn any_region() -> impl Strategy<Value = RegionCode> {
    (110_000u32..=829_999).prop_map(|value| RegionCode::from_value(value).expect("in range"))
}

/// A valid resident ID number.
fn any_resident_id() -> impl Strategy<Value = ResidentId> {
    (any_region(), 1850i32..=9999, 1u32..=366, 0u16..=999).prop_map(
        |(region, year, ordinal, sequence)| {
            let birth = NaiveDate::from_yo_opt(year, ordinal)
                .or_else(|| NaiveDate::from_yo_opt(year, 365))
                .expect("a real day of the year");
            ResidentId::from_parts(region, birth, sequence).expect("valid parts")
        },
    )
}

/// A valid amount, biased towards the edges.
fn any_money() -> impl Strategy<Value = Money> {
    prop_oneof![
        0u64..=1_000,
        0u64..=99_999_999_999_999,
        99_999_999_999_000u64..=99_999_999_999_999,
    ]
    .prop_map(|cents| Money::from_cents(cents).expect("within the maximum"))
}

/// A valid month.
fn any_month() -> impl Strategy<Value = YearMonth> {
    (1950u16..=2100, 1u8..=12).prop_map(|(year, month)| YearMonth::new(year, month).expect("valid"))
}

/// A valid transfer id.
fn any_transfer_id() -> impl Strategy<Value = TransferId> {
    (any_region(), 0i32..=9999, 1u32..=366, 0u32..=9_999_999).prop_map(
        |(region, year, ordinal, sequence)| {
            let date = NaiveDate::from_yo_opt(year, ordinal)
                .or_else(|| NaiveDate::from_yo_opt(year, 365))
                .expect("a real day of the year");
            TransferId::new(region, date, sequence).expect("seven digits")
        },
    )
}

/// Parses text as a resident ID, checking what is accepted: it reads back from its full text,
/// and its masked forms agree. An error prints without panicking and never shows the text.
fn check_resident_id(text: &str) -> Result<(), TestCaseError> {
    match ResidentId::parse(text) {
        Ok(id) => {
            prop_assert_eq!(ResidentId::parse(id.expose_unmasked()), Ok(id.clone()));
            prop_assert!(id.expose_unmasked().eq_ignore_ascii_case(text));
            prop_assert_eq!(id.to_string(), id.masked());
        }
        Err(error) => {
            let shown = error.to_string();
            prop_assert!(!shown.is_empty());
            prop_assert!(
                text.chars().count() < 17 || !shown.contains(text),
                "{}",
                shown
            );
        }
    }
    Ok(())
}

/// Checks that `parse` answers `text` and that whatever it accepts round-trips through its
/// `Display`: parsing the shown text gives the same value, shown identically. Errors print.
fn check_round_trip<T, E>(parse: fn(&str) -> Result<T, E>, text: &str) -> Result<(), TestCaseError>
where
    T: std::fmt::Display + std::fmt::Debug + PartialEq,
    E: std::fmt::Display + std::fmt::Debug + PartialEq,
{
    match parse(text) {
        Ok(value) => {
            let shown = value.to_string();
            let again = parse(&shown);
            prop_assert_eq!(again.as_ref().map(ToString::to_string), Ok(shown.clone()));
            prop_assert_eq!(again, Ok(value));
        }
        Err(error) => prop_assert!(!error.to_string().is_empty()),
    }
    Ok(())
}

/// A year file's holiday with dates around `year`, often not real (month 0 or 13, day 32).
fn holiday_toml() -> impl Strategy<Value = String> {
    let date = (2024i32..=2028, 0u32..=13, 0u32..=32)
        .prop_map(|(year, month, day)| format!("{year:04}-{month:02}-{day:02}"));
    (
        "[A-Za-z 中]{0,8}",
        date.clone(),
        date.clone(),
        proptest::collection::vec(date, 0..4),
    )
        .prop_map(|(name, first, last, makeup)| {
            format!(
                "[[holidays]]\nname = \"{name}\"\nfirst_day = {first}\nlast_day = {last}\n\
                 makeup_working_days = [{}]\n",
                makeup.join(", ")
            )
        })
}

/// A whole year file of generated holidays, the year sometimes out of range.
fn year_file_toml() -> impl Strategy<Value = String> {
    (
        prop_oneof![2025i32..=2027, -5i32..=10_005],
        "[a-z ]{0,12}",
        proptest::collection::vec(holiday_toml(), 0..6),
    )
        .prop_map(|(year, source, holidays)| {
            format!(
                "year = {year}\nsource = \"{source}\"\n{}",
                holidays.concat()
            )
        })
}

/// Parses a year file and checks what is accepted: every date lies in its year, holidays are
/// in order within themselves, and a calendar of it counts deadlines without panicking.
fn check_year_file(text: &str) -> Result<(), TestCaseError> {
    let year = match YearCalendar::parse_toml(text) {
        Ok(year) => year,
        Err(error) => {
            prop_assert!(!error.to_string().is_empty());
            return Ok(());
        }
    };
    for holiday in year.holidays() {
        prop_assert!(holiday.first_day <= holiday.last_day);
        prop_assert_eq!(holiday.first_day.year(), year.year());
        prop_assert_eq!(holiday.last_day.year(), year.year());
        for day in &holiday.makeup_working_days {
            prop_assert_eq!(day.year(), year.year());
        }
    }
    let calendar = WorkingCalendar::new(vec![year.clone()]).expect("one year");
    if let Some(start) = NaiveDate::from_ymd_opt(year.year(), 1, 1) {
        for days in [0, 1, 5, 10, 15, 366] {
            let _ = calendar.add_working_days(start, days);
        }
        if let Some(end) = start.checked_add_days(chrono::Days::new(400)) {
            let _ = calendar.working_days_between(start, end);
        }
    }
    Ok(())
}

/// A policy of arbitrary field values, valid or not.
fn any_policy() -> impl Strategy<Value = RegionPolicy> {
    let flags = any::<[bool; 4]>();
    let months = (any::<u8>(), any::<u8>(), proptest::option::of(any::<u8>()));
    let minimum = (any::<u16>(), any::<u16>());
    let review = (any::<u16>(), any::<u16>());
    let balance = prop_oneof![
        Just(EmployeeToResidentBalance::PayToBank),
        Just(EmployeeToResidentBalance::KeepUsable),
    ];
    (flags, months, minimum, balance, review).prop_map(
        |(
            [shared, pays_out, retiree, instant],
            (back_pay, waiting, conversion),
            (male, female),
            balance,
            (online, counter),
        )| {
            RegionPolicy {
                shared_provincial_account: shared,
                pays_out_instead_of_transfer: pays_out,
                retiree_payout_on_request: retiree,
                back_pay_window_months: back_pay,
                waiting_period_months: waiting,
                resident_to_employee_months_per_year: conversion,
                employee_to_resident_balance: balance,
                instant_mode: instant,
                minimum_contribution_months: MinimumContribution { male, female },
                review_working_days: ReviewTime { online, counter },
                // Kept at the default here; FULL_POLICY and policy.rs test the other form.
                remittance: crate::policy::Remittance::WithForm,
            }
        },
    )
}

/// A policy file using every key, as a region would write it.
const FULL_POLICY: &str = r#"
shared_provincial_account = true
pays_out_instead_of_transfer = false
retiree_payout_on_request = true
back_pay_window_months = 2
waiting_period_months = 3
resident_to_employee_months_per_year = 3
employee_to_resident_balance = "keep_usable"
instant_mode = true
minimum_contribution_months = { male = 180, female = 180 }
review_working_days = { online = 3, counter = 20 }
remittance = { after_working_days = 10 }
"#;

/// Parses a policy and checks what is accepted: it passes validation and prints back to TOML
/// that parses to the same policy.
fn check_policy(text: &str) -> Result<(), TestCaseError> {
    match RegionPolicy::parse_toml(text) {
        Ok(policy) => {
            prop_assert_eq!(policy.validate(), Ok(()));
            let shown = toml::to_string(&policy).expect("a policy prints as TOML");
            prop_assert_eq!(RegionPolicy::parse_toml(&shown), Ok(policy));
        }
        Err(error) => prop_assert!(!error.to_string().is_empty()),
    }
    Ok(())
}

proptest! {
    #[test]
    fn fuzz_resident_id_any_text(text in any_text()) {
        check_resident_id(&text)?;
    }

    #[test]
    fn fuzz_resident_id_near_valid(id in any_resident_id(), edits in edits()) {
        check_resident_id(id.expose_unmasked())?;
        check_resident_id(&edited(id.expose_unmasked(), &edits))?;
    }

    #[test]
    fn fuzz_money_any_text(text in any_text()) {
        check_round_trip(Money::parse, &text)?;
    }

    #[test]
    fn fuzz_money_near_valid(money in any_money(), edits in edits()) {
        prop_assert_eq!(Money::parse(&money.to_string()), Ok(money));
        check_round_trip(Money::parse, &edited(&money.to_string(), &edits))?;
    }

    #[test]
    fn fuzz_region_any_text(text in any_text()) {
        check_round_trip(RegionCode::parse, &text)?;
    }

    #[test]
    fn fuzz_region_near_valid(region in any_region(), edits in edits()) {
        prop_assert_eq!(RegionCode::parse(&region.to_string()), Ok(region));
        check_round_trip(RegionCode::parse, &edited(&region.to_string(), &edits))?;
    }

    #[test]
    fn fuzz_month_any_text(text in any_text()) {
        check_round_trip(YearMonth::parse, &text)?;
    }

    #[test]
    fn fuzz_month_near_valid(month in any_month(), edits in edits()) {
        prop_assert_eq!(YearMonth::parse(&month.to_string()), Ok(month));
        check_round_trip(YearMonth::parse, &edited(&month.to_string(), &edits))?;
    }

    #[test]
    fn fuzz_transfer_id_any_text(text in any_text()) {
        check_round_trip(TransferId::parse, &text)?;
    }

    #[test]
    fn fuzz_transfer_id_near_valid(id in any_transfer_id(), edits in edits()) {
        prop_assert_eq!(TransferId::parse(id.as_str()), Ok(id.clone()));
        check_round_trip(TransferId::parse, &edited(id.as_str(), &edits))?;
    }

    #[test]
    fn fuzz_calendar_any_text(text in any_text()) {
        check_year_file(&text)?;
    }

    #[test]
    fn fuzz_calendar_generated_year_files(text in year_file_toml()) {
        check_year_file(&text)?;
    }

    #[test]
    fn fuzz_calendar_near_the_shipped_file(edits in edits()) {
        check_year_file(&edited(OFFICIAL_2026, &edits))?;
    }

    #[test]
    fn fuzz_policy_any_text(text in any_text()) {
        check_policy(&text)?;
    }

    #[test]
    fn fuzz_policy_near_a_full_policy(edits in edits()) {
        check_policy(&edited(FULL_POLICY, &edits))?;
    }

    #[test]
    fn fuzz_policy_any_values_round_trip(policy in any_policy()) {
        let text = toml::to_string(&policy).expect("a policy prints as TOML");
        match RegionPolicy::parse_toml(&text) {
            Ok(parsed) => prop_assert_eq!(parsed, policy),
            Err(error) => prop_assert_eq!(policy.validate(), Err(error)),
        }
    }
}
