//! Fuzz bodies for the foundation parsers: bencode, metainfo, magnet links.

use crate::{bencode, magnet, metainfo};

/// Bencode: decoding any bytes never panics, and whatever decodes canonically re-encodes to the
/// same bytes.
pub fn bencode_decode(data: &[u8]) {
    if let Ok(v) = bencode::decode(data, &bencode::Limits::strict()) {
        let mut out = Vec::with_capacity(data.len());
        v.encode(&mut out);
        assert_eq!(
            out, data,
            "strictly decoded input must re-encode identically"
        );
    }
    let _ = bencode::decode(data, &bencode::Limits::lenient());
    let _ = bencode::decode_prefix(data, &bencode::Limits::lenient());
}

/// Metainfo: parsing never panics; an accepted torrent satisfies the documented invariants.
pub fn metainfo_parse(data: &[u8]) {
    let Ok(m) = metainfo::Metainfo::from_bytes(data, &metainfo::Limits::default()) else {
        return;
    };
    let info = &m.info;
    assert_eq!(m.info_hash, crate::InfoHash::of(&m.info_bytes));
    assert!(info.piece_count() > 0);
    let last = info.piece_len(info.piece_count() - 1).expect("last piece");
    assert!(last > 0 && last <= info.piece_length);
    for f in &info.files {
        assert!(!f.path.is_empty());
        assert!(
            f.path
                .iter()
                .all(|c| !c.is_empty() && c != ".." && !c.contains('/'))
        );
    }
}

/// Magnet links: parsing never panics, and a parsed link formats to one that parses the same.
pub fn magnet_parse(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(m) = magnet::parse(text) {
        assert_eq!(magnet::parse(&m.to_string()), Ok(m));
    }
}
