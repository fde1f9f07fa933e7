//! The synthetic population: a person is a pure function of `(seed, index)`.
//!
//! Each bureau materialises its own view of the same people without talking to the other: the
//! transfer-out bureau sees them stopped (中止参保) with a personal-account balance, the transfer-in
//! bureau sees them enrolled (正常参保). Seeding a million people is therefore a local batch insert on
//! each side, and a test or load generator can compute any person's ID number and flow from the
//! seed and index alone.
//!
//! The people are made to fit the flows of the default pair (see `deploy/regions.toml`): every
//! [`Flow`] names the regions and circumstances that lead to one row of DOMAIN.md's tables. The
//! names, dates and amounts are invented; the ID numbers carry valid check characters and the
//! region codes are real.

use chrono::{Days, NaiveDate};

use crate::id::ResidentId;
use crate::money::Money;
use crate::month::{ContributionPeriod, YearMonth};
use crate::region::RegionCode;
use crate::scheme::{EnrolmentState, Scheme};

/// One kind of application the synthetic population exercises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Flow {
    /// Hohhot → Lhasa, applied at the transfer-in bureau: years and balance move.
    CrossProvince,
    /// Hohhot → Lhasa, applied at the transfer-out bureau: the same exchange.
    CrossProvinceOutInitiated,
    /// Hohhot → Ulanqab, both in instant mode (秒到账): completes within the request.
    Instant,
    /// Guangzhou → Shenzhen, Guangdong's shared provincial account: years move, money stays.
    IntraProvinceShared,
    /// Hohhot → Zhengzhou, not connected: the balance is paid to the person's bank account.
    NotConnected,
    /// Hohhot employee → Lhasa resident scheme: years move, the balance is paid out.
    EmployeeToResident,
    /// Hohhot resident → Xi'an employee scheme: resident years convert, no account to move.
    ResidentToEmployee,
    /// A retiree relocated from Hohhot to Lhasa who asks for the balance to be paid out.
    RetireePayout,
    /// Qingdao (older rule: 做账户一次性支付) → Lhasa: years move, the balance is paid out.
    RegionPaysOut,
    /// Refused: the person still contributes at Hohhot.
    RefusedNotStopped,
    /// Refused: the person owes contributions at Hohhot.
    RefusedArrears,
    /// Refused: the person is not enrolled at Lhasa.
    RefusedNotEnrolled,
    /// Refused: a retiree who asks for a transfer rather than a relocation record.
    RefusedRetiree,
}

impl Flow {
    /// Every flow, in the order the population cycles through them.
    pub const ALL: [Flow; 13] = [
        Flow::CrossProvince,
        Flow::CrossProvinceOutInitiated,
        Flow::Instant,
        Flow::IntraProvinceShared,
        Flow::NotConnected,
        Flow::EmployeeToResident,
        Flow::ResidentToEmployee,
        Flow::RetireePayout,
        Flow::RegionPaysOut,
        Flow::RefusedNotStopped,
        Flow::RefusedArrears,
        Flow::RefusedNotEnrolled,
        Flow::RefusedRetiree,
    ];

    /// The flow's stable name, as used by `yibao persons --flow NAME`.
    pub fn name(self) -> &'static str {
        match self {
            Flow::CrossProvince => "cross-province",
            Flow::CrossProvinceOutInitiated => "cross-province-out-initiated",
            Flow::Instant => "instant",
            Flow::IntraProvinceShared => "intra-province-shared",
            Flow::NotConnected => "not-connected",
            Flow::EmployeeToResident => "employee-to-resident",
            Flow::ResidentToEmployee => "resident-to-employee",
            Flow::RetireePayout => "retiree-payout",
            Flow::RegionPaysOut => "region-pays-out",
            Flow::RefusedNotStopped => "refused-not-stopped",
            Flow::RefusedArrears => "refused-arrears",
            Flow::RefusedNotEnrolled => "refused-not-enrolled",
            Flow::RefusedRetiree => "refused-retiree",
        }
    }

    /// Parses a flow's stable name.
    pub fn from_name(name: &str) -> Option<Flow> {
        Flow::ALL.into_iter().find(|flow| flow.name() == name)
    }

    /// Where the person applies: at the transfer-in bureau (the usual path) or the transfer-out one.
    pub fn applies_at(self) -> ApplyAt {
        match self {
            Flow::CrossProvinceOutInitiated
            | Flow::NotConnected
            | Flow::RetireePayout
            | Flow::RefusedRetiree => ApplyAt::TransferOut,
            _ => ApplyAt::TransferIn,
        }
    }

    /// The regions this flow runs between in the default pair: (transfer-out, transfer-in).
    pub fn region_codes(self) -> (RegionCode, RegionCode) {
        let (out_code, in_code) = self.regions();
        (region(out_code), region(in_code))
    }

    fn regions(self) -> (u32, u32) {
        match self {
            Flow::Instant => (150100, 150900),
            Flow::IntraProvinceShared => (440100, 440300),
            Flow::NotConnected => (150100, 410100),
            Flow::ResidentToEmployee => (150100, 610100),
            Flow::RegionPaysOut => (370200, 540100),
            _ => (150100, 540100),
        }
    }
}

/// Which bureau a synthetic person applies at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApplyAt {
    /// The transfer-in bureau initiates the request over the platform (the usual path).
    TransferIn,
    /// The transfer-out bureau pushes the exchange (转移转出申请).
    TransferOut,
}

/// One synthetic insured person, as both bureaus know them.
#[derive(Clone, Debug)]
pub struct SyntheticPerson {
    /// The person's position in the population.
    pub index: u64,
    /// A valid GB 11643 ID number, unique per index (up to 3.6 million people).
    pub certno: ResidentId,
    /// An invented name.
    pub name: String,
    /// The flow this person exercises.
    pub flow: Flow,
    /// The pooling region they leave.
    pub out_region: RegionCode,
    /// The pooling region they join.
    pub in_region: RegionCode,
    /// Their scheme at the transfer-out region.
    pub out_scheme: Scheme,
    /// Their scheme at the transfer-in region.
    pub in_scheme: Scheme,
    /// Their enrolment state at the transfer-out region.
    pub out_state: EnrolmentState,
    /// Whether they are retired.
    pub retired: bool,
    /// What they owe at the transfer-out region.
    pub arrears: Money,
    /// Whether the transfer-in bureau knows them as enrolled (正常参保).
    pub enrolled_at_transfer_in: bool,
    /// Their personal-account balance at the transfer-out region (zero for the resident scheme).
    pub balance: Money,
    /// Their contribution history at the transfer-out region.
    pub periods: Vec<ContributionPeriod>,
    /// The first month they were insured (fst_insu_ym).
    pub first_insured: YearMonth,
    /// When they started contributing at the transfer-in region.
    pub in_enrolled_from: YearMonth,
    /// A bank account number for payouts (synthetic, 19 digits).
    pub bank_account_number: String,
}

const SURNAMES: [&str; 16] = [
    "王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙", "胡", "朱", "高", "林",
];
const GIVEN: [&str; 16] = [
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明",
];

/// How many of every [`LAYOUT_BLOCK`] consecutive people fit each flow: the common flows
/// dominate, as they do in a load run, and every flow appears in each block.
pub const LAYOUT_WEIGHTS: [(Flow, u64); 13] = [
    (Flow::CrossProvince, 40),
    (Flow::CrossProvinceOutInitiated, 10),
    (Flow::Instant, 5),
    (Flow::IntraProvinceShared, 10),
    (Flow::NotConnected, 10),
    (Flow::EmployeeToResident, 3),
    (Flow::ResidentToEmployee, 3),
    (Flow::RetireePayout, 2),
    (Flow::RegionPaysOut, 2),
    (Flow::RefusedNotStopped, 4),
    (Flow::RefusedArrears, 4),
    (Flow::RefusedNotEnrolled, 4),
    (Flow::RefusedRetiree, 3),
];

/// The number of consecutive indexes over which the flow layout repeats.
pub const LAYOUT_BLOCK: u64 = 100;

/// The flow of the person at `index`. The first 13 indexes of every block of
/// [`LAYOUT_BLOCK`] are one of each flow (in [`Flow::ALL`] order), so any 13 consecutive people
/// from a block start show every flow; the rest of the block follows [`LAYOUT_WEIGHTS`].
pub fn flow_of(index: u64) -> Flow {
    let position = index % LAYOUT_BLOCK;
    let flows = Flow::ALL.len() as u64;
    if position < flows {
        return Flow::ALL[position as usize];
    }
    let mut rest = position - flows;
    for (flow, weight) in LAYOUT_WEIGHTS {
        let extra = weight - 1;
        if rest < extra {
            return flow;
        }
        rest -= extra;
    }
    Flow::CrossProvince
}

/// The `n`-th person (from 0) of `flow` in the layout: its index.
pub fn index_of(flow: Flow, n: u64) -> u64 {
    let per_block = LAYOUT_WEIGHTS
        .iter()
        .find(|(f, _)| *f == flow)
        .map_or(1, |(_, w)| *w);
    let block = n / per_block;
    let within = n % per_block;
    let mut seen = 0;
    for position in 0..LAYOUT_BLOCK {
        if flow_of(position) == flow {
            if seen == within {
                return block * LAYOUT_BLOCK + position;
            }
            seen += 1;
        }
    }
    block * LAYOUT_BLOCK
}

/// The share of the population (out of [`LAYOUT_BLOCK`]) that fits `flow`.
pub fn people_per_block(flow: Flow) -> u64 {
    LAYOUT_WEIGHTS
        .iter()
        .find(|(f, _)| *f == flow)
        .map_or(0, |(_, w)| *w)
}

/// The largest index [`person`] accepts: 1000 sequence numbers a day over ~10,000 days.
pub const MAX_INDEX: u64 = 3_600_000;

/// Why a person could not be generated.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PopulationError {
    /// The index is beyond what unique ID numbers allow.
    #[error("index {index} is beyond the population limit {MAX_INDEX}")]
    IndexTooLarge {
        /// The index asked for.
        index: u64,
    },
}

/// The person at `index` of the population `seed`. Pure: same inputs, same person.
// Long because every random draw must happen in this one fixed order: both bureaus and the load
// generator materialise the same people from (seed, index), and data seeded by an earlier build
// must keep meaning the same people, so the draws are kept visibly in sequence.
pub fn person(seed: u64, index: u64) -> Result<SyntheticPerson, PopulationError> {
    if index >= MAX_INDEX {
        return Err(PopulationError::IndexTooLarge { index });
    }
    let mut random = SplitMix64::new(seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let flow = flow_of(index);
    let (out_code, in_code) = flow.regions();
    let out_region = region(out_code);
    let in_region = region(in_code);

    let retired = matches!(flow, Flow::RetireePayout | Flow::RefusedRetiree);
    // Index → (birth date, sequence): unique ID numbers without a lookup. Retirees are older.
    let base = if retired {
        date(1950, 1, 1)
    } else {
        date(1970, 1, 1)
    };
    let birth = base
        .checked_add_days(Days::new(index / 1000))
        .unwrap_or(base);
    let sequence = (index % 1000) as u16;
    let birth_region = region(out_code + 2); // a county of the transfer-out city (e.g. 150102)
    let certno = ResidentId::from_parts(birth_region, birth, sequence)
        .or_else(|_| ResidentId::from_parts(out_region, birth, sequence))
        .map_err(|_| PopulationError::IndexTooLarge { index })?;

    let name = format!(
        "{}{}{}",
        SURNAMES[random.below(16) as usize],
        GIVEN[random.below(16) as usize],
        GIVEN[random.below(16) as usize]
    );
    let out_scheme = if flow == Flow::ResidentToEmployee {
        Scheme::Resident
    } else {
        Scheme::Employee
    };
    let in_scheme = if flow == Flow::EmployeeToResident {
        Scheme::Resident
    } else {
        Scheme::Employee
    };
    let out_state = match flow {
        Flow::RefusedNotStopped => EnrolmentState::Normal,
        _ => EnrolmentState::Suspended,
    };
    let arrears = match flow {
        Flow::RefusedArrears => {
            Money::from_cents(1_000 + random.below(100_000)).unwrap_or(Money::ZERO)
        }
        _ => Money::ZERO,
    };
    let balance = if out_scheme.has_personal_account() {
        Money::from_cents(random.below(5_000_000)).unwrap_or(Money::ZERO)
    } else {
        Money::ZERO
    };

    // Contributions: a few years up to the month before the transfer, first insured at 22.
    let years = 2 + random.below(12) as i32;
    let stopped = YearMonth::new(2026, 6).unwrap_or(YearMonth::MAX);
    let started = stopped.saturating_plus_months(-(years * 12) + 1);
    let periods = ContributionPeriod::new(started, stopped, out_scheme, out_region)
        .map(|period| vec![period])
        .unwrap_or_default();
    let in_enrolled_from = stopped.saturating_plus_months(2);
    let bank_account_number = format!("6222{:015}", random.below(1_000_000_000_000_000));

    Ok(SyntheticPerson {
        index,
        certno,
        name,
        flow,
        out_region,
        in_region,
        out_scheme,
        in_scheme,
        out_state,
        retired,
        arrears,
        enrolled_at_transfer_in: flow != Flow::RefusedNotEnrolled,
        balance,
        periods,
        first_insured: started,
        in_enrolled_from,
        bank_account_number,
    })
}

/// The index of the synthetic person with this ID number (the inverse of [`person`]'s ID
/// layout: birth date offset × 1000 + sequence), or `None` for an ID the layout cannot produce.
pub fn index_of_certno(certno: &ResidentId, flow: Flow) -> Option<u64> {
    let retired = matches!(flow, Flow::RetireePayout | Flow::RefusedRetiree);
    let base = if retired {
        date(1950, 1, 1)
    } else {
        date(1970, 1, 1)
    };
    let days = u64::try_from((certno.birth_date() - base).num_days()).ok()?;
    let sequence: u64 = certno.expose_unmasked().get(14..17)?.parse().ok()?;
    let index = days.checked_mul(1000)?.checked_add(sequence)?;
    (index < MAX_INDEX).then_some(index)
}

fn region(code: u32) -> RegionCode {
    // The codes above are real and valid; fall back to Hohhot rather than panic.
    RegionCode::from_value(code)
        .or_else(|_| RegionCode::from_value(150100))
        .unwrap_or_else(|_| unreachable_region())
}

#[allow(clippy::panic)] // 150100 is a valid literal code: reaching this is a programmer error.
fn unreachable_region() -> RegionCode {
    panic!("150100 is a valid region code")
}

fn date(year: i32, month: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, month, day).unwrap_or(NaiveDate::MIN)
}

/// SplitMix64: a tiny, well-known generator; enough to vary names and amounts reproducibly.
struct SplitMix64(u64);

impl SplitMix64 {
    fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn a_person_is_a_pure_function_of_seed_and_index() {
        let a = person(7, 1234).expect("in range");
        let b = person(7, 1234).expect("in range");
        assert_eq!(a.certno, b.certno);
        assert_eq!(a.name, b.name);
        assert_eq!(a.balance, b.balance);
        let other_seed = person(8, 1234).expect("in range");
        assert_eq!(
            a.certno, other_seed.certno,
            "the id depends on the index only"
        );
    }

    #[test]
    fn ids_are_valid_and_unique_across_many_indexes() {
        let mut seen = HashSet::new();
        for index in 0..20_000 {
            let someone = person(1, index).expect("in range");
            let text = someone.certno.expose_unmasked().to_owned();
            assert!(ResidentId::parse(&text).is_ok());
            assert!(seen.insert(text), "duplicate id at index {index}");
        }
    }

    #[test]
    fn every_flow_appears_and_names_round_trip() {
        let flows: HashSet<_> = (0..Flow::ALL.len() as u64)
            .map(|index| person(3, index).expect("in range").flow)
            .collect();
        assert_eq!(flows.len(), Flow::ALL.len());
        for flow in Flow::ALL {
            assert_eq!(Flow::from_name(flow.name()), Some(flow));
        }
    }

    #[test]
    fn residents_have_no_balance_and_refusal_flows_carry_their_cause() {
        for index in 0..200 {
            let someone = person(5, index).expect("in range");
            if someone.out_scheme == Scheme::Resident {
                assert!(someone.balance.is_zero());
            }
            match someone.flow {
                Flow::RefusedArrears => assert!(!someone.arrears.is_zero()),
                Flow::RefusedNotStopped => assert_eq!(someone.out_state, EnrolmentState::Normal),
                Flow::RefusedNotEnrolled => assert!(!someone.enrolled_at_transfer_in),
                _ => {}
            }
        }
    }

    #[test]
    fn the_layout_fills_each_block_by_weight_and_index_of_inverts_flow_of() {
        let total: u64 = LAYOUT_WEIGHTS.iter().map(|(_, w)| w).sum();
        assert_eq!(total, LAYOUT_BLOCK);
        for flow in Flow::ALL {
            let count = (0..LAYOUT_BLOCK).filter(|i| flow_of(*i) == flow).count() as u64;
            assert_eq!(count, people_per_block(flow), "{}", flow.name());
            for n in 0..250 {
                assert_eq!(flow_of(index_of(flow, n)), flow);
            }
            let mut indexes: Vec<_> = (0..250).map(|n| index_of(flow, n)).collect();
            indexes.dedup();
            assert_eq!(indexes.len(), 250, "distinct people for {}", flow.name());
        }
    }

    #[test]
    fn the_index_can_be_read_back_from_the_id_number() {
        for index in [0, 7, 999, 1000, 123_456, MAX_INDEX - 1] {
            let someone = person(9, index).expect("in range");
            assert_eq!(index_of_certno(&someone.certno, someone.flow), Some(index));
        }
    }

    #[test]
    fn an_index_beyond_the_limit_is_an_error() {
        assert!(person(1, MAX_INDEX).is_err());
    }
}
