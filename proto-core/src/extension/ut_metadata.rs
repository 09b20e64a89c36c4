//! BEP 9 `ut_metadata`: the info dictionary exchanged in 16 KiB pieces, and an assembler that
//! collects the pieces and accepts the result only if its SHA-1 is the info-hash.
//!
//! Messages are a bencoded dictionary (`msg_type` 0 request, 1 data, 2 reject; `piece`;
//! `total_size` on data) followed, for data, by the raw piece bytes.

use bytes::Bytes;

use crate::Decode;
use crate::bencode::{self, Item, Value};
use crate::hash::InfoHash;

/// Metadata piece size; every piece but the last has exactly this length.
pub const PIECE_LEN: usize = 16 * 1024;

/// Rain's default `max-metadata-size` (30 MiB).
pub const DEFAULT_MAX_METADATA_SIZE: u64 = 30 * 1024 * 1024;

/// One `ut_metadata` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataMessage {
    /// Asks for a piece.
    Request {
        /// Piece index.
        piece: u32,
    },
    /// A piece.
    Data {
        /// Piece index.
        piece: u32,
        /// Size of the whole info dictionary.
        total_size: u64,
        /// The piece bytes (a slice of the received payload).
        data: Bytes,
    },
    /// The sender will not serve this piece.
    Reject {
        /// Piece index.
        piece: u32,
    },
    /// A `msg_type` this version does not know; BEP 9 says to ignore it.
    Unknown {
        /// The `msg_type` value.
        msg_type: i64,
    },
}

/// Why a payload is not a `ut_metadata` message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    /// Not a bencoded dictionary at the start.
    #[error("invalid bencode: {0}")]
    Bencode(bencode::Error),
    /// The dictionary ends past the payload.
    #[error("truncated message")]
    Truncated,
    /// Not a dictionary, or `msg_type`/`piece`/`total_size` missing or out of range.
    #[error("missing or invalid field {0}")]
    BadField(&'static str),
    /// A data message carrying more than [`PIECE_LEN`] bytes.
    #[error("data piece of {0} bytes is larger than 16 KiB")]
    PieceTooLarge(usize),
}

fn field<T: TryFrom<i64>>(v: &Value<'_>, key: &'static str) -> Result<T, MetadataError> {
    v.get(key.as_bytes())
        .and_then(Value::as_int)
        .and_then(|i| T::try_from(i).ok())
        .ok_or(MetadataError::BadField(key))
}

impl MetadataMessage {
    /// Decodes the payload of an extended message (after the extended id byte).
    pub fn decode(payload: &Bytes) -> Result<Self, MetadataError> {
        let limits = bencode::Limits {
            max_depth: 4,
            max_size: payload.len(),
            strict: false,
            max_tokens: bencode::Limits::DEFAULT_MAX_TOKENS,
        };
        let (dict, used) = match bencode::decode_prefix(payload, &limits) {
            Decode::Complete { value, used } => (value, used),
            Decode::Incomplete => return Err(MetadataError::Truncated),
            Decode::Invalid(e) => return Err(MetadataError::Bencode(e)),
        };
        if dict.as_dict().is_none() {
            return Err(MetadataError::BadField("msg_type"));
        }
        let msg_type: i64 = field(&dict, "msg_type")?;
        let piece = || field::<u32>(&dict, "piece");
        Ok(match msg_type {
            0 => MetadataMessage::Request { piece: piece()? },
            1 => {
                let data = payload.slice(used..);
                if data.len() > PIECE_LEN {
                    return Err(MetadataError::PieceTooLarge(data.len()));
                }
                MetadataMessage::Data {
                    piece: piece()?,
                    total_size: field(&dict, "total_size")?,
                    data,
                }
            }
            2 => MetadataMessage::Reject { piece: piece()? },
            other => MetadataMessage::Unknown { msg_type: other },
        })
    }

    /// Appends the payload (dictionary, then data for a data message) to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let (msg_type, piece) = match self {
            MetadataMessage::Request { piece } => (0, *piece),
            MetadataMessage::Data { piece, .. } => (1, *piece),
            MetadataMessage::Reject { piece } => (2, *piece),
            MetadataMessage::Unknown { msg_type } => {
                Item::dict().with("msg_type", *msg_type).encode(out);
                return;
            }
        };
        let mut d = Item::dict()
            .with("msg_type", msg_type)
            .with("piece", i64::from(piece));
        if let MetadataMessage::Data {
            total_size, data, ..
        } = self
        {
            d = d.with("total_size", i64::try_from(*total_size).unwrap_or(i64::MAX));
            d.encode(out);
            out.extend_from_slice(data);
        } else {
            d.encode(out);
        }
    }
}

/// Number of pieces of metadata of `size` bytes.
pub fn piece_count(size: usize) -> u32 {
    size.div_ceil(PIECE_LEN) as u32
}

/// The bytes of piece `piece` of `info`, for serving a request; `None` when out of range.
pub fn piece_of(info: &[u8], piece: u32) -> Option<&[u8]> {
    let start = (piece as usize).checked_mul(PIECE_LEN)?;
    if start >= info.len() {
        return None;
    }
    Some(&info[start..info.len().min(start + PIECE_LEN)])
}

/// Something a metadata source did wrong. The torrent closes that peer and goes on elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MetadataFault {
    /// The announced size is zero.
    #[error("metadata size is zero")]
    Empty,
    /// The announced size exceeds `max-metadata-size`.
    #[error("metadata size {size} exceeds the limit of {max}")]
    TooLarge {
        /// Announced size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// A data message's `total_size` differs from the size being assembled.
    #[error("total_size {got} differs from the announced {expected}")]
    SizeMismatch {
        /// Size being assembled.
        expected: u64,
        /// Size in the message.
        got: u64,
    },
    /// A piece index past the end.
    #[error("piece {0} out of range")]
    PieceOutOfRange(u32),
    /// A piece whose length is not the expected one.
    #[error("piece {piece} has {got} bytes, expected {expected}")]
    WrongPieceLength {
        /// Piece index.
        piece: u32,
        /// Expected length.
        expected: usize,
        /// Received length.
        got: usize,
    },
    /// All pieces arrived but their SHA-1 is not the info-hash. The assembler starts over.
    #[error("metadata does not match the info-hash")]
    HashMismatch,
}

/// Collects metadata pieces into the info dictionary.
#[derive(Debug, Clone)]
pub struct MetadataAssembler {
    info_hash: InfoHash,
    buf: Vec<u8>,
    have: Vec<bool>,
    received: u32,
}

impl MetadataAssembler {
    /// An assembler for metadata of `size` bytes (a peer's `metadata_size`), refusing sizes
    /// above `max_metadata_size` before allocating anything.
    pub fn new(
        info_hash: InfoHash,
        size: u64,
        max_metadata_size: u64,
    ) -> Result<Self, MetadataFault> {
        if size == 0 {
            return Err(MetadataFault::Empty);
        }
        let too_large = MetadataFault::TooLarge {
            size,
            max: max_metadata_size,
        };
        if size > max_metadata_size {
            return Err(too_large);
        }
        let size = usize::try_from(size).map_err(|_| too_large)?;
        Ok(MetadataAssembler {
            info_hash,
            buf: vec![0; size],
            have: vec![false; piece_count(size) as usize],
            received: 0,
        })
    }

    /// Total metadata size.
    pub fn size(&self) -> usize {
        self.buf.len()
    }

    /// Number of pieces.
    pub fn piece_count(&self) -> u32 {
        self.have.len() as u32
    }

    /// The exact length piece `piece` must have.
    pub fn piece_len(&self, piece: u32) -> Option<usize> {
        piece_of(&self.buf, piece).map(<[u8]>::len)
    }

    /// Pieces not received yet, in order.
    pub fn missing(&self) -> impl Iterator<Item = u32> + '_ {
        self.have
            .iter()
            .enumerate()
            .filter(|(_, h)| !**h)
            .map(|(i, _)| i as u32)
    }

    /// Adds a received piece. Returns the whole info dictionary once every piece is in and
    /// its SHA-1 matches; on [`MetadataFault::HashMismatch`] all pieces are dropped so the
    /// download can start over from other peers.
    pub fn add(
        &mut self,
        piece: u32,
        total_size: u64,
        data: &[u8],
    ) -> Result<Option<Vec<u8>>, MetadataFault> {
        if total_size != self.buf.len() as u64 {
            return Err(MetadataFault::SizeMismatch {
                expected: self.buf.len() as u64,
                got: total_size,
            });
        }
        let expected = self
            .piece_len(piece)
            .ok_or(MetadataFault::PieceOutOfRange(piece))?;
        if data.len() != expected {
            return Err(MetadataFault::WrongPieceLength {
                piece,
                expected,
                got: data.len(),
            });
        }
        let start = piece as usize * PIECE_LEN;
        self.buf[start..start + expected].copy_from_slice(data);
        if !self.have[piece as usize] {
            self.have[piece as usize] = true;
            self.received += 1;
        }
        if self.received < self.piece_count() {
            return Ok(None);
        }
        if InfoHash::of(&self.buf) != self.info_hash {
            self.have.fill(false);
            self.received = 0;
            return Err(MetadataFault::HashMismatch);
        }
        Ok(Some(std::mem::take(&mut self.buf)))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn info(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7) as u8).collect()
    }

    #[test]
    fn messages_round_trip() {
        let msgs = [
            MetadataMessage::Request { piece: 3 },
            MetadataMessage::Reject { piece: 0 },
            MetadataMessage::Data {
                piece: 1,
                total_size: 20000,
                data: Bytes::from(info(20000 - PIECE_LEN)),
            },
            MetadataMessage::Unknown { msg_type: 9 },
        ];
        for m in msgs {
            let mut out = Vec::new();
            m.encode(&mut out);
            assert_eq!(MetadataMessage::decode(&Bytes::from(out)).unwrap(), m);
        }
        let mut out = Vec::new();
        MetadataMessage::Request { piece: 3 }.encode(&mut out);
        assert_eq!(out, b"d8:msg_typei0e5:piecei3ee");
    }

    #[test]
    fn data_is_a_slice_of_the_payload() {
        let payload = Bytes::from_static(b"d8:msg_typei1e5:piecei0e10:total_sizei3eeabc");
        let MetadataMessage::Data { data, .. } = MetadataMessage::decode(&payload).unwrap() else {
            panic!("not data");
        };
        assert_eq!(&data[..], b"abc");
        assert_eq!(
            data.as_ptr() as usize,
            payload.as_ptr() as usize + payload.len() - 3
        );
    }

    #[test]
    fn malformed_messages_are_errors() {
        let bad: &[&[u8]] = &[
            b"",
            b"d8:msg_typei0e",
            b"le",
            b"d5:piecei0ee",
            b"d8:msg_typei0e5:piecei-1ee",
            b"d8:msg_typei1e5:piecei0ee",
            b"d8:msg_typei1e5:piecei0e10:total_sizei-3ee",
            b"x",
        ];
        for b in bad {
            assert!(
                MetadataMessage::decode(&Bytes::from_static(b)).is_err(),
                "{:?}",
                String::from_utf8_lossy(b)
            );
        }
        let mut big = b"d8:msg_typei1e5:piecei0e10:total_sizei99999ee".to_vec();
        big.resize(big.len() + PIECE_LEN + 1, 0);
        assert_eq!(
            MetadataMessage::decode(&Bytes::from(big)),
            Err(MetadataError::PieceTooLarge(PIECE_LEN + 1))
        );
    }

    #[test]
    fn assembles_and_checks_the_hash() {
        let meta = info(2 * PIECE_LEN + 100);
        let ih = InfoHash::of(&meta);
        let size = meta.len() as u64;
        let mut a = MetadataAssembler::new(ih, size, DEFAULT_MAX_METADATA_SIZE).unwrap();
        assert_eq!(a.piece_count(), 3);
        assert_eq!(a.piece_len(2), Some(100));
        assert_eq!(a.missing().collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(a.add(2, size, piece_of(&meta, 2).unwrap()), Ok(None));
        assert_eq!(a.add(0, size, piece_of(&meta, 0).unwrap()), Ok(None));
        assert_eq!(a.missing().collect::<Vec<_>>(), [1]);
        assert_eq!(a.add(1, size, piece_of(&meta, 1).unwrap()), Ok(Some(meta)));
    }

    #[test]
    fn wrong_hash_starts_over() {
        let meta = info(PIECE_LEN + 1);
        let size = meta.len() as u64;
        let mut a = MetadataAssembler::new(InfoHash([1; 20]), size, u64::MAX).unwrap();
        a.add(0, size, piece_of(&meta, 0).unwrap()).unwrap();
        assert_eq!(
            a.add(1, size, piece_of(&meta, 1).unwrap()),
            Err(MetadataFault::HashMismatch)
        );
        assert_eq!(a.missing().count(), 2);
    }

    #[test]
    fn size_lies_are_refused() {
        let ih = InfoHash([0; 20]);
        assert_eq!(
            MetadataAssembler::new(ih, 31 << 20, DEFAULT_MAX_METADATA_SIZE).err(),
            Some(MetadataFault::TooLarge {
                size: 31 << 20,
                max: DEFAULT_MAX_METADATA_SIZE
            })
        );
        assert_eq!(
            MetadataAssembler::new(ih, 0, 10).err(),
            Some(MetadataFault::Empty)
        );
        let mut a = MetadataAssembler::new(ih, 20000, DEFAULT_MAX_METADATA_SIZE).unwrap();
        assert_eq!(
            a.add(0, 20001, &[0; PIECE_LEN]),
            Err(MetadataFault::SizeMismatch {
                expected: 20000,
                got: 20001
            })
        );
        assert_eq!(
            a.add(0, 20000, &[0; 100]),
            Err(MetadataFault::WrongPieceLength {
                piece: 0,
                expected: PIECE_LEN,
                got: 100
            })
        );
        assert_eq!(
            a.add(1, 20000, &[0; PIECE_LEN]),
            Err(MetadataFault::WrongPieceLength {
                piece: 1,
                expected: 20000 - PIECE_LEN,
                got: PIECE_LEN
            })
        );
        assert_eq!(a.add(2, 20000, &[]), Err(MetadataFault::PieceOutOfRange(2)));
        assert_eq!(piece_of(&[0; 10], u32::MAX), None);
    }

    proptest! {
        #[test]
        fn arbitrary_payloads_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = MetadataMessage::decode(&Bytes::from(data));
        }
    }
}
