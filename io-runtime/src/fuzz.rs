//! Fuzz bodies for what the runtime reads from disk (the fuzz crate's targets call them, and
//! `tests/tests/fuzz_corpus.rs` replays the committed corpus through them).

use rain_proto::metainfo::Info;

use crate::resume::{self, decode_record, encode_record, unpack_bitfield};
use crate::session::SessionConfig;

/// A resume record read back from arbitrary stored bytes (catalog rows R57/R58): the three
/// values are cut from `data` by two length bytes. Decoding never panics, and a record that
/// decodes is self-consistent: its `info` (if any) hashes to its info-hash, it round-trips
/// through its encoding, and its bitfield is either trusted with exactly one flag per piece
/// or refused.
pub fn resume_record(data: &[u8]) {
    let Some((&[meta_len, progress_len], rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let (meta, rest) = rest.split_at(usize::from(meta_len).min(rest.len()));
    let (progress, info) = rest.split_at(usize::from(progress_len).min(rest.len()));
    let progress = (progress_len != 0).then_some(progress);
    let Ok(record) = decode_record(meta, info.to_vec(), progress) else {
        return;
    };
    assert!(record.info.is_empty() || rain_proto::InfoHash::of(&record.info) == record.info_hash);
    let (meta, progress) = encode_record(&record).expect("a decoded record encodes");
    let again = decode_record(&meta, record.info.clone(), Some(&progress)).expect("round trip");
    assert_eq!(again, record);
    if record.info.is_empty() {
        return;
    }
    let limits = SessionConfig::default().metainfo_limits();
    if let (Ok(info), Some(bits)) = (
        Info::from_bytes(&record.info, &limits),
        record.progress.bitfield.as_deref(),
    ) {
        let count = info.piece_count() as usize;
        if let Some(flags) = unpack_bitfield(bits, count) {
            assert_eq!(flags.len(), count);
            assert_eq!(resume::pack_bitfield(&flags), bits);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::resume::{Progress, TorrentRecord};

    /// The fuzz input that holds `record`.
    fn input(record: &TorrentRecord) -> Vec<u8> {
        let (meta, progress) = encode_record(record).unwrap();
        let mut out = vec![
            u8::try_from(meta.len()).unwrap(),
            u8::try_from(progress.len()).unwrap(),
        ];
        out.extend([meta, progress, record.info.clone()].concat());
        out
    }

    fn record() -> TorrentRecord {
        let mut info = b"d6:lengthi40000e4:name1:a12:piece lengthi16384e6:pieces60:".to_vec();
        info.extend([7u8; 60]);
        info.push(b'e');
        TorrentRecord {
            info_hash: rain_proto::InfoHash::of(&info),
            port: 50001,
            name: "a".into(),
            trackers: vec![vec!["udp://t/announce".into()]],
            url_list: vec![],
            fixed_peers: vec!["127.0.0.1:6881".into()],
            info,
            progress: Progress {
                bitfield: Some(vec![0b1010_0000]),
                bytes_downloaded: 32768,
                bytes_uploaded: 1,
                bytes_wasted: 2,
                seeded_for: Duration::from_secs(3),
            },
            added_at: 1_700_000_000,
            started: true,
            stop_after_download: false,
            stop_after_metadata: false,
            complete_cmd_run: false,
            sequential: false,
            parser_version: 3,
        }
    }

    #[test]
    fn the_body_reads_the_three_values_a_record_is_stored_in() {
        let rec = record();
        let data = input(&rec);
        let (meta, progress) = encode_record(&rec).unwrap();
        let cut = &data[2..];
        assert_eq!(
            decode_record(
                &cut[..meta.len()],
                rec.info.clone(),
                Some(&cut[meta.len()..][..progress.len()])
            )
            .unwrap(),
            rec
        );
        resume_record(&data);
        // A flipped byte in the info dictionary no longer hashes to the info-hash.
        let mut bad = data.clone();
        *bad.last_mut().unwrap() ^= 1;
        let info = bad[2 + meta.len() + progress.len()..].to_vec();
        assert!(decode_record(&meta, info, Some(&progress)).is_err());
        resume_record(&bad);
        // The committed seed of the fuzz corpus is this input.
        let seed = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fuzz/corpus/resume_record/a-record"
        );
        assert_eq!(std::fs::read(seed).unwrap(), data);
    }
}
