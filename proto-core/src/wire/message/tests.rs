use proptest::prelude::*;

use super::*;

fn block() -> impl Strategy<Value = Block> {
    (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(index, begin, length)| Block {
        index,
        begin,
        length,
    })
}

fn bytes(max: usize) -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        Just(Message::KeepAlive),
        Just(Message::Choke),
        Just(Message::Unchoke),
        Just(Message::Interested),
        Just(Message::NotInterested),
        any::<u32>().prop_map(Message::Have),
        bytes(40).prop_map(Message::Bitfield),
        block().prop_map(Message::Request),
        (any::<u32>(), any::<u32>(), bytes(40)).prop_map(|(index, begin, data)| Message::Piece {
            index,
            begin,
            data
        }),
        block().prop_map(Message::Cancel),
        any::<u16>().prop_map(Message::Port),
        any::<u32>().prop_map(Message::Suggest),
        Just(Message::HaveAll),
        Just(Message::HaveNone),
        block().prop_map(Message::Reject),
        any::<u32>().prop_map(Message::AllowedFast),
        (any::<u8>(), bytes(40)).prop_map(|(id, payload)| Message::Extended { id, payload }),
    ]
}

fn encode(m: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    m.encode(&mut out);
    assert_eq!(out.len(), m.encoded_len());
    out
}

/// Decodes everything in `buf`, which must end on a frame boundary.
fn decode_all(d: &Decoder, buf: &mut BytesMut) -> Vec<Message> {
    let mut out = Vec::new();
    loop {
        match d.decode(buf) {
            Decode::Complete { value, .. } => out.push(value),
            Decode::Incomplete => break,
            Decode::Invalid(e) => panic!("{e}"),
        }
    }
    out
}

proptest! {
    #[test]
    fn round_trip_split_at_every_byte(m in message()) {
        let d = Decoder::default();
        let bytes = encode(&m);
        for cut in 0..=bytes.len() {
            let mut buf = BytesMut::from(&bytes[..cut]);
            if cut < bytes.len() {
                prop_assert_eq!(d.decode(&mut buf), Decode::Incomplete);
                prop_assert_eq!(buf.len(), cut, "an incomplete decode consumed bytes");
                buf.extend_from_slice(&bytes[cut..]);
            }
            prop_assert_eq!(d.decode(&mut buf), Decode::Complete { value: m.clone(), used: bytes.len() });
            prop_assert!(buf.is_empty());
        }
    }

    #[test]
    fn stream_of_messages_in_random_chunks(
        msgs in proptest::collection::vec(message(), 0..20),
        chunk in 1usize..50,
    ) {
        let d = Decoder::default();
        let mut stream = Vec::new();
        for m in &msgs {
            m.encode(&mut stream);
        }
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for piece in stream.chunks(chunk) {
            buf.extend_from_slice(piece);
            got.extend(decode_all(&d, &mut buf));
        }
        prop_assert_eq!(got, msgs);
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        let d = Decoder::new(Limits { max_message_len: 64, max_block_len: 32 });
        let mut buf = BytesMut::from(&data[..]);
        while let Decode::Complete { used, .. } = d.decode(&mut buf) {
            prop_assert!(used >= 4);
        }
        prop_assert!(d.wanted(&buf) <= 4 + 64);
    }
}

#[test]
fn piece_payload_is_a_slice_of_the_receive_buffer() {
    let data: Vec<u8> = (0..16384u32).map(|i| i as u8).collect();
    let m = Message::Piece {
        index: 3,
        begin: 16384,
        data: Bytes::from(data.clone()),
    };
    let mut buf = BytesMut::new();
    m.encode(&mut buf);
    Message::Have(1).encode(&mut buf);
    let start = buf.as_ptr() as usize;
    let end = start + buf.len();
    let Decode::Complete { value, used } = Decoder::default().decode(&mut buf) else {
        panic!("not complete");
    };
    assert_eq!(used, 13 + 16384);
    let Message::Piece {
        index,
        begin,
        data: got,
    } = value
    else {
        panic!("not a piece");
    };
    assert_eq!((index, begin), (3, 16384));
    assert_eq!(&got[..], &data[..]);
    let p = got.as_ptr() as usize;
    assert!(p >= start && p + got.len() <= end, "payload was copied");
    assert_eq!(p, start + 13);
    // The rest of the buffer is still there.
    assert_eq!(
        Decoder::default().decode(&mut buf),
        Decode::Complete {
            value: Message::Have(1),
            used: 9
        }
    );
}

#[test]
fn oversize_frames_are_refused_from_the_header() {
    let d = Decoder::new(Limits {
        max_message_len: 100,
        max_block_len: 50,
    });
    let mut buf = BytesMut::from(&[0, 0, 0, 101][..]);
    assert_eq!(
        d.decode(&mut buf),
        Decode::Invalid(WireError::TooLong { len: 101, max: 100 })
    );
    let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff][..]);
    assert!(matches!(
        d.decode(&mut buf),
        Decode::Invalid(WireError::TooLong { .. })
    ));
    // A piece header announcing a 60-byte block fails before the block arrives.
    let mut buf = BytesMut::from(&[0, 0, 0, 69, 7][..]);
    assert_eq!(
        d.decode(&mut buf),
        Decode::Invalid(WireError::BlockTooLong { len: 60, max: 50 })
    );
    assert_eq!(d.wanted(&[0, 0, 0xff, 0xff]), 104);
    assert_eq!(d.wanted(&[0, 0]), 4);
}

#[test]
fn unknown_ids_and_bad_lengths_are_invalid() {
    let d = Decoder::default();
    for bad_id in [10u8, 11, 12, 18, 19, 21, 255] {
        let mut buf = BytesMut::from(&[0, 0, 0, 1, bad_id][..]);
        assert_eq!(
            d.decode(&mut buf),
            Decode::Invalid(WireError::UnknownId(bad_id))
        );
    }
    let cases: &[(u8, &[u32])] = &[
        (id::CHOKE, &[2]),
        (id::HAVE_ALL, &[2, 5]),
        (id::HAVE, &[1, 4, 6]),
        (id::ALLOWED_FAST, &[4, 9]),
        (id::SUGGEST, &[1]),
        (id::REQUEST, &[12, 14, 5]),
        (id::CANCEL, &[1]),
        (id::REJECT, &[17]),
        (id::PORT, &[1, 2, 4]),
        (id::PIECE, &[1, 8]),
        (id::EXTENDED, &[1]),
    ];
    for &(msg_id, lens) in cases {
        for &len in lens {
            let mut buf = BytesMut::new();
            buf.put_u32(len);
            buf.put_u8(msg_id);
            assert_eq!(
                d.decode(&mut buf),
                Decode::Invalid(WireError::BadLength { id: msg_id, len }),
                "id {msg_id} len {len}"
            );
        }
    }
}

#[test]
fn known_encodings() {
    assert_eq!(encode(&Message::KeepAlive), [0, 0, 0, 0]);
    assert_eq!(encode(&Message::Interested), [0, 0, 0, 1, 2]);
    assert_eq!(encode(&Message::Have(258)), [0, 0, 0, 5, 4, 0, 0, 1, 2]);
    assert_eq!(encode(&Message::Port(6881)), [0, 0, 0, 3, 9, 0x1a, 0xe1]);
    assert_eq!(
        encode(&Message::Request(Block {
            index: 1,
            begin: 2,
            length: 16384
        })),
        [0, 0, 0, 13, 6, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0x40, 0]
    );
    assert_eq!(
        encode(&Message::Extended {
            id: 0,
            payload: Bytes::from_static(b"de")
        }),
        [0, 0, 0, 4, 20, 0, b'd', b'e']
    );
    let mut header = Vec::new();
    write_piece_header(&mut header, 7, 0, 3);
    assert_eq!(header, [0, 0, 0, 12, 7, 0, 0, 0, 7, 0, 0, 0, 0]);
}
