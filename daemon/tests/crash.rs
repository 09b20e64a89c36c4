//! Crash consistency: a downloading `raind` is killed (SIGKILL) at random moments and
//! restarted. After every restart no piece is recorded complete unless its bytes on disk are
//! right, verified pieces are not fetched again, and the download ends with identical bytes.
//!
//! The moments come from a seed printed first; `RAIN_CRASH_SEED=<seed>` replays them.

mod common;

use std::time::{Duration, Instant};

use common::{Raind, WAIT, make_torrent_with};
use rain_proto::hash::sha1;

const KILLS: usize = 50;
const PIECE: usize = 256 * 1024;

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        // xorshift64*: enough to spread kill moments.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// Pieces of `path` whose bytes equal the source's.
fn intact_pieces(path: &std::path::Path, source: &[u8]) -> usize {
    let on_disk = std::fs::read(path).unwrap_or_default();
    source
        .chunks(PIECE)
        .enumerate()
        .filter(|(i, want)| {
            let got = on_disk.get(i * PIECE..i * PIECE + want.len());
            got.is_some_and(|g| sha1(g) == sha1(want))
        })
        .count()
}

#[test]
fn killed_at_random_moments_the_download_stays_consistent() {
    let seed = std::env::var("RAIN_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("RAIN_CRASH_SEED={seed}");
    let mut rng = Rng(seed);

    let tmp = tempfile::tempdir().unwrap();
    let size = 48 * 1024 * 1024 + 1234;
    let (torrent, data) = make_torrent_with(tmp.path(), "big.bin", size, 256);
    let torrent = torrent.to_str().unwrap();
    let pieces = data.len().div_ceil(PIECE);

    // The seeder sends at most 1 MiB/s (about 50 s for the payload): faster, each restart's
    // reconnection (the test's RPCs take a while) brought more pieces than lie between two
    // kill points, and the download outran them. (A limit on the leecher would not do: each
    // restart starts with a full one-second burst.)
    let seeder = Raind::start(&tmp.path().join("seeder"), "speed-limit-upload: 1024\n");
    std::fs::create_dir_all(tmp.path().join("seeder/data/s")).unwrap();
    std::fs::copy(
        tmp.path().join("src/big.bin"),
        tmp.path().join("seeder/data/s/big.bin"),
    )
    .unwrap();
    let port = seeder.json(&["add", "-t", torrent, "--id", "s"])["Port"]
        .as_u64()
        .unwrap();
    seeder.wait_for("s", "seeding", |s| s["Status"] == "Seeding");
    let peer = format!("127.0.0.1:{port}");

    // Progress is written every second, and few requests are outstanding, so a crash loses
    // little and the re-fetch bound below is tight.
    let mut leecher = Raind::start(
        &tmp.path().join("leecher"),
        "resume-write-interval: 1s\nmax-requests-out: 16\n",
    );
    leecher.ok(&["add", "-t", torrent, "--id", "l"]);
    let file = tmp.path().join("leecher/data/l/big.bin");
    // Kill points spread over the download: after a random share (5–90 %) of the pieces, so
    // the moments land mid-download however fast the machine is.
    let mut points: Vec<usize> = (0..KILLS)
        .map(|_| (pieces as u64 * (5 + rng.below(86)) / 100) as usize)
        .collect();
    points.sort_unstable();
    let mut kills = 0;
    for point in points {
        leecher.ok(&["add-peer", "--id", "l", "--addr", &peer]);
        let deadline = Instant::now() + WAIT;
        let seeding = loop {
            let s = leecher.stats("l");
            let have = s["Pieces"]["Have"].as_u64().unwrap() as usize;
            if s["Status"] == "Seeding" {
                break true;
            }
            if have >= point {
                // Recorded pieces were written before they were recorded: checked just
                // before the crash, and again by the next round's first check.
                let intact = intact_pieces(&file, &data);
                assert!(
                    have <= intact,
                    "seed {seed}: {have} pieces recorded but only {intact} intact on disk"
                );
                break false;
            }
            assert!(
                Instant::now() < deadline,
                "seed {seed}: stuck at {have} pieces"
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        if seeding {
            break;
        }
        leecher.kill();
        kills += 1;
        leecher.spawn();
        // What the restarted server recorded after re-checking must be on disk intact.
        let s = leecher.wait_for("l", "re-checked", |s| {
            s["Status"] == "Downloading" || s["Status"] == "Seeding"
        });
        let have = s["Pieces"]["Have"].as_u64().unwrap() as usize;
        let intact = intact_pieces(&file, &data);
        assert!(
            have <= intact,
            "seed {seed}: after restart {have} pieces recorded, {intact} intact"
        );
    }
    leecher.ok(&["add-peer", "--id", "l", "--addr", &peer]);
    println!("killed {kills} times");
    assert_eq!(
        kills, KILLS,
        "seed {seed}: every kill point was reached mid-download"
    );
    let done = leecher.wait_for("l", "complete", |s| s["Status"] == "Seeding");
    assert_eq!(done["Pieces"]["Have"].as_u64().unwrap() as usize, pieces);
    assert!(
        std::fs::read(&file).unwrap() == data,
        "seed {seed}: bytes differ"
    );

    // Nothing verified was fetched again: the seeder sent the payload once, plus at most what
    // was in flight at each kill: 16 requested blocks and the few pieces being assembled or
    // written.
    let uploaded = seeder.stats("s")["Bytes"]["Uploaded"].as_u64().unwrap();
    let in_flight = 16 * 16 * 1024 + 4 * PIECE as u64;
    assert!(
        uploaded <= size as u64 + (kills as u64 + 1) * in_flight,
        "seed {seed}: uploaded {uploaded} for {size} bytes after {kills} kills"
    );
}
