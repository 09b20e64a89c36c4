//! rain's protocol core: every BitTorrent protocol as a pure, deterministic state machine.
//!
//! Nothing in this crate touches the world. There are no sockets, files, threads or clocks, and
//! no ambient randomness: time arrives as an [`time::Instant`] argument, randomness comes from a
//! [`rng::Rng`] seeded by whoever builds the machine, and every effect is returned to the caller
//! as data. The same inputs therefore always produce the same outputs, which is what lets rain
//! replay a whole swarm from a seed.
//!
//! The vocabulary is the same for every machine (DESIGN.md §2):
//! - inputs are `handle_*(now, …)` methods;
//! - outputs are drained after every input with `poll_action()`, `poll_event()` and
//!   `poll_timeout()` until they return `None`;
//! - decoders return [`Decode`]: complete (value and bytes used), incomplete, or invalid.
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
pub mod wire;

#[cfg(any(test, feature = "test-util"))]
pub mod fuzz;

pub use decode::Decode;
pub use hash::InfoHash;
