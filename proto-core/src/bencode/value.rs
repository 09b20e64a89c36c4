use std::ops::Range;

/// A decoded bencode value, borrowing from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value<'a> {
    pub(super) offset: usize,
    pub(super) raw: &'a [u8],
    pub(super) kind: Kind<'a>,
}

/// What a [`Value`] holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind<'a> {
    /// `i…e`
    Int(i64),
    /// `<len>:<bytes>`
    Bytes(&'a [u8]),
    /// `l…e`
    List(Vec<Value<'a>>),
    /// `d…e`
    Dict(Dict<'a>),
}

/// A decoded dictionary: its entries in input order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dict<'a> {
    pub(super) entries: Vec<(&'a [u8], Value<'a>)>,
}

impl<'a> Value<'a> {
    /// The exact bytes this value was decoded from.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// Where [`Value::raw`] lies in the input given to the decoder.
    pub fn span(&self) -> Range<usize> {
        self.offset..self.offset + self.raw.len()
    }

    /// The value itself.
    pub fn kind(&self) -> &Kind<'a> {
        &self.kind
    }

    /// The integer, if this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self.kind {
            Kind::Int(i) => Some(i),
            _ => None,
        }
    }

    /// The byte string, if this is one.
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match self.kind {
            Kind::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The byte string as UTF-8, if this is a byte string holding valid UTF-8.
    pub fn as_str(&self) -> Option<&'a str> {
        self.as_bytes().and_then(|b| std::str::from_utf8(b).ok())
    }

    /// The list items, if this is a list.
    pub fn as_list(&self) -> Option<&[Value<'a>]> {
        match &self.kind {
            Kind::List(items) => Some(items),
            _ => None,
        }
    }

    /// The dictionary, if this is one.
    pub fn as_dict(&self) -> Option<&Dict<'a>> {
        match &self.kind {
            Kind::Dict(d) => Some(d),
            _ => None,
        }
    }

    /// Shorthand for `self.as_dict()?.get(key)`.
    pub fn get(&self, key: &[u8]) -> Option<&Value<'a>> {
        self.as_dict()?.get(key)
    }
}

impl<'a> Dict<'a> {
    /// The value of the first entry with this key.
    pub fn get(&self, key: &[u8]) -> Option<&Value<'a>> {
        self.entries.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The entries in input order.
    pub fn iter(&self) -> impl Iterator<Item = (&'a [u8], &Value<'a>)> {
        self.entries.iter().map(|(k, v)| (*k, v))
    }

    /// Number of entries, duplicates included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the dictionary has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
