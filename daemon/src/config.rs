//! `~/rain/config.yaml`: rain's configuration file, read exactly as rain (cenkalti/rain) reads it,
//! so rain users keep their file unchanged.
//!
//! - **Keys** are rain's dash-separated names ([`KEYS`]); every key is optional and defaults to
//!   rain's default ([`Config::default`]).
//! - **Where**: `--config FILE`, else `$HOME/rain/config.yaml` ([`Config::default_path`]). A
//!   missing default file means "all defaults" (reported as [`Warning::DefaultFileMissing`], a
//!   notice); a missing explicit file is an error.
//! - **Unknown keys** are ignored, as rain does, but reported as [`Warning::UnknownKey`] with
//!   their line, so typos do not go unnoticed.
//! - **Values** follow rain's Go decoder (details in `config/kinds.rs`): durations are Go
//!   duration strings (`30s`, `1m30s`, `24h`, `500ms`, `1h2m3.5s`; a bare number other than `0`
//!   is an error, not seconds); `file-permissions` is octal when written with a leading `0`
//!   (`0750`), whichever YAML version a reader assumes; integers may not be negative or out of
//!   range; a key with no value keeps its default. Anything invalid is a [`ConfigError`] whose
//!   one-line message names the file, the line and the key.
//! - **Paths** (`database`, `data-dir`) have a leading `~` replaced by `$HOME` (rain's
//!   `homedir.Expand`) and `$VAR` / `${VAR}` expanded from the environment
//!   ([`Config::expand_paths`]); loading does this, [`Config::default`] does not, so the defaults
//!   read exactly as rain documents them.
//! - **Version strings**: `<version>` in rain's defaults is our crate version; the peer-id prefix
//!   uses a 4-digit code, see [`version`].

mod duration;
mod error;
mod keys;
mod kinds;
pub mod version;
mod yaml;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use duration::{DurationError, format_go_duration, parse_go_duration};
pub use error::{ConfigError, Warning};
pub use keys::{BEYOND_RAIN, KEYS};

use crate::expand_env;

/// Every setting of rain's `config.yaml`. Field names are the YAML keys in snake_case; the docs
/// give the YAML key and rain's default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    // Session / storage
    /// `database` (`$HOME/rain/session.db`): the resume database; its parent directory is
    /// created.
    pub database: PathBuf,
    /// `data-dir` (`$HOME/rain/data`): the download root.
    pub data_dir: PathBuf,
    /// `data-dir-includes-torrent-id` (`true`): files go to `<data-dir>/<torrent-id>/…` rather
    /// than directly under `<data-dir>`.
    pub data_dir_includes_torrent_id: bool,
    /// `host` (`0.0.0.0`): IP for the per-torrent TCP peer listeners.
    pub host: String,
    /// `port-begin` (`20000`): start of the per-torrent port pool, inclusive.
    pub port_begin: u16,
    /// `port-end` (`30000`): end of the per-torrent port pool, exclusive.
    pub port_end: u16,
    /// `max-open-files` (`10240`): `RLIMIT_NOFILE` set at start; 0 leaves it alone.
    pub max_open_files: u64,
    /// `pex-enabled` (`true`): peer exchange, both ways.
    pub pex_enabled: bool,
    /// `resume-write-interval` (`30s`): how often counters and bitfields are flushed to the DB.
    pub resume_write_interval: Duration,
    /// `private-peer-id-prefix` (`-RN<code>-`): peer-id prefix for private torrents.
    pub private_peer_id_prefix: String,
    /// `private-extension-handshake-client-version` (`Rain <version>`): BEP 10 `v` for private
    /// torrents.
    pub private_extension_handshake_client_version: String,
    /// `blocklist-url` (empty, disabled): URL of a CIDR blocklist.
    pub blocklist_url: String,
    /// `blocklist-update-interval` (`24h`): blocklist refresh period.
    pub blocklist_update_interval: Duration,
    /// `blocklist-update-timeout` (`10m`): HTTP timeout for downloading the blocklist.
    pub blocklist_update_timeout: Duration,
    /// `blocklist-enabled-for-trackers` (`true`): refuse blocked tracker IPs.
    pub blocklist_enabled_for_trackers: bool,
    /// `blocklist-enabled-for-outgoing-connections` (`true`): do not dial blocked IPs.
    pub blocklist_enabled_for_outgoing_connections: bool,
    /// `blocklist-enabled-for-incoming-connections` (`true`): refuse blocked incoming peers.
    pub blocklist_enabled_for_incoming_connections: bool,
    /// `blocklist-max-response-size` (`104857600`, 100 MiB): largest blocklist body.
    pub blocklist_max_response_size: u64,
    /// `torrent-add-http-timeout` (`30s`): timeout for fetching a `.torrent` URL in AddURI.
    pub torrent_add_http_timeout: Duration,
    /// `max-metadata-size` (`31457280`, 30 MiB): largest `metadata_size` accepted; also the
    /// largest peer message.
    pub max_metadata_size: u64,
    /// `max-torrent-size` (`10485760`, 10 MiB): largest `.torrent` read.
    pub max_torrent_size: u64,
    /// `max-pieces` (`65536`): largest piece count.
    pub max_pieces: u32,
    /// `dns-resolve-timeout` (`5s`): host resolution timeout for trackers, webseeds and peers.
    pub dns_resolve_timeout: Duration,
    /// `speed-limit-download` (`0`, unlimited): global download limit in KiB/s.
    pub speed_limit_download: u64,
    /// `speed-limit-upload` (`0`, unlimited): global upload limit in KiB/s.
    pub speed_limit_upload: u64,
    /// `resume-on-startup` (`true`): start torrents that were running when the session closed.
    pub resume_on_startup: bool,
    /// `health-check-interval` (`10s`): torrent-loop ping period.
    pub health_check_interval: Duration,
    /// `health-check-timeout` (`60s`): a torrent loop stuck longer than this is a bug.
    pub health_check_timeout: Duration,
    /// `file-permissions` (`0750`): mode of created directories; files get it without execute
    /// bits.
    pub file_permissions: u32,
    /// `on-complete-cmd` (`[]`): argv of the command run when a torrent completes.
    pub on_complete_cmd: Vec<String>,
    /// `debug` (`false`): debug logging.
    pub debug: bool,

    // RPC
    /// `rpc-enabled` (`true`): run the JSON-RPC server.
    pub rpc_enabled: bool,
    /// `rpc-host` (`127.0.0.1`): RPC listen host. Beyond rain: an address other than
    /// loopback (`0.0.0.0`, `::`, a LAN address) needs `rpc-token`, or raind refuses to start;
    /// rain itself serves such an address to anyone.
    pub rpc_host: String,
    /// `rpc-port` (`7246`): RPC listen port.
    pub rpc_port: u16,
    /// `rpc-shutdown-timeout` (`5s`): graceful shutdown wait.
    pub rpc_shutdown_timeout: Duration,
    /// `rpc-token` (empty; not in rain): when set, every RPC request must carry
    /// `Authorization: Bearer <token>`. Required when `rpc-host` is not loopback. A source
    /// that sends 5 wrong tokens within a minute is refused (429) until that minute ends.
    pub rpc_token: String,

    // DHT
    /// `dht-enabled` (`true`): run the DHT node.
    pub dht_enabled: bool,
    /// `dht-host` (`0.0.0.0`): DHT UDP bind IP.
    pub dht_host: String,
    /// `dht-host6` (`::`, ours): the IPv6 address of the DHT's second socket (BEP 32);
    /// empty keeps the DHT on IPv4.
    pub dht_host6: String,
    /// `dht-port` (`7246`): DHT UDP port, also sent in PORT messages.
    pub dht_port: u16,
    /// `dht-announce-interval` (`30m`): normal DHT re-announce period per torrent.
    pub dht_announce_interval: Duration,
    /// `dht-min-announce-interval` (`1m`): DHT re-announce period while more peers are needed.
    pub dht_min_announce_interval: Duration,
    /// `dht-bootstrap-nodes` (five public routers): DHT bootstrap `host:port`s.
    pub dht_bootstrap_nodes: Vec<String>,

    // Tracker
    /// `tracker-num-want` (`200`): `numwant` in announces.
    pub tracker_num_want: u32,
    /// `tracker-stop-timeout` (`5s`): deadline for sending `stopped`.
    pub tracker_stop_timeout: Duration,
    /// `tracker-min-announce-interval` (`1m`): minimum re-announce spacing when the tracker gives
    /// no `min interval`.
    pub tracker_min_announce_interval: Duration,
    /// `tracker-http-timeout` (`10s`): whole HTTP announce timeout.
    pub tracker_http_timeout: Duration,
    /// `tracker-http-private-user-agent` (`Rain/<version>`): User-Agent for private torrents.
    pub tracker_http_private_user_agent: String,
    /// `tracker-http-max-response-size` (`2097152`, 2 MiB): largest tracker response body.
    pub tracker_http_max_response_size: u64,
    /// `tracker-http-verify-tls` (`true`): verify tracker TLS certificates.
    pub tracker_http_verify_tls: bool,
    /// `ssrf-mitigation` (`true`, ours; libtorrent's `ssrf_mitigation`): a global tracker, web
    /// seed or `.torrent` URL may not redirect to a loopback or LAN address, an HTTP tracker on
    /// a loopback address must have a path ending in `/announce`, and a web seed on a LAN or
    /// loopback address may not have a query string.
    pub ssrf_mitigation: bool,

    // Peer
    /// `unchoked-peers` (`3`): regular upload slots per torrent.
    pub unchoked_peers: u32,
    /// `optimistic-unchoked-peers` (`1`): optimistic upload slots per torrent.
    pub optimistic_unchoked_peers: u32,
    /// `max-requests-in` (`250`): queued incoming block requests per peer; also our `reqq`.
    pub max_requests_in: u32,
    /// `max-requests-out` (`250`): cap on our in-flight block requests per peer.
    pub max_requests_out: u32,
    /// `default-requests-out` (`50`): in-flight requests when the peer sent no `reqq`.
    pub default_requests_out: u32,
    /// `request-timeout` (`20s`): no block within this time marks the peer snubbed.
    pub request_timeout: Duration,
    /// `endgame-max-duplicate-downloads` (`20`): most peers on one piece in endgame.
    pub endgame_max_duplicate_downloads: u32,
    /// `max-peer-dial` (`80`): most outgoing peers per torrent.
    pub max_peer_dial: u32,
    /// `max-peer-accept` (`20`): most incoming peers per torrent.
    pub max_peer_accept: u32,
    /// `max-peer-connections` (`4000`, ours): peer connections open at once over all torrents.
    pub max_peer_connections: u32,
    /// `parallel-metadata-downloads` (`2`): concurrent ut_metadata sources.
    pub parallel_metadata_downloads: u32,
    /// `peer-connect-timeout` (`5s`): TCP connect timeout.
    pub peer_connect_timeout: Duration,
    /// `peer-handshake-timeout` (`10s`): BitTorrent handshake (including MSE) timeout.
    pub peer_handshake_timeout: Duration,
    /// `piece-read-timeout` (`30s`): longest silence while receiving a block.
    pub piece_read_timeout: Duration,
    /// `max-peer-addresses` (`2000`): dial-queue capacity per torrent.
    pub max_peer_addresses: u32,
    /// `allowed-fast-set` (`10`): size of the allowed-fast set we send.
    pub allowed_fast_set: u32,

    // Disk I/O
    /// `read-cache-block-size` (`131072`, 128 KiB): unit read from disk when uploading.
    pub read_cache_block_size: u64,
    /// `read-cache-size` (`268435456`, 256 MiB): session-wide upload read-cache capacity.
    pub read_cache_size: u64,
    /// `read-cache-ttl` (`1m`): idle expiry of cached blocks.
    pub read_cache_ttl: Duration,
    /// `parallel-reads` (`1`): concurrent disk reads for the read cache.
    pub parallel_reads: u32,
    /// `parallel-writes` (`1`): concurrent piece writes.
    pub parallel_writes: u32,
    /// `write-cache-size` (`1073741824`, 1 GiB): memory budget for in-progress pieces.
    pub write_cache_size: u64,

    // Encryption
    /// `disable-outgoing-encryption` (`false`): dial plaintext only.
    pub disable_outgoing_encryption: bool,
    /// `force-outgoing-encryption` (`false`): dial RC4 only, no fallback.
    pub force_outgoing_encryption: bool,
    /// `force-incoming-encryption` (`false`): refuse non-RC4 incoming connections.
    pub force_incoming_encryption: bool,
    /// `prefer-plaintext` (`false`, ours): when a peer dialling us offers both RC4 and
    /// plaintext, select plaintext (libtorrent's choice; rain selects RC4).
    pub prefer_plaintext: bool,

    // WebSeed
    /// `webseed-dial-timeout` (`10s`): TCP connect timeout.
    pub webseed_dial_timeout: Duration,
    /// `webseed-tls-handshake-timeout` (`10s`): TLS handshake timeout.
    pub webseed_tls_handshake_timeout: Duration,
    /// `webseed-response-header-timeout` (`10s`): wait for response headers.
    pub webseed_response_header_timeout: Duration,
    /// `webseed-response-body-read-timeout` (`10s`): longest silence while reading a body.
    pub webseed_response_body_read_timeout: Duration,
    /// `webseed-retry-interval` (`1m`): declared by rain but unused (its retry delay is a fixed
    /// minute).
    pub webseed_retry_interval: Duration,
    /// `webseed-verify-tls` (`true`): verify webseed TLS certificates.
    pub webseed_verify_tls: bool,
    /// `webseed-max-sources` (`10`): `url-list` is truncated to this many sources.
    pub webseed_max_sources: u32,
    /// `webseed-max-downloads` (`4`): concurrent webseed range downloads per torrent.
    pub webseed_max_downloads: u32,
}

impl Default for Config {
    /// rain's defaults (reference §4). Paths are left unexpanded (`$HOME/rain/…`).
    fn default() -> Self {
        const KIB: u64 = 1 << 10;
        const MIB: u64 = 1 << 20;
        let secs = Duration::from_secs;
        Config {
            database: PathBuf::from("$HOME/rain/session.db"),
            data_dir: PathBuf::from("$HOME/rain/data"),
            data_dir_includes_torrent_id: true,
            host: "0.0.0.0".to_owned(),
            port_begin: 20_000,
            port_end: 30_000,
            max_open_files: 10_240,
            pex_enabled: true,
            resume_write_interval: secs(30),
            private_peer_id_prefix: version::peer_id_prefix(),
            private_extension_handshake_client_version: version::client_version(),
            blocklist_url: String::new(),
            blocklist_update_interval: secs(24 * 3600),
            blocklist_update_timeout: secs(10 * 60),
            blocklist_enabled_for_trackers: true,
            blocklist_enabled_for_outgoing_connections: true,
            blocklist_enabled_for_incoming_connections: true,
            blocklist_max_response_size: 100 * MIB,
            torrent_add_http_timeout: secs(30),
            max_metadata_size: 30 * MIB,
            max_torrent_size: 10 * MIB,
            max_pieces: 64 << 10,
            dns_resolve_timeout: secs(5),
            speed_limit_download: 0,
            speed_limit_upload: 0,
            resume_on_startup: true,
            health_check_interval: secs(10),
            health_check_timeout: secs(60),
            file_permissions: 0o750,
            on_complete_cmd: Vec::new(),
            debug: false,

            rpc_enabled: true,
            rpc_host: "127.0.0.1".to_owned(),
            rpc_port: 7246,
            rpc_shutdown_timeout: secs(5),
            rpc_token: String::new(),

            dht_enabled: true,
            dht_host: "0.0.0.0".to_owned(),
            dht_host6: "::".to_owned(),
            dht_port: 7246,
            dht_announce_interval: secs(30 * 60),
            dht_min_announce_interval: secs(60),
            dht_bootstrap_nodes: [
                "router.bittorrent.com:6881",
                "dht.transmissionbt.com:6881",
                "router.utorrent.com:6881",
                "dht.libtorrent.org:25401",
                "dht.aelitis.com:6881",
            ]
            .map(str::to_owned)
            .to_vec(),

            tracker_num_want: 200,
            tracker_stop_timeout: secs(5),
            tracker_min_announce_interval: secs(60),
            tracker_http_timeout: secs(10),
            tracker_http_private_user_agent: version::user_agent(),
            tracker_http_max_response_size: 2 * MIB,
            tracker_http_verify_tls: true,
            ssrf_mitigation: true,

            unchoked_peers: 3,
            optimistic_unchoked_peers: 1,
            max_requests_in: 250,
            max_requests_out: 250,
            default_requests_out: 50,
            request_timeout: secs(20),
            endgame_max_duplicate_downloads: 20,
            max_peer_dial: 80,
            max_peer_accept: 20,
            max_peer_connections: 4000,
            parallel_metadata_downloads: 2,
            peer_connect_timeout: secs(5),
            peer_handshake_timeout: secs(10),
            piece_read_timeout: secs(30),
            max_peer_addresses: 2000,
            allowed_fast_set: 10,

            read_cache_block_size: 128 * KIB,
            read_cache_size: 256 * MIB,
            read_cache_ttl: secs(60),
            parallel_reads: 1,
            parallel_writes: 1,
            write_cache_size: 1024 * MIB,

            disable_outgoing_encryption: false,
            force_outgoing_encryption: false,
            force_incoming_encryption: false,
            prefer_plaintext: false,

            webseed_dial_timeout: secs(10),
            webseed_tls_handshake_timeout: secs(10),
            webseed_response_header_timeout: secs(10),
            webseed_response_body_read_timeout: secs(10),
            webseed_retry_interval: secs(60),
            webseed_verify_tls: true,
            webseed_max_sources: 10,
            webseed_max_downloads: 4,
        }
    }
}

impl Config {
    /// Loads the config: from `path` (`--config`), or from [`Config::default_path`] when `None`.
    ///
    /// A missing default file gives the defaults and a [`Warning::DefaultFileMissing`] notice; a
    /// missing explicit file is [`ConfigError::NotFound`]. Unknown keys give
    /// [`Warning::UnknownKey`]s. Paths in the result are expanded ([`Config::expand_paths`]).
    pub fn load(path: Option<&Path>) -> Result<(Config, Vec<Warning>), ConfigError> {
        Self::load_with_home(path, std::env::var_os("HOME"))
    }

    /// [`Config::load`] with `$HOME` given, for the default path.
    fn load_with_home(
        path: Option<&Path>,
        home: Option<OsString>,
    ) -> Result<(Config, Vec<Warning>), ConfigError> {
        let (path, is_default) = match path {
            Some(p) => (p.to_owned(), false),
            None => (Self::default_path_in(home)?, true),
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::from_yaml_str(&text).map_err(|e| e.in_file(&path)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && is_default => {
                let mut config = Config::default();
                config.expand_paths();
                Ok((config, vec![Warning::DefaultFileMissing { path }]))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(ConfigError::NotFound { path })
            }
            Err(source) => Err(ConfigError::Read { path, source }),
        }
    }

    /// rain's default config file, `$HOME/rain/config.yaml`.
    pub fn default_path() -> Result<PathBuf, ConfigError> {
        Self::default_path_in(std::env::var_os("HOME"))
    }

    fn default_path_in(home: Option<OsString>) -> Result<PathBuf, ConfigError> {
        match home {
            Some(home) if !home.is_empty() => Ok(PathBuf::from(home).join("rain/config.yaml")),
            _ => Err(ConfigError::NoHome),
        }
    }

    /// Reads a config from YAML text: defaults overridden by the keys present, validated, paths
    /// expanded. Errors carry a line but no file name.
    pub fn from_yaml_str(text: &str) -> Result<(Config, Vec<Warning>), ConfigError> {
        let entries = yaml::top_level_entries(text)?;
        let mut config = Config::default();
        let mut warnings = Vec::new();
        let mut lines: HashMap<&str, usize> = HashMap::new();
        for (key, value) in &entries {
            if let Some(first) = lines.insert(&key.name, key.line) {
                return Err(ConfigError::Invalid {
                    path: None,
                    key: key.name.clone(),
                    line: Some(key.line),
                    reason: format!("duplicate key (also set at line {first})"),
                });
            }
            match keys::set(&mut config, &key.name, value) {
                Some(Ok(())) => {}
                Some(Err(bad)) => {
                    return Err(ConfigError::Invalid {
                        path: None,
                        key: key.name.clone(),
                        line: Some(bad.line),
                        reason: bad.reason,
                    });
                }
                None => warnings.push(Warning::UnknownKey {
                    key: key.name.clone(),
                    line: key.line,
                }),
            }
        }
        config.check(|key| lines.get(key).copied())?;
        config.expand_paths();
        Ok((config, warnings))
    }

    /// Checks the rules that involve several keys: `port-begin` < `port-end` (the end is
    /// exclusive, so the pool must hold at least one port).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check(|_| None)
    }

    /// [`Config::validate`], blaming the key the file set, at its line.
    fn check(&self, line_of: impl Fn(&str) -> Option<usize>) -> Result<(), ConfigError> {
        if self.port_begin >= self.port_end {
            // Blame the key the user wrote: port-begin unless only port-end was set.
            let (key, reason) = match (line_of("port-begin"), line_of("port-end")) {
                (None, Some(_)) => (
                    "port-end",
                    format!(
                        "must be greater than port-begin ({}), found {}; the port range is \
                         port-begin (inclusive) to port-end (exclusive)",
                        self.port_begin, self.port_end
                    ),
                ),
                _ => (
                    "port-begin",
                    format!(
                        "must be less than port-end ({}), found {}; the port range is \
                         port-begin (inclusive) to port-end (exclusive)",
                        self.port_end, self.port_begin
                    ),
                ),
            };
            return Err(ConfigError::Invalid {
                path: None,
                key: key.to_owned(),
                line: line_of(key),
                reason,
            });
        }
        Ok(())
    }

    /// Expands `database` and `data-dir` as rain does at session start: a leading `~` becomes
    /// `$HOME`, then `$VAR` and `${VAR}` are replaced from the environment (unset variables
    /// expand to nothing). Paths that are not valid UTF-8 are left alone.
    pub fn expand_paths(&mut self) {
        for path in [&mut self.database, &mut self.data_dir] {
            if let Some(text) = path.to_str() {
                *path = PathBuf::from(expand_path(text));
            }
        }
    }

    /// The whole config as YAML, every key in rain's order, in a form [`Config::from_yaml_str`]
    /// reads back to the same config (once paths are expanded).
    pub fn to_yaml(&self) -> String {
        let mut out = String::from(
            "# rain configuration (~/rain/config.yaml). Durations are Go durations: 30s, 1m30s, 24h.\n",
        );
        keys::dump(self, &mut out);
        out
    }
}

/// `~` or `~/…` → `$HOME/…`, then environment expansion.
fn expand_path(text: &str) -> String {
    let text = match text.strip_prefix('~') {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => format!("$HOME{rest}"),
        _ => text.to_owned(),
    };
    expand_env(&text)
}
