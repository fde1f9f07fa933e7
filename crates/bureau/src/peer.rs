//! The peer bureau's address and one long-lived HTTP/2 channel to it.

use std::sync::Mutex;

use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

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
    tls: Option<ClientTlsConfig>,
    channel: Mutex<Option<Channel>>,
}

impl Peer {
    /// A peer at `spec`, reached over TLS when `tls` is given; nothing is connected yet.
    pub fn new(spec: String, tls: Option<ClientTlsConfig>) -> Self {
        Self {
            spec,
            tls,
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
        let mut endpoint = Endpoint::from_shared(address)
            .map_err(|_| tonic::Status::unavailable("the peer endpoint is not a valid URI"))?;
        if let Some(tls) = &self.tls {
            endpoint = endpoint
                .tls_config(tls.clone())
                .map_err(|_| tonic::Status::unavailable("the peer's TLS settings are unusable"))?;
        }
        let channel = endpoint
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
