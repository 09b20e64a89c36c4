//! The `rain` binary as users run it: output, and one clear line with exit status 1 for every
//! mistake a user can make.

use std::path::Path;
use std::process::{Command, Output};

fn rain(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rain"))
        .args(args)
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .expect("run rain")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Asserts a user error: status 1, nothing on stdout, exactly one line on stderr that
/// contains `needle`, and no panic or backtrace.
fn assert_user_error(o: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "one line expected, got: {err}");
    assert!(err.starts_with("rain: "), "{err}");
    assert!(err.contains(needle), "{err:?} should mention {needle:?}");
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
    assert!(o.stdout.is_empty());
}

fn make_file(dir: &Path, name: &str, len: usize) -> String {
    let path = dir.join(name);
    std::fs::write(&path, (0..len).map(|i| (i % 251) as u8).collect::<Vec<_>>()).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn create_show_and_infohash_agree() {
    let dir = tempfile::tempdir().unwrap();
    let data = make_file(dir.path(), "data.bin", 100_000);
    let out = dir.path().join("t.torrent");
    let out_s = out.to_str().unwrap();
    let create = |out: &str| {
        let args = [
            "-f",
            &data,
            "-o",
            out,
            "-t",
            "http://t1/a",
            "-t",
            "http://t2/a",
            "-w",
            "http://w/",
        ];
        let more = ["-c", "a comment", "-l", "32", "--no-creation-date"];
        rain(&[&["torrent", "create"][..], &args, &more].concat())
    };
    let o = create(out_s);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let created = stdout(&o);
    let hash_line = stdout(&rain(&["torrent", "infohash", "-f", out_s]));
    let hash = hash_line.trim();
    assert_eq!(hash.len(), 40);
    assert!(
        created.contains(hash),
        "create reports the info-hash: {created}"
    );

    let shown = rain(&["torrent", "show", "-f", out_s]);
    assert!(shown.status.success());
    let json: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(json["info"]["name"], "data.bin");
    assert_eq!(json["info"]["length"], 100_000);
    assert_eq!(json["info"]["piece length"], 32 * 1024);
    assert_eq!(json["info"]["pieces"], "<<< 80 bytes of data >>>");
    assert_eq!(json["announce"], "http://t1/a");
    assert_eq!(
        json["announce-list"],
        serde_json::json!([["http://t1/a"], ["http://t2/a"]])
    );
    assert_eq!(json["url-list"], "http://w/");
    assert_eq!(json["comment"], "a comment");
    assert!(json.get("creation date").is_none());

    // Same input, same bytes.
    let again = dir.path().join("again.torrent");
    let o = create(again.to_str().unwrap());
    assert!(o.status.success());
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&again).unwrap());
}

#[test]
fn version_help_and_completions() {
    for flag in ["--version", "-v"] {
        let o = rain(&[flag]);
        assert!(o.status.success());
        assert_eq!(
            stdout(&o).trim(),
            format!("rain {}", env!("CARGO_PKG_VERSION"))
        );
    }
    let o = rain(&["torrent", "create", "--help"]);
    assert!(o.status.success() && stdout(&o).contains("--piece-length"));
    let o = rain(&["completions", "bash"]);
    assert!(o.status.success() && stdout(&o).contains("complete -F"));
}

#[test]
fn user_errors_are_one_line_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let junk = make_file(dir.path(), "junk.torrent", 10);
    std::fs::write(&junk, b"not bencode").unwrap();
    let list = dir.path().join("list.torrent");
    std::fs::write(&list, b"li1ee").unwrap();
    let no_info = dir.path().join("noinfo.torrent");
    std::fs::write(&no_info, b"d3:fooi1ee").unwrap();
    let big = dir.path().join("big.torrent");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(11 * 1024 * 1024)
        .unwrap();
    let data = make_file(dir.path(), "d.bin", 10);
    let out = dir.path().join("o.torrent");
    let out = out.to_str().unwrap();
    let missing = dir.path().join("missing");
    let missing = missing.to_str().unwrap();
    let dir_s = dir.path().to_str().unwrap();

    assert_user_error(&rain(&[]), "subcommand");
    assert_user_error(&rain(&["torrent"]), "subcommand");
    assert_user_error(&rain(&["frobnicate"]), "unrecognized subcommand");
    assert_user_error(&rain(&["torrent", "show"]), "--file");
    assert_user_error(&rain(&["torrent", "show", "-f", missing]), "No such file");
    assert_user_error(&rain(&["torrent", "show", "-f", dir_s]), "is a directory");
    assert_user_error(&rain(&["torrent", "show", "-f", &junk]), "invalid bencode");
    assert_user_error(
        &rain(&["torrent", "show", "-f", list.to_str().unwrap()]),
        "not a dictionary",
    );
    assert_user_error(
        &rain(&["torrent", "show", "-f", big.to_str().unwrap()]),
        "larger than",
    );
    assert_user_error(
        &rain(&["torrent", "infohash", "-f", no_info.to_str().unwrap()]),
        "no info dictionary",
    );
    assert_user_error(&rain(&["torrent", "infohash", "-f", &junk]), "at byte");
    assert_user_error(&rain(&["torrent", "create", "-o", out]), "--file");
    assert_user_error(&rain(&["torrent", "create", "-f", &data]), "--out");
    assert_user_error(
        &rain(&["torrent", "create", "-f", missing, "-o", out]),
        "No such file",
    );
    assert_user_error(
        &rain(&["torrent", "create", "-f", &data, "-o", out, "-l", "20"]),
        "multiple of 16",
    );
    assert_user_error(
        &rain(&["torrent", "create", "-f", &data, "-o", out, "-l", "x"]),
        "invalid value",
    );
    assert_user_error(
        &rain(&["torrent", "create", "-f", &data, "-f", &data, "-o", out]),
        "--root",
    );
    assert_user_error(
        &rain(&[
            "torrent",
            "create",
            "-f",
            &data,
            "-o",
            "/nonexistent-dir/x.torrent",
        ]),
        "cannot write",
    );
    assert_user_error(&rain(&["completions", "tcsh"]), "invalid value");
}
