//! The checks themselves can fail: a swarm that cannot complete is reported as a liveness
//! failure with its seed, and a payload that differs is reported with the first difference.

use std::time::Duration;

use rain_sim::{ContentSpec, Scenario, SimError, run};

#[test]
fn a_swarm_without_seeders_fails_liveness() {
    let s = Scenario::new(11)
        .seeders(0)
        .leechers(2)
        .budget(Duration::from_secs(20));
    match run(&s) {
        Err(SimError::Liveness { seed, pending, .. }) => {
            assert_eq!(seed, 11);
            assert_eq!(pending.len(), 2);
        }
        other => panic!("expected a liveness failure, got {other:?}"),
    }
}

#[test]
fn a_changed_byte_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ContentSpec::random_between(5, 100_000, 200_000, 3);
    let content = spec.materialize(&dir.path().join("src")).unwrap();
    let copy = dir.path().join("copy");
    content.write_to(&copy).unwrap();
    assert_eq!(content.check(&copy), Ok(()));
    let (rel, bytes) = content.files.iter().find(|(_, b)| !b.is_empty()).unwrap();
    let mut bad = bytes.clone();
    let at = bad.len() / 2;
    bad[at] ^= 1;
    std::fs::write(copy.join(rel), &bad).unwrap();
    let err = content.check(&copy).unwrap_err();
    assert!(err.contains(&format!("differs at byte {at}")), "{err}");
}
