//! The gRPC handlers: thin layers over the drivers.

pub mod admin;
pub mod bureau;
pub mod platform;
