//! 参保凭证, the insurance certificate (DOMAIN.md, "Who and what" and "Codes seen in real
//! systems"): issued by the transfer-out bureau once the person stopped contributing there, it
//! states the months insured and the months benefits cover, and carries a verification code that
//! anyone can check online. This module computes the months and the code; the driver adds the
//! person, the balance and the print time.

use crate::month::{ContributionPeriod, YearMonth};
use crate::region::RegionCode;

/// The number of digits in a verification code: 6 for the issuing region, 8 for the sequence.
pub const VERIFICATION_CODE_LENGTH: usize = 14;

/// The largest sequence a verification code can carry (8 digits).
const MAX_SEQUENCE: u64 = 99_999_999;

/// The months a certificate states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CertificateMonths {
    /// The first month insured: the earliest period's first month.
    pub insured_from: YearMonth,
    /// The last month insured: the latest period's last month.
    pub insured_to: YearMonth,
    /// The first month benefits cover: the first month insured.
    pub benefits_from: YearMonth,
    /// The last month benefits cover: the month after the last month insured; `None` when that
    /// month is past the last month the calendar knows.
    pub benefits_to: Option<YearMonth>,
}

/// The months a certificate states, from the person's contribution periods: insured from the
/// earliest period start to the latest period end; benefits from the first month insured to the
/// month after the last. `None` without periods.
pub fn certificate_months(periods: &[ContributionPeriod]) -> Option<CertificateMonths> {
    let insured_from = periods.iter().map(ContributionPeriod::from).min()?;
    let insured_to = periods.iter().map(ContributionPeriod::to).max()?;
    Some(CertificateMonths {
        insured_from,
        insured_to,
        benefits_from: insured_from,
        benefits_to: insured_to.plus_months(1),
    })
}

/// A verification code: the issuing region's 6 digits followed by an 8-digit sequence (14
/// digits); `None` when the sequence does not fit in 8 digits.
pub fn verification_code(issuer: RegionCode, sequence: u64) -> Option<String> {
    (sequence <= MAX_SEQUENCE).then(|| format!("{issuer}{sequence:08}"))
}

/// Whether text has the shape of a verification code: 14 ASCII digits.
pub fn is_verification_code(text: &str) -> bool {
    text.len() == VERIFICATION_CODE_LENGTH && text.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheme::Scheme;

    fn month(text: &str) -> YearMonth {
        YearMonth::parse(text).unwrap()
    }

    fn period(from: &str, to: &str) -> ContributionPeriod {
        ContributionPeriod::new(
            month(from),
            month(to),
            Scheme::Employee,
            RegionCode::parse("150100").unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn a_certificate_states_the_insured_months_and_benefits_to_the_month_after() {
        let periods = [period("202103", "202312"), period("201507", "201902")];
        assert_eq!(
            certificate_months(&periods),
            Some(CertificateMonths {
                insured_from: month("201507"),
                insured_to: month("202312"),
                benefits_from: month("201507"),
                benefits_to: Some(month("202401")),
            })
        );
    }

    #[test]
    fn a_person_without_periods_has_no_certificate_months() {
        assert_eq!(certificate_months(&[]), None);
    }

    #[test]
    fn the_last_month_the_calendar_knows_has_no_month_after() {
        let months = certificate_months(&[ContributionPeriod::new(
            YearMonth::MAX,
            YearMonth::MAX,
            Scheme::Employee,
            RegionCode::parse("150100").unwrap(),
        )
        .unwrap()])
        .unwrap();
        assert_eq!(months.benefits_to, None);
    }

    #[test]
    fn a_verification_code_is_the_issuing_region_and_an_eight_digit_sequence() {
        let issuer = RegionCode::parse("150100").unwrap();
        let code = verification_code(issuer, 42).unwrap();
        assert_eq!(code, "15010000000042");
        assert!(is_verification_code(&code));
        assert_eq!(
            verification_code(issuer, 99_999_999).as_deref(),
            Some("15010099999999")
        );
        assert_eq!(verification_code(issuer, 100_000_000), None);
    }

    #[test]
    fn only_fourteen_ascii_digits_look_like_a_verification_code() {
        assert!(is_verification_code("54010000000001"));
        assert!(!is_verification_code("5401000000001"));
        assert!(!is_verification_code("540100000000011"));
        assert!(!is_verification_code("5401000000000x"));
        assert!(!is_verification_code("５４０１０００００００００１"));
        assert!(!is_verification_code(""));
    }
}
