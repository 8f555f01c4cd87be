//! Shared helpers for Cadastre's cross-crate integration tests.
