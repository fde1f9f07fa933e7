//! The bureau: what every handler and the dispatcher share.

use std::sync::Arc;
use std::sync::Mutex;

use tokio::sync::{Notify, broadcast};
use tonic::transport::{Channel, Endpoint};
use yibao_domain::calendar::WorkingCalendar;
use yibao_domain::policy::RegionPolicy;
use yibao_domain::region::RegionCode;
use yibao_runtime::clock::Clock;
use yibao_runtime::directory::{BureauRole, RegionDirectory, RegionEntry};
use yibao_store::Store;

use crate::error::Error;

/// One bureau service: its store, clock, directory and the way to its peer.
#[derive(Debug)]
pub struct Bureau {
    /// Which binary this is; decides the default regions and the peer.
    pub role: BureauRole,
    /// The durable ledger.
    pub store: Store,
    /// The service's clock (adjustable in tests).
    pub clock: Clock,
    /// Every region both services know.
    pub directory: Arc<RegionDirectory>,
    /// Working days for statutory deadlines.
    pub calendar: Arc<WorkingCalendar>,
    /// The pooling regions this bureau hosts.
    pub hosted: Vec<RegionCode>,
    /// The 12-character institution code at the head of every msgid this bureau sends.
    pub institution: String,
    /// The peer bureau.
    pub peer: Peer,
    /// Transfer ids whose state changed, for `WatchTransfer`.
    pub changes: broadcast::Sender<String>,
    /// Wakes the outbox dispatcher when a message is queued.
    pub dispatch_now: Notify,
    /// Whether the admin API answers.
    pub admin_enabled: bool,
    /// Simulated bank gateway: fail every n-th payout (0 = never).
    pub bank_failure_every: u32,
    /// Calls made to the simulated bank gateway (to decide simulated failures).
    pub bank_calls: std::sync::atomic::AtomicU64,
}

impl Bureau {
    /// Whether this bureau hosts the pooling region of `code`.
    pub fn hosts(&self, code: RegionCode) -> bool {
        self.hosted.contains(&code.pooling_region())
    }

    /// The directory entry for a pooling region, or an invalid-argument error naming `field`.
    pub fn region(&self, field: &'static str, code: RegionCode) -> Result<&RegionEntry, Error> {
        self.directory.region(code.pooling_region()).ok_or_else(|| {
            Error::invalid(
                field,
                format!("region {code} is not in the region directory"),
            )
        })
    }

    /// The policy of a pooling region (national defaults for unknown regions).
    pub fn policy(&self, code: RegionCode) -> RegionPolicy {
        self.directory
            .region(code.pooling_region())
            .map(|entry| entry.policy.clone())
            .unwrap_or_default()
    }

    /// Tells watchers that a transfer changed.
    pub fn changed(&self, transfer_id: &str) {
        // No receiver is fine: nobody is watching.
        let _ = self.changes.send(transfer_id.to_owned());
    }
}

/// The peer bureau's address and a long-lived HTTP/2 channel to it.
///
/// The address is either `http://host:port` or `file:PATH`, naming a file the peer writes its
/// address to once it listens; the file is read lazily and again after the peer became
/// unreachable, so both services can start on port 0 and restart on new ports.
#[derive(Debug)]
pub struct Peer {
    spec: String,
    channel: Mutex<Option<Channel>>,
}

impl Peer {
    /// A peer at `spec`; nothing is connected yet.
    pub fn new(spec: String) -> Self {
        Self {
            spec,
            channel: Mutex::new(None),
        }
    }

    /// The channel to the peer, connecting lazily.
    pub fn channel(&self) -> Result<Channel, tonic::Status> {
        let mut cached = self
            .channel
            .lock()
            .map_err(|_| tonic::Status::internal("peer lock poisoned"))?;
        if let Some(channel) = cached.as_ref() {
            return Ok(channel.clone());
        }
        let address = self.resolve()?;
        let channel = Endpoint::from_shared(address)
            .map_err(|_| tonic::Status::unavailable("the peer endpoint is not a valid URI"))?
            .tcp_nodelay(true)
            .http2_keep_alive_interval(std::time::Duration::from_secs(30))
            .connect_lazy();
        *cached = Some(channel.clone());
        Ok(channel)
    }

    /// Forgets the channel, so the next call resolves the address again.
    pub fn reset(&self) {
        if self.spec.starts_with("file:")
            && let Ok(mut cached) = self.channel.lock()
        {
            *cached = None;
        }
    }

    fn resolve(&self) -> Result<String, tonic::Status> {
        match self.spec.strip_prefix("file:") {
            None => Ok(self.spec.clone()),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|_| {
                    tonic::Status::unavailable("the peer has not published its address yet")
                })?;
                let address = text.trim();
                if address.is_empty() {
                    return Err(tonic::Status::unavailable(
                        "the peer's address file is empty",
                    ));
                }
                Ok(if address.starts_with("http") {
                    address.to_owned()
                } else {
                    format!("http://{address}")
                })
            }
        }
    }
}
