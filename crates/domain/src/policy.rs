//! A pooling region's own transfer rules, read from configuration and checked against the national
//! caps of 医保办发〔2021〕43号.
//!
//! Where DOMAIN.md says a rule "varies by region", it is a field here, never a constant in code.
//! A policy is parsed from TOML (unknown keys are refused, so a misspelt key cannot silently fall
//! back to a default) and validated on the way in; [`RegionPolicy::default`] is the national
//! default that any omitted key takes.

use serde::{Deserialize, Serialize};

/// The longest gap (中断缴费) that the national rules let a person back-pay: 3 months.
pub const NATIONAL_BACK_PAY_WINDOW_MONTHS: u8 = 3;
/// The longest waiting period (待遇享受等待期) a region may set after a longer gap: 6 months.
pub const NATIONAL_MAX_WAITING_PERIOD_MONTHS: u8 = 6;
/// A sanity limit on a minimum-contribution requirement: 50 years. Not a national rule; it only
/// catches configuration mistakes such as a requirement given in days instead of months.
pub const MAX_MINIMUM_CONTRIBUTION_MONTHS: u16 = 600;
/// A sanity limit on how long a region's review (审核) of an application may take: 250 working
/// days, about a year. Not a national rule (the national rule is the transfer-out bureau's 10
/// working days, which a longer review breaks and is flagged for); it only catches a review time
/// given in calendar days or hours by mistake.
pub const MAX_REVIEW_WORKING_DAYS: u16 = 250;

/// The most working days a region's remittance (划转) may follow its form by: about a year, as
/// for the review ([`MAX_REVIEW_WORKING_DAYS`]).
pub const MAX_REMITTANCE_WORKING_DAYS: u16 = 250;

/// One pooling region's transfer policy.
///
/// Every field has a default (see [`RegionPolicy::default`]), so a region's TOML names only
/// where it departs from the national defaults.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegionPolicy {
    /// The province runs one personal account for all its cities (e.g. Guangdong): on a move
    /// within the province the balance is neither moved nor paid out; it stays usable.
    /// Takes effect only when both regions of a transfer say so. Default `false`.
    pub shared_provincial_account: bool,
    /// The region pays the balance to the person's bank account instead of transferring it
    /// (an older Qingdao rule: 做账户一次性支付). Default `false`.
    pub pays_out_instead_of_transfer: bool,
    /// A retiree relocated to another province (跨省异地安置退休人员) may ask for the balance to be
    /// paid to a bank account. When `false` retirees only register the relocation. Default `false`,
    /// the national rule that retired employees do not transfer.
    pub retiree_payout_on_request: bool,
    /// How long a gap the region lets a person back-pay (补缴), in months; at most
    /// [`NATIONAL_BACK_PAY_WINDOW_MONTHS`]. Default 3.
    pub back_pay_window_months: u8,
    /// The waiting period after a gap of more than 3 months, in months; at most
    /// [`NATIONAL_MAX_WAITING_PERIOD_MONTHS`]; 0 means none. Default 6.
    pub waiting_period_months: u8,
    /// How many employee months one full resident year counts for when a person moves from the
    /// resident to the employee scheme here (one region: 3); `None` means no conversion and the
    /// resident years are credited as they are. Must be 1–12. Default `None`.
    pub resident_to_employee_months_per_year: Option<u8>,
    /// What happens to the balance of a person who leaves the employee scheme here for the
    /// resident scheme elsewhere. Default [`EmployeeToResidentBalance::PayToBank`].
    pub employee_to_resident_balance: EmployeeToResidentBalance,
    /// The region settles transfers at once (秒到账, as in Inner Mongolia): both sides finish
    /// together. Takes effect only when both regions say so. Default `false`.
    pub instant_mode: bool,
    /// Contribution months needed for lifelong benefits at retirement. Default 360 / 300.
    pub minimum_contribution_months: MinimumContribution,
    /// How many working days the region's transfer-out review (审核) of an application takes,
    /// by the channel the person applied through (DOMAIN.md, "Timings seen in practice": online
    /// faster than at the counter). 0 means decided at once, in the answer to the request.
    /// Default 0 for both.
    pub review_working_days: ReviewTime,
    /// How this region, as the transfer-out region, moves the balance to the transfer-in
    /// region's fund (DOMAIN.md, the transfer, steps 3-4: 划转, then 核对无误后计入). Default
    /// [`Remittance::WithForm`], the balance credited on the form's word.
    pub remittance: Remittance,
}

/// How a transfer-out region remits a balance between the bureaus' fund accounts.
///
/// In TOML: `remittance = "with_form"` or `remittance = { after_working_days = 10 }`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Remittance {
    /// The balance travels on the form: the transfer-in bureau credits it on the form's word
    /// (the behaviour before the fund leg, and the default).
    #[default]
    WithForm,
    /// A separate remittance follows the form this many working days later (at most
    /// [`MAX_REMITTANCE_WORKING_DAYS`]); the transfer-in bureau credits the years on the form
    /// and the balance only when the remittance arrives and matches it.
    AfterWorkingDays(u16),
}

/// How many working days a review takes, by application channel. Each at most
/// [`MAX_REVIEW_WORKING_DAYS`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReviewTime {
    /// An application made online (the national app, a website). Default 0.
    pub online: u16,
    /// An application made at a counter (窗口). Default 0.
    pub counter: u16,
}

/// What happens to a personal-account balance when its owner moves to the resident scheme, which
/// has no personal account. Either way the money stays the person's: it is never lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmployeeToResidentBalance {
    /// Paid to the person's bank account: the money follows the person, who may no longer live
    /// where the account could be spent. The national default here.
    PayToBank,
    /// Kept in the account at the transfer-out region, still usable there.
    KeepUsable,
}

/// Contribution months needed for lifelong benefits at retirement, by sex (commonly men 30
/// years, women 25; Shanghai 15 for both). Each must be 1–[`MAX_MINIMUM_CONTRIBUTION_MONTHS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MinimumContribution {
    /// Months required of men. Default 360 (30 years).
    pub male: u16,
    /// Months required of women. Default 300 (25 years).
    pub female: u16,
}

/// Why a region policy is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The text is not TOML of the expected shape (includes unknown keys).
    #[error("region policy is not valid TOML: {message}")]
    Toml {
        /// The parser's explanation, with the line and key.
        message: String,
    },
    /// `back_pay_window_months` exceeds the national cap.
    #[error("back_pay_window_months is {months}, above the national cap of {cap} months")]
    BackPayWindowAboveCap {
        /// The configured value.
        months: u8,
        /// The national cap, [`NATIONAL_BACK_PAY_WINDOW_MONTHS`].
        cap: u8,
    },
    /// `waiting_period_months` exceeds the national cap.
    #[error("waiting_period_months is {months}, above the national cap of {cap} months")]
    WaitingPeriodAboveCap {
        /// The configured value.
        months: u8,
        /// The national cap, [`NATIONAL_MAX_WAITING_PERIOD_MONTHS`].
        cap: u8,
    },
    /// `resident_to_employee_months_per_year` is outside 1–12.
    #[error(
        "resident_to_employee_months_per_year must be 1-12 (a resident year never counts for more \
         than an employee year), got {months}"
    )]
    ConversionOutOfRange {
        /// The configured value.
        months: u8,
    },
    /// A `minimum_contribution_months` value is outside 1–600.
    #[error("minimum_contribution_months.{field} must be 1-{max} months, got {months}")]
    MinimumContributionOutOfRange {
        /// `male` or `female`.
        field: &'static str,
        /// The configured value.
        months: u16,
        /// The limit, [`MAX_MINIMUM_CONTRIBUTION_MONTHS`].
        max: u16,
    },
    /// `remittance.after_working_days` is above [`MAX_REMITTANCE_WORKING_DAYS`].
    #[error("remittance.after_working_days must be at most {max} working days, got {days}")]
    RemittanceDelayOutOfRange {
        /// The configured value.
        days: u16,
        /// The limit, [`MAX_REMITTANCE_WORKING_DAYS`].
        max: u16,
    },
    /// A `review_working_days` value is above [`MAX_REVIEW_WORKING_DAYS`].
    #[error("review_working_days.{field} must be at most {max} working days, got {days}")]
    ReviewTimeOutOfRange {
        /// `online` or `counter`.
        field: &'static str,
        /// The configured value.
        days: u16,
        /// The limit, [`MAX_REVIEW_WORKING_DAYS`].
        max: u16,
    },
}

impl Default for RegionPolicy {
    /// The national defaults: no shared provincial account, transfers rather than payouts,
    /// retirees register relocation, back-pay window 3 months, waiting period 6 months, no
    /// resident-year conversion, employee→resident balance paid to the bank, asynchronous
    /// settlement, minimum contribution 360 months for men and 300 for women, reviews decided at
    /// once.
    fn default() -> Self {
        Self {
            shared_provincial_account: false,
            pays_out_instead_of_transfer: false,
            retiree_payout_on_request: false,
            back_pay_window_months: NATIONAL_BACK_PAY_WINDOW_MONTHS,
            waiting_period_months: NATIONAL_MAX_WAITING_PERIOD_MONTHS,
            resident_to_employee_months_per_year: None,
            employee_to_resident_balance: EmployeeToResidentBalance::PayToBank,
            instant_mode: false,
            minimum_contribution_months: MinimumContribution::default(),
            review_working_days: ReviewTime::default(),
            remittance: Remittance::WithForm,
        }
    }
}

impl Default for MinimumContribution {
    /// Men 360 months (30 years), women 300 months (25 years).
    fn default() -> Self {
        Self {
            male: 360,
            female: 300,
        }
    }
}

impl RegionPolicy {
    /// Parses a policy from TOML and validates it. Omitted keys take the national defaults;
    /// unknown keys are an error.
    pub fn parse_toml(text: &str) -> Result<Self, PolicyError> {
        let policy: Self = toml::from_str(text).map_err(|e| PolicyError::Toml {
            message: e.to_string(),
        })?;
        policy.validate()?;
        Ok(policy)
    }

    /// Checks the policy against the national caps; the first broken rule is reported.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.back_pay_window_months > NATIONAL_BACK_PAY_WINDOW_MONTHS {
            return Err(PolicyError::BackPayWindowAboveCap {
                months: self.back_pay_window_months,
                cap: NATIONAL_BACK_PAY_WINDOW_MONTHS,
            });
        }
        if self.waiting_period_months > NATIONAL_MAX_WAITING_PERIOD_MONTHS {
            return Err(PolicyError::WaitingPeriodAboveCap {
                months: self.waiting_period_months,
                cap: NATIONAL_MAX_WAITING_PERIOD_MONTHS,
            });
        }
        if let Some(months) = self.resident_to_employee_months_per_year
            && !(1..=12).contains(&months)
        {
            return Err(PolicyError::ConversionOutOfRange { months });
        }
        self.minimum_contribution_months.validate()?;
        self.review_working_days.validate()?;
        self.remittance.validate()
    }

    /// The back-pay window, clamped to the national cap so that an unvalidated policy cannot
    /// grant more than the law allows.
    pub fn effective_back_pay_window_months(&self) -> u8 {
        self.back_pay_window_months
            .min(NATIONAL_BACK_PAY_WINDOW_MONTHS)
    }

    /// The waiting period, clamped to the national cap for the same reason.
    pub fn effective_waiting_period_months(&self) -> u8 {
        self.waiting_period_months
            .min(NATIONAL_MAX_WAITING_PERIOD_MONTHS)
    }
}

impl Remittance {
    /// Whether the balance travels apart from the form, so the form says a remittance follows.
    pub fn follows_form(self) -> bool {
        matches!(self, Self::AfterWorkingDays(_))
    }

    fn validate(self) -> Result<(), PolicyError> {
        match self {
            Self::AfterWorkingDays(days) if days > MAX_REMITTANCE_WORKING_DAYS => {
                Err(PolicyError::RemittanceDelayOutOfRange {
                    days,
                    max: MAX_REMITTANCE_WORKING_DAYS,
                })
            }
            Self::WithForm | Self::AfterWorkingDays(_) => Ok(()),
        }
    }
}

impl ReviewTime {
    fn validate(&self) -> Result<(), PolicyError> {
        for (field, days) in [("online", self.online), ("counter", self.counter)] {
            if days > MAX_REVIEW_WORKING_DAYS {
                return Err(PolicyError::ReviewTimeOutOfRange {
                    field,
                    days,
                    max: MAX_REVIEW_WORKING_DAYS,
                });
            }
        }
        Ok(())
    }
}

impl MinimumContribution {
    fn validate(&self) -> Result<(), PolicyError> {
        for (field, months) in [("male", self.male), ("female", self.female)] {
            if !(1..=MAX_MINIMUM_CONTRIBUTION_MONTHS).contains(&months) {
                return Err(PolicyError::MinimumContributionOutOfRange {
                    field,
                    months,
                    max: MAX_MINIMUM_CONTRIBUTION_MONTHS,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_policy_takes_the_national_defaults() {
        let policy = RegionPolicy::parse_toml("").unwrap();
        assert_eq!(policy, RegionPolicy::default());
        assert_eq!(policy.back_pay_window_months, 3);
        assert_eq!(policy.waiting_period_months, 6);
        assert_eq!(policy.resident_to_employee_months_per_year, None);
        assert_eq!(
            policy.employee_to_resident_balance,
            EmployeeToResidentBalance::PayToBank
        );
        assert_eq!(
            policy.minimum_contribution_months,
            MinimumContribution {
                male: 360,
                female: 300
            }
        );
        assert!(policy.validate().is_ok());
    }

    #[test]
    fn a_full_policy_parses_every_field() {
        let text = r#"
shared_provincial_account = true
pays_out_instead_of_transfer = true
retiree_payout_on_request = true
back_pay_window_months = 2
waiting_period_months = 3
resident_to_employee_months_per_year = 3
employee_to_resident_balance = "keep_usable"
instant_mode = true
minimum_contribution_months = { male = 180, female = 180 }
"#;
        let policy = RegionPolicy::parse_toml(text).unwrap();
        assert!(policy.shared_provincial_account);
        assert!(policy.pays_out_instead_of_transfer);
        assert!(policy.retiree_payout_on_request);
        assert_eq!(policy.back_pay_window_months, 2);
        assert_eq!(policy.waiting_period_months, 3);
        assert_eq!(policy.resident_to_employee_months_per_year, Some(3));
        assert_eq!(
            policy.employee_to_resident_balance,
            EmployeeToResidentBalance::KeepUsable
        );
        assert!(policy.instant_mode);
        assert_eq!(
            policy.minimum_contribution_months,
            MinimumContribution {
                male: 180,
                female: 180
            }
        );
    }

    #[test]
    fn remittance_is_with_the_form_unless_a_region_delays_it_within_a_bound() {
        assert_eq!(RegionPolicy::default().remittance, Remittance::WithForm);
        assert!(!Remittance::WithForm.follows_form());
        let with_form = RegionPolicy::parse_toml("remittance = \"with_form\"").unwrap();
        assert_eq!(with_form.remittance, Remittance::WithForm);
        let delayed = RegionPolicy::parse_toml("remittance = { after_working_days = 10 }").unwrap();
        assert_eq!(delayed.remittance, Remittance::AfterWorkingDays(10));
        assert!(delayed.remittance.follows_form());
        let shown = toml::to_string(&delayed).expect("prints");
        assert_eq!(RegionPolicy::parse_toml(&shown), Ok(delayed));
        assert_eq!(
            RegionPolicy::parse_toml("remittance = { after_working_days = 251 }"),
            Err(PolicyError::RemittanceDelayOutOfRange {
                days: 251,
                max: MAX_REMITTANCE_WORKING_DAYS
            })
        );
        assert!(RegionPolicy::parse_toml("remittance = \"by_mail\"").is_err());
    }

    #[test]
    fn review_time_varies_by_region_and_channel_and_is_bounded() {
        let policy =
            RegionPolicy::parse_toml("review_working_days = { online = 3, counter = 15 }").unwrap();
        assert_eq!(
            policy.review_working_days,
            ReviewTime {
                online: 3,
                counter: 15
            }
        );
        let only_counter = RegionPolicy::parse_toml("review_working_days = { counter = 30 }")
            .unwrap()
            .review_working_days;
        assert_eq!((only_counter.online, only_counter.counter), (0, 30));
        assert_eq!(
            RegionPolicy::default().review_working_days,
            ReviewTime::default(),
            "decided at once unless a region says otherwise"
        );
        assert_eq!(
            RegionPolicy::parse_toml("review_working_days = { online = 251 }"),
            Err(PolicyError::ReviewTimeOutOfRange {
                field: "online",
                days: 251,
                max: MAX_REVIEW_WORKING_DAYS
            })
        );
        assert!(matches!(
            RegionPolicy::parse_toml("review_working_days = { post = 3 }"),
            Err(PolicyError::Toml { .. })
        ));
    }

    #[test]
    fn minimum_contribution_years_vary_by_region_and_default_per_sex() {
        let shanghai =
            RegionPolicy::parse_toml("minimum_contribution_months = { male = 180, female = 180 }")
                .unwrap();
        assert_eq!(shanghai.minimum_contribution_months.male, 180);
        assert_eq!(shanghai.minimum_contribution_months.female, 180);
        let only_women =
            RegionPolicy::parse_toml("[minimum_contribution_months]\nfemale = 240").unwrap();
        assert_eq!(
            only_women.minimum_contribution_months,
            MinimumContribution {
                male: 360,
                female: 240
            }
        );
    }

    #[test]
    fn a_policy_survives_a_toml_round_trip() {
        let policy = RegionPolicy {
            resident_to_employee_months_per_year: Some(3),
            instant_mode: true,
            ..RegionPolicy::default()
        };
        let text = toml::to_string(&policy).unwrap();
        assert_eq!(RegionPolicy::parse_toml(&text), Ok(policy));
    }

    #[test]
    fn an_unknown_key_is_refused_rather_than_ignored() {
        let error = RegionPolicy::parse_toml("waiting_period_month = 3").unwrap_err();
        assert!(
            matches!(&error, PolicyError::Toml { message } if message.contains("waiting_period_month"))
        );
        assert!(RegionPolicy::parse_toml("[minimum_contribution_months]\nmen = 1").is_err());
    }

    #[test]
    fn a_back_pay_window_above_three_months_is_refused_naming_the_cap() {
        let error = RegionPolicy::parse_toml("back_pay_window_months = 4").unwrap_err();
        assert_eq!(
            error,
            PolicyError::BackPayWindowAboveCap { months: 4, cap: 3 }
        );
        let message = error.to_string();
        assert!(message.contains("back_pay_window_months") && message.contains("cap of 3"));
    }

    #[test]
    fn a_waiting_period_above_six_months_is_refused_naming_the_cap() {
        let error = RegionPolicy::parse_toml("waiting_period_months = 7").unwrap_err();
        assert_eq!(
            error,
            PolicyError::WaitingPeriodAboveCap { months: 7, cap: 6 }
        );
        let message = error.to_string();
        assert!(message.contains("waiting_period_months") && message.contains("cap of 6"));
        assert!(RegionPolicy::parse_toml("waiting_period_months = 0").is_ok());
    }

    #[test]
    fn a_resident_year_converts_to_one_to_twelve_employee_months() {
        for months in [0u8, 13] {
            let text = format!("resident_to_employee_months_per_year = {months}");
            let error = RegionPolicy::parse_toml(&text).unwrap_err();
            assert_eq!(error, PolicyError::ConversionOutOfRange { months });
            assert!(
                error
                    .to_string()
                    .contains("resident_to_employee_months_per_year")
            );
        }
        assert!(RegionPolicy::parse_toml("resident_to_employee_months_per_year = 12").is_ok());
    }

    #[test]
    fn a_minimum_contribution_of_zero_or_in_days_is_refused() {
        let error =
            RegionPolicy::parse_toml("minimum_contribution_months = { male = 0 }").unwrap_err();
        assert_eq!(
            error,
            PolicyError::MinimumContributionOutOfRange {
                field: "male",
                months: 0,
                max: 600
            }
        );
        assert!(
            error
                .to_string()
                .contains("minimum_contribution_months.male")
        );
        let error = RegionPolicy::parse_toml("minimum_contribution_months = { female = 9125 }")
            .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("minimum_contribution_months.female")
        );
    }

    #[test]
    fn a_value_too_large_for_its_field_is_a_toml_error_not_a_panic() {
        assert!(matches!(
            RegionPolicy::parse_toml("back_pay_window_months = 300"),
            Err(PolicyError::Toml { .. })
        ));
        assert!(matches!(
            RegionPolicy::parse_toml("back_pay_window_months = -1"),
            Err(PolicyError::Toml { .. })
        ));
    }

    #[test]
    fn effective_limits_never_exceed_the_national_caps() {
        let lax = RegionPolicy {
            back_pay_window_months: 200,
            waiting_period_months: 200,
            ..RegionPolicy::default()
        };
        assert_eq!(lax.effective_back_pay_window_months(), 3);
        assert_eq!(lax.effective_waiting_period_months(), 6);
    }
}
