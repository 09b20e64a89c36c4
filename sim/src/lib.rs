//! Deterministic simulation of rain swarms (DESIGN.md §4).
//!
//! - [`net::TurmoilNet`]: the runtime's network trait over turmoil's simulated TCP, so every
//!   simulated host runs a real [`rain_runtime::session::Session`] (real torrent and peer
//!   tasks, real files and resume database in a temporary directory per host); with the
//!   network faults below the sockets: [`net::UdpChaos`] (datagrams lost, duplicated,
//!   reordered) and [`net::Nat`] (hosts nobody can dial).
//! - [`disk`]: disk faults (full, read errors, corrupt reads) under a host's real storage.
//! - [`throttle`]: bandwidth faults, a host's uplink as a token bucket in simulated time.
//! - [`content`]: torrents of random sizes, piece lengths and file layouts from a seed.
//! - [`evil`]: hosts that speak the wire protocol and serve corrupt blocks, stall, or flood
//!   requests.
//! - [`scenario`]: who is in the swarm and the fault plan (latency and jitter per link,
//!   partitions that heal, crashes with restart from the resume store, slow uplinks, lossy
//!   UDP, hosts behind a NAT), from one seed, on IPv4 or IPv6 ([`Scenario::ipv6`]); with [`Scenario::dht`], peers find each other through the DHT only (a bare DHT node
//!   on the host `router` to bootstrap from, and optionally DHT nodes that never answer); with
//!   [`Scenario::tracker`], through a UDP tracker on the host `tracker` (and the DHT if on).
//! - [`tracker`]: a minimal tracker (BEP 15 over UDP and BEP 3 over HTTP) that a turmoil
//!   host serves; with [`Scenario::http_tracker`] the torrent names its HTTP face.
//! - [`web`]: a BEP 19 webseed (a `Range`-capable file server that can misbehave), on the host
//!   `web` with [`Scenario::webseed`]; [`http_server`] is the HTTP/1.1 both speak.
//! - [`run`]: runs a scenario, checks liveness (every leecher completes within a simulated-time
//!   budget once the faults stop) and safety (every leecher's bytes equal the source, and
//!   [`safety`] checks on every host's statistics sample), and returns the event trace with
//!   its hash.
//!
//! - [`pure`]: the same [`Scenario`] values on proto-core's pure harnesses instead (no
//!   turmoil, no tokio; the clock jumps to the next deadline): the torrent swarm, and with
//!   [`Scenario::dht`] a discovery phase on the pure DHT network, for swarms of hundreds of
//!   peers and DHTs of a thousand nodes in seconds. It downloads the byte-identical torrent,
//!   checks every leecher's bytes, reports completion per host, simulated time, steps and a
//!   trace hash, and refuses with [`PureError::Unsupported`] what it cannot model (crashes,
//!   late joins, disk and UDP faults, flooding peers, IPv6, some webseed modes; the module
//!   documentation has the whole mapping).
//!
//! Every run prints its scenario, seed first; `RAIN_SIM_SEED=<seed>` replays one
//! ([`scenario::seed_from_env`]).
//!
//! One scenario, both ways:
//!
//! ```no_run
//! use rain_sim::{Scenario, run, seed_from_env};
//! let s = Scenario::new(seed_from_env(42)).leechers(3).corrupt_peers(1);
//! let turmoil = run(&s).unwrap_or_else(|e| panic!("{e}")); // real sessions over turmoil
//! let pure = s.run_pure().unwrap_or_else(|e| panic!("{e}")); // the pure harness
//! assert_eq!(turmoil.completed.len(), pure.completed.len());
//! ```
//!
//! (`tests/tests/swarm_pure.rs` does this, and runs 200-leecher swarms and a 1000-node DHT.)

pub mod content;
pub mod disk;
pub mod evil;
pub mod http_server;
pub mod net;
pub mod pure;
pub mod run;
pub mod safety;
pub mod scenario;
pub mod throttle;
pub mod tracker;
pub mod web;

pub use content::{Content, ContentSpec};
pub use net::{UdpChaos, UdpCounts};
pub use pure::{PureError, PureReport, Unsupported, run_pure};
pub use run::{HostReport, Outcome, SimError, TraceEvent, run};
pub use scenario::{Fault, HostId, Scenario, seed_from_env};
