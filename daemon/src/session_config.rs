//! Maps rain's YAML [`Config`] onto the runtime's [`SessionConfig`].

use rain_runtime::session::SessionConfig;

use crate::config::Config;

/// The session settings a config file asks for. Fails on a `host` that is not an IP address.
pub fn session_config(c: &Config) -> Result<SessionConfig, String> {
    let host = c
        .host
        .parse()
        .map_err(|_| format!("host: not an IP address: {}", c.host))?;
    let defaults = SessionConfig::default();
    Ok(SessionConfig {
        database: c.database.clone(),
        data_dir: c.data_dir.clone(),
        data_dir_includes_torrent_id: c.data_dir_includes_torrent_id,
        host,
        port_begin: c.port_begin,
        port_end: c.port_end,
        max_open_files: usize::try_from(c.max_open_files).unwrap_or(usize::MAX),
        file_permissions: c.file_permissions,
        pex_enabled: c.pex_enabled,
        resume_write_interval: c.resume_write_interval,
        resume_on_startup: c.resume_on_startup,
        peer_connect_timeout: c.peer_connect_timeout,
        peer_handshake_timeout: c.peer_handshake_timeout,
        disable_outgoing_encryption: c.disable_outgoing_encryption,
        force_outgoing_encryption: c.force_outgoing_encryption,
        force_incoming_encryption: c.force_incoming_encryption,
        prefer_plaintext: c.prefer_plaintext,
        dht_enabled: c.dht_enabled,
        dht_host: c
            .dht_host
            .parse()
            .map_err(|_| format!("dht-host: not an IP address: {}", c.dht_host))?,
        dht_host6: match c.dht_host6.as_str() {
            "" => None,
            h => Some(
                h.parse()
                    .map_err(|_| format!("dht-host6: not an IP address: {h}"))?,
            ),
        },
        dht_port: c.dht_port,
        dht_announce_interval: c.dht_announce_interval,
        dht_min_announce_interval: c.dht_min_announce_interval,
        dht_bootstrap_nodes: c.dht_bootstrap_nodes.clone(),
        speed_limit_download: u32::try_from(c.speed_limit_download).unwrap_or(u32::MAX),
        speed_limit_upload: u32::try_from(c.speed_limit_upload).unwrap_or(u32::MAX),
        tracker_num_want: c.tracker_num_want,
        tracker_stop_timeout: c.tracker_stop_timeout,
        tracker_http_timeout: c.tracker_http_timeout,
        tracker_http_max_response_size: usize::try_from(c.tracker_http_max_response_size)
            .unwrap_or(usize::MAX),
        tracker_http_verify_tls: c.tracker_http_verify_tls,
        ssrf_mitigation: c.ssrf_mitigation,
        tracker_http_private_user_agent: c.tracker_http_private_user_agent.clone(),
        private_peer_id_prefix: {
            let p = &c.private_peer_id_prefix;
            if p.len() > 20 || p.bytes().any(|b| !b.is_ascii_graphic()) {
                return Err(format!(
                    "private-peer-id-prefix: at most 20 printable ASCII characters: {p:?}"
                ));
            }
            p.clone()
        },
        torrent_add_http_timeout: c.torrent_add_http_timeout,
        dns_resolve_timeout: c.dns_resolve_timeout,
        max_torrent_size: usize::try_from(c.max_torrent_size).unwrap_or(usize::MAX),
        max_pieces: c.max_pieces,
        max_metadata_size: u32::try_from(c.max_metadata_size).unwrap_or(u32::MAX),
        unchoked_peers: c.unchoked_peers as usize,
        optimistic_unchoked_peers: c.optimistic_unchoked_peers as usize,
        max_requests_in: c.max_requests_in,
        max_requests_out: c.max_requests_out,
        default_requests_out: c.default_requests_out,
        request_timeout: c.request_timeout,
        max_peer_dial: c.max_peer_dial as usize,
        max_peer_accept: c.max_peer_accept as usize,
        max_peer_connections: c.max_peer_connections as usize,
        parallel_metadata_downloads: c.parallel_metadata_downloads as usize,
        allowed_fast_set: c.allowed_fast_set as usize,
        write_cache_size: c.write_cache_size,
        webseed_dial_timeout: c.webseed_dial_timeout,
        webseed_tls_handshake_timeout: c.webseed_tls_handshake_timeout,
        webseed_response_header_timeout: c.webseed_response_header_timeout,
        webseed_response_body_read_timeout: c.webseed_response_body_read_timeout,
        webseed_retry_interval: c.webseed_retry_interval,
        webseed_verify_tls: c.webseed_verify_tls,
        webseed_max_sources: c.webseed_max_sources as usize,
        webseed_max_downloads: c.webseed_max_downloads as usize,
        blocklist_url: c.blocklist_url.clone(),
        blocklist_update_interval: c.blocklist_update_interval,
        blocklist_update_timeout: c.blocklist_update_timeout,
        blocklist_max_response_size: usize::try_from(c.blocklist_max_response_size)
            .unwrap_or(usize::MAX),
        blocklist_enabled_for_trackers: c.blocklist_enabled_for_trackers,
        blocklist_enabled_for_outgoing_connections: c.blocklist_enabled_for_outgoing_connections,
        blocklist_enabled_for_incoming_connections: c.blocklist_enabled_for_incoming_connections,
        read_cache_size: c.read_cache_size,
        read_cache_block_size: u32::try_from(c.read_cache_block_size).unwrap_or(u32::MAX),
        read_cache_ttl: c.read_cache_ttl,
        parallel_reads: c.parallel_reads as usize,
        ..defaults
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_the_read_cache_keys() {
        let c = Config {
            read_cache_size: 1 << 20,
            read_cache_block_size: 64 * 1024,
            read_cache_ttl: std::time::Duration::from_secs(5),
            parallel_reads: 3,
            ..Config::default()
        };
        let s = session_config(&c).unwrap();
        assert_eq!(
            (s.read_cache_size, s.read_cache_block_size, s.parallel_reads),
            (1 << 20, 64 * 1024, 3)
        );
        assert_eq!(s.read_cache_ttl.as_secs(), 5);
        let d = session_config(&Config::default()).unwrap();
        let r = SessionConfig::default();
        assert_eq!(
            (d.read_cache_size, d.read_cache_block_size, d.read_cache_ttl),
            (r.read_cache_size, r.read_cache_block_size, r.read_cache_ttl)
        );
        assert_eq!(d.parallel_reads, r.parallel_reads);
    }

    #[test]
    fn maps_the_write_cache_size() {
        let c = Config {
            write_cache_size: 3 << 20,
            ..Config::default()
        };
        assert_eq!(session_config(&c).unwrap().write_cache_size, 3 << 20);
        assert_eq!(
            session_config(&Config::default()).unwrap().write_cache_size,
            SessionConfig::default().write_cache_size
        );
    }

    #[test]
    fn maps_keys_and_refuses_a_bad_host() {
        let mut c = Config {
            port_begin: 40000,
            port_end: 40010,
            force_outgoing_encryption: true,
            max_requests_in: 77,
            max_peer_connections: 123,
            tracker_http_verify_tls: false,
            ssrf_mitigation: false,
            tracker_http_private_user_agent: "Private/1".into(),
            webseed_retry_interval: std::time::Duration::from_secs(7),
            webseed_max_downloads: 2,
            dht_port: 7000,
            speed_limit_download: 300,
            speed_limit_upload: 200,
            dht_bootstrap_nodes: vec!["127.0.0.1:7001".into()],
            blocklist_url: "http://127.0.0.1:1/list".into(),
            blocklist_update_interval: std::time::Duration::from_secs(600),
            blocklist_enabled_for_incoming_connections: false,
            blocklist_max_response_size: 4096,
            ..Config::default()
        };
        let s = session_config(&c).unwrap();
        assert_eq!(s.blocklist_url, "http://127.0.0.1:1/list");
        assert_eq!(s.max_peer_connections, 123);
        assert_eq!(s.blocklist_update_interval.as_secs(), 600);
        assert_eq!(s.blocklist_max_response_size, 4096);
        assert!(
            s.blocklist_enabled_for_trackers
                && s.blocklist_enabled_for_outgoing_connections
                && !s.blocklist_enabled_for_incoming_connections
        );
        assert_eq!(
            (s.port_begin, s.port_end, s.max_requests_in),
            (40000, 40010, 77)
        );
        assert!(s.force_outgoing_encryption && s.dht_enabled && !s.tracker_http_verify_tls);
        assert!(!s.ssrf_mitigation);
        assert!(session_config(&Config::default()).unwrap().ssrf_mitigation);
        assert_eq!(
            (s.dht_port, &s.dht_bootstrap_nodes[..]),
            (7000, &["127.0.0.1:7001".to_owned()][..])
        );
        assert_eq!(s.tracker_http_private_user_agent, "Private/1");
        assert_eq!(
            (s.webseed_retry_interval.as_secs(), s.webseed_max_downloads),
            (7, 2)
        );
        assert_eq!((s.speed_limit_download, s.speed_limit_upload), (300, 200));
        assert_eq!(s.private_peer_id_prefix, c.private_peer_id_prefix);
        c.private_peer_id_prefix = "-far too long a prefix-".into();
        assert!(
            session_config(&c)
                .unwrap_err()
                .starts_with("private-peer-id-prefix")
        );
        c.private_peer_id_prefix = "-RN0001-".into();
        c.dht_host = "nope".into();
        assert!(session_config(&c).unwrap_err().starts_with("dht-host"));
        let mut c = Config {
            dht_host6: "nope".into(),
            ..Config::default()
        };
        assert!(session_config(&c).unwrap_err().starts_with("dht-host6"));
        c.dht_host6 = String::new();
        assert_eq!(session_config(&c).unwrap().dht_host6, None);
        c.dht_host6 = "::1".into();
        assert_eq!(
            session_config(&c).unwrap().dht_host6,
            Some("::1".parse().unwrap())
        );
        c.host = "not-an-ip".into();
        assert!(session_config(&c).unwrap_err().contains("host"));
    }
}
