//! The gRPC handlers (thin layers over the drivers) and the routes that serve them.

pub mod admin;
pub mod bureau;
pub mod people;
pub mod platform;

use std::sync::Arc;

use yibao_proto::admin::v1::admin_service_server::AdminServiceServer;
use yibao_proto::bureau::v1::bureau_service_server::BureauServiceServer;
use yibao_proto::platform::v1::transfer_in_platform_service_server::TransferInPlatformServiceServer;
use yibao_proto::platform::v1::transfer_out_platform_service_server::TransferOutPlatformServiceServer;

use yibao_runtime::config::AdminToken;

use crate::admission::{Caller, Transport};
use crate::services::{Admin, Services};

/// Who may call the platform services. Over mutual TLS, a caller must present a certificate
/// (the listener verified it against the platform CA): without one the call is UNAUTHENTICATED;
/// with one, the handlers learn the regions it names. On a plaintext listener (an explicit
/// opt-out) every caller is taken at its envelope's word.
pub fn platform_guard(
    transport: Transport,
) -> impl FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Clone {
    move |mut request: tonic::Request<()>| {
        let caller = match transport {
            Transport::Plaintext => Caller::Plaintext,
            Transport::MutualTls => {
                let certificates = request.peer_certs().unwrap_or_default();
                let Some(presented) = certificates.first() else {
                    return Err(tonic::Status::unauthenticated(
                        "the platform needs a client certificate from the platform CA",
                    ));
                };
                let regions = yibao_runtime::tls::regions_presented(presented.as_ref());
                Caller::Certified(regions.into())
            }
        };
        request.extensions_mut().insert(caller);
        Ok(request)
    }
}

/// Who may call the admin API: without a token, callers on loopback only (PERMISSION_DENIED
/// otherwise); with one, any caller presenting `authorization: Bearer <token>`
/// (UNAUTHENTICATED otherwise). The admin API moves clocks and seeds people: it is never open.
pub fn admin_guard(
    token: Option<AdminToken>,
) -> impl FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Clone {
    move |request: tonic::Request<()>| match &token {
        None if request
            .remote_addr()
            .is_some_and(|peer| peer.ip().is_loopback()) =>
        {
            Ok(request)
        }
        None => Err(tonic::Status::permission_denied(
            "the admin API answers loopback callers only (no admin token is configured)",
        )),
        Some(token) => {
            let presented = request
                .metadata()
                .get("authorization")
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.strip_prefix("Bearer "));
            if presented.is_some_and(|presented| presented == token.expose()) {
                Ok(request)
            } else {
                Err(tonic::Status::unauthenticated(
                    "authorization: the admin API needs its bearer token",
                ))
            }
        }
    }
}

/// The contract's encoded descriptor set, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = yibao_proto::FILE_DESCRIPTOR_SET;

/// The platform services (bureau ⇄ bureau), for the platform listener, and their full names.
/// A request (a batch) larger than `message_bytes` is refused whole (OUT_OF_RANGE, tonic's code).
pub fn platform_routes(
    services: &Arc<Services>,
    transport: Transport,
    message_bytes: usize,
) -> (tonic::service::Routes, Vec<&'static str>) {
    use tonic::service::interceptor::InterceptedService;
    let platform = platform::PlatformApi::new(services.clone());
    let guard = platform_guard(transport);
    let out = TransferOutPlatformServiceServer::new(platform.clone())
        .max_decoding_message_size(message_bytes);
    let inn =
        TransferInPlatformServiceServer::new(platform).max_decoding_message_size(message_bytes);
    let routes = tonic::service::Routes::new(InterceptedService::new(out, guard.clone()))
        .add_service(InterceptedService::new(inn, guard));
    let names = vec![
        "yibao.platform.v1.TransferOutPlatformService",
        "yibao.platform.v1.TransferInPlatformService",
    ];
    (routes, names)
}

/// The people-facing bureau API and (when enabled) the admin API, for the main listener, and
/// their full names (for health and reflection).
pub fn routes(services: &Arc<Services>) -> (tonic::service::Routes, Vec<&'static str>) {
    let mut routes = tonic::service::Routes::new(BureauServiceServer::new(bureau::BureauApi::new(
        services.clone(),
    )));
    let mut names = vec!["yibao.bureau.v1.BureauService"];
    if services.admin == Admin::Enabled {
        routes = routes.add_service(AdminServiceServer::with_interceptor(
            admin::AdminApi::new(services.clone()),
            admin_guard(services.admin_token.clone()),
        ));
        names.push("yibao.admin.v1.AdminService");
    }
    (routes, names)
}

#[cfg(test)]
mod tests {
    use tonic::transport::server::TcpConnectInfo;

    use super::{admin_guard, platform_guard};
    use crate::admission::{Caller, Transport};

    fn from(peer: &str) -> tonic::Request<()> {
        let mut request = tonic::Request::new(());
        request.extensions_mut().insert(TcpConnectInfo {
            local_addr: None,
            remote_addr: peer.parse().ok(),
        });
        request
    }

    #[test]
    fn without_a_token_the_admin_api_answers_loopback_callers_only() {
        let mut guard = admin_guard(None);
        assert!(guard(from("127.0.0.1:40000")).is_ok());
        assert!(guard(from("[::1]:40000")).is_ok());
        let denied = guard(from("192.0.2.7:40000")).expect_err("not loopback");
        assert_eq!(denied.code(), tonic::Code::PermissionDenied);
        assert!(
            guard(tonic::Request::new(())).is_err(),
            "an unknown caller is not loopback"
        );
    }

    #[test]
    fn over_mutual_tls_a_platform_caller_without_a_certificate_is_unauthenticated() {
        let mut guard = platform_guard(Transport::MutualTls);
        let denied = guard(from("127.0.0.1:40000")).expect_err("no certificate");
        assert_eq!(denied.code(), tonic::Code::Unauthenticated);
        let mut plaintext = platform_guard(Transport::Plaintext);
        let admitted = plaintext(from("192.0.2.7:40000")).expect("plaintext admits");
        assert_eq!(
            admitted.extensions().get::<Caller>(),
            Some(&Caller::Plaintext)
        );
    }

    #[test]
    fn with_a_token_the_admin_api_answers_whoever_presents_it() {
        let token: yibao_runtime::config::AdminToken =
            serde_json::from_str("\"0123456789abcdef0123\"").expect("a token");
        let mut guard = admin_guard(Some(token));
        let mut good = from("192.0.2.7:40000");
        good.metadata_mut().insert(
            "authorization",
            "Bearer 0123456789abcdef0123".parse().expect("ascii"),
        );
        assert!(guard(good).is_ok());
        let denied = guard(from("127.0.0.1:40000")).expect_err("no token, even on loopback");
        assert_eq!(denied.code(), tonic::Code::Unauthenticated);
        let mut wrong = from("127.0.0.1:40000");
        wrong
            .metadata_mut()
            .insert("authorization", "Bearer nope".parse().expect("ascii"));
        assert!(guard(wrong).is_err());
    }
}
