//! rain's protocol core: every BitTorrent protocol as a pure, deterministic state machine.
//!
//! Nothing in this crate touches the world. There are no sockets, files, threads or clocks, and
//! no ambient randomness: time arrives as an [`time::Instant`] argument, randomness comes from a
//! [`rng::Rng`] seeded by whoever builds the machine, and every effect is returned to the caller
//! as data. The same inputs therefore always produce the same outputs, which is what lets rain
//! replay a whole swarm from a seed.
//!
//! # Embedding it
//!
//! An embedder supplies the *driver*: the code that owns sockets, files and the clock, tells a
//! machine what happened and does what it asks. rain's own driver is the tokio runtime
//! (`rain-runtime`); `proto-core/examples/blocking_download.rs` is a complete one in plain
//! `std` (one thread, non-blocking sockets, a poll loop) that downloads a torrent from one peer:
//! read it next to this page (`cargo run -p rain-proto --example blocking_download`).
//!
//! ## The machines
//!
//! | machine | one per | inputs | outputs |
//! |---|---|---|---|
//! | [`torrent::Torrent`] | torrent | peers connected and closed, decoded [`wire::Message`]s, disk, tracker and webseed results, commands | [`torrent::Action`], [`torrent::TorrentEvent`] |
//! | [`dht::Dht`] | session | UDP datagrams, lookups and announces | [`dht::Transmit`], [`dht::DhtEvent`] |
//! | [`tracker::udp::UdpTransaction`] | UDP announce or scrape | datagrams | datagrams, then its outcome |
//! | [`mse::MseHandshake`] | encrypted connection | received bytes | bytes to send, then an [`mse::Outcome`] |
//!
//! The rest are codecs and parts the driver calls directly: the peer handshake and framing
//! ([`wire::Handshake`], [`wire::Decoder`]), [`bencode`], [`metainfo`], [`magnet`], tracker
//! request building and parsing ([`tracker::http`]). The `Torrent` machine sees decoded
//! messages: connecting, MSE, the 68-byte handshake and framing are the driver's job.
//!
//! ## Inputs, outputs and the drain order
//!
//! The vocabulary is the same for every machine (DESIGN.md §2):
//! - inputs are `handle_*(now, …)` methods, plus commands such as [`torrent::Torrent::start`];
//! - after **every** input, drain the outputs: `poll_action()` (or `poll_transmit()`) until
//!   `None`, performing each, then `poll_event()` until `None`; repeat until both are empty,
//!   because performing an action may itself be an input (a piece written at once is reported
//!   with `handle_piece_written` in the middle of the drain);
//! - then ask `poll_timeout()` again (any input can change it) and wait for the next input or
//!   that deadline, whichever comes first; at the deadline call `handle_timeout(now)`. `None`
//!   means no timer is pending;
//! - decoders return [`Decode`]: complete (value and bytes used), incomplete, or invalid.
//!
//! Results may come back later and in any order (rain hashes pieces on a thread pool): the
//! machine keeps what it asked for until the matching `handle_*` arrives. Peer faults are never
//! `Err`: they become disconnects and events. (`handle_peer_connected` returning
//! [`Refused`](torrent::Refused) only means: close that connection.)
//!
//! ## Time and randomness
//!
//! [`time::Instant`] is nanoseconds since an epoch the driver picks: map a monotonic clock onto
//! it, e.g. `Instant::from_nanos(epoch.elapsed().as_nanos() as u64)`, and never go backwards.
//! Each machine takes an [`rng::Seed`] (or an [`rng::Rng`] to draw one from) when it is built
//! and draws from it alone (choking, piece ties, DHT ids and tokens, MSE keys, UDP transaction
//! ids); child machines are seeded from their parent, and [`wire::PeerId::generate`] takes one
//! too. Seed from the OS in production and from a fixed number to replay a run: given the
//! same seed and the same inputs at the same instants, a machine produces the same outputs.
//!
//! ## What the driver does with each torrent action
//!
//! - [`Send`](torrent::Action::Send): encode the message ([`wire::Message::encode`]) into that
//!   peer's bounded send buffer and write it as the socket accepts; a peer that stops reading
//!   can be closed like any other (below).
//! - [`Dial`](torrent::Action::Dial): connect (optionally MSE), exchange [`wire::Handshake`]s,
//!   check the info-hash, then `handle_peer_connected(now, PeerInfo)` — close the socket if it
//!   returns `Err` — or `handle_dial_failed(now, addr)`. Accepted connections are handshaked
//!   the same way with [`Direction::Incoming`](torrent::Direction::Incoming). After that, every
//!   frame from [`wire::Decoder`] goes to `handle_message`; end of stream, a socket error or an
//!   invalid frame closes the socket and is reported with `handle_peer_closed`.
//! - [`Disconnect`](torrent::Action::Disconnect): close the socket. The machine has already
//!   forgotten the key; do not report the close.
//! - [`ReadBlock`](torrent::Action::ReadBlock): read the bytes, then `handle_block_read`.
//! - [`VerifyAndWrite`](torrent::Action::VerifyAndWrite): lay the blocks out at
//!   [`picker::Layout::block`] offsets (bytes no block covers are padding: zeros), SHA-1 them
//!   ([`hash::sha1`]), write the piece if it matches, then `handle_piece_written` with
//!   `Ok(true)`, `Ok(false)` on a mismatch (nothing written) or `Err` if the write failed.
//! - [`Announce`](torrent::Action::Announce): HTTP or UDP announce, then
//!   `handle_announce_reply(now, request.id, result)`.
//! - [`WebseedRequest`](torrent::Action::WebseedRequest): HTTP GET of the byte range it names;
//!   feed the body, in order, to `handle_webseed_data`, or report `handle_webseed_failed`.
//! - [`WebseedCancel`](torrent::Action::WebseedCancel): abort that request; report nothing.
//!
//! Events are for the application: progress, [`Completed`](torrent::TorrentEvent::Completed),
//! and [`Stopped`](torrent::TorrentEvent::Stopped), the last word after a stop.
//!
//! ```no_run
//! use rain_proto::time::Instant;
//! use rain_proto::torrent::{Action, Torrent, TorrentEvent};
//!
//! /// Runs after every input to `t`.
//! fn drain(t: &mut Torrent, now: Instant) {
//!     loop {
//!         let mut any = false;
//!         while let Some(action) = t.poll_action() {
//!             any = true;
//!             match action {
//!                 Action::Send { .. } => { /* queue the bytes on the peer's socket */ }
//!                 Action::Dial { .. } => { /* connect and handshake, report later */ }
//!                 Action::Disconnect { .. } => { /* close the socket, report nothing */ }
//!                 Action::ReadBlock { .. } => { /* read, then t.handle_block_read(..) */ }
//!                 Action::VerifyAndWrite { piece, .. } => {
//!                     // hash, write, then report (at once here, or at a later input):
//!                     t.handle_piece_written(now, piece, Ok(true));
//!                 }
//!                 Action::Announce { .. } => { /* ask the tracker, report later */ }
//!                 Action::WebseedRequest(_) => { /* HTTP range GET, feed the body */ }
//!                 Action::WebseedCancel { .. } => { /* abort that GET */ }
//!             }
//!         }
//!         while let Some(event) = t.poll_event() {
//!             any = true;
//!             if let TorrentEvent::Stopped { error } = event {
//!                 println!("stopped: {error:?}");
//!             }
//!         }
//!         if !any {
//!             return;
//!         }
//!     }
//! }
//! ```
//!
//! Modules present so far:
//! - [`bencode`]: zero-copy decoder with limits, canonical encoder;
//! - [`metainfo`]: `.torrent` reading, validation, safe file paths, creation;
//! - [`magnet`]: BEP 9 magnet links, parse and format;
//! - [`dht`]: Mainline DHT node (BEP 5/32/42/43): KRPC, routing, lookups, tokens, peer store;
//! - [`hash`]: info-hashes and SHA-1 helpers;
//! - [`tracker`]: HTTP and UDP tracker protocols and the BEP 12 announcer;
//! - [`bitfield`]: compact piece bitfields, BEP 3 wire bytes;
//! - [`picker`]: piece picker (rarest first, endgame, priorities, sequential);
//! - [`blocklist`]: IP range blocklist (CIDR and P2P lines), binary-search lookup;
//! - [`address_book`]: per-torrent peer addresses, BEP 40 dial order, backoff, bans;
//! - [`choker`]: upload slots (regular by rate, optimistic rotation);
//! - [`speed`]: 1-minute EWMA rate meters;
//! - [`wire`]: peer handshake, BEP 3/6/10 message framing, peer ids, allowed-fast sets;
//! - [`mse`]: Message Stream Encryption handshake machines, RC4, encryption policy;
//! - [`extension`]: BEP 10 extension handshake, ut_metadata, ut_pex;
//! - [`torrent`]: the `Torrent` machine (one torrent's swarm logic) and its swarm harness.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod address_book;
pub mod bencode;
pub mod bitfield;
pub mod blocklist;
pub mod choker;
mod decode;
pub mod dht;
pub mod extension;
pub mod hash;
pub mod magnet;
pub mod metainfo;
pub mod mse;
pub mod picker;
pub mod rng;
pub mod speed;
pub mod time;
pub mod torrent;
pub mod tracker;
pub mod webseed;
pub mod wire;

#[cfg(any(test, feature = "test-util"))]
pub mod fuzz;

pub use decode::Decode;
pub use hash::InfoHash;
