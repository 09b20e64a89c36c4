//! The hook through which torrent tasks reach trackers.
//!
//! A torrent machine emits [`Action::Announce`](rain_proto::torrent::Action::Announce); the
//! torrent task hands it to the session's [`Announcer`] and feeds the answer back. The HTTP/UDP
//! transport ([`TrackerClient`], http/https/udp) plugs in here; [`NoAnnouncer`] answers every
//! request with [`TrackerError::UnsupportedUrl`], for sessions that use manual peers only.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use rain_proto::blocklist::Blocklist;

use rain_proto::tracker::{Announce, AnnounceReply, TrackerError};

use crate::net::Network;
use crate::tracker_client::TrackerClient;

/// The future an [`Announcer`] returns.
pub type AnnounceFuture<'a> =
    Pin<Box<dyn Future<Output = Result<AnnounceReply, TrackerError>> + Send + 'a>>;

/// Performs tracker announces for every torrent of a session.
pub trait Announcer: Send + Sync + fmt::Debug + 'static {
    /// Announces `announce` to the tracker at `url`, echoing `tracker_id` (HTTP `trackerid`)
    /// when the tracker gave one. The torrent task bounds the whole call with
    /// `tracker-http-timeout`. `private` is the torrent's BEP 27 flag (private user agent).
    fn announce<'a>(
        &'a self,
        url: &'a str,
        announce: &'a Announce,
        tracker_id: Option<&'a [u8]>,
        private: bool,
    ) -> AnnounceFuture<'a>;

    /// Replaces the IP blocklist that tracker hosts are checked against (the session calls
    /// it with each loaded list when `blocklist-enabled-for-trackers` is set). Transports
    /// that resolve no hosts ignore it.
    fn set_blocklist(&self, _list: Option<Arc<Blocklist>>) {}
}

impl<N: Network + fmt::Debug> Announcer for TrackerClient<N> {
    fn announce<'a>(
        &'a self,
        url: &'a str,
        announce: &'a Announce,
        tracker_id: Option<&'a [u8]>,
        private: bool,
    ) -> AnnounceFuture<'a> {
        Box::pin(TrackerClient::announce(
            self, url, announce, tracker_id, private,
        ))
    }

    fn set_blocklist(&self, list: Option<Arc<Blocklist>>) {
        self.blocklist().set(list);
    }
}

/// An announcer without any transport: every URL is "unsupported".
#[derive(Debug, Clone, Copy, Default)]
pub struct NoAnnouncer;

impl Announcer for NoAnnouncer {
    fn announce<'a>(
        &'a self,
        url: &'a str,
        _announce: &'a Announce,
        _tracker_id: Option<&'a [u8]>,
        _private: bool,
    ) -> AnnounceFuture<'a> {
        Box::pin(async move { Err(TrackerError::UnsupportedUrl(url.to_owned())) })
    }
}
