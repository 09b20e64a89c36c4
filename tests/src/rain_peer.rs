//! The rain side of interop tests: deterministic payloads and their torrents, an in-process
//! [`Session`] on 127.0.0.1 with a fresh port, bounded waits on its torrents, and byte-exact
//! comparison of what a peer downloaded.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rain_proto::address_book::PeerSource;
use rain_proto::torrent::{PeerView, Status};
use rain_runtime::create::{CreateOptions, create_torrent};
use rain_runtime::session::{AddOptions, Session, SessionConfig};

use crate::process::free_port;

/// Deterministic pseudo-random bytes (xorshift64), different for each `seed`.
pub fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Files of a payload: paths relative to the directory that holds the torrent's top entry,
/// and their bytes.
pub type Files = Vec<(PathBuf, Vec<u8>)>;

/// Writes a multi-file payload `name/…` under `dir`: pieces straddle files and the last
/// piece is short. Returns the files (relative to `dir`) and the top directory.
pub fn write_payload(
    dir: &Path,
    name: &str,
    sizes: &[(&str, usize)],
    seed: u64,
) -> (Files, PathBuf) {
    let top = dir.join(name);
    let mut files = Vec::new();
    for (i, (rel, len)) in sizes.iter().enumerate() {
        let rel = Path::new(name).join(rel);
        let bytes = payload(*len, seed * 1000 + i as u64);
        let path = dir.join(&rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &bytes).unwrap();
        files.push((rel, bytes));
    }
    (files, top)
}

/// The usual small payload: three files, 2.3 MB in all.
pub fn small_payload(dir: &Path, name: &str, seed: u64) -> (Files, PathBuf) {
    write_payload(
        dir,
        name,
        &[
            ("a.bin", 1_500_001),
            ("sub/b.bin", 800_000),
            ("c.bin", 12_345),
        ],
        seed,
    )
}

/// The usual small payload `name` under `dir` and rain's torrent of it (32 KiB pieces, no
/// tracker), which is also written to `torrent_path`. Returns the files (relative to `dir`)
/// and the torrent.
pub fn small_torrent(dir: &Path, name: &str, seed: u64, torrent_path: &Path) -> (Files, Vec<u8>) {
    let (files, top) = small_payload(dir, name, seed);
    let torrent = make_torrent(&top, 32 * 1024, None);
    std::fs::write(torrent_path, &torrent).unwrap();
    (files, torrent)
}

/// A torrent of `path` made by rain (`piece_length` bytes, optional tracker).
pub fn make_torrent(path: &Path, piece_length: u32, tracker: Option<&str>) -> Vec<u8> {
    create_torrent(&CreateOptions {
        paths: vec![path.to_owned()],
        piece_length: Some(piece_length),
        trackers: tracker
            .map(|t| vec![vec![t.to_owned()]])
            .unwrap_or_default(),
        threads: 1,
        ..CreateOptions::default()
    })
    .unwrap()
}

/// Asserts that `dir` holds every file of `files` with exactly its bytes.
pub fn assert_same(who: &str, dir: &Path, files: &Files) {
    for (rel, want) in files {
        let path = dir.join(rel);
        let got = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{who}: cannot read {}: {e}", path.display()));
        assert_eq!(
            got.len(),
            want.len(),
            "{who}: {} has the wrong length",
            rel.display()
        );
        assert!(
            got == *want,
            "{who}: {} differs from the source",
            rel.display()
        );
    }
}

/// True when `dir` holds every file of `files` with exactly its bytes.
pub fn same(dir: &Path, files: &Files) -> bool {
    files
        .iter()
        .all(|(rel, want)| std::fs::read(dir.join(rel)).is_ok_and(|got| got == *want))
}

/// A session configuration for tests: loopback only, one fresh port, no DHT, data under
/// `dir/data` (without the torrent id, so the payload's paths are the torrent's).
pub fn loopback_config(dir: &Path, seed: u64) -> SessionConfig {
    let port = free_port();
    SessionConfig {
        database: dir.join("session.db"),
        data_dir: dir.join("data"),
        data_dir_includes_torrent_id: false,
        host: "127.0.0.1".parse().unwrap(),
        port_begin: port,
        port_end: port + 1,
        dht_enabled: false,
        resume_on_startup: false,
        seed: Some(seed),
        ..SessionConfig::default()
    }
}

/// Copies a payload (`files`, relative to `from`) into a session's data directory, so that
/// the session seeds it.
pub fn stage(files: &Files, from: &Path, data_dir: &Path) {
    for (rel, _) in files {
        let to = data_dir.join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from.join(rel), &to).unwrap();
    }
}

/// A rain session under `dir` ([`loopback_config`], then `tweak`) seeding `torrent`, its
/// payload `files` copied from `src`; returns once it seeds, with the torrent's id and the
/// session's port.
pub async fn rain_seeder(
    dir: &Path,
    seed: u64,
    torrent: &[u8],
    files: &Files,
    src: &Path,
    tweak: impl FnOnce(&mut SessionConfig),
) -> (Arc<Session>, String, u16) {
    let mut config = loopback_config(dir, seed);
    tweak(&mut config);
    stage(files, src, &config.data_dir);
    let s = Session::new(config).await.unwrap();
    let t = s.add_torrent(torrent, AddOptions::default()).await.unwrap();
    wait_seeding(&s, &t.id).await;
    (Arc::new(s), t.id, t.port)
}

/// One line on a torrent's state, for failure messages.
pub async fn describe(s: &Session, id: &str) -> String {
    match s.stats(id).await {
        Ok(st) => format!(
            "{:?}: {}/{} pieces, {} peers ({} in, {} out), {} dialing, {} addresses ({} pex), {} B down, {} B up, error {:?}",
            st.status,
            st.stats.pieces.have,
            st.stats.pieces.total,
            st.stats.peers.total,
            st.stats.peers.incoming,
            st.stats.peers.outgoing,
            st.stats.handshakes.total,
            st.stats.addresses.total,
            st.stats.addresses.pex,
            st.stats.bytes.downloaded,
            st.stats.bytes.uploaded,
            st.error
        ),
        Err(e) => format!("no stats: {e}"),
    }
}

/// Waits up to `limit` for the torrent to reach `status`, calling `observe` with its peers
/// on every poll (every 20 ms). `Err` describes the torrent when it did not.
pub async fn wait_status(
    s: &Session,
    id: &str,
    status: Status,
    limit: Duration,
    mut observe: impl FnMut(&[PeerView]),
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Ok(peers) = s.peers(id).await {
            observe(&peers);
        }
        let st = s.stats(id).await.map_err(|e| e.to_string())?;
        if st.status == status {
            return Ok(());
        }
        if let Some(e) = st.error {
            return Err(format!("torrent failed: {e}"));
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!(
                "not {status:?} after {limit:?}; {}",
                describe(s, id).await
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `s` seeds `id` (its data verified): a seeder is ready to serve.
pub async fn wait_seeding(s: &Session, id: &str) {
    if let Err(e) = wait_status(s, id, Status::Seeding, Duration::from_secs(30), |_| {}).await {
        panic!("rain seeder not ready: {e}");
    }
}

/// One connected peer as a session showed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SeenPeer {
    /// Its address (for incoming peers, their outgoing port).
    pub addr: SocketAddr,
    /// Where rain learned it.
    pub source: PeerSource,
    /// MSE-encrypted.
    pub encrypted: bool,
}

/// Records every distinct peer a session shows for a torrent, polling every 10 ms in a
/// background task (stopped when dropped), so that short connections are seen too.
#[derive(Debug)]
pub struct PeerWatch {
    seen: Arc<Mutex<Vec<SeenPeer>>>,
    task: tokio::task::JoinHandle<()>,
}

impl PeerWatch {
    /// Starts watching torrent `id` of `session`.
    pub fn start(session: Arc<Session>, id: &str) -> PeerWatch {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (out, id) = (seen.clone(), id.to_owned());
        let task = tokio::spawn(async move {
            loop {
                if let Ok(peers) = session.peers(&id).await {
                    let mut out = out.lock().unwrap();
                    for p in peers {
                        let s = SeenPeer {
                            addr: p.addr,
                            source: p.source,
                            encrypted: p.encrypted,
                        };
                        if !out.contains(&s) {
                            out.push(s);
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        PeerWatch { seen, task }
    }

    /// Every distinct peer seen so far.
    pub fn seen(&self) -> Vec<SeenPeer> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for PeerWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}
