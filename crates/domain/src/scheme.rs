//! The two basic medical-insurance schemes and a person's enrolment state, with the codes the
//! national platform uses for them (`insutype` 310 / 390, `psn_insu_stas` 1 / 2 / 4).
//!
//! The scheme decides whether there is a personal account (个人账户) to move at all: the employee
//! scheme (职工医保) has one, the resident scheme (居民医保) has the pooled fund only.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A basic medical-insurance scheme (`insutype`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scheme {
    /// 职工基本医疗保险, `insutype` 310: personal account plus pooled fund; contribution years count
    /// toward the minimum needed for lifelong benefits at retirement.
    Employee,
    /// 城乡居民基本医疗保险, `insutype` 390: pooled fund only, paid yearly, no personal account.
    Resident,
}

/// A person's enrolment state at one region (`psn_insu_stas`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnrolmentState {
    /// 正常参保, code 1: contributing normally; the precondition at the transfer-in region.
    Normal,
    /// 暂停参保 / 停保, code 2: contributions stopped; the precondition at the transfer-out region.
    Suspended,
    /// 终止参保, code 4: the relationship has ended at this region (e.g. after a transfer-out).
    Terminated,
}

/// Why a platform code is not a known scheme or enrolment state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SchemeError {
    /// The `insutype` code is neither 310 nor 390.
    #[error("insutype must be 310 (employee) or 390 (resident), got {code}")]
    UnknownScheme {
        /// The code that was given.
        code: u16,
    },
    /// The `psn_insu_stas` code is not 1, 2 or 4.
    #[error("psn_insu_stas must be 1 (normal), 2 (suspended) or 4 (terminated), got {code}")]
    UnknownEnrolmentState {
        /// The code that was given.
        code: u8,
    },
}

impl Scheme {
    /// The platform's `insutype` code: 310 for employees, 390 for residents.
    pub fn code(self) -> u16 {
        match self {
            Scheme::Employee => 310,
            Scheme::Resident => 390,
        }
    }

    /// The scheme with the given `insutype` code.
    pub fn from_code(code: u16) -> Result<Self, SchemeError> {
        match code {
            310 => Ok(Scheme::Employee),
            390 => Ok(Scheme::Resident),
            _ => Err(SchemeError::UnknownScheme { code }),
        }
    }

    /// Whether members of this scheme have a personal account (only the employee scheme does).
    pub fn has_personal_account(self) -> bool {
        match self {
            Scheme::Employee => true,
            Scheme::Resident => false,
        }
    }

    /// The scheme's name as serialised: `employee` or `resident`.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Employee => "employee",
            Scheme::Resident => "resident",
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl EnrolmentState {
    /// The platform's `psn_insu_stas` code: 1 normal, 2 suspended, 4 terminated.
    pub fn code(self) -> u8 {
        match self {
            EnrolmentState::Normal => 1,
            EnrolmentState::Suspended => 2,
            EnrolmentState::Terminated => 4,
        }
    }

    /// The enrolment state with the given `psn_insu_stas` code.
    pub fn from_code(code: u8) -> Result<Self, SchemeError> {
        match code {
            1 => Ok(EnrolmentState::Normal),
            2 => Ok(EnrolmentState::Suspended),
            4 => Ok(EnrolmentState::Terminated),
            _ => Err(SchemeError::UnknownEnrolmentState { code }),
        }
    }

    /// The state's name as serialised: `normal`, `suspended` or `terminated`.
    pub fn name(self) -> &'static str {
        match self {
            EnrolmentState::Normal => "normal",
            EnrolmentState::Suspended => "suspended",
            EnrolmentState::Terminated => "terminated",
        }
    }
}

impl fmt::Display for EnrolmentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheme_codes_are_the_platforms_insutype_codes() {
        assert_eq!(Scheme::Employee.code(), 310);
        assert_eq!(Scheme::Resident.code(), 390);
        for scheme in [Scheme::Employee, Scheme::Resident] {
            assert_eq!(Scheme::from_code(scheme.code()), Ok(scheme));
        }
    }

    #[test]
    fn an_unknown_insutype_is_refused_naming_the_field() {
        let error = Scheme::from_code(320).unwrap_err();
        assert_eq!(error, SchemeError::UnknownScheme { code: 320 });
        assert!(error.to_string().contains("insutype"));
    }

    #[test]
    fn only_the_employee_scheme_has_a_personal_account() {
        assert!(Scheme::Employee.has_personal_account());
        assert!(!Scheme::Resident.has_personal_account());
    }

    #[test]
    fn enrolment_state_codes_are_one_two_and_four() {
        for (state, code) in [
            (EnrolmentState::Normal, 1),
            (EnrolmentState::Suspended, 2),
            (EnrolmentState::Terminated, 4),
        ] {
            assert_eq!(state.code(), code);
            assert_eq!(EnrolmentState::from_code(code), Ok(state));
        }
    }

    #[test]
    fn enrolment_state_three_is_not_a_known_code() {
        let error = EnrolmentState::from_code(3).unwrap_err();
        assert_eq!(error, SchemeError::UnknownEnrolmentState { code: 3 });
        assert!(error.to_string().contains("psn_insu_stas"));
    }

    #[test]
    fn schemes_and_states_serialise_as_snake_case_names() {
        let text = toml::to_string(&Wrapper {
            scheme: Scheme::Employee,
            state: EnrolmentState::Suspended,
        })
        .unwrap();
        assert_eq!(text, "scheme = \"employee\"\nstate = \"suspended\"\n");
        let back: Wrapper =
            toml::from_str("scheme = \"resident\"\nstate = \"terminated\"").unwrap();
        assert_eq!(back.scheme, Scheme::Resident);
        assert_eq!(back.state, EnrolmentState::Terminated);
        assert_eq!(Scheme::Resident.to_string(), "resident");
        assert_eq!(EnrolmentState::Normal.to_string(), "normal");
    }

    #[derive(Debug, Serialize, Deserialize)]
    struct Wrapper {
        scheme: Scheme,
        state: EnrolmentState,
    }
}
