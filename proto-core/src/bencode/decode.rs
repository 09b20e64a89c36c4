use super::value::{Dict, Kind, Value};
use crate::Decode;

/// Limits applied while decoding. Every one of them bounds work or memory an attacker controls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Deepest nesting of lists and dictionaries accepted.
    pub max_depth: usize,
    /// Largest input accepted, in bytes.
    pub max_size: usize,
    /// Reject non-canonical dictionaries (unsorted or duplicate keys).
    pub strict: bool,
    /// Most values (integers, strings, lists, dictionaries) in one document: each becomes a
    /// heap node many times the size of its 2-byte encoding, so the size limit alone would let
    /// a small input claim a lot of memory.
    pub max_tokens: usize,
}

impl Limits {
    /// Default nesting limit: far deeper than any real document, far shallower than the stack.
    pub const DEFAULT_MAX_DEPTH: usize = 64;
    /// Default size limit (the default `max-metadata-size`, 30 MiB).
    pub const DEFAULT_MAX_SIZE: usize = 30 * 1024 * 1024;
    /// Default value-count limit: a torrent of 100 000 files needs about 600 000.
    pub const DEFAULT_MAX_TOKENS: usize = 1 << 20;

    /// Lenient decoding with the default limits.
    pub const fn lenient() -> Self {
        Limits {
            max_depth: Self::DEFAULT_MAX_DEPTH,
            max_size: Self::DEFAULT_MAX_SIZE,
            strict: false,
            max_tokens: Self::DEFAULT_MAX_TOKENS,
        }
    }

    /// Strict (canonical-only) decoding with the default limits.
    pub const fn strict() -> Self {
        Limits {
            strict: true,
            ..Self::lenient()
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::lenient()
    }
}

/// A decoding error: what went wrong and at which byte offset of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{kind} at byte {offset}")]
pub struct Error {
    /// What went wrong.
    pub kind: ErrorKind,
    /// Offset of the offending byte in the input.
    pub offset: usize,
}

/// The kinds of [`Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The input ended inside a value.
    #[error("unexpected end of input")]
    UnexpectedEnd,
    /// A byte that cannot start or continue a value here.
    #[error("unexpected byte 0x{0:02x}")]
    UnexpectedByte(u8),
    /// Lists and dictionaries nest deeper than [`Limits::max_depth`].
    #[error("nesting deeper than the limit")]
    TooDeep,
    /// The input is larger than [`Limits::max_size`].
    #[error("input larger than the limit")]
    TooLarge,
    /// The input holds more values than [`Limits::max_tokens`].
    #[error("more values than the limit")]
    TooManyTokens,
    /// An integer outside the `i64` range.
    #[error("integer out of range")]
    IntegerOverflow,
    /// An integer (or string length) written with leading zeros.
    #[error("leading zero in a number")]
    LeadingZero,
    /// The integer `-0`.
    #[error("negative zero")]
    NegativeZero,
    /// `ie` or `i-e`.
    #[error("integer with no digits")]
    EmptyInteger,
    /// A string whose declared length runs past the end of the input.
    #[error("string length beyond the end of the input")]
    StringTooLong,
    /// A dictionary key that is not a byte string.
    #[error("dictionary key is not a string")]
    KeyNotString,
    /// Strict mode: keys out of order.
    #[error("dictionary keys not sorted")]
    UnsortedKeys,
    /// Strict mode: the same key twice.
    #[error("duplicate dictionary key")]
    DuplicateKey,
    /// Bytes left over after the top-level value.
    #[error("trailing data after the value")]
    TrailingData,
}

/// Decodes exactly one value that must fill the whole input.
pub fn decode<'a>(input: &'a [u8], limits: &Limits) -> Result<Value<'a>, Error> {
    let value = Decoder::new(input, limits)?.value(0)?;
    let end = value.offset + value.raw.len();
    if end != input.len() {
        return Err(Error {
            kind: ErrorKind::TrailingData,
            offset: end,
        });
    }
    Ok(value)
}

/// Decodes the value at the start of `input`, which may be followed by other bytes or may
/// still be arriving.
pub fn decode_prefix<'a>(input: &'a [u8], limits: &Limits) -> Decode<Value<'a>, Error> {
    let result = Decoder::new(input, limits).and_then(|mut d| d.value(0));
    match result {
        Ok(value) => {
            let used = value.raw.len();
            Decode::Complete { value, used }
        }
        Err(Error {
            kind: ErrorKind::UnexpectedEnd | ErrorKind::StringTooLong,
            ..
        }) => Decode::Incomplete,
        Err(e) => Decode::Invalid(e),
    }
}

struct Decoder<'a, 'l> {
    input: &'a [u8],
    pos: usize,
    limits: &'l Limits,
    tokens: usize,
}

impl<'a, 'l> Decoder<'a, 'l> {
    fn new(input: &'a [u8], limits: &'l Limits) -> Result<Self, Error> {
        if input.len() > limits.max_size {
            return Err(Error {
                kind: ErrorKind::TooLarge,
                offset: limits.max_size,
            });
        }
        Ok(Decoder {
            input,
            pos: 0,
            limits,
            tokens: 0,
        })
    }

    fn err(&self, kind: ErrorKind) -> Error {
        Error {
            kind,
            offset: self.pos,
        }
    }

    fn peek(&self) -> Result<u8, Error> {
        self.input
            .get(self.pos)
            .copied()
            .ok_or(self.err(ErrorKind::UnexpectedEnd))
    }

    fn value(&mut self, depth: usize) -> Result<Value<'a>, Error> {
        let start = self.pos;
        self.tokens += 1;
        if self.tokens > self.limits.max_tokens {
            return Err(self.err(ErrorKind::TooManyTokens));
        }
        let kind = match self.peek()? {
            b'i' => {
                self.pos += 1;
                Kind::Int(self.integer()?)
            }
            b'0'..=b'9' => Kind::Bytes(self.string()?),
            b'l' => {
                if depth >= self.limits.max_depth {
                    return Err(self.err(ErrorKind::TooDeep));
                }
                self.pos += 1;
                let mut items = Vec::new();
                while self.peek()? != b'e' {
                    items.push(self.value(depth + 1)?);
                }
                self.pos += 1;
                Kind::List(items)
            }
            b'd' => {
                if depth >= self.limits.max_depth {
                    return Err(self.err(ErrorKind::TooDeep));
                }
                self.pos += 1;
                Kind::Dict(self.dict(depth)?)
            }
            other => return Err(self.err(ErrorKind::UnexpectedByte(other))),
        };
        Ok(Value {
            offset: start,
            raw: &self.input[start..self.pos],
            kind,
        })
    }

    fn dict(&mut self, depth: usize) -> Result<Dict<'a>, Error> {
        let mut entries: Vec<(&'a [u8], Value<'a>)> = Vec::new();
        while self.peek()? != b'e' {
            let key_at = self.pos;
            if !self.peek()?.is_ascii_digit() {
                return Err(self.err(ErrorKind::KeyNotString));
            }
            let key = self.string()?;
            if self.limits.strict
                && let Some((prev, _)) = entries.last()
            {
                let kind = match (*prev).cmp(key) {
                    std::cmp::Ordering::Less => None,
                    std::cmp::Ordering::Equal => Some(ErrorKind::DuplicateKey),
                    std::cmp::Ordering::Greater => Some(ErrorKind::UnsortedKeys),
                };
                if let Some(kind) = kind {
                    return Err(Error {
                        kind,
                        offset: key_at,
                    });
                }
            }
            let value = self.value(depth + 1)?;
            entries.push((key, value));
        }
        self.pos += 1;
        Ok(Dict { entries })
    }

    /// Parses decimal digits up to `end`, which is consumed. Leading zeros are refused; a
    /// value past `u64` is `overflow`. Returns the value and whether any digit was seen.
    fn digits(&mut self, end: u8, overflow: ErrorKind) -> Result<(u64, bool), Error> {
        let start = self.pos;
        let mut value: u64 = 0;
        loop {
            match self.peek()? {
                b if b == end => break,
                b @ b'0'..=b'9' => {
                    if self.pos > start && self.input[start] == b'0' {
                        return Err(Error {
                            kind: ErrorKind::LeadingZero,
                            offset: start,
                        });
                    }
                    value = value
                        .checked_mul(10)
                        .and_then(|v| v.checked_add(u64::from(b - b'0')))
                        .ok_or(Error {
                            kind: overflow,
                            offset: start,
                        })?;
                    self.pos += 1;
                }
                other => return Err(self.err(ErrorKind::UnexpectedByte(other))),
            }
        }
        let any = self.pos > start;
        self.pos += 1; // `end`
        Ok((value, any))
    }

    /// Parses an integer after `i`, through the closing `e`.
    fn integer(&mut self) -> Result<i64, Error> {
        let negative = self.peek()? == b'-';
        if negative {
            self.pos += 1;
        }
        let digits_at = self.pos;
        let (magnitude, any) = self.digits(b'e', ErrorKind::IntegerOverflow)?;
        if !any {
            return Err(Error {
                kind: ErrorKind::EmptyInteger,
                offset: digits_at,
            });
        }
        let overflow = Error {
            kind: ErrorKind::IntegerOverflow,
            offset: digits_at,
        };
        if negative {
            if magnitude == 0 {
                return Err(Error {
                    kind: ErrorKind::NegativeZero,
                    offset: digits_at,
                });
            }
            if magnitude > i64::MIN.unsigned_abs() {
                return Err(overflow);
            }
            Ok((magnitude as i64).wrapping_neg())
        } else {
            i64::try_from(magnitude).map_err(|_| overflow)
        }
    }

    /// Parses `<len>:<bytes>`, checking the length against the remaining input first.
    fn string(&mut self) -> Result<&'a [u8], Error> {
        let len_at = self.pos;
        let (len, _) = self.digits(b':', ErrorKind::StringTooLong)?;
        let remaining = self.input.len() - self.pos;
        let Some(len) = usize::try_from(len).ok().filter(|l| *l <= remaining) else {
            return Err(Error {
                kind: ErrorKind::StringTooLong,
                offset: len_at,
            });
        };
        let s = &self.input[self.pos..self.pos + len];
        self.pos += len;
        Ok(s)
    }
}
