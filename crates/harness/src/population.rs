//! Picking synthetic people for a test, computed locally from the population function.
//!
//! A person is a pure function of `(seed, index)`, and which flow the person at an index fits is
//! the domain's population layout (`population::flow_of`, `population::index_of`): every block
//! of 100 indexes starts with one person of each flow in `Flow::ALL` order and fills the rest by
//! weight, the common flows first. So a test needs no RPC to know whom to apply for, and
//! [`apply_request`] builds the application each flow expects, so the usual case is one line.

use tonic::transport::Channel;
use yibao_domain::population::{ApplyAt, Flow, SyntheticPerson, index_of, person};
use yibao_proto::bureau::v1::bureau_service_client::BureauServiceClient;
use yibao_proto::bureau::v1::{ApplicationChannel, ApplyTransferRequest, Transfer};
use yibao_proto::common::v1::{BankAccount, Scheme as WireScheme};

use crate::{HarnessError, Side};

/// The bank named in the applications [`apply_request`] builds.
pub const SYNTHETIC_BANK_NAME: &str = "中国工商银行";

/// The first `count` persons of `flow` among the first `population` indexes of population
/// `seed`, in index order; an error when fewer fit.
pub fn persons_of_flow(
    seed: u64,
    flow: Flow,
    count: usize,
    population: u64,
) -> Result<Vec<SyntheticPerson>, HarnessError> {
    let mut found = Vec::with_capacity(count);
    for n in 0.. {
        if found.len() == count {
            return Ok(found);
        }
        // index_of grows with n, so the first index beyond the population ends the search.
        let index = index_of(flow, n);
        if index >= population {
            break;
        }
        found.push(person(seed, index)?);
    }
    Err(HarnessError::NotEnoughPersons {
        flow: flow.name(),
        wanted: count,
        found: found.len(),
        seeded: population,
    })
}

/// A seeded population: its seed and how many people (indexes `0..persons`) were seeded.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Seeded {
    /// The population seed.
    pub(crate) seed: u64,
    /// How many people were seeded.
    pub(crate) persons: u64,
}

impl Seeded {
    /// The person at `index`, computed locally.
    pub(crate) fn person(self, index: u64) -> Result<SyntheticPerson, HarnessError> {
        Ok(person(self.seed, index)?)
    }

    /// The first `n` seeded persons of `flow` (see [`persons_of_flow`]).
    pub(crate) fn persons(
        self,
        flow: Flow,
        n: usize,
    ) -> Result<Vec<SyntheticPerson>, HarnessError> {
        persons_of_flow(self.seed, flow, n, self.persons)
    }
}

/// Applies for the person's transfer the way the flow expects ([`apply_request`]) through
/// `client`, a client of `service`, and returns the transfer as created.
pub(crate) async fn apply(
    mut client: BureauServiceClient<Channel>,
    service: &'static str,
    person: &SyntheticPerson,
) -> Result<Transfer, HarnessError> {
    let answer = client
        .apply_transfer(apply_request(person))
        .await
        .map_err(HarnessError::rpc(service, "ApplyTransfer"))?
        .into_inner();
    answer
        .transfer
        .ok_or_else(|| HarnessError::MalformedAnswer {
            service,
            field: "transfer",
            value: String::new(),
            reason: "missing".to_owned(),
        })
}

/// The bureau a person of `flow` applies at.
pub fn applies_at(flow: Flow) -> Side {
    match flow.applies_at() {
        ApplyAt::TransferIn => Side::In,
        ApplyAt::TransferOut => Side::Out,
    }
}

/// Whether the flow pays the balance to the person's bank account, so that the application
/// must name one.
pub fn needs_bank_account(flow: Flow) -> bool {
    matches!(
        flow,
        Flow::NotConnected | Flow::EmployeeToResident | Flow::RetireePayout | Flow::RegionPaysOut
    )
}

/// A scheme as the wire spells it.
pub fn wire_scheme(scheme: yibao_domain::scheme::Scheme) -> WireScheme {
    match scheme {
        yibao_domain::scheme::Scheme::Employee => WireScheme::Employee,
        yibao_domain::scheme::Scheme::Resident => WireScheme::Resident,
    }
}

/// The application the person's flow expects: their ID number and name, the flow's regions, a
/// bank account when the balance is paid out, the retiree payout request for
/// [`Flow::RetireePayout`], applied online, with no idempotency key. Send it to
/// [`applies_at`]`(person.flow)`.
pub fn apply_request(person: &SyntheticPerson) -> ApplyTransferRequest {
    let bank_account = needs_bank_account(person.flow).then(|| BankAccount {
        bank_name: SYNTHETIC_BANK_NAME.to_owned(),
        account_number: person.bank_account_number.clone(),
        account_holder_name: person.name.clone(),
    });
    ApplyTransferRequest {
        certno: person.certno.expose_unmasked().to_owned(),
        psn_name: person.name.clone(),
        trafout_admdvs: person.out_region.to_string(),
        trafin_admdvs: person.in_region.to_string(),
        bank_account,
        retiree_payout_requested: person.flow == Flow::RetireePayout,
        channel: ApplicationChannel::Online as i32,
        client_request_id: String::new(),
        insutype_at_transfer_in: wire_scheme(person.in_scheme) as i32,
        // The population's people of a not-connected destination ask for the payout (可申请);
        // an application without it waits until the region joins the platform.
        payout_requested: person.flow == Flow::NotConnected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persons_of_a_flow_fit_it_in_index_order() {
        let found = persons_of_flow(2026, Flow::NotConnected, 12, 1300).expect("enough");
        assert_eq!(found.len(), 12);
        assert_eq!(
            found[0].index, 4,
            "each block starts with one person per flow"
        );
        for pair in found.windows(2) {
            assert!(pair[0].index < pair[1].index);
        }
        assert!(
            found
                .iter()
                .all(|someone| someone.flow == Flow::NotConnected)
        );
    }

    #[test]
    fn asking_for_more_persons_than_were_seeded_says_how_many_exist() {
        // The first 26 indexes hold one retiree payout: the block's head (index 7).
        let error = persons_of_flow(1, Flow::RetireePayout, 2, 26).expect_err("only one");
        match error {
            HarnessError::NotEnoughPersons { found, wanted, .. } => {
                assert_eq!((found, wanted), (1, 2));
            }
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn payout_flows_name_a_bank_account_held_by_the_person() {
        let someone = persons_of_flow(9, Flow::RetireePayout, 1, 13)
            .expect("one")
            .remove(0);
        let request = apply_request(&someone);
        assert!(request.retiree_payout_requested);
        let account = request.bank_account.expect("payout needs an account");
        assert_eq!(account.account_holder_name, someone.name);
        assert_eq!(applies_at(someone.flow), Side::Out);
    }

    #[test]
    fn the_usual_flow_applies_at_the_transfer_in_bureau_without_a_bank_account() {
        let someone = persons_of_flow(9, Flow::CrossProvince, 1, 13)
            .expect("one")
            .remove(0);
        let request = apply_request(&someone);
        assert!(request.bank_account.is_none());
        assert_eq!(request.trafout_admdvs, "150100");
        assert_eq!(request.trafin_admdvs, "540100");
        assert_eq!(applies_at(someone.flow), Side::In);
    }
}
