//! Logging with tracing: to stderr, `info` for the server and `warn` for one-shot commands,
//! `debug` with `--debug`; `RAIN_LOG` (an `EnvFilter` directive such as `rain_runtime=trace`)
//! overrides both.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once; later calls (tests running several commands in one
/// process) keep the first.
pub fn init(debug: bool, server: bool) {
    let level = match (debug, server) {
        (true, _) => "debug",
        (false, true) => "info",
        (false, false) => "warn",
    };
    let filter = EnvFilter::try_from_env("RAIN_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(debug)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
