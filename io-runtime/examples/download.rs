//! Downloads a torrent into the current directory: `--example download -- <file.torrent> [peer…]`
use rain_proto::torrent::Status;
use rain_runtime::session::{AddOptions, Session, SessionConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: download <file.torrent> [peer-addr…]")?;
    let db = tempfile::tempdir()?;
    let config = SessionConfig {
        database: db.path().join("session.db"),
        data_dir: std::env::current_dir()?,
        data_dir_includes_torrent_id: false,
        ..SessionConfig::default()
    };
    let session = Session::new(config).await?;
    let t = session
        .add_torrent(&std::fs::read(&path)?, AddOptions::default())
        .await?;
    for peer in args {
        session.add_peer(&t.id, &peer).await?;
    }
    loop {
        let s = session.stats(&t.id).await?;
        let p = s.stats.pieces;
        println!(
            "{}: {}/{} pieces, {} peers",
            s.status, p.have, p.total, s.stats.peers.total
        );
        if let Some(e) = s.error {
            return Err(e.into());
        } else if s.status == Status::Seeding {
            return Ok(session.close().await?);
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}
