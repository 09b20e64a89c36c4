//! Fuzz bodies: one function per cargo-fuzz target, taking raw bytes and never panicking.
//!
//! They live here, not in the fuzz crate, so that normal builds compile them and the tests
//! replay the committed corpus through them (DESIGN.md §4).

pub mod dht;
pub mod extension;
pub mod mse;
pub mod torrent;
pub mod torrent_machine;
pub mod tracker;
pub mod wire;
