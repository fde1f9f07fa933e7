//! A bureau's durable ledger: persons, the double-entry journal, transfers and their history,
//! the outbox of messages to peers, the log of processed incoming messages, and a few sequences
//! and settings.
//!
//! **The seam.** Services never see SQL. They call [`Store::write`] or [`Store::read`] with a
//! closure that receives `&mut dyn` [`Tx`], an object-safe, synchronous trait of storage
//! operations; everything the closure does lands together or not at all. A protocol step — the
//! state change, its journal postings, its outbox rows and the processed-message record — is one
//! such closure. SQLite ([`Store::open`]) and PostgreSQL ([`Store::open_url`]) implement `Tx`;
//! service code does not know which it runs on. Being synchronous, a transaction can never be
//! held across an `.await`.
//!
//! **Group commit.** One writer thread owns the write connection. It drains up to
//! [`Options::batch_limit`] queued closures, runs each in its own savepoint inside one
//! transaction (a failing closure rolls back only its own writes), commits once, and only then
//! answers them all. Thousands of protocol steps a second thus share a few hundred fsyncs instead
//! of needing one each, and nothing is acknowledged before it is durable. Reads run on their own
//! connections beside the writer (WAL).
//!
//! **A store that cannot commit.** When the disk is full or failing, SQLite refuses the commit
//! and undoes the whole transaction; every job of the batch is answered [`Error::Unavailable`],
//! nothing is half-written, and [`Store::health`] turns [`Health::Failing`] until a transaction
//! commits again (the next batch, or a [`Store::probe`]). [`Store::set_commit_fault`] makes this
//! happen on purpose, through SQLite's commit hook, for tests.
//!
//! **Why `synchronous=FULL`.** An answer we give a peer (or an outbox row we claim to have)
//! must survive both a process kill and a power loss: the peer will never send that message
//! again. In WAL mode `synchronous=NORMAL` skips the fsync at commit and survives only a process
//! kill, so it is available ([`Synchronous::Normal`]) for benchmarks but never the default.
//!
//! **Encoding.** Money is INTEGER cents, times are INTEGER Unix milliseconds in UTC (sub-millisecond
//! precision is dropped), calendar days are TEXT `YYYY-MM-DD`. Rows are primitive: this crate
//! does not depend on the domain crate, and the service owns the meaning of codes and JSON
//! documents. `Debug` and error messages mask ID numbers and names.
//!
//! **PostgreSQL: what differs.** The same writer thread and group commit (`BEGIN`, a savepoint
//! per job, one `COMMIT`) over one connection, reads on a pool of `REPEATABLE READ READ ONLY`
//! connections, migrations of their own (`migrations/postgres/`, versioned in `schema_version`,
//! applied under an advisory lock). Money is BIGINT cents and times BIGINT milliseconds, as in
//! SQLite, so rows round-trip exactly; days are DATE; text keys sort byte-wise (`COLLATE "C"`).
//! Durability is the server's (`synchronous_commit`), not [`Synchronous`]. A failed statement
//! aborts a PostgreSQL transaction, so every operation that may break a constraint runs in a
//! savepoint of its own or as `ON CONFLICT DO NOTHING`, and a job that goes on past any other
//! failed statement is undone and answered with its error. Only person accounts have a cached
//! balance row; the other accounts' balances are summed from the journal when read, so the
//! transit and fund accounts every posting touches are not a row lock every writer queues on.
//! The commit fault seam rolls back instead of committing. Several stores may share one database
//! (replicas of a bureau): a write transaction locks a transfer's row when it reads it, takes an
//! advisory lock on a msgid before looking it up, and numbers sequences and events under row
//! locks; a step that loses a deadlock, or waits on a lock longer than 10 s, is undone and
//! answered [`Error::Unavailable`], which its caller retries.
//!
//! **Architecture Invariant:** a person has at most one open transfer (a unique partial index),
//! a `person:` account never goes negative, and every posting moves a positive amount between
//! two different accounts, so the balances of all accounts always sum to zero.

mod error;
mod fault;
mod job;
mod mask;
mod postgres;
mod rows;
mod sqlite;
mod store;
mod tx;
mod writer;

pub use error::Error;
pub use fault::{CommitFault, Health};
pub use postgres::connection::mask_database_url;
pub use rows::{
    CertificateRow, EventRow, InsertCount, JournalCheck, NewOutboxMessage, OutboxMessage,
    PersonRow, Posting, ProcessedMessage, TransferRow,
};
pub use sqlite::connection::Synchronous;
pub use store::{Options, Store, WriteStats};
pub use tx::Tx;
