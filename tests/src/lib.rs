//! Shared helpers for rain's workspace tests.
//!
//! Tests that need a real tool or client (mktorrent, Transmission, aria2, libtorrent,
//! opentracker) call [`require`] first: where the tool is absent they print a clear `SKIP`
//! line and return, unless `RAIN_REQUIRE_INTEROP=1` is set (CI sets it, after installing the
//! tools with `scripts/install-peers.sh`), in which case a missing tool fails the test.

use std::process::Command;

pub mod aria2;
pub mod libtorrent;
pub mod lt_seeder;
pub mod opentracker;
pub mod process;
pub mod rain_peer;
pub mod transmission;

/// True when `program` can be started (`program --version`-style probe with `probe_args`).
pub fn available(program: &str, probe_args: &[&str]) -> bool {
    Command::new(program).args(probe_args).output().is_ok()
}

/// True when Python can import libtorrent.
pub fn python_libtorrent_available() -> bool {
    Command::new("python3")
        .args(["-c", "import libtorrent"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Decides what a test does when `tool` is missing: returns `true` if the test may run.
/// Without the tool it prints `SKIP <test>: <tool> is not installed` and returns `false`,
/// or panics when `RAIN_REQUIRE_INTEROP=1`.
pub fn require(test: &str, tool: &str, present: bool) -> bool {
    if present {
        return true;
    }
    assert!(
        std::env::var("RAIN_REQUIRE_INTEROP").as_deref() != Ok("1"),
        "{test}: {tool} is required (RAIN_REQUIRE_INTEROP=1) but not installed; run scripts/install-peers.sh"
    );
    eprintln!("SKIP {test}: {tool} is not installed (scripts/install-peers.sh installs it)");
    false
}

/// Runs the `rain` command line in-process and returns its standard output.
pub fn rain(args: &[&str]) -> Result<String, rain_daemon::cli::CliError> {
    let mut out = Vec::new();
    rain_daemon::cli::run(
        std::iter::once("rain").chain(args.iter().copied()),
        &mut out,
    )?;
    Ok(String::from_utf8(out).expect("rain prints UTF-8"))
}

/// Runs a command and returns its stdout, panicking with its stderr on failure.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
