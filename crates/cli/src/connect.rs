//! Connecting to the two bureaus named by `--out` and `--in`.
//!
//! A command connects before it calls, with a short connect timeout, so that a bureau that is not
//! running is one clear line ("cannot connect to transfer-in at …") rather than a transport
//! error from the middle of a call.
//!
//! Admin clients present the admin token of `YIBAO_ADMIN_TOKEN` when it is set (never a flag:
//! it would show in `ps`); bureaus configured with a token refuse admin calls without it.

use std::net::SocketAddr;
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};
use yibao_harness::{AdminClient, AdminToken, Side, admin_client};
use yibao_proto::bureau::v1::bureau_service_client::BureauServiceClient;

use crate::args::Bureau;
use crate::error::CliError;

/// How long to wait for a TCP connection to a bureau.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The endpoints of the two bureaus.
#[derive(Clone, Debug)]
pub struct Endpoints {
    /// The transfer-out bureau, for example `http://127.0.0.1:50051`.
    pub out: String,
    /// The transfer-in bureau, for example `http://127.0.0.1:50052`.
    pub inn: String,
    /// The token admin calls present (`YIBAO_ADMIN_TOKEN`), if any.
    pub admin_token: Option<AdminToken>,
}

impl Endpoints {
    /// The endpoint of one bureau.
    pub fn of(&self, bureau: Bureau) -> &str {
        match bureau {
            Bureau::Out => &self.out,
            Bureau::In => &self.inn,
        }
    }

    /// A connected channel to one bureau.
    pub async fn channel(&self, bureau: Bureau) -> Result<Channel, CliError> {
        let endpoint = self.of(bureau);
        let service = Side::from(bureau).service();
        let failed = |detail: String| CliError::Connect {
            service,
            endpoint: endpoint.to_owned(),
            detail,
        };
        Endpoint::from_shared(endpoint.to_owned())
            .map_err(|error| failed(chain(&error)))?
            .connect_timeout(CONNECT_TIMEOUT)
            .connect()
            .await
            .map_err(|error| failed(chain(&error)))
    }

    /// A `BureauService` client of one bureau.
    pub async fn bureau(&self, bureau: Bureau) -> Result<BureauServiceClient<Channel>, CliError> {
        Ok(BureauServiceClient::new(self.channel(bureau).await?))
    }

    /// An `AdminService` client of one bureau, presenting the admin token if there is one.
    pub async fn admin(&self, bureau: Bureau) -> Result<AdminClient, CliError> {
        Ok(admin_client(
            self.channel(bureau).await?,
            self.admin_token.as_ref(),
        ))
    }

    /// `AdminService` clients of both bureaus: (transfer-out, transfer-in).
    pub async fn admins(&self) -> Result<(AdminClient, AdminClient), CliError> {
        let (out, inn) = tokio::join!(self.channel(Bureau::Out), self.channel(Bureau::In));
        let token = self.admin_token.as_ref();
        Ok((admin_client(out?, token), admin_client(inn?, token)))
    }
}

/// The loopback address `up` listens on for an endpoint such as `http://127.0.0.1:50051`.
pub fn listen_address(endpoint: &str) -> Result<SocketAddr, CliError> {
    let authority = endpoint
        .strip_prefix("http://")
        .unwrap_or(endpoint)
        .trim_end_matches('/');
    let authority = match authority.strip_prefix("localhost:") {
        Some(port) => format!("127.0.0.1:{port}"),
        None => authority.to_owned(),
    };
    let address: SocketAddr = authority.parse().map_err(|_| {
        CliError::Failed(format!(
            "cannot listen at {endpoint}: expected http://127.0.0.1:PORT"
        ))
    })?;
    if !address.ip().is_loopback() || address.port() == 0 {
        return Err(CliError::Failed(format!(
            "cannot listen at {endpoint}: up binds a fixed port on loopback only \
             (http://127.0.0.1:PORT)"
        )));
    }
    Ok(address)
}

/// An error and its causes on one line (a transport error alone says only "transport error").
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        // hyper and tonic often repeat their cause's text in their own; print it once.
        let inner_text = inner.to_string();
        if !text.ends_with(&inner_text) {
            text.push_str(": ");
            text.push_str(&inner_text);
        }
        cause = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn up_listens_at_the_endpoint_port_on_loopback() {
        let address = listen_address("http://127.0.0.1:50051").expect("valid");
        assert_eq!(address, "127.0.0.1:50051".parse().expect("address"));
        let address = listen_address("http://localhost:6000/").expect("valid");
        assert_eq!(address.port(), 6000);
    }

    #[test]
    fn up_refuses_a_non_loopback_or_ephemeral_address() {
        assert!(listen_address("http://0.0.0.0:50051").is_err());
        assert!(listen_address("http://10.0.0.1:50051").is_err());
        assert!(listen_address("http://127.0.0.1:0").is_err());
        assert!(listen_address("bureau.example:50051").is_err());
    }
}
