//! How each type of setting is read from a YAML node and written back.
//!
//! The rules follow rain's Go decoder, strict where Go is strict:
//! - **booleans**: unquoted `true`/`false` (any case form YAML allows), and YAML 1.1's
//!   `yes`/`no`/`on`/`off`/`y`/`n`, which Go's decoder also accepts for boolean fields;
//! - **integers**: unquoted, read like Go's `strconv.ParseInt(s, 0, 64)`: decimal, `0x…`, `0o…`,
//!   `0b…`, and a leading `0` means octal; `_` may separate digits. A quoted number is a string,
//!   which Go refuses for an integer field, and so do we. Negative values and values beyond the
//!   field's range are errors;
//! - **durations**: a Go duration string, quoted or not (see [`super::duration`]). A bare number
//!   has no unit and is an error, except `0`. (Go's decoder would read an integer as
//!   nanoseconds, which no rain config means, so integers are not accepted as seconds either.);
//! - **strings and paths**: any scalar, as written;
//! - **lists**: a YAML sequence of scalars; no value means an empty list;
//! - **file permissions**: see [`Mode`].
//!
//! A key with no value (`key:`, `key: ~`) keeps its default, as Go's decoder leaves the field
//! untouched; for a list it means the empty list.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use saphyr::MarkedYaml;

use super::duration::{format_go_duration, parse_go_duration};
use super::yaml::{Scalar, Shape, describe, line, shape};

/// Why a value was refused, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Bad {
    /// 1-based line of the offending node.
    pub(crate) line: usize,
    /// One-line description.
    pub(crate) reason: String,
}

impl Bad {
    fn at(node: &MarkedYaml<'_>, reason: impl Into<String>) -> Bad {
        Bad {
            line: line(node),
            reason: reason.into(),
        }
    }

    fn expected(node: &MarkedYaml<'_>, what: &str) -> Bad {
        Bad::at(node, format!("expected {what}, found {}", describe(node)))
    }
}

/// One type of setting.
pub(crate) trait Kind {
    /// The Rust type of the field.
    type Value;
    /// Reads a node: `Ok(None)` means "no value, keep the default".
    fn parse(node: &MarkedYaml<'_>) -> Result<Option<Self::Value>, Bad>;
    /// Writes a value as YAML that [`Kind::parse`] reads back.
    fn dump(value: &Self::Value) -> String;
}

/// `true`/`false`.
pub(crate) struct Bool;

impl Kind for Bool {
    type Value = bool;

    fn parse(node: &MarkedYaml<'_>) -> Result<Option<bool>, Bad> {
        const EXPECTED: &str = "true or false";
        match shape(node) {
            Shape::Scalar(Scalar::Null) => Ok(None),
            Shape::Scalar(Scalar::Plain(t)) => match t {
                "true" | "True" | "TRUE" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" | "y"
                | "Y" => Ok(Some(true)),
                "false" | "False" | "FALSE" | "no" | "No" | "NO" | "off" | "Off" | "OFF" | "n"
                | "N" => Ok(Some(false)),
                _ => Err(Bad::expected(node, EXPECTED)),
            },
            _ => Err(Bad::expected(node, EXPECTED)),
        }
    }

    fn dump(value: &bool) -> String {
        value.to_string()
    }
}

/// How an integer was written, which [`Mode`] cares about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Radix {
    /// Plain decimal digits.
    Decimal,
    /// `0x`, `0o`, `0b` or a leading `0`.
    Prefixed,
}

/// Reads an unquoted integer like Go's `strconv.ParseInt(s, 0, 64)`, refusing negatives.
fn parse_unsigned(node: &MarkedYaml<'_>, max: u64) -> Result<Option<(u64, Radix)>, Bad> {
    const EXPECTED: &str = "a whole number";
    let text = match shape(node) {
        Shape::Scalar(Scalar::Null) => return Ok(None),
        Shape::Scalar(Scalar::Plain(t)) => t,
        _ => return Err(Bad::expected(node, EXPECTED)),
    };
    let (negative, body) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits, how) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d, Radix::Prefixed)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d, Radix::Prefixed)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d, Radix::Prefixed)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..], Radix::Prefixed)
    } else {
        (10, lower.as_str(), Radix::Decimal)
    };
    let digits = digits.trim_start_matches('_');
    let well_formed = !digits.is_empty()
        && !digits.ends_with('_')
        && !digits.contains("__")
        && digits.chars().all(|c| c == '_' || c.is_digit(radix));
    if !well_formed {
        return Err(Bad::expected(node, EXPECTED));
    }
    let digits = digits.replace('_', "");
    // Only overflow can fail now: all digits are valid for the radix.
    let value = u128::from_str_radix(&digits, radix).unwrap_or(u128::MAX);
    if negative && value != 0 {
        return Err(Bad::at(node, format!("must not be negative, found {text}")));
    }
    match u64::try_from(value) {
        Ok(v) if v <= max => Ok(Some((v, how))),
        _ => Err(Bad::at(
            node,
            format!("must be at most {max}, found {text}"),
        )),
    }
}

/// A TCP or UDP port, 0–65535.
pub(crate) struct Port;

impl Kind for Port {
    type Value = u16;

    fn parse(node: &MarkedYaml<'_>) -> Result<Option<u16>, Bad> {
        Ok(parse_unsigned(node, u64::from(u16::MAX))?.map(|(v, _)| v as u16))
    }

    fn dump(value: &u16) -> String {
        value.to_string()
    }
}

/// A count, 0 to 2^32 − 1.
pub(crate) struct U32;

impl Kind for U32 {
    type Value = u32;

    fn parse(node: &MarkedYaml<'_>) -> Result<Option<u32>, Bad> {
        Ok(parse_unsigned(node, u64::from(u32::MAX))?.map(|(v, _)| v as u32))
    }

    fn dump(value: &u32) -> String {
        value.to_string()
    }
}

/// A size or limit. Capped at `i64::MAX`, the range of the Go `int64` fields.
pub(crate) struct U64;

impl Kind for U64 {
    type Value = u64;

    fn parse(node: &MarkedYaml<'_>) -> Result<Option<u64>, Bad> {
        Ok(parse_unsigned(node, i64::MAX as u64)?.map(|(v, _)| v))
    }

    fn dump(value: &u64) -> String {
        value.to_string()
    }
}

/// Unix permission bits for created directories (`file-permissions`).
///
/// Written as Go users write it, `0750`: the leading `0` makes it octal (whatever the YAML
/// version; YAML 1.2 alone would read decimal 750). `0o750` works too, and so does the decimal
/// value (`488`). At most `07777`. A decimal number above `0777` is refused, because it is
/// almost certainly octal without its leading `0` (`750` would otherwise mean `0o1356`).
pub(crate) struct Mode;

impl Kind for Mode {
    type Value = u32;

    fn parse(node: &MarkedYaml<'_>) -> Result<Option<u32>, Bad> {
        let Some((value, radix)) = parse_unsigned(node, u64::MAX)? else {
            return Ok(None);
        };
        if radix == Radix::Decimal && value > 0o777 {
            return Err(Bad::at(
                node,
                format!(
                    "{value} is not a permission mode; write it in octal with a leading 0, such as 0750"
                ),
            ));
        }
        if value > 0o7777 {
            return Err(Bad::at(
                node,
                format!("{value:#o} is too large for permission bits (at most 07777)"),
            ));
        }
        Ok(Some(value as u32))
    }

    fn dump(value: &u32) -> String {
        format!("0{value:o}")
    }
}

/// A Go duration string (`30s`, `1m30s`, `24h`).
pub(crate) struct Dur;

impl Kind for Dur {
    type Value = Duration;

    fn parse(node: &MarkedYaml<'_>) -> Result<Option<Duration>, Bad> {
        match shape(node) {
            Shape::Scalar(Scalar::Null) => Ok(None),
            Shape::Scalar(Scalar::Plain(t) | Scalar::Quoted(t)) => parse_go_duration(t)
                .map(Some)
                .map_err(|e| Bad::at(node, e.to_string())),
            _ => Err(Bad::expected(node, "a duration such as 30s")),
        }
    }

    fn dump(value: &Duration) -> String {
        format_go_duration(*value)
    }
}

/// Text.
pub(crate) struct Str;

impl Kind for Str {
    type Value = String;

    fn parse(node: &MarkedYaml<'_>) -> Result<Option<String>, Bad> {
        match shape(node) {
            Shape::Scalar(Scalar::Null) => Ok(None),
            Shape::Scalar(Scalar::Plain(t) | Scalar::Quoted(t)) => Ok(Some(t.to_owned())),
            _ => Err(Bad::expected(node, "a string")),
        }
    }

    fn dump(value: &String) -> String {
        quote(value)
    }
}

/// A filesystem path (expanded later, see `Config::expand_paths`).
pub(crate) struct Path;

impl Kind for Path {
    type Value = PathBuf;

    fn parse(node: &MarkedYaml<'_>) -> Result<Option<PathBuf>, Bad> {
        match shape(node) {
            Shape::Scalar(Scalar::Null) => Ok(None),
            Shape::Scalar(Scalar::Plain(t) | Scalar::Quoted(t)) => Ok(Some(PathBuf::from(t))),
            _ => Err(Bad::expected(node, "a path")),
        }
    }

    fn dump(value: &PathBuf) -> String {
        quote(&value.to_string_lossy())
    }
}

/// A list of strings.
pub(crate) struct List;

impl Kind for List {
    type Value = Vec<String>;

    fn parse(node: &MarkedYaml<'_>) -> Result<Option<Vec<String>>, Bad> {
        match shape(node) {
            Shape::Scalar(Scalar::Null) => Ok(Some(Vec::new())),
            Shape::Sequence(items) => items
                .iter()
                .map(|item| match shape(item) {
                    Shape::Scalar(Scalar::Plain(t) | Scalar::Quoted(t)) => Ok(t.to_owned()),
                    _ => Err(Bad::expected(item, "a string in the list")),
                })
                .collect::<Result<_, _>>()
                .map(Some),
            _ => Err(Bad::expected(node, "a list such as [a, b]")),
        }
    }

    fn dump(value: &Vec<String>) -> String {
        let items: Vec<String> = value.iter().map(|s| quote(s)).collect();
        format!("[{}]", items.join(", "))
    }
}

/// A YAML double-quoted string.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            // Writing to a String cannot fail.
            c if c.is_control() => drop(write!(out, "\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
