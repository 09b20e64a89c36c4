//! Safe file paths. A torrent names its files; those names must never reach outside the
//! torrent's directory or break the file system.
//!
//! Rules, applied to the torrent name and to every path component:
//! 1. Bytes that are not UTF-8 become U+FFFD (rain does the same).
//! 2. A component that is `..` (ignoring surrounding spaces) refuses the whole torrent: it can
//!    only be an attempt to escape, and renaming it would still put data somewhere unexpected.
//! 3. Empty components and `.` are dropped; a path left with no component is refused.
//! 4. `/` and `\` inside a component become `_`, so a component can neither be absolute nor
//!    smuggle in more directories; NUL and other control characters become `_` too.
//! 5. A component longer than 255 bytes is cut to 255, keeping its extension (rain's rule).
//! 6. Two files with the same final path, or a file whose path is a directory another file
//!    needs, refuse the torrent. Padding files (BEP 47) are exempt: they are never written.

use super::Error;

/// Longest file-name component on common file systems.
pub const MAX_COMPONENT_BYTES: usize = 255;

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
            if c == '/' || c == '\\' || c.is_control() {
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
    Ok(out)
}

fn truncate_keeping_extension(name: String, max: usize) -> String {
    if name.len() <= max {
        return name;
    }
    let ext = match name.rfind('.') {
        // Keep a short extension only; a "dot" deep inside a long name is not an extension.
        Some(i) if i > 0 && name.len() - i <= 16 => &name[i..],
        _ => "",
    };
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
