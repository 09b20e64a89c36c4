//! `raind` (also `rain server`): a session served over rain's JSON-RPC 2.0 API until SIGINT
//! or SIGTERM, then closed gracefully so the next start trusts its resume data.

mod guard;
pub mod move_torrent;
pub mod on_complete;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use jsonrpsee::server::{Server, ServerConfig, ServerHandle};
use rain_runtime::session::Session;

use crate::cli::CliError;
use crate::config::{Config, Warning};
use crate::rpc::methods;
use crate::session_config::session_config;

pub use guard::GuardLayer;
pub use move_torrent::MoveLayer;

/// Largest RPC request body: an `AddTorrent` carries a base64 `.torrent` of up to
/// `max-torrent-size`.
fn max_request_size(config: &Config) -> u32 {
    let torrent = config.max_torrent_size.saturating_mul(4) / 3 + 64 * 1024;
    u32::try_from(torrent).unwrap_or(u32::MAX)
}

/// Loads the configuration (printing its warnings) and serves until a signal.
pub fn run(config_path: Option<&str>) -> Result<(), CliError> {
    let config = load_config(config_path)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Failed(format!("cannot start the runtime: {e}")))?;
    runtime
        .block_on(serve(config, shutdown_signal()))
        .map_err(CliError::Failed)
}

/// The configuration at `path` (or the default file), its warnings logged.
pub fn load_config(path: Option<&str>) -> Result<Config, CliError> {
    let (config, warnings) = Config::load(path.map(std::path::Path::new))
        .map_err(|e| CliError::Failed(e.to_string()))?;
    for w in &warnings {
        if matches!(w, Warning::DefaultFileMissing { .. }) {
            tracing::info!("{w}");
        } else {
            tracing::warn!("{w}");
        }
    }
    Ok(config)
}

/// Resolves on the first SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Opens the session, serves RPC per `config` until `shutdown` resolves, then stops the
/// server (waiting at most `rpc-shutdown-timeout`) and closes the session.
pub async fn serve(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), String> {
    let session_config = session_config(&config)?;
    crate::rlimit::apply_max_open_files(config.max_open_files);
    let session = Session::new(session_config)
        .await
        .map_err(|e| format!("cannot open the session: {e}"))?;
    let session = Arc::new(session);
    for id in session.invalid_torrents() {
        tracing::warn!(torrent = %id, "stored torrent failed to load (see clean-database)");
    }
    let hook = (!config.on_complete_cmd.is_empty())
        .then(|| on_complete::spawn(&session, config.on_complete_cmd.clone()));
    let server = if config.rpc_enabled {
        match start_rpc(&config, session.clone()).await {
            Ok((handle, addr)) => {
                tracing::info!("RPC server listening on http://{addr}");
                Some(handle)
            }
            Err(e) => {
                close(&session).await;
                return Err(e);
            }
        }
    } else {
        None
    };
    tracing::info!(torrents = session.list().len(), "raind running");
    shutdown.await;
    tracing::info!("shutting down");
    if let Some(handle) = server {
        let _ = handle.stop();
        if tokio::time::timeout(config.rpc_shutdown_timeout, handle.stopped())
            .await
            .is_err()
        {
            tracing::warn!("RPC requests still running after rpc-shutdown-timeout");
        }
    }
    if let Some(hook) = hook {
        hook.abort();
    }
    close(&session).await;
    Ok(())
}

async fn close(session: &Session) {
    if let Err(e) = session.close().await {
        tracing::error!("closing the session: {e}");
    }
}

/// Starts the JSON-RPC server on `rpc-host:rpc-port`: HTTP only, no CORS, the [`GuardLayer`]
/// checks in front.
pub async fn start_rpc(
    config: &Config,
    session: Arc<Session>,
) -> Result<(ServerHandle, SocketAddr), String> {
    let host: std::net::IpAddr = config
        .rpc_host
        .parse()
        .map_err(|_| format!("rpc-host: not an IP address: {}", config.rpc_host))?;
    let addr = SocketAddr::new(host, config.rpc_port);
    let server_config = ServerConfig::builder()
        .http_only()
        .max_request_body_size(max_request_size(config))
        .max_response_body_size(u32::MAX)
        .build();
    // The guard first, then `/move-torrent`, then JSON-RPC.
    let http = tower::ServiceBuilder::new()
        .layer(GuardLayer::new(&config.rpc_token))
        .layer(MoveLayer::new(
            session.clone(),
            u64::from(max_request_size(config)),
            config.file_permissions,
            config.data_dir_includes_torrent_id,
        ));
    let server = Server::builder()
        .set_config(server_config)
        .set_http_middleware(http)
        .build(addr)
        .await
        .map_err(|e| format!("cannot listen for RPC on {addr}: {e}"))?;
    let local = server
        .local_addr()
        .map_err(|e| format!("cannot listen for RPC on {addr}: {e}"))?;
    Ok((
        server.start(methods::module(session, &config.rpc_token)),
        local,
    ))
}
