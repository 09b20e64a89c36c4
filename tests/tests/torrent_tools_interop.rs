//! rain's .torrent tools against the real ones: for torrents made by mktorrent,
//! transmission-create and libtorrent from the same files, `rain torrent infohash` prints the
//! info-hash those tools report, and `rain torrent create` reproduces mktorrent's info-hash.

use std::path::{Path, PathBuf};
use std::process::Command;

use rain_proto::metainfo::{Limits, Metainfo};
use rain_tests::{available, python_libtorrent_available, rain, require, run_ok};

const TRACKER: &str = "http://127.0.0.1:6969/announce";

/// A payload directory whose walk order and sorted full-path order agree.
fn payload(dir: &Path) -> PathBuf {
    let top = dir.join("payload");
    let files: [(&str, usize); 5] = [
        ("alpha.txt", 100_000),
        ("sub/beta.bin", 1),
        ("sub/gamma.bin", 300_000),
        ("sub/z/deep.dat", 5),
        ("zeta.dat", 70_000),
    ];
    for (i, (name, len)) in files.iter().enumerate() {
        let path = top.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let data: Vec<u8> = (0..*len).map(|j| ((j * 7 + i * 13) % 256) as u8).collect();
        std::fs::write(path, data).unwrap();
    }
    top
}

fn rain_infohash(torrent: &Path) -> String {
    rain(&["torrent", "infohash", "-f", torrent.to_str().unwrap()])
        .unwrap()
        .trim()
        .to_owned()
}

fn rain_create(dir: &Path, input: &Path, piece_kib: u32) -> PathBuf {
    let out = dir.join(format!(
        "rain-{}.torrent",
        input.file_name().unwrap().to_str().unwrap()
    ));
    let kib = piece_kib.to_string();
    rain(&[
        "torrent",
        "create",
        "-f",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-t",
        TRACKER,
        "-l",
        &kib,
    ])
    .unwrap();
    out
}

/// libtorrent's own reading of a torrent's v1 info-hash.
fn libtorrent_infohash(torrent: &Path) -> String {
    let script = "import sys, libtorrent as lt; ti = lt.torrent_info(sys.argv[1]); print(str(ti.info_hashes().v1))";
    run_ok(Command::new("python3").args(["-c", script, torrent.to_str().unwrap()]))
        .trim()
        .to_owned()
}

#[test]
fn mktorrent_info_hash_matches_rain() {
    if !require(
        "mktorrent_info_hash_matches_rain",
        "mktorrent",
        available("mktorrent", &["-h"]),
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let top = payload(dir.path());
    let single = top.join("alpha.txt");
    for (input, log2) in [(&top, 15u32), (&single, 16)] {
        let theirs = dir.path().join(format!("mk-{log2}.torrent"));
        run_ok(
            Command::new("mktorrent")
                .args(["-a", TRACKER, "-l", &log2.to_string(), "-o"])
                .arg(&theirs)
                .arg(input),
        );
        let ours = rain_create(dir.path(), input, (1 << log2) / 1024);
        let reference = if python_libtorrent_available() {
            Some(libtorrent_infohash(&theirs))
        } else {
            None
        };
        let their_hash = rain_infohash(&theirs);
        assert_eq!(
            rain_infohash(&ours),
            their_hash,
            "rain create vs mktorrent for {}",
            input.display()
        );
        if let Some(reference) = reference {
            assert_eq!(
                their_hash, reference,
                "rain reads mktorrent's info-hash as libtorrent does"
            );
        }
        let m = Metainfo::from_bytes(&std::fs::read(&theirs).unwrap(), &Limits::default()).unwrap();
        assert_eq!(m.trackers, [[TRACKER]]);
    }
}

#[test]
fn transmission_create_info_hash_matches_rain() {
    if !require(
        "transmission_create_info_hash_matches_rain",
        "transmission-create",
        available("transmission-show", &["-V"]),
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let top = payload(dir.path());
    let theirs = dir.path().join("tr.torrent");
    run_ok(
        Command::new("transmission-create")
            .args(["-t", TRACKER, "-s", "32", "-o"])
            .arg(&theirs)
            .arg(&top),
    );
    let shown = run_ok(Command::new("transmission-show").arg(&theirs));
    // Transmission 3 prints "Hash: <hex>", Transmission 4 "Hash v1: <hex>".
    let reported = shown
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Hash v1:")
                .or_else(|| l.trim().strip_prefix("Hash:"))
        })
        .map_or_else(
            || panic!("no hash in transmission-show output:\n{shown}"),
            |h| h.trim().to_lowercase(),
        );
    assert_eq!(rain_infohash(&theirs), reported);
    let m = Metainfo::from_bytes(&std::fs::read(&theirs).unwrap(), &Limits::default()).unwrap();
    assert_eq!(m.info.total_length, 470_006);
    assert_eq!(m.info.files.iter().filter(|f| !f.padding).count(), 5);
}

#[test]
fn libtorrent_info_hash_matches_rain_for_v1_and_hybrid() {
    if !require(
        "libtorrent_info_hash_matches_rain_for_v1_and_hybrid",
        "python3-libtorrent",
        python_libtorrent_available(),
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let top = payload(dir.path());
    // libtorrent 2 makes hybrid v1+v2 torrents with BEP 47 padding by default; v1_only is plain.
    let script = r#"
import sys, libtorrent as lt
top, out, mode = sys.argv[1], sys.argv[2], sys.argv[3]
fs = lt.file_storage()
lt.add_files(fs, top)
flags = lt.create_torrent.v1_only if mode == "v1" else 0
t = lt.create_torrent(fs, 32768, flags=flags)
t.add_tracker(sys.argv[4])
lt.set_piece_hashes(t, __import__("os").path.dirname(top))
data = lt.bencode(t.generate())
open(out, "wb").write(data)
print(str(lt.torrent_info(out).info_hashes().v1))
"#;
    for mode in ["v1", "hybrid"] {
        let out = dir.path().join(format!("lt-{mode}.torrent"));
        let reported = run_ok(Command::new("python3").args([
            "-c",
            script,
            top.to_str().unwrap(),
            out.to_str().unwrap(),
            mode,
            TRACKER,
        ]));
        assert_eq!(rain_infohash(&out), reported.trim(), "{mode}");
        let m = Metainfo::from_bytes(&std::fs::read(&out).unwrap(), &Limits::default()).unwrap();
        let real: Vec<String> = m
            .info
            .files
            .iter()
            .filter(|f| !f.padding)
            .map(|f| f.path.join("/"))
            .collect();
        assert_eq!(real.len(), 5, "{mode}: {real:?}");
        let real_bytes: u64 = m
            .info
            .files
            .iter()
            .filter(|f| !f.padding)
            .map(|f| f.length)
            .sum();
        assert_eq!(real_bytes, 470_006, "{mode}");
        if mode == "hybrid" {
            assert!(
                m.info.files.iter().any(|f| f.padding),
                "hybrid torrents carry BEP 47 padding"
            );
        }
    }
}
