//! Safe file paths. A torrent names its files; those names must never reach outside the
//! torrent's directory or break the file system.
//!
//! Rules, applied to the torrent name and to every path component:
//! 1. Bytes that are not UTF-8 become U+FFFD (rain does the same).
//! 2. A component that is `..` (ignoring surrounding spaces) refuses the whole torrent: it can
//!    only be an attempt to escape, and renaming it would still put data somewhere unexpected.
//! 3. Empty components and `.` are dropped; a path left with no component is refused.
//! 4. `/` and `\` inside a component become `_`, so a component can neither be absolute nor
//!    smuggle in more directories; NUL and other control characters become `_` too, and so do
//!    the invisible format characters that spoof names (bidi overrides such as U+202E, which
//!    shows `exe.txt` for `txt.exe`, zero-width spaces and joiners, the BOM).
//! 5. A component longer than 255 bytes is cut to 255, keeping its extension (rain's rule).
//! 6. A path of more than [`MAX_PATH_COMPONENTS`] components or [`MAX_PATH_BYTES`] bytes is
//!    refused: it could not be created under a data directory within the OS's `PATH_MAX`.
//! 7. Two files with the same final path, or a file whose path is a directory another file
//!    needs, refuse the torrent. Padding files (BEP 47) are exempt: they are never written.
//! 8. Paths that differ only in letter case (`Readme` and `README`, or a file `readme` beside
//!    a directory `README`) are valid on Linux, but on a case-insensitive file system (macOS
//!    and Windows by default) they are the same file and would overwrite each other. So the
//!    later file is renamed, the same way on every OS: a number goes before its extension
//!    (`README.1`, `a.1.txt`), the first one whose case-folded path is free. A file that finds
//!    no free name within [`MAX_RENAME_TRIES`] refuses the torrent.

use super::Error;

/// Longest file-name component on common file systems.
pub const MAX_COMPONENT_BYTES: usize = 255;
/// Most components (directory depth plus the file name) in one file's path.
pub const MAX_PATH_COMPONENTS: usize = 100;
/// Longest relative path in bytes (components joined by `/`): Linux's `PATH_MAX` of 4096
/// less room for the data directory.
pub const MAX_PATH_BYTES: usize = 3072;
/// Most numbered names tried for one file whose path differs from another's only in case
/// (rule 8) before the torrent is refused: it bounds the work a torrent full of near-clashes
/// can cause.
pub const MAX_RENAME_TRIES: u32 = 1000;

/// Invisible characters that change how a name is displayed: bidi embeddings, overrides and
/// isolates, the Arabic letter mark, zero-width spaces and joiners, and the BOM.
fn is_spoofing_format(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}'
    )
}

/// Sanitises one component by rules 1, 2, 4 and 5. Returns `Ok(None)` for a component that is
/// dropped (rule 3).
pub fn sanitize_component(raw: &[u8]) -> Result<Option<String>, Error> {
    let text = String::from_utf8_lossy(raw);
    if text.trim_matches(' ') == ".." {
        return Err(Error::PathTraversal(text.into_owned()));
    }
    if text.is_empty() || text == "." {
        return Ok(None);
    }
    let cleaned: String = text
        .chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_control() || is_spoofing_format(c) {
                '_'
            } else {
                c
            }
        })
        .collect();
    Ok(Some(truncate_keeping_extension(
        cleaned,
        MAX_COMPONENT_BYTES,
    )))
}

/// Sanitises a whole path (a list of components); refuses paths with no component left.
pub fn sanitize_path<'a>(
    components: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    for raw in components {
        if let Some(c) = sanitize_component(raw)? {
            out.push(c);
        }
    }
    if out.is_empty() {
        return Err(Error::EmptyPath);
    }
    let bytes = out.iter().map(String::len).sum::<usize>() + out.len() - 1;
    if out.len() > MAX_PATH_COMPONENTS || bytes > MAX_PATH_BYTES {
        return Err(Error::PathTooLong {
            components: out.len(),
            bytes,
        });
    }
    Ok(out)
}

/// The extension of `name`, dot included, or `""`. Only a short one counts: a "dot" deep
/// inside a long name is not an extension, and a leading dot (`.bashrc`) starts the name.
fn extension(name: &str) -> &str {
    match name.rfind('.') {
        Some(i) if i > 0 && name.len() - i <= 16 => &name[i..],
        _ => "",
    }
}

/// `name` with `.n` before its extension (`a.txt` → `a.1.txt`, `README` → `README.1`), the
/// stem cut if needed so the result still fits [`MAX_COMPONENT_BYTES`] (rule 8).
pub(super) fn numbered(name: &str, n: u32) -> String {
    let ext = extension(name);
    let stem = &name[..name.len() - ext.len()];
    let tag = format!(".{n}");
    let mut cut = stem.len().min(MAX_COMPONENT_BYTES - tag.len() - ext.len());
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{tag}{ext}", &stem[..cut])
}

fn truncate_keeping_extension(name: String, max: usize) -> String {
    if name.len() <= max {
        return name;
    }
    let ext = extension(&name);
    let mut cut = max - ext.len();
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{}", &name[..cut], ext)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_follow_the_rules() {
        assert_eq!(
            sanitize_component(b"a.txt").unwrap().as_deref(),
            Some("a.txt")
        );
        assert_eq!(sanitize_component(b"").unwrap(), None);
        assert_eq!(sanitize_component(b".").unwrap(), None);
        assert!(matches!(
            sanitize_component(b".."),
            Err(Error::PathTraversal(_))
        ));
        assert!(matches!(
            sanitize_component(b" .. "),
            Err(Error::PathTraversal(_))
        ));
        assert_eq!(
            sanitize_component(b"/etc").unwrap().as_deref(),
            Some("_etc")
        );
        assert_eq!(
            sanitize_component(b"a\\..\\b").unwrap().as_deref(),
            Some("a_.._b")
        );
        assert_eq!(
            sanitize_component(b"nul\0byte").unwrap().as_deref(),
            Some("nul_byte")
        );
        assert_eq!(
            sanitize_component(b"bad\xffutf8").unwrap().as_deref(),
            Some("bad\u{fffd}utf8")
        );
        assert_eq!(sanitize_component(b"...").unwrap().as_deref(), Some("..."));
    }

    #[test]
    fn long_names_keep_their_extension_and_char_boundaries() {
        let long = format!("{}.mkv", "x".repeat(300));
        let cut = sanitize_component(long.as_bytes()).unwrap().unwrap();
        assert_eq!(cut.len(), 255);
        assert_eq!(
            std::path::Path::new(&cut)
                .extension()
                .and_then(|e| e.to_str()),
            Some("mkv")
        );
        let wide = "é".repeat(200); // 400 bytes
        let cut = sanitize_component(wide.as_bytes()).unwrap().unwrap();
        assert!(cut.len() <= 255 && cut.chars().all(|c| c == 'é'));
    }

    #[test]
    fn spoofing_format_characters_are_replaced() {
        // "invoice\u{202E}fdp.exe" displays as "invoiceexe.pdf".
        let c = sanitize_component("invoice\u{202E}fdp.exe".as_bytes())
            .unwrap()
            .unwrap();
        assert_eq!(c, "invoice_fdp.exe");
        for ch in ['\u{200B}', '\u{200D}', '\u{2066}', '\u{FEFF}', '\u{061C}'] {
            let c = sanitize_component(format!("a{ch}b").as_bytes())
                .unwrap()
                .unwrap();
            assert_eq!(c, "a_b", "{ch:?}");
        }
        // Ordinary non-ASCII text is kept.
        let c = sanitize_component("Café – ünïcödé 日本".as_bytes())
            .unwrap()
            .unwrap();
        assert_eq!(c, "Café – ünïcödé 日本");
    }

    #[test]
    fn numbered_names_keep_the_extension_and_the_length_limit() {
        assert_eq!(numbered("README", 1), "README.1");
        assert_eq!(numbered("a.txt", 2), "a.2.txt");
        assert_eq!(numbered(".bashrc", 3), ".bashrc.3");
        let long = format!("{}.mkv", "é".repeat(126)); // 256 bytes before the cut
        let cut = sanitize_component(long.as_bytes()).unwrap().unwrap();
        let n = numbered(&cut, 12);
        assert!(n.len() <= MAX_COMPONENT_BYTES, "{}", n.len());
        assert!(n.ends_with("é.12.mkv"), "{n}");
    }

    #[test]
    fn too_deep_or_too_long_paths_are_refused() {
        let deep: Vec<&[u8]> = vec![b"d"; MAX_PATH_COMPONENTS];
        assert!(sanitize_path(deep.iter().copied()).is_ok());
        let deeper: Vec<&[u8]> = vec![b"d"; MAX_PATH_COMPONENTS + 1];
        assert!(matches!(
            sanitize_path(deeper.iter().copied()),
            Err(Error::PathTooLong {
                components: 101,
                ..
            })
        ));
        let long = vec![b'x'; 255];
        let parts: Vec<&[u8]> = vec![&long[..]; 13]; // 13 * 256 - 1 bytes
        assert!(matches!(
            sanitize_path(parts.iter().copied()),
            Err(Error::PathTooLong {
                components: 13,
                bytes: 3327
            })
        ));
    }

    #[test]
    fn paths_drop_empty_parts_and_refuse_empty_results() {
        let p = sanitize_path([&b"a"[..], b"", b".", b"b"]).unwrap();
        assert_eq!(p, ["a", "b"]);
        assert_eq!(sanitize_path([&b""[..], b"."]), Err(Error::EmptyPath));
        assert!(matches!(
            sanitize_path([&b"a"[..], b".."]),
            Err(Error::PathTraversal(_))
        ));
    }
}
