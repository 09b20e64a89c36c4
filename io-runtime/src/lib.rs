//! rain's runtime: the only place that touches the world (DESIGN.md §3).
//!
//! So far it holds the file-system side of torrent creation ([`create`]); the tokio driver,
//! storage, fast resume and the `Session` API arrive with the runtime issue.

pub mod create;
