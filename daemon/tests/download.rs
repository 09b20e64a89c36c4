//! `rain download` as users run it: a seeding `rain download --seed` and a leeching one on
//! loopback; the leecher exits 0 with identical bytes, the seeder stops cleanly on SIGINT, and
//! user mistakes are one line with exit status 1.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn rain() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rain"));
    c.env("HOME", std::env::temp_dir())
        .env_remove("SOURCE_DATE_EPOCH");
    c
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn config(dir: &Path, name: &str, port: u16) -> String {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "port-begin: {port}\nport-end: {}\ndht-enabled: false\n",
            port + 1
        ),
    )
    .unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn leecher_downloads_from_a_seeding_rain_download() {
    let dir = tempfile::tempdir().unwrap();
    let (seed_dir, leech_dir) = (dir.path().join("seed"), dir.path().join("leech"));
    std::fs::create_dir_all(&seed_dir).unwrap();
    std::fs::create_dir_all(&leech_dir).unwrap();
    let data: Vec<u8> = (0..1_500_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(seed_dir.join("payload.bin"), &data).unwrap();
    let torrent = dir.path().join("t.torrent");
    let ok = rain()
        .args([
            "torrent",
            "create",
            "-f",
            seed_dir.join("payload.bin").to_str().unwrap(),
            "-o",
            torrent.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(ok.success());

    let seed_port = free_port();
    let mut seeder = rain()
        .current_dir(&seed_dir)
        .args([
            "download",
            "-c",
            &config(dir.path(), "seed.yaml", seed_port),
            "-t",
            torrent.to_str().unwrap(),
            "--seed",
        ])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let leech_port = free_port();
    let out = rain()
        .current_dir(&leech_dir)
        .args([
            "download",
            "-c",
            &config(dir.path(), "leech.yaml", leech_port),
            "-t",
            torrent.to_str().unwrap(),
            "--peer",
            &format!("127.0.0.1:{seed_port}"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "leecher failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(leech_dir.join("payload.bin")).unwrap(), data);
    assert!(
        leech_dir.join("payload.bin.resume").exists(),
        "progress is kept in <name>.resume"
    );

    // SIGINT stops the seeder cleanly, exit status 0.
    let pid = seeder.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let started = Instant::now();
    let status = loop {
        if let Some(s) = seeder.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "seeder ignored SIGINT"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
}

#[test]
fn download_errors_are_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 4] = [
        (&["download"], "--torrent"),
        (&["download", "-t", "/nonexistent.torrent"], "cannot read"),
        (
            &["download", "-t", "magnet:?xt=urn:btih:xyz"],
            "invalid magnet link",
        ),
        (
            &["download", "-c", "/nonexistent.yaml", "-t", "x.torrent"],
            "nonexistent.yaml",
        ),
    ];
    for (args, needle) in cases {
        let out = rain().current_dir(dir.path()).args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}
