//! Mainline DHT (BEP 5) as a pure state machine, with BEP 42 node ids, BEP 32 IPv6 and BEP 43
//! read-only mode.
//!
//! [`Dht`] is the machine: the driver feeds it datagrams, timeouts and commands, and sends the
//! datagrams it emits (see its doc comment for the driving loop). The parts, one per file:
//! - [`krpc`]: the KRPC message codec, strict on every field;
//! - [`node_id`]: 160-bit ids, XOR distance, BEP 42 id generation and verification;
//! - [`routing`]: k-buckets split around our id, node states, replacement caches, refresh,
//!   per-IP and per-subnet limits against Sybil/eclipse attacks;
//! - [`ip_voter`]: our external address, voted by distinct subnets from responses (BEP 42);
//! - [`lookup`]: one iterative `find_node`/`get_peers` lookup with bounded parallelism;
//! - [`token`]: announce tokens from rotating secrets;
//! - [`peer_store`]: peers announced to us, with expiry and limits;
//! - [`rate_limit`]: per-source and global incoming packet limits;
//! - `sim` (feature `test-util`): a pure in-memory network of many nodes for tests.
//!
//! Everything is bounded by named `max_*` limits ([`DhtConfig`]), all time is a `now` argument
//! and all randomness comes from the seed given to [`Dht::new`]: the same inputs always give
//! the same outputs.

pub mod ip_voter;
pub mod krpc;
pub mod lookup;
mod node;
pub mod node_id;
pub mod peer_store;
pub mod rate_limit;
pub mod routing;
#[cfg(any(test, feature = "test-util"))]
pub mod sim;
#[cfg(test)]
mod tests;
pub mod token;

pub use lookup::LookupId;
pub use node::{Dht, DhtConfig, DhtError, DhtEvent, DhtStats, Transmit};
pub use node_id::NodeId;
