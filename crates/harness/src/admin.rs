//! Admin clients: the one place that builds an `AdminService` client, so that every caller (the
//! harness, `yibao`, the load generator, the black-box tests) presents the admin token the same
//! way.
//!
//! A bureau configured with an admin token (`YIBAO_ADMIN_TOKEN`) answers admin calls only with
//! `authorization: Bearer <token>` metadata (UNAUTHENTICATED otherwise); without one it answers
//! loopback callers only. [`admin_client`] wraps a channel in a [`BearerToken`] interceptor that
//! adds the header when a token is given and nothing otherwise. Clients read the token from the
//! same variable, [`ADMIN_TOKEN_ENV`], never from a flag (it would show in `ps`). Neither
//! [`AdminToken`] nor [`BearerToken`] shows the token in its `Debug` output.

use std::fmt;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use yibao_proto::admin::v1::admin_service_client::AdminServiceClient;
use yibao_runtime::config::MIN_ADMIN_TOKEN_LENGTH;

/// The environment variable holding the admin token, for the services and their clients alike.
pub const ADMIN_TOKEN_ENV: &str = "YIBAO_ADMIN_TOKEN";

/// The metadata key the token travels in.
const AUTHORIZATION: &str = "authorization";

/// An `AdminService` client that presents the admin token when it has one.
pub type AdminClient = AdminServiceClient<InterceptedService<Channel, BearerToken>>;

/// An admin client over `channel`, presenting `token` on every call when one is given.
pub fn admin_client(channel: Channel, token: Option<&AdminToken>) -> AdminClient {
    AdminServiceClient::with_interceptor(channel, BearerToken::new(token))
}

/// The admin API's bearer token as a client holds it: at least [`MIN_ADMIN_TOKEN_LENGTH`]
/// printable ASCII characters, the rule the services apply to their own. `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(String);

/// Why a token was not accepted; never contains the token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidAdminToken {
    /// Too short, or a character that is not printable ASCII.
    #[error("the admin token must be at least {MIN_ADMIN_TOKEN_LENGTH} printable ASCII characters")]
    Malformed,
    /// The environment variable is set but not Unicode.
    #[error("{ADMIN_TOKEN_ENV} is not valid Unicode")]
    NotUnicode,
}

impl AdminToken {
    /// Checks and wraps a token.
    ///
    /// # Errors
    /// [`InvalidAdminToken::Malformed`] when shorter than [`MIN_ADMIN_TOKEN_LENGTH`] or not all
    /// printable ASCII.
    pub fn new(token: impl Into<String>) -> Result<AdminToken, InvalidAdminToken> {
        let token = token.into();
        if token.len() < MIN_ADMIN_TOKEN_LENGTH || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(InvalidAdminToken::Malformed);
        }
        Ok(AdminToken(token))
    }

    /// The token in [`ADMIN_TOKEN_ENV`]; `None` when the variable is unset or empty.
    ///
    /// # Errors
    /// When the variable is set to something that is not a valid token.
    pub fn from_env() -> Result<Option<AdminToken>, InvalidAdminToken> {
        match std::env::var(ADMIN_TOKEN_ENV) {
            Ok(value) if value.is_empty() => Ok(None),
            Ok(value) => AdminToken::new(value).map(Some),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(InvalidAdminToken::NotUnicode),
        }
    }

    /// The token itself, to hand to a service's environment.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(****)")
    }
}

/// The interceptor of [`AdminClient`]: adds `authorization: Bearer <token>` to every request
/// when it holds a token, and passes requests through untouched otherwise.
#[derive(Clone, Default)]
pub struct BearerToken(Option<MetadataValue<Ascii>>);

impl BearerToken {
    /// An interceptor presenting `token`, or nothing.
    pub fn new(token: Option<&AdminToken>) -> BearerToken {
        // A checked token is printable ASCII, always a valid header value; should that ever
        // not hold, the call goes without it and the bureau answers UNAUTHENTICATED.
        BearerToken(token.and_then(|token| format!("Bearer {}", token.expose()).parse().ok()))
    }

    /// Whether requests carry a token.
    pub fn presents_token(&self) -> bool {
        self.0.is_some()
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(_) => f.write_str("BearerToken(****)"),
            None => f.write_str("BearerToken(none)"),
        }
    }
}

impl Interceptor for BearerToken {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert(AUTHORIZATION, value.clone());
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "s3cret-admin-token-0123";

    fn intercepted(token: Option<&AdminToken>) -> tonic::Request<()> {
        BearerToken::new(token)
            .call(tonic::Request::new(()))
            .expect("the interceptor never refuses")
    }

    #[test]
    fn a_token_is_presented_as_a_bearer_authorization() {
        let token = AdminToken::new(TOKEN).expect("valid");
        let request = intercepted(Some(&token));
        let value = request.metadata().get(AUTHORIZATION).expect("header");
        assert_eq!(value.to_str().expect("ascii"), format!("Bearer {TOKEN}"));
    }

    #[test]
    fn without_a_token_nothing_is_added() {
        let request = intercepted(None);
        assert!(request.metadata().get(AUTHORIZATION).is_none());
        assert!(!BearerToken::new(None).presents_token());
    }

    #[test]
    fn debug_output_never_shows_the_token() {
        let token = AdminToken::new(TOKEN).expect("valid");
        let interceptor = BearerToken::new(Some(&token));
        assert!(interceptor.presents_token());
        for shown in [format!("{token:?}"), format!("{interceptor:?}")] {
            assert!(!shown.contains(TOKEN), "{shown}");
            assert!(shown.contains("****"), "{shown}");
        }
    }

    #[test]
    fn a_token_must_be_long_and_printable() {
        assert_eq!(AdminToken::new("short"), Err(InvalidAdminToken::Malformed));
        let with_space = "a token with spaces in it";
        assert_eq!(
            AdminToken::new(with_space),
            Err(InvalidAdminToken::Malformed)
        );
        let with_newline = format!("{TOKEN}\n");
        assert_eq!(
            AdminToken::new(with_newline),
            Err(InvalidAdminToken::Malformed)
        );
        let error = InvalidAdminToken::Malformed.to_string();
        assert!(
            error.contains(&MIN_ADMIN_TOKEN_LENGTH.to_string()),
            "{error}"
        );
    }
}
