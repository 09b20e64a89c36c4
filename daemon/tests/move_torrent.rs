//! `Session.MoveTorrent` and `/move-torrent` end to end: two real `raind` on loopback.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;

use common::{Raind, WAIT, free_port, make_torrent};
use data_encoding::BASE64;

const TOKEN: &str = "rpc-token: s3cret\n";

fn ids(d: &Raind) -> Vec<String> {
    d.json(&["list"])
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["ID"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_seeding_torrent_moves_to_another_server_with_its_data() {
    let tmp = tempfile::tempdir().unwrap();
    let (torrent, data) = make_torrent(tmp.path(), "movie.bin", 1024 * 1024 + 123);
    let a = Raind::start(&tmp.path().join("a"), TOKEN);
    let b = Raind::start(&tmp.path().join("b"), TOKEN);
    std::fs::create_dir_all(tmp.path().join("a/data/seed")).unwrap();
    std::fs::write(tmp.path().join("a/data/seed/movie.bin"), &data).unwrap();
    let added = a.json(&["add", "-t", torrent.to_str().unwrap(), "--id", "seed"]);
    let info_hash = added["InfoHash"].clone();
    a.wait_for("seed", "seeding", |s| s["Status"] == "Seeding");

    // A target that is not there: the move fails and the torrent stays, stopped.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let out = a.client(&["move", "--id", "seed", "--target", &dead]);
    assert!(!out.status.success(), "moving to nowhere succeeded");
    assert_eq!(ids(&a), ["seed"]);
    a.wait_for("seed", "stopped", |s| s["Status"] == "Stopped");
    a.ok(&["start", "--id", "seed"]);
    a.wait_for("seed", "seeding again", |s| s["Status"] == "Seeding");

    // Moving to itself would delete the data being sent: refused, the torrent stays.
    let out = a.client(&["move", "--id", "seed", "--target", &a.url]);
    assert!(!out.status.success(), "moving to itself succeeded");
    assert_eq!(
        std::fs::read(tmp.path().join("a/data/seed/movie.bin")).unwrap(),
        data
    );
    assert_eq!(ids(&a), ["seed"]);
    a.ok(&["start", "--id", "seed"]);
    a.wait_for("seed", "seeding again", |s| s["Status"] == "Seeding");

    // The real move, through `rain client move` (scheme added by the client).
    let target = b.url.trim_start_matches("http://");
    a.ok(&["move", "--id", "seed", "--target", target]);
    assert!(ids(&a).is_empty(), "still on the source");
    assert_eq!(
        std::fs::read(tmp.path().join("a/data/seed/movie.bin")).unwrap(),
        data,
        "the source keeps its data"
    );
    assert_eq!(ids(&b), ["seed"]);
    let got = std::fs::read(tmp.path().join("b/data/seed/movie.bin")).unwrap();
    assert!(got == data, "moved bytes differ");
    let s = b.wait_for("seed", "seeding on the target", |s| {
        s["Status"] == "Seeding"
    });
    assert_eq!(s["InfoHash"], info_hash);
    assert_eq!(s["Pieces"]["Have"], s["Pieces"]["Total"]);
    assert_eq!(s["Bytes"]["Downloaded"], 0, "nothing downloaded: {s}");
    // It got a port of the target's own pool and survives a restart there.
    let mut b = b;
    b.stop();
    b.spawn();
    assert_eq!(ids(&b), ["seed"]);
    b.wait_for("seed", "seeding after restart", |s| {
        s["Status"] == "Seeding"
    });
}

/// A 512-byte ustar header block.
fn tar_header(name: &str, kind: u8, size: usize) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..108].copy_from_slice(b"0000600\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    h[136..148].copy_from_slice(b"00000000000\0");
    h[148..156].copy_from_slice(b"        ");
    h[156] = kind;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

fn tar_of(name: &str, data: &[u8]) -> Vec<u8> {
    let mut out = tar_header(name, b'0', data.len()).to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512 + 1024, 0);
    out
}

fn form(id: &str, data: &[u8]) -> Vec<u8> {
    let spec = format!(
        r#"{{"InfoHash":"{}","Name":"x","AddedAt":"2024-01-01T00:00:00Z","Started":false}}"#,
        BASE64.encode(&[7u8; 20])
    );
    let mut body = format!(
        "--XX\r\nContent-Disposition: form-data; name=\"id\"\r\n\r\n{id}\r\n\
         --XX\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n{spec}\r\n\
         --XX\r\nContent-Disposition: form-data; name=\"data\"\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(data);
    body.extend_from_slice(b"\r\n--XX--\r\n");
    body
}

/// POSTs `body` to `/move-torrent`; returns the status.
fn post_move(d: &Raind, host: &str, headers: &[&str], id: &str, body: &[u8]) -> u16 {
    let addr = d.url.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut req = format!(
        "POST /move-torrent?id={id} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\
         Content-Type: multipart/form-data; boundary=XX\r\nContent-Length: {}\r\n",
        body.len()
    );
    for h in headers {
        req += h;
        req += "\r\n";
    }
    req += "\r\n";
    s.write_all(req.as_bytes()).unwrap();
    let _ = s.write_all(body);
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let resp = String::from_utf8_lossy(&resp);
    resp.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn nothing_escaped(root: &Path) {
    for p in ["b/escape", "b/data/escape", "escape"] {
        assert!(!root.join(p).exists(), "{p} written");
    }
}

#[test]
fn move_torrent_endpoint_refuses_strangers_and_escaping_archives() {
    let tmp = tempfile::tempdir().unwrap();
    let b = Raind::start(&tmp.path().join("b"), TOKEN);
    let auth = "Authorization: Bearer s3cret";
    let addr = b.url.trim_start_matches("http://").to_owned();
    let good = form("fine", &tar_of("f.txt", b"hello"));

    assert_eq!(post_move(&b, &addr, &[], "fine", &good), 401, "no token");
    assert_eq!(
        post_move(&b, &addr, &["Authorization: Bearer wrong"], "fine", &good),
        401
    );
    assert_eq!(
        post_move(&b, "attacker.example", &[auth], "fine", &good),
        403,
        "DNS rebinding"
    );
    assert_eq!(
        post_move(
            &b,
            &addr,
            &[auth, "Origin: http://attacker.example"],
            "fine",
            &good
        ),
        403,
        "a browser's form post"
    );
    assert!(ids(&b).is_empty());

    for name in ["../escape", "a/../../escape", "../../escape"] {
        let status = post_move(
            &b,
            &addr,
            &[auth],
            "evil",
            &form("evil", &tar_of(name, b"x")),
        );
        assert!(status == 400 || status == 500, "{name}: {status}");
        nothing_escaped(tmp.path());
    }
    assert!(!tmp.path().join("b/data/evil").exists(), "cleaned up");
    let status = post_move(&b, &addr, &[auth], "bad", b"--XX\r\nnot a form");
    assert_eq!(status, 400, "malformed form");
    assert!(ids(&b).is_empty());

    // A well-formed move-in of a magnet-like spec (no info) is accepted.
    assert_eq!(post_move(&b, &addr, &[auth], "fine", &good), 200);
    assert_eq!(ids(&b), ["fine"]);
    assert_eq!(
        std::fs::read(tmp.path().join("b/data/fine/f.txt")).unwrap(),
        b"hello"
    );
}
