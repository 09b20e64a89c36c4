//! No size a peer, tracker or file merely *claims* may turn into an allocation (R54).
//!
//! A counting global allocator records the largest single request made by the current thread
//! while a case runs. Each case feeds a short hostile input that claims a huge size (a 4 GiB
//! bencode string, a 4 GiB frame, a metadata size of 2⁶³, a bitfield for 4 billion pieces…)
//! and asserts that the largest allocation stays within [`bound`]: proportional to the bytes
//! actually supplied, never to the number claimed. A decoder that sized a buffer from the
//! claim would ask for gigabytes and fail here long before it could abort a process.
//!
//! The library forbids `unsafe`; this test binary needs it only to implement `GlobalAlloc`,
//! which forwards every call unchanged to the system allocator.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::{Bytes, BytesMut};
use rain_proto::bitfield::Bitfield;
use rain_proto::dht::krpc;
use rain_proto::extension::{
    ExtHandshake, ExtLimits, MetadataAssembler, MetadataFault, MetadataMessage, PexLimits,
    PexMessage, ut_metadata,
};
use rain_proto::metainfo::{self, Metainfo};
use rain_proto::mse::{CryptoMethods, MseHandshake};
use rain_proto::rng::{Rng, Seed};
use rain_proto::tracker::http;
use rain_proto::wire::{Decoder, Limits as WireLimits, Message, WireError};
use rain_proto::{Decode, InfoHash, bencode, magnet};

/// Forwards to [`System`] and remembers the largest request of the current thread while
/// [`largest_allocation`] is measuring on it.
struct Counting;

thread_local! {
    /// Whether this thread is inside [`largest_allocation`].
    static MEASURING: Cell<bool> = const { Cell::new(false) };
    /// The largest request seen on this thread since measuring began.
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn record(size: usize) {
    // `try_with`: allocations during thread teardown, after the slots are gone, are ignored.
    let _ = MEASURING.try_with(|m| {
        if m.get() {
            let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
        }
    });
}

// SAFETY: every method forwards its arguments unchanged to `System`, which upholds the
// `GlobalAlloc` contract; `record` only touches `const`-initialised thread locals without
// destructors, so it never allocates or re-enters the allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        // SAFETY: the caller's `layout` obligations pass straight through.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record(new_size);
        // SAFETY: `ptr` and `layout` come from this allocator, i.e. from `System`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as for `realloc`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `f` and returns the largest single allocation it made on this thread. The result of
/// `f` is dropped inside the measurement, so everything it built counts.
fn largest_allocation<R>(f: impl FnOnce() -> R) -> usize {
    LARGEST.with(|l| l.set(0));
    MEASURING.with(|m| m.set(true));
    drop(std::hint::black_box(f()));
    MEASURING.with(|m| m.set(false));
    LARGEST.with(Cell::get)
}

/// Fixed allowance for small bookkeeping (vectors of a few entries, error strings, hashers).
const SLACK: usize = 64 * 1024;
/// Bytes of allocation allowed per input byte: a decoded value tree costs a few dozen bytes
/// per token, and the smallest token (`i0e`) is three bytes long.
const PER_INPUT_BYTE: usize = 64;

/// The most a decoder may allocate at once for `input_len` bytes of input.
fn bound(input_len: usize) -> usize {
    input_len * PER_INPUT_BYTE + SLACK
}

/// Asserts that `f`, fed `input_len` bytes, stays within [`bound`].
#[track_caller]
fn assert_bounded<R>(case: &str, input_len: usize, f: impl FnOnce() -> R) {
    let largest = largest_allocation(f);
    assert!(
        largest <= bound(input_len),
        "{case}: largest allocation {largest} bytes for {input_len} input bytes (bound {})",
        bound(input_len)
    );
}

/// 2³² − 1: a length that needs 4 GiB to honour.
const FOUR_GIB: u64 = u32::MAX as u64;

#[test]
fn the_meter_sees_large_allocations() {
    // Without this the other cases could pass with a meter that records nothing.
    let n = 8 * 1024 * 1024;
    assert!(largest_allocation(|| Vec::<u8>::with_capacity(n)) >= n);
    assert!(largest_allocation(|| vec![0u8; n]) >= n, "alloc_zeroed");
    let grown = largest_allocation(|| {
        let mut v = vec![0u8; 16];
        v.resize(n, 1);
        v
    });
    assert!(grown >= n, "realloc");
    assert!(largest_allocation(|| 1 + 1) < SLACK);
}

#[test]
fn bencode_strings_claiming_gigabytes() {
    let limits = bencode::Limits::lenient();
    for input in [
        format!("{FOUR_GIB}:x"),
        format!("d4:info{FOUR_GIB}:xe"),
        format!("l{}:abce", u64::MAX),
        format!("d1:a{}:", usize::MAX),
    ] {
        let input = input.as_bytes();
        assert_bounded("bencode::decode", input.len(), || {
            assert!(bencode::decode(input, &limits).is_err());
        });
        assert_bounded("bencode::decode_prefix", input.len(), || {
            let r = bencode::decode_prefix(input, &limits);
            assert!(!matches!(r, Decode::Complete { .. }));
        });
    }
    // Many tiny values: memory grows with the input, within the per-byte allowance.
    let mut many = b"l".to_vec();
    many.extend(std::iter::repeat_n(&b"i0e"[..], 100_000).flatten());
    many.push(b'e');
    assert_bounded("100 000 integers", many.len(), || {
        assert!(bencode::decode(&many, &limits).is_ok());
    });
}

#[test]
fn torrents_claiming_huge_sizes() {
    let limits = metainfo::Limits::default();
    let info = |extra: &str| {
        format!(
            "d4:infod6:lengthi{}e4:name1:n12:piece lengthi{}e6:pieces20:aaaaaaaaaaaaaaaaaaaa{extra}ee",
            i64::MAX,
            metainfo::Limits::MAX_PIECE_LENGTH
        )
    };
    let files = format!(
        "d4:infod5:filesld6:lengthi{}e4:pathl1:aeed6:lengthi{}e4:pathl1:beee4:name1:n12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaaee",
        i64::MAX,
        i64::MAX
    );
    for input in [
        format!("d4:info{FOUR_GIB}:xe"),
        format!("d4:infod6:pieces{FOUR_GIB}:aaaaee"),
        info(""),
        info(&format!("4:attr{FOUR_GIB}:x")),
        files,
    ] {
        let input = input.as_bytes();
        assert_bounded("Metainfo::from_bytes", input.len(), || {
            assert!(Metainfo::from_bytes(input, &limits).is_err());
        });
        assert_bounded("Info::from_bytes", input.len(), || {
            let _ = metainfo::Info::from_bytes(input, &limits);
        });
    }
}

#[test]
fn wire_frames_claiming_gigabytes() {
    let decoder = Decoder::default();
    let max = WireLimits::default().max_message_len;
    // A 4 GiB bitfield, piece and extended message, announced by the header alone.
    for id in [5u8, 7, 20] {
        let mut header = BytesMut::from(&[0xff, 0xff, 0xff, 0xff, id][..]);
        assert_bounded("Decoder::decode, 4 GiB frame", 5, || {
            assert!(matches!(
                decoder.decode(&mut header),
                Decode::Invalid(WireError::TooLong { .. })
            ));
        });
        // The read-size hint stays within the frame limit.
        assert!(decoder.wanted(&header) <= 4 + max as usize);
    }
    // A frame just under the limit is awaited, not reserved for.
    let mut header = BytesMut::from(&(max).to_be_bytes()[..]);
    header.extend_from_slice(&[5, 0xff, 0xff]);
    assert_bounded("Decoder::decode, 30 MiB bitfield header", 7, || {
        assert!(matches!(decoder.decode(&mut header), Decode::Incomplete));
    });
    // A piece header over the block limit is refused before its body arrives.
    let mut piece = BytesMut::from(&(1024 * 1024u32).to_be_bytes()[..]);
    piece.extend_from_slice(&[7, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_bounded("Decoder::decode, 1 MiB block", piece.len(), || {
        assert!(matches!(
            decoder.decode(&mut piece),
            Decode::Invalid(WireError::BlockTooLong { .. })
        ));
    });
    // The smallest complete frame claiming a bitfield decodes without copying.
    let mut small = BytesMut::from(&[0, 0, 0, 2, 5, 0x80][..]);
    assert_bounded("Decoder::decode, bitfield", 6, || {
        assert!(matches!(
            decoder.decode(&mut small),
            Decode::Complete {
                value: Message::Bitfield(_),
                ..
            }
        ));
    });
}

#[test]
fn bitfield_for_four_billion_pieces() {
    let bytes = [0xffu8; 16];
    assert_bounded("Bitfield::from_bytes", bytes.len(), || {
        assert!(Bitfield::from_bytes(&bytes, u32::MAX).is_err());
    });
    assert_bounded("Bitfield::from_bytes, empty", 0, || {
        assert!(Bitfield::from_bytes(&[], u32::MAX).is_err());
    });
}

#[test]
fn metadata_size_lies() {
    let ih = InfoHash([7; 20]);
    // The extension handshake only records the claim.
    let hs = format!("d13:metadata_sizei{}e1:md11:ut_metadatai1eee", i64::MAX);
    assert_bounded("ExtHandshake::decode", hs.len(), || {
        let hs = ExtHandshake::decode(hs.as_bytes(), &ExtLimits::default()).unwrap();
        assert_eq!(hs.metadata_size, Some(i64::MAX as u64));
    });
    let hs = format!("d1:v{FOUR_GIB}:x");
    assert_bounded("ExtHandshake::decode, 4 GiB version", hs.len(), || {
        assert!(ExtHandshake::decode(hs.as_bytes(), &ExtLimits::default()).is_err());
    });
    // Claims above the configured maximum are refused before the buffer exists.
    for size in [
        ut_metadata::DEFAULT_MAX_METADATA_SIZE + 1,
        FOUR_GIB,
        u64::MAX,
    ] {
        assert_bounded("MetadataAssembler::new", 0, || {
            assert!(matches!(
                MetadataAssembler::new(ih, size, ut_metadata::DEFAULT_MAX_METADATA_SIZE),
                Err(MetadataFault::TooLarge { .. })
            ));
        });
    }
    // A data message whose total_size disagrees with the agreed size changes nothing.
    let mut assembler = MetadataAssembler::new(ih, 100, 1024).unwrap();
    let payload = format!(
        "d8:msg_typei1e5:piecei0e10:total_sizei{}ee{}",
        i64::MAX,
        "x".repeat(100)
    );
    let payload = Bytes::from(payload.into_bytes());
    assert_bounded("MetadataMessage::decode + add", payload.len(), || {
        let MetadataMessage::Data {
            piece,
            total_size,
            data,
        } = MetadataMessage::decode(&payload).unwrap()
        else {
            panic!("not a data message");
        };
        assert!(matches!(
            assembler.add(piece, total_size, &data),
            Err(MetadataFault::SizeMismatch { .. })
        ));
    });
    let payload =
        Bytes::from(format!("d8:msg_typei1e5:piecei0e10:total_size{FOUR_GIB}:").into_bytes());
    assert_bounded(
        "MetadataMessage::decode, 4 GiB string",
        payload.len(),
        || {
            assert!(MetadataMessage::decode(&payload).is_err());
        },
    );
}

#[test]
fn pex_and_dht_claiming_gigabytes() {
    for payload in [
        format!("d5:added{FOUR_GIB}:abcdefe"),
        format!("d7:dropped{}:", u64::MAX),
    ] {
        assert_bounded("PexMessage::decode", payload.len(), || {
            assert!(PexMessage::decode(payload.as_bytes(), &PexLimits::default()).is_err());
        });
    }
    // A full-size payload of real entries is capped at max_peers.
    let added = vec![1u8; 6 * 10_000];
    let mut payload = format!("d5:added{}:", added.len()).into_bytes();
    payload.extend_from_slice(&added);
    payload.push(b'e');
    assert_bounded("PexMessage::decode, 10 000 peers", payload.len(), || {
        let m = PexMessage::decode(&payload, &PexLimits::default()).unwrap();
        assert_eq!(m.added.len(), PexLimits::default().max_peers);
    });

    for datagram in [
        format!("d1:t{FOUR_GIB}:aa1:y1:qe"),
        format!("d1:ad2:id20:aaaaaaaaaaaaaaaaaaaa6:target{FOUR_GIB}:e1:q9:find_node1:t2:aa1:y1:qe"),
        format!("d1:rd2:id20:aaaaaaaaaaaaaaaaaaaa5:nodes{FOUR_GIB}:e1:t2:aa1:y1:re"),
        format!("d1:rd2:id20:aaaaaaaaaaaaaaaaaaaa6:valuesl{FOUR_GIB}:ee1:t2:aa1:y1:re"),
    ] {
        assert_bounded("krpc::Message::decode", datagram.len(), || {
            assert!(krpc::Message::decode(datagram.as_bytes()).is_err());
        });
    }
}

#[test]
fn tracker_replies_and_magnets_claiming_huge_sizes() {
    for body in [
        format!("d5:peers{FOUR_GIB}:e"),
        format!("d8:intervali{}e5:peers0:e", i64::MAX),
        format!("d14:failure reason{FOUR_GIB}:e"),
        format!("d6:peers6{FOUR_GIB}:abce"),
    ] {
        assert_bounded("http::parse_announce", body.len(), || {
            let _ = http::parse_announce(200, body.as_bytes());
        });
    }
    // `so=0-4294967295` is one range, not four billion indices.
    let link = "magnet:?xt=urn:btih:c12fe1c06bba254a9dc9f519b335aa7c1367a88a&so=0-4294967295";
    assert_bounded("magnet::parse", link.len(), || {
        assert_eq!(magnet::parse(link).unwrap().select_only, [(0, u32::MAX)]);
    });
}

#[test]
fn mse_buffers_only_what_arrives() {
    // A receiver fed a public key and then bytes that never sync holds at most its limits.
    let mut garbage = vec![0u8; 4096];
    Rng::new(Seed::from_u64(1)).fill(&mut garbage);
    assert_bounded("MseHandshake::receiver", garbage.len(), || {
        let mut rng = Rng::new(Seed::from_u64(2));
        let mut m =
            MseHandshake::receiver(&mut rng, &[InfoHash([1; 20])], CryptoMethods::ALL).unwrap();
        for chunk in garbage.chunks(100) {
            if m.handle_bytes(chunk).is_err() {
                break;
            }
        }
        assert!(m.is_finished());
    });
}
