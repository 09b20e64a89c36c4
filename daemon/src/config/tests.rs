use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{BEYOND_RAIN, Config, ConfigError, KEYS, Warning};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn parse(text: &str) -> Result<(Config, Vec<Warning>), ConfigError> {
    Config::from_yaml_str(text)
}

fn parse_ok(text: &str) -> Config {
    let (config, warnings) = parse(text).unwrap();
    assert_eq!(warnings, [], "{text}");
    config
}

/// The error for `text`, checked to be one line naming `key`.
fn invalid(text: &str, key: &str) -> ConfigError {
    let err = parse(text).expect_err(text);
    assert_eq!(err.key(), Some(key), "{text}: {err}");
    let msg = err.to_string();
    assert!(!msg.contains('\n'), "not one line: {msg}");
    assert!(msg.contains(key), "{msg}");
    err
}

fn home() -> String {
    std::env::var("HOME").expect("tests need $HOME")
}

/// Every value from reference §4's tables, key by key.
#[test]
fn defaults_match_rain() {
    let c = Config::default();
    let version = env!("CARGO_PKG_VERSION");
    // Session / storage
    assert_eq!(c.database, Path::new("$HOME/rain/session.db"));
    assert_eq!(c.data_dir, Path::new("$HOME/rain/data"));
    assert!(c.data_dir_includes_torrent_id);
    assert_eq!(c.host, "0.0.0.0");
    assert_eq!(c.port_begin, 20000);
    assert_eq!(c.port_end, 30000);
    assert_eq!(c.max_open_files, 10240);
    assert!(c.pex_enabled);
    assert_eq!(c.resume_write_interval, secs(30));
    assert_eq!(
        c.private_peer_id_prefix,
        format!("-RN{}-", super::version::version_code(version))
    );
    assert_eq!(c.private_peer_id_prefix.len(), 8);
    assert_eq!(
        c.private_extension_handshake_client_version,
        format!("Rain {version}")
    );
    assert_eq!(c.blocklist_url, "");
    assert_eq!(c.blocklist_update_interval, secs(24 * 3600));
    assert_eq!(c.blocklist_update_timeout, secs(10 * 60));
    assert!(c.blocklist_enabled_for_trackers);
    assert!(c.blocklist_enabled_for_outgoing_connections);
    assert!(c.blocklist_enabled_for_incoming_connections);
    assert_eq!(c.blocklist_max_response_size, 104_857_600);
    assert_eq!(c.torrent_add_http_timeout, secs(30));
    assert_eq!(c.max_metadata_size, 31_457_280);
    assert_eq!(c.max_torrent_size, 10_485_760);
    assert_eq!(c.max_pieces, 65536);
    assert_eq!(c.dns_resolve_timeout, secs(5));
    assert_eq!(c.speed_limit_download, 0);
    assert_eq!(c.speed_limit_upload, 0);
    assert!(c.resume_on_startup);
    assert_eq!(c.health_check_interval, secs(10));
    assert_eq!(c.health_check_timeout, secs(60));
    assert_eq!(c.file_permissions, 0o750);
    assert_eq!(c.on_complete_cmd, Vec::<String>::new());
    assert!(!c.debug);
    // RPC
    assert!(c.rpc_enabled);
    assert_eq!(c.rpc_host, "127.0.0.1");
    assert_eq!(c.rpc_port, 7246);
    assert_eq!(c.rpc_shutdown_timeout, secs(5));
    // DHT
    assert!(c.dht_enabled);
    assert_eq!(c.dht_host, "0.0.0.0");
    assert_eq!(c.dht_port, 7246);
    assert_eq!(c.dht_announce_interval, secs(30 * 60));
    assert_eq!(c.dht_min_announce_interval, secs(60));
    assert_eq!(
        c.dht_bootstrap_nodes,
        [
            "router.bittorrent.com:6881",
            "dht.transmissionbt.com:6881",
            "router.utorrent.com:6881",
            "dht.libtorrent.org:25401",
            "dht.aelitis.com:6881",
        ]
    );
    // Tracker
    assert_eq!(c.tracker_num_want, 200);
    assert_eq!(c.tracker_stop_timeout, secs(5));
    assert_eq!(c.tracker_min_announce_interval, secs(60));
    assert_eq!(c.tracker_http_timeout, secs(10));
    assert_eq!(c.tracker_http_private_user_agent, format!("Rain/{version}"));
    assert_eq!(c.tracker_http_max_response_size, 2_097_152);
    assert!(c.tracker_http_verify_tls);
    assert!(c.ssrf_mitigation);
    // Peer
    assert_eq!(c.unchoked_peers, 3);
    assert_eq!(c.optimistic_unchoked_peers, 1);
    assert_eq!(c.max_requests_in, 250);
    assert_eq!(c.max_requests_out, 250);
    assert_eq!(c.default_requests_out, 50);
    assert_eq!(c.request_timeout, secs(20));
    assert_eq!(c.endgame_max_duplicate_downloads, 20);
    assert_eq!(c.max_peer_dial, 80);
    assert_eq!(c.max_peer_accept, 20);
    assert_eq!(c.max_peer_connections, 4000);
    assert_eq!(c.parallel_metadata_downloads, 2);
    assert_eq!(c.peer_connect_timeout, secs(5));
    assert_eq!(c.peer_handshake_timeout, secs(10));
    assert_eq!(c.piece_read_timeout, secs(30));
    assert_eq!(c.max_peer_addresses, 2000);
    assert_eq!(c.allowed_fast_set, 10);
    // Disk I/O
    assert_eq!(c.read_cache_block_size, 131_072);
    assert_eq!(c.read_cache_size, 268_435_456);
    assert_eq!(c.read_cache_ttl, secs(60));
    assert_eq!(c.parallel_reads, 1);
    assert_eq!(c.parallel_writes, 1);
    assert_eq!(c.write_cache_size, 1_073_741_824);
    // Encryption
    assert!(!c.disable_outgoing_encryption);
    assert!(!c.force_outgoing_encryption);
    assert!(!c.force_incoming_encryption);
    assert!(!c.prefer_plaintext);
    // WebSeed
    assert_eq!(c.webseed_dial_timeout, secs(10));
    assert_eq!(c.webseed_tls_handshake_timeout, secs(10));
    assert_eq!(c.webseed_response_header_timeout, secs(10));
    assert_eq!(c.webseed_response_body_read_timeout, secs(10));
    assert_eq!(c.webseed_retry_interval, secs(60));
    assert!(c.webseed_verify_tls);
    assert_eq!(c.webseed_max_sources, 10);
    assert_eq!(c.webseed_max_downloads, 4);

    assert_eq!(KEYS.len(), 80 + BEYOND_RAIN.len());
    assert!(c.rpc_token.is_empty());
    c.validate().unwrap();
}

/// The keys we know are exactly those of reference §4, when the reference is beside the repo.
#[test]
fn keys_are_the_reference_keys() {
    let reference =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/reference/rain-behaviour.md");
    let Ok(text) = std::fs::read_to_string(&reference) else {
        eprintln!(
            "{} not found; key set not cross-checked",
            reference.display()
        );
        return;
    };
    let section = text
        .split("\n## 4.")
        .nth(1)
        .and_then(|s| s.split("\n## 5.").next())
        .expect("reference has a §4");
    let documented: Vec<&str> = section
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .collect();
    let ours: Vec<&str> = KEYS
        .iter()
        .copied()
        .filter(|k| !BEYOND_RAIN.contains(k))
        .collect();
    assert_eq!(documented, ours);
}

const EVERY_KEY: &str = r#"
# every key, none at its default
database: /var/lib/rain/session.db
data-dir: /srv/torrents
data-dir-includes-torrent-id: false
host: 192.0.2.1
port-begin: 40000
port-end: 40100
max-open-files: 0
pex-enabled: false
resume-write-interval: 1m30s
private-peer-id-prefix: "-XX0001-"
private-extension-handshake-client-version: "Other 1.0"
blocklist-url: https://example.invalid/list.txt
blocklist-update-interval: 12h
blocklist-update-timeout: 2m
blocklist-enabled-for-trackers: false
blocklist-enabled-for-outgoing-connections: false
blocklist-enabled-for-incoming-connections: false
blocklist-max-response-size: 1048576
torrent-add-http-timeout: 45s
max-metadata-size: 1000000
max-torrent-size: 2000000
max-pieces: 1000
dns-resolve-timeout: 2500ms
speed-limit-download: 1024
speed-limit-upload: 512
resume-on-startup: false
health-check-interval: 20s
health-check-timeout: 2m
file-permissions: 0700
on-complete-cmd: ["/usr/bin/notify", "--done", "a b"]
debug: true
rpc-enabled: false
rpc-host: 0.0.0.0
rpc-port: 8000
rpc-shutdown-timeout: 1s
rpc-token: s3cret
dht-enabled: false
dht-host: 127.0.0.1
dht-host6: "::1"
dht-port: 6881
dht-announce-interval: 1h
dht-min-announce-interval: 90s
dht-bootstrap-nodes:
  - node.example:1234
  - 192.0.2.7:6881
tracker-num-want: 50
tracker-stop-timeout: 3s
tracker-min-announce-interval: 2m
tracker-http-timeout: 15s
tracker-http-private-user-agent: "uTorrent/3.5"
tracker-http-max-response-size: 4194304
tracker-http-verify-tls: false
ssrf-mitigation: false
unchoked-peers: 5
optimistic-unchoked-peers: 2
max-requests-in: 500
max-requests-out: 400
default-requests-out: 25
request-timeout: 40s
endgame-max-duplicate-downloads: 3
max-peer-dial: 100
max-peer-accept: 30
max-peer-connections: 900
parallel-metadata-downloads: 4
peer-connect-timeout: 7s
peer-handshake-timeout: 12s
piece-read-timeout: 45s
max-peer-addresses: 500
allowed-fast-set: 0
read-cache-block-size: 65536
read-cache-size: 1_000_000
read-cache-ttl: 5m
parallel-reads: 4
parallel-writes: 2
write-cache-size: 0x10000000
disable-outgoing-encryption: true
force-outgoing-encryption: true
force-incoming-encryption: true
prefer-plaintext: true
webseed-dial-timeout: 1s
webseed-tls-handshake-timeout: 2s
webseed-response-header-timeout: 3s
webseed-response-body-read-timeout: 4s
webseed-retry-interval: 5m
webseed-verify-tls: false
webseed-max-sources: 20
webseed-max-downloads: 8
"#;

#[test]
fn every_key_parses_to_its_value() {
    // The document above sets every key, so a new key cannot be left out of this test.
    for key in KEYS {
        assert!(
            EVERY_KEY.contains(&format!("\n{key}: ")) || EVERY_KEY.contains(&format!("\n{key}:\n")),
            "{key} missing from the test document"
        );
    }
    let c = parse_ok(EVERY_KEY);
    let default = Config::default();
    let expected = Config {
        database: PathBuf::from("/var/lib/rain/session.db"),
        data_dir: PathBuf::from("/srv/torrents"),
        data_dir_includes_torrent_id: false,
        host: "192.0.2.1".into(),
        port_begin: 40000,
        port_end: 40100,
        max_open_files: 0,
        pex_enabled: false,
        resume_write_interval: secs(90),
        private_peer_id_prefix: "-XX0001-".into(),
        private_extension_handshake_client_version: "Other 1.0".into(),
        blocklist_url: "https://example.invalid/list.txt".into(),
        blocklist_update_interval: secs(12 * 3600),
        blocklist_update_timeout: secs(120),
        blocklist_enabled_for_trackers: false,
        blocklist_enabled_for_outgoing_connections: false,
        blocklist_enabled_for_incoming_connections: false,
        blocklist_max_response_size: 1_048_576,
        torrent_add_http_timeout: secs(45),
        max_metadata_size: 1_000_000,
        max_torrent_size: 2_000_000,
        max_pieces: 1000,
        dns_resolve_timeout: Duration::from_millis(2500),
        speed_limit_download: 1024,
        speed_limit_upload: 512,
        resume_on_startup: false,
        health_check_interval: secs(20),
        health_check_timeout: secs(120),
        file_permissions: 0o700,
        on_complete_cmd: vec!["/usr/bin/notify".into(), "--done".into(), "a b".into()],
        debug: true,
        rpc_enabled: false,
        rpc_host: "0.0.0.0".into(),
        rpc_port: 8000,
        rpc_shutdown_timeout: secs(1),
        rpc_token: "s3cret".into(),
        dht_enabled: false,
        dht_host: "127.0.0.1".into(),
        dht_host6: "::1".into(),
        dht_port: 6881,
        dht_announce_interval: secs(3600),
        dht_min_announce_interval: secs(90),
        dht_bootstrap_nodes: vec!["node.example:1234".into(), "192.0.2.7:6881".into()],
        tracker_num_want: 50,
        tracker_stop_timeout: secs(3),
        tracker_min_announce_interval: secs(120),
        tracker_http_timeout: secs(15),
        tracker_http_private_user_agent: "uTorrent/3.5".into(),
        tracker_http_max_response_size: 4_194_304,
        tracker_http_verify_tls: false,
        ssrf_mitigation: false,
        unchoked_peers: 5,
        optimistic_unchoked_peers: 2,
        max_requests_in: 500,
        max_requests_out: 400,
        default_requests_out: 25,
        request_timeout: secs(40),
        endgame_max_duplicate_downloads: 3,
        max_peer_dial: 100,
        max_peer_accept: 30,
        max_peer_connections: 900,
        parallel_metadata_downloads: 4,
        peer_connect_timeout: secs(7),
        peer_handshake_timeout: secs(12),
        piece_read_timeout: secs(45),
        max_peer_addresses: 500,
        allowed_fast_set: 0,
        read_cache_block_size: 65536,
        read_cache_size: 1_000_000,
        read_cache_ttl: secs(300),
        parallel_reads: 4,
        parallel_writes: 2,
        write_cache_size: 0x1000_0000,
        disable_outgoing_encryption: true,
        force_outgoing_encryption: true,
        force_incoming_encryption: true,
        prefer_plaintext: true,
        webseed_dial_timeout: secs(1),
        webseed_tls_handshake_timeout: secs(2),
        webseed_response_header_timeout: secs(3),
        webseed_response_body_read_timeout: secs(4),
        webseed_retry_interval: secs(300),
        webseed_verify_tls: false,
        webseed_max_sources: 20,
        webseed_max_downloads: 8,
    };
    assert_eq!(c, expected);
    // And each value really differs from its default, so none was silently left unset.
    let (c_yaml, d_yaml) = (c.to_yaml(), default.to_yaml());
    for (ours, theirs) in c_yaml.lines().zip(d_yaml.lines()).skip(1) {
        assert_ne!(ours, theirs, "value equals the default");
    }
}

#[test]
fn durations_in_the_file() {
    let c = parse_ok(
        "resume-write-interval: 1h2m3.5s\nrequest-timeout: '500ms'\nread-cache-ttl: 0\n\
         dht-announce-interval: \"24h\"\n",
    );
    assert_eq!(c.resume_write_interval, Duration::from_millis(3_723_500));
    assert_eq!(c.request_timeout, Duration::from_millis(500));
    assert_eq!(c.read_cache_ttl, Duration::ZERO);
    assert_eq!(c.dht_announce_interval, secs(86_400));

    let bad = [
        ("resume-write-interval: 30", "missing unit"),
        ("resume-write-interval: 30x", "unknown unit \"x\""),
        ("resume-write-interval: 1d", "unknown unit \"d\""),
        ("resume-write-interval: -5s", "must not be negative"),
        ("resume-write-interval: abc", "invalid duration"),
        ("resume-write-interval: [1s]", "expected a duration"),
    ];
    for (text, reason) in bad {
        let err = invalid(text, "resume-write-interval");
        assert_eq!(err.line(), Some(1));
        assert!(err.to_string().contains(reason), "{text}: {err}");
    }
}

#[test]
fn unknown_keys_are_warned_with_their_line() {
    let text = "\
# comment
rpc-port: 7000
rpc_port: 7001
unknown-thing: 1

nested:
  port-begin: 1
\"quoted-typo\": x
debug: true
";
    let (c, warnings) = parse(text).unwrap();
    assert_eq!(c.rpc_port, 7000);
    assert!(c.debug);
    assert_eq!(c.port_begin, 20000, "nested keys are not top-level keys");
    let unknown = |key: &str, line| Warning::UnknownKey {
        key: key.to_owned(),
        line,
    };
    assert_eq!(
        warnings,
        [
            unknown("rpc_port", 3),
            unknown("unknown-thing", 4),
            unknown("nested", 6),
            unknown("quoted-typo", 8),
        ]
    );
    assert_eq!(
        warnings[0].to_string(),
        "line 3: unknown config key \"rpc_port\" ignored"
    );
}

#[test]
fn explicit_missing_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.yaml");
    let err = Config::load(Some(&path)).unwrap_err();
    assert!(
        matches!(&err, ConfigError::NotFound { path: p } if *p == path),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!("config file {} does not exist", path.display())
    );
}

#[test]
fn missing_default_file_means_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let home = OsString::from(dir.path());
    let (config, warnings) = Config::load_with_home(None, Some(home)).unwrap();
    let mut expected = Config::default();
    expected.expand_paths();
    assert_eq!(config, expected);
    assert_eq!(
        warnings,
        [Warning::DefaultFileMissing {
            path: dir.path().join("rain/config.yaml")
        }]
    );
    assert!(matches!(
        Config::load_with_home(None, None),
        Err(ConfigError::NoHome)
    ));
}

#[test]
fn default_file_is_read_when_present() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("rain")).unwrap();
    std::fs::write(
        dir.path().join("rain/config.yaml"),
        "rpc-port: 7777\nbogus: 1\n",
    )
    .unwrap();
    let (config, warnings) =
        Config::load_with_home(None, Some(dir.path().as_os_str().to_owned())).unwrap();
    assert_eq!(config.rpc_port, 7777);
    assert_eq!(
        warnings,
        [Warning::UnknownKey {
            key: "bogus".into(),
            line: 2
        }]
    );
}

#[test]
fn errors_from_a_file_name_the_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, "debug: true\nport-begin: 30000\nport-end: 20000\n").unwrap();
    let err = Config::load(Some(&path)).unwrap_err();
    assert_eq!(err.key(), Some("port-begin"));
    assert_eq!(err.line(), Some(2));
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "{}:2: port-begin: must be less than port-end (20000), found 30000",
            path.display()
        )),
        "{msg}"
    );
    assert!(!msg.contains('\n'));

    std::fs::write(&path, "debug: true\nrpc-port: [1\n").unwrap();
    let err = Config::load(Some(&path)).unwrap_err();
    assert!(matches!(err, ConfigError::Syntax { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!("{}: malformed YAML at line", path.display())),
        "{msg}"
    );
    assert!(!msg.contains('\n'), "{msg}");
}

#[test]
fn port_range_must_be_ascending() {
    let err = invalid("port-begin: 30000\nport-end: 20000\n", "port-begin");
    assert_eq!(err.line(), Some(1));
    assert!(
        err.to_string()
            .contains("must be less than port-end (20000), found 30000")
    );
    invalid("port-begin: 20000\nport-end: 20000\n", "port-begin");
    // Only port-end written: blame it.
    let err = invalid("port-end: 10000\n", "port-end");
    assert!(
        err.to_string()
            .contains("must be greater than port-begin (20000)")
    );
    // One port is a valid pool.
    let c = parse_ok("port-begin: 6881\nport-end: 6882\n");
    assert_eq!((c.port_begin, c.port_end), (6881, 6882));
    // Programmatic configs too.
    let c = Config {
        port_begin: 5,
        port_end: 5,
        ..Config::default()
    };
    assert_eq!(c.validate().unwrap_err().key(), Some("port-begin"));
}

#[test]
fn malformed_yaml_is_one_line_with_position() {
    for text in [
        "rpc-port: [1, 2\n",
        "debug: true\n  bad indentation: x\n",
        "a: 'unterminated\n",
        "debug: true: false\n",
        "rpc-port: 1\n- 2\n",
    ] {
        let err = parse(text).expect_err(text);
        let ConfigError::Syntax { line, column, .. } = &err else {
            panic!("{text:?}: {err:?}");
        };
        assert!(*line >= 1 && *column >= 1);
        let msg = err.to_string();
        assert!(msg.starts_with("malformed YAML at line "), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
    }
    let err = parse("debug: true\nrpc-port: 1\ndebug: false\n").unwrap_err();
    assert_eq!(err.key(), Some("debug"));
    assert_eq!(err.line(), Some(3));
    assert!(err.to_string().contains("duplicate key"), "{err}");

    let err = parse("- a\n- b\n").unwrap_err();
    assert!(matches!(err, ConfigError::Shape { line: 1, .. }), "{err:?}");
    let err = parse("debug: true\n---\ndebug: false\n").unwrap_err();
    assert!(matches!(err, ConfigError::Shape { line: 3, .. }), "{err:?}");
}

#[test]
fn wrong_types_name_the_key() {
    let cases = [
        (
            "debug: maybe",
            "debug",
            "expected true or false, found \"maybe\"",
        ),
        (
            "debug: \"true\"",
            "debug",
            "found the quoted string \"true\"",
        ),
        ("rpc-port: \"7246\"", "rpc-port", "expected a whole number"),
        ("rpc-port: 72.46", "rpc-port", "expected a whole number"),
        (
            "max-peer-dial: lots",
            "max-peer-dial",
            "expected a whole number",
        ),
        ("host: [a, b]", "host", "expected a string, found a list"),
        (
            "database: {a: 1}",
            "database",
            "expected a path, found a mapping",
        ),
        (
            "on-complete-cmd: /bin/true",
            "on-complete-cmd",
            "expected a list",
        ),
        (
            "dht-bootstrap-nodes: [[a]]",
            "dht-bootstrap-nodes",
            "expected a string in the list",
        ),
        (
            "file-permissions: rwx",
            "file-permissions",
            "expected a whole number",
        ),
    ];
    for (text, key, reason) in cases {
        let err = invalid(text, key);
        assert!(err.to_string().contains(reason), "{text}: {err}");
        assert_eq!(err.line(), Some(1), "{text}");
    }
}

#[test]
fn numbers_must_fit_and_not_be_negative() {
    let cases = [
        (
            "max-peer-dial: -1",
            "max-peer-dial",
            "must not be negative, found -1",
        ),
        (
            "speed-limit-upload: -100",
            "speed-limit-upload",
            "must not be negative",
        ),
        ("rpc-port: -1", "rpc-port", "must not be negative"),
        (
            "rpc-port: 65536",
            "rpc-port",
            "must be at most 65535, found 65536",
        ),
        ("dht-port: 100000", "dht-port", "must be at most 65535"),
        ("port-end: 70000", "port-end", "must be at most 65535"),
        (
            "max-pieces: 4294967296",
            "max-pieces",
            "must be at most 4294967295",
        ),
        (
            "write-cache-size: 99999999999999999999",
            "write-cache-size",
            "must be at most",
        ),
    ];
    for (text, key, reason) in cases {
        let err = invalid(text, key);
        assert!(err.to_string().contains(reason), "{text}: {err}");
    }
    let c =
        parse_ok("rpc-port: 65535\nmax-peer-dial: +7\nspeed-limit-upload: -0\nmax-pieces: 0o17\n");
    assert_eq!(
        (
            c.rpc_port,
            c.max_peer_dial,
            c.speed_limit_upload,
            c.max_pieces
        ),
        (65535, 7, 0, 15)
    );
}

#[test]
fn file_permissions_read_as_go_users_write_them() {
    let ok = [
        ("0750", 0o750),
        ("0o750", 0o750),
        ("0O700", 0o700),
        ("488", 0o750),
        ("0", 0),
        ("02750", 0o2750),
        ("0x1ed", 0o755),
    ];
    for (written, mode) in ok {
        let c = parse_ok(&format!("file-permissions: {written}\n"));
        assert_eq!(c.file_permissions, mode, "{written}");
    }
    let err = invalid("file-permissions: 750", "file-permissions");
    assert!(err.to_string().contains("leading 0, such as 0750"), "{err}");
    let err = invalid("file-permissions: 017777", "file-permissions");
    assert!(err.to_string().contains("at most 07777"), "{err}");
    invalid("file-permissions: 0789", "file-permissions");
    invalid("file-permissions: '0750'", "file-permissions");
}

#[test]
fn booleans_strings_lists_and_empty_values() {
    let c = parse_ok(
        "debug: yes\npex-enabled: off\nrpc-enabled: TRUE\nhost: 10.0.0.1\nrpc-host: 'localhost'\n\
         private-peer-id-prefix: -AB1234-\nblocklist-url:\nrpc-port: ~\ndht-bootstrap-nodes:\n\
         on-complete-cmd: [echo, '', \"x y\"]\ntracker-http-private-user-agent: 123\n",
    );
    assert!(c.debug && !c.pex_enabled && c.rpc_enabled);
    assert_eq!(c.host, "10.0.0.1");
    assert_eq!(c.rpc_host, "localhost");
    assert_eq!(c.private_peer_id_prefix, "-AB1234-");
    assert_eq!(c.blocklist_url, "", "no value keeps the default");
    assert_eq!(c.rpc_port, 7246, "no value keeps the default");
    assert_eq!(
        c.dht_bootstrap_nodes,
        Vec::<String>::new(),
        "no list is an empty list"
    );
    assert_eq!(c.on_complete_cmd, ["echo", "", "x y"]);
    assert_eq!(c.tracker_http_private_user_agent, "123");

    // Empty files and comment-only files are all defaults.
    for text in ["", "# nothing\n", "---\n", "~\n"] {
        let (c, w) = parse(text).unwrap();
        let mut expected = Config::default();
        expected.expand_paths();
        assert_eq!(c, expected, "{text:?}");
        assert_eq!(w, []);
    }
}

#[test]
fn home_and_variables_expand_in_paths() {
    let home = home();
    let user_var = std::env::vars()
        .find(|(k, v)| {
            k != "HOME"
                && !v.is_empty()
                && !v.contains('$')
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
        .expect("some environment variable");
    let c = parse_ok(&format!(
        "database: $HOME/x/session.db\ndata-dir: ${{{}}}/data\n",
        user_var.0
    ));
    assert_eq!(c.database, PathBuf::from(format!("{home}/x/session.db")));
    assert_eq!(c.data_dir, PathBuf::from(format!("{}/data", user_var.1)));

    let c = parse_ok("database: ~/rain/s.db\ndata-dir: \"~\"\n");
    assert_eq!(c.database, PathBuf::from(format!("{home}/rain/s.db")));
    assert_eq!(c.data_dir, PathBuf::from(&home));

    // `~user` and a `~` later in the path are not the home directory.
    let c = parse_ok("database: ~other/s.db\ndata-dir: /a/~/b\n");
    assert_eq!(c.database, Path::new("~other/s.db"));
    assert_eq!(c.data_dir, Path::new("/a/~/b"));

    // Defaults expand on load, not in Default.
    let (c, _) = parse("").unwrap();
    assert_eq!(c.database, PathBuf::from(format!("{home}/rain/session.db")));
    assert_eq!(c.data_dir, PathBuf::from(format!("{home}/rain/data")));
    assert_eq!(
        Config::default().database,
        Path::new("$HOME/rain/session.db")
    );
}

#[test]
fn to_yaml_reads_back() {
    let mut default = Config::default();
    let (back, warnings) = parse(&default.to_yaml()).unwrap();
    assert_eq!(warnings, []);
    default.expand_paths();
    assert_eq!(back, default);

    let (every, _) = parse(EVERY_KEY).unwrap();
    let mut odd = every.clone();
    odd.on_complete_cmd = vec!["say \"hi\"\\".into(), "tab\there".into(), "#x: y".into()];
    odd.host = "yes".into();
    odd.blocklist_url = String::new();
    let (back, _) = parse(&odd.to_yaml()).unwrap();
    assert_eq!(back, odd);

    let yaml = Config::default().to_yaml();
    assert!(yaml.contains("\nresume-write-interval: 30s\n"), "{yaml}");
    assert!(
        yaml.contains("\nblocklist-update-interval: 24h0m0s\n"),
        "{yaml}"
    );
    assert!(yaml.contains("\nfile-permissions: 0750\n"), "{yaml}");
    assert!(
        yaml.contains("\ndatabase: \"$HOME/rain/session.db\"\n"),
        "{yaml}"
    );
    assert_eq!(yaml.lines().count(), KEYS.len() + 1);
}
