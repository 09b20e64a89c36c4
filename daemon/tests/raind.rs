//! End to end: real `raind` processes on loopback, driven by the real `rain client` binary and
//! by raw HTTP requests shaped like rain's Go client. Every process is killed when its guard
//! drops and every wait is bounded.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    RAIN, RAIND, Raind, WAIT, free_port, http_post, make_torrent, one_error_line, rain,
    shell_script, status_and_body,
};
use serde_json::{Value, json};

#[test]
fn client_drives_two_servers_through_a_download_and_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let (torrent, data) = make_torrent(tmp.path(), "movie.bin", 3 * 1024 * 1024 + 123);
    let torrent = torrent.to_str().unwrap();

    // The seeder: data placed where a torrent with id "seed" keeps it.
    let seeder = Raind::start(&tmp.path().join("seeder"), "");
    std::fs::create_dir_all(tmp.path().join("seeder/data/seed")).unwrap();
    std::fs::copy(
        tmp.path().join("src/movie.bin"),
        tmp.path().join("seeder/data/seed/movie.bin"),
    )
    .unwrap();
    let added = seeder.json(&["add", "-t", torrent, "--id", "seed"]);
    assert_eq!(added["ID"], "seed");
    assert_eq!(added["Name"], "movie.bin");
    let seed_port = added["Port"].as_u64().unwrap();
    seeder.wait_for("seed", "seeding", |s| s["Status"] == "Seeding");

    // The leecher downloads from it.
    let mut leecher = Raind::start(&tmp.path().join("leecher"), "");
    let added = leecher.json(&["add", "-t", torrent]);
    let id = added["ID"].as_str().unwrap().to_owned();
    assert_eq!(added["InfoHash"], seeder.stats("seed")["InfoHash"]);
    leecher.ok(&[
        "add-peer",
        "--id",
        &id,
        "--addr",
        &format!("127.0.0.1:{seed_port}"),
    ]);
    let done = leecher.wait_for(&id, "completed", |s| s["Status"] == "Seeding");
    assert_eq!(done["Pieces"]["Have"], done["Pieces"]["Total"]);
    let got = std::fs::read(tmp.path().join(format!("leecher/data/{id}/movie.bin"))).unwrap();
    assert!(got == data, "downloaded bytes differ");

    // Getters.
    let list = leecher.json(&["list"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    let files = leecher.json(&["files", "--id", &id]);
    assert_eq!(files[0]["Path"], "movie.bin");
    assert_eq!(files[0]["Length"], data.len() as u64);
    let fstats = leecher.json(&["file-stats", "--id", &id]);
    assert_eq!(fstats[0]["BytesCompleted"], data.len() as u64);
    let magnet = leecher.ok(&["magnet", "--id", &id]);
    assert!(
        magnet.trim().starts_with("magnet:?xt=urn:btih:"),
        "{magnet}"
    );
    let copy = tmp.path().join("copy.torrent");
    leecher.ok(&["torrent", "--id", &id, "-o", copy.to_str().unwrap()]);
    let info = |p: &str| String::from_utf8(rain(&["torrent", "infohash", "-f", p]).stdout);
    assert_eq!(info(copy.to_str().unwrap()), info(torrent));
    let session = leecher.json(&["session-stats", "--json"]);
    assert_eq!(session["Torrents"], 1);
    assert!(leecher.ok(&["stats", "--id", &id]).contains("Seeding"));
    assert!(leecher.json(&["trackers", "--id", &id]).is_array());
    assert!(leecher.json(&["webseeds", "--id", &id]).is_array());
    assert!(leecher.json(&["peers", "--id", &id]).is_array());
    leecher.ok(&["announce", "--id", &id]);

    // Stop, start, verify.
    leecher.ok(&["stop", "--id", &id]);
    leecher.wait_for(&id, "stopped", |s| s["Status"] == "Stopped");
    leecher.ok(&["start", "--id", &id]);
    leecher.wait_for(&id, "seeding again", |s| s["Status"] == "Seeding");
    leecher.ok(&["verify", "--id", &id]);
    let verified = leecher.wait_for(&id, "verified and stopped", |s| {
        s["Status"] == "Stopped" && s["Pieces"]["Have"] == s["Pieces"]["Total"]
    });
    assert_eq!(verified["Pieces"]["Have"], done["Pieces"]["Total"]);
    leecher.ok(&["start-all"]);
    leecher.wait_for(&id, "seeding after start-all", |s| s["Status"] == "Seeding");

    // A magnet joins the list; both survive a restart with their state.
    let m = leecher.json(&[
        "add",
        "-t",
        "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567&dn=other",
        "--stopped",
    ]);
    let magnet_id = m["ID"].as_str().unwrap().to_owned();
    let downloaded = leecher.stats(&id)["Bytes"]["Downloaded"].clone();
    leecher.stop();
    leecher.spawn();
    let list = leecher.json(&["list"]);
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    let s = leecher.wait_for(&id, "seeding after restart", |s| s["Status"] == "Seeding");
    assert_eq!(
        s["Bytes"]["Downloaded"], downloaded,
        "nothing downloaded twice"
    );
    assert_eq!(leecher.stats(&magnet_id)["Status"], "Stopped");

    // Remove keeping data, then without.
    leecher.ok(&["remove", "--id", &magnet_id]);
    leecher.ok(&["remove", "--id", &id, "--keep-data"]);
    assert!(
        tmp.path()
            .join(format!("leecher/data/{id}/movie.bin"))
            .exists()
    );
    assert_eq!(leecher.json(&["list"]).as_array().unwrap().len(), 0);
    let again = leecher.json(&["add", "-t", torrent, "--id", "again", "--stopped"]);
    assert_eq!(again["ID"], "again");
    std::fs::create_dir_all(tmp.path().join("leecher/data/again")).unwrap();
    std::fs::write(tmp.path().join("leecher/data/again/movie.bin"), &data).unwrap();
    leecher.ok(&["remove", "--id", "again"]);
    assert!(
        !tmp.path().join("leecher/data/again").exists(),
        "data removed"
    );
    leecher.stop();
}

/// Requests shaped exactly as rain's Go client sends them get rain's result shapes.
#[test]
fn raw_requests_get_rains_shapes() {
    let tmp = tempfile::tempdir().unwrap();
    let (torrent, _) = make_torrent(tmp.path(), "shape.bin", 100_000);
    let d = Raind::start(&tmp.path().join("d"), "");
    let keys = |v: &Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    let result = |method: &str, params: Option<Value>| -> Value {
        let r = d.raw(method, params);
        assert_eq!(r["jsonrpc"], "2.0");
        assert_eq!(r["id"], 1);
        r.get("result")
            .cloned()
            .unwrap_or_else(|| panic!("{method}: {r}"))
    };

    assert!(result("Session.Version", None).is_string());
    let bytes = std::fs::read(&torrent).unwrap();
    let b64 = data_encoding::BASE64.encode(&bytes);
    let added = result(
        "Session.AddTorrent",
        Some(json!({"Torrent": b64, "ID": "", "Stopped": true,
                    "StopAfterDownload": false, "StopAfterMetadata": false})),
    );
    assert_eq!(keys(&added), ["Torrent"]);
    assert_eq!(
        keys(&added["Torrent"]),
        ["AddedAt", "ID", "InfoHash", "Name", "Port"]
    );
    let id = added["Torrent"]["ID"].as_str().unwrap().to_owned();
    let by_id = Some(json!({ "ID": id }));
    let uri = result(
        "Session.AddURI",
        Some(
            json!({"URI": "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567",
                    "ID": "m1", "Stopped": true}),
        ),
    );
    assert_eq!(uri["Torrent"]["ID"], "m1");

    let list = result("Session.ListTorrents", Some(json!({})));
    assert_eq!(keys(&list), ["Torrents"]);
    assert_eq!(list["Torrents"].as_array().unwrap().len(), 2);
    assert_eq!(
        result("Session.ListTorrents", None),
        list,
        "params may be omitted"
    );

    let stats = result("Session.GetTorrentStats", by_id.clone());
    assert_eq!(
        keys(&stats["Stats"]),
        [
            "Addresses",
            "Bytes",
            "Downloads",
            "ETA",
            "Error",
            "FileCount",
            "Handshakes",
            "InfoHash",
            "MetadataDownloads",
            "Name",
            "Peers",
            "PieceLength",
            "Pieces",
            "Port",
            "Private",
            "SeededFor",
            "Speed",
            "Status",
        ]
    );
    assert_eq!(
        keys(&stats["Stats"]["Addresses"]),
        ["DHT", "PEX", "Total", "Tracker"]
    );
    assert_eq!(stats["Stats"]["Status"], "Stopped");
    assert_eq!(stats["Stats"]["ETA"], -1);

    let session = result("Session.GetSessionStats", None);
    assert_eq!(keys(&session), ["Stats"]);
    for k in [
        "Uptime",
        "Torrents",
        "Peers",
        "PortsAvailable",
        "BytesDownloaded",
    ] {
        assert!(session["Stats"].get(k).is_some(), "SessionStats.{k}");
    }
    assert_eq!(session["Stats"]["Torrents"], 2);

    assert_eq!(
        keys(&result("Session.GetTorrentTrackers", by_id.clone())),
        ["Trackers"]
    );
    assert_eq!(
        keys(&result("Session.GetTorrentPeers", by_id.clone())),
        ["Peers"]
    );
    assert_eq!(
        keys(&result("Session.GetTorrentWebseeds", by_id.clone())),
        ["Webseeds"]
    );
    let files = result("Session.GetTorrentFiles", by_id.clone());
    assert_eq!(keys(&files["Files"][0]), ["Length", "Path"]);
    let magnet = result("Session.GetMagnet", by_id.clone());
    assert!(magnet["Magnet"].as_str().unwrap().starts_with("magnet:?"));
    let file = result("Session.GetTorrent", by_id.clone());
    let back = data_encoding::BASE64
        .decode(file["Torrent"].as_str().unwrap().as_bytes())
        .unwrap();
    // The info dictionary comes back byte for byte (rain rebuilds the rest).
    let at = bytes.windows(7).position(|w| w == b"4:infod").unwrap() + 6;
    let info = &bytes[at..bytes.len() - 1];
    assert!(
        back.windows(info.len()).any(|w| w == info),
        "info dictionary kept"
    );
    for m in [
        "Session.StartTorrent",
        "Session.AnnounceTorrent",
        "Session.StopTorrent",
    ] {
        assert_eq!(result(m, by_id.clone()), json!({}), "{m}");
    }
    assert_eq!(
        result("Session.StartAllTorrents", Some(json!({}))),
        json!({})
    );
    assert_eq!(result("Session.StopAllTorrents", None), json!({}));
    assert_eq!(
        result(
            "Session.AddPeer",
            Some(json!({"ID": id, "Addr": "127.0.0.1:1"}))
        ),
        json!({})
    );
    assert_eq!(
        result(
            "Session.AddTracker",
            Some(json!({"ID": id, "URL": "http://127.0.0.1:1/announce"}))
        ),
        json!({})
    );
    assert_eq!(result("Session.CleanDatabase", None), json!({}));
    assert_eq!(
        result(
            "Session.RemoveTorrent",
            Some(json!({"ID": "no-such-id", "KeepData": false}))
        ),
        json!({}),
        "removing an unknown id is not an error (rain)"
    );

    // Errors carry rain's codes.
    let missing = d.raw("Session.GetTorrentStats", Some(json!({"ID": "nope"})));
    assert_eq!(missing["error"]["code"], 1);
    assert_eq!(missing["error"]["message"], "torrent not found");
    let bad = d.raw(
        "Session.AddURI",
        Some(json!({"URI": "magnet:?xt=urn:btih:zz"})),
    );
    assert_eq!(bad["error"]["code"], 2);
    assert!(
        bad["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("input error")
    );
    let bad = d.raw(
        "Session.AddTorrent",
        Some(json!({"Torrent": "bm90IGEgdG9ycmVudA=="})),
    );
    assert_eq!(bad["error"]["code"], 2, "{bad}");
    let scheme = d.raw("Session.AddURI", Some(json!({"URI": "ftp://x/y.torrent"})));
    assert_eq!(scheme["error"]["code"], -32000);
}

/// What a browser page (or a stranger) can and cannot do.
#[test]
fn http_guards_refuse_browsers_and_strangers() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Raind::start(&tmp.path().join("d"), "rpc-token: s3cret\n");
    let body = r#"{"jsonrpc":"2.0","method":"Session.Version","id":1}"#;
    let json_headers = [
        ("Content-Type", "application/json"),
        ("Accept", "application/json"),
    ];
    let (status, _) = http_post(&d.url, &json_headers, body);
    assert_eq!(status, 401, "token required");
    let auth = [
        ("Content-Type", "application/json"),
        ("Accept", "application/json"),
        ("Authorization", "Bearer s3cret"),
    ];
    let (status, text) = http_post(&d.url, &auth, body);
    assert_eq!((status, text.contains("result")), (200, true), "{text}");
    let form = [
        ("Content-Type", "text/plain"),
        ("Authorization", "Bearer s3cret"),
    ];
    assert_eq!(
        http_post(&d.url, &form, body).0,
        415,
        "simple CORS request refused"
    );

    // The client passes the token from the environment.
    let out = Command::new(RAIN)
        .args(["client", "--url", &d.url, "version"])
        .env("RAIN_RPC_TOKEN", "s3cret")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let no_token = Command::new(RAIN)
        .args(["client", "--url", &d.url, "version"])
        .env_remove("RAIN_RPC_TOKEN")
        .output()
        .unwrap();
    let err = one_error_line(&no_token);
    assert!(
        err.contains("401") || err.to_lowercase().contains("token"),
        "{err}"
    );

    // DNS rebinding: the right address under a foreign name.
    let mut s = TcpStream::connect(d.url.trim_start_matches("http://")).unwrap();
    write!(
        s,
        "POST / HTTP/1.1\r\nHost: attacker.example\r\nContent-Type: application/json\r\n\
         Authorization: Bearer s3cret\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 403"), "{resp}");
    assert!(!resp.to_lowercase().contains("access-control-allow-origin"));
}

#[test]
fn bad_input_is_one_line_and_exit_1() {
    let tmp = tempfile::tempdir().unwrap();
    let mut d = Raind::start(&tmp.path().join("d"), "");

    let err = one_error_line(&d.client(&["add", "-t", "/nonexistent/x.torrent"]));
    assert!(err.contains("/nonexistent/x.torrent"), "{err}");
    let err = one_error_line(&d.client(&["add", "-t", "magnet:?xt=urn:btih:nothex"]));
    assert!(err.contains("input error"), "{err}");
    let err = one_error_line(&d.client(&["stats", "--id", "unknown"]));
    assert_eq!(err, "rain: torrent not found");
    let err = one_error_line(&d.client(&["start", "--id", "unknown"]));
    assert_eq!(err, "rain: torrent not found");

    // The RPC port is taken: a second server on the same config fails at once.
    let second = Command::new(RAIND)
        .arg("-c")
        .arg(&d.config)
        .output()
        .unwrap();
    let err = one_error_line(&second);
    assert!(err.contains("lock") || err.contains("use"), "{err}");

    // Another config with the same database: the lock is a clear error.
    let other = tmp.path().join("other.yaml");
    std::fs::write(
        &other,
        format!(
            "database: {}\nrpc-port: {}\ndht-enabled: false\n",
            d.dir.join("session.db").display(),
            free_port()
        ),
    )
    .unwrap();
    let err = one_error_line(&Command::new(RAIND).arg("-c").arg(&other).output().unwrap());
    assert!(err.to_lowercase().contains("lock"), "{err}");

    // A busy RPC port with a free database.
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let cfg = tmp.path().join("busy.yaml");
    std::fs::write(
        &cfg,
        format!(
            "database: {}\nrpc-port: {port}\ndht-enabled: false\n",
            tmp.path().join("busy.db").display()
        ),
    )
    .unwrap();
    let err = one_error_line(&Command::new(RAIND).arg("-c").arg(&cfg).output().unwrap());
    assert!(err.contains(&port.to_string()), "{err}");

    // Malformed YAML and a missing explicit config.
    let bad = tmp.path().join("bad.yaml");
    std::fs::write(&bad, "rpc-port: [unclosed\n").unwrap();
    one_error_line(&Command::new(RAIND).arg("-c").arg(&bad).output().unwrap());
    one_error_line(&rain(&["server", "-c", "/nonexistent/config.yaml"]));

    // The server is gone.
    d.stop();
    let err = one_error_line(&d.client(&["list"]));
    assert!(err.contains(&d.url), "{err}");
}

#[test]
fn compact_database_keeps_torrents() {
    let tmp = tempfile::tempdir().unwrap();
    let (torrent, _) = make_torrent(tmp.path(), "c.bin", 50_000);
    let mut d = Raind::start(&tmp.path().join("d"), "");
    d.ok(&[
        "add",
        "-t",
        torrent.to_str().unwrap(),
        "--id",
        "keep",
        "--stopped",
    ]);
    d.stop();
    let config = d.config.to_str().unwrap().to_owned();
    let out = rain(&["compact-database", "-c", &config]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 torrents kept"));
    d.spawn();
    assert_eq!(d.json(&["list"])[0]["ID"], "keep");
    // While the server runs, compacting is refused, not corrupting.
    one_error_line(&rain(&["compact-database", "-c", &config]));
}

#[test]
fn on_complete_cmd_runs_once_per_torrent() {
    let tmp = tempfile::tempdir().unwrap();
    let (torrent, _) = make_torrent(tmp.path(), "hook.bin", 70_000);
    let marker = tmp.path().join("hook.log");
    let script = tmp.path().join("hook.sh");
    shell_script(
        &script,
        &format!(
            "echo \"$RAIN_TORRENT_ID $RAIN_TORRENT_NAME $RAIN_TORRENT_HASH\" >> {}\n",
            marker.display()
        ),
    );
    let mut d = Raind::start(
        &tmp.path().join("d"),
        &format!("on-complete-cmd: [\"{}\"]\n", script.display()),
    );
    // The data is already in place: verification completes the torrent.
    std::fs::create_dir_all(tmp.path().join("d/data/h")).unwrap();
    std::fs::copy(
        tmp.path().join("src/hook.bin"),
        tmp.path().join("d/data/h/hook.bin"),
    )
    .unwrap();
    d.ok(&["add", "-t", torrent.to_str().unwrap(), "--id", "h"]);
    let hash = d.wait_for("h", "seeding", |s| s["Status"] == "Seeding")["InfoHash"].clone();
    let deadline = Instant::now() + WAIT;
    while !marker.exists() {
        assert!(Instant::now() < deadline, "hook never ran: {}", d.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    // Completing again (verify, start, restart) does not run it again.
    d.ok(&["verify", "--id", "h"]);
    d.wait_for("h", "verified", |s| {
        s["Status"] == "Stopped" && s["Pieces"]["Have"] == s["Pieces"]["Total"]
    });
    d.ok(&["start", "--id", "h"]);
    d.wait_for("h", "seeding again", |s| s["Status"] == "Seeding");
    d.stop();
    d.spawn();
    d.wait_for("h", "seeding after restart", |s| s["Status"] == "Seeding");
    std::thread::sleep(Duration::from_millis(500));
    let log = std::fs::read_to_string(&marker).unwrap();
    assert_eq!(
        log,
        format!("h hook.bin {}\n", hash.as_str().unwrap()),
        "ran exactly once with rain's variables"
    );
}

/// `blocklist-url` from the config file is downloaded before the server answers, and its rule
/// count shows in the session stats (rain's `BlockListRules`).
#[test]
fn blocklist_from_the_config_is_loaded_and_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let list = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/list.txt", list.local_addr().unwrap());
    std::thread::spawn(move || {
        for s in list.incoming() {
            let Ok(mut s) = s else { continue };
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let body = "# list\n127.0.0.2\nnot a rule\n10.0.0.0/8\n";
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let d = Raind::start(&tmp.path().join("d"), &format!("blocklist-url: {url}\n"));
    let stats = d.json(&["session-stats", "--json"]);
    assert_eq!(stats["BlockListRules"], 2, "{stats}");
    assert!(stats["BlockListRecency"].as_i64().unwrap() >= 0, "{stats}");
}

/// Torrent names that would run commands if they ever reached a shell reach the hook
/// verbatim, through `RAIN_TORRENT_NAME`, and run nothing.
#[test]
fn on_complete_cmd_passes_hostile_names_verbatim() {
    let tmp = tempfile::tempdir().unwrap();
    let names = [
        r#"a"; touch pwned; "b"#,
        "$(touch pwned2)",
        "`touch pwned3`",
    ];
    let marker = tmp.path().join("hook.log");
    let script = tmp.path().join("hook.sh");
    shell_script(
        &script,
        &format!(
            "printf '%s|%s\\n' \"$RAIN_TORRENT_ID\" \"$RAIN_TORRENT_NAME\" >> '{}'\n",
            marker.display()
        ),
    );
    let d = Raind::start(
        &tmp.path().join("d"),
        &format!("on-complete-cmd: [\"{}\"]\n", script.display()),
    );
    let mut expected = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let (torrent, _) = make_torrent(tmp.path(), name, 20_000 + i);
        let id = format!("h{i}");
        // The data is already in place: verification completes the torrent.
        let dir = tmp.path().join("d/data").join(&id);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(tmp.path().join("src").join(name), dir.join(name)).unwrap();
        let added = d.json(&["add", "-t", torrent.to_str().unwrap(), "--id", &id]);
        assert_eq!(added["Name"], *name);
        expected.push(format!("{id}|{name}"));
    }
    for i in 0..names.len() {
        d.wait_for(&format!("h{i}"), "seeding", |s| s["Status"] == "Seeding");
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_to_string(&marker)
        .unwrap_or_default()
        .lines()
        .count()
        < names.len()
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    // Nothing ran: no `pwned*` file in raind's directory (its working directory), anywhere
    // under the test's directory, or in this process's working directory.
    fn find_pwned(dir: &std::path::Path, found: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with("pwned") {
                found.push(path.clone());
            }
            if entry.file_type().unwrap().is_dir() {
                find_pwned(&path, found);
            }
        }
    }
    let mut found = Vec::new();
    find_pwned(tmp.path(), &mut found);
    for p in ["pwned", "pwned2", "pwned3"] {
        let here = std::env::current_dir().unwrap().join(p);
        if here.exists() {
            found.push(here);
        }
    }
    assert!(found.is_empty(), "a torrent name ran a command: {found:?}");
    let log = std::fs::read_to_string(&marker).unwrap_or_default();
    let mut got: Vec<&str> = log.lines().collect();
    got.sort_unstable();
    expected.sort();
    assert_eq!(got, expected, "each name verbatim, once: {}", d.log());
}

/// Binding RPC beyond loopback without `rpc-token` is refused at startup: one line, exit 1,
/// and nothing listens.
#[test]
fn non_loopback_rpc_host_needs_a_token() {
    let tmp = tempfile::tempdir().unwrap();
    for host in ["0.0.0.0", "::"] {
        let port = free_port();
        let cfg = tmp.path().join("exposed.yaml");
        std::fs::write(
            &cfg,
            format!(
                "database: {}\ndata-dir: {}\nrpc-host: \"{host}\"\nrpc-port: {port}\n\
                 dht-enabled: false\n",
                tmp.path().join("exposed.db").display(),
                tmp.path().join("data").display(),
            ),
        )
        .unwrap();
        let mut child = Command::new(RAIND)
            .arg("-c")
            .arg(&cfg)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + WAIT;
        while child.try_wait().unwrap().is_none() {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() || Instant::now() > deadline {
                child.kill().unwrap();
                child.wait().unwrap();
                panic!("raind served RPC on {host} without a token");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let err = one_error_line(&child.wait_with_output().unwrap());
        assert!(
            err.contains("rpc-token") && err.contains(host) && err.contains("loopback"),
            "{err}"
        );
        assert!(TcpStream::connect(("127.0.0.1", port)).is_err(), "{host}");
        assert!(
            !tmp.path().join("exposed.db").exists(),
            "refused before the session opened"
        );
    }
}

/// A status line and body for `request`, sent raw on a new connection from `from` (the
/// server may answer and hang up before it has read everything: write errors are ignored).
fn exchange(url: &str, request: &[u8], from: Option<&str>) -> (u16, String) {
    let addr: std::net::SocketAddr = url.trim_start_matches("http://").parse().unwrap();
    let mut s = match from {
        None => TcpStream::connect(addr).unwrap(),
        Some(ip) => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let socket = rt.block_on(async {
                let socket = tokio::net::TcpSocket::new_v4().unwrap();
                socket.bind(format!("{ip}:0").parse().unwrap()).unwrap();
                socket.connect(addr).await.unwrap()
            });
            let s = socket.into_std().unwrap();
            s.set_nonblocking(false).unwrap();
            s
        }
    };
    s.set_read_timeout(Some(WAIT)).unwrap();
    let _ = s.write_all(request);
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    status_and_body(&String::from_utf8_lossy(&resp))
}

fn json_post(url: &str, auth: Option<&str>, body: &str) -> Vec<u8> {
    let host = url.trim_start_matches("http://");
    let auth = auth.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    format!(
        "POST / HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n{auth}\
         Connection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

const VERSION: &str = r#"{"jsonrpc":"2.0","method":"Session.Version","id":1}"#;

/// After `MAX_TOKEN_FAILURES` wrong tokens a source is refused (429), even with the right
/// token, while other sources are still served.
#[test]
fn repeated_wrong_tokens_lock_the_source_out() {
    use rain_daemon::server::MAX_TOKEN_FAILURES;
    let tmp = tempfile::tempdir().unwrap();
    let d = Raind::start(&tmp.path().join("d"), "rpc-token: s3cret\n");
    // (Starting it asked for the version with the token: no failures so far.)
    let post = |token: Option<&str>, from: Option<&str>| {
        exchange(&d.url, &json_post(&d.url, token, VERSION), from).0
    };
    for _ in 0..MAX_TOKEN_FAILURES - 1 {
        assert_eq!(post(Some("guess"), None), 401);
    }
    assert_eq!(post(Some("s3cret"), None), 200, "not locked yet");
    assert_eq!(post(None, None), 401, "a missing token counts too");
    assert_eq!(post(Some("guess"), None), 429);
    assert_eq!(
        post(Some("s3cret"), None),
        429,
        "no more guesses, right or wrong"
    );
    let err = one_error_line(&d.client(&["list"]));
    assert!(err.contains("429"), "{err}");
    // Another loopback address is another source.
    assert_eq!(post(Some("s3cret"), Some("127.0.0.2")), 200);
    assert_eq!(post(Some("guess"), Some("127.0.0.2")), 401);
}

/// A body over `max_request_size` gets 413; a 100 000-deep JSON array and deeply nested
/// params get an error reply; a batch over `RPC_MAX_BATCH` gets one error. The server
/// keeps serving through all of it.
#[test]
fn oversized_deep_and_huge_batch_requests_get_errors_and_the_server_lives() {
    use rain_daemon::server::RPC_MAX_BATCH;
    let tmp = tempfile::tempdir().unwrap();
    // max_request_size = 3 KiB * 4/3 + 64 KiB = 68 KiB.
    let d = Raind::start(&tmp.path().join("d"), "max-torrent-size: 3072\n");
    let alive = || {
        let r = d.raw("Session.Version", None);
        assert!(r["result"].is_string(), "{r}");
    };

    // A valid call padded past the cap, declared up front and not.
    let padded = format!("{VERSION}{}", " ".repeat(100 * 1024));
    let (status, body) = exchange(&d.url, &json_post(&d.url, None, &padded), None);
    assert_eq!(status, 413, "{body}");
    alive();
    let host = d.url.trim_start_matches("http://");
    let chunked = format!(
        "POST / HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Connection: close\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{padded}\r\n0\r\n\r\n",
        padded.len()
    );
    // Without a length up front jsonrpsee stops reading at the cap and answers with its
    // "internal error" (500) rather than 413; either way the call is not run.
    let (status, body) = exchange(&d.url, chunked.as_bytes(), None);
    assert!(matches!(status, 413 | 500), "{status} {body}");
    let reply: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert!(
        reply["error"]["code"].is_i64() && reply.get("result").is_none(),
        "{reply}"
    );
    alive();

    // 100 000 nested arrays as the whole body, and as a method's params.
    let deep = "[".repeat(100_000);
    let (status, body) = exchange(&d.url, &json_post(&d.url, None, &deep), None);
    let reply: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert!(reply["error"]["code"].is_i64(), "{status} {reply}");
    alive();
    let nested = format!(
        r#"{{"jsonrpc":"2.0","method":"Session.GetTorrentStats","id":1,"params":{}{}}}"#,
        "[".repeat(30_000),
        "]".repeat(30_000)
    );
    let (status, body) = exchange(&d.url, &json_post(&d.url, None, &nested), None);
    let reply: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(status, 200);
    assert!(reply["error"]["code"].is_i64(), "{reply}");
    alive();

    // Batches: up to the limit all are answered; one more is refused as a whole.
    let batch = |n: u32| {
        let calls: Vec<Value> = (0..n)
            .map(|i| json!({"jsonrpc": "2.0", "method": "Session.Version", "id": i}))
            .collect();
        let body = Value::Array(calls).to_string();
        let (status, text) = exchange(&d.url, &json_post(&d.url, None, &body), None);
        let reply: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        (status, reply)
    };
    let (status, full) = batch(RPC_MAX_BATCH);
    assert_eq!(status, 200);
    assert_eq!(full.as_array().map(Vec::len), Some(RPC_MAX_BATCH as usize));
    assert!(
        full.as_array()
            .unwrap()
            .iter()
            .all(|r| r["result"].is_string())
    );
    let (_, over) = batch(RPC_MAX_BATCH + 1);
    assert!(over["error"]["code"].is_i64(), "{over}");
    alive();
}

/// A client trickling its request a byte at a time does not hold up anyone else (the
/// cut-off itself is `server::tests::slow_clients_are_cut_off_and_do_not_block_others`).
#[test]
fn a_trickling_client_does_not_block_others() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Raind::start(&tmp.path().join("d"), "");
    let addr = d.url.trim_start_matches("http://").to_owned();
    let mut heads = TcpStream::connect(&addr).unwrap();
    let mut body = TcpStream::connect(&addr).unwrap();
    write!(
        body,
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: 100000\r\n\r\n{{\"jsonrpc\":\"2.0\",\"params\":["
    )
    .unwrap();
    let request = format!("POST / HTTP/1.1\r\nHost: {addr}\r\nX-Slow: ");
    for (i, b) in request
        .bytes()
        .chain(std::iter::repeat(b'a'))
        .take(40)
        .enumerate()
    {
        heads.write_all(&[b]).unwrap();
        body.write_all(b" ").unwrap();
        let start = Instant::now();
        let r = d.raw("Session.Version", None);
        assert!(r["result"].is_string(), "byte {i}: {r}");
        assert!(start.elapsed() < Duration::from_secs(5), "byte {i}");
        std::thread::sleep(Duration::from_millis(25));
    }
}
