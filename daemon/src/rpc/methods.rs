//! The `Session.*` methods: each one parses rain's params object, calls the [`Session`] and
//! answers with rain's result object ([`super::types`]).

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use data_encoding::{BASE64, HEXLOWER};
use jsonrpsee::RpcModule;
use jsonrpsee::types::{ErrorObjectOwned, Params};
use rain_proto::torrent::PeerView;
use rain_proto::tracker::TrackerError;
use rain_proto::tracker::announcer::TrackerStatus;
use rain_runtime::session::{self, Session, SessionError, TorrentStats, TorrentSummary};
use serde::de::DeserializeOwned;

use super::types::{
    AddOptions, AddPeerRequest, AddTorrentRequest, AddTrackerRequest, AddUriRequest, AddressStats,
    ByteStats, DirectionStats, DownloadStats, Empty, File, FileStats, FileStatsResponse,
    FilesResponse, IdRequest, ListTorrentsResponse, MagnetResponse, MetadataDownloadStats,
    MoveTorrentRequest, Peer, PeersResponse, PieceStats, RemoveTorrentRequest, SessionStats,
    SessionStatsResponse, SpeedStats, Stats, StatsResponse, Time, Torrent, TorrentFileResponse,
    TorrentResponse, Tracker, TrackersResponse, Webseed, WebseedsResponse,
};
use super::{ERROR_INPUT, ERROR_OTHER, ERROR_TORRENT_NOT_FOUND};

/// A method's outcome: rain's result object or a JSON-RPC error.
type Reply<T> = Result<T, ErrorObjectOwned>;

/// The RPC module serving every method of [`super::METHODS`] from `session`.
///
/// `rpc_token` is also sent to the target of `Session.MoveTorrent` (servers moving torrents
/// between them share one token).
pub fn module(session: Arc<Session>, rpc_token: &str) -> RpcModule<Session> {
    let token: Arc<str> = Arc::from(rpc_token);
    let mut m = RpcModule::from_arc(session);

    ok(m.register_method("Session.Version", |_, _, _| {
        Ok::<_, ErrorObjectOwned>(env!("CARGO_PKG_VERSION"))
    }));
    ok(m.register_method("Session.ListTorrents", |_, s, _| {
        Ok::<_, ErrorObjectOwned>(ListTorrentsResponse {
            torrents: s.list().into_iter().map(torrent).collect(),
        })
    }));
    ok(
        m.register_async_method("Session.AddTorrent", |p, s, _| async move {
            let r: AddTorrentRequest = parse(&p)?;
            let bytes = BASE64
                .decode(r.torrent.trim().as_bytes())
                .map_err(|e| input_error(&format!("invalid base64 torrent data: {e}")))?;
            let t = s.add_torrent(&bytes, add_options(r.options)).await;
            t.map(|t| TorrentResponse {
                torrent: torrent(t),
            })
            .map_err(error)
        }),
    );
    ok(
        m.register_async_method("Session.AddURI", |p, s, _| async move {
            let r: AddUriRequest = parse(&p)?;
            let t = s.add_uri(&r.uri, add_options(r.options)).await;
            t.map(|t| TorrentResponse {
                torrent: torrent(t),
            })
            .map_err(error)
        }),
    );
    ok(
        m.register_async_method("Session.RemoveTorrent", |p, s, _| async move {
            let r: RemoveTorrentRequest = parse(&p)?;
            empty(s.remove(&r.id, r.keep_data).await)
        }),
    );
    ok(
        m.register_async_method("Session.CleanDatabase", |_, s, _| async move {
            empty(s.clean_database().await)
        }),
    );
    ok(
        m.register_async_method("Session.GetSessionStats", |_, s, _| async move {
            Ok::<_, ErrorObjectOwned>(SessionStatsResponse {
                stats: session_stats(&s.session_stats().await),
            })
        }),
    );
    ok(
        m.register_async_method("Session.GetTorrentStats", |p, s, _| async move {
            let r: IdRequest = parse(&p)?;
            let st = s.stats(&r.id).await.map_err(error)?;
            Ok::<_, ErrorObjectOwned>(StatsResponse { stats: stats(&st) })
        }),
    );
    ok(
        m.register_async_method("Session.GetTorrentTrackers", |p, s, _| async move {
            let r: IdRequest = parse(&p)?;
            let list = s.trackers(&r.id).await.map_err(error)?;
            Ok::<_, ErrorObjectOwned>(TrackersResponse {
                trackers: list.iter().map(|t| tracker(&s, t)).collect(),
            })
        }),
    );
    ok(
        m.register_async_method("Session.GetTorrentPeers", |p, s, _| async move {
            let r: IdRequest = parse(&p)?;
            let list = s.peers(&r.id).await.map_err(error)?;
            Ok::<_, ErrorObjectOwned>(PeersResponse {
                peers: list.iter().map(|v| peer(&s, v)).collect(),
            })
        }),
    );
    ok(
        m.register_async_method("Session.GetTorrentWebseeds", |p, s, _| async move {
            let r: IdRequest = parse(&p)?;
            let list = s.webseeds(&r.id).await.map_err(error)?;
            Ok::<_, ErrorObjectOwned>(WebseedsResponse {
                webseeds: list
                    .into_iter()
                    .map(|w| Webseed {
                        url: w.url,
                        error: w.error.map(|e| e.to_string()).unwrap_or_default(),
                        download_speed: w.download_speed,
                    })
                    .collect(),
            })
        }),
    );
    ok(
        m.register_async_method("Session.GetTorrentFiles", |p, s, _| async move {
            let r: IdRequest = parse(&p)?;
            let files = s.files(&r.id).await.map_err(error)?;
            Ok::<_, ErrorObjectOwned>(FilesResponse {
                files: files.into_iter().map(file).collect(),
            })
        }),
    );
    ok(
        m.register_async_method("Session.GetTorrentFileStats", |p, s, _| async move {
            let r: IdRequest = parse(&p)?;
            let files = s.file_stats(&r.id).await.map_err(error)?;
            Ok::<_, ErrorObjectOwned>(FileStatsResponse {
                file_stats: files
                    .into_iter()
                    .map(|f| FileStats {
                        file: file(f.file),
                        bytes_completed: f.bytes_completed,
                    })
                    .collect(),
            })
        }),
    );
    ok(
        m.register_async_method("Session.GetMagnet", |p, s, _| async move {
            let r: IdRequest = parse(&p)?;
            let magnet = s.magnet(&r.id).await.map_err(error)?;
            Ok::<_, ErrorObjectOwned>(MagnetResponse { magnet })
        }),
    );
    ok(
        m.register_async_method("Session.GetTorrent", |p, s, _| async move {
            let r: IdRequest = parse(&p)?;
            let bytes = s.torrent_bytes(&r.id).await.map_err(error)?;
            Ok::<_, ErrorObjectOwned>(TorrentFileResponse {
                torrent: BASE64.encode(&bytes),
            })
        }),
    );
    ok(
        m.register_async_method("Session.StartTorrent", |p, s, _| async move {
            let r: IdRequest = parse(&p)?;
            empty(s.start(&r.id).await)
        }),
    );
    ok(
        m.register_async_method("Session.StopTorrent", |p, s, _| async move {
            let r: IdRequest = parse(&p)?;
            empty(s.stop(&r.id).await)
        }),
    );
    ok(
        m.register_async_method("Session.AnnounceTorrent", |p, s, _| async move {
            let r: IdRequest = parse(&p)?;
            empty(s.announce(&r.id).await)
        }),
    );
    ok(
        m.register_async_method("Session.VerifyTorrent", |p, s, _| async move {
            let r: IdRequest = parse(&p)?;
            empty(s.verify(&r.id).await)
        }),
    );
    ok(
        m.register_async_method("Session.StartAllTorrents", |_, s, _| async move {
            empty(s.start_all().await)
        }),
    );
    ok(
        m.register_async_method("Session.StopAllTorrents", |_, s, _| async move {
            empty(s.stop_all().await)
        }),
    );
    ok(
        m.register_async_method("Session.AddPeer", |p, s, _| async move {
            let r: AddPeerRequest = parse(&p)?;
            empty(s.add_peer(&r.id, &r.addr).await)
        }),
    );
    ok(
        m.register_async_method("Session.AddTracker", |p, s, _| async move {
            let r: AddTrackerRequest = parse(&p)?;
            empty(s.add_tracker(&r.id, &r.url).await)
        }),
    );
    ok(
        m.register_async_method("Session.MoveTorrent", move |p, s, _| {
            let token = token.clone();
            async move {
                let r: MoveTorrentRequest = parse(&p)?;
                empty(crate::server::move_torrent::send(&s, &r.id, &r.target, Some(&token)).await)
            }
        }),
    );
    m
}

/// Registration only fails on a duplicate name, which [`module`]'s list cannot have.
fn ok<T, E: std::fmt::Debug>(r: Result<T, E>) {
    r.map(drop).expect("method names are unique");
}

/// Parses rain's params object; a missing params member reads as `{}`.
fn parse<T: DeserializeOwned>(p: &Params<'_>) -> Reply<T> {
    if p.as_str().is_none() {
        return serde_json::from_str("{}").map_err(|e| invalid_params(&e));
    }
    p.parse()
        .map_err(|e| ErrorObjectOwned::owned(e.code(), e.message().to_owned(), None::<()>))
}

fn invalid_params(e: &serde_json::Error) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(
        jsonrpsee::types::error::INVALID_PARAMS_CODE,
        format!("invalid params: {e}"),
        None::<()>,
    )
}

fn empty(r: Result<(), SessionError>) -> Reply<Empty> {
    r.map(|()| Empty {}).map_err(error)
}

/// rain's error codes: 1 for an unknown torrent, 2 for bad input, -32000 for the rest.
pub fn error(e: SessionError) -> ErrorObjectOwned {
    match e {
        SessionError::NotFound(_) => {
            ErrorObjectOwned::owned(ERROR_TORRENT_NOT_FOUND, "torrent not found", None::<()>)
        }
        SessionError::InvalidTorrent(_)
        | SessionError::InvalidMagnet(_)
        | SessionError::Fetch { .. } => {
            ErrorObjectOwned::owned(ERROR_INPUT, e.to_string(), None::<()>)
        }
        e => other_error(&e.to_string()),
    }
}

fn input_error(msg: &str) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(ERROR_INPUT, format!("input error: {msg}"), None::<()>)
}

fn other_error(msg: &str) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(ERROR_OTHER, msg.to_owned(), None::<()>)
}

fn add_options(o: AddOptions) -> session::AddOptions {
    session::AddOptions {
        id: (!o.id.is_empty()).then_some(o.id),
        stopped: o.stopped,
        stop_after_download: o.stop_after_download,
        stop_after_metadata: o.stop_after_metadata,
    }
}

fn unix(secs: i64) -> Time {
    Time(
        u64::try_from(secs)
            .ok()
            .map(|s| UNIX_EPOCH + Duration::from_secs(s)),
    )
}

fn torrent(t: TorrentSummary) -> Torrent {
    Torrent {
        id: t.id,
        name: t.name,
        info_hash: t.info_hash.to_hex(),
        port: t.port,
        added_at: unix(t.added_at),
    }
}

fn file(f: session::FileEntry) -> File {
    File {
        path: f.path,
        length: f.length,
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// rain's `Stats` object from the session's view.
pub fn stats(t: &TorrentStats) -> Stats {
    let s = &t.stats;
    Stats {
        info_hash: t.info_hash.to_hex(),
        port: t.port,
        status: t.status.to_string(),
        error: t.error.clone().unwrap_or_default(),
        name: t.name.clone(),
        private: s.private,
        file_count: count(s.file_count),
        piece_length: s.piece_length,
        seeded_for: s.seeded_for,
        eta: s
            .eta
            .map_or(-1, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
        pieces: PieceStats {
            checked: s.pieces.checked,
            have: s.pieces.have,
            missing: s.pieces.missing,
            available: s.pieces.available,
            total: s.pieces.total,
        },
        bytes: ByteStats {
            total: s.bytes.total,
            padding: s.bytes.padding,
            allocated: s.bytes.allocated,
            completed: s.bytes.completed,
            incomplete: s.bytes.incomplete,
            downloaded: s.bytes.downloaded,
            uploaded: s.bytes.uploaded,
            wasted: s.bytes.wasted,
        },
        peers: direction(s.peers),
        handshakes: direction(s.handshakes),
        addresses: AddressStats {
            total: count(s.addresses.total),
            tracker: count(s.addresses.tracker),
            dht: count(s.addresses.dht),
            pex: count(s.addresses.pex),
        },
        downloads: DownloadStats {
            total: count(s.downloads.total),
            running: count(s.downloads.running),
            snubbed: count(s.downloads.snubbed),
            choked: count(s.downloads.choked),
        },
        metadata_downloads: MetadataDownloadStats {
            total: count(s.metadata_downloads.total),
            snubbed: count(s.metadata_downloads.snubbed),
            running: count(s.metadata_downloads.running),
        },
        speed: SpeedStats {
            download: s.speed.download,
            upload: s.speed.upload,
        },
    }
}

fn direction(p: rain_proto::torrent::PeerCounts) -> DirectionStats {
    DirectionStats {
        total: count(p.total),
        incoming: count(p.incoming),
        outgoing: count(p.outgoing),
    }
}

fn session_stats(s: &session::SessionStats) -> SessionStats {
    SessionStats {
        uptime: s.uptime.as_secs(),
        torrents: count(s.torrents),
        peers: count(s.peers),
        ports_available: count(s.ports_available),
        speed_download: s.speed_download,
        speed_upload: s.speed_upload,
        bytes_downloaded: s.bytes_downloaded,
        bytes_uploaded: s.bytes_uploaded,
        block_list_rules: u32::try_from(s.blocklist_rules).unwrap_or(u32::MAX),
        block_list_recency: s
            .blocklist_recency
            .map_or(-1, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
        read_cache_objects: count(s.read_cache_objects),
        read_cache_size: s.read_cache_size,
        read_cache_utilization: s.read_cache_utilization,
        reads_per_second: u32::try_from(s.reads_per_second).unwrap_or(u32::MAX),
        reads_active: count(s.reads_active),
        reads_pending: count(s.reads_pending),
        speed_read: s.speed_read,
        bytes_read: s.bytes_read,
        write_cache_objects: u32::try_from(s.write_cache_objects).unwrap_or(u32::MAX),
        write_cache_size: s.write_cache_size,
        write_cache_pending_keys: count(s.write_cache_pending_keys),
        ..SessionStats::default()
    }
}

fn tracker(s: &Session, t: &TrackerStatus) -> Tracker {
    let at = |i: Option<rain_proto::time::Instant>| Time(i.map(|i| s.system_time(i)));
    Tracker {
        url: t.url.clone(),
        status: t.status.to_string(),
        leechers: t.leechers,
        seeders: t.seeders,
        warning: t.warning.clone().unwrap_or_default(),
        error: t
            .error
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        error_unknown: matches!(t.error, Some(TrackerError::Transport(_))),
        error_internal: t
            .error
            .as_ref()
            .map(|e| format!("{e:?}"))
            .unwrap_or_default(),
        last_announce: at(t.last_announce),
        next_announce: at(t.next_announce),
    }
}

fn peer(s: &Session, p: &PeerView) -> Peer {
    Peer {
        id: HEXLOWER.encode(&p.peer_id.0),
        client: p.client.clone(),
        addr: p.addr.to_string(),
        source: p.source.as_str().to_owned(),
        connected_at: Time(Some(s.system_time(p.connected_at))),
        downloading: p.requests_out > 0,
        client_interested: p.am_interested,
        client_choking: p.am_choking,
        peer_interested: p.peer_interested,
        peer_choking: p.peer_choking,
        optimistic_unchoked: p.optimistic,
        snubbed: p.snubbed,
        encrypted_handshake: p.encrypted,
        encrypted_stream: p.encrypted,
        download_speed: p.download_speed,
        upload_speed: p.upload_speed,
    }
}
