//! Measures group-commit throughput: `concurrency` tasks each run protocol-step-sized write jobs
//! (a transfer, two postings, an event, an outbox row and a processed-message record) as fast as
//! the store answers them.
//!
//! `cargo run --release -p yibao-store --example write_throughput -- [concurrency] [seconds] [normal]`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;
use yibao_store::{
    Error, EventRow, NewOutboxMessage, Options, Posting, Store, Synchronous, TransferRow, Tx,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut arguments = std::env::args().skip(1);
    let concurrency: u64 = arguments.next().map_or(Ok(8), |text| text.parse())?;
    let seconds: u64 = arguments.next().map_or(Ok(3), |text| text.parse())?;
    let synchronous = match arguments.next().as_deref() {
        Some("normal") => Synchronous::Normal,
        _ => Synchronous::Full,
    };
    let directory = tempfile::tempdir()?;
    let options = Options {
        synchronous,
        ..Options::default()
    };
    let store = Store::open(&directory.path().join("throughput.sqlite"), &options)?;
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut writers = Vec::new();
    for writer in 0..concurrency {
        let store = store.clone();
        let done = Arc::clone(&done);
        writers.push(tokio::spawn(async move {
            let mut step = 0_u64;
            while Instant::now() < deadline {
                let id = format!("{writer}-{step}");
                store.write(move |tx| protocol_step(tx, &id)).await?;
                done.fetch_add(1, Ordering::Relaxed);
                step += 1;
            }
            Ok::<_, Error>(())
        }));
    }
    for writer in writers {
        writer.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let jobs = done.load(Ordering::Relaxed);
    let stats = store.write_stats();
    println!(
        "{concurrency} writers, synchronous={synchronous:?}: {jobs} steps in {elapsed:.1} s = {:.0} steps/s, \
         {} transactions (mean batch {:.1})",
        jobs as f64 / elapsed,
        stats.transactions_committed,
        stats.jobs_committed as f64 / stats.transactions_committed.max(1) as f64,
    );
    store.close().await?;
    Ok(())
}

/// Roughly what one handshake step writes.
fn protocol_step(tx: &mut dyn Tx, id: &str) -> Result<(), Error> {
    let at = DateTime::<Utc>::from_timestamp_millis(1_767_225_600_000).unwrap_or_default();
    let certno = format!("{id:0>18}");
    let person = format!("person:{certno}");
    tx.insert_transfer(&TransferRow {
        transfer_id: id.to_owned(),
        certno,
        state: "IN_TRANSIT".to_owned(),
        open: true,
        whole_process_due_on: None,
        created_at: at,
        updated_at: at,
        document: format!(r#"{{"transfer_id":"{id}","balance_cents":100000}}"#),
    })?;
    for (from, to) in [
        ("fund:seed", person.as_str()),
        (person.as_str(), "transit:150100"),
    ] {
        tx.post(&Posting {
            from_account: from.to_owned(),
            to_account: to.to_owned(),
            amount_cents: 100_000,
            transfer_id: Some(id.to_owned()),
            reason: "step".to_owned(),
            at,
        })?;
    }
    tx.append_event(&EventRow {
        transfer_id: id.to_owned(),
        seq: 0,
        at,
        kind: "Accepted".to_owned(),
        from_state: "NEW".to_owned(),
        to_state: "IN_TRANSIT".to_owned(),
        detail: String::new(),
        attempt: 0,
    })?;
    tx.enqueue(&NewOutboxMessage {
        transfer_id: id.to_owned(),
        kind: "DeliverRecord".to_owned(),
        peer: "440300".to_owned(),
        msgid: format!("m-{id}"),
        payload: vec![0; 300],
        next_attempt_at: at,
        created_at: at,
    })?;
    tx.record_processed(&format!("in-{id}"), &[0; 32], &[1; 64], at)
}
