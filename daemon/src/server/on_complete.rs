//! `on-complete-cmd`: a program run when a torrent completes, once per torrent ever (rain
//! §1.19). The persisted `complete_cmd_run` flag is claimed before the program starts, so a
//! crash or restart never runs it twice.

use std::process::Stdio;
use std::sync::Arc;

use rain_runtime::session::{Session, SessionEvent};
use tokio::sync::broadcast::error::RecvError;

/// Runs `argv` for every torrent of `session` that completes, until the session closes.
pub fn spawn(session: &Arc<Session>, argv: Vec<String>) -> tokio::task::JoinHandle<()> {
    let mut events = session.subscribe();
    let session = Arc::downgrade(session);
    tokio::spawn(async move {
        loop {
            let id = match events.recv().await {
                Ok(SessionEvent::Completed { id }) => id,
                Ok(_) => continue,
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "on-complete-cmd fell behind session events");
                    continue;
                }
                Err(RecvError::Closed) => return,
            };
            let Some(session) = session.upgrade() else {
                return;
            };
            if let Err(e) = run_once(&session, &argv, &id).await {
                tracing::warn!(torrent = %id, "on-complete-cmd: {e}");
            }
        }
    })
}

async fn run_once(session: &Session, argv: &[String], id: &str) -> Result<(), String> {
    let Some((program, args)) = argv.split_first() else {
        return Ok(());
    };
    if !session
        .claim_complete_cmd(id)
        .await
        .map_err(|e| e.to_string())?
    {
        return Ok(());
    }
    let summary = session.get(id).ok_or("torrent removed")?;
    let dir = session.storage_dir(id).map_err(|e| e.to_string())?;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .env("RAIN_TORRENT_ADDED", summary.added_at.to_string())
        .env("RAIN_TORRENT_DIR", &dir)
        .env("RAIN_TORRENT_HASH", summary.info_hash.to_hex())
        .env("RAIN_TORRENT_ID", id)
        .env("RAIN_TORRENT_NAME", &summary.name)
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    tracing::info!(torrent = %id, "on-complete-cmd started");
    // Reap it in the background so a slow hook never holds up the next one.
    let id = id.to_owned();
    tokio::spawn(async move {
        match child.wait().await {
            Ok(status) if status.success() => {}
            Ok(status) => tracing::warn!(torrent = %id, %status, "on-complete-cmd failed"),
            Err(e) => tracing::warn!(torrent = %id, "on-complete-cmd: {e}"),
        }
    });
    Ok(())
}
