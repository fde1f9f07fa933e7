//! Compiles the contract in `proto/` into Rust with the pure-Rust `protox` compiler, so building
//! needs no system `protoc`, and writes the encoded descriptor set that server reflection serves.

use std::path::{Path, PathBuf};

/// Where the contract lives, relative to this crate.
const PROTO_ROOT: &str = "../../proto";

/// Every file of the contract; imports (well-known types included) are resolved by `protox`.
const PROTO_FILES: &[&str] = &[
    "yibao/common/v1/common.proto",
    "yibao/platform/v1/platform.proto",
    "yibao/bureau/v1/bureau.proto",
    "yibao/admin/v1/admin.proto",
];

/// File name, in `OUT_DIR`, of the encoded `FileDescriptorSet` (read by `src/lib.rs`).
const DESCRIPTOR_SET_FILE: &str = "yibao_descriptor.bin";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // tonic-prost-build no longer prints these itself. Watching the root directory catches new
    // files; watching each file catches edits inside the package directories.
    println!("cargo:rerun-if-changed={PROTO_ROOT}");
    for file in PROTO_FILES {
        println!("cargo:rerun-if-changed={PROTO_ROOT}/{file}");
    }

    let descriptor_set = protox::compile(PROTO_FILES, [PROTO_ROOT])?;

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    write_descriptor_set(&descriptor_set, &out_dir.join(DESCRIPTOR_SET_FILE))?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptor_set)?;
    Ok(())
}

/// Writes the descriptor set (with source comments and imports) that server reflection serves.
fn write_descriptor_set(
    descriptor_set: &prost_types::FileDescriptorSet,
    path: &Path,
) -> std::io::Result<()> {
    use prost::Message as _;
    std::fs::write(path, descriptor_set.encode_to_vec())
}
