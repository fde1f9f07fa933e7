//! Mutual TLS on the platform listener, over real connections to a running pair: a caller
//! without a certificate is UNAUTHENTICATED, a certificate of the platform CA that does not name
//! the envelope's sender region is PERMISSION_DENIED and nothing is written, a certificate of
//! another CA or no TLS at all does not even connect, and the peer's own certificate is answered.

use std::path::Path;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use yibao_harness::tls::{Platform, TlsPaths};
use yibao_proto::bureau::v1::GetTransferRequest;
use yibao_proto::bureau::v1::bureau_service_client::BureauServiceClient;
use yibao_proto::platform::v1 as platform;
use yibao_proto::platform::v1::transfer_out_platform_service_client::TransferOutPlatformServiceClient;
use yibao_tests::*;

const ID: &str = "540100202611239000077";

/// A request from Lhasa (transfer-in) for a transfer it minted.
fn request() -> platform::RequestTransferOutRequest {
    let person = someone(yibao_domain::population::Flow::CrossProvince);
    platform::RequestTransferOutRequest {
        envelope: Some(platform::Envelope {
            infno: "9101".to_owned(),
            msgid: "B54010000009202611231200000077".to_owned(),
            sender_region_code: "540100".to_owned(),
            receiver_region_code: "150100".to_owned(),
            sent_at: None,
            transfer_id: ID.to_owned(),
        }),
        application: Some(platform::TransferApplication {
            transfer_id: ID.to_owned(),
            certno: person.certno.expose_unmasked().to_owned(),
            psn_name: person.name.clone(),
            trafout_admdvs: "150100".to_owned(),
            trafin_admdvs: "540100".to_owned(),
            ..Default::default()
        }),
    }
}

/// A TLS channel trusting `ca`, presenting `identity` if any.
fn tls_channel(address: &str, ca: &Path, identity: Option<(&Path, &Path)>) -> Channel {
    let read = |path: &Path| std::fs::read(path).expect("a TLS file");
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(ca)));
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(read(cert), read(key)));
    }
    Endpoint::from_shared(format!("https://{address}"))
        .expect("uri")
        .tls_config(tls)
        .expect("tls settings")
        .connect_lazy()
}

fn issue(dir: &Path, name: &str, regions: &[&str]) -> TlsPaths {
    let bureau = yibao_pki::Bureau {
        name: name.to_owned(),
        regions: regions.iter().map(|r| (*r).to_owned()).collect(),
        hosts: Vec::new(),
    };
    let set =
        yibao_pki::write_development_set(dir, &[bureau], yibao_pki::Validity::years_from(2026, 2))
            .expect("certificates");
    TlsPaths {
        ca: set.ca_cert,
        cert: set.bureaus[0].cert.clone(),
        key: set.bureaus[0].key.clone(),
    }
}

async fn nothing_written(pair: &Pair) {
    let status = BureauServiceClient::new(pair.channel(Side::Out))
        .get_transfer(GetTransferRequest {
            transfer_id: ID.to_owned(),
        })
        .await
        .expect_err("no such transfer");
    assert_eq!(status.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn the_platform_answers_only_certified_callers_for_their_own_regions() {
    let pair = seeded_pair().await;
    let address = pair
        .platform_address(Side::Out)
        .expect("transfer-out's platform listener")
        .to_string();
    let Platform::MutualTls(peer) = pair.platform(Side::In).clone() else {
        panic!("the pair runs mutual TLS by default");
    };

    // No certificate: the handshake completes, the call is refused.
    let mut anonymous =
        TransferOutPlatformServiceClient::new(tls_channel(&address, &peer.ca, None));
    let status = anonymous
        .request_transfer_out(request())
        .await
        .expect_err("no certificate");
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");

    // The platform CA's certificate for Shenzhen only: not Lhasa's voice.
    let ca_dir = peer.ca.parent().expect("the CA's directory");
    let shenzhen = issue(ca_dir, "shenzhen-only", &["440300"]);
    let mut stranger = TransferOutPlatformServiceClient::new(tls_channel(
        &address,
        &shenzhen.ca,
        Some((&shenzhen.cert, &shenzhen.key)),
    ));
    let status = stranger
        .request_transfer_out(request())
        .await
        .expect_err("the certificate does not name 540100");
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    nothing_written(&pair).await;

    // Another CA's certificate naming Lhasa: the server does not accept the handshake.
    let other_ca = tempfile::tempdir().expect("dir");
    let forged = issue(other_ca.path(), "forged", &["540100"]);
    let mut forger = TransferOutPlatformServiceClient::new(tls_channel(
        &address,
        &peer.ca,
        Some((&forged.cert, &forged.key)),
    ));
    assert!(forger.request_transfer_out(request()).await.is_err());
    // No TLS at all.
    let plain = Endpoint::from_shared(format!("http://{address}"))
        .expect("uri")
        .connect_lazy();
    let mut plain = TransferOutPlatformServiceClient::new(plain);
    assert!(plain.request_transfer_out(request()).await.is_err());
    nothing_written(&pair).await;

    // The peer's own certificate is answered.
    let mut peer_client = TransferOutPlatformServiceClient::new(
        pair.platform_channel(Side::Out).expect("platform channel"),
    );
    let answer = peer_client
        .request_transfer_out(request())
        .await
        .expect("answered")
        .into_inner();
    assert_eq!(answer.reply.map(|reply| reply.infcode), Some(0));
    assert_form_of_a_stranger_refused(&pair).await;
}
