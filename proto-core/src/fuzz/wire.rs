//! Fuzz bodies for the peer wire protocol: the handshake and the message decoder.

use bytes::BytesMut;

use crate::Decode;
use crate::wire::{Decoder, Handshake, Limits, Message};

/// The 68-byte handshake: never panics; a decoded handshake re-encodes to the same bytes, and
/// the 48-byte header agrees with it.
pub fn handshake(data: &[u8]) {
    match Handshake::decode(data) {
        Decode::Complete { value, used } => {
            assert_eq!(used, 68);
            assert_eq!(value.to_bytes()[..], data[..68]);
            let Decode::Complete { value: header, .. } = Handshake::decode_header(data) else {
                panic!("header of a complete handshake did not decode");
            };
            assert_eq!(header.info_hash, value.info_hash);
        }
        Decode::Incomplete => assert!(data.len() < 68),
        Decode::Invalid(_) => {}
    }
}

/// Decodes everything in `buf`, returning the messages and the re-encoded bytes they used.
fn drain(d: &Decoder, buf: &mut BytesMut, out: &mut Vec<Message>) -> bool {
    loop {
        match d.decode(buf) {
            Decode::Complete { value, used } => {
                assert_eq!(value.encoded_len(), used);
                out.push(value);
            }
            Decode::Incomplete => return true,
            Decode::Invalid(_) => return false,
        }
    }
}

/// The message decoder: never panics; every decoded message re-encodes to exactly the bytes it
/// came from; feeding the input byte by byte gives the same messages as feeding it at once.
pub fn message(data: &[u8]) {
    let d = Decoder::new(Limits {
        max_message_len: 4096,
        max_block_len: 1024,
    });
    let mut whole = BytesMut::from(data);
    let mut at_once = Vec::new();
    let ok_at_once = drain(&d, &mut whole, &mut at_once);

    let mut reencoded = Vec::new();
    for m in &at_once {
        m.encode(&mut reencoded);
    }
    assert_eq!(reencoded[..], data[..reencoded.len()]);

    let mut buf = BytesMut::new();
    let mut bytewise = Vec::new();
    let mut ok_bytewise = true;
    for b in data {
        buf.extend_from_slice(&[*b]);
        if !drain(&d, &mut buf, &mut bytewise) {
            ok_bytewise = false;
            break;
        }
    }
    assert_eq!(at_once, bytewise);
    assert_eq!(ok_at_once, ok_bytewise);
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::InfoHash;
    use crate::wire::{PeerId, Reserved};

    #[test]
    fn valid_inputs_pass_the_checks() {
        let hs = Handshake {
            reserved: Reserved::rain(true),
            info_hash: InfoHash([3; 20]),
            peer_id: PeerId([4; 20]),
        };
        handshake(&hs.to_bytes());
        let mut stream = Vec::new();
        for m in [Message::KeepAlive, Message::Have(3), Message::Port(1)] {
            m.encode(&mut stream);
        }
        stream.extend_from_slice(&[0, 0, 0, 1, 99]);
        message(&stream);
    }

    proptest! {
        #[test]
        fn bodies_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            handshake(&data);
            message(&data);
        }
    }
}
