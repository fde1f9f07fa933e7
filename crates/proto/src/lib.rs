//! Generated code for the contract in `proto/`.
