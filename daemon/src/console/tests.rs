//! The console without a terminal: the model driven by keys and canned RPC results, and
//! screens drawn on ratatui's `TestBackend` compared line by line.

use std::time::{Duration, UNIX_EPOCH};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::layout::Rect;

use super::app::{
    AddFailure, App, Command, Connection, DetailData, Level, Mode, Page, Tab, Update,
};
use super::columns::{Column, SortKey, parse_columns};
use super::ui::{list_rows, peer_flags, render};
use crate::client::ClientError;
use crate::rpc::types::{
    AddressStats, ByteStats, DirectionStats, DownloadStats, File, FileStats, MetadataDownloadStats,
    Peer, PieceStats, SessionStats, SpeedStats, Stats, Time, Torrent, Tracker, Webseed,
};

const URL: &str = "http://127.0.0.1:7246";

fn at(secs: u64) -> Time {
    Time(Some(UNIX_EPOCH + Duration::from_secs(secs)))
}

fn torrent(id: &str, name: &str, added: u64) -> Torrent {
    Torrent {
        id: id.to_owned(),
        name: name.to_owned(),
        info_hash: format!("{added:0>40}"),
        port: 50_000 + added as u16,
        added_at: at(1_700_000_000 + added),
    }
}

fn stats(name: &str, status: &str, have: u32, total: u32) -> Stats {
    let piece = 256 * 1024;
    Stats {
        info_hash: "00".repeat(20),
        port: 50_001,
        status: status.to_owned(),
        error: String::new(),
        name: name.to_owned(),
        private: false,
        file_count: 1,
        piece_length: piece,
        seeded_for: Duration::ZERO,
        eta: if status == "Downloading" { 95 } else { -1 },
        pieces: PieceStats {
            checked: 0,
            have,
            missing: total - have,
            available: total,
            total,
        },
        bytes: ByteStats {
            total: u64::from(total) * u64::from(piece),
            completed: u64::from(have) * u64::from(piece),
            incomplete: u64::from(total - have) * u64::from(piece),
            downloaded: u64::from(have) * u64::from(piece),
            uploaded: u64::from(have) * u64::from(piece) / 2,
            ..ByteStats::default()
        },
        peers: DirectionStats {
            total: 3,
            incoming: 1,
            outgoing: 2,
        },
        speed: SpeedStats {
            download: if status == "Downloading" {
                300 * 1024
            } else {
                0
            },
            upload: 20 * 1024,
        },
        handshakes: DirectionStats::default(),
        addresses: AddressStats::default(),
        downloads: DownloadStats::default(),
        metadata_downloads: MetadataDownloadStats::default(),
    }
}

fn unreachable() -> ClientError {
    ClientError::Unreachable {
        url: URL.to_owned(),
        reason: "connection refused".to_owned(),
    }
}

fn not_found() -> ClientError {
    ClientError::Server {
        code: 1,
        message: "torrent not found".to_owned(),
    }
}

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn ch(c: char) -> KeyEvent {
    key(KeyCode::Char(c))
}

fn ctrl(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
}

fn alt(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::ALT)
}

/// Three torrents, listed and with their stats, the first selected.
fn three() -> App {
    let mut app = App::new(
        URL,
        parse_columns("# ID Name Status Progress Speed Peers").unwrap(),
    );
    app.set_list_rows(10);
    assert_eq!(app.tick(), [Command::List]);
    let list = vec![
        torrent("bbbbbbbbbbbbbbbbbbbbbb", "beta.iso", 2),
        torrent("aaaaaaaaaaaaaaaaaaaaaa", "alpha.bin", 1),
        torrent("cccccccccccccccccccccc", "gamma", 3),
    ];
    let follow = app.apply(Update::List(Ok(list)));
    assert_eq!(
        follow,
        [
            Command::Stats(vec![
                "aaaaaaaaaaaaaaaaaaaaaa".into(),
                "bbbbbbbbbbbbbbbbbbbbbb".into(),
                "cccccccccccccccccccccc".into(),
            ]),
            Command::Details {
                id: "aaaaaaaaaaaaaaaaaaaaaa".into(),
                tab: Tab::General
            },
        ],
        "stats of the visible rows, then the details of the selection"
    );
    app.apply(Update::Stats(vec![
        (
            "aaaaaaaaaaaaaaaaaaaaaa".into(),
            Ok(stats("alpha.bin", "Seeding", 40, 40)),
        ),
        (
            "bbbbbbbbbbbbbbbbbbbbbb".into(),
            Ok(stats("beta.iso", "Downloading", 10, 40)),
        ),
        (
            "cccccccccccccccccccccc".into(),
            Ok(stats("gamma", "Stopped", 0, 8)),
        ),
    ]));
    app
}

/// Draws `app` on a `width` × `height` screen, sizing the list as the loop does, and returns
/// the screen's lines with trailing blanks cut.
fn screen(app: &mut App, width: u16, height: u16) -> Vec<String> {
    app.set_list_rows(list_rows(app, Rect::new(0, 0, width, height)));
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|f| render(app, f)).unwrap();
    let buf = terminal.backend().buffer();
    (0..height)
        .map(|y| {
            let line: String = (0..width).map(|x| buf[(x, y)].symbol()).collect();
            line.trim_end().to_owned()
        })
        .collect()
}

fn show(lines: &[String]) -> String {
    lines.join("\n")
}

/// Compares a screen with its snapshot (trailing blanks of each line ignored).
fn assert_screen(actual: &[String], expected: &str) {
    let expected: Vec<&str> = expected.lines().map(str::trim_end).collect();
    assert_eq!(
        actual.iter().map(String::as_str).collect::<Vec<_>>(),
        expected,
        "\n--- actual ---\n{}\n",
        show(actual)
    );
}

fn trackers() -> Vec<Tracker> {
    vec![
        Tracker {
            url: "udp://tracker.example:6969/announce".into(),
            status: "Not working".into(),
            leechers: 0,
            seeders: 0,
            warning: String::new(),
            error: "timeout".into(),
            error_unknown: false,
            error_internal: String::new(),
            last_announce: at(1_700_000_100),
            next_announce: Time(None),
        },
        Tracker {
            url: "http://tracker.example/announce".into(),
            status: "Working".into(),
            leechers: 4,
            seeders: 12,
            warning: "slow down".into(),
            error: String::new(),
            error_unknown: false,
            error_internal: String::new(),
            last_announce: at(1_700_000_000),
            next_announce: at(1_700_001_800),
        },
    ]
}

fn peer(addr: &str, connected: u64) -> Peer {
    Peer {
        id: "2d524e303030312d".into(),
        client: "rain 0.1.0".into(),
        addr: addr.into(),
        source: "TRACKER".into(),
        connected_at: at(connected),
        downloading: true,
        client_interested: true,
        client_choking: false,
        peer_interested: true,
        peer_choking: false,
        optimistic_unchoked: false,
        snubbed: false,
        encrypted_handshake: false,
        encrypted_stream: false,
        download_speed: 150 * 1024,
        upload_speed: 10 * 1024,
    }
}

fn peers() -> Vec<Peer> {
    let mut late = peer("10.0.0.9:6881", 1_700_000_050);
    late.source = "PEX".into();
    late.client_choking = true;
    late.peer_choking = true;
    late.optimistic_unchoked = true;
    late.encrypted_stream = true;
    late.encrypted_handshake = true;
    late.client = "Transmission 4.0".into();
    vec![late, peer("192.168.1.2:51413", 1_700_000_010)]
}

fn files() -> Vec<FileStats> {
    vec![
        FileStats {
            file: File {
                path: "beta/disc.iso".into(),
                length: 8 * 1024 * 1024,
            },
            bytes_completed: 2 * 1024 * 1024,
        },
        FileStats {
            file: File {
                path: "beta/readme.txt".into(),
                length: 1000,
            },
            bytes_completed: 1000,
        },
    ]
}

fn session() -> SessionStats {
    SessionStats {
        uptime: 3725,
        torrents: 3,
        peers: 9,
        ports_available: 97,
        block_list_rules: 0,
        block_list_recency: -1,
        speed_download: 300 * 1024,
        speed_upload: 60 * 1024,
        bytes_downloaded: 50 << 20,
        bytes_uploaded: 5 << 20,
        ..SessionStats::default()
    }
}

/// Selects the second torrent and shows `tab` with `data` as its answer.
fn on_tab(tab: Tab, data: DetailData) -> App {
    let mut app = three();
    app.on_key(ch('j'));
    app.on_key(ch(char::from(
        b'1' + Tab::ALL.iter().position(|t| *t == tab).unwrap() as u8,
    )));
    app.apply(Update::Details {
        id: "bbbbbbbbbbbbbbbbbbbbbb".into(),
        tab,
        result: Ok(data),
    });
    app
}

/// The details pane's content lines (below the tab line, above the bottom border).
fn details(lines: &[String], from: usize, count: usize) -> Vec<String> {
    lines[from..from + count]
        .iter()
        .map(|l| {
            // Drop the side borders.
            let inner: String = l.chars().skip(1).collect();
            inner.trim_end_matches(['│', ' ']).to_owned()
        })
        .collect()
}

const LIST_AND_GENERAL: &str = "\
┌ rain [http://127.0.0.1:7246] (Press '?' for help) ───────────────────────── 3 torrents, by Added ┐
│# ID                     Name                           Status      Progress Speed           Peers│
│1 aaaaaaaaaaaaaaaaaaaaaa alpha.bin                      Seeding     100%     ↓0 ↑20          3    │
│2 bbbbbbbbbbbbbbbbbbbbbb beta.iso                       Downloading 25%      ↓300 ↑20        3    │
│3 cccccccccccccccccccccc gamma                          Stopped     0%       ↓0 ↑20          3    │
│                                                                                                  │
│                                                                                                  │
│                                                                                                  │
│                                                                                                  │
│                                                                                                  │
│                                                                                                  │
│                                                                                                  │
│─ General │ Stats │ Trackers │ Peers │ WebSeeds │ Files ──────────────────────────────────────────│
│Name: alpha.bin                                                                                   │
│Private: false                                                                                    │
│Status: Seeding                                                                                   │
│Progress: 100%                                                                                    │
│Ratio: 0.50                                                                                       │
│Size: 10 MiB                                                                                      │
│Peers: 1 in / 2 out                                                                               │
│Download speed:     0 KiB/s                                                                       │
│Upload speed:      20 KiB/s                                                                       │
│ETA:                                                                                              │
└ s start  x stop  d remove  v verify  n announce  a add  m magnet  o sort  ? help  q quit ────────┘";

#[test]
fn list_and_general_tab() {
    let mut app = three();
    assert_screen(&screen(&mut app, 100, 24), LIST_AND_GENERAL);
    // The selected row is highlighted green, the others are not.
    let mut terminal = Terminal::new(TestBackend::new(100, 24)).unwrap();
    terminal.draw(|f| render(&app, f)).unwrap();
    let buf = terminal.backend().buffer();
    assert_eq!(buf[(5, 2)].bg, ratatui::style::Color::Green);
    assert_ne!(buf[(5, 3)].bg, ratatui::style::Color::Green);
}

#[test]
fn default_columns_are_rains() {
    let mut app = App::new(URL, parse_columns(super::DEFAULT_COLUMNS).unwrap());
    app.apply(Update::List(Ok(vec![torrent(
        "aaaaaaaaaaaaaaaaaaaaaa",
        "alpha.bin",
        1,
    )])));
    let lines = screen(&mut app, 60, 8);
    assert_eq!(
        details(&lines, 1, 2),
        [
            "# ID                     Name",
            "1 aaaaaaaaaaaaaaaaaaaaaa alpha.bin"
        ]
    );
}

#[test]
fn stats_tab() {
    let data = DetailData::Stats(Box::new(stats("beta.iso", "Downloading", 10, 40)));
    let mut app = on_tab(Tab::Stats, data);
    let lines = screen(&mut app, 100, 30);
    assert_eq!(
        lines[15],
        "│─ General │ Stats │ Trackers │ Peers │ WebSeeds │ Files ──────────────────────────────────────────│"
    );
    assert_eq!(
        details(&lines, 16, 8),
        [
            r#"Addresses: {"DHT":0,"PEX":0,"Total":0,"Tracker":0}"#,
            // Long values wrap.
            "Bytes:",
            r#"{"Allocated":0,"Completed":2621440,"Downloaded":2621440,"Incomplete":7864320,"Padding":0,"Total":1"#,
            r#"0485760,"Uploaded":1310720,"Wasted":0}"#,
            r#"Downloads: {"Choked":0,"Running":0,"Snubbed":0,"Total":0}"#,
            "ETA: 95",
            r#"Error: """#,
            "FileCount: 1",
        ]
    );
    // J scrolls the pane.
    app.on_key(ch('J'));
    let lines = screen(&mut app, 100, 30);
    assert!(lines[16].starts_with("│Bytes: "), "{}", show(&lines));
}

#[test]
fn trackers_tab() {
    let mut app = on_tab(Tab::Trackers, DetailData::Trackers(trackers()));
    let lines = screen(&mut app, 80, 24);
    assert_eq!(
        details(&lines, 13, 7),
        [
            "#1 http://tracker.example/announce",
            "    Status: Working, Seeders: 12, Leechers: 4, Warning: slow down",
            "    Last announce: 2023-11-14T22:13:20Z, Next announce: 2023-11-14T22:43:20Z",
            "#2 udp://tracker.example:6969/announce",
            "    Status: Not working, Error: timeout",
            "    Last announce: 2023-11-14T22:15:00Z, Next announce: Unknown",
            "",
        ]
    );
}

#[test]
fn peers_tab() {
    let mut app = on_tab(Tab::Peers, DetailData::Peers(peers()));
    let lines = screen(&mut app, 80, 24);
    assert_eq!(
        details(&lines, 13, 4),
        [
            "#   Addr                  Flags  Download     Upload       Client",
            "1   192.168.1.2:51413     DU     150 KiB/s    10 KiB/s     rain 0.1.0",
            "2   10.0.0.9:6881         duO XE 150 KiB/s    10 KiB/s     Transmission 4.0",
            "",
        ]
    );
}

#[test]
fn webseeds_tab() {
    let seeds = vec![
        Webseed {
            url: "https://mirror.example/beta/".into(),
            error: "404 Not Found".into(),
            download_speed: 0,
        },
        Webseed {
            url: "http://a.example/".into(),
            error: String::new(),
            download_speed: 64 * 1024,
        },
    ];
    let mut app = on_tab(Tab::Webseeds, DetailData::Webseeds(seeds));
    let lines = screen(&mut app, 80, 24);
    assert_eq!(
        details(&lines, 13, 4),
        [
            "#   URL                                      Speed        Error",
            "1   http://a.example/                        64 KiB/s",
            "2   https://mirror.example/beta/             0 KiB/s      404 Not Found",
            "",
        ]
    );
}

#[test]
fn files_tab() {
    let mut app = on_tab(Tab::Files, DetailData::Files(files()));
    let lines = screen(&mut app, 80, 24);
    assert_eq!(
        details(&lines, 13, 4),
        [
            "#   Progress          Size       Path",
            "1   [##--------]  25% 8 MiB      beta/disc.iso",
            "2   [##########] 100% 1000 bytes beta/readme.txt",
            "",
        ]
    );
}

#[test]
fn empty_tabs_and_errors() {
    let mut app = on_tab(Tab::Peers, DetailData::Peers(Vec::new()));
    assert_eq!(details(&screen(&mut app, 80, 24), 13, 1), ["No peers."]);
    let mut app = on_tab(Tab::Trackers, DetailData::Trackers(Vec::new()));
    assert_eq!(details(&screen(&mut app, 80, 24), 13, 1), ["No trackers."]);
    // Waiting for the first answer.
    let mut app = three();
    app.on_key(ch('j'));
    app.on_key(ch('6'));
    assert_eq!(details(&screen(&mut app, 80, 24), 13, 1), ["refreshing…"]);
    // The torrent went away meanwhile.
    app.apply(Update::Details {
        id: "bbbbbbbbbbbbbbbbbbbbbb".into(),
        tab: Tab::Files,
        result: Err(not_found()),
    });
    assert_eq!(
        details(&screen(&mut app, 80, 24), 13, 1),
        ["torrent not found"]
    );
}

#[test]
fn session_page() {
    let mut app = three();
    assert_eq!(app.on_key(ch('i')), [Command::SessionStats]);
    let lines = screen(&mut app, 80, 16);
    assert_eq!(details(&lines, 3, 1), ["refreshing…"]);
    app.apply(Update::SessionStats(Ok(session())));
    assert_screen(
        &screen(&mut app, 80, 14),
        "\
┌ rain [http://127.0.0.1:7246] (Press '?' for help) ───── 3 torrents, by Added ┐
│Session stats (q or Esc to go back)                                           │
│                                                                              │
│Torrents: 3, Peers: 9, Uptime: 1h2m5s                                         │
│BlocklistRules: 0, Updated: never                                             │
│Reads: 0/s, 0KB/s, Active: 0, Pending: 0                                      │
│Writes: 0/s, 0KB/s, Active: 0, Pending: 0                                     │
│ReadCache Objects: 0, Size: 0MB, Utilization: 0%                              │
│WriteCache Objects: 0, Size: 0MB, PendingKeys: 0                              │
│DownloadSpeed: 300KB/s, UploadSpeed: 60KB/s                                   │
│BytesDownloaded: 50MB, BytesUploaded: 5MB                                     │
│BytesRead: 0MB, BytesWritten: 0MB                                             │
│                                                                              │
└ s start  x stop  d remove  v verify  n announce  a add  m magnet  o sort  ? h┘",
    );
    // The tick keeps it fresh; q goes back.
    assert!(app.tick().contains(&Command::SessionStats));
    app.on_key(ch('q'));
    assert_eq!(app.page, Page::Main);
    assert!(!app.quit);
    assert!(!app.tick().contains(&Command::SessionStats));
}

#[test]
fn help_page() {
    let mut app = three();
    app.on_key(ch('?'));
    let lines = screen(&mut app, 90, 32);
    assert_eq!(details(&lines, 1, 1), ["Keys (q, Esc or ? to go back)"]);
    let all = show(&lines);
    for needle in [
        "x, Ctrl+Alt+S         stop the torrent",
        "d, Delete, Ctrl+R     remove the torrent (asks: keep the data or delete it)",
        "Columns (--columns): # ID Name InfoHash Port Status Progress Speed Peers Size ETA Ratio",
    ] {
        assert!(all.contains(needle), "{needle:?} in\n{all}");
    }
    app.on_key(key(KeyCode::Esc));
    assert_eq!(app.page, Page::Main);
}

#[test]
fn banner_while_the_server_is_away() {
    let mut app = three();
    app.tick();
    app.apply(Update::List(Err(unreachable())));
    assert!(matches!(app.connection, Connection::Down { .. }));
    let lines = screen(&mut app, 80, 12);
    assert_eq!(
        lines[1],
        "│ ! Reconnecting… cannot reach the rain server at http://127.0.0.1:7246: connec│"
    );
    // The list stays, greyed.
    assert!(lines[3].contains("alpha.bin"));
    // The next tick asks again; an answer removes the banner.
    assert_eq!(app.tick()[0], Command::List);
    app.apply(Update::List(Ok(vec![torrent(
        "aaaaaaaaaaaaaaaaaaaaaa",
        "alpha.bin",
        1,
    )])));
    assert_eq!(app.connection, Connection::Up);
    let lines = screen(&mut app, 80, 12);
    assert!(lines[1].starts_with("│# ID"), "{}", show(&lines));
    assert_eq!(app.torrents.len(), 1);
}

#[test]
fn connecting_and_empty() {
    let mut app = App::new(URL, parse_columns("# ID Name").unwrap());
    let lines = screen(&mut app, 60, 10);
    assert_eq!(
        details(&lines, 2, 1),
        ["Connecting to http://127.0.0.1:7246…"]
    );
    app.apply(Update::List(Err(unreachable())));
    let lines = screen(&mut app, 60, 10);
    assert_eq!(details(&lines, 3, 1), ["Waiting for the server…"]);
    app.apply(Update::List(Ok(Vec::new())));
    let lines = screen(&mut app, 60, 10);
    assert_eq!(
        details(&lines, 2, 1),
        ["No torrents. Press 'a' to add one."]
    );
    // Keys that need a torrent do nothing.
    for k in [
        ch('s'),
        ch('x'),
        ch('d'),
        ch('v'),
        ch('n'),
        ch('m'),
        ch('j'),
        ch(' '),
    ] {
        assert_eq!(app.on_key(k), []);
        assert_eq!(app.mode, Mode::Normal);
    }
}

#[test]
fn dialogs() {
    let mut app = three();
    app.on_key(ch('d'));
    let lines = screen(&mut app, 80, 20);
    assert_eq!(
        lines[6..13],
        [
            "│ ┌ Remove torrent ──────────────────────────────────────────────────────────┐ │",
            "│ │Remove \"alpha.bin\"?                                                       │ │",
            "│ │                                                                          │ │",
            "│ │k    remove it, keep the downloaded data                                  │ │",
            "│─│d    remove it and DELETE the data                                        │─│",
            "│N│Esc  cancel                                                               │ │",
            "│P└──────────────────────────────────────────────────────────────────────────┘ │",
        ]
    );

    let mut app = three();
    app.on_key(ch('a'));
    app.on_paste(
        "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567&dn=other\n/tmp/x.torrent",
    );
    let lines = screen(&mut app, 80, 20);
    assert_eq!(
        lines[6..14],
        [
            "│ ┌ Add torrent ─────────────────────────────────────────────────────────────┐ │",
            "│ │A .torrent file, magnet link or http(s) URL; one per line.                │ │",
            "│ │                                                                          │ │",
            "│ │> magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567&dn=other   │ │",
            "│─│> /tmp/x.torrent_                                                         │─│",
            "│N│                                                                          │ │",
            "│P│Enter: add   Esc: cancel   Ctrl+U: clear                                  │ │",
            "│S└──────────────────────────────────────────────────────────────────────────┘ │",
        ]
    );

    let mut app = three();
    assert_eq!(
        app.on_key(ch('m')),
        [Command::Magnet("aaaaaaaaaaaaaaaaaaaaaa".into())]
    );
    let link = "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567&dn=alpha.bin\
                &tr=http%3A%2F%2Ftracker.example%2Fannounce";
    app.apply(Update::Magnet {
        id: "aaaaaaaaaaaaaaaaaaaaaa".into(),
        result: Ok(link.into()),
    });
    assert_eq!(app.take_clipboard().as_deref(), Some(link));
    assert_eq!(app.take_clipboard(), None);
    let lines = screen(&mut app, 80, 20);
    assert_eq!(
        lines[6..14],
        [
            "│ ┌ Magnet link ─────────────────────────────────────────────────────────────┐ │",
            "│ │alpha.bin                                                                 │ │",
            "│ │                                                                          │ │",
            "│ │magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567&dn=alpha.bin&│ │",
            "│─│tr=http%3A%2F%2Ftracker.example%2Fannounce                                │─│",
            "│N│                                                                          │ │",
            "│P│Sent to the clipboard (OSC 52). Any key closes.                           │ │",
            "│S└──────────────────────────────────────────────────────────────────────────┘ │",
        ]
    );
    // Any key closes it, and does nothing else.
    assert_eq!(app.on_key(ch('q')), []);
    assert_eq!(app.mode, Mode::Normal);
    assert!(!app.quit);
}

#[test]
fn tiny_terminals_still_render() {
    let mut app = three();
    assert_screen(
        &screen(&mut app, 30, 6),
        "\
┌ rain  3 torrents, by Added ┐
│# Name     Status      Peers│
│1 alpha.bi Seeding     3    │
│2 beta.iso Downloading 3    │
│3 gamma    Stopped     3    │
└ s start  x stop  d remove  ┘",
    );
    assert_screen(&screen(&mut app, 1, 1), "┌");
    assert_screen(&screen(&mut app, 0, 0), "");
    // Every small size, on every page and with every dialog, renders without a panic.
    let mut variants = Vec::new();
    for setup in 0..7 {
        let mut app = three();
        match setup {
            1 => drop(app.on_key(ch('?'))),
            2 => drop(app.on_key(ch('i'))),
            3 => drop(app.on_key(ch('d'))),
            4 => app.on_paste("magnet:?xt=urn:btih:00"),
            5 => drop(app.apply(Update::List(Err(unreachable())))),
            6 => drop(app.on_key(ch('2'))),
            _ => {}
        }
        variants.push(app);
    }
    for app in &mut variants {
        for w in 0..=45 {
            for h in 0..=14 {
                let lines = screen(app, w, h);
                assert_eq!(lines.len(), usize::from(h));
            }
        }
    }
}

#[test]
fn column_fitting_keeps_the_name() {
    use super::ui::fit_columns;
    let all = Column::ALL.to_vec();
    assert_eq!(fit_columns(&all, 9, 3), [Column::Name]);
    assert_eq!(fit_columns(&all, 10, 3), [Column::Number, Column::Name]);
    assert_eq!(fit_columns(&all, 15, 3), [Column::Number, Column::Name]);
    // A later column fills room an earlier one could not.
    assert_eq!(
        fit_columns(&all, 21, 3),
        [Column::Number, Column::Name, Column::Port]
    );
    assert_eq!(
        fit_columns(&all, 24, 3),
        [Column::Number, Column::Name, Column::Status]
    );
    assert_eq!(fit_columns(&all, 500, 3), all);
}

#[test]
fn columns_parse_like_rains() {
    assert_eq!(
        parse_columns("# ID Name").unwrap(),
        [Column::Number, Column::Id, Column::Name]
    );
    assert_eq!(
        parse_columns("  status  eta SPEED ").unwrap(),
        [Column::Status, Column::Eta, Column::Speed]
    );
    let err = parse_columns("# Nope").unwrap_err();
    assert!(
        err.starts_with("unknown column \"Nope\" (columns: # ID Name"),
        "{err}"
    );
    assert!(parse_columns("  ").is_err());
}

#[test]
fn cells() {
    let t = torrent("aaaaaaaaaaaaaaaaaaaaaa", "alpha.bin", 1);
    let mut s = stats("alpha.bin", "Downloading", 10, 40);
    let cell = |c: Column, s: Option<&Stats>| c.cell(4, &t, s);
    assert_eq!(cell(Column::Number, None), "5");
    assert_eq!(
        cell(Column::Status, None),
        "",
        "empty until the stats arrive"
    );
    assert_eq!(cell(Column::Name, None), "alpha.bin");
    assert_eq!(cell(Column::Port, None), "50001");
    assert_eq!(cell(Column::Eta, Some(&s)), "1m35s");
    assert_eq!(cell(Column::Size, Some(&s)), "10 MiB");
    assert_eq!(cell(Column::Ratio, Some(&s)), "0.50");
    assert_eq!(cell(Column::Speed, Some(&s)), "↓300 ↑20");
    s.status = "Downloading Metadata".into();
    assert_eq!(cell(Column::Status, Some(&s)), "Downloading");
    s.status = "Verifying".into();
    s.pieces.checked = 20;
    assert_eq!(cell(Column::Progress, Some(&s)), "50%");
    s.eta = -1;
    assert_eq!(cell(Column::Eta, Some(&s)), "");
}

#[test]
fn flags_are_rains() {
    let p = peers();
    assert_eq!(peer_flags(&p[0]), "duO XE");
    assert_eq!(peer_flags(&p[1]), "DU    ");
    let mut q = p[1].clone();
    q.client_interested = false;
    q.peer_interested = false;
    q.snubbed = true;
    q.source = "INCOMING".into();
    q.encrypted_handshake = true;
    assert_eq!(peer_flags(&q), "K? SIe");
}

#[test]
fn moving_the_selection() {
    let mut app = three();
    let details = |id: &str| Command::Details {
        id: id.into(),
        tab: Tab::General,
    };
    assert_eq!(app.on_key(ch('j')), [details("bbbbbbbbbbbbbbbbbbbbbb")]);
    assert_eq!(
        app.on_key(key(KeyCode::Down)),
        [details("cccccccccccccccccccccc")]
    );
    assert_eq!(app.on_key(ch('j')), [], "already the last");
    assert_eq!(app.selected, 2);
    assert_eq!(
        app.on_key(key(KeyCode::Up)),
        [details("bbbbbbbbbbbbbbbbbbbbbb")]
    );
    assert_eq!(app.on_key(ch('g')), [details("aaaaaaaaaaaaaaaaaaaaaa")]);
    assert_eq!(app.on_key(ch('k')), [], "already the first");
    assert_eq!(app.on_key(ch('G')), [details("cccccccccccccccccccccc")]);
    assert_eq!(
        app.on_key(key(KeyCode::Home)),
        [details("aaaaaaaaaaaaaaaaaaaaaa")]
    );
    assert_eq!(
        app.on_key(key(KeyCode::End)),
        [details("cccccccccccccccccccccc")]
    );
    // The details pane shows "refreshing…" until its answer (or the row's stats) is in.
    let d = app.details.as_ref().unwrap();
    assert_eq!(
        (d.id.as_str(), d.tab, &d.data),
        ("cccccccccccccccccccccc", Tab::General, &None)
    );
}

#[test]
fn tabs() {
    let mut app = three();
    let details = |tab| {
        vec![Command::Details {
            id: "aaaaaaaaaaaaaaaaaaaaaa".into(),
            tab,
        }]
    };
    assert_eq!(app.on_key(key(KeyCode::Tab)), details(Tab::Stats));
    assert_eq!(app.on_key(key(KeyCode::Tab)), details(Tab::Trackers));
    assert_eq!(app.on_key(key(KeyCode::BackTab)), details(Tab::Stats));
    assert_eq!(app.on_key(ch('6')), details(Tab::Files));
    assert_eq!(app.on_key(key(KeyCode::Tab)), details(Tab::General));
    assert_eq!(app.on_key(key(KeyCode::BackTab)), details(Tab::Files));
    assert_eq!(app.on_key(alt('p')), details(Tab::Peers));
    assert_eq!(app.on_key(alt('w')), details(Tab::Webseeds));
    assert_eq!(app.on_key(alt('t')), details(Tab::Trackers));
    assert_eq!(app.on_key(alt('s')), details(Tab::Stats));
    assert_eq!(app.on_key(alt('g')), details(Tab::General));
    assert_eq!(app.on_key(alt('f')), details(Tab::Files));
    assert_eq!(app.on_key(ch('6')), [], "already on show");
    // An answer for another tab is dropped.
    app.apply(Update::Details {
        id: "aaaaaaaaaaaaaaaaaaaaaa".into(),
        tab: Tab::Peers,
        result: Ok(DetailData::Peers(peers())),
    });
    assert_eq!(app.details.as_ref().unwrap().data, None);
}

#[test]
fn action_keys() {
    let mut app = three();
    let a = || "aaaaaaaaaaaaaaaaaaaaaa".to_owned();
    assert_eq!(app.on_key(ch('s')), [Command::Start(a())]);
    assert_eq!(app.on_key(ctrl('s')), [Command::Start(a())]);
    assert_eq!(app.on_key(ch('x')), [Command::Stop(a())]);
    let ctrl_alt = |c| KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL | KeyModifiers::ALT);
    assert_eq!(app.on_key(ctrl_alt('s')), [Command::Stop(a())]);
    assert_eq!(app.on_key(ch('v')), [Command::Verify(a())]);
    assert_eq!(app.on_key(ctrl('v')), [Command::Verify(a())]);
    assert_eq!(app.on_key(ch('n')), [Command::Announce(a())]);
    assert_eq!(app.on_key(ctrl_alt('a')), [Command::Announce(a())]);
    // Space stops a running torrent and starts a stopped one.
    assert_eq!(app.on_key(ch(' ')), [Command::Stop(a())]);
    app.on_key(ch('G'));
    assert_eq!(
        app.on_key(ch(' ')),
        [Command::Start("cccccccccccccccccccccc".into())]
    );
}

#[test]
fn remove_asks_first() {
    let mut app = three();
    let a = "aaaaaaaaaaaaaaaaaaaaaa".to_owned();
    assert_eq!(app.on_key(ch('d')), []);
    assert!(matches!(app.mode, Mode::ConfirmRemove { .. }));
    // Other keys do nothing while it asks.
    assert_eq!(app.on_key(ch('s')), []);
    assert_eq!(app.on_key(ch('j')), []);
    assert_eq!(app.selected, 0);
    assert_eq!(app.on_key(key(KeyCode::Esc)), []);
    assert_eq!(app.mode, Mode::Normal);

    app.on_key(key(KeyCode::Delete));
    assert_eq!(
        app.on_key(ch('k')),
        [Command::Remove {
            id: a.clone(),
            keep_data: true
        }]
    );
    assert_eq!(app.mode, Mode::Normal);
    app.on_key(ctrl('r'));
    assert_eq!(
        app.on_key(ch('d')),
        [Command::Remove {
            id: a.clone(),
            keep_data: false
        }]
    );
    app.on_key(ch('d'));
    assert_eq!(app.on_key(ch('n')), [], "n is no");
    assert_eq!(app.mode, Mode::Normal);
}

#[test]
fn add_prompt() {
    let mut app = three();
    assert_eq!(app.on_key(ch('a')), []);
    for c in "x.torrentt".chars() {
        assert_eq!(app.on_key(ch(c)), []);
    }
    assert!(!app.quit, "q and other keys are typed, not obeyed");
    app.on_key(key(KeyCode::Backspace));
    assert_eq!(
        app.mode,
        Mode::Add {
            input: "x.torrent".into()
        }
    );
    assert_eq!(
        app.on_key(key(KeyCode::Enter)),
        [Command::Add(vec!["x.torrent".into()])]
    );
    assert_eq!(app.mode, Mode::Normal);

    // Pasting opens it; each non-empty line is an entry.
    app.on_paste("magnet:?xt=urn:btih:00\n\n  https://example.invalid/a.torrent  \n");
    app.on_key(ch('q'));
    assert_eq!(
        app.on_key(key(KeyCode::Enter)),
        [Command::Add(vec![
            "magnet:?xt=urn:btih:00".into(),
            "https://example.invalid/a.torrent".into(),
            "q".into()
        ])]
    );
    // Line breaks pasted as CR or CRLF split entries too.
    app.on_paste("a.torrent\rb.torrent\r\nc.torrent");
    assert_eq!(
        app.on_key(key(KeyCode::Enter)),
        [Command::Add(vec![
            "a.torrent".into(),
            "b.torrent".into(),
            "c.torrent".into()
        ])]
    );
    // Ctrl+U clears, Enter on nothing adds nothing; Esc and Ctrl+Q cancel.
    app.on_key(ctrl('a'));
    app.on_key(ch('z'));
    app.on_key(ctrl('u'));
    assert_eq!(app.on_key(key(KeyCode::Enter)), []);
    app.on_key(ch('a'));
    app.on_key(ch('z'));
    assert_eq!(app.on_key(key(KeyCode::Esc)), []);
    assert_eq!(app.mode, Mode::Normal);
    app.on_key(ch('a'));
    app.on_key(ctrl('q'));
    assert_eq!(app.mode, Mode::Normal);
    assert!(!app.quit);
}

#[test]
fn added_torrents_are_selected_once_listed() {
    let mut app = three();
    let new = torrent("dddddddddddddddddddddd", "delta", 4);
    let follow = app.apply(Update::Added(vec![(
        "delta.torrent".into(),
        Ok(new.clone()),
    )]));
    assert_eq!(follow[0], Command::List, "refreshes at once");
    assert_eq!(
        app.message,
        Some((Level::Info, "Added dddddddddddddddddddddd".into()))
    );
    let mut list = app.torrents.clone();
    list.push(new);
    app.apply(Update::List(Ok(list)));
    assert_eq!(app.selected_torrent().unwrap().id, "dddddddddddddddddddddd");

    app.apply(Update::Added(vec![(
        "missing.torrent".into(),
        Err(AddFailure::File(
            "cannot read missing.torrent: not found".into(),
        )),
    )]));
    assert_eq!(
        app.message,
        Some((
            Level::Error,
            "add missing.torrent: cannot read missing.torrent: not found".into()
        ))
    );
    assert_eq!(app.connection, Connection::Up);
}

#[test]
fn quitting() {
    let mut app = three();
    app.on_key(ch('q'));
    assert!(app.quit);
    let mut app = three();
    app.on_key(ch('?'));
    app.on_key(ch('q'));
    assert!(!app.quit, "q leaves help first");
    app.on_key(ch('?'));
    app.on_key(ctrl('c'));
    assert!(app.quit, "Ctrl+C quits from anywhere");
    let mut app = three();
    app.on_key(ch('a'));
    app.on_key(ctrl('c'));
    assert!(app.quit);
}

#[test]
fn action_results() {
    let mut app = three();
    app.tick();
    app.apply(Update::Stats(Vec::new()));
    let follow = app.apply(Update::Action {
        action: super::app::Action::Stop,
        id: "bbbbbbbbbbbbbbbbbbbbbb".into(),
        result: Ok(()),
    });
    assert_eq!(follow[0], Command::List, "an action refreshes at once");
    assert_eq!(app.message, Some((Level::Info, "Stopping beta.iso".into())));
    let lines = screen(&mut app, 80, 12);
    assert!(
        lines[11].starts_with("└ Stopping beta.iso ─"),
        "{}",
        show(&lines)
    );

    app.apply(Update::Action {
        action: super::app::Action::Remove,
        id: "bbbbbbbbbbbbbbbbbbbbbb".into(),
        result: Err(not_found()),
    });
    assert_eq!(app.torrents.len(), 3);
    assert_eq!(
        app.message,
        Some((Level::Error, "remove beta.iso: torrent not found".into()))
    );
    assert_eq!(app.connection, Connection::Up, "the server answered");
    app.on_key(key(KeyCode::Esc));
    assert_eq!(app.message, None);

    // A removal drops the row at once and shows the next torrent's details.
    app.on_key(ch('j'));
    let follow = app.apply(Update::Action {
        action: super::app::Action::RemoveKeepData,
        id: "bbbbbbbbbbbbbbbbbbbbbb".into(),
        result: Ok(()),
    });
    assert_eq!(
        app.message,
        Some((Level::Info, "Removed (data kept) beta.iso".into()))
    );
    assert_eq!(app.torrents.len(), 2);
    assert_eq!(app.selected_torrent().unwrap().id, "cccccccccccccccccccccc");
    assert!(
        follow.contains(&Command::Details {
            id: "cccccccccccccccccccccc".into(),
            tab: Tab::General
        }),
        "{follow:?}"
    );
    // Its late details answer ("not found") changes nothing.
    app.apply(Update::Details {
        id: "bbbbbbbbbbbbbbbbbbbbbb".into(),
        tab: Tab::General,
        result: Err(not_found()),
    });
    assert_eq!(
        app.message,
        Some((Level::Info, "Removed (data kept) beta.iso".into()))
    );
}

#[test]
fn refresh_is_not_repeated_while_under_way() {
    let mut app = three();
    // `three` left the list refresh answered, the details request open.
    assert_eq!(app.tick(), [Command::List]);
    assert_eq!(app.tick(), [], "list and details still under way");
    app.apply(Update::Details {
        id: "aaaaaaaaaaaaaaaaaaaaaa".into(),
        tab: Tab::General,
        result: Ok(DetailData::Stats(Box::new(stats(
            "alpha.bin",
            "Seeding",
            40,
            40,
        )))),
    });
    assert_eq!(
        app.tick(),
        [Command::Details {
            id: "aaaaaaaaaaaaaaaaaaaaaa".into(),
            tab: Tab::General
        }]
    );
    // A failed list frees the slot too.
    app.apply(Update::List(Err(unreachable())));
    assert_eq!(app.tick()[0], Command::List);
}

fn many(n: u64) -> Vec<Torrent> {
    (0..n)
        .map(|i| torrent(&format!("t{i:02}"), &format!("file{i:02}"), i))
        .collect()
}

#[test]
fn stats_only_for_visible_rows() {
    let mut app = App::new(URL, parse_columns("# Name Status").unwrap());
    // A 12-line screen has room for 4 rows.
    app.set_list_rows(list_rows(&app, Rect::new(0, 0, 60, 12)));
    assert_eq!(app.list_rows, 4);
    app.tick();
    let follow = app.apply(Update::List(Ok(many(30))));
    assert_eq!(
        follow[0],
        Command::Stats(vec!["t00".into(), "t01".into(), "t02".into(), "t03".into()])
    );
    let answers = |ids: &[&str]| {
        Update::Stats(
            ids.iter()
                .map(|id| ((*id).to_owned(), Ok(stats(id, "Stopped", 0, 1))))
                .collect(),
        )
    };
    app.apply(answers(&["t00", "t01", "t02", "t03"]));
    // Moving within the rows on show fetches no stats; scrolling fetches the new row's.
    for _ in 0..3 {
        let c = app.on_key(ch('j'));
        assert!(!c.iter().any(|c| matches!(c, Command::Stats(_))), "{c:?}");
    }
    let c = app.on_key(ch('j'));
    assert!(c.contains(&Command::Stats(vec!["t04".into()])), "{c:?}");
    assert_eq!(app.visible(), 1..5);
    let c = app.on_key(ch('G'));
    assert!(
        c.contains(&Command::Stats(vec![
            "t26".into(),
            "t27".into(),
            "t28".into(),
            "t29".into()
        ])),
        "{c:?}"
    );
    let lines = screen(&mut app, 60, 12);
    assert!(lines[2].starts_with("│27 file26"), "{}", show(&lines));
    assert!(lines[5].starts_with("│30 file29"), "{}", show(&lines));
    // The next refresh asks for the rows on show only.
    app.apply(answers(&[]));
    app.tick();
    let follow = app.apply(Update::List(Ok(many(30))));
    assert_eq!(
        follow[0],
        Command::Stats(vec!["t26".into(), "t27".into(), "t28".into(), "t29".into()])
    );
    // A bigger screen shows more rows.
    app.set_list_rows(list_rows(&app, Rect::new(0, 0, 60, 40)));
    assert_eq!(app.visible(), 12..30);
}

#[test]
fn sorting() {
    let mut app = three();
    let order =
        |app: &App| -> Vec<String> { app.torrents.iter().map(|t| t.name.clone()).collect() };
    assert_eq!(order(&app), ["alpha.bin", "beta.iso", "gamma"], "by added");
    app.on_key(ch('j'));
    app.on_key(ch('O'));
    assert_eq!(order(&app), ["gamma", "beta.iso", "alpha.bin"]);
    assert_eq!(
        app.selected_torrent().unwrap().name,
        "beta.iso",
        "selection follows"
    );
    app.on_key(ch('O'));
    app.on_key(ch('o'));
    assert_eq!(app.sort, SortKey::Name);
    app.on_key(ch('o'));
    assert_eq!(app.sort, SortKey::Id);
    app.on_key(ch('o'));
    assert_eq!(app.sort, SortKey::Status);
    assert_eq!(order(&app), ["beta.iso", "alpha.bin", "gamma"]);
    app.on_key(ch('o'));
    assert_eq!(app.sort, SortKey::Progress);
    assert_eq!(order(&app), ["gamma", "beta.iso", "alpha.bin"]);
    let lines = screen(&mut app, 100, 24);
    assert!(
        lines[0].ends_with(" 3 torrents, by Progress ┐"),
        "{}",
        lines[0]
    );
    // Sorting by stats fetches every torrent's stats on refresh.
    app.tick();
    let mut list = app.torrents.clone();
    list.push(torrent("dddddddddddddddddddddd", "delta", 4));
    let follow = app.apply(Update::List(Ok(list)));
    let Command::Stats(ids) = &follow[0] else {
        panic!("{follow:?}")
    };
    assert_eq!(ids.len(), 4);
    // Unknown stats sort last.
    assert_eq!(app.torrents[3].name, "delta");
}

#[test]
fn selection_survives_a_refresh() {
    let mut app = three();
    app.on_key(ch('G'));
    app.tick();
    // The first torrent was removed elsewhere: the same torrent stays selected.
    app.apply(Update::List(Ok(vec![
        torrent("bbbbbbbbbbbbbbbbbbbbbb", "beta.iso", 2),
        torrent("cccccccccccccccccccccc", "gamma", 3),
    ])));
    assert_eq!(app.selected, 1);
    assert_eq!(app.selected_torrent().unwrap().id, "cccccccccccccccccccccc");
    assert!(!app.stats.contains_key("aaaaaaaaaaaaaaaaaaaaaa"), "dropped");
    // The selected one removed: the selection stays on the row, now the last.
    app.apply(Update::Stats(Vec::new()));
    app.tick();
    let follow = app.apply(Update::List(Ok(vec![torrent(
        "bbbbbbbbbbbbbbbbbbbbbb",
        "beta.iso",
        2,
    )])));
    assert_eq!(app.selected, 0);
    assert!(follow.contains(&Command::Details {
        id: "bbbbbbbbbbbbbbbbbbbbbb".into(),
        tab: Tab::General
    }));
}

#[test]
fn moving_the_separator() {
    let mut app = three();
    let before = list_rows(&app, Rect::new(0, 0, 80, 24));
    app.on_key(alt('j'));
    app.on_key(alt('j'));
    assert_eq!(list_rows(&app, Rect::new(0, 0, 80, 24)), before + 2);
    for _ in 0..200 {
        app.on_key(alt('k'));
    }
    assert_eq!(list_rows(&app, Rect::new(0, 0, 80, 24)), 1, "bounded");
    screen(&mut app, 80, 24);
}
