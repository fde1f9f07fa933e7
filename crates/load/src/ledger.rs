//! The ledger check at the end of a run: wait (bounded) until neither bureau has an open
//! transfer, then check conservation to the cent across both:
//! debited to transit = credited + in transit + paid to bank + returned, and
//! settled out = credited (every credit was settled once nothing is in flight).
//!
//! A run that drives one bureau (`--only`) checks that bureau alone: everything it debited to
//! transit is in transit, settled, returned or paid out, and no transfer is open there. What the
//! peer credited is the peer's to check; the check says it was not checked.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;
use yibao_domain::money::Money;
use yibao_harness::AdminClient;
use yibao_proto::admin::v1::{GetLedgerTotalsRequest, LedgerTotals};

use crate::error::LoadError;
use crate::options::Only;

/// How often the totals are read while waiting for open transfers: `GetLedgerTotals` scans
/// every posting and account, so it is not polled hard.
const SETTLE_POLL: Duration = Duration::from_secs(1);

/// One bureau's totals, in cents.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Totals {
    /// Sum of personal-account balances held.
    pub accounts_balance_cents: u64,
    /// Cumulative: moved from accounts into in-transit.
    pub debited_to_transit_cents: u64,
    /// Current: in transit.
    pub in_transit_cents: u64,
    /// Cumulative: settled after the peer credited.
    pub settled_out_cents: u64,
    /// Cumulative: returned to the account it came from.
    pub returned_cents: u64,
    /// Cumulative: credited from information forms.
    pub credited_cents: u64,
    /// Cumulative: paid to bank accounts.
    pub paid_to_bank_cents: u64,
    /// Transfers not in a terminal state.
    pub open_transfers: u64,
    /// Transfers by side and state, e.g. `TRANSFER_OUT COMPLETED` (just the state when the
    /// bureau does not say the side).
    pub transfers_by_state: BTreeMap<String, u64>,
}

/// The outcome of the check.
#[derive(Clone, Debug, Serialize)]
pub struct LedgerCheck {
    /// Whether conservation holds and no transfer is open at either bureau.
    pub holds: bool,
    /// What does not hold, in words; empty when everything holds.
    pub problems: Vec<String>,
    /// How long the check waited for open transfers to finish.
    pub settle_seconds: f64,
    /// The transfer-out bureau's totals.
    pub out: Totals,
    /// The transfer-in bureau's totals.
    #[serde(rename = "in")]
    pub inn: Totals,
    /// In a run that drives one bureau: which ledger was not checked, and why (its totals
    /// above are zeros). None when both were.
    pub not_checked: Option<String>,
    /// In a run over a topology: every bureau's totals, by name (`out` and `in` above are
    /// zeros then); the identities hold over their sum.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub bureaus: BTreeMap<String, Totals>,
}

/// Reads one bureau's totals.
pub async fn totals(mut client: AdminClient, endpoint: &str) -> Result<Totals, LoadError> {
    let answer = client
        .get_ledger_totals(GetLedgerTotalsRequest {})
        .await
        .map_err(|status| LoadError::call("GetLedgerTotals", endpoint, status))?
        .into_inner()
        .totals
        .unwrap_or_default();
    parse(&answer).map_err(|field| {
        LoadError::call(
            "GetLedgerTotals",
            endpoint,
            tonic::Status::internal(format!("{field} is not an amount")),
        )
    })
}

fn parse(totals: &LedgerTotals) -> Result<Totals, &'static str> {
    let cents = |text: &str, field: &'static str| -> Result<u64, &'static str> {
        if text.is_empty() {
            return Ok(0);
        }
        Money::parse(text).map(Money::cents).map_err(|_| field)
    };
    Ok(Totals {
        accounts_balance_cents: cents(&totals.accounts_balance_total, "accounts_balance_total")?,
        debited_to_transit_cents: cents(
            &totals.debited_to_transit_total,
            "debited_to_transit_total",
        )?,
        in_transit_cents: cents(&totals.in_transit_total, "in_transit_total")?,
        settled_out_cents: cents(&totals.settled_out_total, "settled_out_total")?,
        returned_cents: cents(&totals.returned_total, "returned_total")?,
        credited_cents: cents(&totals.credited_total, "credited_total")?,
        paid_to_bank_cents: cents(&totals.paid_to_bank_total, "paid_to_bank_total")?,
        open_transfers: totals.open_transfers,
        transfers_by_state: totals
            .transfers_by_state
            .iter()
            .map(|count| {
                let state = yibao_proto::common::v1::TransferState::try_from(count.state)
                    .map(|state| yibao_harness::state_name(state).to_owned())
                    .unwrap_or_else(|_| count.state.to_string());
                // A bureau that leaves the side unspecified counts both sides together.
                let side = yibao_proto::common::v1::Side::try_from(count.side)
                    .ok()
                    .filter(|side| *side != yibao_proto::common::v1::Side::Unspecified)
                    .map(|side| side.as_str_name().trim_start_matches("SIDE_").to_owned());
                let name = match side {
                    Some(side) => format!("{side} {state}"),
                    None => state,
                };
                (name, count.count)
            })
            .fold(BTreeMap::new(), |mut by_state, (name, count)| {
                *by_state.entry(name).or_default() += count;
                by_state
            }),
    })
}

/// A bureau to check: its admin client and endpoint (for errors).
pub type Checked<'a> = (AdminClient, &'a str);

/// Waits up to `settle_timeout` for the bureaus to have no open transfer, then checks: both
/// together, or the one given alone.
pub async fn check(
    out: Option<Checked<'_>>,
    inn: Option<Checked<'_>>,
    settle_timeout: Duration,
) -> Result<LedgerCheck, LoadError> {
    let start = Instant::now();
    let deadline = start + settle_timeout;
    loop {
        let out_totals = read(out.clone()).await?;
        let in_totals = read(inn.clone()).await?;
        let open = [&out_totals, &in_totals]
            .into_iter()
            .flatten()
            .map(|totals| totals.open_transfers)
            .sum::<u64>();
        if open == 0 || Instant::now() >= deadline {
            let settled_in = start.elapsed();
            return Ok(match (out_totals, in_totals) {
                (Some(out), Some(inn)) => judge(out, inn, settled_in),
                (Some(out), None) => judge_one(Only::TransferOut, out, settled_in),
                (None, Some(inn)) => judge_one(Only::TransferIn, inn, settled_in),
                (None, None) => judge(Totals::default(), Totals::default(), settled_in),
            });
        }
        tokio::time::sleep(SETTLE_POLL).await;
    }
}

/// A bureau of a topology to check: its name, admin client and endpoint.
pub type NamedChecked = (String, AdminClient, String);

/// Waits up to `settle_timeout` for no bureau of a topology to have an open transfer, then
/// checks them all together.
pub async fn check_named(
    bureaus: &[NamedChecked],
    settle_timeout: Duration,
) -> Result<LedgerCheck, LoadError> {
    let start = Instant::now();
    let deadline = start + settle_timeout;
    loop {
        let mut read = BTreeMap::new();
        for (name, client, endpoint) in bureaus {
            read.insert(name.clone(), totals(client.clone(), endpoint).await?);
        }
        let open = read.values().map(|t| t.open_transfers).sum::<u64>();
        if open == 0 || Instant::now() >= deadline {
            return Ok(judge_named(read, start.elapsed()));
        }
        tokio::time::sleep(SETTLE_POLL).await;
    }
}

/// One bureau's totals, if it is checked.
async fn read(bureau: Option<Checked<'_>>) -> Result<Option<Totals>, LoadError> {
    match bureau {
        Some((client, endpoint)) => totals(client, endpoint).await.map(Some),
        None => Ok(None),
    }
}

/// The verdict on two bureaus' totals.
pub fn judge(out: Totals, inn: Totals, settled_in: Duration) -> LedgerCheck {
    let problems = problems_of(&[("transfer-out", &out), ("transfer-in", &inn)], settled_in);
    verdict(problems, settled_in, (out, inn), None)
}

/// The verdict on every bureau of a topology, by name: the identities over their sum, and
/// nothing open at any.
pub fn judge_named(bureaus: BTreeMap<String, Totals>, settled_in: Duration) -> LedgerCheck {
    let named: Vec<(&str, &Totals)> = bureaus
        .iter()
        .map(|(name, totals)| (name.as_str(), totals))
        .collect();
    let problems = problems_of(&named, settled_in);
    let mut check = verdict(
        problems,
        settled_in,
        (Totals::default(), Totals::default()),
        None,
    );
    check.bureaus = bureaus;
    check
}

/// What does not hold across `bureaus` together: conservation (debited to transit is credited
/// plus in transit plus paid to bank plus returned), settlement (settled out is credited), and
/// a bureau with transfers still open.
fn problems_of(bureaus: &[(&str, &Totals)], settled_in: Duration) -> Vec<String> {
    let mut problems = Vec::new();
    let sum = |f: fn(&Totals) -> u64| {
        bureaus
            .iter()
            .map(|(_, totals)| u128::from(f(totals)))
            .sum::<u128>()
    };
    let debited = sum(|t| t.debited_to_transit_cents);
    let accounted = sum(|t| t.credited_cents)
        + sum(|t| t.in_transit_cents)
        + sum(|t| t.paid_to_bank_cents)
        + sum(|t| t.returned_cents);
    if debited != accounted {
        problems.push(format!(
            "conservation: debited to transit {} ≠ credited + in transit + paid to bank + \
             returned {}",
            money(debited),
            money(accounted)
        ));
    }
    let settled = sum(|t| t.settled_out_cents);
    let credited = sum(|t| t.credited_cents);
    if settled != credited {
        problems.push(format!(
            "settlement: settled out {} ≠ credited {}",
            money(settled),
            money(credited)
        ));
    }
    for (name, totals) in bureaus {
        problems.extend(still_open(name, totals, settled_in));
    }
    problems
}

/// The verdict on the one bureau a run drives, whose peer is not yibao's: its own identity
/// (debited to transit = in transit + settled out + returned + paid to bank) and nothing open.
/// The peer's ledger is not checked, and the verdict says so.
pub fn judge_one(only: Only, totals: Totals, settled_in: Duration) -> LedgerCheck {
    let service = only.service();
    let mut problems = Vec::new();
    let debited = u128::from(totals.debited_to_transit_cents);
    let placed = [
        totals.in_transit_cents,
        totals.settled_out_cents,
        totals.returned_cents,
        totals.paid_to_bank_cents,
    ]
    .into_iter()
    .map(u128::from)
    .sum::<u128>();
    if debited != placed {
        problems.push(format!(
            "{service}: debited to transit {} ≠ in transit + settled out + returned + paid to \
             bank {}",
            money(debited),
            money(placed)
        ));
    }
    problems.extend(still_open(service, &totals, settled_in));
    let both = match only {
        Only::TransferOut => (totals, Totals::default()),
        Only::TransferIn => (Totals::default(), totals),
    };
    let note = format!(
        "the peer's ledger ({}, the user's service) was not checked: only {service}'s own books \
         were",
        only.peer_service()
    );
    verdict(problems, settled_in, both, Some(note))
}

/// The check, from its problems.
fn verdict(
    problems: Vec<String>,
    settled_in: Duration,
    (out, inn): (Totals, Totals),
    not_checked: Option<String>,
) -> LedgerCheck {
    LedgerCheck {
        holds: problems.is_empty(),
        problems,
        settle_seconds: settled_in.as_secs_f64(),
        out,
        inn,
        not_checked,
        bureaus: BTreeMap::new(),
    }
}

/// The problem of a bureau that still has open transfers, if it has.
fn still_open(name: &str, totals: &Totals, settled_in: Duration) -> Option<String> {
    (totals.open_transfers > 0).then(|| {
        format!(
            "{name}: {} transfers still open after {:.1} s",
            totals.open_transfers,
            settled_in.as_secs_f64()
        )
    })
}

/// Cents as yuan with two places.
fn money(cents: u128) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out_side() -> Totals {
        Totals {
            debited_to_transit_cents: 10_000,
            in_transit_cents: 0,
            settled_out_cents: 7_000,
            paid_to_bank_cents: 2_000,
            returned_cents: 1_000,
            ..Totals::default()
        }
    }

    #[test]
    fn balanced_books_with_nothing_open_hold() {
        let inn = Totals {
            credited_cents: 7_000,
            ..Totals::default()
        };
        let check = judge(out_side(), inn, Duration::ZERO);
        assert!(check.holds, "{:?}", check.problems);
    }

    #[test]
    fn a_missing_cent_or_an_open_transfer_fails_the_check() {
        let inn = Totals {
            credited_cents: 6_999,
            ..Totals::default()
        };
        let check = judge(out_side(), inn, Duration::ZERO);
        assert!(!check.holds);
        assert_eq!(check.problems.len(), 2, "{:?}", check.problems);
        assert!(check.problems[0].contains("100.00"));

        let inn = Totals {
            credited_cents: 7_000,
            open_transfers: 3,
            ..Totals::default()
        };
        let check = judge(out_side(), inn, Duration::from_secs(1));
        assert!(!check.holds);
        assert!(check.problems[0].contains("3 transfers still open"));
    }

    #[test]
    fn one_bureau_alone_is_judged_on_its_own_books_and_says_the_peer_was_not_checked() {
        let check = judge_one(Only::TransferOut, out_side(), Duration::ZERO);
        assert!(check.holds, "{:?}", check.problems);
        assert!(
            check
                .not_checked
                .as_deref()
                .is_some_and(|note| note.contains("transfer-in")),
            "{check:?}"
        );
        assert_eq!(check.inn, Totals::default());
        let lost = Totals {
            settled_out_cents: 6_999,
            open_transfers: 1,
            ..out_side()
        };
        let check = judge_one(Only::TransferOut, lost, Duration::from_secs(2));
        assert!(!check.holds);
        assert_eq!(check.problems.len(), 2, "{:?}", check.problems);
    }

    #[test]
    fn three_bureaus_hold_together_when_each_alone_would_not() {
        // north debited 100.00, west credited 70.00 and settled nothing, south settled 70.00
        // of a transfer it sent on and paid 30.00 to a bank: only the sum balances.
        let bureaus: BTreeMap<String, Totals> = [
            ("north".to_owned(), out_side()),
            (
                "west".to_owned(),
                Totals {
                    credited_cents: 7_000,
                    ..Totals::default()
                },
            ),
            ("south".to_owned(), Totals::default()),
        ]
        .into_iter()
        .collect();
        let check = judge_named(bureaus.clone(), Duration::ZERO);
        assert!(check.holds, "{:?}", check.problems);
        assert_eq!(check.bureaus.len(), 3);
        let mut short = bureaus;
        if let Some(west) = short.get_mut("west") {
            west.credited_cents = 6_999;
            west.open_transfers = 1;
        }
        let check = judge_named(short, Duration::ZERO);
        assert!(!check.holds);
        assert_eq!(check.problems.len(), 3, "{:?}", check.problems);
        assert!(check.problems[2].starts_with("west: 1 transfers"));
    }

    #[test]
    fn wire_totals_parse_to_cents() {
        let wire = LedgerTotals {
            debited_to_transit_total: "1234.50".to_owned(),
            credited_total: "0.01".to_owned(),
            open_transfers: 2,
            ..LedgerTotals::default()
        };
        let totals = parse(&wire).expect("amounts");
        assert_eq!(totals.debited_to_transit_cents, 123_450);
        assert_eq!(totals.credited_cents, 1);
        assert_eq!(totals.open_transfers, 2);
        let bad = LedgerTotals {
            in_transit_total: "1,00".to_owned(),
            ..LedgerTotals::default()
        };
        assert_eq!(parse(&bad), Err("in_transit_total"));
    }
}
