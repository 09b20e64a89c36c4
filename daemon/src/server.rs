//! `raind` (also `rain server`): a session served over rain's JSON-RPC 2.0 API until SIGINT
//! or SIGTERM, then closed gracefully so the next start trusts its resume data.

mod guard;
pub mod listen;
pub mod move_torrent;
pub mod on_complete;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use jsonrpsee::server::{BatchRequestConfig, Server, ServerConfig, ServerHandle};
use rain_runtime::session::Session;

use crate::cli::CliError;
use crate::config::{Config, Warning};
use crate::rpc::methods;
use crate::session_config::session_config;

pub use guard::{GuardLayer, MAX_TOKEN_FAILURES, TOKEN_FAILURE_WINDOW};
pub use listen::{
    RPC_BODY_TIMEOUT, RPC_HEADER_TIMEOUT, RPC_MAX_BATCH, RPC_MAX_IN_FLIGHT, RpcLimits,
};
pub use move_torrent::MoveLayer;

/// Largest RPC request body: an `AddTorrent` carries a base64 `.torrent` of up to
/// `max-torrent-size`.
fn max_request_size(config: &Config) -> u32 {
    let torrent = config.max_torrent_size.saturating_mul(4) / 3 + 64 * 1024;
    u32::try_from(torrent).unwrap_or(u32::MAX)
}

/// Smallest bound on an RPC response body (a whole batch counts as one response): room for
/// `ListTorrents` and the stats of a large session.
pub const RPC_MIN_RESPONSE_SIZE: u32 = 64 << 20;

/// Largest RPC response body: [`RPC_MIN_RESPONSE_SIZE`], or more when `GetTorrent` may
/// return a larger base64 `.torrent` (its metadata is at most `max-metadata-size`).
fn max_response_size(config: &Config) -> u32 {
    let torrent = config.max_torrent_size.max(config.max_metadata_size);
    let encoded = torrent.saturating_mul(4) / 3 + 64 * 1024;
    u32::try_from(encoded)
        .unwrap_or(u32::MAX)
        .max(RPC_MIN_RESPONSE_SIZE)
}

/// The RPC address from `rpc-host` and `rpc-port`. A host other than loopback needs
/// `rpc-token`: without it anyone who can reach the port controls the daemon (adds
/// torrents, deletes data, runs moves), so raind refuses to start.
pub fn rpc_addr(config: &Config) -> Result<SocketAddr, String> {
    let host: std::net::IpAddr = config
        .rpc_host
        .parse()
        .map_err(|_| format!("rpc-host: not an IP address: {}", config.rpc_host))?;
    if !host.to_canonical().is_loopback() && config.rpc_token.is_empty() {
        return Err(format!(
            "rpc-host {host} is not a loopback address and rpc-token is empty: anyone who can \
             reach port {} could control raind; set rpc-token (clients pass it with --token or \
             RAIN_RPC_TOKEN) or use rpc-host: 127.0.0.1",
            config.rpc_port
        ));
    }
    Ok(SocketAddr::new(host, config.rpc_port))
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
    if config.rpc_enabled {
        // Refuse an exposed RPC address before opening anything.
        rpc_addr(&config)?;
    }
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

/// Starts the JSON-RPC server on `rpc-host:rpc-port` with the default [`RpcLimits`].
pub async fn start_rpc(
    config: &Config,
    session: Arc<Session>,
) -> Result<(ServerHandle, SocketAddr), String> {
    start_rpc_with(config, session, RpcLimits::default()).await
}

/// Starts the JSON-RPC server on `rpc-host:rpc-port` ([`rpc_addr`]): HTTP/1.1 only, no CORS,
/// the [`GuardLayer`] checks in front, requests bounded by `max_request_size`,
/// [`RPC_MAX_BATCH`], [`max_response_size`], [`RPC_MAX_IN_FLIGHT`] and `limits`.
pub async fn start_rpc_with(
    config: &Config,
    session: Arc<Session>,
    limits: RpcLimits,
) -> Result<(ServerHandle, SocketAddr), String> {
    let addr = rpc_addr(config)?;
    let server_config = ServerConfig::builder()
        .http_only()
        .max_request_body_size(max_request_size(config))
        .max_response_body_size(max_response_size(config))
        .max_connections(RPC_MAX_IN_FLIGHT)
        .set_batch_request_config(BatchRequestConfig::Limit(RPC_MAX_BATCH))
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
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen for RPC on {addr}: {e}"))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("cannot listen for RPC on {addr}: {e}"))?;
    let builder = Server::builder()
        .set_config(server_config)
        .set_http_middleware(http)
        .to_service_builder();
    let methods = methods::module(session, &config.rpc_token);
    let (stop, handle) = jsonrpsee::server::stop_channel();
    tokio::spawn(listen::accept_loop(
        listener,
        stop,
        limits,
        move |methods, stop| builder.clone().build(methods, stop),
        methods.into(),
    ));
    Ok((handle, local))
}

#[cfg(test)]
mod tests {
    use std::io::{ErrorKind, Read, Write};
    use std::net::TcpStream;
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn rpc_host_beyond_loopback_needs_a_token() {
        let addr = |host: &str, token: &str| {
            rpc_addr(&Config {
                rpc_host: host.to_owned(),
                rpc_token: token.to_owned(),
                ..Config::default()
            })
        };
        for open in ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"] {
            assert!(addr(open, "").is_ok(), "{open}");
        }
        for exposed in [
            "0.0.0.0",
            "::",
            "192.0.2.1",
            "2001:db8::1",
            "::ffff:192.0.2.1",
        ] {
            let err = addr(exposed, "").unwrap_err();
            assert!(err.contains("rpc-token") && !err.contains('\n'), "{err}");
            assert_eq!(
                addr(exposed, "s3cret").map(|a| a.ip()),
                Ok(exposed.parse().unwrap()),
                "a token makes any host acceptable"
            );
        }
        assert!(addr("localhost", "").unwrap_err().contains("not an IP"));
    }

    #[test]
    fn responses_are_bounded() {
        let defaults = Config::default();
        // 30 MiB of metadata, base64-encoded, fits; the bound is finite.
        let size = max_response_size(&defaults);
        assert!((40 << 20..u32::MAX).contains(&size), "{size}");
        let small = Config {
            max_metadata_size: 1024,
            max_torrent_size: 1024,
            ..Config::default()
        };
        assert_eq!(max_response_size(&small), RPC_MIN_RESPONSE_SIZE);
    }

    /// A server on 127.0.0.1 with a fresh session and `limits`.
    async fn server(dir: &std::path::Path, limits: RpcLimits) -> (ServerHandle, SocketAddr) {
        let config = Config {
            database: dir.join("session.db"),
            data_dir: dir.join("data"),
            dht_enabled: false,
            host: "127.0.0.1".to_owned(),
            rpc_port: 0,
            ..Config::default()
        };
        let session = Session::new(session_config(&config).unwrap())
            .await
            .unwrap();
        start_rpc_with(&config, Arc::new(session), limits)
            .await
            .unwrap()
    }

    const VERSION: &str = r#"{"jsonrpc":"2.0","method":"Session.Version","id":1}"#;

    fn head(addr: SocketAddr, length: usize) -> String {
        format!(
            "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Content-Length: {length}\r\n\r\n"
        )
    }

    /// Posts `Session.Version` on a new connection; the status line.
    fn version(addr: SocketAddr) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(head(addr, VERSION.len()).as_bytes()).unwrap();
        s.write_all(VERSION.as_bytes()).unwrap();
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).unwrap();
        let reply = String::from_utf8_lossy(&buf[..n]).into_owned();
        reply.lines().next().unwrap_or_default().to_owned()
    }

    /// Writes `bytes` one at a time, every `gap`, asking `others` for the version after each
    /// byte, until the server hangs up; how long that took and what it said.
    fn trickle(s: &mut TcpStream, bytes: &[u8], gap: Duration, others: SocketAddr) -> Duration {
        let start = Instant::now();
        s.set_read_timeout(Some(gap)).unwrap();
        for &b in bytes.iter().cycle() {
            let mut buf = [0u8; 1024];
            match s.read(&mut buf) {
                Ok(0) => return start.elapsed(),
                Ok(n) => {
                    let reply = String::from_utf8_lossy(&buf[..n]);
                    assert!(!reply.starts_with("HTTP/1.1 200"), "{reply}");
                    return start.elapsed();
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return start.elapsed(),
            }
            if s.write_all(&[b]).is_err() {
                return start.elapsed();
            }
            // Meanwhile everyone else is served.
            assert_eq!(version(others), "HTTP/1.1 200 OK");
            assert!(start.elapsed() < Duration::from_secs(30), "never cut off");
        }
        unreachable!("cycle never ends")
    }

    /// A client that trickles its headers, or its body, is cut off after the limit, and
    /// other clients are served meanwhile.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn slow_clients_are_cut_off_and_do_not_block_others() {
        let tmp = tempfile::tempdir().unwrap();
        let limits = RpcLimits {
            header_timeout: Duration::from_millis(800),
            body_timeout: Duration::from_millis(800),
        };
        let (handle, addr) = server(tmp.path(), limits).await;
        tokio::task::spawn_blocking(move || {
            let gap = Duration::from_millis(100);
            // Headers, a byte at a time (they never end: the cycle repeats a header line).
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(b"POST / HTTP/1.1\r\n").unwrap();
            let took = trickle(&mut s, b"X-Slow: aaaa\r\n", gap, addr);
            assert!(took + gap >= limits.header_timeout, "{took:?}");
            // A silent connection is closed too.
            let mut s = TcpStream::connect(addr).unwrap();
            let start = Instant::now();
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            let n = s.read(&mut [0u8; 64]).unwrap_or(0);
            assert_eq!(n, 0);
            assert!(start.elapsed() < Duration::from_secs(10));
            // The body, a byte at a time.
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(head(addr, 1 << 20).as_bytes()).unwrap();
            s.write_all(b"{\"jsonrpc\":\"2.0\",\"params\":[").unwrap();
            let took = trickle(&mut s, b" ", gap, addr);
            assert!(took + gap >= limits.body_timeout, "{took:?}");
            assert_eq!(version(addr), "HTTP/1.1 200 OK");
        })
        .await
        .unwrap();
        handle.stop().unwrap();
        tokio::time::timeout(Duration::from_secs(10), handle.stopped())
            .await
            .expect("the server stops");
    }
}
