//! The suite's own message log: every platform message it sent to the target and every one it
//! received, with what came of it. A case's failure shows the messages of its transfers from
//! here; nothing in it is personal data (no ID numbers or names are written).

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Which way a message went, seen from the suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Way {
    /// The suite sent it to the target.
    ToTarget,
    /// The target sent it to the suite.
    FromTarget,
}

impl Way {
    /// An arrow for the text and HTML reports.
    #[must_use]
    pub fn arrow(self) -> &'static str {
        match self {
            Way::ToTarget => "suite → target",
            Way::FromTarget => "target → suite",
        }
    }
}

/// One message.
#[derive(Clone, Debug, Serialize)]
pub struct Exchange {
    /// When the suite sent or received it.
    pub at: DateTime<Utc>,
    /// Which way.
    pub way: Way,
    /// The RPC.
    pub rpc: &'static str,
    /// The msgid (empty for a batch).
    pub msgid: String,
    /// The infno.
    pub infno: String,
    /// The transfer it is about.
    pub transfer_id: String,
    /// What came of it: the answer read or given, or the status.
    pub outcome: String,
}

/// The log, shared by the cases and the suite's server.
#[derive(Clone, Debug, Default)]
pub struct ExchangeLog {
    entries: Arc<Mutex<Vec<Exchange>>>,
}

/// The most messages kept; a run of the suite sends a few hundred.
const MAX_ENTRIES: usize = 100_000;

impl ExchangeLog {
    /// Keeps a message.
    pub fn keep(&self, exchange: Exchange) {
        if let Ok(mut entries) = self.entries.lock()
            && entries.len() < MAX_ENTRIES
        {
            entries.push(exchange);
        }
    }

    /// The messages about any of `transfer_ids`, in the order they happened.
    #[must_use]
    pub fn of(&self, transfer_ids: &[String]) -> Vec<Exchange> {
        self.entries
            .lock()
            .map(|entries| {
                entries
                    .iter()
                    .filter(|e| transfer_ids.contains(&e.transfer_id))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }
}
