//! The money check of a black-box test: read both bureaus' ledger totals and check that no
//! cent was created or lost.
//!
//! The identities come from `LedgerTotals` in `admin.proto`. With `D` debited to transit, `T`
//! in transit, `S` settled, `R` returned, `P` paid to bank and `C` credited, each summed over
//! both bureaus:
//!
//! - **at each bureau, at every instant:** `D = T + S + R + P` (every debit is in one place);
//! - **conservation, once no transfer is open:** `D = C + T + P + R`, which with the identity
//!   above is the same as `C = S` (everything credited was settled, and the other way round);
//! - **while transfers are open:** a credit answered by the transfer-in bureau may not have
//!   reached the transfer-out bureau yet, so `C` can exceed `S` for a moment and the equality
//!   cannot be asked for. What must still hold is that nothing was credited that did not leave
//!   an account: `C ≤ S + T`. The transfer-in bureau is read first so that this holds even though
//!   the two snapshots are taken at slightly different instants (a credit counted at the first
//!   read is settled or in transit at the second).
//!
//! The check is [`check`], a pure function of the two snapshots; [`fetch_and_check`] reads them.
//! Amounts are parsed with [`Money::parse`] and compared in cents, exactly.
//!
//! A bureau whose peer is not yibao's (a [`crate::Counterpart`]) is checked alone,
//! [`check_one`]: only its own identity can be, and that no transfer is open there; what the
//! peer credited is the peer's to check.

use std::fmt;

use serde::Serialize;
use yibao_domain::money::Money;
use yibao_proto::admin::v1::{GetLedgerTotalsRequest, LedgerTotals};

use crate::HarnessError;
use crate::admin::AdminClient;

/// Reads one amount of a bureau's totals.
type Field = fn(&BureauTotals) -> Money;

/// One bureau's ledger totals, parsed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BureauTotals {
    /// Current: the sum of personal-account balances held at the bureau.
    pub accounts_balance_total: Money,
    /// Cumulative: money moved from personal accounts into in-transit.
    pub debited_to_transit_total: Money,
    /// Current: money debited and not yet settled, returned or paid out.
    pub in_transit_total: Money,
    /// Cumulative: in-transit money settled because the transfer-in bureau credited it.
    pub settled_out_total: Money,
    /// Cumulative: in-transit money returned to the account it came from.
    pub returned_total: Money,
    /// Cumulative: money credited to personal accounts from information forms.
    pub credited_total: Money,
    /// Cumulative: in-transit money paid to people's bank accounts.
    pub paid_to_bank_total: Money,
    /// Current, transfer-in side: remitted money that did not match its form, held for an
    /// operator (the fund leg); zero from bureaus that predate the field.
    pub held_in_suspense_total: Money,
    /// Transfers not yet in a terminal state.
    pub open_transfers: u64,
    /// Open transfers past one of their deadlines.
    pub overdue_transfers: u64,
    /// Transfers waiting for an operator (NEEDS_OPERATOR); their money is in transit.
    pub needs_operator_transfers: u64,
    /// Messages parked in the outbox, sent again only when an operator retries them.
    pub parked_messages: u64,
    /// The bureau's clock time of the snapshot (RFC 3339), when it said.
    pub as_of: Option<String>,
}

impl BureauTotals {
    /// Parses the totals `service` answered; an amount that is not a valid decimal string is
    /// an error naming the field.
    pub fn parse(service: &'static str, totals: &LedgerTotals) -> Result<Self, HarnessError> {
        let amount = |field: &'static str, value: &str| {
            Money::parse(value).map_err(|error| HarnessError::MalformedAnswer {
                service,
                field,
                value: value.to_owned(),
                reason: error.to_string(),
            })
        };
        Ok(BureauTotals {
            accounts_balance_total: amount(
                "accounts_balance_total",
                &totals.accounts_balance_total,
            )?,
            debited_to_transit_total: amount(
                "debited_to_transit_total",
                &totals.debited_to_transit_total,
            )?,
            in_transit_total: amount("in_transit_total", &totals.in_transit_total)?,
            settled_out_total: amount("settled_out_total", &totals.settled_out_total)?,
            returned_total: amount("returned_total", &totals.returned_total)?,
            credited_total: amount("credited_total", &totals.credited_total)?,
            paid_to_bank_total: amount("paid_to_bank_total", &totals.paid_to_bank_total)?,
            held_in_suspense_total: match totals.held_in_suspense_total.as_str() {
                "" => Money::ZERO,
                text => amount("held_in_suspense_total", text)?,
            },
            open_transfers: totals.open_transfers,
            overdue_transfers: totals.overdue_transfers,
            needs_operator_transfers: totals.needs_operator_transfers,
            parked_messages: totals.parked_messages,
            as_of: totals.as_of.map(|at| at.to_string()),
        })
    }
}

/// The outcome of a ledger check: the figures, and every identity that did not hold.
#[derive(Clone, Debug, Serialize)]
pub struct LedgerReport {
    /// The transfer-out bureau's totals (read second).
    pub transfer_out: BureauTotals,
    /// The transfer-in bureau's totals (read first).
    pub transfer_in: BureauTotals,
    /// True when neither bureau had an open transfer, so the exact conservation equality was
    /// checked; false when only the bounds that hold mid-flight were.
    pub quiescent: bool,
    /// True when every identity checked held.
    pub holds: bool,
    /// One sentence, with the figures, per identity that did not hold.
    pub violations: Vec<String>,
}

/// Checks the identities on two snapshots: `transfer_in` read first, then `transfer_out`.
pub fn check(transfer_out: BureauTotals, transfer_in: BureauTotals) -> LedgerReport {
    let (quiescent, violations) = violations_of(
        &[
            ("transfer-out", &transfer_out),
            ("transfer-in", &transfer_in),
        ],
        MidFlight::CreditedWithinSettledAndInTransit,
    );
    LedgerReport {
        transfer_out,
        transfer_in,
        quiescent,
        holds: violations.is_empty(),
        violations,
    }
}

/// What is checked across bureaus while transfers are open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MidFlight {
    /// `C ≤ S + T`: holds for a pair read transfer-in first (module docs).
    CreditedWithinSettledAndInTransit,
    /// Nothing across bureaus: when every bureau plays both sides no order of reading makes
    /// a snapshot of several consistent, so only each bureau's own identity is checked.
    EachBureauAlone,
}

/// Whether no transfer is open at any of `bureaus`, and every identity that did not hold.
fn violations_of(bureaus: &[(&str, &BureauTotals)], mid_flight: MidFlight) -> (bool, Vec<String>) {
    let mut violations: Vec<String> = bureaus
        .iter()
        .filter_map(|(service, totals)| placement_violation(service, totals))
        .collect();
    let sum = |field: Field| -> u128 {
        bureaus
            .iter()
            .map(|(_, totals)| u128::from(field(totals).cents()))
            .sum()
    };
    let debited = sum(|t| t.debited_to_transit_total);
    let credited = sum(|t| t.credited_total);
    let in_transit = sum(|t| t.in_transit_total);
    let settled = sum(|t| t.settled_out_total);
    let returned = sum(|t| t.returned_total);
    let paid = sum(|t| t.paid_to_bank_total);
    let quiescent = bureaus.iter().all(|(_, totals)| totals.open_transfers == 0);

    let held = sum(|t| t.held_in_suspense_total);
    if quiescent && held != 0 {
        violations.push(format!(
            "no transfer is open, yet {} of remitted money is held in suspense: every held \
             remittance belongs to a transfer waiting for an operator",
            yuan(held),
        ));
    }
    if quiescent {
        let accounted = credited + in_transit + paid + returned;
        if debited != accounted {
            violations.push(format!(
                "conservation: debited_to_transit {} != credited {} + in_transit {} + \
                 paid_to_bank {} + returned {} (difference {})",
                yuan(debited),
                yuan(credited),
                yuan(in_transit),
                yuan(paid),
                yuan(returned),
                signed_yuan(debited, accounted),
            ));
        }
        if credited != settled {
            violations.push(format!(
                "no transfer is open, yet credited {} != settled_out {} (difference {})",
                yuan(credited),
                yuan(settled),
                signed_yuan(credited, settled),
            ));
        }
    } else if mid_flight == MidFlight::CreditedWithinSettledAndInTransit
        && credited > settled + in_transit
    {
        violations.push(format!(
            "credited {} exceeds settled_out {} + in_transit {}: money was credited that \
             never left an account (excess {})",
            yuan(credited),
            yuan(settled),
            yuan(in_transit),
            signed_yuan(credited, settled + in_transit),
        ));
    }
    (quiescent, violations)
}

/// The check of several bureaus that each play both sides (a [`crate::Topology`]): each one's
/// own identity always, and conservation across all of them once no transfer is open anywhere.
#[derive(Clone, Debug, Serialize)]
pub struct TopologyLedgerReport {
    /// Each bureau's name and totals, in the order read.
    pub bureaus: Vec<(String, BureauTotals)>,
    /// True when no bureau had an open transfer, so the exact equalities were checked.
    pub quiescent: bool,
    /// True when every identity checked held.
    pub holds: bool,
    /// One sentence, with the figures, per identity that did not hold.
    pub violations: Vec<String>,
}

/// Checks the identities over every bureau of a topology (see [`TopologyLedgerReport`]).
pub fn check_all(bureaus: Vec<(String, BureauTotals)>) -> TopologyLedgerReport {
    let named: Vec<(&str, &BureauTotals)> = bureaus
        .iter()
        .map(|(name, totals)| (name.as_str(), totals))
        .collect();
    let (quiescent, violations) = violations_of(&named, MidFlight::EachBureauAlone);
    TopologyLedgerReport {
        bureaus,
        quiescent,
        holds: violations.is_empty(),
        violations,
    }
}

impl fmt::Display for TopologyLedgerReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:<26}", "")?;
        for (name, _) in &self.bureaus {
            write!(f, "{name:>20}")?;
        }
        writeln!(f)?;
        for (label, field) in AMOUNTS {
            write!(f, "{label:<26}")?;
            for (_, totals) in &self.bureaus {
                write!(f, "{:>20}", field(totals).to_string())?;
            }
            writeln!(f)?;
        }
        write!(f, "{:<26}", "open_transfers")?;
        for (_, totals) in &self.bureaus {
            write!(f, "{:>20}", totals.open_transfers)?;
        }
        writeln!(f)?;
        let scope = if self.quiescent {
            "exact: no transfer open"
        } else {
            "each bureau alone: transfers open"
        };
        verdict(f, self.holds, scope, &self.violations)
    }
}

/// The check of one bureau alone, whose peer's ledger is not read (see [`check_one`]).
#[derive(Clone, Debug, Serialize)]
pub struct BureauLedgerReport {
    /// `transfer-out` or `transfer-in`.
    pub service: &'static str,
    /// Its totals.
    pub totals: BureauTotals,
    /// True when no transfer was open there.
    pub quiescent: bool,
    /// True when its own identity held.
    pub holds: bool,
    /// One sentence, with the figures, per identity that did not hold.
    pub violations: Vec<String>,
}

/// Checks one bureau's own identity (`D = T + S + R + P` at that bureau); nothing across
/// bureaus, since the peer is not read.
pub fn check_one(service: &'static str, totals: BureauTotals) -> BureauLedgerReport {
    let violations: Vec<String> = placement_violation(service, &totals).into_iter().collect();
    BureauLedgerReport {
        service,
        quiescent: totals.open_transfers == 0,
        holds: violations.is_empty(),
        violations,
        totals,
    }
}

/// Reads one bureau's totals and checks them alone.
pub async fn fetch_and_check_one(
    service: &'static str,
    admin: &mut AdminClient,
) -> Result<BureauLedgerReport, HarnessError> {
    Ok(check_one(service, fetch(service, admin).await?))
}

/// The one-bureau identity: everything debited to transit is in transit, settled out, returned
/// or paid to the bank.
fn placement_violation(service: &str, totals: &BureauTotals) -> Option<String> {
    let placed = cents([
        totals.in_transit_total,
        totals.settled_out_total,
        totals.returned_total,
        totals.paid_to_bank_total,
    ]);
    let debited = cents([totals.debited_to_transit_total]);
    if debited != placed {
        return Some(format!(
            "{service}: debited_to_transit {} != in_transit {} + settled_out {} + \
             returned {} + paid_to_bank {} (difference {})",
            totals.debited_to_transit_total,
            totals.in_transit_total,
            totals.settled_out_total,
            totals.returned_total,
            totals.paid_to_bank_total,
            signed_yuan(debited, placed),
        ));
    }
    None
}

/// Reads the totals of both bureaus (the transfer-in bureau first, see the module docs) and
/// checks them.
pub async fn fetch_and_check(
    admin_out: &mut AdminClient,
    admin_in: &mut AdminClient,
) -> Result<LedgerReport, HarnessError> {
    let transfer_in = fetch("transfer-in", admin_in).await?;
    let transfer_out = fetch("transfer-out", admin_out).await?;
    Ok(check(transfer_out, transfer_in))
}

/// Reads one bureau's totals.
pub async fn fetch(
    service: &'static str,
    admin: &mut AdminClient,
) -> Result<BureauTotals, HarnessError> {
    let answer = admin
        .get_ledger_totals(GetLedgerTotalsRequest {})
        .await
        .map_err(HarnessError::rpc(service, "GetLedgerTotals"))?
        .into_inner();
    let totals = answer.totals.ok_or_else(|| HarnessError::MalformedAnswer {
        service,
        field: "totals",
        value: String::new(),
        reason: "missing".to_owned(),
    })?;
    BureauTotals::parse(service, &totals)
}

impl fmt::Display for LedgerReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let out = &self.transfer_out;
        let inn = &self.transfer_in;
        writeln!(f, "{:<26}{:>20}{:>20}", "", "transfer-out", "transfer-in")?;
        for (name, field) in AMOUNTS {
            writeln!(
                f,
                "{name:<26}{:>20}{:>20}",
                field(out).to_string(),
                field(inn).to_string()
            )?;
        }
        writeln!(
            f,
            "{:<26}{:>20}{:>20}",
            "open_transfers", out.open_transfers, inn.open_transfers
        )?;
        writeln!(
            f,
            "{:<26}{:>20}{:>20}",
            "overdue_transfers", out.overdue_transfers, inn.overdue_transfers
        )?;
        writeln!(
            f,
            "{:<26}{:>20}{:>20}",
            "needs_operator_transfers", out.needs_operator_transfers, inn.needs_operator_transfers
        )?;
        writeln!(
            f,
            "{:<26}{:>20}{:>20}",
            "parked_messages", out.parked_messages, inn.parked_messages
        )?;
        let scope = if self.quiescent {
            "exact: no transfer open"
        } else {
            "bounds only: transfers open"
        };
        verdict(f, self.holds, scope, &self.violations)
    }
}

impl fmt::Display for BureauLedgerReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let totals = &self.totals;
        writeln!(f, "{:<26}{:>20}", "", self.service)?;
        for (name, field) in AMOUNTS {
            writeln!(f, "{name:<26}{:>20}", field(totals).to_string())?;
        }
        for (name, count) in [
            ("open_transfers", totals.open_transfers),
            ("overdue_transfers", totals.overdue_transfers),
            ("needs_operator_transfers", totals.needs_operator_transfers),
            ("parked_messages", totals.parked_messages),
        ] {
            writeln!(f, "{name:<26}{count:>20}")?;
        }
        let scope = if self.quiescent {
            "this bureau alone, no transfer open; the peer's ledger was not checked"
        } else {
            "this bureau alone, transfers open; the peer's ledger was not checked"
        };
        verdict(f, self.holds, scope, &self.violations)
    }
}

/// The amounts a report shows, in order.
const AMOUNTS: [(&str, Field); 8] = [
    ("accounts_balance_total", |t| t.accounts_balance_total),
    ("debited_to_transit_total", |t| t.debited_to_transit_total),
    ("in_transit_total", |t| t.in_transit_total),
    ("settled_out_total", |t| t.settled_out_total),
    ("returned_total", |t| t.returned_total),
    ("paid_to_bank_total", |t| t.paid_to_bank_total),
    ("credited_total", |t| t.credited_total),
    ("held_in_suspense_total", |t| t.held_in_suspense_total),
];

/// A report's last line(s): whether it holds, within what, and each violation.
fn verdict(
    f: &mut fmt::Formatter<'_>,
    holds: bool,
    scope: &str,
    violations: &[String],
) -> fmt::Result {
    if holds {
        return write!(f, "ledger holds ({scope})");
    }
    writeln!(f, "ledger VIOLATED ({scope}):")?;
    for (number, violation) in violations.iter().enumerate() {
        if number > 0 {
            writeln!(f)?;
        }
        write!(f, "  - {violation}")?;
    }
    Ok(())
}

/// The sum of amounts in cents, wide enough that no sum of two bureaus' totals overflows.
fn cents<const N: usize>(amounts: [Money; N]) -> u128 {
    amounts
        .iter()
        .map(|amount| u128::from(amount.cents()))
        .sum()
}

/// Cents as yuan with two places, `"1234.50"`.
fn yuan(cents: u128) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// `left - right` as yuan with a sign.
fn signed_yuan(left: u128, right: u128) -> String {
    if left >= right {
        format!("+{}", yuan(left - right))
    } else {
        format!("-{}", yuan(right - left))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn money(text: &str) -> Money {
        Money::parse(text).expect("valid amount")
    }

    fn idle() -> BureauTotals {
        BureauTotals {
            accounts_balance_total: Money::ZERO,
            debited_to_transit_total: Money::ZERO,
            in_transit_total: Money::ZERO,
            settled_out_total: Money::ZERO,
            returned_total: Money::ZERO,
            credited_total: Money::ZERO,
            paid_to_bank_total: Money::ZERO,
            held_in_suspense_total: Money::ZERO,
            open_transfers: 0,
            overdue_transfers: 0,
            needs_operator_transfers: 0,
            parked_messages: 0,
            as_of: None,
        }
    }

    /// Out debited 100.00 + 20.00 + 5.00: 100.00 settled, 20.00 paid out, 5.00 returned.
    fn settled_out() -> BureauTotals {
        BureauTotals {
            debited_to_transit_total: money("125.00"),
            settled_out_total: money("100.00"),
            paid_to_bank_total: money("20.00"),
            returned_total: money("5.00"),
            ..idle()
        }
    }

    fn credited_in(amount: &str) -> BureauTotals {
        BureauTotals {
            credited_total: money(amount),
            ..idle()
        }
    }

    #[test]
    fn a_settled_ledger_holds_exactly() {
        let report = check(settled_out(), credited_in("100.00"));
        assert!(report.quiescent);
        assert!(report.holds, "{report}");
    }

    #[test]
    fn a_cent_too_many_credited_is_a_violation() {
        let report = check(settled_out(), credited_in("100.01"));
        assert!(!report.holds);
        assert!(
            report.violations.iter().any(|v| v.contains("-0.01")),
            "{report}"
        );
    }

    #[test]
    fn money_held_in_suspense_with_nothing_open_is_a_violation() {
        let held = BureauTotals {
            held_in_suspense_total: money("12.34"),
            ..credited_in("100.00")
        };
        let report = check(settled_out(), held);
        assert!(report.quiescent);
        assert!(!report.holds);
        assert!(
            report
                .violations
                .iter()
                .any(|v| v.contains("12.34") && v.contains("suspense")),
            "{report}"
        );
    }

    #[test]
    fn a_cent_lost_is_a_violation() {
        let report = check(settled_out(), credited_in("99.99"));
        assert!(!report.holds);
        assert!(report.violations[0].starts_with("conservation"), "{report}");
    }

    #[test]
    fn a_bureau_whose_own_identity_breaks_is_named() {
        let broken = BureauTotals {
            returned_total: money("6.00"),
            ..settled_out()
        };
        let report = check(broken, credited_in("100.00"));
        assert!(!report.holds);
        assert!(
            report.violations[0].starts_with("transfer-out:"),
            "{report}"
        );
    }

    #[test]
    fn a_credit_not_yet_settled_is_allowed_while_transfers_are_open() {
        let in_flight = BureauTotals {
            debited_to_transit_total: money("50.00"),
            in_transit_total: money("50.00"),
            open_transfers: 1,
            ..idle()
        };
        let report = check(in_flight, credited_in("50.00"));
        assert!(!report.quiescent);
        assert!(report.holds, "{report}");
    }

    #[test]
    fn a_credit_that_never_left_an_account_is_a_violation_even_mid_flight() {
        let in_flight = BureauTotals {
            debited_to_transit_total: money("50.00"),
            in_transit_total: money("50.00"),
            open_transfers: 1,
            ..idle()
        };
        let report = check(in_flight, credited_in("50.01"));
        assert!(!report.holds, "{report}");
    }

    #[test]
    fn one_bureau_alone_is_checked_for_its_own_identity_only() {
        let report = check_one("transfer-out", settled_out());
        assert!(report.holds && report.quiescent, "{report}");
        assert!(report.to_string().contains("peer's ledger was not checked"));
        let broken = BureauTotals {
            returned_total: money("6.00"),
            open_transfers: 1,
            ..settled_out()
        };
        let report = check_one("transfer-out", broken);
        assert!(!report.holds && !report.quiescent);
        assert!(
            report.violations[0].starts_with("transfer-out:"),
            "{report}"
        );
    }

    #[test]
    fn malformed_amounts_name_the_field() {
        let totals = LedgerTotals {
            accounts_balance_total: "0.00".to_owned(),
            debited_to_transit_total: "1,000.00".to_owned(),
            ..LedgerTotals::default()
        };
        let error = BureauTotals::parse("transfer-out", &totals).expect_err("malformed");
        assert!(
            error.to_string().contains("debited_to_transit_total"),
            "{error}"
        );
    }
}
