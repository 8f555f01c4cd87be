//! The `cadastre` command's library: each subcommand's logic lives here so tests can run it
//! in-process; `main.rs` only parses arguments and maps results to exit codes.
//!
//! Subcommands: `validate`, `store`. Later issues add `up` and the other services.

pub mod config;
pub mod services;
pub mod store;
pub mod validate;
