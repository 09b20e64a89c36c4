//! rain's binaries: the `rain` command line (and, with the daemon issue, `raind`).
//!
//! The command line lives in the library so tests drive exactly the code users run.

pub mod cli;
pub mod config;
mod download;
mod expand;
pub mod rpc;
pub mod session_config;
mod torrent_tools;

pub use expand::expand_env;
