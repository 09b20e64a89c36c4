//! `rain client console`: the terminal UI (reference/rain-behaviour.md §7), built with
//! ratatui and crossterm over the JSON-RPC client.
//!
//! - [`app`]: the state, a pure model changed by keys, the tick and RPC results;
//! - [`ui`]: drawing, a pure function of the state;
//! - `term`: the loop doing the I/O (terminal events, RPC requests on a tokio runtime).

pub mod app;
pub mod columns;
mod term;
pub mod ui;

use std::time::Duration;

pub use app::App;
pub use columns::{Column, DEFAULT_COLUMNS, parse_columns};

use crate::cli::CliError;

/// Runs the console against the server at `url` until the user quits. `columns` is the
/// `--columns` list; an unknown name is refused before the screen changes.
pub fn run(
    url: &str,
    timeout: Duration,
    token: Option<&str>,
    columns: &str,
) -> Result<(), CliError> {
    let columns = parse_columns(columns).map_err(CliError::Usage)?;
    term::run(url, timeout, token, columns)
}

#[cfg(test)]
mod tests;
