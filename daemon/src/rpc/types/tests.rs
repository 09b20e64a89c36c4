//! Pins each object's JSON to rain's field names (reference/rain-behaviour.md §3).

use std::time::{Duration, UNIX_EPOCH};

use serde_json::{Value, json};

use super::*;

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().expect("an object").keys().cloned().collect();
    k.sort();
    k
}

fn sorted(names: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
    v.sort();
    v
}

#[test]
fn torrent_and_time_shapes() {
    let t = Torrent {
        id: "abc".into(),
        name: "n".into(),
        info_hash: "00".repeat(20),
        port: 20001,
        added_at: Time(Some(UNIX_EPOCH + Duration::from_secs(1_600_000_000))),
    };
    let v = serde_json::to_value(&t).unwrap();
    assert_eq!(
        keys(&v),
        sorted(&["ID", "Name", "InfoHash", "Port", "AddedAt"])
    );
    assert_eq!(v["AddedAt"], "2020-09-13T12:26:40Z");
    let back: Torrent = serde_json::from_value(v).unwrap();
    assert_eq!(back, t);
    assert_eq!(serde_json::to_value(Time(None)).unwrap(), ZERO_TIME);
    assert_eq!(
        serde_json::from_value::<Time>(json!(ZERO_TIME)).unwrap(),
        Time(None)
    );
}

#[test]
fn stats_shape_matches_rain() {
    let stats = Stats {
        info_hash: String::new(),
        port: 0,
        status: "Downloading".into(),
        error: String::new(),
        name: String::new(),
        private: false,
        file_count: 0,
        piece_length: 0,
        seeded_for: Duration::from_millis(90_500),
        eta: -1,
        pieces: PieceStats::default(),
        bytes: ByteStats::default(),
        peers: DirectionStats::default(),
        handshakes: DirectionStats::default(),
        addresses: AddressStats::default(),
        downloads: DownloadStats::default(),
        metadata_downloads: MetadataDownloadStats::default(),
        speed: SpeedStats::default(),
    };
    let v = serde_json::to_value(StatsResponse { stats }).unwrap();
    assert_eq!(keys(&v), ["Stats"]);
    let s = &v["Stats"];
    assert_eq!(
        keys(s),
        sorted(&[
            "InfoHash",
            "Port",
            "Status",
            "Error",
            "Name",
            "Private",
            "FileCount",
            "PieceLength",
            "SeededFor",
            "ETA",
            "Pieces",
            "Bytes",
            "Peers",
            "Handshakes",
            "Addresses",
            "Downloads",
            "MetadataDownloads",
            "Speed",
        ])
    );
    assert_eq!(s["SeededFor"], 90, "durations are whole seconds");
    assert_eq!(s["ETA"], -1);
    assert_eq!(
        keys(&s["Pieces"]),
        sorted(&["Checked", "Have", "Missing", "Available", "Total"])
    );
    assert_eq!(
        keys(&s["Bytes"]),
        sorted(&[
            "Total",
            "Padding",
            "Allocated",
            "Completed",
            "Incomplete",
            "Downloaded",
            "Uploaded",
            "Wasted"
        ])
    );
    assert_eq!(
        keys(&s["Peers"]),
        sorted(&["Total", "Incoming", "Outgoing"])
    );
    assert_eq!(
        keys(&s["Handshakes"]),
        sorted(&["Total", "Incoming", "Outgoing"])
    );
    assert_eq!(
        keys(&s["Addresses"]),
        sorted(&["Total", "Tracker", "DHT", "PEX"])
    );
    assert_eq!(
        keys(&s["Downloads"]),
        sorted(&["Total", "Running", "Snubbed", "Choked"])
    );
    assert_eq!(
        keys(&s["MetadataDownloads"]),
        sorted(&["Total", "Snubbed", "Running"])
    );
    assert_eq!(keys(&s["Speed"]), sorted(&["Download", "Upload"]));
}

#[test]
fn peer_tracker_webseed_file_shapes() {
    let peer = serde_json::to_value(Peer {
        id: String::new(),
        client: String::new(),
        addr: String::new(),
        source: "PEX".into(),
        connected_at: Time(None),
        downloading: false,
        client_interested: false,
        client_choking: true,
        peer_interested: false,
        peer_choking: true,
        optimistic_unchoked: false,
        snubbed: false,
        encrypted_handshake: false,
        encrypted_stream: false,
        download_speed: 0,
        upload_speed: 0,
    })
    .unwrap();
    assert_eq!(
        keys(&peer),
        sorted(&[
            "ID",
            "Client",
            "Addr",
            "Source",
            "ConnectedAt",
            "Downloading",
            "ClientInterested",
            "ClientChoking",
            "PeerInterested",
            "PeerChoking",
            "OptimisticUnchoked",
            "Snubbed",
            "EncryptedHandshake",
            "EncryptedStream",
            "DownloadSpeed",
            "UploadSpeed",
        ])
    );
    let tracker = serde_json::to_value(Tracker {
        url: String::new(),
        status: "Working".into(),
        leechers: 0,
        seeders: 0,
        warning: String::new(),
        error: String::new(),
        error_unknown: false,
        error_internal: String::new(),
        last_announce: Time(None),
        next_announce: Time(None),
    })
    .unwrap();
    assert_eq!(
        keys(&tracker),
        sorted(&[
            "URL",
            "Status",
            "Leechers",
            "Seeders",
            "Warning",
            "Error",
            "ErrorUnknown",
            "ErrorInternal",
            "LastAnnounce",
            "NextAnnounce",
        ])
    );
    let ws = serde_json::to_value(Webseed {
        url: String::new(),
        error: String::new(),
        download_speed: 1,
    })
    .unwrap();
    assert_eq!(keys(&ws), sorted(&["URL", "Error", "DownloadSpeed"]));
    let fs = serde_json::to_value(FileStatsResponse {
        file_stats: vec![FileStats {
            file: File {
                path: "a/b".into(),
                length: 3,
            },
            bytes_completed: 1,
        }],
    })
    .unwrap();
    assert_eq!(
        fs,
        json!({"FileStats": [{"File": {"Path": "a/b", "Length": 3}, "BytesCompleted": 1}]})
    );
}

#[test]
fn requests_parse_as_rains_client_sends_them() {
    let add: AddUriRequest = serde_json::from_value(json!({
        "URI": "magnet:?xt=urn:btih:00", "ID": "", "Stopped": true, "StopAfterDownload": false,
        "StopAfterMetadata": true, "Sequential": false
    }))
    .unwrap();
    assert_eq!(add.uri, "magnet:?xt=urn:btih:00");
    assert!(add.options.stopped && add.options.stop_after_metadata);
    // Older clients send no Sequential; missing options default to false.
    let add: AddTorrentRequest =
        serde_json::from_value(json!({"Torrent": "ZDEwOmU=", "ID": "mine"})).unwrap();
    assert_eq!(
        (add.torrent.as_str(), add.options.id.as_str()),
        ("ZDEwOmU=", "mine")
    );
    let rm: RemoveTorrentRequest =
        serde_json::from_value(json!({"ID": "x", "KeepData": true})).unwrap();
    assert!(rm.keep_data);
    let peer: AddPeerRequest =
        serde_json::from_value(json!({"ID": "x", "Addr": "1.2.3.4:5"})).unwrap();
    assert_eq!(peer.addr, "1.2.3.4:5");
    let tr: AddTrackerRequest =
        serde_json::from_value(json!({"ID": "x", "URL": "udp://t:1"})).unwrap();
    assert_eq!(tr.url, "udp://t:1");
    let mv: MoveTorrentRequest =
        serde_json::from_value(json!({"ID": "x", "Target": "http://h:7246"})).unwrap();
    assert_eq!(mv.target, "http://h:7246");
    assert_eq!(serde_json::to_value(Empty {}).unwrap(), json!({}));
    let session = serde_json::to_value(SessionStatsResponse {
        stats: SessionStats::default(),
    })
    .unwrap();
    assert_eq!(keys(&session["Stats"]).len(), 26);
    assert!(
        session["Stats"].get("BlockListRecency").is_some()
            && session["Stats"].get("PortsAvailable").is_some()
    );
}

#[test]
fn method_list_matches_the_reference() {
    let reference = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/reference/rain-behaviour.md");
    let Ok(text) = std::fs::read_to_string(&reference) else {
        eprintln!(
            "SKIP method_list_matches_the_reference: {} not found",
            reference.display()
        );
        return;
    };
    let mut in_reference: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("| `Session."))
        .filter_map(|rest| rest.split('`').next())
        .collect();
    in_reference.sort_unstable();
    in_reference.dedup();
    let mut ours: Vec<&str> = super::super::METHODS
        .iter()
        .map(|m| m.trim_start_matches("Session."))
        .collect();
    ours.sort_unstable();
    assert_eq!(ours, in_reference);
}
