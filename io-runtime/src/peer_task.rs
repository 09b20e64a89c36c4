//! The task that owns one peer connection after its handshake: it registers the peer with its
//! torrent task, forwards decoded messages to it over the torrent's bounded inbox (a full
//! inbox stops this task from reading: backpressure reaches the socket) and writes the
//! messages the torrent sends it, batching what is queued into one write.

use std::net::SocketAddr;

use rain_proto::picker::PeerKey;
use rain_proto::torrent::{Direction, PeerInfo};
use rain_proto::wire::Message;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};

use crate::peer::Connection;
use crate::rate_limit::{SpeedLimits, charge};
use crate::torrent_task::Input;

/// Most queued messages encoded into one socket write.
pub const MAX_WRITE_BATCH: usize = 64;

/// What the torrent task answers to a registration: the peer's key and its outbox, or
/// `None` when the machine refused the connection.
pub(crate) type Registration = Option<(PeerKey, mpsc::Receiver<Message>)>;

/// Registers a handshaked connection with the torrent task, then runs it until either side
/// closes it. Piece data is charged to the session's speed limits: received blocks before
/// the next read, sent ones before the write.
pub(crate) async fn run_handshaked<S>(
    mut conn: Connection<S>,
    addr: SocketAddr,
    direction: Direction,
    inbox: mpsc::Sender<Input>,
    speed: SpeedLimits,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let info = PeerInfo {
        addr,
        direction,
        peer_id: conn.remote.peer_id,
        reserved: conn.remote.reserved,
        encrypted: conn.remote.encrypted_stream,
    };
    let (reply, answer) = oneshot::channel();
    if inbox.send(Input::Handshaked { info, reply }).await.is_err() {
        return;
    }
    let Ok(Some((key, mut outbox))) = answer.await else {
        return;
    };
    let mut batch = Vec::with_capacity(MAX_WRITE_BATCH);
    // Reading and writing take turns at priority: deterministic (a simulation replays the
    // same order, which an unbiased `select!` with the runtime's RNG would not), and neither
    // direction starves the other when both are always ready.
    let mut read_first = true;
    loop {
        let event = if read_first {
            tokio::select! {
                biased;
                read = conn.read_message() => Event::Read(read),
                next = outbox.recv() => Event::Write(next),
            }
        } else {
            tokio::select! {
                biased;
                next = outbox.recv() => Event::Write(next),
                read = conn.read_message() => Event::Read(read),
            }
        };
        read_first = !read_first;
        match event {
            Event::Read(read) => {
                let Ok(message) = read else {
                    let _ = inbox.send(Input::Closed(key)).await;
                    return;
                };
                if let Message::Piece { data, .. } = &message {
                    charge(speed.download.as_deref(), data.len()).await;
                }
                if inbox.send(Input::Message(key, message)).await.is_err() {
                    return;
                }
            }
            Event::Write(next) => {
                // `None`: the torrent disconnected this peer; dropping the connection closes it.
                let Some(message) = next else { return };
                batch.clear();
                batch.push(message);
                while batch.len() < MAX_WRITE_BATCH {
                    match outbox.try_recv() {
                        Ok(m) => batch.push(m),
                        Err(_) => break,
                    }
                }
                let piece_bytes = batch
                    .iter()
                    .map(|m| match m {
                        Message::Piece { data, .. } => data.len(),
                        _ => 0,
                    })
                    .sum();
                charge(speed.upload.as_deref(), piece_bytes).await;
                if conn.send(&batch).await.is_err() {
                    let _ = inbox.send(Input::Closed(key)).await;
                    return;
                }
            }
        }
    }
}

/// What woke the peer task.
enum Event<R> {
    /// A message was read (or the connection failed).
    Read(R),
    /// The torrent queued a message (`None`: it dropped the peer).
    Write(Option<Message>),
}
