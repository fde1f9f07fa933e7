//! The gRPC handlers (thin layers over the drivers) and the routes that serve them.

pub mod admin;
pub mod bureau;
pub mod platform;

use std::sync::Arc;

use yibao_proto::admin::v1::admin_service_server::AdminServiceServer;
use yibao_proto::bureau::v1::bureau_service_server::BureauServiceServer;
use yibao_proto::platform::v1::transfer_in_platform_service_server::TransferInPlatformServiceServer;
use yibao_proto::platform::v1::transfer_out_platform_service_server::TransferOutPlatformServiceServer;

use crate::services::{Admin, Services};

/// The contract's encoded descriptor set, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = yibao_proto::FILE_DESCRIPTOR_SET;

/// Every service a bureau serves, and their full names (for health and reflection).
pub fn routes(services: &Arc<Services>) -> (tonic::service::Routes, Vec<&'static str>) {
    let platform = platform::PlatformApi::new(services.clone());
    let mut routes = tonic::service::Routes::new(BureauServiceServer::new(bureau::BureauApi::new(
        services.clone(),
    )))
    .add_service(TransferOutPlatformServiceServer::new(platform.clone()))
    .add_service(TransferInPlatformServiceServer::new(platform));
    let mut names = vec![
        "yibao.bureau.v1.BureauService",
        "yibao.platform.v1.TransferOutPlatformService",
        "yibao.platform.v1.TransferInPlatformService",
    ];
    if services.admin == Admin::Enabled {
        routes = routes.add_service(AdminServiceServer::new(admin::AdminApi::new(
            services.clone(),
        )));
        names.push("yibao.admin.v1.AdminService");
    }
    (routes, names)
}

#[cfg(test)]
mod tests {
    use prost::Message;

    #[test]
    fn the_descriptor_set_given_to_reflection_names_every_service_served() {
        let set = prost_types::FileDescriptorSet::decode(super::FILE_DESCRIPTOR_SET)
            .expect("the embedded descriptor set decodes");
        let names: Vec<String> = set
            .file
            .iter()
            .flat_map(|file| {
                file.service
                    .iter()
                    .map(move |service| format!("{}.{}", file.package(), service.name()))
            })
            .collect();
        for served in [
            "yibao.bureau.v1.BureauService",
            "yibao.platform.v1.TransferOutPlatformService",
            "yibao.platform.v1.TransferInPlatformService",
            "yibao.admin.v1.AdminService",
        ] {
            assert!(
                names.iter().any(|name| name == served),
                "{served} in {names:?}"
            );
        }
    }
}
