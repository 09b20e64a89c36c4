//! Bencode (BEP 3): a zero-copy decoder with limits and a canonical encoder.
//!
//! Decoding borrows from the input: byte strings are slices of it, and every [`Value`] keeps
//! the exact bytes it was decoded from ([`Value::raw`]) and where they start
//! ([`Value::span`]). That is how the info-hash is computed: SHA-1 over the raw bytes of the
//! `info` value as they appeared in the file, never over a re-encoding.
//!
//! Limits ([`Limits`]): nesting depth, total input size, integers within `i64` with no leading
//! zeros and no `-0`, and string lengths checked against the input before anything is sliced.
//! In strict mode dictionary keys must be sorted and unique (canonical bencode); lenient mode
//! accepts unsorted and duplicate keys, as real-world torrents need, and lookups then return
//! the first occurrence.
//!
//! Encoding is canonical: [`Item`] keeps dictionaries in a `BTreeMap`, and [`Value::encode`]
//! sorts keys, so `encode(decode(x)) == x` for every canonical `x`.

mod decode;
mod encode;
mod value;

pub use decode::{Error, ErrorKind, Limits, decode, decode_prefix};
pub use encode::{Item, write_bytes, write_int};
pub use value::{Dict, Kind, Value};

#[cfg(test)]
mod tests;
