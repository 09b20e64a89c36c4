//! `rain download`: one torrent into the current directory, no server (rain's command).
//!
//! The resume database is `<torrent name>.resume` unless `--resume` names one; a torrent
//! already in it (same info-hash) is resumed. Unless `--seed`, the command exits once the
//! download is complete. Ctrl-C (or SIGTERM) stops the torrent, saves progress and exits.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use rain_proto::InfoHash;
use rain_proto::magnet;
use rain_proto::metainfo::{Limits, Metainfo};
use rain_proto::torrent::Status;
use rain_runtime::session::{AddOptions, Session, TorrentStats};

use crate::cli::{CliError, DownloadArgs};
use crate::config::{Config, Warning};
use crate::session_config::session_config;

fn failed(msg: impl std::fmt::Display) -> CliError {
    CliError::Failed(msg.to_string())
}

/// What `--torrent` names.
enum Source {
    File {
        bytes: Vec<u8>,
        name: String,
        info_hash: InfoHash,
    },
    Magnet {
        link: String,
        name: String,
        info_hash: InfoHash,
    },
    Url {
        url: String,
        name: String,
    },
}

fn source(arg: &str) -> Result<Source, CliError> {
    if arg.starts_with("magnet:") {
        let m = magnet::parse(arg).map_err(|e| failed(format!("invalid magnet link: {e}")))?;
        let name = m.name.clone().unwrap_or_else(|| m.info_hash.to_hex());
        return Ok(Source::Magnet {
            link: arg.to_owned(),
            name,
            info_hash: m.info_hash,
        });
    }
    if arg.starts_with("http://") || arg.starts_with("https://") {
        let name = arg
            .rsplit('/')
            .next()
            .unwrap_or("download")
            .trim_end_matches(".torrent")
            .to_owned();
        return Ok(Source::Url {
            url: arg.to_owned(),
            name,
        });
    }
    let bytes = std::fs::read(arg).map_err(|e| failed(format!("cannot read {arg}: {e}")))?;
    let m = Metainfo::from_bytes(&bytes, &Limits::default())
        .map_err(|e| failed(format!("{arg} is not a valid torrent: {e}")))?;
    Ok(Source::File {
        name: m.info.name.clone(),
        info_hash: m.info_hash,
        bytes,
    })
}

/// Runs `rain download`.
pub fn download(args: &DownloadArgs) -> Result<(), CliError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| failed(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(run(args))
}

async fn run(args: &DownloadArgs) -> Result<(), CliError> {
    let (config, warnings) = Config::load(args.config.as_deref().map(std::path::Path::new))
        .map_err(|e| failed(e.to_string()))?;
    // A missing default config file just means defaults; only real problems are shown.
    for w in warnings
        .iter()
        .filter(|w| !matches!(w, Warning::DefaultFileMissing { .. }))
    {
        eprintln!("rain: warning: {w}");
    }
    let source = source(&args.torrent)?;
    let name = match &source {
        Source::File { name, .. } | Source::Magnet { name, .. } | Source::Url { name, .. } => {
            name.clone()
        }
    };
    let mut settings = session_config(&config).map_err(failed)?;
    settings.database = args
        .resume
        .clone()
        .map_or_else(|| PathBuf::from(format!("{name}.resume")), PathBuf::from);
    settings.data_dir = PathBuf::from(".");
    settings.data_dir_includes_torrent_id = false;
    crate::rlimit::apply_max_open_files(config.max_open_files);
    let session = Session::new(settings)
        .await
        .map_err(|e| failed(e.to_string()))?;

    let wanted = match &source {
        Source::File { info_hash, .. } | Source::Magnet { info_hash, .. } => Some(*info_hash),
        Source::Url { .. } => None,
    };
    let resumed = session
        .list()
        .into_iter()
        .find(|t| Some(t.info_hash) == wanted);
    let opts = AddOptions {
        stop_after_download: !args.seed,
        ..AddOptions::default()
    };
    let id = match (resumed, source) {
        (Some(t), _) => {
            session
                .start(&t.id)
                .await
                .map_err(|e| failed(e.to_string()))?;
            t.id
        }
        (None, Source::File { bytes, .. }) => {
            session
                .add_torrent(&bytes, opts)
                .await
                .map_err(|e| failed(e.to_string()))?
                .id
        }
        (None, Source::Magnet { link, .. }) => {
            session
                .add_magnet(&link, opts)
                .await
                .map_err(|e| failed(e.to_string()))?
                .id
        }
        (None, Source::Url { url, .. }) => {
            session
                .add_uri(&url, opts)
                .await
                .map_err(|e| failed(e.to_string()))?
                .id
        }
    };
    for peer in &args.peers {
        session
            .add_peer(&id, peer)
            .await
            .map_err(|e| failed(format!("--peer {peer}: {e}")))?;
    }

    let result = watch(&session, &id, args.seed).await;
    session
        .close()
        .await
        .map_err(|e| failed(format!("cannot save progress: {e}")))?;
    result
}

/// Shows progress until done (or forever with `--seed`), or until Ctrl-C.
async fn watch(session: &Session, id: &str, seed: bool) -> Result<(), CliError> {
    let bar = ProgressBar::new(0);
    let tty = std::io::stderr().is_terminal();
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {percent:>3}% [{bar:30}] {bytes}/{total_bytes} {msg}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut seen_complete = false;
    // Created once, so a signal that arrives between two ticks is not missed.
    let shutdown = crate::server::shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = &mut shutdown => {
                bar.abandon_with_message("interrupted, progress saved");
                return Ok(());
            }
        }
        let s = session.stats(id).await.map_err(|e| failed(e.to_string()))?;
        if let Some(e) = &s.error {
            bar.abandon();
            return Err(failed(format!("{}: {e}", s.name)));
        }
        let line = status_line(&s);
        bar.set_length(s.stats.bytes.total);
        bar.set_position(s.stats.bytes.completed);
        bar.set_message(line.clone());
        if tty {
            bar.tick();
        } else {
            eprintln!("{line}");
        }
        let complete = s.stats.bytes.total > 0 && s.stats.bytes.completed == s.stats.bytes.total;
        if complete && !seen_complete {
            seen_complete = true;
            if !seed {
                bar.finish_with_message(format!("{}: download complete", s.name));
                return Ok(());
            }
        }
        if s.status == Status::Stopped && !complete {
            bar.abandon();
            return Err(failed(format!("{}: the torrent stopped", s.name)));
        }
    }
}

fn status_line(s: &TorrentStats) -> String {
    let st = &s.stats;
    let eta = st.eta.map_or_else(
        || "-".to_owned(),
        |d| humantime::format_duration(d).to_string(),
    );
    format!(
        "{} | {} peers | ↓ {}/s ↑ {}/s | ETA {eta}",
        s.status,
        st.peers.total,
        indicatif::HumanBytes(st.speed.download),
        indicatif::HumanBytes(st.speed.upload)
    )
}
