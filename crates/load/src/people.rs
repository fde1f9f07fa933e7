//! Who applies next: the flow by the mix (smooth weighted round robin, so the proportions hold
//! over any stretch of the run, not only on average), then the next unused person of that flow in
//! the seeded range. A person transfers once, so a closed-loop run for a duration tops the
//! population up as it goes (see [`People::wanted`]); if that falls behind, a flow's pool runs
//! out and the run stops starting transfers and says so.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use yibao_domain::population::{self, ApplyAt, Flow, SyntheticPerson};
use yibao_proto::bureau::v1::{ApplicationChannel, ApplyTransferRequest};
use yibao_proto::common::v1::BankAccount;

use crate::options::{Mix, people_below};

/// The bank name given with every payout application.
const BANK_NAME: &str = "中国工商银行呼和浩特分行";

/// One application to make.
#[derive(Debug)]
pub struct Job {
    /// The flow the person fits.
    pub flow: Flow,
    /// The person.
    pub person: SyntheticPerson,
}

/// Hands out fresh people in mix proportions.
#[derive(Debug)]
pub struct People {
    /// The population seed.
    seed: u64,
    /// One past the last seeded index; grows when the run tops the population up.
    end: AtomicU64,
    /// The next unused person (counted within the flow) of each flow of the mix.
    next: Vec<(Flow, AtomicU64)>,
    /// Smooth weighted round robin: each flow's weight and running credit.
    picker: Mutex<Vec<(Flow, i64, i64)>>,
    /// Woken when more people are seeded.
    grown: tokio::sync::Notify,
}

/// Why no application could be handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exhausted(pub Flow);

impl People {
    /// People of `seed` from `first` (inclusive) to `end` (exclusive), in `mix` proportions.
    pub fn new(seed: u64, first: u64, end: u64, mix: &Mix) -> People {
        People {
            seed,
            end: AtomicU64::new(end),
            next: mix
                .weights()
                .iter()
                .map(|(flow, _)| (*flow, AtomicU64::new(people_below(*flow, first))))
                .collect(),
            picker: Mutex::new(
                mix.weights()
                    .iter()
                    .map(|(flow, weight)| (*flow, i64::from(*weight), 0))
                    .collect(),
            ),
            grown: tokio::sync::Notify::new(),
        }
    }

    /// One past the last index that must be seeded so that the next `ahead` applications find
    /// people of every flow (each flow gets its share of them): what a top-up seeds up to.
    pub fn wanted(&self, ahead: u64) -> u64 {
        let weights: Vec<(Flow, i64)> = self
            .picker
            .lock()
            .map(|credits| credits.iter().map(|(f, w, _)| (*f, *w)).collect())
            .unwrap_or_default();
        let total = weights.iter().map(|(_, w)| *w).sum::<i64>().max(1) as f64;
        self.next
            .iter()
            .map(|(flow, counter)| {
                let weight = weights
                    .iter()
                    .find(|(f, _)| f == flow)
                    .map_or(0, |(_, w)| *w);
                let share = (ahead as f64 * weight as f64 / total).ceil() as u64;
                population::index_of(*flow, counter.load(Ordering::Relaxed) + share) + 1
            })
            .max()
            .unwrap_or(0)
    }

    /// One past the last seeded index.
    pub fn end(&self) -> u64 {
        self.end.load(Ordering::Acquire)
    }

    /// Records that people up to `end` (exclusive) are seeded now.
    pub fn seeded_to(&self, end: u64) {
        self.end.fetch_max(end, Ordering::AcqRel);
        self.grown.notify_waiters();
    }

    /// Wakes whoever waits for more people (the top-up ended: they should look again and stop).
    pub fn wake(&self) {
        self.grown.notify_waiters();
    }

    /// Resolves when more people are seeded (after [`People::seeded_to`]); enable it before
    /// looking, so that a top-up in between is not missed.
    pub fn grown(&self) -> tokio::sync::futures::Notified<'_> {
        self.grown.notified()
    }

    /// The flow of the next application.
    fn pick(&self) -> Option<Flow> {
        let mut credits = self.picker.lock().ok()?;
        let total: i64 = credits.iter().map(|(_, w, _)| *w).sum();
        for (_, weight, credit) in credits.iter_mut() {
            *credit += *weight;
        }
        let best = credits.iter_mut().max_by_key(|(_, _, credit)| *credit)?;
        best.2 -= total;
        Some(best.0)
    }

    /// The next application, or the flow whose seeded people are all used.
    pub fn next(&self) -> Result<Job, Exhausted> {
        let flow = self.pick().ok_or(Exhausted(Flow::CrossProvince))?;
        let counter = self
            .next
            .iter()
            .find(|(f, _)| *f == flow)
            .map(|(_, counter)| counter)
            .ok_or(Exhausted(flow))?;
        let n = counter.fetch_add(1, Ordering::Relaxed);
        let index = population::index_of(flow, n);
        if index >= self.end.load(Ordering::Acquire) {
            return Err(Exhausted(flow));
        }
        let person = population::person(self.seed, index).map_err(|_| Exhausted(flow))?;
        Ok(Job { flow, person })
    }
}

/// Whether a flow's application needs the person's bank account (the balance is paid out).
fn needs_bank_account(flow: Flow) -> bool {
    matches!(
        flow,
        Flow::NotConnected | Flow::EmployeeToResident | Flow::RetireePayout | Flow::RegionPaysOut
    )
}

/// Whether a flow ends in a refusal by design.
pub fn is_refusal(flow: Flow) -> bool {
    matches!(
        flow,
        Flow::RefusedNotStopped
            | Flow::RefusedArrears
            | Flow::RefusedNotEnrolled
            | Flow::RefusedRetiree
    )
}

/// Which bureau the application goes to.
pub fn applies_at(flow: Flow) -> ApplyAt {
    flow.applies_at()
}

/// The application a person of `flow` makes; `run` makes the idempotency key unique per run.
pub fn application(job: &Job, run: &str) -> ApplyTransferRequest {
    let person = &job.person;
    ApplyTransferRequest {
        certno: person.certno.expose_unmasked().to_owned(),
        psn_name: person.name.clone(),
        trafout_admdvs: person.out_region.to_string(),
        trafin_admdvs: person.in_region.to_string(),
        bank_account: needs_bank_account(job.flow).then(|| BankAccount {
            bank_name: BANK_NAME.to_owned(),
            account_number: person.bank_account_number.clone(),
            account_holder_name: person.name.clone(),
        }),
        retiree_payout_requested: job.flow == Flow::RetireePayout,
        channel: ApplicationChannel::Online as i32,
        client_request_id: format!("load-{run}-{}", person.index),
        insutype_at_transfer_in: yibao_harness::population::wire_scheme(person.in_scheme) as i32,
        payout_requested: job.flow == Flow::NotConnected,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_top_up_extends_every_pool() {
        let mix = Mix::default();
        let people = People::new(1, 0, 200, &mix);
        let mut handed = 0;
        while people.next().is_ok() {
            handed += 1;
        }
        assert!(handed > 0, "someone applied before the pool ran out");
        let wanted = people.wanted(200);
        assert!(wanted > people.end(), "running out means more are wanted");
        people.seeded_to(wanted);
        for _ in 0..200 {
            people
                .next()
                .expect("200 more applications after the top-up");
        }
    }

    use std::collections::HashMap;

    use super::*;
    use crate::options::LoadOptions;

    #[test]
    fn the_mix_holds_over_any_short_stretch() {
        let mix =
            LoadOptions::parse_mix("connected=80,not-connected=10,intra-province=5,refused=5")
                .expect("valid");
        let people = People::new(1, 0, 100_000, &mix);
        let mut counts: HashMap<Flow, u32> = HashMap::new();
        for _ in 0..100 {
            let job = people.next().expect("enough people");
            assert_eq!(job.person.flow, job.flow, "the person fits the flow");
            *counts.entry(job.flow).or_default() += 1;
        }
        assert_eq!(counts[&Flow::CrossProvince], 80);
        assert_eq!(counts[&Flow::NotConnected], 10);
        assert_eq!(counts[&Flow::IntraProvinceShared], 5);
        assert_eq!(counts[&Flow::RefusedArrears], 5);
    }

    #[test]
    fn nobody_is_handed_out_twice_and_the_pool_runs_out() {
        let mix = LoadOptions::parse_mix("instant=1").expect("valid");
        // 5 instant people per block of 100, from index 200 to 400: 10 people.
        let people = People::new(1, 200, 400, &mix);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10 {
            let job = people.next().expect("ten people");
            assert!((200..400).contains(&job.person.index));
            assert!(seen.insert(job.person.index));
        }
        assert_eq!(people.next().map(|_| ()), Err(Exhausted(Flow::Instant)));
    }

    #[test]
    fn payout_flows_carry_the_persons_own_bank_account() {
        let mix = LoadOptions::parse_mix("not-connected=1").expect("valid");
        let job = People::new(1, 0, 1000, &mix).next().expect("someone");
        let request = application(&job, "t");
        let account = request.bank_account.expect("a bank account");
        assert_eq!(account.account_holder_name, job.person.name);
        assert_eq!(account.account_number, job.person.bank_account_number);
        assert!(request.client_request_id.len() <= 64);
        let connected = People::new(1, 0, 1000, &Mix::default())
            .next()
            .expect("someone");
        assert!(application(&connected, "t").bank_account.is_none());
    }
}
