//! Verification of existing data: read each piece from a [`Storage`], SHA-1 it on all cores
//! and compare with the torrent's hashes, giving the pieces that are intact.
//!
//! Worker threads each read and hash whole pieces into their own buffer, so memory stays at
//! `threads × piece_length`; results come back over a bounded channel to the calling thread,
//! which reports progress. Data that is not there (a missing or short file) just fails its
//! pieces; any other read error stops the verification (rain stops the torrent). A cancel flag
//! stops it between pieces.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread;

use rain_proto::hash::sha1;

use crate::storage::{Storage, StorageError};

/// How to verify.
#[derive(Debug, Clone, Copy, Default)]
pub struct VerifyOptions<'a> {
    /// Hashing threads; 0 uses every core.
    pub threads: usize,
    /// Check only the pieces flagged here (one flag per piece); the others come back `false`.
    /// `None` checks every piece.
    pub only: Option<&'a [bool]>,
    /// Set it (from any thread) to stop the verification.
    pub cancel: Option<&'a AtomicBool>,
}

/// Progress so far, reported after each piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyProgress {
    /// Pieces checked.
    pub checked: u32,
    /// Pieces to check in all.
    pub total: u32,
}

/// Why a verification did not finish.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The cancel flag was set.
    #[error("verification cancelled")]
    Cancelled,
    /// Reading the data failed (other than data being absent).
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The hash list or the `only` flags do not match the storage's piece count.
    #[error("storage has {pieces} pieces but {given} hashes or flags were given")]
    PieceCount {
        /// Pieces in the storage layout.
        pieces: u32,
        /// Length of the list given.
        given: usize,
    },
}

/// What to hash before a torrent with metadata starts, given what the resume store recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StartCheck {
    /// The recorded pieces stand as they are; nothing is hashed.
    Trust,
    /// No file exists: the torrent starts empty, whatever was recorded.
    Empty,
    /// Hash the flagged pieces (every piece when `None`); the others keep their recorded bit
    /// (see [`merge_checked`]).
    Verify(Option<Vec<bool>>),
}

/// Decides what to hash before a start.
///
/// - `recorded`: the pieces the resume store (or the running machine) holds complete.
/// - `durable`: whether every recorded piece is known to be on disk intact: after a clean
///   shutdown, or once the machine has run. After an unclean end the recorded pieces are
///   still durable ([`crate::resume`]'s rule 2: a piece is recorded only after its data was
///   flushed), but pieces written after the last progress write are not recorded, so the
///   unrecorded ones are hashed to find them.
/// - `in_missing_file`: one flag per piece, set when the piece touches a file that does not
///   exist; such a piece is hashed (and fails) whatever was recorded.
/// - `any_file`: whether any data file exists at all.
pub(crate) fn start_check(
    recorded: Option<&[bool]>,
    durable: bool,
    in_missing_file: &[bool],
    any_file: bool,
) -> StartCheck {
    if !any_file {
        return StartCheck::Empty;
    }
    let Some(recorded) = recorded.filter(|r| r.len() == in_missing_file.len()) else {
        return StartCheck::Verify(None);
    };
    let only: Vec<bool> = recorded
        .iter()
        .zip(in_missing_file)
        .map(|(&have, &missing)| missing || (!durable && !have))
        .collect();
    if only.iter().any(|&b| b) {
        StartCheck::Verify(Some(only))
    } else {
        StartCheck::Trust
    }
}

/// The bitfield after a partial verification: the hashed pieces take their result, the
/// others keep their recorded bit.
pub(crate) fn merge_checked(verified: &mut [bool], only: &[bool], recorded: &[bool]) {
    for ((v, &checked), &have) in verified.iter_mut().zip(only).zip(recorded) {
        if !checked {
            *v = have;
        }
    }
}

/// Verifies `storage` against `hashes` (one per piece). Returns one flag per piece: `true` if
/// the stored piece hashes to its expected value.
pub fn verify(
    storage: &dyn Storage,
    hashes: &[[u8; 20]],
    opts: &VerifyOptions<'_>,
    mut progress: impl FnMut(VerifyProgress),
) -> Result<Vec<bool>, VerifyError> {
    let count = storage.layout().piece_count();
    let lengths = std::iter::once(hashes.len()).chain(opts.only.map(<[bool]>::len));
    if let Some(given) = lengths.into_iter().find(|&l| l != count as usize) {
        return Err(VerifyError::PieceCount {
            pieces: count,
            given,
        });
    }
    let todo: Vec<u32> = (0..count)
        .filter(|&i| opts.only.is_none_or(|only| only[i as usize]))
        .collect();
    let total = todo.len() as u32;
    let mut result = vec![false; count as usize];
    if todo.is_empty() {
        return Ok(result);
    }
    let threads = if opts.threads == 0 {
        thread::available_parallelism().map_or(1, usize::from)
    } else {
        opts.threads
    }
    .min(todo.len());
    let never = AtomicBool::new(false);
    let cancel = opts.cancel.unwrap_or(&never);
    // Set when a worker hits a real I/O error, so the others stop too.
    let failed = AtomicBool::new(false);
    let next = AtomicU32::new(0);
    let (tx, rx) = mpsc::sync_channel::<(u32, Result<bool, StorageError>)>(threads * 2);
    let mut error = None;
    let mut checked = 0;
    thread::scope(|s| {
        for _ in 0..threads {
            let tx = tx.clone();
            let (todo, next, failed) = (&todo, &next, &failed);
            s.spawn(move || {
                let mut buf = Vec::new();
                while !cancel.load(Ordering::Relaxed) && !failed.load(Ordering::Relaxed) {
                    let Some(&index) = todo.get(next.fetch_add(1, Ordering::Relaxed) as usize)
                    else {
                        break;
                    };
                    let outcome = match storage.read_piece(index, &mut buf) {
                        Ok(()) => Ok(sha1(&buf) == hashes[index as usize]),
                        Err(e) if e.is_absent_data() => Ok(false),
                        Err(e) => {
                            failed.store(true, Ordering::Relaxed);
                            Err(e)
                        }
                    };
                    if tx.send((index, outcome)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        for (index, outcome) in rx {
            match outcome {
                Ok(ok) => {
                    result[index as usize] = ok;
                    checked += 1;
                    progress(VerifyProgress { checked, total });
                }
                Err(e) => {
                    error.get_or_insert(e);
                }
            }
        }
    });
    if let Some(e) = error {
        return Err(e.into());
    }
    if checked < total {
        return Err(VerifyError::Cancelled);
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::sync::Arc;

    use bytes::Bytes;
    use rain_proto::metainfo::Info;

    use super::*;
    use crate::storage::{FileCache, FileStorage, MemoryStorage};

    /// A torrent over `files` with real piece hashes of deterministic content.
    fn torrent(files: &[(&str, u64, bool)]) -> (Info, Vec<u8>) {
        let mut info = crate::storage::layout_tests_info(64, files);
        let data: Vec<u8> = (0..info.total_length)
            .map(|i| (i as u8).wrapping_mul(13) ^ 0x5a)
            .collect();
        let mut stream = data.clone();
        let mut at = 0;
        for &(_, len, pad) in files {
            if pad {
                stream[at..at + len as usize].fill(0);
            }
            at += len as usize;
        }
        info.pieces = stream.chunks(64).map(sha1).collect();
        (info, stream)
    }

    fn write_all(s: &dyn Storage, stream: &[u8]) {
        for i in 0..s.layout().piece_count() {
            let (off, len) = s.layout().piece(i).unwrap();
            let piece = &stream[off as usize..off as usize + len as usize];
            s.write_piece(i, &[Bytes::copy_from_slice(piece)]).unwrap();
        }
    }

    #[test]
    fn finds_exactly_the_intact_pieces() {
        // a: 0..150, pad: 150..192, b: 192..400, c: 400..650 (pieces of 64 bytes: 11).
        let files = [
            ("a", 150, false),
            (".pad/42", 42, true),
            ("b", 208, false),
            ("c", 250, false),
        ];
        let (info, stream) = torrent(&files);
        let dir = tempfile::tempdir().unwrap();
        let s = FileStorage::new(
            &info,
            dir.path().to_owned(),
            0o750,
            Arc::new(FileCache::new(2)),
        )
        .unwrap();
        write_all(&s, &stream);
        let count = info.piece_count() as usize;
        let all = verify(&s, &info.pieces, &VerifyOptions::default(), |_| {}).unwrap();
        assert_eq!(all, vec![true; count]);

        // Corrupt one byte of piece 1 (in `a`) and delete `b` (pieces 3..=6).
        s.close_files();
        let a = s.path(0).unwrap();
        let mut bytes = fs::read(a).unwrap();
        bytes[70] ^= 1;
        fs::write(a, bytes).unwrap();
        fs::remove_file(s.path(2).unwrap()).unwrap();
        let mut seen = Vec::new();
        for threads in [1, 3] {
            let opts = VerifyOptions {
                threads,
                ..VerifyOptions::default()
            };
            seen.clear();
            let got = verify(&s, &info.pieces, &opts, |p| seen.push(p)).unwrap();
            let want: Vec<bool> = (0..count)
                .map(|i| !(i == 1 || (3..=6).contains(&i)))
                .collect();
            assert_eq!(got, want, "threads={threads}");
            assert_eq!(seen.len(), count);
            assert!(
                seen.iter()
                    .enumerate()
                    .all(|(n, p)| p.checked as usize == n + 1)
            );
            assert_eq!(seen.last().unwrap().total, count as u32);
        }
        assert_eq!(s.layout().file_pieces(2), 3..7, "the deleted file's pieces");

        // Only the flagged pieces are checked.
        let only: Vec<bool> = (0..count).map(|i| i < 2).collect();
        let opts = VerifyOptions {
            only: Some(&only),
            ..VerifyOptions::default()
        };
        let got = verify(&s, &info.pieces, &opts, |_| {}).unwrap();
        assert_eq!(&got[..3], [true, false, false]);
        assert!(got[3..].iter().all(|b| !b));
    }

    #[test]
    fn start_check_hashes_only_what_may_have_changed() {
        let rec = [true, false, true, false];
        let none = [false; 4];
        assert_eq!(
            start_check(Some(&rec), true, &none, false),
            StartCheck::Empty
        );
        assert_eq!(
            start_check(None, true, &none, true),
            StartCheck::Verify(None)
        );
        assert_eq!(
            start_check(Some(&rec[..3]), true, &none, true),
            StartCheck::Verify(None),
            "a bitfield of the wrong length is not used"
        );
        assert_eq!(
            start_check(Some(&rec), true, &none, true),
            StartCheck::Trust
        );
        // After a crash, the unrecorded pieces are hashed; a seed has nothing to hash.
        assert_eq!(
            start_check(Some(&rec), false, &none, true),
            StartCheck::Verify(Some(vec![false, true, false, true]))
        );
        assert_eq!(
            start_check(Some(&[true; 4]), false, &none, true),
            StartCheck::Trust
        );
        // A missing file's pieces are hashed even when recorded and durable.
        let missing = [false, false, true, true];
        assert_eq!(
            start_check(Some(&rec), true, &missing, true),
            StartCheck::Verify(Some(vec![false, false, true, true]))
        );
        let mut got = vec![false, true, false, false];
        merge_checked(&mut got, &[false, true, true, true], &rec);
        assert_eq!(got, [true, true, false, false]);
    }

    #[test]
    fn memory_storage_cancel_and_mismatched_input() {
        let (info, stream) = torrent(&[("x", 1000, false)]);
        let m = MemoryStorage::new(&info);
        let none = verify(&m, &info.pieces, &VerifyOptions::default(), |_| {}).unwrap();
        assert!(none.iter().all(|b| !b), "empty storage matches nothing");
        write_all(&m, &stream);
        let all = verify(&m, &info.pieces, &VerifyOptions::default(), |_| {}).unwrap();
        assert!(all.iter().all(|b| *b));

        let cancel = AtomicBool::new(true);
        let opts = VerifyOptions {
            cancel: Some(&cancel),
            ..VerifyOptions::default()
        };
        assert!(matches!(
            verify(&m, &info.pieces, &opts, |_| {}),
            Err(VerifyError::Cancelled)
        ));
        // Cancelling midway from the progress callback.
        let cancel = AtomicBool::new(false);
        let opts = VerifyOptions {
            threads: 1,
            cancel: Some(&cancel),
            ..VerifyOptions::default()
        };
        let result = verify(&m, &info.pieces, &opts, |p| {
            if p.checked == 3 {
                cancel.store(true, Ordering::Relaxed);
            }
        });
        assert!(matches!(result, Err(VerifyError::Cancelled)));
        assert!(matches!(
            verify(&m, &info.pieces[1..], &VerifyOptions::default(), |_| {}),
            Err(VerifyError::PieceCount { .. })
        ));
    }
}
