//! The `cadastre` command's library: each subcommand's logic lives here so tests can run it
//! in-process; `main.rs` only parses arguments and maps results to exit codes.
//!
//! Subcommands: `validate`, `generate` (a synthetic organisation), `bench` (the scale
//! benchmark), `up` (everything in one process), and each service on its own (`store`,
//! `harvester`, `processor`, `search`, `gateway`).

pub mod bench;
pub mod config;
pub mod generate;
pub mod priority;
pub mod services;
pub mod store;
pub mod up;
pub mod validate;
