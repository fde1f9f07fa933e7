//! 参保凭证, the insurance certificate (DOMAIN.md, "Who and what" and "Codes seen in real
//! systems"): issued by the transfer-out bureau once the person stopped contributing there, it
//! states the months insured and the months benefits cover, and carries a verification code that
//! anyone can check online. This module holds who may have one ([`may_issue_certificate`]), the
//! months it states, and the shape of its code; the driver adds the balance, the print time and
//! the code's random bits.
//!
//! The rule, in order (the first that fails refuses):
//! 1. the bureau knows the person, named as its record names them — otherwise
//!    [`CertificateRefusal::UnknownPerson`], the same answer for an unknown ID number and for a
//!    wrong name, so that the refusal does not help anyone guess a name;
//! 2. the person has stopped contributing here (停保, or 终止参保 after a transfer-out): a person
//!    still contributing is [`CertificateRefusal::StillContributing`];
//! 3. the record holds at least one contribution period, the months the certificate states —
//!    otherwise [`CertificateRefusal::NoContributionRecord`].
//!
//! Verification codes are [`VERIFICATION_CODE_LENGTH`] characters of Crockford's base-32
//! alphabet (no I, L, O or U) carrying 100 random bits, so they cannot be enumerated. Codes of
//! earlier releases (14 digits: the issuing region and an 8-digit sequence) still verify.

use std::fmt;

use crate::id::mask_name;
use crate::month::{ContributionPeriod, YearMonth};
use crate::review::check_identity;
use crate::scheme::EnrolmentState;

/// The number of characters in a verification code: 20 base-32 characters, 100 random bits.
pub const VERIFICATION_CODE_LENGTH: usize = 20;

/// The number of digits in a verification code of an earlier release (6 for the issuing region,
/// 8 for a sequence). Such codes are never issued again, and still verify.
pub const LEGACY_VERIFICATION_CODE_LENGTH: usize = 14;

/// Crockford's base-32 alphabet: digits and capitals without I, L, O and U, so that a code read
/// aloud or typed from paper is not mistaken.
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// The bits of one base-32 character.
const BITS_PER_CHARACTER: usize = 5;

/// What the bureau's record says about the person a certificate is asked for. Its `Debug`
/// output masks the name.
#[derive(Clone, Copy)]
pub struct CertificateRecord<'a> {
    /// The name on record.
    pub name_on_record: &'a str,
    /// The person's enrolment state here.
    pub enrolment: EnrolmentState,
    /// The person's contribution periods here.
    pub periods: &'a [ContributionPeriod],
}

impl fmt::Debug for CertificateRecord<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateRecord")
            .field("name_on_record", &mask_name(self.name_on_record))
            .field("enrolment", &self.enrolment)
            .field("periods", &self.periods)
            .finish()
    }
}

/// Why a certificate is refused. Free of personal data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CertificateRefusal {
    /// Unknown here, or named otherwise than the record names them (not told apart).
    #[error("the person is not known to this bureau")]
    UnknownPerson,
    /// Still contributing here (正常参保): a certificate is issued once the person stopped.
    #[error(
        "the person has not stopped contributing here: a certificate is issued once \
         contributions stopped (中止参保)"
    )]
    StillContributing,
    /// No contribution period on record here: there are no months to certify.
    #[error("the person has no contribution period on record here: nothing to certify")]
    NoContributionRecord,
}

impl CertificateRefusal {
    /// The stable code of the refusal, as the bureau API's `yibao-refusal-reason` trailer
    /// carries it: the transfer refusal's code where one means the same.
    pub fn code(self) -> &'static str {
        match self {
            Self::UnknownPerson => "UNKNOWN_PERSON",
            Self::StillContributing => "NOT_STOPPED_AT_TRANSFER_OUT",
            Self::NoContributionRecord => "NO_CONTRIBUTION_RECORD",
        }
    }
}

/// The certificate rule (module documentation): whether the person `record` describes (`None`:
/// unknown here) may have a certificate when asking as `given_name`, and if so the months it
/// states.
pub fn may_issue_certificate(
    record: Option<&CertificateRecord<'_>>,
    given_name: &str,
) -> Result<CertificateMonths, CertificateRefusal> {
    let record = record.ok_or(CertificateRefusal::UnknownPerson)?;
    check_identity(record.name_on_record, given_name)
        .map_err(|_| CertificateRefusal::UnknownPerson)?;
    if record.enrolment == EnrolmentState::Normal {
        return Err(CertificateRefusal::StillContributing);
    }
    certificate_months(record.periods).ok_or(CertificateRefusal::NoContributionRecord)
}

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

/// A verification code from random bits: the low 100 bits of `random`, 5 at a time, as 20
/// characters of Crockford's base-32 alphabet. The caller draws `random` from a
/// cryptographically secure generator.
pub fn verification_code(random: u128) -> String {
    (0..VERIFICATION_CODE_LENGTH)
        .map(|index| {
            let shift = index * BITS_PER_CHARACTER;
            // Masked to 5 bits, so the index is below 32.
            let digit = usize::try_from((random >> shift) & 0x1f).unwrap_or_default();
            char::from(CROCKFORD[digit])
        })
        .collect()
}

/// The verification code as stored, from text a person typed: a code of this release in
/// either case, with Crockford's readings of look-alikes (`O` as `0`, `I` and `L` as `1`); or a
/// 14-digit code of an earlier release. `None` for anything else.
pub fn normalize_verification_code(text: &str) -> Option<String> {
    if text.len() == LEGACY_VERIFICATION_CODE_LENGTH && text.bytes().all(|b| b.is_ascii_digit()) {
        return Some(text.to_owned());
    }
    if text.len() != VERIFICATION_CODE_LENGTH {
        return None;
    }
    text.bytes()
        .map(|byte| {
            let byte = match byte.to_ascii_uppercase() {
                b'O' => b'0',
                b'I' | b'L' => b'1',
                other => other,
            };
            CROCKFORD.contains(&byte).then_some(char::from(byte))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::region::RegionCode;
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

    fn record<'a>(
        enrolment: EnrolmentState,
        periods: &'a [ContributionPeriod],
    ) -> CertificateRecord<'a> {
        CertificateRecord {
            name_on_record: "张三",
            enrolment,
            periods,
        }
    }

    #[test]
    fn a_person_who_stopped_contributing_here_may_have_a_certificate() {
        let periods = [period("201507", "202312")];
        for enrolment in [EnrolmentState::Suspended, EnrolmentState::Terminated] {
            let months = may_issue_certificate(Some(&record(enrolment, &periods)), " 张三 ")
                .expect("stopped, with a record");
            assert_eq!(months, certificate_months(&periods).unwrap());
        }
    }

    #[test]
    fn a_person_still_contributing_has_no_certificate() {
        let periods = [period("201507", "202312")];
        assert_eq!(
            may_issue_certificate(Some(&record(EnrolmentState::Normal, &periods)), "张三"),
            Err(CertificateRefusal::StillContributing)
        );
    }

    #[test]
    fn an_unknown_person_and_a_wrong_name_get_the_same_refusal() {
        let periods = [period("201507", "202312")];
        let unknown = may_issue_certificate(None, "张三");
        assert_eq!(unknown, Err(CertificateRefusal::UnknownPerson));
        // The name is checked before anything else, so a wrong name learns nothing of the
        // record: not even that the person still contributes.
        for enrolment in [EnrolmentState::Suspended, EnrolmentState::Normal] {
            let wrong = may_issue_certificate(Some(&record(enrolment, &periods)), "李四");
            assert_eq!(wrong, unknown);
        }
        let wrong_without_periods =
            may_issue_certificate(Some(&record(EnrolmentState::Terminated, &[])), "");
        assert_eq!(wrong_without_periods, unknown);
    }

    #[test]
    fn a_person_without_a_contribution_record_has_no_certificate() {
        for enrolment in [EnrolmentState::Suspended, EnrolmentState::Terminated] {
            assert_eq!(
                may_issue_certificate(Some(&record(enrolment, &[])), "张三"),
                Err(CertificateRefusal::NoContributionRecord)
            );
        }
    }

    #[test]
    fn a_certificate_refusal_names_its_rule_without_personal_data() {
        assert_eq!(CertificateRefusal::UnknownPerson.code(), "UNKNOWN_PERSON");
        assert_eq!(
            CertificateRefusal::StillContributing.code(),
            "NOT_STOPPED_AT_TRANSFER_OUT"
        );
        assert_eq!(
            CertificateRefusal::NoContributionRecord.code(),
            "NO_CONTRIBUTION_RECORD"
        );
        let periods = [period("201507", "202312")];
        let debug = format!("{:?}", record(EnrolmentState::Normal, &periods));
        assert!(!debug.contains("张三") && debug.contains("张*"), "{debug}");
    }

    #[test]
    fn a_verification_code_is_twenty_base32_characters_of_the_random_bits() {
        assert_eq!(verification_code(0), "0".repeat(20));
        assert_eq!(verification_code(u128::MAX), "Z".repeat(20));
        // The first character holds the lowest 5 bits.
        assert_eq!(verification_code(31), format!("Z{}", "0".repeat(19)));
        assert_eq!(verification_code(1 << 5), format!("01{}", "0".repeat(18)));
        // Bits above the hundredth do not change the code: the code carries 100 bits.
        assert_eq!(verification_code(1 << 100), verification_code(0));
        assert_ne!(verification_code(1 << 99), verification_code(0));
        let code = verification_code(0x0123_4567_89ab_cdef_0123_4567_89ab);
        assert_eq!(code.len(), VERIFICATION_CODE_LENGTH);
        assert!(code.bytes().all(|b| CROCKFORD.contains(&b)), "{code}");
        assert_eq!(normalize_verification_code(&code), Some(code));
    }

    #[test]
    fn a_typed_code_is_read_as_crockford_reads_it() {
        let code = "0123456789ABCDEFGHJK";
        assert_eq!(
            normalize_verification_code("o123456789abcdefghjk").as_deref(),
            Some(code)
        );
        assert_eq!(
            normalize_verification_code("0i23456789ABCDEFGHJK").as_deref(),
            Some(code)
        );
        assert_eq!(
            normalize_verification_code("0L23456789ABCDEFGHJK").as_deref(),
            Some(code)
        );
        for bad in [
            "",
            "0123456789ABCDEFGHJ",
            "0123456789ABCDEFGHJKM",
            "0123456789ABCDEFGHJU",
            "0123456789ABCDEFGH-K",
            "０123456789ABCDEFGHJ",
        ] {
            assert_eq!(normalize_verification_code(bad), None, "{bad}");
        }
    }

    #[test]
    fn codes_of_earlier_releases_still_read_as_fourteen_digits() {
        assert_eq!(
            normalize_verification_code("15010000000042").as_deref(),
            Some("15010000000042")
        );
        assert_eq!(normalize_verification_code("1501000000004"), None);
        assert_eq!(normalize_verification_code("150100000000421"), None);
        assert_eq!(normalize_verification_code("1501000000004x"), None);
        assert_eq!(
            normalize_verification_code("５４０１０００００００００１"),
            None
        );
    }
}
