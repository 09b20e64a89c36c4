//! Fuzz bodies for the extension protocol: the BEP 10 handshake, ut_metadata and ut_pex.

use bytes::Bytes;

use crate::extension::ut_metadata::{MetadataAssembler, MetadataMessage};
use crate::extension::ut_pex::{MAX_PEERS, PexLimits, PexMessage};
use crate::extension::{ExtHandshake, ExtLimits};
use crate::hash::InfoHash;

/// The extension handshake: never panics; what decodes re-encodes to something that decodes
/// to the same extensions and numbers.
pub fn ext_handshake(data: &[u8]) {
    let limits = ExtLimits::default();
    let Ok(hs) = ExtHandshake::decode(data, &limits) else {
        return;
    };
    assert!(hs.m.len() <= limits.max_extensions);
    let mut out = Vec::new();
    hs.encode(&mut out);
    let again = ExtHandshake::decode(&out, &limits).expect("our encoding decodes");
    assert_eq!(again.m, hs.m);
    assert_eq!(
        (again.p, again.reqq, again.metadata_size, again.yourip),
        (hs.p, hs.reqq, hs.metadata_size, hs.yourip)
    );
}

/// ut_metadata: never panics; messages round-trip; a data message fed to an assembler sized
/// by its own `total_size` never panics either.
pub fn ut_metadata(data: &[u8]) {
    let payload = Bytes::copy_from_slice(data);
    let Ok(msg) = MetadataMessage::decode(&payload) else {
        return;
    };
    let mut out = Vec::new();
    msg.encode(&mut out);
    assert_eq!(MetadataMessage::decode(&Bytes::from(out)), Ok(msg.clone()));
    if let MetadataMessage::Data {
        piece,
        total_size,
        data,
    } = msg
        && let Ok(mut a) = MetadataAssembler::new(InfoHash::of(&data), total_size, 1 << 20)
    {
        let _ = a.add(piece, total_size, &data);
    }
}

/// ut_pex: never panics; parsing is bounded; a message within the BEP 11 bounds round-trips.
pub fn ut_pex(data: &[u8]) {
    let limits = PexLimits::default();
    let Ok(msg) = PexMessage::decode(data, &limits) else {
        return;
    };
    assert!(msg.added.len() <= limits.max_peers && msg.dropped.len() <= limits.max_peers);
    if msg.added.len() <= MAX_PEERS && msg.dropped.len() <= MAX_PEERS {
        let mut out = Vec::new();
        msg.encode(&mut out).expect("within bounds");
        assert_eq!(PexMessage::decode(&out, &limits), Ok(msg));
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn valid_inputs_pass_the_checks() {
        ext_handshake(b"d1:md6:ut_pexi2ee4:reqqi-3e1:v4:teste");
        ut_metadata(b"d8:msg_typei1e5:piecei0e10:total_sizei5eed1:ae");
        ut_pex(b"d5:added6:\x01\x02\x03\x04\x00\x017:added.f1:\x02e");
    }

    proptest! {
        #[test]
        fn bodies_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            ext_handshake(&data);
            ut_metadata(&data);
            ut_pex(&data);
        }
    }
}
