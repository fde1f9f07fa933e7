//! The latency split of a run that drives one yibao bureau whose platform peer is the user's
//! service (`--only`): for sampled transfers, end-to-end latency = time at the peer + time in
//! yibao. The peer has no admin API, so its share is measured from yibao's side, in the
//! bureau's message journal (`AdminService.GetMessageJournal`): every message the bureau sent
//! carries its round trip, and the time it then waited for the peer's next message is the
//! peer's too.
//!
//! For one transfer, [`split`] takes the union of
//! - each attempt of a message yibao sent: from sending it to reading the answer (or the
//!   failure), its journal `round_trip` ending at its `at`;
//! - before each message yibao received: from the end of the last attempt before it (the peer
//!   had answered, and was working towards this message) to its arrival;
//!
//! and calls that "at the peer" (the network included; at most the whole); the rest of the
//! end-to-end latency the load generator measured (application to terminal state) is "in
//! yibao" (the generator's own calls to yibao included). Retries' backoff pauses are yibao's
//! time: it chose to wait.
//!
//! One transfer in [`crate::LoadOptions::split_every`] is sampled when it ends as its flow
//! expects; [`Sampler::offer`] never waits (a sample that finds the queue full is dropped and
//! counted). [`run`] reads each sample's journal shortly after the transfer ended: the entry of
//! a received message is written just after the step it caused, so a transfer-in bureau's
//! completed transfer is looked at again (bounded) until its form is in the journal.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use yibao_harness::AdminClient;
use yibao_proto::admin::v1::{GetMessageJournalRequest, MessageJournalEntry, MessageWay};
use yibao_proto::common::v1::TransferState;

use crate::metrics::{Latency, LatencySummary};
use crate::options::Only;

/// How many samples wait for the splitter at most; more are dropped (and counted).
pub const QUEUE: usize = 10_000;
/// How long after a transfer ended its journal is read first.
const FIRST_LOOK_AFTER: Duration = Duration::from_millis(50);
/// How long before a journal that is not complete yet is read again.
const LOOK_AGAIN_AFTER: Duration = Duration::from_millis(50);
/// The most reads of one transfer's journal.
const MAX_LOOKS: u32 = 20;
/// The deadline of one `GetMessageJournal` call.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// One transfer's end-to-end latency, split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Split {
    /// With the peer: yibao's messages' round trips, and waiting for the peer's messages.
    pub at_peer: Duration,
    /// The rest of the end-to-end latency.
    pub in_yibao: Duration,
}

/// Splits `end_to_end` by the transfer's journal at yibao's bureau (see the module docs). The
/// two parts always sum to `end_to_end`.
pub fn split(entries: &[MessageJournalEntry], end_to_end: Duration) -> Split {
    let mut events: Vec<(i128, &MessageJournalEntry)> = entries
        .iter()
        .filter_map(|entry| Some((nanos_of(entry.at.as_ref()?), entry)))
        .collect();
    events.sort_by_key(|(at, _)| *at);
    let mut spans: Vec<(i128, i128)> = Vec::with_capacity(events.len());
    let mut last_attempt_ended: Option<i128> = None;
    for (at, entry) in events {
        match MessageWay::try_from(entry.way) {
            Ok(MessageWay::Sent) => {
                let Some(trip) = entry.round_trip.as_ref() else {
                    continue;
                };
                let took = i128::from(trip.seconds) * 1_000_000_000 + i128::from(trip.nanos);
                spans.push((at - took.max(0), at));
                last_attempt_ended = Some(last_attempt_ended.map_or(at, |last| last.max(at)));
            }
            Ok(MessageWay::Received) => {
                if let Some(from) = last_attempt_ended.filter(|from| *from < at) {
                    spans.push((from, at));
                }
            }
            _ => {}
        }
    }
    let covered = u64::try_from(union_length(spans)).unwrap_or(u64::MAX);
    let at_peer = Duration::from_nanos(covered).min(end_to_end);
    Split {
        at_peer,
        in_yibao: end_to_end - at_peer,
    }
}

/// The total length of the union of `spans` (start, end), in nanoseconds.
fn union_length(mut spans: Vec<(i128, i128)>) -> i128 {
    spans.sort_unstable();
    let mut total = 0;
    let mut current: Option<(i128, i128)> = None;
    for (start, end) in spans {
        current = match current {
            Some((from, to)) if start <= to => Some((from, to.max(end))),
            Some((from, to)) => {
                total += to - from;
                Some((start, end))
            }
            None => Some((start, end)),
        };
    }
    total + current.map_or(0, |(from, to)| to - from)
}

/// A protobuf timestamp in nanoseconds since the epoch.
fn nanos_of(at: &prost_types::Timestamp) -> i128 {
    i128::from(at.seconds) * 1_000_000_000 + i128::from(at.nanos)
}

/// A transfer to split.
#[derive(Debug)]
pub struct Sample {
    /// The transfer.
    transfer_id: String,
    /// The terminal state it reached.
    state: TransferState,
    /// Its end-to-end latency as the generator measured it.
    end_to_end: Duration,
    /// When it ended.
    ended: Instant,
}

/// Picks one transfer in `every` for the splitter, without waiting.
#[derive(Debug)]
pub struct Sampler {
    /// One in this many is sampled.
    every: u64,
    /// Transfers offered so far.
    offered: AtomicU64,
    /// Samples on their way to the splitter.
    queue: mpsc::Sender<Sample>,
    /// Samples dropped because the queue was full.
    dropped: AtomicU64,
}

impl Sampler {
    /// A sampler of one in `every`, and the receiving end for [`run`].
    pub fn new(every: u64) -> (Sampler, mpsc::Receiver<Sample>) {
        let (queue, samples) = mpsc::channel(QUEUE);
        let sampler = Sampler {
            every: every.max(1),
            offered: AtomicU64::new(0),
            queue,
            dropped: AtomicU64::new(0),
        };
        (sampler, samples)
    }

    /// A transfer that ended as its flow expects, in `state` after `end_to_end`: sampled if
    /// it is the one in `every` (its id is copied only then).
    pub fn offer(&self, transfer_id: &str, state: TransferState, end_to_end: Duration) {
        let offered = self.offered.fetch_add(1, Ordering::Relaxed);
        if !offered.is_multiple_of(self.every) {
            return;
        }
        let sample = Sample {
            transfer_id: transfer_id.to_owned(),
            state,
            end_to_end,
            ended: Instant::now(),
        };
        if self.queue.try_send(sample).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Samples dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The split of the sampled transfers, for the report.
#[derive(Clone, Debug, Serialize)]
pub struct PeerSplit {
    /// The bureau measured: yibao's `transfer-out` or `transfer-in`.
    pub bureau: &'static str,
    /// One transfer in this many was sampled.
    pub every: u64,
    /// Sampled transfers whose latency was split (the figures below).
    pub sampled: u64,
    /// Sampled transfers that exchanged no platform message (not in the figures).
    pub no_messages: u64,
    /// Sampled transfers whose journal could not be read whole (not in the figures).
    pub unread: u64,
    /// Transfers not sampled because the splitter was behind.
    pub dropped: u64,
    /// End-to-end latency of the sampled transfers.
    pub end_to_end: LatencySummary,
    /// Of it, time at the peer.
    pub at_peer: LatencySummary,
    /// Of it, time in yibao.
    pub in_yibao: LatencySummary,
    /// The sampled transfers' end-to-end latencies added up, in microseconds: exactly
    /// `at_peer_total_us + in_yibao_total_us`.
    pub end_to_end_total_us: u64,
    /// Their time at the peer added up, in microseconds.
    pub at_peer_total_us: u64,
    /// Their time in yibao added up, in microseconds.
    pub in_yibao_total_us: u64,
    /// `at_peer_total_us / end_to_end_total_us`, from 0 to 1.
    pub at_peer_share: f64,
}

/// What the splitter counted.
#[derive(Debug, Default)]
struct Measured {
    end_to_end: Latency,
    at_peer: Latency,
    in_yibao: Latency,
    totals_us: [u64; 3],
    sampled: u64,
    no_messages: u64,
    unread: u64,
}

impl Measured {
    fn record(&mut self, end_to_end: Duration, split: Split) {
        let micros = |length: Duration| u64::try_from(length.as_micros()).unwrap_or(u64::MAX);
        let total = micros(end_to_end);
        let at_peer = micros(split.at_peer).min(total);
        self.end_to_end.record(end_to_end);
        self.at_peer.record(split.at_peer);
        self.in_yibao.record(split.in_yibao);
        for (sum, value) in self
            .totals_us
            .iter_mut()
            .zip([total, at_peer, total - at_peer])
        {
            *sum = sum.saturating_add(value);
        }
        self.sampled += 1;
    }

    /// The report; `dropped` is the sampler's to fill in.
    fn report(&self, only: Only, every: u64) -> PeerSplit {
        let [end_to_end_total_us, at_peer_total_us, in_yibao_total_us] = self.totals_us;
        PeerSplit {
            bureau: only.service(),
            every,
            sampled: self.sampled,
            no_messages: self.no_messages,
            unread: self.unread,
            dropped: 0,
            end_to_end: LatencySummary::of(&self.end_to_end.snapshot()),
            at_peer: LatencySummary::of(&self.at_peer.snapshot()),
            in_yibao: LatencySummary::of(&self.in_yibao.snapshot()),
            end_to_end_total_us,
            at_peer_total_us,
            in_yibao_total_us,
            at_peer_share: at_peer_total_us as f64 / end_to_end_total_us.max(1) as f64,
        }
    }
}

/// What one read of a sample's journal found.
enum Look {
    /// Split.
    Split(Split),
    /// Not in the journal whole yet: look again.
    NotYet,
    /// The transfer exchanged no platform message.
    NoMessages,
    /// The journal could not be read.
    Unread,
}

/// The splitter: reads the journal of each sample at `only`'s bureau (through `admin`) until
/// `stopped` changes and every queued sample is done, then reports (`dropped` left at 0 for
/// the sampler's count).
pub async fn run(
    only: Only,
    admin: AdminClient,
    mut samples: mpsc::Receiver<Sample>,
    mut stopped: watch::Receiver<bool>,
    every: u64,
) -> PeerSplit {
    let mut measured = Measured::default();
    let mut again: VecDeque<(Sample, u32, Instant)> = VecDeque::new();
    let mut stopping = false;
    loop {
        let next_again = again.front().map(|(_, _, due)| *due);
        let (sample, looks) = tokio::select! {
            _ = stopped.changed(), if !stopping => {
                stopping = true;
                samples.close();
                continue;
            }
            _ = sleep_until(next_again), if next_again.is_some() => match again.pop_front() {
                Some((sample, looks, _)) => (sample, looks),
                None => continue,
            },
            received = samples.recv() => match received {
                Some(sample) => (sample, 0),
                None if again.is_empty() => break,
                None => {
                    sleep_until(next_again).await;
                    continue;
                }
            },
        };
        tokio::time::sleep_until(sample.ended + FIRST_LOOK_AFTER).await;
        match look(only, admin.clone(), &sample).await {
            Look::Split(split) => measured.record(sample.end_to_end, split),
            Look::NotYet if looks + 1 < MAX_LOOKS => {
                again.push_back((sample, looks + 1, Instant::now() + LOOK_AGAIN_AFTER));
            }
            Look::NotYet | Look::Unread => measured.unread += 1,
            Look::NoMessages => measured.no_messages += 1,
        }
    }
    measured.report(only, every)
}

/// Sleeps until `due`, or for ever without one (a `select!` branch that never fires).
async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

/// Reads one sample's journal and splits it, if it is whole.
async fn look(only: Only, mut admin: AdminClient, sample: &Sample) -> Look {
    let mut request = tonic::Request::new(GetMessageJournalRequest {
        transfer_id: sample.transfer_id.clone(),
    });
    request.set_timeout(CALL_TIMEOUT);
    let entries = match admin.get_message_journal(request).await {
        Ok(answer) => answer.into_inner().entries,
        Err(_) => return Look::Unread,
    };
    if !whole(only, sample.state, &entries) {
        return Look::NotYet;
    }
    if entries.is_empty() {
        return Look::NoMessages;
    }
    Look::Split(split(&entries, sample.end_to_end))
}

/// Whether the journal holds every message of a transfer that ended in `state`: a transfer
/// completed at yibao's transfer-in was completed by the form it received, whose entry is
/// written just after the step (so it may not be there yet); every other entry is written
/// before the state it leads to.
fn whole(only: Only, state: TransferState, entries: &[MessageJournalEntry]) -> bool {
    if only != Only::TransferIn || state != TransferState::Completed {
        return true;
    }
    entries
        .iter()
        .any(|entry| entry.way == MessageWay::Received as i32 && entry.kind == "DELIVER_FORM")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A journal entry `at_ms` after the epoch, with a round trip when sent.
    fn entry(way: MessageWay, at_ms: i64, round_trip_ms: Option<i64>) -> MessageJournalEntry {
        let duration = |ms: i64| prost_types::Duration {
            seconds: ms / 1000,
            nanos: i32::try_from((ms % 1000) * 1_000_000).unwrap_or(0),
        };
        MessageJournalEntry {
            at: Some(prost_types::Timestamp {
                seconds: at_ms / 1000,
                nanos: i32::try_from((at_ms % 1000) * 1_000_000).unwrap_or(0),
            }),
            way: way as i32,
            kind: "DELIVER_FORM".to_owned(),
            round_trip: round_trip_ms.map(duration),
            ..MessageJournalEntry::default()
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_form_sent_once_is_at_the_peer_for_its_round_trip() {
        let journal = [entry(MessageWay::Sent, 10_300, Some(120))];
        let parts = split(&journal, ms(500));
        assert_eq!(parts.at_peer, ms(120));
        assert_eq!(parts.in_yibao, ms(380));
    }

    #[test]
    fn waiting_for_the_peers_next_message_is_the_peers_time_too() {
        // A request answered after 20 ms; the form arrives 200 ms after the answer.
        let journal = [
            entry(MessageWay::Received, 1_220, None),
            entry(MessageWay::Sent, 1_020, Some(20)),
        ];
        let parts = split(&journal, ms(300));
        assert_eq!(parts.at_peer, ms(220), "out of order in, sorted by time");
        assert_eq!(parts.in_yibao, ms(80));
    }

    #[test]
    fn retries_count_each_attempt_and_not_the_backoff_between() {
        let journal = [
            entry(MessageWay::Sent, 1_100, Some(100)), // failed after 100 ms
            entry(MessageWay::Sent, 1_350, Some(50)),  // 200 ms backoff, then answered
        ];
        let parts = split(&journal, ms(1_000));
        assert_eq!(parts.at_peer, ms(150));
        assert_eq!(parts.at_peer + parts.in_yibao, ms(1_000));
    }

    #[test]
    fn overlapping_spans_count_once_and_the_peer_never_exceeds_the_whole() {
        // A batch's two messages of one transfer share a trip; a lost answer's retry overlaps.
        let journal = [
            entry(MessageWay::Sent, 2_000, Some(500)),
            entry(MessageWay::Sent, 2_000, Some(500)),
            entry(MessageWay::Sent, 2_200, Some(400)),
        ];
        assert_eq!(split(&journal, ms(10_000)).at_peer, ms(700));
        let short = split(&journal, ms(300));
        assert_eq!((short.at_peer, short.in_yibao), (ms(300), Duration::ZERO));
    }

    #[test]
    fn messages_not_sent_and_a_received_message_first_add_nothing() {
        let journal = [
            entry(MessageWay::Received, 500, None),
            entry(MessageWay::Sent, 900, None),
        ];
        let parts = split(&journal, ms(100));
        assert_eq!(parts.at_peer, Duration::ZERO);
        assert_eq!(parts.in_yibao, ms(100));
    }

    #[test]
    fn the_totals_add_up_to_the_microsecond() {
        let mut measured = Measured::default();
        let journal = [entry(MessageWay::Sent, 1_000, Some(333))];
        for end_to_end in [ms(400), Duration::from_micros(1_000_001), ms(333)] {
            measured.record(end_to_end, split(&journal, end_to_end));
        }
        let report = measured.report(Only::TransferOut, 1);
        assert_eq!(report.sampled, 3);
        assert_eq!(
            report.end_to_end_total_us,
            report.at_peer_total_us + report.in_yibao_total_us
        );
        assert_eq!(report.at_peer_total_us, 3 * 333_000);
        assert!((report.at_peer_share - 999_000.0 / 1_733_001.0).abs() < 1e-9);
    }

    #[test]
    fn a_completed_transfer_at_transfer_in_waits_for_its_form_in_the_journal() {
        let request = entry(MessageWay::Sent, 1_000, Some(10));
        let form = entry(MessageWay::Received, 1_100, None);
        let completed = TransferState::Completed;
        assert!(!whole(
            Only::TransferIn,
            completed,
            std::slice::from_ref(&request)
        ));
        assert!(whole(Only::TransferIn, completed, &[request.clone(), form]));
        assert!(whole(
            Only::TransferIn,
            TransferState::Rejected,
            std::slice::from_ref(&request)
        ));
        assert!(whole(Only::TransferOut, completed, &[request]));
    }

    #[tokio::test]
    async fn one_transfer_in_every_n_is_sampled_and_a_full_queue_drops() {
        let (sampler, mut samples) = Sampler::new(3);
        for n in 0..7 {
            sampler.offer(&format!("t{n}"), TransferState::Completed, ms(1));
        }
        let mut ids = Vec::new();
        while let Ok(sample) = samples.try_recv() {
            ids.push(sample.transfer_id);
        }
        assert_eq!(ids, ["t0", "t3", "t6"]);
        assert_eq!(sampler.dropped(), 0);
    }
}
