//! `rain client …`: JSON-RPC requests to a running rain server (reference/rain-behaviour.md
//! §2 "rain client", §3). Getters print pretty JSON of the value rain's own client prints
//! (the list, the torrent, the stats… unwrapped from the reply object); `stats` and
//! `session-stats` print rain's human summary unless `--json`; actions print nothing.

pub mod format;
pub mod rpc_client;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand};
use serde::Serialize;

use crate::cli::CliError;
use crate::rpc::types::AddOptions;

pub use format::{format_session_stats, format_stats};
pub use rpc_client::{ClientError, DEFAULT_URL, RpcClient};

/// The environment variable read when `--token` is not given.
pub const TOKEN_ENV: &str = "RAIN_RPC_TOKEN";

/// A local file larger than this is refused by `add` before it is read: no `.torrent` is
/// this big, and it would not fit in one request anyway.
const MAX_TORRENT_FILE: u64 = 64 * 1024 * 1024;

/// Where `--url`, `--timeout` and `--token` are listed in help.
const SERVER_OPTIONS: &str = "Server options";

/// `rain client` flags (rain's names) and its subcommand.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// URL of the RPC server.
    #[arg(long, global = true, default_value = DEFAULT_URL, help_heading = SERVER_OPTIONS)]
    pub url: String,
    /// Request timeout, e.g. 10s, 1m30s (0: none).
    #[arg(
        long,
        global = true,
        default_value = "10s",
        value_parser = humantime::parse_duration,
        help_heading = SERVER_OPTIONS
    )]
    pub timeout: Duration,
    /// Bearer token for a server with rpc-token set [default: $RAIN_RPC_TOKEN].
    #[arg(long, global = true, help_heading = SERVER_OPTIONS)]
    pub token: Option<String>,
    /// The request to send.
    #[command(subcommand)]
    pub command: ClientCommand,
}

/// `--id`, required by every per-torrent subcommand. Generated ids are base64url and may start
/// with `-`, so a value that looks like a flag is still taken as the id.
#[derive(Debug, Args)]
pub struct IdArg {
    /// Torrent ID.
    #[arg(long, allow_hyphen_values = true)]
    pub id: String,
}

/// `--id` and the optional `--json` of the JSON getters.
#[derive(Debug, Args)]
pub struct IdJsonArgs {
    /// Torrent ID.
    #[arg(long, allow_hyphen_values = true)]
    pub id: String,
    /// Print JSON (the default; accepted for symmetry with `stats`).
    #[arg(long)]
    pub json: bool,
}

/// `rain client add` flags.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// A .torrent file, a magnet link, or an http(s) URL of a .torrent.
    #[arg(short, long)]
    pub torrent: String,
    /// Do not start the torrent.
    #[arg(long)]
    pub stopped: bool,
    /// Stop the torrent once the download finishes.
    #[arg(long)]
    pub stop_after_download: bool,
    /// Stop the torrent once its metadata is downloaded.
    #[arg(long)]
    pub stop_after_metadata: bool,
    /// Download pieces in order.
    #[arg(long)]
    pub sequential: bool,
    /// Torrent ID (default: a unique one is generated).
    #[arg(long, allow_hyphen_values = true)]
    pub id: Option<String>,
}

/// `rain client` subcommands, in rain's order.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Print the server version.
    Version,
    /// List torrents.
    List {
        /// Print JSON (the default; accepted for symmetry with `stats`).
        #[arg(long)]
        json: bool,
    },
    /// Add a torrent file, magnet link or torrent URL.
    Add(AddArgs),
    /// Remove a torrent (and its data unless --keep-data).
    Remove {
        /// Torrent ID.
        #[arg(long, allow_hyphen_values = true)]
        id: String,
        /// Keep the downloaded files.
        #[arg(long)]
        keep_data: bool,
    },
    /// Delete database records that failed to load.
    CleanDatabase,
    /// Print the stats of a torrent.
    Stats {
        /// Torrent ID.
        #[arg(long, allow_hyphen_values = true)]
        id: String,
        /// Print raw stats as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the stats of the session.
    SessionStats {
        /// Print raw stats as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the trackers of a torrent.
    Trackers(IdJsonArgs),
    /// Print the webseed sources of a torrent.
    Webseeds(IdJsonArgs),
    /// Print the files of a torrent.
    Files(IdJsonArgs),
    /// Print the files of a torrent with their progress.
    FileStats(IdJsonArgs),
    /// Print the peers of a torrent.
    Peers(IdJsonArgs),
    /// Add a peer to a torrent.
    AddPeer {
        /// Torrent ID.
        #[arg(long, allow_hyphen_values = true)]
        id: String,
        /// Peer address, host:port.
        #[arg(long)]
        addr: String,
    },
    /// Add a tracker to a torrent.
    AddTracker {
        /// Torrent ID.
        #[arg(long, allow_hyphen_values = true)]
        id: String,
        /// Tracker URL.
        #[arg(short, long)]
        tracker: String,
    },
    /// Ask trackers and the DHT for more peers.
    Announce(IdArg),
    /// Verify the files of a torrent (it is left stopped).
    Verify(IdArg),
    /// Start a torrent.
    Start(IdArg),
    /// Stop a torrent.
    Stop(IdArg),
    /// Start all torrents.
    StartAll,
    /// Stop all torrents.
    StopAll,
    /// Move a torrent to another rain server.
    Move {
        /// Torrent ID.
        #[arg(long, allow_hyphen_values = true)]
        id: String,
        /// The other server, e.g. http://host:7246 (http:// is assumed without a scheme).
        #[arg(long)]
        target: String,
    },
    /// Save the .torrent file of a torrent.
    Torrent {
        /// Torrent ID.
        #[arg(long, allow_hyphen_values = true)]
        id: String,
        /// Where to write the .torrent.
        #[arg(short, long)]
        out: PathBuf,
    },
    /// Print the magnet link of a torrent.
    Magnet(IdArg),
    /// Watch and control the server in a terminal UI.
    Console {
        /// List columns, separated by spaces: # ID Name InfoHash Port Status Progress Speed
        /// Peers Size ETA Ratio.
        #[arg(long, default_value = crate::console::DEFAULT_COLUMNS)]
        columns: String,
    },
}

/// The token to send: `--token`, else `$RAIN_RPC_TOKEN`; empty means none.
pub fn resolve_token(flag: Option<&str>, env: Option<String>) -> Option<String> {
    flag.map(str::to_owned)
        .or(env)
        .filter(|token| !token.is_empty())
}

/// Runs `rain client …` on its own single-threaded runtime, writing results to `out`.
pub fn run(args: &ClientArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let token = resolve_token(args.token.as_deref(), std::env::var(TOKEN_ENV).ok());
    if let ClientCommand::Console { columns } = &args.command {
        return crate::console::run(&args.url, args.timeout, token.as_deref(), columns);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| failed(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(async {
        let client = RpcClient::new(&args.url, args.timeout, token.as_deref()).map_err(failed)?;
        execute(&client, &args.command, out).await
    })
}

/// Sends the request `command` stands for and prints its answer to `out`.
pub async fn execute(
    client: &RpcClient,
    command: &ClientCommand,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    match command {
        ClientCommand::Version => {
            let version = client.version().await.map_err(failed)?;
            write_line(out, &version)
        }
        ClientCommand::List { .. } => {
            print_json(out, &client.list_torrents().await.map_err(failed)?)
        }
        ClientCommand::Add(args) => add(client, args, out).await,
        ClientCommand::Remove { id, keep_data } => {
            client.remove_torrent(id, *keep_data).await.map_err(failed)
        }
        ClientCommand::CleanDatabase => client.clean_database().await.map_err(failed),
        ClientCommand::Stats { id, json } => {
            let stats = client.torrent_stats(id).await.map_err(failed)?;
            if *json {
                print_json(out, &stats)
            } else {
                write_text(out, &format_stats(&stats))
            }
        }
        ClientCommand::SessionStats { json } => {
            let stats = client.session_stats().await.map_err(failed)?;
            if *json {
                print_json(out, &stats)
            } else {
                write_text(out, &format_session_stats(&stats))
            }
        }
        ClientCommand::Trackers(a) => {
            print_json(out, &client.trackers(&a.id).await.map_err(failed)?)
        }
        ClientCommand::Webseeds(a) => {
            print_json(out, &client.webseeds(&a.id).await.map_err(failed)?)
        }
        ClientCommand::Files(a) => print_json(out, &client.files(&a.id).await.map_err(failed)?),
        ClientCommand::FileStats(a) => {
            print_json(out, &client.file_stats(&a.id).await.map_err(failed)?)
        }
        ClientCommand::Peers(a) => print_json(out, &client.peers(&a.id).await.map_err(failed)?),
        ClientCommand::AddPeer { id, addr } => client.add_peer(id, addr).await.map_err(failed),
        ClientCommand::AddTracker { id, tracker } => {
            client.add_tracker(id, tracker).await.map_err(failed)
        }
        ClientCommand::Announce(a) => client.announce(&a.id).await.map_err(failed),
        ClientCommand::Verify(a) => client.verify(&a.id).await.map_err(failed),
        ClientCommand::Start(a) => client.start(&a.id).await.map_err(failed),
        ClientCommand::Stop(a) => client.stop(&a.id).await.map_err(failed),
        ClientCommand::StartAll => client.start_all().await.map_err(failed),
        ClientCommand::StopAll => client.stop_all().await.map_err(failed),
        ClientCommand::Move { id, target } => client
            .move_torrent(id, &with_scheme(target))
            .await
            .map_err(failed),
        ClientCommand::Torrent { id, out: path } => {
            let data = client.torrent_file(id).await.map_err(failed)?;
            std::fs::write(path, data)
                .map_err(|e| failed(format!("cannot write {}: {e}", path.display())))
        }
        ClientCommand::Magnet(a) => {
            let magnet = client.magnet(&a.id).await.map_err(failed)?;
            write_line(out, &magnet)
        }
        ClientCommand::Console { .. } => Err(failed(
            "the console needs a terminal of its own: run `rain client console`",
        )),
    }
}

/// `magnet:`, `http://` and `https://` go to `AddURI`; anything else is a local file.
fn is_uri(arg: &str) -> bool {
    ["magnet:", "http://", "https://"]
        .iter()
        .any(|prefix| arg.starts_with(prefix))
}

async fn add(client: &RpcClient, args: &AddArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let options = AddOptions {
        id: args.id.clone().unwrap_or_default(),
        stopped: args.stopped,
        stop_after_download: args.stop_after_download,
        stop_after_metadata: args.stop_after_metadata,
        sequential: args.sequential,
    };
    let torrent = if is_uri(&args.torrent) {
        client.add_uri(&args.torrent, options).await
    } else {
        let data = read_torrent_file(Path::new(&args.torrent))?;
        client.add_torrent(&data, options).await
    }
    .map_err(failed)?;
    print_json(out, &torrent)
}

fn read_torrent_file(path: &Path) -> Result<Vec<u8>, CliError> {
    let cannot_read =
        |e: &dyn std::fmt::Display| failed(format!("cannot read {}: {e}", path.display()));
    let meta = std::fs::metadata(path).map_err(|e| cannot_read(&e))?;
    if meta.is_dir() {
        return Err(cannot_read(&"is a directory"));
    }
    if meta.len() > MAX_TORRENT_FILE {
        return Err(failed(format!(
            "{}: {} bytes is too large for a torrent file",
            path.display(),
            meta.len()
        )));
    }
    std::fs::read(path).map_err(|e| cannot_read(&e))
}

/// rain's server posts to `<target>/move-torrent`, so a bare `host:port` (what rain's help
/// suggests) needs a scheme.
fn with_scheme(target: &str) -> String {
    if target.contains("://") {
        target.to_owned()
    } else {
        format!("http://{target}")
    }
}

fn failed(msg: impl std::fmt::Display) -> CliError {
    CliError::Failed(msg.to_string())
}

fn write_text(out: &mut dyn Write, text: &str) -> Result<(), CliError> {
    out.write_all(text.as_bytes())
        .map_err(|e| failed(format!("cannot write output: {e}")))
}

fn write_line(out: &mut dyn Write, line: &str) -> Result<(), CliError> {
    write_text(out, &format!("{line}\n"))
}

fn print_json<T: Serialize + ?Sized>(out: &mut dyn Write, value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| failed(format!("cannot encode JSON: {e}")))?;
    write_line(out, &text)
}

#[cfg(test)]
mod tests;
