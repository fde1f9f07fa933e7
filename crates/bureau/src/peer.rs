//! The peer bureaus' addresses and one long-lived HTTP/2 channel to each, redialled with
//! backoff. A message goes to the bureau hosting its receiving region ([`Peers::of`]): the peer
//! configured under that bureau's name (`--peers`), else the default one (`--peer`), which is
//! all two bureaus need.
//!
//! Two guards keep a bureau from hammering a peer that is down (and from keeping the peer's port
//! busy so that it cannot restart): after a failed call the peer is not dialled again until a
//! backoff has passed (100 ms doubling to 5 s; every caller in between is told UNAVAILABLE at
//! once), and a TCP connection that connected to itself — possible when the peer's port lies in
//! the ephemeral range and nothing listens there — is dropped at once instead of being used.
//!
//! **Several replicas of the peer** may be named, comma-separated: calls go to one of them until
//! it fails as unreachable, then to the next; the backoff starts only once every one failed in a
//! row. Any replica may take any message: they share one store, and a repeated msgid is answered
//! with its first answer wherever it lands.

use std::sync::Mutex;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint, Uri};

/// The first pause before redialling a peer that failed.
pub const FIRST_REDIAL_PAUSE: Duration = Duration::from_millis(100);
/// The longest pause before redialling.
pub const MAX_REDIAL_PAUSE: Duration = Duration::from_secs(5);

/// The peer bureau's address and a long-lived HTTP/2 channel to it.
///
/// The address is either `http://host:port` or `file:PATH`, naming a file the peer writes its
/// address to once it listens; the file is read lazily and again after the peer became
/// unreachable, so both services can start on port 0 and restart on new ports.
///
/// With `tls`, the channel speaks mutual TLS (the address is `https://`, and an address read from
/// a file gets that scheme); without, plaintext `http://`.
#[derive(Debug)]
pub struct Peer {
    spec: String,
    /// The endpoints `spec` names, one per replica of the peer.
    endpoints: Vec<String>,
    /// The one calls go to now, an index into `endpoints`.
    current: std::sync::atomic::AtomicUsize,
    tls: Option<ClientTlsConfig>,
    channel: Mutex<Option<Channel>>,
    dial: Mutex<Redial>,
    /// Set once the peer answered a batch RPC UNIMPLEMENTED: from then on every message goes
    /// through its single-message RPC.
    single_only: std::sync::atomic::AtomicBool,
}

/// Whether the peer serves the batch RPCs (yibao's optimisation, which a team's own bureau need
/// not implement).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batches {
    /// Served, or not yet known otherwise: batches are tried.
    Supported,
    /// Answered UNIMPLEMENTED: single messages only, for the life of this process.
    Unsupported,
}

/// When the peer may be dialled again.
#[derive(Debug, Default)]
struct Redial {
    /// Failed calls since the last success.
    failures: u32,
    /// No dialling before this.
    not_before: Option<Instant>,
}

impl Redial {
    /// The pause after the `failures`-th failure in a row.
    fn pause(failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(16);
        FIRST_REDIAL_PAUSE
            .saturating_mul(1 << doublings)
            .min(MAX_REDIAL_PAUSE)
    }
}

impl Peer {
    /// A peer at `spec`, reached over TLS when `tls` is given; nothing is connected yet.
    pub fn new(spec: String, tls: Option<ClientTlsConfig>) -> Self {
        let endpoints = spec
            .split(',')
            .map(|endpoint| endpoint.trim().to_owned())
            .filter(|endpoint| !endpoint.is_empty())
            .collect();
        Self {
            spec,
            endpoints,
            current: std::sync::atomic::AtomicUsize::new(0),
            tls,
            channel: Mutex::new(None),
            dial: Mutex::new(Redial::default()),
            single_only: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Whether batches are tried.
    pub fn batches(&self) -> Batches {
        if self.single_only.load(std::sync::atomic::Ordering::Relaxed) {
            Batches::Unsupported
        } else {
            Batches::Supported
        }
    }

    /// A peer configured to get single messages only (`peer_batches = "never"`).
    #[must_use]
    pub fn single_messages_only(self) -> Self {
        self.single_only
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self
    }

    /// The peer answered a batch RPC UNIMPLEMENTED: remember it.
    pub fn batches_unsupported(&self) {
        if !self
            .single_only
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::warn!(peer = %self.spec, "the peer serves no batch RPCs; sending single messages");
        }
    }

    /// The channel to the peer, connecting lazily; UNAVAILABLE at once while the peer is in its
    /// redial backoff.
    pub fn channel(&self) -> Result<Channel, tonic::Status> {
        if let Some(wait) = self.backing_off() {
            return Err(tonic::Status::unavailable(format!(
                "the peer was unreachable; next attempt in {} ms",
                wait.as_millis()
            )));
        }
        let mut cached = self
            .channel
            .lock()
            .map_err(|_| tonic::Status::internal("peer lock poisoned"))?;
        if let Some(channel) = cached.as_ref() {
            return Ok(channel.clone());
        }
        let address = self.resolve()?;
        let mut endpoint = Endpoint::from_shared(address)
            .map_err(|_| tonic::Status::unavailable("the peer endpoint is not a valid URI"))?;
        if let Some(tls) = &self.tls {
            endpoint = endpoint
                .tls_config(tls.clone())
                .map_err(|_| tonic::Status::unavailable("the peer's TLS settings are unusable"))?;
        }
        let channel = endpoint
            .http2_keep_alive_interval(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(2))
            .connect_with_connector_lazy(tower::service_fn(connect));
        *cached = Some(channel.clone());
        Ok(channel)
    }

    /// A call to the peer failed as unreachable: forget the channel (a peer read from a file may
    /// come back elsewhere), turn to the next replica of the peer, and back off before dialling
    /// again once every replica failed in a row.
    pub fn unreachable(&self) {
        let replicas = u32::try_from(self.endpoints.len().max(1)).unwrap_or(u32::MAX);
        self.current
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Ok(mut dial) = self.dial.lock() {
            dial.failures = dial.failures.saturating_add(1);
            if dial.failures >= replicas {
                let pause = Redial::pause(dial.failures - replicas + 1);
                dial.not_before = Some(Instant::now() + pause);
            }
        }
        if let Ok(mut cached) = self.channel.lock() {
            *cached = None;
        }
    }

    /// A call to the peer was answered: dial freely again.
    pub fn reachable(&self) {
        if let Ok(mut dial) = self.dial.lock()
            && dial.failures > 0
        {
            *dial = Redial::default();
        }
    }

    /// How long until the peer may be dialled again, if it may not be now.
    fn backing_off(&self) -> Option<Duration> {
        let dial = self.dial.lock().ok()?;
        let not_before = dial.not_before?;
        let now = Instant::now();
        (not_before > now).then(|| not_before - now)
    }

    /// The endpoint calls go to now.
    fn endpoint(&self) -> &str {
        let current = self.current.load(std::sync::atomic::Ordering::Relaxed);
        match self.endpoints.len() {
            0 => &self.spec,
            replicas => &self.endpoints[current % replicas],
        }
    }

    fn resolve(&self) -> Result<String, tonic::Status> {
        let endpoint = self.endpoint();
        match endpoint.strip_prefix("file:") {
            None => Ok(endpoint.to_owned()),
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
                let scheme = if self.tls.is_some() { "https" } else { "http" };
                Ok(if address.starts_with("http") {
                    address.to_owned()
                } else {
                    format!("{scheme}://{address}")
                })
            }
        }
    }
}

/// Every peer bureau: those configured by name, and the default for any other.
#[derive(Debug)]
pub struct Peers {
    /// Where a bureau not named in `named` is reached (`--peer`).
    default: Peer,
    /// Bureaus reached at endpoints of their own (`--peers NAME=URL`), by name.
    named: std::collections::BTreeMap<String, Peer>,
}

impl Peers {
    /// One peer for every bureau: the pair's case.
    pub fn single(peer: Peer) -> Self {
        Self::named(peer, std::collections::BTreeMap::new())
    }

    /// `named` by bureau name, and `default` for any other bureau.
    pub fn named(default: Peer, named: std::collections::BTreeMap<String, Peer>) -> Self {
        Self { default, named }
    }

    /// The peer that reaches `bureau` (`None`, a region no bureau hosts: the default peer,
    /// whose answer, a refusal, parks the message).
    pub fn of(&self, bureau: Option<&str>) -> &Peer {
        bureau
            .and_then(|name| self.named.get(name))
            .unwrap_or(&self.default)
    }
}

/// Dials the peer's TCP address (TLS, when configured, is layered on by tonic); a connection
/// that reached itself is refused.
async fn connect(uri: Uri) -> std::io::Result<TokioIo<TcpStream>> {
    let host = uri
        .host()
        .map(|host| host.trim_start_matches('[').trim_end_matches(']'))
        .ok_or_else(|| std::io::Error::other("the peer URI has no host"))?;
    let port = uri
        .port_u16()
        .ok_or_else(|| std::io::Error::other("the peer URI has no port"))?;
    let stream = TcpStream::connect((host, port)).await?;
    not_itself(&stream)?;
    stream.set_nodelay(true)?;
    Ok(TokioIo::new(stream))
}

/// Refuses a connection whose two ends are one socket.
fn not_itself(stream: &TcpStream) -> std::io::Result<()> {
    if stream.local_addr()? == stream.peer_addr()? {
        return Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "the connection reached itself: nothing listens at the peer's port",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_redial_pause_doubles_to_its_bound() {
        assert_eq!(Redial::pause(1), FIRST_REDIAL_PAUSE);
        assert_eq!(Redial::pause(2), FIRST_REDIAL_PAUSE * 2);
        assert_eq!(Redial::pause(4), FIRST_REDIAL_PAUSE * 8);
        assert_eq!(Redial::pause(40), MAX_REDIAL_PAUSE);
    }

    #[tokio::test(start_paused = true)]
    async fn a_replica_of_the_peer_that_failed_hands_over_to_the_next_and_all_failing_backs_off() {
        let peer = Peer::new("http://127.0.0.1:9, http://127.0.0.1:10".to_owned(), None);
        assert_eq!(peer.resolve().ok().as_deref(), Some("http://127.0.0.1:9"));
        peer.unreachable();
        assert!(peer.channel().is_ok(), "the other replica, at once");
        assert_eq!(peer.resolve().ok().as_deref(), Some("http://127.0.0.1:10"));
        peer.unreachable();
        let refused = peer.channel().expect_err("both failed: backing off");
        assert_eq!(refused.code(), tonic::Code::Unavailable);
        tokio::time::advance(FIRST_REDIAL_PAUSE).await;
        assert_eq!(
            peer.resolve().ok().as_deref(),
            Some("http://127.0.0.1:9"),
            "round again"
        );
        peer.reachable();
        peer.unreachable();
        assert!(peer.channel().is_ok(), "a success starts the count again");
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_failed_is_not_dialled_again_until_its_pause_passed() {
        let peer = Peer::new("http://127.0.0.1:9".to_owned(), None);
        assert!(peer.channel().is_ok(), "dialled lazily at first");
        peer.unreachable();
        let refused = peer.channel().expect_err("backing off");
        assert_eq!(refused.code(), tonic::Code::Unavailable);
        tokio::time::advance(FIRST_REDIAL_PAUSE).await;
        assert!(peer.channel().is_ok(), "the pause passed");
        peer.unreachable();
        tokio::time::advance(FIRST_REDIAL_PAUSE).await;
        assert!(peer.channel().is_err(), "the second pause is twice as long");
        peer.reachable();
        assert!(peer.channel().is_ok(), "an answer ends the backoff");
    }

    #[test]
    fn a_bureau_is_reached_at_its_own_endpoint_or_the_default_one() {
        let named = [("north", "http://127.0.0.1:1")]
            .into_iter()
            .map(|(name, spec)| (name.to_owned(), Peer::new(spec.to_owned(), None)))
            .collect();
        let peers = Peers::named(Peer::new("http://127.0.0.1:2".to_owned(), None), named);
        assert_eq!(peers.of(Some("north")).spec, "http://127.0.0.1:1");
        assert_eq!(peers.of(Some("south")).spec, "http://127.0.0.1:2");
        assert_eq!(peers.of(None).spec, "http://127.0.0.1:2");
    }

    #[tokio::test]
    async fn a_connection_that_reaches_itself_is_refused() {
        // Find a free port, then connect from it to itself: Linux allows this "simultaneous
        // open" when source and destination are the same loopback address and port.
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = probe.local_addr().expect("address").port();
        drop(probe);
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
            .expect("bind the source port");
        let Ok(stream) = socket
            .connect(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
            .await
        else {
            return; // this kernel does not self-connect; nothing to guard here
        };
        assert_eq!(
            stream.local_addr().expect("local"),
            stream.peer_addr().expect("peer"),
            "a self-connection, as a redial into the ephemeral range can make"
        );
        let refused = not_itself(&stream).expect_err("refused");
        assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    }
}
