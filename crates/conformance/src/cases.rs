//! The named cases, each with the expectation it checks. A case returns `Ok(())` (PASS), a
//! failure naming what was expected and what the target did, or a skip with its reason.

use std::future::Future;
use std::pin::Pin;

use yibao_domain::money::Money;

use crate::Role;
use crate::context::{Checked, Verdict};

/// A case of the enclosing file's `ROLE`: its name, the async function that runs it, and what
/// it expects (one definition for every file of cases).
macro_rules! case {
    ($name:literal, $run:path, $expectation:literal) => {
        Case {
            name: $name,
            role: ROLE,
            expectation: $expectation,
            run: |ctx| Box::pin($run(ctx)),
        }
    };
}

mod money_in;
mod money_out;
mod transfer_in;
mod transfer_out;

/// A case's body.
pub type CaseFn = fn(crate::context::Ctx) -> Pin<Box<dyn Future<Output = Checked> + Send>>;

/// One named case.
#[derive(Clone, Copy)]
pub struct Case {
    /// Its name, as `--only` takes it.
    pub name: &'static str,
    /// The role of the target it runs against.
    pub role: Role,
    /// What it checks, with where the rule comes from.
    pub expectation: &'static str,
    /// Its body.
    pub run: CaseFn,
}

impl std::fmt::Debug for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Case")
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// The cases against a target of `role`, in the order they run: the money leg's before the
/// ones that move the target's clock past the deadlines, the conservation check last.
#[must_use]
pub fn of(role: Role) -> Vec<Case> {
    let (mut cases, money_leg, before) = match role {
        Role::TransferIn => (
            transfer_in::cases(),
            money_in::cases(),
            "deadline-form-never-arrives",
        ),
        Role::TransferOut => (
            transfer_out::cases(),
            money_out::cases(),
            "abort-before-credit",
        ),
    };
    let at = cases
        .iter()
        .position(|c| c.name == before)
        .unwrap_or(cases.len().saturating_sub(1));
    cases.splice(at..at, money_leg);
    cases
}

/// An amount the target wrote, parsed; a failure names the field when it is not money.
fn money(field: &str, text: &str) -> Result<Money, Verdict> {
    Money::parse(text).map_err(|error| Verdict::Fail {
        expected: format!("{field} is a decimal amount with two places"),
        observed: format!("{text:?}: {error}"),
    })
}

/// A failure for a call the target did not answer.
fn unanswered(what: &str, status: &tonic::Status) -> Verdict {
    Verdict::Fail {
        expected: format!("the target answers {what} with status OK"),
        observed: crate::context::status_text(status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_case_has_a_unique_name_and_an_expectation() {
        for role in [Role::TransferIn, Role::TransferOut] {
            let cases = of(role);
            let mut names: Vec<_> = cases.iter().map(|c| c.name).collect();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), cases.len(), "{role:?}: names are unique");
            assert!(
                cases
                    .iter()
                    .all(|c| c.role == role && !c.expectation.is_empty())
            );
            assert_eq!(
                cases.last().map(|c| c.name),
                Some("conservation-to-the-cent"),
                "the money is counted last"
            );
        }
    }
}
