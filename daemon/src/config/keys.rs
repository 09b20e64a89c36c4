//! The table of YAML keys: rain's dash-separated name, our field and how its value is read.
//! The order is rain's (reference §4), which is also the order of [`super::Config::to_yaml`].

use saphyr::MarkedYaml;

use super::Config;
use super::kinds::{Bad, Bool, Dur, Kind, List, Mode, Path, Port, Str, U32, U64};

/// Keys of ours that rain does not have.
pub const BEYOND_RAIN: &[&str] = &[
    "rpc-token",
    "dht-host6",
    "ssrf-mitigation",
    "max-peer-connections",
    "prefer-plaintext",
];

macro_rules! config_keys {
    ($($key:literal => $field:ident: $kind:ty,)*) => {
        /// Every YAML key rain's `config.yaml` may hold, in rain's order.
        pub const KEYS: &[&str] = &[$($key),*];

        /// Sets the field of `key` from `node`. `None` if `key` is not a config key.
        pub(crate) fn set(
            config: &mut Config,
            key: &str,
            node: &MarkedYaml<'_>,
        ) -> Option<Result<(), Bad>> {
            match key {
                $($key => Some(<$kind>::parse(node).map(|value| {
                    if let Some(value) = value {
                        config.$field = value;
                    }
                })),)*
                _ => None,
            }
        }

        /// Writes every key as a `key: value` line.
        pub(crate) fn dump(config: &Config, out: &mut String) {
            $(
                out.push_str($key);
                out.push_str(": ");
                out.push_str(&<$kind>::dump(&config.$field));
                out.push('\n');
            )*
        }
    };
}

config_keys! {
    // Session / storage
    "database" => database: Path,
    "data-dir" => data_dir: Path,
    "data-dir-includes-torrent-id" => data_dir_includes_torrent_id: Bool,
    "host" => host: Str,
    "port-begin" => port_begin: Port,
    "port-end" => port_end: Port,
    "max-open-files" => max_open_files: U64,
    "pex-enabled" => pex_enabled: Bool,
    "resume-write-interval" => resume_write_interval: Dur,
    "private-peer-id-prefix" => private_peer_id_prefix: Str,
    "private-extension-handshake-client-version" => private_extension_handshake_client_version: Str,
    "blocklist-url" => blocklist_url: Str,
    "blocklist-update-interval" => blocklist_update_interval: Dur,
    "blocklist-update-timeout" => blocklist_update_timeout: Dur,
    "blocklist-enabled-for-trackers" => blocklist_enabled_for_trackers: Bool,
    "blocklist-enabled-for-outgoing-connections" => blocklist_enabled_for_outgoing_connections: Bool,
    "blocklist-enabled-for-incoming-connections" => blocklist_enabled_for_incoming_connections: Bool,
    "blocklist-max-response-size" => blocklist_max_response_size: U64,
    "torrent-add-http-timeout" => torrent_add_http_timeout: Dur,
    "max-metadata-size" => max_metadata_size: U64,
    "max-torrent-size" => max_torrent_size: U64,
    "max-pieces" => max_pieces: U32,
    "dns-resolve-timeout" => dns_resolve_timeout: Dur,
    "speed-limit-download" => speed_limit_download: U64,
    "speed-limit-upload" => speed_limit_upload: U64,
    "resume-on-startup" => resume_on_startup: Bool,
    "health-check-interval" => health_check_interval: Dur,
    "health-check-timeout" => health_check_timeout: Dur,
    "file-permissions" => file_permissions: Mode,
    "on-complete-cmd" => on_complete_cmd: List,
    "debug" => debug: Bool,
    // RPC
    "rpc-enabled" => rpc_enabled: Bool,
    "rpc-host" => rpc_host: Str,
    "rpc-port" => rpc_port: Port,
    "rpc-shutdown-timeout" => rpc_shutdown_timeout: Dur,
    "rpc-token" => rpc_token: Str,
    // DHT
    "dht-enabled" => dht_enabled: Bool,
    "dht-host" => dht_host: Str,
    "dht-host6" => dht_host6: Str,
    "dht-port" => dht_port: Port,
    "dht-announce-interval" => dht_announce_interval: Dur,
    "dht-min-announce-interval" => dht_min_announce_interval: Dur,
    "dht-bootstrap-nodes" => dht_bootstrap_nodes: List,
    // Tracker
    "tracker-num-want" => tracker_num_want: U32,
    "tracker-stop-timeout" => tracker_stop_timeout: Dur,
    "tracker-min-announce-interval" => tracker_min_announce_interval: Dur,
    "tracker-http-timeout" => tracker_http_timeout: Dur,
    "tracker-http-private-user-agent" => tracker_http_private_user_agent: Str,
    "tracker-http-max-response-size" => tracker_http_max_response_size: U64,
    "tracker-http-verify-tls" => tracker_http_verify_tls: Bool,
    "ssrf-mitigation" => ssrf_mitigation: Bool,
    // Peer
    "unchoked-peers" => unchoked_peers: U32,
    "optimistic-unchoked-peers" => optimistic_unchoked_peers: U32,
    "max-requests-in" => max_requests_in: U32,
    "max-requests-out" => max_requests_out: U32,
    "default-requests-out" => default_requests_out: U32,
    "request-timeout" => request_timeout: Dur,
    "endgame-max-duplicate-downloads" => endgame_max_duplicate_downloads: U32,
    "max-peer-dial" => max_peer_dial: U32,
    "max-peer-accept" => max_peer_accept: U32,
    "max-peer-connections" => max_peer_connections: U32,
    "parallel-metadata-downloads" => parallel_metadata_downloads: U32,
    "peer-connect-timeout" => peer_connect_timeout: Dur,
    "peer-handshake-timeout" => peer_handshake_timeout: Dur,
    "piece-read-timeout" => piece_read_timeout: Dur,
    "max-peer-addresses" => max_peer_addresses: U32,
    "allowed-fast-set" => allowed_fast_set: U32,
    // Disk I/O
    "read-cache-block-size" => read_cache_block_size: U64,
    "read-cache-size" => read_cache_size: U64,
    "read-cache-ttl" => read_cache_ttl: Dur,
    "parallel-reads" => parallel_reads: U32,
    "parallel-writes" => parallel_writes: U32,
    "write-cache-size" => write_cache_size: U64,
    // Encryption
    "disable-outgoing-encryption" => disable_outgoing_encryption: Bool,
    "force-outgoing-encryption" => force_outgoing_encryption: Bool,
    "force-incoming-encryption" => force_incoming_encryption: Bool,
    "prefer-plaintext" => prefer_plaintext: Bool,
    // WebSeed
    "webseed-dial-timeout" => webseed_dial_timeout: Dur,
    "webseed-tls-handshake-timeout" => webseed_tls_handshake_timeout: Dur,
    "webseed-response-header-timeout" => webseed_response_header_timeout: Dur,
    "webseed-response-body-read-timeout" => webseed_response_body_read_timeout: Dur,
    "webseed-retry-interval" => webseed_retry_interval: Dur,
    "webseed-verify-tls" => webseed_verify_tls: Bool,
    "webseed-max-sources" => webseed_max_sources: U32,
    "webseed-max-downloads" => webseed_max_downloads: U32,
}
