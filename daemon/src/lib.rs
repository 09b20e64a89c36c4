//! rain's binaries: the `rain` command line and the `raind` server.
//!
//! The command line lives in the library so tests drive exactly the code users run.

pub mod cli;
pub mod client;
mod compact;
pub mod config;
pub mod console;
mod download;
mod expand;
mod logging;
mod magnet_to_torrent;
mod rlimit;
pub mod rpc;
pub mod server;
pub mod session_config;
mod torrent_tools;

pub use expand::expand_env;
