//! Length-prefixed peer messages: BEP 3 (including keep-alive and PORT), BEP 6 and BEP 10.
//!
//! [`Decoder::decode`] takes frames off the front of a `BytesMut` receive buffer as they become
//! complete. Payloads (`piece` data, bitfields, extended payloads) are `Bytes` slices of that
//! buffer, so piece data is never copied on its way to storage. Lengths are checked as soon as
//! the 5-byte header has arrived: an oversize or malformed frame is refused before it is
//! buffered, so a peer cannot make us hold more than [`Limits::max_message_len`] bytes.
//!
//! Strictness follows libtorrent rather than rain: an unknown message id is
//! [`WireError::UnknownId`] (rain reads and drops it), and every fixed-size message must have
//! exactly its size. `suggest` is decoded; whether to act on it is the torrent's business.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::Decode;

/// Message ids.
pub mod id {
    /// BEP 3 `choke`.
    pub const CHOKE: u8 = 0;
    /// BEP 3 `unchoke`.
    pub const UNCHOKE: u8 = 1;
    /// BEP 3 `interested`.
    pub const INTERESTED: u8 = 2;
    /// BEP 3 `not interested`.
    pub const NOT_INTERESTED: u8 = 3;
    /// BEP 3 `have`.
    pub const HAVE: u8 = 4;
    /// BEP 3 `bitfield`.
    pub const BITFIELD: u8 = 5;
    /// BEP 3 `request`.
    pub const REQUEST: u8 = 6;
    /// BEP 3 `piece`.
    pub const PIECE: u8 = 7;
    /// BEP 3 `cancel`.
    pub const CANCEL: u8 = 8;
    /// BEP 5 `port`.
    pub const PORT: u8 = 9;
    /// BEP 6 `suggest piece`.
    pub const SUGGEST: u8 = 13;
    /// BEP 6 `have all`.
    pub const HAVE_ALL: u8 = 14;
    /// BEP 6 `have none`.
    pub const HAVE_NONE: u8 = 15;
    /// BEP 6 `reject request`.
    pub const REJECT: u8 = 16;
    /// BEP 6 `allowed fast`.
    pub const ALLOWED_FAST: u8 = 17;
    /// BEP 10 `extended`.
    pub const EXTENDED: u8 = 20;
}

/// A block of a piece: what `request`, `cancel` and `reject` name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Block {
    /// Piece index.
    pub index: u32,
    /// Byte offset inside the piece.
    pub begin: u32,
    /// Length in bytes.
    pub length: u32,
}

/// One peer message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A zero-length frame that keeps the connection alive.
    KeepAlive,
    /// The sender will not serve requests.
    Choke,
    /// The sender will serve requests.
    Unchoke,
    /// The sender wants pieces we have.
    Interested,
    /// The sender wants nothing from us.
    NotInterested,
    /// The sender has completed this piece.
    Have(u32),
    /// The sender's pieces, one bit each, high bit first (a slice of the receive buffer).
    Bitfield(Bytes),
    /// Asks for a block.
    Request(Block),
    /// A block of data (a slice of the receive buffer).
    Piece {
        /// Piece index.
        index: u32,
        /// Byte offset inside the piece.
        begin: u32,
        /// The block.
        data: Bytes,
    },
    /// Withdraws a request.
    Cancel(Block),
    /// The sender's DHT port (BEP 5).
    Port(u16),
    /// BEP 6: the sender suggests downloading this piece.
    Suggest(u32),
    /// BEP 6: the sender has every piece.
    HaveAll,
    /// BEP 6: the sender has no piece.
    HaveNone,
    /// BEP 6: the sender will not serve this request.
    Reject(Block),
    /// BEP 6: this piece may be requested even while choked.
    AllowedFast(u32),
    /// BEP 10: an extension message; `id` 0 is the extension handshake.
    Extended {
        /// The extended message id (as the receiver advertised it in `m`).
        id: u8,
        /// The bencoded message and any trailing data (a slice of the receive buffer).
        payload: Bytes,
    },
}

/// Why a frame was refused. Every variant is a peer fault: the connection should be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The length prefix exceeds [`Limits::max_message_len`].
    #[error("message of {len} bytes exceeds the limit of {max}")]
    TooLong {
        /// Declared length.
        len: u32,
        /// The limit.
        max: u32,
    },
    /// A piece message carrying more than [`Limits::max_block_len`] bytes.
    #[error("block of {len} bytes exceeds the limit of {max}")]
    BlockTooLong {
        /// Block length.
        len: u32,
        /// The limit.
        max: u32,
    },
    /// A message id we do not know.
    #[error("unknown message id {0}")]
    UnknownId(u8),
    /// A message whose length does not fit its id.
    #[error("message id {id} with invalid length {len}")]
    BadLength {
        /// Message id.
        id: u8,
        /// Declared length (id byte included).
        len: u32,
    },
}

/// Bounds applied while decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame accepted (length prefix value). Rain uses `max-metadata-size`.
    pub max_message_len: u32,
    /// Largest `piece` payload accepted. Rain closes a peer sending more than 16 KiB.
    pub max_block_len: u32,
}

impl Limits {
    /// The standard block size: every client requests 16 KiB blocks.
    pub const BLOCK_LEN: u32 = 16 * 1024;
    /// Rain's default `max-metadata-size` (30 MiB), which it also uses as the frame limit.
    pub const DEFAULT_MAX_MESSAGE_LEN: u32 = 30 * 1024 * 1024;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_len: Self::DEFAULT_MAX_MESSAGE_LEN,
            max_block_len: Self::BLOCK_LEN,
        }
    }
}

/// The incremental frame decoder.
#[derive(Debug, Clone, Default)]
pub struct Decoder {
    limits: Limits,
}

/// Bytes a `piece` message carries before its data: length, id, index, begin.
pub const PIECE_HEADER_LEN: usize = 13;

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

impl Decoder {
    /// A decoder with these limits.
    pub fn new(limits: Limits) -> Self {
        Decoder { limits }
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Checks a frame from its length and id alone, before its body is buffered.
    fn check_header(&self, len: u32, msg_id: u8) -> Result<(), WireError> {
        let exact = |want: u32| {
            if len == want {
                Ok(())
            } else {
                Err(WireError::BadLength { id: msg_id, len })
            }
        };
        let at_least = |want: u32| {
            if len >= want {
                Ok(())
            } else {
                Err(WireError::BadLength { id: msg_id, len })
            }
        };
        match msg_id {
            id::CHOKE
            | id::UNCHOKE
            | id::INTERESTED
            | id::NOT_INTERESTED
            | id::HAVE_ALL
            | id::HAVE_NONE => exact(1),
            id::HAVE | id::SUGGEST | id::ALLOWED_FAST => exact(5),
            id::REQUEST | id::CANCEL | id::REJECT => exact(13),
            id::PORT => exact(3),
            id::BITFIELD => at_least(1),
            id::EXTENDED => at_least(2),
            id::PIECE => {
                at_least(9)?;
                let block = len - 9;
                if block > self.limits.max_block_len {
                    return Err(WireError::BlockTooLong {
                        len: block,
                        max: self.limits.max_block_len,
                    });
                }
                Ok(())
            }
            other => Err(WireError::UnknownId(other)),
        }
    }

    /// How many bytes `buf` must hold before the next call can make progress, for sizing reads.
    /// Never more than a frame allowed by the limits.
    pub fn wanted(&self, buf: &[u8]) -> usize {
        if buf.len() < 4 {
            return 4;
        }
        let len = be32(buf).min(self.limits.max_message_len);
        4 + len as usize
    }

    /// Decodes the frame at the front of `buf`. On [`Decode::Complete`] the frame's `used`
    /// bytes have been split off `buf` (payloads share its memory); otherwise `buf` is
    /// untouched. [`Decode::Invalid`] is final: the peer broke the protocol.
    pub fn decode(&self, buf: &mut BytesMut) -> Decode<Message, WireError> {
        if buf.len() < 4 {
            return Decode::Incomplete;
        }
        let len = be32(buf);
        if len == 0 {
            buf.advance(4);
            return Decode::Complete {
                value: Message::KeepAlive,
                used: 4,
            };
        }
        if len > self.limits.max_message_len {
            return Decode::Invalid(WireError::TooLong {
                len,
                max: self.limits.max_message_len,
            });
        }
        if buf.len() < 5 {
            return Decode::Incomplete;
        }
        let msg_id = buf[4];
        if let Err(e) = self.check_header(len, msg_id) {
            return Decode::Invalid(e);
        }
        let used = 4 + len as usize;
        if buf.len() < used {
            return Decode::Incomplete;
        }
        let frame = buf.split_to(used).freeze();
        let body = &frame[5..];
        let block = || Block {
            index: be32(&body[0..]),
            begin: be32(&body[4..]),
            length: be32(&body[8..]),
        };
        let value = match msg_id {
            id::CHOKE => Message::Choke,
            id::UNCHOKE => Message::Unchoke,
            id::INTERESTED => Message::Interested,
            id::NOT_INTERESTED => Message::NotInterested,
            id::HAVE => Message::Have(be32(body)),
            id::BITFIELD => Message::Bitfield(frame.slice(5..)),
            id::REQUEST => Message::Request(block()),
            id::PIECE => Message::Piece {
                index: be32(&body[0..]),
                begin: be32(&body[4..]),
                data: frame.slice(PIECE_HEADER_LEN..),
            },
            id::CANCEL => Message::Cancel(block()),
            id::PORT => Message::Port(u16::from_be_bytes([body[0], body[1]])),
            id::SUGGEST => Message::Suggest(be32(body)),
            id::HAVE_ALL => Message::HaveAll,
            id::HAVE_NONE => Message::HaveNone,
            id::REJECT => Message::Reject(block()),
            id::ALLOWED_FAST => Message::AllowedFast(be32(body)),
            // check_header let only known ids through; EXTENDED is the last.
            _ => Message::Extended {
                id: body[0],
                payload: frame.slice(6..),
            },
        };
        Decode::Complete { value, used }
    }
}

/// Writes the 13-byte header of a `piece` message carrying `data_len` bytes, so a sender can
/// write the header and the block (a `Bytes` from its cache) as two slices without copying.
pub fn write_piece_header<B: BufMut>(out: &mut B, index: u32, begin: u32, data_len: u32) {
    out.put_u32(9 + data_len);
    out.put_u8(id::PIECE);
    out.put_u32(index);
    out.put_u32(begin);
}

impl Message {
    /// The message id, or `None` for a keep-alive.
    pub fn id(&self) -> Option<u8> {
        Some(match self {
            Message::KeepAlive => return None,
            Message::Choke => id::CHOKE,
            Message::Unchoke => id::UNCHOKE,
            Message::Interested => id::INTERESTED,
            Message::NotInterested => id::NOT_INTERESTED,
            Message::Have(_) => id::HAVE,
            Message::Bitfield(_) => id::BITFIELD,
            Message::Request(_) => id::REQUEST,
            Message::Piece { .. } => id::PIECE,
            Message::Cancel(_) => id::CANCEL,
            Message::Port(_) => id::PORT,
            Message::Suggest(_) => id::SUGGEST,
            Message::HaveAll => id::HAVE_ALL,
            Message::HaveNone => id::HAVE_NONE,
            Message::Reject(_) => id::REJECT,
            Message::AllowedFast(_) => id::ALLOWED_FAST,
            Message::Extended { .. } => id::EXTENDED,
        })
    }

    /// The value of the length prefix: bytes after it.
    pub fn body_len(&self) -> usize {
        match self {
            Message::KeepAlive => 0,
            Message::Choke
            | Message::Unchoke
            | Message::Interested
            | Message::NotInterested
            | Message::HaveAll
            | Message::HaveNone => 1,
            Message::Have(_) | Message::Suggest(_) | Message::AllowedFast(_) => 5,
            Message::Request(_) | Message::Cancel(_) | Message::Reject(_) => 13,
            Message::Port(_) => 3,
            Message::Bitfield(b) => 1 + b.len(),
            Message::Piece { data, .. } => 9 + data.len(),
            Message::Extended { payload, .. } => 2 + payload.len(),
        }
    }

    /// Bytes [`Message::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        4 + self.body_len()
    }

    /// Appends the framed message to `out`. Piece data is copied; a sender that wants to avoid
    /// that writes [`write_piece_header`] and the data separately.
    pub fn encode<B: BufMut>(&self, out: &mut B) {
        let len = u32::try_from(self.body_len()).expect("message longer than 4 GiB");
        if let Message::Piece { index, begin, data } = self {
            write_piece_header(out, *index, *begin, len - 9);
            out.put_slice(data);
            return;
        }
        out.put_u32(len);
        let Some(msg_id) = self.id() else {
            return;
        };
        out.put_u8(msg_id);
        match self {
            Message::Have(i) | Message::Suggest(i) | Message::AllowedFast(i) => out.put_u32(*i),
            Message::Bitfield(b) => out.put_slice(b),
            Message::Request(b) | Message::Cancel(b) | Message::Reject(b) => {
                out.put_u32(b.index);
                out.put_u32(b.begin);
                out.put_u32(b.length);
            }
            Message::Port(p) => out.put_u16(*p),
            Message::Extended { id, payload } => {
                out.put_u8(*id);
                out.put_slice(payload);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
