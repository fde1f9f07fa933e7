//! Idempotent applications: a client's key (`client_request_id`) is recorded with a hash of its
//! request and the transfer the request created, in the application's own step. The same key
//! with the same request returns that transfer as it stands now (also after it completed); the
//! same key with a different request is refused naming `client_request_id`. Keys live in the
//! processed-message table beside the platform's msgids (namespaced, so they cannot meet) and
//! are kept as long as the store is: at least the 30 days of service clock the contract promises.

use std::sync::Arc;

use crate::document::TransferDocument;
use crate::error::Error;
use crate::record::Step;
use crate::watchers::Snapshot;

/// The longest key the contract allows.
pub const MAX_KEY_LENGTH: usize = 64;

/// A client's idempotency key, checked, with the hash of the request that carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// The key as stored: namespaced apart from platform msgids.
    stored: String,
    /// SHA-256 of the whole encoded request.
    request_sha256: Vec<u8>,
}

impl Key {
    /// The key of a request, if it has one: at most 64 printable ASCII characters, no spaces.
    /// `request_sha256` hashes the request, only when there is a key.
    pub fn of(
        client_request_id: &str,
        request_sha256: impl FnOnce() -> Vec<u8>,
    ) -> Result<Option<Key>, Error> {
        if client_request_id.is_empty() {
            return Ok(None);
        }
        let printable = client_request_id.bytes().all(|b| b.is_ascii_graphic());
        if client_request_id.len() > MAX_KEY_LENGTH || !printable {
            return Err(Error::invalid(
                "client_request_id",
                format!("at most {MAX_KEY_LENGTH} printable ASCII characters, no spaces"),
            ));
        }
        Ok(Some(Key {
            stored: format!("apply:{client_request_id}"),
            request_sha256: request_sha256(),
        }))
    }
}

/// Runs `open` once per key: a repeated request gets the transfer the first one created, as it
/// stands now; a key reused for another request is refused; without a key, `open` just runs.
pub fn apply_once(
    step: &mut Step<'_>,
    key: Option<&Key>,
    open: impl FnOnce(&mut Step<'_>) -> Result<TransferDocument, Error>,
) -> Result<Arc<Snapshot>, Error> {
    let Some(key) = key else {
        let document = open(step)?;
        return step.as_left(document);
    };
    if let Some(seen) = step.tx.processed_message(&key.stored)? {
        if seen.body_sha256 != key.request_sha256 {
            return Err(Error::invalid(
                "client_request_id",
                "already used for a different request",
            ));
        }
        let transfer_id = String::from_utf8(seen.answer).map_err(|_| {
            Error::Internal("a stored application key names no transfer".to_owned())
        })?;
        let document = step.load_existing(&transfer_id)?;
        return step.as_left(document);
    }
    let document = open(step)?;
    let now = step.ctx.now;
    step.tx.record_processed(
        &key.stored,
        &key.request_sha256,
        document.transfer_id.as_bytes(),
        now,
    )?;
    step.as_left(document)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_at_most_64_printable_characters_and_empty_means_none() {
        assert_eq!(Key::of("", || vec![1]).expect("empty is allowed"), None);
        assert!(Key::of("load-7-42", || vec![1]).expect("valid").is_some());
        assert!(
            Key::of(&"k".repeat(64), || vec![1])
                .expect("64 is the limit")
                .is_some()
        );
        for bad in [
            "k".repeat(65),
            "has space".to_owned(),
            "tab\t".to_owned(),
            "键".to_owned(),
        ] {
            let error = Key::of(&bad, || vec![1]).expect_err("refused");
            assert!(
                error.to_string().starts_with("client_request_id:"),
                "{error}"
            );
        }
    }
}
