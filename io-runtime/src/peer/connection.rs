use bytes::BytesMut;
use rain_proto::Decode;
use rain_proto::mse::Cipher;
use rain_proto::wire::{Decoder, Limits, Message};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{PeerError, Remote};

/// Bytes asked of the socket per read: a few blocks, so a fast link needs few syscalls.
const READ_CHUNK: usize = 64 * 1024;

/// An established peer connection: decoded messages in, encoded messages out, with RC4
/// applied in place when the stream is encrypted.
#[derive(Debug)]
pub struct Connection<S> {
    stream: S,
    cipher: Option<Cipher>,
    decoder: Decoder,
    /// Received plaintext not yet decoded.
    input: BytesMut,
    output: Vec<u8>,
    /// The peer's handshake and the connection's protection.
    pub remote: Remote,
}

impl<S> Connection<S>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    pub(super) fn new(
        stream: S,
        cipher: Option<Cipher>,
        leftover: &[u8],
        remote: Remote,
        limits: Limits,
    ) -> Self {
        Connection {
            stream,
            cipher,
            decoder: Decoder::new(limits),
            input: BytesMut::from(leftover),
            output: Vec::new(),
            remote,
        }
    }

    /// Reads the next message. `piece` payloads are slices of the receive buffer.
    pub async fn read_message(&mut self) -> Result<Message, PeerError> {
        loop {
            match self.decoder.decode(&mut self.input) {
                Decode::Complete { value, .. } => return Ok(value),
                Decode::Invalid(e) => return Err(PeerError::Wire(e)),
                Decode::Incomplete => {}
            }
            let want = self.decoder.wanted(&self.input).max(READ_CHUNK);
            self.input.reserve(want);
            let before = self.input.len();
            let n = self.stream.read_buf(&mut self.input).await?;
            if n == 0 {
                return Err(PeerError::Closed);
            }
            if let Some(c) = &mut self.cipher {
                c.decrypt(&mut self.input[before..]);
            }
        }
    }

    /// Encodes, encrypts and writes messages in one go.
    pub async fn send(&mut self, messages: &[Message]) -> Result<(), PeerError> {
        self.output.clear();
        for m in messages {
            m.encode(&mut self.output);
        }
        if let Some(c) = &mut self.cipher {
            c.encrypt(&mut self.output);
        }
        self.stream.write_all(&self.output).await?;
        Ok(())
    }
}
