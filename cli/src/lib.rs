//! The `cadastre` command's library: each subcommand's logic lives here so tests can run it
//! in-process; `main.rs` only parses arguments and maps results to exit codes.
//!
//! Subcommands today: `validate`. Later issues add `up` and one subcommand per service.

pub mod config;
pub mod validate;
