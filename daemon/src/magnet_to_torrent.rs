//! `rain magnet-to-torrent`: fetches a magnet link's info dictionary from peers (ut_metadata)
//! in a throw-away session and writes it as a `.torrent` file.

use std::io::Write;

use rain_proto::magnet;
use rain_runtime::session::{AddOptions, Session, SessionEvent};
use tokio::sync::broadcast::error::RecvError;

use crate::cli::{CliError, MagnetToTorrentArgs};
use crate::session_config::session_config;

fn failed(msg: impl std::fmt::Display) -> CliError {
    CliError::Failed(msg.to_string())
}

/// Runs the command; prints the name of the file written.
pub fn run(args: &MagnetToTorrentArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let link =
        magnet::parse(&args.magnet).map_err(|e| failed(format!("invalid magnet link: {e}")))?;
    let config = crate::server::load_config(args.config.as_deref())?;
    let scratch = tempfile::Builder::new()
        .prefix("rain-magnet-")
        .tempdir()
        .map_err(|e| failed(format!("cannot create a temporary directory: {e}")))?;
    let mut settings = session_config(&config).map_err(failed)?;
    settings.database = scratch.path().join("session.db");
    settings.data_dir = scratch.path().join("data");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| failed(format!("cannot start the runtime: {e}")))?;
    let bytes = runtime.block_on(async {
        let session = Session::new(settings).await.map_err(failed)?;
        let result = tokio::time::timeout(args.timeout, fetch(&session, &args.magnet, &args.peers))
            .await
            .unwrap_or_else(|_| {
                Err(failed(format!(
                    "metadata not received within {}",
                    humantime::format_duration(args.timeout)
                )))
            });
        let _ = session.close().await;
        result
    })?;
    let name = link.name.unwrap_or_else(|| link.info_hash.to_hex());
    let path = args
        .output
        .clone()
        .unwrap_or_else(|| format!("{}.torrent", name.replace(['/', '\\'], "_")));
    std::fs::write(&path, bytes).map_err(|e| failed(format!("cannot write {path}: {e}")))?;
    writeln!(out, "{path}").map_err(failed)
}

async fn fetch(session: &Session, link: &str, peers: &[String]) -> Result<Vec<u8>, CliError> {
    let mut events = session.subscribe();
    let opts = AddOptions {
        stop_after_metadata: true,
        ..AddOptions::default()
    };
    let id = session.add_magnet(link, opts).await.map_err(failed)?.id;
    for peer in peers {
        session
            .add_peer(&id, peer)
            .await
            .map_err(|e| failed(format!("--peer {peer}: {e}")))?;
    }
    loop {
        match events.recv().await {
            Ok(SessionEvent::MetadataReceived { id: got }) if got == id => break,
            Ok(SessionEvent::Stopped {
                id: got,
                error: Some(e),
            }) if got == id => return Err(failed(e)),
            Ok(_) | Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => return Err(failed("the session closed")),
        }
    }
    session.torrent_bytes(&id).await.map_err(failed)
}
