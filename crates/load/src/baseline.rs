//! The yardstick: bare `grpc.health.v1.Health/Check` calls against the same two services, over
//! the same connections, with as many calls in flight as the transfer phase, for a fixed time.
//! A transfer is several RPCs plus durable writes at two bureaus; the ratio of transfers/s to
//! health checks/s says how much of the machine's RPC capacity each transfer costs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use crate::metrics::{Latency, LatencySummary};

/// What the baseline measured.
#[derive(Clone, Debug, Serialize)]
pub struct Baseline {
    /// How long it ran.
    pub seconds: f64,
    /// Calls in flight.
    pub concurrency: usize,
    /// Calls that answered OK.
    pub calls: u64,
    /// Calls that failed.
    pub errors: u64,
    /// OK calls per second.
    pub calls_per_s: f64,
    /// Call latency.
    pub latency: LatencySummary,
}

/// Calls Check on every channel in turn from `concurrency` tasks for `duration`.
pub async fn measure(channels: Vec<Channel>, concurrency: usize, duration: Duration) -> Baseline {
    let calls = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let latency = Arc::new(Latency::default());
    let start = Instant::now();
    let deadline = start + duration;
    let mut workers = JoinSet::new();
    for worker in 0..concurrency {
        let Some(channel) = channels.get(worker % channels.len().max(1)).cloned() else {
            break;
        };
        let (calls, errors, latency) = (calls.clone(), errors.clone(), latency.clone());
        workers.spawn(async move {
            let mut client = HealthClient::new(channel);
            while Instant::now() < deadline {
                let sent = Instant::now();
                let answer = client
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await;
                match answer {
                    Ok(_) => {
                        latency.record(sent.elapsed());
                        calls.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
    }
    while workers.join_next().await.is_some() {}
    let seconds = start.elapsed().as_secs_f64();
    let calls = calls.load(Ordering::Relaxed);
    Baseline {
        seconds,
        concurrency,
        calls,
        errors: errors.load(Ordering::Relaxed),
        calls_per_s: calls as f64 / seconds.max(f64::EPSILON),
        latency: LatencySummary::of(&latency.snapshot()),
    }
}
