//! Test support for the bureau crate's unit tests: a [`Services`] over an in-memory store with
//! the shipped region directory and calendar, an adjustable clock pinned to a working Monday of
//! 2026, a peer that is never called and a bank that never fails; synthetic persons seeded as
//! the admin API seeds them; and short readers of the ledger, the outbox and the transfers.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, TimeDelta, TimeZone, Utc};
use yibao_domain::classify::RetireePayout;
use yibao_domain::population::{self, Flow, SyntheticPerson};
use yibao_domain::region::RegionCode;
use yibao_domain::transfer::TransferId;
use yibao_runtime::clock::Clock;
use yibao_runtime::directory::{BureauName, BureauRole, RegionDirectory};
use yibao_store::{EventRow, OutboxMessage, PersonRow, Posting, Store, Tx};

use crate::api::admin::materialise;
use crate::bank::SimulatedBank;
use crate::context::{ConnectivityOverrides, Site};
use crate::document::TransferDocument;
use crate::error::Error;
use crate::journal::{account, reason};
use crate::messages::TransferApplication;
use crate::peer::{Peer, Peers};
use crate::record::{self, Step};
use crate::services::{Admin, Services};
use crate::transfer_in;

/// The population every test seeds from.
pub const SEED: u64 = 20_260_302;

/// The region directory both services ship with.
pub const DIRECTORY: &str = include_str!("../../../deploy/regions.toml");

/// The moment every test starts at: Monday 2 March 2026, 10:00 China time (a working day well
/// inside the shipped 2026 calendar, so every statutory deadline can be counted).
pub fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 2, 0, 0)
        .single()
        .expect("a valid instant")
}

/// The site of a bureau of `role` under the shipped directory and calendar.
pub fn site(role: BureauRole) -> Site {
    site_with(role, DIRECTORY)
}

/// The shipped directory with `policy_lines` added to Hohhot's (150100) policy table.
pub fn directory_with_hohhot_policy(policy_lines: &str) -> String {
    let hohhot = DIRECTORY
        .find("code = \"150100\"")
        .expect("Hohhot is in the shipped directory");
    let table = hohhot
        + DIRECTORY[hohhot..]
            .find("[region.policy]\n")
            .expect("Hohhot has a policy table")
        + "[region.policy]\n".len();
    format!(
        "{}{policy_lines}\n{}",
        &DIRECTORY[..table],
        &DIRECTORY[table..]
    )
}

/// The site of a bureau of `role` under the directory `directory_text` and the shipped calendar.
pub fn site_with(role: BureauRole, directory_text: &str) -> Site {
    let directory = RegionDirectory::parse(directory_text).expect("the directory parses");
    site_named(role, BureauName::of_role(role), directory)
}

/// The site of the bureau `name` (started by a binary of `role`) under `directory` and the
/// shipped calendar.
pub fn site_named(role: BureauRole, name: BureauName, directory: RegionDirectory) -> Site {
    let (calendar, _) = yibao_runtime::calendar::load_calendar(None, start().date_naive())
        .expect("the shipped calendar loads");
    let hosted = directory.hosted_by(&name);
    let first = *hosted
        .first()
        .expect("the directory gives each bureau a region");
    let connectivity_overrides = Arc::new(ConnectivityOverrides::new(directory.pooling().clone()));
    Site {
        role,
        institution: crate::context::institution_code(&name, first),
        name,
        hosted,
        directory,
        calendar,
        default_policy: Default::default(),
        connectivity_overrides,
        broken: crate::context::Broken::No,
    }
}

/// A bureau of `role` over a fresh in-memory store, its clock at [`start`].
pub fn services(role: BureauRole) -> Arc<Services> {
    // Never dialled: the drivers only queue messages; nothing here sends them.
    services_with_peer(role, "http://127.0.0.1:9")
}

/// As [`services`], with its peer at `peer` (plaintext).
pub fn services_with_peer(role: BureauRole, peer: &str) -> Arc<Services> {
    services_on(site(role), peer)
}

/// A bureau of `role` under the directory `directory_text`, over a fresh in-memory store.
pub fn services_with_directory(role: BureauRole, directory_text: &str) -> Arc<Services> {
    services_on(site_with(role, directory_text), "http://127.0.0.1:9")
}

fn services_on(site: Site, peer: &str) -> Arc<Services> {
    let offset = start() - Clock::system().now();
    let clock = Clock::adjustable(offset).expect("an offset within a century");
    let faults = Arc::new(crate::faults::FaultRules::new(
        site.connectivity_overrides.clone(),
    ));
    Arc::new(Services {
        site: Arc::new(site),
        store: Store::open_in_memory().expect("an in-memory store opens"),
        clock,
        peers: Peers::single(Peer::new(peer.to_owned(), None)),
        bank: Arc::new(SimulatedBank::new(0)),
        watchers: Arc::default(),
        streams: Arc::default(),
        dispatch_now: tokio::sync::Notify::new(),
        admin: Admin::Enabled,
        admin_token: None,
        faults,
        exchanges: Arc::default(),
    })
}

/// The `n`-th synthetic person of `flow` (from 0) whose balance at the transfer-out bureau is
/// not zero, as the population generates them (not stored).
pub fn someone(flow: Flow, n: u64) -> SyntheticPerson {
    (0..)
        .map(|k| population::person(SEED, population::index_of(flow, k)).expect("in range"))
        .filter(|person| !person.balance.is_zero() || !person.out_scheme.has_personal_account())
        .nth(usize::try_from(n).expect("a small n"))
        .expect("the population has people of every flow")
}

/// Seeds the `n`-th person of `flow` as the admin API does (person row + opening balance) and
/// returns them; panics if this bureau does not know them (see [`seed_if_known`]).
pub async fn seed(services: &Arc<Services>, flow: Flow, n: u64) -> SyntheticPerson {
    let person = someone(flow, n);
    assert!(
        seed_if_known(services, &person).await,
        "this bureau does not know a person of flow {}",
        flow.name()
    );
    person
}

/// Seeds a person as the admin API does, if this bureau knows them; returns whether it did.
pub async fn seed_if_known(services: &Arc<Services>, person: &SyntheticPerson) -> bool {
    let Some((row, balance)) = materialise(services, person) else {
        return false;
    };
    let now = services.clock.now();
    services
        .store
        .write(move |tx| -> Result<(), Error> {
            let counted = tx.insert_persons(std::slice::from_ref(&row))?;
            assert_eq!(counted.written, 1, "a fresh person");
            if balance > 0 {
                tx.post(&Posting {
                    from_account: account::OPENING.to_owned(),
                    to_account: account::person(&row.certno),
                    amount_cents: i64::try_from(balance).expect("a small balance"),
                    transfer_id: None,
                    reason: reason::OPENING.to_owned(),
                    at: now,
                })?;
            }
            Ok(())
        })
        .await
        .expect("seeding writes");
    true
}

/// Runs one protocol step, as a handler or the outbox does.
pub async fn step<T, F>(services: &Services, work: F) -> Result<T, Error>
where
    F: FnOnce(&mut Step<'_>) -> Result<T, Error> + Send + 'static,
    T: Send + 'static,
{
    services.write(work).await
}

/// Reads the store.
pub async fn read<T, F>(services: &Services, work: F) -> T
where
    F: FnOnce(&mut dyn Tx) -> Result<T, Error> + Send + 'static,
    T: Send + 'static,
{
    services.store.read(work).await.expect("the store reads")
}

/// A transfer's document, which must exist and decode.
pub async fn document(services: &Services, transfer_id: &str) -> TransferDocument {
    find_document(services, transfer_id)
        .await
        .unwrap_or_else(|| panic!("transfer {transfer_id} is stored"))
}

/// A transfer's document, if stored (it must decode).
pub async fn find_document(services: &Services, transfer_id: &str) -> Option<TransferDocument> {
    let id = transfer_id.to_owned();
    read(services, move |tx| record::load(tx, &id)).await
}

/// A transfer's history.
pub async fn events(services: &Services, transfer_id: &str) -> Vec<EventRow> {
    let id = transfer_id.to_owned();
    read(services, move |tx| Ok(tx.events(&id)?)).await
}

/// A stored person.
pub async fn person_row(services: &Services, certno: &str) -> PersonRow {
    let certno = certno.to_owned();
    read(services, move |tx| Ok(tx.person(&certno)?))
        .await
        .expect("the person is stored")
}

/// The cached balance of an account, in cents.
pub async fn balance(services: &Services, account: &str) -> i64 {
    let account = account.to_owned();
    read(services, move |tx| Ok(tx.balance(&account)?)).await
}

/// The balance of a person's account, in cents.
pub async fn person_balance(services: &Services, certno: &str) -> i64 {
    balance(services, &account::person(certno)).await
}

/// Balances summed per account class (`person`, `transit`, `settled`, `bank`, `opening`, …).
pub async fn class_balances(services: &Services) -> BTreeMap<String, i64> {
    read(services, |tx| Ok(tx.account_class_balances()?))
        .await
        .into_iter()
        .collect()
}

/// The sum of posted amounts per reason.
pub async fn totals(services: &Services) -> BTreeMap<String, i64> {
    read(services, |tx| Ok(tx.totals_by_reason()?))
        .await
        .into_iter()
        .collect()
}

/// Checks that no cent was made or lost: the journal agrees with its cached balances, every
/// class sums to zero together, and what left the opening account is exactly `opening_cents`,
/// all of it still somewhere (persons, transit, settled, bank, platform).
pub async fn assert_money_conserved(services: &Services, opening_cents: i64) {
    let check = read(services, |tx| Ok(tx.verify_journal()?)).await;
    assert!(check.is_sound(), "the journal is sound: {check:?}");
    let classes = class_balances(services).await;
    assert_eq!(
        classes.values().sum::<i64>(),
        0,
        "the classes sum to zero: {classes:?}"
    );
    assert_eq!(
        classes.get("opening").copied().unwrap_or(0),
        -opening_cents,
        "only the seeded balances came from the opening account: {classes:?}"
    );
}

/// The balance in transit (0 when nothing is on its way).
pub async fn transit(services: &Services) -> i64 {
    balance(services, account::TRANSIT).await
}

/// The messages due now.
pub async fn due_now(services: &Services) -> Vec<OutboxMessage> {
    let now = services.clock.now();
    read(services, move |tx| Ok(tx.due_messages(now, 100)?)).await
}

/// Every message in the outbox, due or not (parked ones included).
pub async fn outbox(services: &Services) -> Vec<OutboxMessage> {
    let far = services.clock.now() + TimeDelta::days(10_000);
    read(services, move |tx| Ok(tx.due_messages(far, 100)?)).await
}

/// The kinds and receivers of the outbox's messages about one transfer, in queue order.
pub async fn queued_for(services: &Services, transfer_id: &str) -> Vec<(String, String)> {
    outbox(services)
        .await
        .into_iter()
        .filter(|message| message.transfer_id == transfer_id)
        .map(|message| (message.kind, message.peer))
        .collect()
}

/// A region code of the shipped table.
pub fn region(code: &str) -> RegionCode {
    RegionCode::parse(code).expect("a valid region code")
}

/// The id a bureau at `region` would mint for its `sequence`-th transfer of [`start`]'s day.
pub fn transfer_id(region_code: &str, sequence: u32) -> String {
    TransferId::new(region(region_code), day(), sequence)
        .expect("a valid transfer id")
        .to_string()
}

/// [`start`]'s day, China time.
pub fn day() -> NaiveDate {
    yibao_runtime::clock::china_date(start())
}

/// The kinds of a transfer's history events, in order.
pub fn kinds(events: &[EventRow]) -> Vec<&str> {
    events.iter().map(|event| event.kind.as_str()).collect()
}

/// The request the transfer-in bureau sends for `person` (its `sequence`-th of the day).
pub fn transfer_out_request(person: &SyntheticPerson, sequence: u32) -> TransferApplication {
    let (out_region, in_region) = person.flow.region_codes();
    TransferApplication {
        transfer_id: transfer_id(&in_region.to_string(), sequence),
        certno: person.certno.clone(),
        psn_name: person.name.clone(),
        in_scheme: Some(person.in_scheme),
        out_region,
        in_region,
        applied_at: start(),
        bank_account: None,
        retiree_payout: RetireePayout::NotRequested,
        // The population's people of a not-connected destination ask for the payout.
        payout_requested: person.flow == Flow::NotConnected,
        channel: yibao_domain::application::ApplicationChannel::Online,
    }
}

/// The application `person` makes here for their flow's regions.
pub fn application_at_transfer_in(person: &SyntheticPerson) -> transfer_in::Application {
    let (out_region, in_region) = person.flow.region_codes();
    transfer_in::Application {
        certno: person.certno.clone(),
        psn_name: person.name.clone(),
        out_region,
        in_region,
        bank_account: None,
        retiree_payout: RetireePayout::NotRequested,
        channel: yibao_domain::application::ApplicationChannel::Online,
    }
}

/// Random edits of an encoded request for the fuzzing properties: (position, byte, action),
/// the action replacing (0), inserting (1) or removing (2) a byte.
pub fn byte_edits() -> impl proptest::strategy::Strategy<Value = Vec<(usize, u8, u8)>> {
    use proptest::prelude::*;
    proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 1..8)
}

/// `bytes` with `edits` applied; positions are taken modulo the length.
pub fn edited_bytes(mut bytes: Vec<u8>, edits: &[(usize, u8, u8)]) -> Vec<u8> {
    for &(position, byte, action) in edits {
        let at = position % (bytes.len() + 1);
        match action {
            0 if at < bytes.len() => bytes[at] = byte,
            1 => bytes.insert(at, byte),
            2 if at < bytes.len() => {
                bytes.remove(at);
            }
            _ => {}
        }
    }
    bytes
}

/// Checks a request's conversion for the fuzzing properties: a domain value, or
/// `INVALID_ARGUMENT` naming one of `fields` (or a field inside one, `bank_account.…`).
pub fn converted<T>(
    result: Result<T, Error>,
    fields: &[&str],
) -> Result<(), proptest::test_runner::TestCaseError> {
    use proptest::prelude::*;
    let error = match result {
        Ok(_) => return Ok(()),
        Err(error) => error,
    };
    let Error::InvalidArgument { field, rule } = &error else {
        prop_assert!(false, "not INVALID_ARGUMENT: {:?}", error);
        return Ok(());
    };
    let named = fields
        .iter()
        .any(|name| field == name || field.starts_with(&format!("{name}.")));
    prop_assert!(named, "{:?} is none of {:?}", field, fields);
    prop_assert!(!rule.is_empty());
    let message = error.to_string();
    let status = tonic::Status::from(error);
    prop_assert_eq!(status.code(), tonic::Code::InvalidArgument);
    prop_assert_eq!(status.message(), message);
    Ok(())
}
