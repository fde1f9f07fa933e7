//! One store test suite run against both backends: group commit, durability across reopen, and
//! the rules the ledger enforces (one open transfer per person, no overdrawn person account, a
//! balanced journal), plus the outbox, processed-message log and sequences the protocol relies on.
//!
//! Every test runs on a fresh SQLite file (module `sqlite`) and on a fresh PostgreSQL database
//! (module `postgres`) created on the server `YIBAO_TEST_DATABASE_URL` names and dropped after,
//! so tests run in parallel. Without that variable the PostgreSQL tests say they were skipped —
//! unless `YIBAO_REQUIRE_POSTGRES=1`, which makes a missing URL a failure (CI sets both;
//! `scripts/postgres-test-cluster.sh` starts a private server).

// clippy's allow-unwrap-in-tests covers `#[test]` functions but not the helpers of an
// integration test file; here a failed unwrap is a failed test, which is what we want.
#![allow(clippy::unwrap_used)]

use std::sync::mpsc as std_mpsc;

use chrono::{DateTime, NaiveDate, Utc};
use tempfile::TempDir;
use yibao_store::{
    CommitFault, Error, EventRow, Health, InsertCount, NewOutboxMessage, Options, PersonRow,
    Posting, Store, Synchronous, TransferRow,
};

const CERTNO: &str = "11010519491231002X";
const OTHER_CERTNO: &str = "150102199002280378";

/// Generates each listed test once per backend: `sqlite::NAME` always, `postgres::NAME` on a
/// database of its own when a server is configured.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::Db::sqlite()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    if let Some(db) = super::Db::postgres(stringify!($name)) {
                        super::$name(db).await;
                    }
                }
            )*
        }
    };
}

on_both_backends!(
    a_full_queue_refuses_a_write_after_its_short_wait_and_admits_again_once_drained,
    two_hundred_concurrent_writes_all_land_and_each_gets_its_own_answer,
    a_failing_job_inside_a_batch_rolls_back_only_its_own_writes,
    when_the_commit_fails_every_job_of_the_batch_gets_the_error_and_nothing_lands,
    a_batch_the_full_disk_refuses_leaves_no_trace_and_the_store_commits_again_after,
    an_io_error_at_commit_is_unavailable_and_a_probe_finds_the_store_committing_again,
    a_jobs_own_failure_leaves_the_store_committing_a_refused_commit_does_not,
    a_panicking_job_resumes_its_panic_in_the_caller_and_the_writer_goes_on,
    reopening_the_file_keeps_everything,
    one_open_transfer_per_person_is_enforced,
    updating_a_transfer_that_does_not_exist_is_not_found,
    posting_refuses_to_overdraw_a_person_account_and_leaves_nothing_written,
    a_posting_must_move_a_positive_amount_between_two_accounts,
    the_journal_verifies_after_many_postings_and_all_balances_sum_to_zero,
    verify_journal_reports_a_cached_balance_that_drifted_from_the_journal,
    outbox_messages_come_due_in_order_and_retry_later_moves_them,
    a_processed_message_round_trips_and_cannot_be_recorded_twice,
    next_sequence_is_monotonic_across_reopen,
    a_floored_sequence_jumps_to_the_floor_and_never_goes_back,
    opening_an_existing_database_again_migrates_nothing_and_loses_nothing,
    persons_insert_if_absent_and_are_sampled_by_flow,
    events_are_numbered_per_transfer_from_one,
    open_transfers_due_before_a_day_are_the_overdue_ones,
    certificates_are_stored_once_per_code,
    a_read_refuses_to_write,
    closing_finishes_queued_writes_and_then_refuses_new_ones,
    options_read_from_configuration_default_to_full_durability,
    withdrawing_messages_removes_only_that_kind_for_that_transfer,
    parked_messages_are_listed_apart_from_due_ones_and_keep_their_attempts,
    overdue_queries_filter_by_state_and_count_without_loading,
    counting_a_state_between_two_days_takes_the_first_and_not_the_second,
    a_table_walk_pages_through_every_transfer_in_id_order,
    open_transfers_in_a_state_are_found_with_or_without_a_due_date,
);

/// A fresh database of one backend, removed when dropped.
enum Db {
    /// A SQLite file in a temporary directory.
    Sqlite(TempDir),
    /// A PostgreSQL database of its own on the test server.
    Postgres(PgDatabase),
}

/// A database created for one test on the server of `YIBAO_TEST_DATABASE_URL`.
struct PgDatabase {
    /// The server's URL (its maintenance database).
    server: String,
    /// The database's name.
    name: String,
    /// The URL of the database.
    url: String,
}

impl Db {
    fn sqlite() -> Db {
        Db::Sqlite(tempfile::tempdir().unwrap())
    }

    /// A fresh PostgreSQL database for `test`, or `None` (and a note) when no server is
    /// configured; a failure instead when `YIBAO_REQUIRE_POSTGRES=1`.
    fn postgres(test: &str) -> Option<Db> {
        let server = std::env::var("YIBAO_TEST_DATABASE_URL")
            .ok()
            .filter(|url| !url.is_empty());
        let Some(server) = server else {
            assert!(
                std::env::var("YIBAO_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "YIBAO_REQUIRE_POSTGRES=1 but YIBAO_TEST_DATABASE_URL is unset: the PostgreSQL \
                 tests cannot run (scripts/postgres-test-cluster.sh starts a server)"
            );
            eprintln!("skipped {test} on PostgreSQL: YIBAO_TEST_DATABASE_URL is unset");
            return None;
        };
        let name = format!("yibao_test_{:016x}", random_suffix(test));
        sql_on(&server, &format!("CREATE DATABASE {name}"));
        let url = database_url(&server, &name);
        Some(Db::Postgres(PgDatabase { server, name, url }))
    }

    fn open(&self) -> Store {
        self.open_with(&Options::default()).unwrap()
    }

    fn open_with(&self, options: &Options) -> Result<Store, Error> {
        match self {
            Db::Sqlite(directory) => Store::open(&sqlite_path(directory), options),
            Db::Postgres(database) => Store::open_url(&database.url, options),
        }
    }

    /// Runs SQL behind the store's back (a trap, damage): the SQLite text on SQLite, the
    /// PostgreSQL text on PostgreSQL.
    fn behind_the_back(&self, sqlite: &str, postgres: &str) {
        match self {
            Db::Sqlite(directory) => {
                let connection = rusqlite::Connection::open(sqlite_path(directory)).unwrap();
                connection.execute_batch(sqlite).unwrap();
            }
            Db::Postgres(database) => sql_on(&database.url, postgres),
        }
    }
}

fn sqlite_path(directory: &TempDir) -> std::path::PathBuf {
    directory.path().join("bureau").join("store.sqlite")
}

/// The URL of database `name` on the server of `server` (whose path names another database).
fn database_url(server: &str, name: &str) -> String {
    let (base, query) = match server.find('?') {
        Some(at) => server.split_at(at),
        None => (server, ""),
    };
    let authority_start = base.find("://").map_or(0, |at| at + 3);
    let host_end = base[authority_start..]
        .find('/')
        .map_or(base.len(), |at| authority_start + at);
    format!("{}/{name}{query}", &base[..host_end])
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        // FORCE ends the connections of a store still open.
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        sql_on(&self.server, &sql);
    }
}

/// Polls (with a deadline) until a session of `db` waits on a lock: the other replica's step
/// is blocked by the first's, not merely not started yet.
fn until_a_session_waits_on_a_lock(db: &Db) {
    let Db::Postgres(database) = db else {
        panic!("locks between replicas are a PostgreSQL matter");
    };
    let (url, name) = (database.server.clone(), database.name.clone());
    std::thread::spawn(move || {
        let mut client = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let waiting: i64 = client
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity \
                     WHERE datname = $1 AND wait_event_type = 'Lock'",
                    &[&name],
                )
                .unwrap()
                .get(0);
            if waiting > 0 {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no session waits on a lock"
            );
            std::thread::yield_now();
        }
    })
    .join()
    .unwrap();
}

/// Runs SQL on a PostgreSQL database, on a thread of its own (the `postgres` crate's client
/// must not run on an async worker).
fn sql_on(url: &str, sql: &str) {
    let (url, sql) = (url.to_owned(), sql.to_owned());
    std::thread::spawn(move || {
        let mut client = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
        client.batch_execute(&sql).unwrap();
    })
    .join()
    .unwrap();
}

/// A suffix no other test of any run shares: the test's name, the process and a random seed.
fn random_suffix(test: &str) -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one((test, std::process::id()))
}

/// A time `millis` milliseconds into 2026.
fn at(millis: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(1_767_225_600_000 + millis).unwrap()
}

fn day(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
}

fn person(certno: &str, flow: &str) -> PersonRow {
    PersonRow {
        certno: certno.to_owned(),
        psn_name: "张三".to_owned(),
        insu_admdvs: "150100".to_owned(),
        insutype: 310,
        psn_insu_stas: 2,
        fst_insu_ym: "201001".to_owned(),
        retired: false,
        arrears_cents: 0,
        deemed_months: 12,
        periods_json: r#"[{"from":"201001","to":"202512"}]"#.to_owned(),
        flow: flow.to_owned(),
    }
}

fn transfer(transfer_id: &str, certno: &str, open: bool) -> TransferRow {
    TransferRow {
        transfer_id: transfer_id.to_owned(),
        certno: certno.to_owned(),
        state: if open { "APPLIED" } else { "COMPLETED" }.to_owned(),
        open,
        whole_process_due_on: Some(day("2026-01-22")),
        created_at: at(0),
        updated_at: at(0),
        document: format!(r#"{{"id":"{transfer_id}"}}"#),
    }
}

fn posting(from: &str, to: &str, amount_cents: i64, reason: &str) -> Posting {
    Posting {
        from_account: from.to_owned(),
        to_account: to.to_owned(),
        amount_cents,
        transfer_id: None,
        reason: reason.to_owned(),
        at: at(0),
    }
}

fn message(msgid: &str, next_attempt_at: DateTime<Utc>) -> NewOutboxMessage {
    NewOutboxMessage {
        transfer_id: "T1".to_owned(),
        kind: "RequestTransferOut".to_owned(),
        peer: "150100".to_owned(),
        msgid: msgid.to_owned(),
        payload: msgid.as_bytes().to_vec(),
        next_attempt_at,
        created_at: at(0),
    }
}

fn person_account(certno: &str) -> String {
    format!("person:{certno}")
}

/// Occupies the writer thread until the returned sender is used (or dropped), so that the next
/// writes queue up and are taken as one batch. The task answers whether the holding job itself
/// committed.
async fn hold_the_writer(
    store: &Store,
) -> (
    std_mpsc::Sender<()>,
    tokio::task::JoinHandle<Result<(), Error>>,
) {
    let (release, held) = std_mpsc::channel::<()>();
    let (started, running) = tokio::sync::oneshot::channel();
    let holder = store.clone();
    let task = tokio::spawn(async move {
        holder
            .write(move |_tx| {
                started.send(()).unwrap();
                let _ = held.recv();
                Ok::<_, Error>(())
            })
            .await
    });
    running.await.unwrap();
    (release, task)
}

async fn wait_until_queued(store: &Store, jobs: usize) {
    while store.queue_depth() < jobs {
        tokio::task::yield_now().await;
    }
}

async fn a_full_queue_refuses_a_write_after_its_short_wait_and_admits_again_once_drained(db: Db) {
    let options = Options {
        queue_limit: 2,
        queue_wait_ms: 50,
        ..Options::default()
    };
    let store = db.open_with(&options).unwrap();
    let (release, holder) = hold_the_writer(&store).await;
    let mut queued = Vec::new();
    for _ in 0..2 {
        let store = store.clone();
        queued.push(tokio::spawn(async move {
            store.write(|_tx| Ok::<_, Error>(())).await
        }));
    }
    wait_until_queued(&store, 2).await;
    let asked = tokio::time::Instant::now();
    let refused = store.write(|_tx| Ok::<_, Error>(())).await;
    assert_eq!(refused, Err(Error::Busy));
    let waited = asked.elapsed();
    assert!(
        waited >= std::time::Duration::from_millis(50)
            && waited < std::time::Duration::from_secs(2),
        "refused after its wait, not at once nor never: {waited:?}"
    );
    release.send(()).unwrap();
    holder.await.unwrap().expect("the holding job commits");
    for write in queued {
        assert_eq!(write.await.unwrap(), Ok(()), "what was queued is written");
    }
    assert_eq!(store.write(|_tx| Ok::<_, Error>(())).await, Ok(()));
}

async fn two_hundred_concurrent_writes_all_land_and_each_gets_its_own_answer(db: Db) {
    let store = db.open();
    let writers: Vec<_> = (0..200)
        .map(|index| {
            let store = store.clone();
            tokio::spawn(async move {
                let key = format!("key-{index}");
                let sequence = store
                    .write(move |tx| {
                        tx.put_setting(&key, &index.to_string())?;
                        tx.next_sequence("shared")
                    })
                    .await
                    .unwrap();
                (index, sequence)
            })
        })
        .collect();
    let mut sequences = Vec::new();
    for writer in writers {
        sequences.push(writer.await.unwrap().1);
    }

    sequences.sort_unstable();
    assert_eq!(
        sequences,
        (1..=200).collect::<Vec<u64>>(),
        "each job got its own number"
    );
    let settings = store
        .read(|tx| {
            (0..200)
                .map(|index| tx.setting(&format!("key-{index}")))
                .collect::<Result<Vec<_>, Error>>()
        })
        .await
        .unwrap();
    for (index, value) in settings.into_iter().enumerate() {
        assert_eq!(value, Some(index.to_string()));
    }
    let stats = store.write_stats();
    assert_eq!(stats.jobs_committed, 200);
    assert!(stats.transactions_committed <= 200);
}

async fn a_failing_job_inside_a_batch_rolls_back_only_its_own_writes(db: Db) {
    let store = db.open();
    let (release, holder) = hold_the_writer(&store).await;
    let transactions_before = store.write_stats().transactions_committed;

    let first = tokio::spawn({
        let store = store.clone();
        async move { store.write(|tx| tx.put_setting("first", "kept")).await }
    });
    wait_until_queued(&store, 1).await;
    let failing = tokio::spawn({
        let store = store.clone();
        async move {
            store
                .write(|tx| {
                    tx.put_setting("failing", "written")?;
                    tx.post(&posting("fund:pool", "person:X", 500, "seed"))?;
                    Err::<(), _>(Error::Conflict("the job changed its mind".to_owned()))
                })
                .await
        }
    });
    wait_until_queued(&store, 2).await;
    let last = tokio::spawn({
        let store = store.clone();
        async move { store.write(|tx| tx.put_setting("last", "kept")).await }
    });
    wait_until_queued(&store, 3).await;
    release.send(()).unwrap();
    holder.await.unwrap().unwrap();

    assert_eq!(first.await.unwrap(), Ok(()));
    assert_eq!(
        failing.await.unwrap(),
        Err(Error::Conflict("the job changed its mind".to_owned()))
    );
    assert_eq!(last.await.unwrap(), Ok(()));
    assert_eq!(
        store.write_stats().transactions_committed - transactions_before,
        2,
        "the holder's batch, then one batch for the three jobs"
    );
    let (first, failing, last, balance, check) = store
        .read(|tx| {
            Ok::<_, Error>((
                tx.setting("first")?,
                tx.setting("failing")?,
                tx.setting("last")?,
                tx.balance("person:X")?,
                tx.verify_journal()?,
            ))
        })
        .await
        .unwrap();
    assert_eq!(first.as_deref(), Some("kept"));
    assert_eq!(failing, None);
    assert_eq!(last.as_deref(), Some("kept"));
    assert_eq!(balance, 0);
    assert_eq!(check.postings, 0);
}

async fn when_the_commit_fails_every_job_of_the_batch_gets_the_error_and_nothing_lands(db: Db) {
    let store = db.open();
    // A trap behind the store's back: setting "trap" records a deferred foreign-key violation,
    // which the database reports only at COMMIT, after every job of the batch has succeeded.
    db.behind_the_back(
        "CREATE TABLE trap (transfer_id TEXT REFERENCES transfers (transfer_id)
             DEFERRABLE INITIALLY DEFERRED);
         CREATE TRIGGER spring AFTER INSERT ON settings WHEN new.key = 'trap'
         BEGIN INSERT INTO trap VALUES ('no such transfer'); END;",
        "CREATE TABLE trap (transfer_id TEXT COLLATE \"C\" REFERENCES transfers (transfer_id)
             DEFERRABLE INITIALLY DEFERRED);
         CREATE FUNCTION spring() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN INSERT INTO trap VALUES ('no such transfer'); RETURN NULL; END $$;
         CREATE TRIGGER spring AFTER INSERT ON settings FOR EACH ROW
         WHEN (new.key = 'trap') EXECUTE FUNCTION spring();",
    );

    let (release, holder) = hold_the_writer(&store).await;
    let mut jobs = Vec::new();
    for (queued, key) in ["before", "trap", "after"].into_iter().enumerate() {
        let writer = store.clone();
        jobs.push(tokio::spawn(async move {
            writer.write(move |tx| tx.put_setting(key, "written")).await
        }));
        wait_until_queued(&store, queued + 1).await;
    }
    release.send(()).unwrap();
    holder.await.unwrap().unwrap();

    for job in jobs {
        let answer = job.await.unwrap();
        assert!(
            matches!(&answer, Err(Error::Backend(message)) if message.starts_with("commit:")),
            "{answer:?}"
        );
    }
    for key in ["before", "trap", "after"] {
        assert_eq!(store.read(move |tx| tx.setting(key)).await, Ok(None));
    }
    store
        .write(|tx| tx.put_setting("later", "kept"))
        .await
        .expect("the writer goes on after a failed commit");
    store.close().await.unwrap();
}

/// Queues one write job per person behind a held writer, so that they share one transaction;
/// each seeds the person (with a posting) and a setting named by the ID number. Returns the
/// holding job's answer, then theirs.
async fn one_batch(store: &Store, certnos: &[&'static str]) -> Vec<Result<(), Error>> {
    let (release, holder) = hold_the_writer(store).await;
    let mut jobs = Vec::new();
    for (queued, certno) in certnos.iter().copied().enumerate() {
        let writer = store.clone();
        jobs.push(tokio::spawn(async move {
            writer
                .write(move |tx| {
                    tx.insert_persons(&[person(certno, "cross_province")])?;
                    tx.post(&posting("fund:seed", &person_account(certno), 100, "seed"))?;
                    tx.put_setting(certno, "written")
                })
                .await
        }));
        wait_until_queued(store, queued + 1).await;
    }
    release.send(()).unwrap();
    let mut answers = vec![holder.await.unwrap()];
    for job in jobs {
        answers.push(job.await.unwrap());
    }
    answers
}

/// Whether anything of `certno`'s job landed: the person, the balance or the setting.
async fn traces_of(store: &Store, certno: &'static str) -> (bool, i64, Option<String>) {
    store
        .read(move |tx| {
            Ok::<_, Error>((
                tx.person(certno)?.is_some(),
                tx.balance(&person_account(certno))?,
                tx.setting(certno)?,
            ))
        })
        .await
        .unwrap()
}

async fn a_batch_the_full_disk_refuses_leaves_no_trace_and_the_store_commits_again_after(db: Db) {
    let store = db.open();
    let mut health = store.health();
    assert_eq!(*health.borrow_and_update(), Health::Committing);
    assert_eq!(store.commit_fault(), CommitFault::Off, "off by default");

    store.set_commit_fault(CommitFault::DiskFull);
    let refused = one_batch(&store, &[CERTNO, OTHER_CERTNO]).await;
    for answer in refused {
        assert_eq!(
            answer,
            Err(Error::Unavailable(
                "commit: database or disk is full (injected)".to_owned()
            ))
        );
    }
    assert_eq!(*health.borrow_and_update(), Health::Failing);
    for certno in [CERTNO, OTHER_CERTNO] {
        assert_eq!(traces_of(&store, certno).await, (false, 0, None));
    }
    let journal = store.read(|tx| tx.verify_journal()).await.unwrap();
    assert_eq!(
        (journal.postings, journal.balance_sum_cents),
        (0, 0),
        "{journal:?}"
    );
    assert_eq!(store.write_stats().jobs_committed, 0);

    // Recovery is the next commit: the fault off, the store still says failing until one lands.
    store.set_commit_fault(CommitFault::Off);
    assert_eq!(*health.borrow_and_update(), Health::Failing);
    let retried = one_batch(&store, &[CERTNO, OTHER_CERTNO]).await;
    assert_eq!(retried, vec![Ok(()), Ok(()), Ok(())]);
    assert_eq!(*health.borrow_and_update(), Health::Committing);
    store.close().await.unwrap();

    let reopened = db.open();
    for certno in [CERTNO, OTHER_CERTNO] {
        assert_eq!(
            traces_of(&reopened, certno).await,
            (true, 100, Some("written".to_owned()))
        );
    }
    assert_eq!(
        reopened.commit_fault(),
        CommitFault::Off,
        "the fault is not stored"
    );
    reopened.close().await.unwrap();
}

async fn an_io_error_at_commit_is_unavailable_and_a_probe_finds_the_store_committing_again(db: Db) {
    let store = db.open();
    store.set_commit_fault(CommitFault::IoError);
    let refused = store.write(|tx| tx.put_setting("lost", "yes")).await;
    assert_eq!(
        refused,
        Err(Error::Unavailable(
            "commit: disk I/O error (injected)".to_owned()
        ))
    );
    assert_eq!(
        store.probe().await,
        Err(Error::Unavailable(
            "commit: disk I/O error (injected)".to_owned()
        ))
    );
    assert_eq!(*store.health().borrow(), Health::Failing);
    // Reads go on: only commits fail.
    assert_eq!(store.read(|tx| tx.setting("lost")).await, Ok(None));

    store.set_commit_fault(CommitFault::Off);
    store.probe().await.expect("the probe commits");
    assert_eq!(*store.health().borrow(), Health::Committing);
    assert_eq!(
        store.read(|tx| tx.setting("store_probe")).await,
        Ok(Some("2".to_owned())),
        "each probe writes its count, so it always changes a row"
    );
    store.close().await.unwrap();
}

async fn a_jobs_own_failure_leaves_the_store_committing_a_refused_commit_does_not(db: Db) {
    let store = db.open();
    let mut health = store.health();
    // A job that breaks the journal's balance is refused alone; the batch commits.
    let alone = store
        .write(|tx| tx.post(&posting("fund:seed", "fund:seed", 1, "seed")))
        .await;
    assert!(matches!(alone, Err(Error::Invalid(_))), "{alone:?}");
    assert!(
        !health.has_changed().unwrap(),
        "a job's own failure is not the store's"
    );
    store.set_commit_fault(CommitFault::DiskFull);
    let _ = store.probe().await;
    assert_eq!(*health.borrow_and_update(), Health::Failing);
    store.set_commit_fault(CommitFault::Off);
    store
        .write(|tx| tx.put_setting("later", "kept"))
        .await
        .unwrap();
    assert_eq!(*health.borrow_and_update(), Health::Committing);
    store.close().await.unwrap();
}

async fn a_panicking_job_resumes_its_panic_in_the_caller_and_the_writer_goes_on(db: Db) {
    let store = db.open();
    let panicking = tokio::spawn({
        let store = store.clone();
        async move {
            store
                .write(|tx| {
                    tx.put_setting("panicked", "written")?;
                    panic!("a bug in a job");
                    #[allow(unreachable_code)]
                    Ok::<(), Error>(())
                })
                .await
        }
    });
    assert!(panicking.await.unwrap_err().is_panic());

    store
        .write(|tx| tx.put_setting("after", "kept"))
        .await
        .unwrap();
    let (panicked, after) = store
        .read(|tx| Ok::<_, Error>((tx.setting("panicked")?, tx.setting("after")?)))
        .await
        .unwrap();
    assert_eq!(panicked, None);
    assert_eq!(after.as_deref(), Some("kept"));
}

async fn reopening_the_file_keeps_everything(db: Db) {
    let store = db.open();
    store
        .write(|tx| {
            tx.insert_persons(&[person(CERTNO, "cross_province")])?;
            tx.post(&posting(
                "fund:seed",
                &person_account(CERTNO),
                123_456,
                "seed",
            ))?;
            tx.insert_transfer(&transfer("T1", CERTNO, true))?;
            tx.append_event(&EventRow {
                transfer_id: "T1".to_owned(),
                seq: 0,
                at: at(5),
                kind: "Applied".to_owned(),
                from_state: "NEW".to_owned(),
                to_state: "APPLIED".to_owned(),
                detail: String::new(),
                attempt: 0,
            })?;
            tx.enqueue(&message("M1", at(10)))?;
            tx.record_processed("IN-1", &[7; 32], b"first answer", at(20))?;
            tx.put_setting("clock_offset_ms", "86400000")?;
            tx.put_certificate("CERT-1", CERTNO, r#"{"years":16}"#, at(30))
        })
        .await
        .unwrap();
    store.close().await.unwrap();

    let store = db.open();
    let seen = store
        .read(|tx| {
            Ok::<_, Error>((
                tx.person(CERTNO)?,
                tx.balance(&person_account(CERTNO))?,
                tx.transfer("T1")?,
                tx.events("T1")?,
                tx.due_messages(at(10), 10)?,
                tx.processed_message("IN-1")?,
                tx.setting("clock_offset_ms")?,
                tx.certificate("CERT-1")?,
            ))
        })
        .await
        .unwrap();
    let (person_row, balance, transfer_row, events, due, processed, setting, certificate) = seen;
    assert_eq!(person_row, Some(person(CERTNO, "cross_province")));
    assert_eq!(balance, 123_456);
    assert_eq!(transfer_row, Some(transfer("T1", CERTNO, true)));
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].seq, 1);
    assert_eq!(events[0].at, at(5));
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].msgid, "M1");
    assert_eq!(due[0].payload, b"M1");
    assert_eq!(processed.unwrap().answer, b"first answer");
    assert_eq!(setting.as_deref(), Some("86400000"));
    let certificate = certificate.unwrap();
    assert_eq!(certificate.certno, CERTNO);
    assert_eq!(certificate.issued_at, at(30));
    store.close().await.unwrap();
}

async fn one_open_transfer_per_person_is_enforced(db: Db) {
    let store = db.open();
    store
        .write(|tx| tx.insert_transfer(&transfer("T1", CERTNO, true)))
        .await
        .unwrap();

    let second = store
        .write(|tx| tx.insert_transfer(&transfer("T2", CERTNO, true)))
        .await;
    assert_eq!(
        second,
        Err(Error::Conflict("open transfer exists".to_owned()))
    );
    let same_id = store
        .write(|tx| tx.insert_transfer(&transfer("T1", OTHER_CERTNO, true)))
        .await;
    assert_eq!(
        same_id,
        Err(Error::Conflict("transfer id exists".to_owned()))
    );
    store
        .write(|tx| tx.insert_transfer(&transfer("T0", CERTNO, false)))
        .await
        .expect("a closed transfer never conflicts");

    // Once the first transfer closes, the person may start another; reopening the first is
    // then refused.
    store
        .write(|tx| {
            tx.update_transfer(&transfer("T1", CERTNO, false))?;
            tx.insert_transfer(&transfer("T2", CERTNO, true))
        })
        .await
        .unwrap();
    let reopened = store
        .write(|tx| tx.update_transfer(&transfer("T1", CERTNO, true)))
        .await;
    assert_eq!(
        reopened,
        Err(Error::Conflict("open transfer exists".to_owned()))
    );

    let (open, all, by_state) = store
        .read(|tx| {
            Ok::<_, Error>((
                tx.open_transfer_of(CERTNO)?,
                tx.transfers_of(CERTNO)?,
                tx.count_transfers_by_state()?,
            ))
        })
        .await
        .unwrap();
    assert_eq!(open.as_deref(), Some("T2"));
    assert_eq!(all.len(), 3);
    assert_eq!(
        by_state,
        vec![("APPLIED".to_owned(), 1), ("COMPLETED".to_owned(), 2)]
    );
}

async fn updating_a_transfer_that_does_not_exist_is_not_found(db: Db) {
    let store = db.open();
    let updated = store
        .write(|tx| tx.update_transfer(&transfer("missing", CERTNO, true)))
        .await;
    assert!(matches!(updated, Err(Error::NotFound(_))));
    let event = store
        .write(|tx| {
            tx.append_event(&EventRow {
                transfer_id: "missing".to_owned(),
                seq: 0,
                at: at(0),
                kind: "Applied".to_owned(),
                from_state: String::new(),
                to_state: "APPLIED".to_owned(),
                detail: String::new(),
                attempt: 0,
            })
        })
        .await;
    assert!(matches!(event, Err(Error::NotFound(_))), "{event:?}");
}

async fn posting_refuses_to_overdraw_a_person_account_and_leaves_nothing_written(db: Db) {
    let store = db.open();
    let account = person_account(CERTNO);
    store
        .write({
            let account = account.clone();
            move |tx| tx.post(&posting("fund:seed", &account, 10_000, "seed"))
        })
        .await
        .unwrap();

    // The job goes on after the refusal and succeeds: the refused posting must still leave
    // no trace, neither in the journal nor in either cached balance.
    let refusal = store
        .write({
            let account = account.clone();
            move |tx| {
                let refused = tx.post(&posting(&account, "transit:150100", 10_001, "to_transit"));
                tx.put_setting("job", "committed")?;
                Ok::<_, Error>(refused)
            }
        })
        .await
        .unwrap();
    assert_eq!(
        refusal,
        Err(Error::InsufficientFunds {
            account: account.clone()
        })
    );
    let never_funded = store
        .write(|tx| {
            tx.post(&posting(
                &person_account(OTHER_CERTNO),
                "transit:150100",
                1,
                "x",
            ))
        })
        .await;
    assert!(matches!(never_funded, Err(Error::InsufficientFunds { .. })));

    let (balance, transit, check, job) = store
        .read(move |tx| {
            Ok::<_, Error>((
                tx.balance(&account)?,
                tx.balance("transit:150100")?,
                tx.verify_journal()?,
                tx.setting("job")?,
            ))
        })
        .await
        .unwrap();
    assert_eq!(balance, 10_000);
    assert_eq!(transit, 0);
    assert_eq!(check.postings, 1);
    assert!(check.is_sound(), "{check:?}");
    assert_eq!(job.as_deref(), Some("committed"));
}

async fn a_posting_must_move_a_positive_amount_between_two_accounts(db: Db) {
    let store = db.open();
    for bad in [
        posting("fund:seed", "transit:1", 0, "seed"),
        posting("fund:seed", "transit:1", -5, "seed"),
        posting("transit:1", "transit:1", 5, "seed"),
    ] {
        let result = store.write(move |tx| tx.post(&bad)).await;
        assert!(matches!(result, Err(Error::Invalid(_))), "{result:?}");
    }
}

async fn the_journal_verifies_after_many_postings_and_all_balances_sum_to_zero(db: Db) {
    let store = db.open();
    let people: Vec<String> = (0..20).map(|index| format!("person:{index:018}")).collect();
    let mut writers = Vec::new();
    for (index, account) in people.iter().cloned().enumerate() {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            store
                .write(move |tx| {
                    let transfer_id = Some(format!("T{index}"));
                    tx.post(&posting("fund:seed", &account, 50_000, "seed"))?;
                    for step in 0..20_i64 {
                        let mut out =
                            posting(&account, "transit:150100", 1_000 + step, "to_transit");
                        out.transfer_id.clone_from(&transfer_id);
                        tx.post(&out)?;
                        let mut settle =
                            posting("transit:150100", "transit:440300", 1_000 + step, "settle");
                        settle.transfer_id.clone_from(&transfer_id);
                        tx.post(&settle)?;
                    }
                    Ok::<_, Error>(())
                })
                .await
        }));
    }
    for writer in writers {
        writer.await.unwrap().unwrap();
    }

    let (check, classes, reasons, one) = store
        .read(|tx| {
            Ok::<_, Error>((
                tx.verify_journal()?,
                tx.account_class_balances()?,
                tx.totals_by_reason()?,
                tx.balance("person:000000000000000007")?,
            ))
        })
        .await
        .unwrap();
    assert_eq!(check.postings, 20 * 41);
    assert!(check.cached_matches_journal, "{check:?}");
    assert!(check.mismatched_accounts.is_empty());
    assert_eq!(check.balance_sum_cents, 0);
    let moved_per_person: i64 = (0..20).map(|step| 1_000 + step).sum();
    assert_eq!(one, 50_000 - moved_per_person);
    assert_eq!(classes.iter().map(|(_, cents)| cents).sum::<i64>(), 0);
    assert_eq!(
        classes,
        vec![
            ("fund".to_owned(), -20 * 50_000),
            ("person".to_owned(), 20 * (50_000 - moved_per_person)),
            ("transit".to_owned(), 20 * moved_per_person),
        ]
    );
    assert_eq!(
        reasons,
        vec![
            ("seed".to_owned(), 20 * 50_000),
            ("settle".to_owned(), 20 * moved_per_person),
            ("to_transit".to_owned(), 20 * moved_per_person),
        ]
    );
}

async fn verify_journal_reports_a_cached_balance_that_drifted_from_the_journal(db: Db) {
    let store = db.open();
    store
        .write(|tx| tx.post(&posting("fund:seed", &person_account(CERTNO), 700, "seed")))
        .await
        .unwrap();
    store.close().await.unwrap();
    // Damage the cache behind the store's back, as a bug or a bad manual fix would.
    let damage = "UPDATE accounts SET balance_cents = 701 WHERE account LIKE 'person:%'";
    db.behind_the_back(damage, damage);

    let store = db.open();
    let check = store.read(|tx| tx.verify_journal()).await.unwrap();
    assert!(!check.cached_matches_journal);
    assert!(!check.is_sound());
    assert_eq!(check.mismatched_accounts, vec!["person:110105********002X"]);
    assert_eq!(check.balance_sum_cents, 1);
    store.close().await.unwrap();
}

async fn outbox_messages_come_due_in_order_and_retry_later_moves_them(db: Db) {
    let store = db.open();
    let ids = store
        .write(|tx| {
            Ok::<_, Error>([
                tx.enqueue(&message("late", at(300)))?,
                tx.enqueue(&message("early", at(100)))?,
                tx.enqueue(&message("tie", at(100)))?,
            ])
        })
        .await
        .unwrap();
    let [late, early, tie] = ids;
    let duplicate = store.write(|tx| tx.enqueue(&message("early", at(0)))).await;
    assert!(matches!(duplicate, Err(Error::Conflict(_))));

    let (due, next, pending) = store
        .read(|tx| {
            Ok::<_, Error>((
                tx.due_messages(at(200), 10)?,
                tx.next_due_at()?,
                tx.pending_messages()?,
            ))
        })
        .await
        .unwrap();
    assert_eq!(
        due.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![early, tie]
    );
    assert_eq!(next, Some(at(100)));
    assert_eq!(pending, 3);
    let (except_early, except_both) = store
        .read(move |tx| {
            Ok::<_, Error>((
                tx.due_messages_except(at(300), 1, &[early])?,
                tx.due_messages_except(at(300), 10, &[early, tie])?,
            ))
        })
        .await
        .unwrap();
    assert_eq!(
        except_early.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![tie],
        "the limit counts only the messages not excepted"
    );
    assert_eq!(
        except_both.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![late]
    );

    store
        .write(move |tx| {
            tx.message_retry_later(early, 1, at(500), "unavailable")?;
            tx.message_acknowledged(tie)?;
            tx.message_acknowledged(tie)
        })
        .await
        .unwrap();

    let (due_at_200, due_at_500, next, pending) = store
        .read(|tx| {
            Ok::<_, Error>((
                tx.due_messages(at(200), 10)?,
                tx.due_messages(at(500), 10)?,
                tx.next_due_at()?,
                tx.pending_messages()?,
            ))
        })
        .await
        .unwrap();
    assert!(due_at_200.is_empty());
    assert_eq!(
        due_at_500.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![late, early]
    );
    let retried = &due_at_500[1];
    assert_eq!(retried.attempts, 1);
    assert_eq!(retried.next_attempt_at, at(500));
    assert_eq!(retried.last_error.as_deref(), Some("unavailable"));
    assert_eq!(next, Some(at(300)));
    assert_eq!(pending, 2);
}

async fn a_processed_message_round_trips_and_cannot_be_recorded_twice(db: Db) {
    let store = db.open();
    let hash = [0xab_u8; 32];
    store
        .write(move |tx| tx.record_processed("OUT-42", &hash, b"ACCEPTED", at(7)))
        .await
        .unwrap();
    let again = store
        .write(move |tx| tx.record_processed("OUT-42", &[0; 32], b"other", at(8)))
        .await;
    assert!(matches!(again, Err(Error::Conflict(_))));

    let (found, missing) = store
        .read(|tx| {
            Ok::<_, Error>((
                tx.processed_message("OUT-42")?,
                tx.processed_message("nope")?,
            ))
        })
        .await
        .unwrap();
    let found = found.unwrap();
    assert_eq!(found.body_sha256, hash);
    assert_eq!(found.answer, b"ACCEPTED");
    assert_eq!(found.at, at(7));
    assert_eq!(missing, None);
}

async fn next_sequence_is_monotonic_across_reopen(db: Db) {
    let store = db.open();
    for expected in 1..=3 {
        assert_eq!(
            store.write(|tx| tx.next_sequence("msgid")).await,
            Ok(expected)
        );
    }
    assert_eq!(store.write(|tx| tx.next_sequence("other")).await, Ok(1));
    store.close().await.unwrap();

    let store = db.open();
    assert_eq!(store.write(|tx| tx.next_sequence("msgid")).await, Ok(4));
    store.close().await.unwrap();
}

async fn a_floored_sequence_jumps_to_the_floor_and_never_goes_back(db: Db) {
    let store = db.open();
    let next = |floor: u64| {
        let store = store.clone();
        async move {
            store
                .write(move |tx| tx.next_sequence_at_least("slot", floor))
                .await
        }
    };
    assert_eq!(
        next(50_000).await,
        Ok(50_000),
        "a new sequence starts at the floor"
    );
    assert_eq!(next(50_000).await, Ok(50_001), "the same floor: one more");
    assert_eq!(
        next(10).await,
        Ok(50_002),
        "a floor that went back changes nothing"
    );
    assert_eq!(next(60_000).await, Ok(60_000), "a later floor jumps");
    store.close().await.unwrap();
    let store = db.open();
    assert_eq!(
        store.write(|tx| tx.next_sequence_at_least("slot", 0)).await,
        Ok(60_001),
        "durable across reopen"
    );
    store.close().await.unwrap();
}

async fn opening_an_existing_database_again_migrates_nothing_and_loses_nothing(db: Db) {
    for round in 0..3 {
        let store = db.open();
        let count = store
            .write(move |tx| tx.insert_persons(&[person(&format!("{round:018}"), "")]))
            .await
            .unwrap();
        assert_eq!(count.written, 1);
        let sampled = store.read(|tx| tx.sample_persons("", 10)).await.unwrap();
        assert_eq!(sampled.len(), round + 1);
        store.close().await.unwrap();
    }
}

async fn persons_insert_if_absent_and_are_sampled_by_flow(db: Db) {
    let store = db.open();
    let first = store
        .write(|tx| {
            tx.insert_persons(&[
                person(CERTNO, "cross_province"),
                person(OTHER_CERTNO, "bank_payout"),
            ])
        })
        .await
        .unwrap();
    assert_eq!(
        first,
        InsertCount {
            written: 2,
            already_present: 0
        }
    );
    let mut changed = person(CERTNO, "cross_province");
    changed.psn_name = "李四".to_owned();
    let again = store
        .write(move |tx| tx.insert_persons(&[changed]))
        .await
        .unwrap();
    assert_eq!(
        again,
        InsertCount {
            written: 0,
            already_present: 1
        }
    );

    let mut updated = person(CERTNO, "cross_province");
    updated.arrears_cents = 2_500;
    updated.retired = true;
    store
        .write({
            let updated = updated.clone();
            move |tx| tx.update_person(&updated)
        })
        .await
        .unwrap();
    let missing = store
        .write(|tx| tx.update_person(&person("000000000000000000", "")))
        .await;
    assert!(matches!(missing, Err(Error::NotFound(_))));

    let (stored, sampled) = store
        .read(|tx| Ok::<_, Error>((tx.person(CERTNO)?, tx.sample_persons("bank_payout", 5)?)))
        .await
        .unwrap();
    assert_eq!(stored, Some(updated));
    assert_eq!(sampled, vec![person(OTHER_CERTNO, "bank_payout")]);
}

async fn events_are_numbered_per_transfer_from_one(db: Db) {
    let store = db.open();
    let event = |transfer_id: &str, seq: u32, kind: &str| EventRow {
        transfer_id: transfer_id.to_owned(),
        seq,
        at: at(i64::from(seq)),
        kind: kind.to_owned(),
        from_state: "A".to_owned(),
        to_state: "B".to_owned(),
        detail: "detail".to_owned(),
        attempt: 1,
    };
    let (first, second, other, given) = store
        .write(move |tx| {
            tx.insert_transfer(&transfer("T1", CERTNO, true))?;
            tx.insert_transfer(&transfer("T2", OTHER_CERTNO, true))?;
            Ok::<_, Error>((
                tx.append_event(&event("T1", 0, "one"))?,
                tx.append_event(&event("T1", 0, "two"))?,
                tx.append_event(&event("T2", 0, "other"))?,
                tx.append_event(&event("T1", 7, "given"))?,
            ))
        })
        .await
        .unwrap();
    assert_eq!((first, second, other, given), (1, 2, 1, 7));
    let taken = store
        .write(move |tx| tx.append_event(&event("T1", 2, "again")))
        .await;
    assert!(matches!(taken, Err(Error::Conflict(_))), "{taken:?}");

    let history = store.read(|tx| tx.events("T1")).await.unwrap();
    let kinds: Vec<_> = history.iter().map(|e| (e.seq, e.kind.as_str())).collect();
    assert_eq!(kinds, vec![(1, "one"), (2, "two"), (7, "given")]);
}

async fn open_transfers_due_before_a_day_are_the_overdue_ones(db: Db) {
    let store = db.open();
    store
        .write(|tx| {
            let mut due_early = transfer("early", CERTNO, true);
            due_early.whole_process_due_on = Some(day("2026-01-10"));
            let mut due_late = transfer("late", OTHER_CERTNO, true);
            due_late.whole_process_due_on = Some(day("2026-02-10"));
            let mut closed = transfer("closed", CERTNO, false);
            closed.whole_process_due_on = Some(day("2026-01-01"));
            let mut undated = transfer("undated", "000000000000000000", true);
            undated.whole_process_due_on = None;
            for row in [due_early, due_late, closed, undated] {
                tx.insert_transfer(&row)?;
            }
            Ok::<_, Error>(())
        })
        .await
        .unwrap();

    let ids = |rows: Vec<TransferRow>| {
        rows.into_iter()
            .map(|row| row.transfer_id)
            .collect::<Vec<_>>()
    };
    let on_the_tenth = store
        .read(|tx| tx.open_transfers_due_before(day("2026-01-10"), 10))
        .await
        .unwrap();
    assert!(
        on_the_tenth.is_empty(),
        "due on the day itself is not overdue"
    );
    let in_march = store
        .read(|tx| tx.open_transfers_due_before(day("2026-03-01"), 10))
        .await
        .unwrap();
    assert_eq!(ids(in_march), vec!["early", "late"]);
    let limited = store
        .read(|tx| tx.open_transfers_due_before(day("2026-03-01"), 1))
        .await
        .unwrap();
    assert_eq!(ids(limited), vec!["early"]);
}

async fn certificates_are_stored_once_per_code(db: Db) {
    let store = db.open();
    store
        .write(|tx| tx.put_certificate("C1", CERTNO, "{}", at(1)))
        .await
        .unwrap();
    store
        .write(|tx| tx.put_certificate("C1", CERTNO, "{}", at(2)))
        .await
        .expect("storing the same certificate again is harmless");
    let taken = store
        .write(|tx| tx.put_certificate("C1", OTHER_CERTNO, "{}", at(3)))
        .await;
    assert!(matches!(taken, Err(Error::Conflict(_))));
    let stored = store
        .read(|tx| tx.certificate("C1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.issued_at, at(1));
}

async fn a_read_refuses_to_write(db: Db) {
    let store = db.open();
    let written = store.read(|tx| tx.put_setting("k", "v")).await;
    assert!(matches!(written, Err(Error::Backend(_))), "{written:?}");
}

#[tokio::test]
async fn an_in_memory_store_refuses_to_write_in_a_read_and_writes_again_after() {
    let in_memory = Store::open_in_memory().unwrap();
    let written = in_memory.read(|tx| tx.put_setting("k", "v")).await;
    assert!(matches!(written, Err(Error::Backend(_))), "{written:?}");
    // The writer's connection is writable again after the read.
    in_memory
        .write(|tx| tx.put_setting("k", "v"))
        .await
        .unwrap();
    assert_eq!(
        in_memory
            .read(|tx| tx.setting("k"))
            .await
            .unwrap()
            .as_deref(),
        Some("v")
    );
}

async fn closing_finishes_queued_writes_and_then_refuses_new_ones(db: Db) {
    let store = db.open();
    let (release, holder) = hold_the_writer(&store).await;
    let queued = tokio::spawn({
        let store = store.clone();
        async move { store.write(|tx| tx.put_setting("queued", "kept")).await }
    });
    wait_until_queued(&store, 1).await;
    let handle = store.clone();
    let closing = tokio::spawn(store.close());
    wait_until_queued(&handle, 2).await;
    release.send(()).unwrap();
    holder.await.unwrap().unwrap();

    closing.await.unwrap().unwrap();
    assert_eq!(queued.await.unwrap(), Ok(()));
    assert_eq!(
        handle.write(|tx| tx.put_setting("late", "refused")).await,
        Err(Error::Closed)
    );
    assert_eq!(
        handle.read(|tx| tx.setting("queued")).await,
        Err(Error::Closed)
    );
    handle.close().await.expect("closing twice is harmless");
}

async fn options_read_from_configuration_default_to_full_durability(db: Db) {
    let options: Options = serde_json::from_str(r#"{ "batch_limit": 64 }"#).unwrap();
    assert_eq!(options.synchronous, Synchronous::Full);
    assert_eq!(options.batch_limit, 64);
    let normal: Options = serde_json::from_str(r#"{ "synchronous": "normal" }"#).unwrap();
    assert_eq!(normal.synchronous, Synchronous::Normal);

    let refused = db.open_with(&Options {
        batch_limit: 0,
        ..Options::default()
    });
    assert!(matches!(refused, Err(Error::Invalid(_))));
}

async fn withdrawing_messages_removes_only_that_kind_for_that_transfer(db: Db) {
    let store = db.open();
    let withdrawn = store
        .write(|tx| -> Result<u64, Error> {
            tx.enqueue(&message("M1", at(0)))?;
            let mut other_kind = message("M2", at(0));
            other_kind.kind = "Abort".to_owned();
            tx.enqueue(&other_kind)?;
            let mut other_transfer = message("M3", at(0));
            other_transfer.transfer_id = "T2".to_owned();
            tx.enqueue(&other_transfer)?;
            tx.withdraw_messages("T1", "RequestTransferOut")
        })
        .await
        .expect("write");
    assert_eq!(withdrawn, 1);
    let left = store
        .read(|tx| tx.due_messages(at(10), 10))
        .await
        .expect("read");
    let msgids: Vec<_> = left.iter().map(|m| m.msgid.as_str()).collect();
    assert_eq!(msgids, vec!["M2", "M3"]);
}

async fn parked_messages_are_listed_apart_from_due_ones_and_keep_their_attempts(db: Db) {
    let store = db.open();
    let parked = store
        .write(|tx| -> Result<u64, Error> {
            tx.enqueue(&message("M1", at(0)))?;
            let mut abort = message("M2", at(0));
            abort.kind = "ABORT".to_owned();
            let id = tx.enqueue(&abort)?;
            tx.message_retry_later(id, 3, at(5), "infcode 1002")?;
            tx.park_messages("T1", "ABORT", at(1_000_000), "needs an operator")
        })
        .await
        .expect("write");
    assert_eq!(parked, 1);
    let (due, listed) = store
        .read(|tx| -> Result<_, Error> {
            Ok((
                tx.due_messages(at(10), 10)?,
                tx.messages_due_from(at(500_000), 10)?,
            ))
        })
        .await
        .expect("read");
    let due: Vec<_> = due.iter().map(|m| m.msgid.as_str()).collect();
    assert_eq!(due, vec!["M1"], "a parked message is not due");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].msgid, "M2");
    assert_eq!(listed[0].attempts, 3, "parking keeps the count");
    assert_eq!(listed[0].last_error.as_deref(), Some("needs an operator"));
}

async fn overdue_queries_filter_by_state_and_count_without_loading(db: Db) {
    let store = db.open();
    let (listed, counted) = store
        .write(|tx| -> Result<(Vec<String>, u64), Error> {
            for (id, certno, state) in [
                ("A", "c1", "APPLIED"),
                ("B", "c2", "IN_TRANSIT"),
                ("C", "c3", "APPLIED"),
            ] {
                let mut row = transfer(id, certno, true);
                row.state = state.to_owned();
                row.whole_process_due_on = Some(day("2026-12-01"));
                tx.insert_transfer(&row)?;
            }
            let listed = tx
                .open_transfers_in_state_due_before("IN_TRANSIT", day("2026-12-31"), 1)?
                .into_iter()
                .map(|row| row.transfer_id)
                .collect();
            Ok((
                listed,
                tx.count_open_transfers_due_before(day("2026-12-31"))?,
            ))
        })
        .await
        .expect("write");
    assert_eq!(
        listed,
        vec!["B".to_owned()],
        "the other states cannot crowd it out"
    );
    assert_eq!(counted, 3);
}

async fn counting_a_state_between_two_days_takes_the_first_and_not_the_second(db: Db) {
    let store = db.open();
    let counted = store
        .write(|tx| -> Result<u64, Error> {
            for (id, certno, state, due, open) in [
                ("A", "c1", "APPLIED", "2026-03-22", true),
                ("B", "c2", "APPLIED", "2026-03-23", true),
                ("C", "c3", "APPLIED", "2026-03-27", true),
                ("D", "c4", "APPLIED", "2026-03-28", true),
                ("E", "c5", "IN_TRANSIT", "2026-03-24", true),
                ("F", "c6", "APPLIED", "2026-03-24", false),
            ] {
                let mut row = transfer(id, certno, open);
                row.state = state.to_owned();
                row.whole_process_due_on = Some(day(due));
                tx.insert_transfer(&row)?;
            }
            tx.count_open_transfers_in_state_due_between(
                "APPLIED",
                day("2026-03-23"),
                day("2026-03-28"),
            )
        })
        .await
        .expect("write");
    assert_eq!(
        counted, 2,
        "B and C: open, in the state, from the first day, before the second"
    );
}

async fn a_table_walk_pages_through_every_transfer_in_id_order(db: Db) {
    let store = db.open();
    let pages = store
        .write(|tx| -> Result<Vec<Vec<String>>, Error> {
            for (id, certno) in [
                ("C", "c3"),
                ("A", "c1"),
                ("E", "c5"),
                ("B", "c2"),
                ("D", "c4"),
            ] {
                tx.insert_transfer(&transfer(id, certno, id != "C"))?;
            }
            let mut pages = Vec::new();
            let mut after = String::new();
            loop {
                let page: Vec<String> = tx
                    .transfers_after(&after, 2)?
                    .into_iter()
                    .map(|row| row.transfer_id)
                    .collect();
                let Some(last) = page.last().cloned() else {
                    break;
                };
                after = last;
                pages.push(page);
            }
            Ok(pages)
        })
        .await
        .expect("write");
    assert_eq!(
        pages,
        vec![vec!["A", "B"], vec!["C", "D"], vec!["E"]],
        "open and closed alike, each once"
    );
}

async fn open_transfers_in_a_state_are_found_with_or_without_a_due_date(db: Db) {
    let store = db.open();
    let found = store
        .write(|tx| -> Result<Vec<String>, Error> {
            for (id, certno, state, due, open) in [
                ("A", "c1", "CREDITED", None, true),
                ("B", "c2", "CREDITED", Some(day("2026-12-01")), true),
                ("C", "c3", "APPLIED", None, true),
                ("D", "c4", "CREDITED", None, false),
            ] {
                let mut row = transfer(id, certno, open);
                row.state = state.to_owned();
                row.whole_process_due_on = due;
                tx.insert_transfer(&row)?;
            }
            Ok(tx
                .open_transfers_in_state("CREDITED", 10)?
                .into_iter()
                .map(|row| row.transfer_id)
                .collect())
        })
        .await
        .expect("write");
    assert_eq!(found, vec!["A".to_owned(), "B".to_owned()]);
}

/// Replicas of one bureau: several stores open one PostgreSQL database (only PostgreSQL may be
/// shared; a SQLite store claims nothing and always holds every lease).
mod replicas {
    use super::*;

    /// Two stores on one fresh database, or `None` when no server is configured.
    fn two_replicas(test: &str) -> Option<(Db, Store, Store)> {
        let db = Db::postgres(test)?;
        let (first, second) = (db.open(), db.open());
        assert!(first.shared_by_replicas() && second.shared_by_replicas());
        Some((db, first, second))
    }

    fn ids(messages: &[yibao_store::OutboxMessage]) -> Vec<i64> {
        messages.iter().map(|message| message.id).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn replicas_claim_disjoint_messages_until_a_claim_ends_or_expires() {
        let Some((_db, first, second)) = two_replicas("claims") else {
            return;
        };
        first
            .write(|tx| {
                (0..10).try_for_each(|n| tx.enqueue(&message(&format!("M{n}"), at(n))).map(drop))
            })
            .await
            .unwrap();
        let claim = |store: &Store, claimant: &'static str, now: i64, limit: u32| {
            let store = store.clone();
            async move {
                store
                    .write(move |tx| {
                        tx.claim_due_messages(at(now), limit, &[], claimant, at(now + 1_000))
                    })
                    .await
                    .unwrap()
            }
        };
        let a = claim(&first, "a", 100, 6).await;
        let b = claim(&second, "b", 100, 6).await;
        assert_eq!(a.len(), 6);
        assert_eq!(b.len(), 4, "only what the first did not claim");
        assert!(
            ids(&a).iter().all(|id| !ids(&b).contains(id)),
            "{a:?} {b:?}"
        );
        assert!(claim(&first, "a", 200, 10).await.is_empty(), "all claimed");

        // One of the first replica's messages is rescheduled (its claim ends); the rest stay
        // claimed until their lease runs out, when the other replica takes them over.
        let rescheduled = a[0].id;
        first
            .write(move |tx| tx.message_retry_later(rescheduled, 1, at(150), "unavailable"))
            .await
            .unwrap();
        assert_eq!(ids(&claim(&second, "b", 300, 10).await), vec![rescheduled]);
        let taken_over = claim(&second, "b", 1_200, 10).await;
        assert_eq!(taken_over.len(), 9, "every expired claim: {taken_over:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn one_replica_at_a_time_holds_a_lease_until_it_expires() {
        let Some((_db, first, second)) = two_replicas("lease") else {
            return;
        };
        let take = |store: &Store, holder: &'static str, now: i64| {
            let store = store.clone();
            async move {
                store
                    .write(move |tx| tx.take_lease("sweep", holder, at(now), at(now + 5_000)))
                    .await
                    .unwrap()
            }
        };
        assert!(take(&first, "a", 0).await);
        assert!(!take(&second, "b", 1_000).await, "held by a");
        assert!(take(&first, "a", 4_000).await, "renewed by its holder");
        assert!(!take(&second, "b", 8_000).await, "renewed until 9 s");
        assert!(take(&second, "b", 9_000).await, "expired: taken over");
        assert!(!take(&first, "a", 9_500).await);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sequences_shared_by_replicas_never_repeat() {
        let Some((_db, first, second)) = two_replicas("sequences") else {
            return;
        };
        let mut tasks = Vec::new();
        for index in 0..100 {
            let store = if index % 2 == 0 { &first } else { &second }.clone();
            tasks.push(tokio::spawn(async move {
                store.write(|tx| tx.next_sequence("msgid")).await.unwrap()
            }));
        }
        let mut numbers = Vec::new();
        for task in tasks {
            numbers.push(task.await.unwrap());
        }
        numbers.sort_unstable();
        assert_eq!(numbers, (1..=100).collect::<Vec<u64>>());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_message_two_replicas_receive_at_once_is_handled_once_and_answered_from_its_record() {
        let Some((db, first, second)) = two_replicas("msgid") else {
            return;
        };
        // The first replica handles the message and has not committed yet.
        let (release, held) = std_mpsc::channel::<()>();
        let (recorded, handling) = tokio::sync::oneshot::channel();
        let handler = tokio::spawn({
            let first = first.clone();
            async move {
                first
                    .write(move |tx| {
                        assert_eq!(tx.processed_message("IN-7")?, None);
                        tx.record_processed("IN-7", &[1; 32], b"first answer", at(1))?;
                        recorded.send(()).unwrap();
                        let _ = held.recv();
                        Ok::<_, Error>(())
                    })
                    .await
            }
        });
        handling.await.unwrap();
        // The second replica's look-up waits for the first to commit, then finds its record.
        let second_look = tokio::spawn({
            let second = second.clone();
            async move { second.write(|tx| tx.processed_message("IN-7")).await }
        });
        until_a_session_waits_on_a_lock(&db);
        assert!(
            !second_look.is_finished(),
            "the look-up waits for the first replica"
        );
        release.send(()).unwrap();
        handler.await.unwrap().unwrap();
        let found = second_look
            .await
            .unwrap()
            .unwrap()
            .expect("the first answer");
        assert_eq!(found.answer, b"first answer");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_transfer_read_to_be_changed_waits_for_the_other_replicas_change() {
        let Some((db, first, second)) = two_replicas("transfer_lock") else {
            return;
        };
        first
            .write(|tx| tx.insert_transfer(&transfer("T1", CERTNO, true)))
            .await
            .unwrap();
        let (release, held) = std_mpsc::channel::<()>();
        let (read, reading) = tokio::sync::oneshot::channel();
        let changer = tokio::spawn({
            let first = first.clone();
            async move {
                first
                    .write(move |tx| {
                        tx.transfer("T1")?;
                        let mut moved = transfer("T1", CERTNO, true);
                        moved.state = "REQUESTED".to_owned();
                        tx.update_transfer(&moved)?;
                        read.send(()).unwrap();
                        let _ = held.recv();
                        Ok::<_, Error>(())
                    })
                    .await
            }
        });
        reading.await.unwrap();
        let other = tokio::spawn({
            let second = second.clone();
            async move { second.write(|tx| tx.transfer("T1")).await }
        });
        until_a_session_waits_on_a_lock(&db);
        assert!(!other.is_finished(), "the second replica waits for the row");
        release.send(()).unwrap();
        changer.await.unwrap().unwrap();
        let seen = other.await.unwrap().unwrap().unwrap();
        assert_eq!(
            seen.state, "REQUESTED",
            "it sees the first replica's change"
        );
    }
}
