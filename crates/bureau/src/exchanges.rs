//! The message journal: every platform message this bureau sent or received — msgid, infno,
//! regions, transfer, attempt, time, what came of it (the infcode answered, or the status or
//! failure the sender saw), for a sent message how long its round trip to the peer took, and
//! the fault a rule injected, if any — kept in memory, the newest
//! [`MAX_ENTRIES`], for `yibao journal TRANSFER_ID` (AdminService.GetMessageJournal), which
//! prints a transfer's exchange at both bureaus side by side. A restart starts it empty: it is
//! a window onto what the bureau is doing, not a record (the transfer's history is that).
//!
//! The round trips are how `yibao load` tells time spent at the peer from time spent here when
//! the peer is someone else's bureau: the peer has no admin API, so it is measured from this
//! side, one attempt at a time (a [`Duration`] on the entry; nothing allocated for it).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// The most entries kept; the oldest go first.
pub const MAX_ENTRIES: usize = 20_000;

/// Which way a journal entry's message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    /// This bureau sent it.
    Sent,
    /// This bureau received it.
    Received,
}

/// One message, sent or received.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// When (the service clock): a received message when it arrived; a sent one when the
    /// attempt ended (its answer read, or the failure seen), so it left at `at - round_trip`.
    pub at: DateTime<Utc>,
    /// Sent or received.
    pub way: Way,
    /// The message kind (outbox spelling).
    pub kind: &'static str,
    /// The msgid.
    pub msgid: String,
    /// The sender's region.
    pub sender: String,
    /// The receiver's region.
    pub receiver: String,
    /// The transfer.
    pub transfer_id: String,
    /// The attempt (sent messages: 1 for the first; received: 0).
    pub attempt: u32,
    /// What came of it.
    pub outcome: Outcome,
    /// The fault a rule injected, if any.
    pub fault: String,
    /// Sent: how long the attempt took from sending the message to reading its answer (or the
    /// failure); the messages of one batch RPC share its time. None for a received message and
    /// for one not sent to the peer (parked before sending, answered by a fault rule, a bank
    /// payout).
    pub round_trip: Option<Duration>,
}

/// What came of a message: kept as a value, worded only when asked for (this is on every
/// message's path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Received: answered with this infcode.
    Infcode(i32),
    /// Sent: the peer's answer was read.
    Answered,
    /// No answer read (sent: retried or parked, why; received: the status answered).
    Failed(String),
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Infcode(code) => write!(f, "infcode {code}"),
            Outcome::Answered => f.write_str("answered"),
            Outcome::Failed(why) => f.write_str(why),
        }
    }
}

/// The journal: a bounded ring of entries.
#[derive(Debug, Default)]
pub struct MessageJournal {
    entries: Mutex<VecDeque<Entry>>,
}

impl MessageJournal {
    /// Keeps an entry, dropping the oldest beyond [`MAX_ENTRIES`].
    pub fn keep(&self, entry: Entry) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= MAX_ENTRIES {
                entries.pop_front();
            }
            entries.push_back(entry);
        }
    }

    /// The entries about one transfer, oldest first.
    pub fn of(&self, transfer_id: &str) -> Vec<Entry> {
        self.entries
            .lock()
            .map(|entries| {
                entries
                    .iter()
                    .filter(|entry| entry.transfer_id == transfer_id)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(transfer_id: &str, n: u32) -> Entry {
        Entry {
            at: DateTime::<Utc>::default(),
            way: Way::Sent,
            kind: "DELIVER_FORM",
            msgid: format!("m{n}"),
            sender: "150100".to_owned(),
            receiver: "540100".to_owned(),
            transfer_id: transfer_id.to_owned(),
            attempt: n,
            outcome: Outcome::Infcode(0),
            fault: String::new(),
            round_trip: Some(Duration::from_millis(u64::from(n))),
        }
    }

    #[test]
    fn the_journal_keeps_each_transfers_messages_in_order_and_stays_bounded() {
        let journal = MessageJournal::default();
        journal.keep(entry("a", 1));
        journal.keep(entry("b", 1));
        journal.keep(entry("a", 2));
        let of_a: Vec<u32> = journal.of("a").iter().map(|e| e.attempt).collect();
        assert_eq!(of_a, [1, 2]);
        for n in 0..MAX_ENTRIES as u32 {
            journal.keep(entry("c", n));
        }
        assert!(journal.of("a").is_empty(), "the oldest went first");
        assert_eq!(journal.of("c").len(), MAX_ENTRIES);
    }
}
