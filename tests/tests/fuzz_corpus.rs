//! Replays the committed fuzz corpus through the fuzz bodies on every `cargo test`, so a
//! regression input found once stays fixed, and every target's body keeps compiling and running
//! without the fuzzer.

use std::path::Path;

use rain_proto::fuzz;

/// A fuzz body: raw bytes in, a panic on a broken invariant.
type Body = fn(&[u8]);

/// Every cargo-fuzz target and its body. A corpus folder with no entry here fails the test.
const TARGETS: &[(&str, Body)] = &[
    ("bencode_decode", fuzz::torrent::bencode_decode),
    ("metainfo_parse", fuzz::torrent::metainfo_parse),
    ("magnet_parse", fuzz::torrent::magnet_parse),
    ("peer_handshake", fuzz::wire::handshake),
    ("wire_message", fuzz::wire::message),
    ("ext_handshake", fuzz::extension::ext_handshake),
    ("ut_metadata", fuzz::extension::ut_metadata),
    ("ut_pex", fuzz::extension::ut_pex),
    ("mse_initiator", fuzz::mse::mse_initiator),
    ("mse_receiver", fuzz::mse::mse_receiver),
    ("mse_pair", fuzz::mse::mse_pair),
    ("dht_krpc", fuzz::dht::krpc),
    ("http_tracker", fuzz::tracker::http_tracker),
    ("udp_tracker", fuzz::tracker::udp_tracker),
    ("torrent_machine", fuzz::torrent_machine::torrent_machine),
    ("resume_record", rain_runtime::fuzz::resume_record),
];

#[test]
fn corpus_replays_without_panics() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let mut replayed = 0;
    for dir in std::fs::read_dir(&corpus).expect("fuzz/corpus exists") {
        let dir = dir.unwrap().path();
        let name = dir.file_name().unwrap().to_str().unwrap().to_owned();
        let body = TARGETS
            .iter()
            .find(|(t, _)| *t == name)
            .unwrap_or_else(|| panic!("corpus folder {name} has no fuzz body in TARGETS"))
            .1;
        for input in std::fs::read_dir(&dir).unwrap() {
            let path = input.unwrap().path();
            body(&std::fs::read(&path).unwrap());
            replayed += 1;
        }
    }
    for (name, _) in TARGETS {
        assert!(
            corpus.join(name).is_dir(),
            "fuzz target {name} has no committed corpus"
        );
    }
    assert!(replayed >= TARGETS.len(), "only {replayed} corpus inputs");
}

#[test]
fn every_fuzz_target_is_registered() {
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/Cargo.toml"))
            .unwrap();
    for (name, _) in TARGETS {
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "{name} missing from fuzz/Cargo.toml"
        );
    }
}
