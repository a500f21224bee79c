//! Shared helpers for the actors integration tests.

pub mod postcat;
