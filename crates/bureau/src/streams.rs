//! How many `WatchTransfer` streams are open, over the whole service and per connection, and
//! how long one may stay silent. A stream beyond either count is refused with
//! RESOURCE_EXHAUSTED before anything is registered; an open stream holds a [`StreamPlace`],
//! given back when the stream ends however it ends.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::Error;

/// The limits on watch streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamLimits {
    /// Streams open at once over the service.
    pub total: usize,
    /// Streams open at once on one connection.
    pub per_connection: usize,
    /// How long a stream may send nothing before it ends (UNAVAILABLE; watching again is safe).
    pub idle: Duration,
}

impl Default for StreamLimits {
    fn default() -> Self {
        let settings = yibao_runtime::limits::LimitSettings::default();
        Self {
            total: settings.watch_streams as usize,
            per_connection: settings.watch_streams_per_connection as usize,
            idle: settings.watch_idle_timeout(),
        }
    }
}

/// The open watch streams, counted.
#[derive(Debug, Default)]
pub struct Streams {
    limits: StreamLimits,
    open: Mutex<Open>,
}

/// The counts behind [`Streams`].
#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_connection: HashMap<SocketAddr, usize>,
}

/// One open stream's place; given back when dropped.
#[derive(Debug)]
pub struct StreamPlace {
    streams: Arc<Streams>,
    connection: Option<SocketAddr>,
}

impl Streams {
    /// No stream open yet, within `limits`.
    pub fn new(limits: StreamLimits) -> Self {
        Self {
            limits,
            open: Mutex::default(),
        }
    }

    /// How long a stream may stay silent.
    pub fn idle(&self) -> Duration {
        self.limits.idle
    }

    /// A place for a stream on `connection` (the caller's address; a caller whose address is
    /// unknown counts in the total only), or RESOURCE_EXHAUSTED naming the limit reached.
    pub fn open(self: &Arc<Self>, connection: Option<SocketAddr>) -> Result<StreamPlace, Error> {
        let mut open = self
            .open
            .lock()
            .map_err(|_| Error::Internal("the stream counts are poisoned".to_owned()))?;
        if open.total >= self.limits.total {
            return Err(Error::Exhausted(format!(
                "{} watch streams are open, the service's limit; watch again after a backoff",
                self.limits.total
            )));
        }
        if let Some(address) = connection {
            let on_connection = open.by_connection.entry(address).or_default();
            if *on_connection >= self.limits.per_connection {
                return Err(Error::Exhausted(format!(
                    "{} watch streams are open on this connection, its limit; watch again after \
                     a backoff or on another connection",
                    self.limits.per_connection
                )));
            }
            *on_connection += 1;
        }
        open.total += 1;
        Ok(StreamPlace {
            streams: self.clone(),
            connection,
        })
    }

    /// Streams open now, over the service.
    pub fn open_now(&self) -> usize {
        self.open.lock().map_or(0, |open| open.total)
    }
}

impl Drop for StreamPlace {
    fn drop(&mut self) {
        let Ok(mut open) = self.streams.open.lock() else {
            return;
        };
        open.total = open.total.saturating_sub(1);
        if let Some(address) = self.connection
            && let Some(count) = open.by_connection.get_mut(&address)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.by_connection.remove(&address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(port: u16) -> Option<SocketAddr> {
        Some(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    #[test]
    fn streams_are_refused_beyond_either_limit_and_a_closed_one_frees_its_place() {
        let streams = Arc::new(Streams::new(StreamLimits {
            total: 3,
            per_connection: 2,
            idle: Duration::from_secs(1),
        }));
        let first = streams.open(address(1)).expect("room");
        let _second = streams.open(address(1)).expect("room");
        let on_one = streams
            .open(address(1))
            .expect_err("the connection is full");
        assert!(matches!(on_one, Error::Exhausted(_)), "{on_one:?}");
        let _third = streams
            .open(address(2))
            .expect("another connection has room");
        let total = streams.open(address(3)).expect_err("the service is full");
        assert!(matches!(total, Error::Exhausted(_)), "{total:?}");
        drop(first);
        assert_eq!(streams.open_now(), 2);
        let _again = streams.open(address(1)).expect("a freed place");
        assert_eq!(streams.open_now(), 3);
    }
}
