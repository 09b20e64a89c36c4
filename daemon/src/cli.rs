//! The `rain` command line. User errors print one line and exit with status 1.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::{logging, torrent_tools};

/// rain: a BitTorrent client.
#[derive(Debug, Parser)]
#[command(name = "rain", version, disable_version_flag = true)]
pub struct Cli {
    /// Print version.
    #[arg(short = 'v', long = "version", action = clap::ArgAction::Version)]
    version: Option<bool>,
    /// Enable debug logging.
    #[arg(short, long, global = true)]
    pub debug: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
// Parsed once per run: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Offline tools for .torrent files.
    #[command(subcommand)]
    Torrent(TorrentCommand),
    /// Run the server: a session operated over JSON-RPC (same as `raind`).
    Server(ServerArgs),
    /// Download one torrent into the current directory (no server).
    Download(DownloadArgs),
    /// Fetch a magnet link's metadata from peers and save it as a .torrent file.
    MagnetToTorrent(MagnetToTorrentArgs),
    /// Rewrite the resume database compactly (run while the server is stopped).
    CompactDatabase(ConfigArgs),
    /// Send an RPC request to a rain server.
    Client(crate::client::ClientArgs),
    /// Print a shell completion script.
    Completions {
        /// The shell: bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

/// `rain torrent …`
#[derive(Debug, Subcommand)]
pub enum TorrentCommand {
    /// Print a .torrent file as JSON (piece hashes elided).
    Show {
        /// The .torrent file.
        #[arg(short, long)]
        file: PathBuf,
    },
    /// Print the info-hash of a .torrent file.
    Infohash {
        /// The .torrent file.
        #[arg(short, long)]
        file: PathBuf,
    },
    /// Create a .torrent file.
    Create(CreateArgs),
}

/// `rain torrent create` flags (rain's names).
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// File or directory to add (repeatable).
    #[arg(short, long = "file", required = true)]
    pub files: Vec<String>,
    /// Where to write the .torrent.
    #[arg(short, long)]
    pub out: String,
    /// Root directory: paths are made relative to it (needed with several files).
    #[arg(short, long)]
    pub root: Option<String>,
    /// Torrent name (needed with several files).
    #[arg(short, long)]
    pub name: Option<String>,
    /// Mark the torrent private (BEP 27).
    #[arg(short, long)]
    pub private: bool,
    /// Piece length in KiB, a multiple of 16 (default: automatic).
    #[arg(short = 'l', long)]
    pub piece_length: Option<u32>,
    /// Comment.
    #[arg(short, long)]
    pub comment: Option<String>,
    /// Tracker URL (repeatable; each becomes its own tier).
    #[arg(short, long = "tracker")]
    pub trackers: Vec<String>,
    /// WebSeed URL (repeatable).
    #[arg(short, long = "webseed")]
    pub webseeds: Vec<String>,
    /// Source tag written into the info dictionary.
    #[arg(long)]
    pub source: Option<String>,
    /// Creation date in Unix seconds; default now, or $SOURCE_DATE_EPOCH when set.
    #[arg(long, conflicts_with = "no_creation_date")]
    pub creation_date: Option<i64>,
    /// Leave the creation date out, for byte-identical output.
    #[arg(long)]
    pub no_creation_date: bool,
}

/// `rain server` / `raind` flags.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Config file (default: $HOME/rain/config.yaml, if present).
    #[arg(short, long)]
    pub config: Option<String>,
}

/// Commands that only read the config.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Config file (default: $HOME/rain/config.yaml, if present).
    #[arg(short, long)]
    pub config: Option<String>,
}

/// `rain magnet-to-torrent` flags (rain's names).
#[derive(Debug, Args)]
pub struct MagnetToTorrentArgs {
    /// Config file (default: $HOME/rain/config.yaml, if present).
    #[arg(short, long)]
    pub config: Option<String>,
    /// The magnet link.
    #[arg(short, long)]
    pub magnet: String,
    /// Where to write the .torrent (default: <name>.torrent).
    #[arg(short, long)]
    pub output: Option<String>,
    /// Give up after this long (e.g. 30s, 5m).
    #[arg(short, long, default_value = "1m", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
    /// A peer to fetch the metadata from, host:port (repeatable).
    #[arg(long = "peer")]
    pub peers: Vec<String>,
}

/// `rain download` flags (rain's names).
#[derive(Debug, Args)]
pub struct DownloadArgs {
    /// Config file (default: $HOME/rain/config.yaml, if present).
    #[arg(short, long)]
    pub config: Option<String>,
    /// A .torrent file, a magnet link, or an http(s) URL of a .torrent.
    #[arg(short, long)]
    pub torrent: String,
    /// Keep seeding after the download completes (until Ctrl-C).
    #[arg(short, long)]
    pub seed: bool,
    /// Resume database (default: <torrent name>.resume).
    #[arg(short, long)]
    pub resume: Option<String>,
    /// A peer to connect to, host:port (repeatable).
    #[arg(long = "peer")]
    pub peers: Vec<String>,
}

/// A failure a user can cause, printed as one line.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad command-line usage.
    #[error("{0}")]
    Usage(String),
    /// Anything else, already worded for the user.
    #[error("{0}")]
    Failed(String),
}

/// Parses `args` and runs the command, writing results to `out`.
pub fn run<I, T>(args: I, out: &mut dyn Write) -> Result<(), CliError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => {
            logging::init(cli.debug, matches!(cli.command, Command::Server(_)));
            cli
        }
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            write!(out, "{e}").map_err(|e| CliError::Failed(e.to_string()))?;
            return Ok(());
        }
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            return Err(CliError::Usage(
                "a subcommand is required (see --help)".into(),
            ));
        }
        Err(e) => return Err(CliError::Usage(one_line(&e.render().to_string()))),
    };
    match cli.command {
        Command::Torrent(TorrentCommand::Show { file }) => torrent_tools::show(&file, out),
        Command::Torrent(TorrentCommand::Infohash { file }) => torrent_tools::infohash(&file, out),
        Command::Torrent(TorrentCommand::Create(args)) => torrent_tools::create(&args, out),
        Command::Server(args) => crate::server::run(args.config.as_deref()),
        Command::Download(args) => crate::download::download(&args),
        Command::MagnetToTorrent(args) => crate::magnet_to_torrent::run(&args, out),
        Command::CompactDatabase(args) => crate::compact::run(args.config.as_deref(), out),
        Command::Client(args) => crate::client::run(&args, out),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "rain", out);
            Ok(())
        }
    }
}

/// Joins clap's first paragraph into one line, dropping the `error: ` prefix.
fn one_line(rendered: &str) -> String {
    let text: Vec<&str> = rendered
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    text.join(" ").trim_start_matches("error: ").to_owned()
}

/// raind: the rain server (the same as `rain server`).
#[derive(Debug, Parser)]
#[command(name = "raind", version, disable_version_flag = true)]
struct Raind {
    /// Print version.
    #[arg(short = 'v', long = "version", action = clap::ArgAction::Version)]
    version: Option<bool>,
    /// Enable debug logging.
    #[arg(short, long)]
    debug: bool,
    #[command(flatten)]
    server: ServerArgs,
}

/// The `raind` binary's entry point.
pub fn raind_main() -> ExitCode {
    let args = match Raind::try_parse() {
        Ok(args) => args,
        Err(e) if !e.use_stderr() => {
            print!("{e}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("raind: {}", one_line(&e.render().to_string()));
            return ExitCode::FAILURE;
        }
    };
    logging::init(args.debug, true);
    match crate::server::run(args.server.config.as_deref()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("raind: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The `rain` binary's entry point.
pub fn main() -> ExitCode {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match run(std::env::args_os(), &mut out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = out.flush();
            eprintln!("rain: {e}");
            ExitCode::FAILURE
        }
    }
}
