use std::collections::BTreeMap;

use super::value::{Kind, Value};

/// An owned bencode value for building documents. Dictionaries are `BTreeMap`s, so the
/// encoding is always canonical (keys sorted, unique).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// An integer.
    Int(i64),
    /// A byte string.
    Bytes(Vec<u8>),
    /// A list.
    List(Vec<Item>),
    /// A dictionary with sorted keys.
    Dict(BTreeMap<Vec<u8>, Item>),
}

impl Item {
    /// An empty dictionary.
    pub fn dict() -> Self {
        Item::Dict(BTreeMap::new())
    }

    /// Inserts `key` into a dictionary item and returns it, for building by chaining.
    /// Does nothing if `self` is not a dictionary.
    #[must_use]
    pub fn with(mut self, key: &str, value: impl Into<Item>) -> Self {
        if let Item::Dict(d) = &mut self {
            d.insert(key.as_bytes().to_vec(), value.into());
        }
        self
    }

    /// Appends the canonical encoding to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Item::Int(i) => write_int(out, *i),
            Item::Bytes(b) => write_bytes(out, b),
            Item::List(items) => {
                out.push(b'l');
                for item in items {
                    item.encode(out);
                }
                out.push(b'e');
            }
            Item::Dict(entries) => {
                out.push(b'd');
                for (k, v) in entries {
                    write_bytes(out, k);
                    v.encode(out);
                }
                out.push(b'e');
            }
        }
    }

    /// The canonical encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

impl From<i64> for Item {
    fn from(i: i64) -> Self {
        Item::Int(i)
    }
}

impl From<&str> for Item {
    fn from(s: &str) -> Self {
        Item::Bytes(s.as_bytes().to_vec())
    }
}

impl From<String> for Item {
    fn from(s: String) -> Self {
        Item::Bytes(s.into_bytes())
    }
}

impl From<&[u8]> for Item {
    fn from(b: &[u8]) -> Self {
        Item::Bytes(b.to_vec())
    }
}

impl From<Vec<u8>> for Item {
    fn from(b: Vec<u8>) -> Self {
        Item::Bytes(b)
    }
}

impl From<Vec<Item>> for Item {
    fn from(items: Vec<Item>) -> Self {
        Item::List(items)
    }
}

/// Appends `i<n>e`.
pub fn write_int(out: &mut Vec<u8>, n: i64) {
    out.push(b'i');
    out.extend_from_slice(n.to_string().as_bytes());
    out.push(b'e');
}

/// Appends `<len>:<bytes>`.
pub fn write_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(b.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(b);
}

impl Value<'_> {
    /// Appends the canonical encoding of this value: dictionary keys sorted, and of duplicate
    /// keys only the first kept (the one lookups return).
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self.kind() {
            Kind::Int(i) => write_int(out, *i),
            Kind::Bytes(b) => write_bytes(out, b),
            Kind::List(items) => {
                out.push(b'l');
                for item in items {
                    item.encode(out);
                }
                out.push(b'e');
            }
            Kind::Dict(d) => {
                let mut entries: Vec<(&[u8], &Value<'_>)> = d.iter().collect();
                // A stable sort keeps the first of equal keys first.
                entries.sort_by(|a, b| a.0.cmp(b.0));
                entries.dedup_by(|later, first| later.0 == first.0);
                out.push(b'd');
                for (k, v) in entries {
                    write_bytes(out, k);
                    v.encode(out);
                }
                out.push(b'e');
            }
        }
    }

    /// This value as an owned [`Item`] (canonical: of duplicate keys the first is kept).
    pub fn to_item(&self) -> Item {
        match self.kind() {
            Kind::Int(i) => Item::Int(*i),
            Kind::Bytes(b) => Item::Bytes(b.to_vec()),
            Kind::List(items) => Item::List(items.iter().map(Value::to_item).collect()),
            Kind::Dict(d) => {
                let mut map = BTreeMap::new();
                for (k, v) in d.iter() {
                    map.entry(k.to_vec()).or_insert_with(|| v.to_item());
                }
                Item::Dict(map)
            }
        }
    }
}
