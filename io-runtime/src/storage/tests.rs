//! Tests of the storages against each other and against a plain byte model.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use proptest::prelude::*;

use super::layout::tests::info;
use super::*;

fn blocks(data: &[u8], size: usize) -> Vec<Bytes> {
    data.chunks(size).map(Bytes::copy_from_slice).collect()
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed) | 1)
        .collect()
}

#[test]
fn file_storage_layout_modes_and_missing_files() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Arc::new(FileCache::new(8));
    let i = info(
        8,
        &[("a", 5, false), (".pad/3", 3, true), ("sub/b", 12, false)],
    );
    let opts = FileStorageOptions::new(dir.path());
    let s = FileStorage::for_torrent(&i, "ID", &opts, Arc::clone(&cache)).unwrap();
    assert_eq!(s.root(), dir.path().join("ID"));
    assert_eq!(s.path(2).unwrap(), dir.path().join("ID/t/sub/b"));
    assert_eq!(s.missing_files().unwrap(), [0, 2]);
    assert!(!s.any_file_exists().unwrap());

    // Reading data that was never written is an error that says so.
    let mut buf = [0u8; 4];
    let err = s.read(0, &mut buf).unwrap_err();
    assert!(matches!(err, StorageError::Missing { .. }) && err.is_absent_data());
    // Piece 1 (8..16) is all of `sub/b`'s first half: writing it creates only that file.
    let piece1 = pattern(8, 1);
    s.write_piece(1, &blocks(&piece1, 3)).unwrap();
    assert_eq!(s.missing_files().unwrap(), [0]);
    assert!(s.any_file_exists().unwrap());
    let b = dir.path().join("ID/t/sub/b");
    assert_eq!(
        fs::metadata(&b).unwrap().len(),
        12,
        "created at full length"
    );
    let file_mode = fs::metadata(&b).unwrap().permissions().mode() & 0o777;
    let dir_mode = fs::metadata(b.parent().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(file_mode & !0o640, 0, "file mode {file_mode:o}");
    assert_ne!(file_mode & 0o600, 0);
    assert_eq!(dir_mode & !0o750, 0, "dir mode {dir_mode:o}");
    assert_ne!(dir_mode & 0o700, 0);
    let mut back = Vec::new();
    s.read_piece(1, &mut back).unwrap();
    assert_eq!(back, piece1);

    // Piece 0 is `a` (5 bytes) then padding: padding is dropped and reads as zeros.
    let piece0 = pattern(8, 2);
    s.write_piece(0, &[Bytes::copy_from_slice(&piece0)])
        .unwrap();
    s.read_piece(0, &mut back).unwrap();
    assert_eq!(&back[..5], &piece0[..5]);
    assert_eq!(&back[5..], [0, 0, 0]);
    assert!(
        !dir.path().join("ID/t/.pad").exists(),
        "padding never created"
    );
    assert_eq!(fs::read(dir.path().join("ID/t/a")).unwrap(), &piece0[..5]);
    s.flush().unwrap();

    // Misuse is an error, not a panic.
    assert!(matches!(
        s.write_piece(1, &blocks(&piece1[..7], 4)),
        Err(StorageError::PieceLength {
            index: 1,
            expected: 8,
            got: 7
        })
    ));
    assert!(matches!(
        s.write_piece(9, &[]),
        Err(StorageError::NoSuchPiece(9))
    ));
    assert!(matches!(
        s.read(18, &mut buf),
        Err(StorageError::OutOfRange { total: 20, .. })
    ));

    // A file someone truncated is reported, and files are never shortened by us.
    s.close_files();
    fs::OpenOptions::new()
        .write(true)
        .open(&b)
        .unwrap()
        .set_len(4)
        .unwrap();
    assert!(matches!(
        s.read(8, &mut [0u8; 8]),
        Err(StorageError::ShortFile { .. })
    ));
    fs::OpenOptions::new()
        .write(true)
        .open(&b)
        .unwrap()
        .set_len(100)
        .unwrap();
    s.write_piece(2, &blocks(&pattern(4, 3), 4)).unwrap();
    assert_eq!(fs::metadata(&b).unwrap().len(), 100, "never truncated");
    fs::OpenOptions::new()
        .write(true)
        .open(dir.path().join("ID/t/a"))
        .unwrap()
        .set_len(1)
        .unwrap();
    s.allocate().unwrap();
    assert!(s.missing_files().unwrap().is_empty());
    assert_eq!(
        fs::metadata(dir.path().join("ID/t/a")).unwrap().len(),
        5,
        "allocate extends"
    );
    assert!(!dir.path().join("ID/t/.pad").exists());

    // Removing the data leaves nothing of the torrent, and nothing else is touched.
    fs::write(dir.path().join("other"), b"keep").unwrap();
    s.remove_files().unwrap();
    assert!(!dir.path().join("ID").exists());
    assert!(dir.path().join("other").exists());
    assert_eq!(cache.open_count(), 0);
    s.remove_files().unwrap();
}

#[test]
fn single_file_torrent_is_one_file_named_after_the_torrent() {
    let dir = tempfile::tempdir().unwrap();
    let mut i = info(4, &[("ignored", 6, false)]);
    i.multi_file = false;
    i.name = "one.iso".into();
    let opts = FileStorageOptions {
        data_dir_includes_torrent_id: false,
        ..FileStorageOptions::new(dir.path())
    };
    let s = FileStorage::for_torrent(&i, "ID", &opts, Arc::new(FileCache::new(1))).unwrap();
    s.write_piece(1, &[Bytes::from_static(b"xy")]).unwrap();
    assert_eq!(fs::read(dir.path().join("one.iso")).unwrap(), b"\0\0\0\0xy");
    s.remove_files().unwrap();
    assert!(!dir.path().join("one.iso").exists());
    assert!(dir.path().exists(), "a shared data-dir is kept");
}

#[test]
fn many_files_through_a_small_cache() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Arc::new(FileCache::new(3));
    let files: Vec<(String, u64, bool)> = (0..50).map(|i| (format!("f{i}"), 7, false)).collect();
    let spec: Vec<(&str, u64, bool)> = files.iter().map(|(p, l, b)| (p.as_str(), *l, *b)).collect();
    let i = info(16, &spec);
    let a = FileStorage::new(&i, dir.path().join("a"), 0o750, Arc::clone(&cache)).unwrap();
    let b = FileStorage::new(&i, dir.path().join("b"), 0o750, Arc::clone(&cache)).unwrap();
    let data = pattern(i.total_length as usize, 9);
    for p in 0..i.piece_count() {
        let (off, len) = a.layout().piece(p).unwrap();
        let piece = &data[off as usize..off as usize + len as usize];
        a.write_piece(p, &blocks(piece, 5)).unwrap();
        b.write_piece(p, &blocks(piece, 16)).unwrap();
        assert!(cache.open_count() <= 3);
    }
    a.flush().unwrap();
    for s in [&a, &b] {
        let mut all = vec![0; data.len()];
        s.read(0, &mut all).unwrap();
        assert_eq!(all, data);
        assert!(cache.open_count() <= 3);
    }
}

/// Piece length, `(length, padding)` files, and writes of `(piece selector, seed, block size)`.
type Scenario = (u32, Vec<(u64, bool)>, Vec<(u32, u8, usize)>);

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        prop::sample::select(vec![4u32, 16, 32]),
        prop::collection::vec((0u64..70, prop::bool::weighted(0.3)), 1..6),
        prop::collection::vec((any::<u32>(), any::<u8>(), 1usize..20), 1..12),
    )
        .prop_filter("torrent has bytes", |(_, files, _)| {
            files.iter().map(|f| f.0).sum::<u64>() > 0
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn file_and_memory_storage_hold_the_same_bytes((piece_length, files, writes) in scenario()) {
        let names: Vec<String> = files
            .iter()
            .enumerate()
            .map(|(n, (_, pad))| if *pad { format!(".pad/{n}") } else { format!("d{}/f{n}", n % 2) })
            .collect();
        let spec: Vec<(&str, u64, bool)> = names
            .iter()
            .zip(&files)
            .map(|(n, (l, p))| (n.as_str(), *l, *p))
            .collect();
        let i = info(piece_length, &spec);
        let dir = tempfile::tempdir().unwrap();
        let cache = Arc::new(FileCache::new(2));
        let disk = FileStorage::new(&i, dir.path().join("root"), 0o750, cache).unwrap();
        let mem = MemoryStorage::new(&i);
        let layout = Layout::new(&i);
        let mut model = vec![0u8; i.total_length as usize];
        let mut written = Vec::new();
        for (sel, seed, block) in writes {
            let index = sel % i.piece_count();
            let (off, len) = layout.piece(index).unwrap();
            let data = pattern(len as usize, seed);
            disk.write_piece(index, &blocks(&data, block)).unwrap();
            mem.write_piece(index, &blocks(&data, block + 1)).unwrap();
            model[off as usize..off as usize + len as usize].copy_from_slice(&data);
            written.push(index);
        }
        for f in layout.files().iter().filter(|f| f.padding) {
            model[f.offset as usize..f.end() as usize].fill(0);
        }
        prop_assert_eq!(mem.snapshot(), model.clone());
        for &index in &written {
            let (off, len) = layout.piece(index).unwrap();
            let want = &model[off as usize..off as usize + len as usize];
            let (mut a, mut b) = (Vec::new(), Vec::new());
            disk.read_piece(index, &mut a).unwrap();
            mem.read_piece(index, &mut b).unwrap();
            prop_assert_eq!(&a, want);
            prop_assert_eq!(&b, want);
        }
        for (n, f) in layout.files().iter().enumerate() {
            let path = disk.path(n).unwrap();
            let on_disk = path.exists();
            if f.padding {
                prop_assert!(!on_disk, "padding file {} created", path.display());
                prop_assert!(!Path::new(&dir.path().join("root/t/.pad")).exists());
            } else if on_disk {
                prop_assert_eq!(fs::read(path).unwrap(), &model[f.offset as usize..f.end() as usize]);
            }
            prop_assert_eq!(disk.exists(n).unwrap(), mem.exists(n).unwrap());
        }
    }
}
