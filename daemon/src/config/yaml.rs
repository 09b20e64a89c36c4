//! Reading YAML text into located nodes (saphyr), and looking at scalars the way rain's Go YAML
//! decoder does.
//!
//! Scalars are kept as written (saphyr's "early parse" is off): each setting decides what its
//! text means. That keeps `0750` octal whatever the YAML version, and lets a quoted `"7246"` be
//! told apart from a plain `7246`.

use saphyr::{MarkedYaml, ScalarStyle, YamlData, YamlLoader};
use saphyr_parser::Parser;

use super::error::ConfigError;

/// A scalar as the settings see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scalar<'a> {
    /// No value: empty, `~` or `null`.
    Null,
    /// An unquoted scalar: may be a number, a boolean or a string.
    Plain(&'a str),
    /// A quoted or block scalar, or one tagged `!!str`: always a string.
    Quoted(&'a str),
}

/// What a node holds, for settings to match on.
#[derive(Debug)]
pub(crate) enum Shape<'n, 'a> {
    /// A scalar.
    Scalar(Scalar<'n>),
    /// A sequence.
    Sequence(&'n [MarkedYaml<'a>]),
    /// Anything else (a mapping, an unresolvable alias).
    Other,
}

/// 1-based line where `node` starts.
pub(crate) fn line(node: &MarkedYaml<'_>) -> usize {
    node.span.start.line()
}

/// Classifies `node`.
pub(crate) fn shape<'n, 'a>(node: &'n MarkedYaml<'a>) -> Shape<'n, 'a> {
    let mut data = &node.data;
    // A user-defined tag on a collection wraps it; look through it.
    while let YamlData::Tagged(_, inner) = data {
        data = &inner.data;
    }
    match data {
        YamlData::Representation(text, style, tag) => {
            let forced_string = tag
                .as_ref()
                .is_some_and(|t| t.is_yaml_core_schema() && t.suffix == "str");
            if *style != ScalarStyle::Plain || forced_string {
                Shape::Scalar(Scalar::Quoted(text))
            } else if matches!(&**text, "" | "~" | "null" | "Null" | "NULL") {
                Shape::Scalar(Scalar::Null)
            } else {
                Shape::Scalar(Scalar::Plain(text))
            }
        }
        YamlData::Sequence(items) => Shape::Sequence(items),
        _ => Shape::Other,
    }
}

/// A short description of what `node` is, for "expected X, found Y" messages.
pub(crate) fn describe(node: &MarkedYaml<'_>) -> String {
    match shape(node) {
        Shape::Scalar(Scalar::Null) => "no value".to_owned(),
        Shape::Scalar(Scalar::Plain(t)) => format!("{t:?}"),
        Shape::Scalar(Scalar::Quoted(t)) => format!("the quoted string {t:?}"),
        Shape::Sequence(_) => "a list".to_owned(),
        Shape::Other => {
            if node.data.is_mapping() {
                "a mapping".to_owned()
            } else {
                "an unusable value".to_owned()
            }
        }
    }
}

/// The top-level entries of a config document: `(key, key line, value)`, in file order. An
/// empty document (or one that is just `~`) has none.
pub(crate) type Entries<'a> = Vec<(Key, MarkedYaml<'a>)>;

/// A top-level key as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Key {
    /// Its text (for a non-scalar key, a placeholder description).
    pub(crate) name: String,
    /// 1-based line.
    pub(crate) line: usize,
}

/// Parses `text` as a single YAML document whose top level is a mapping.
pub(crate) fn top_level_entries(text: &str) -> Result<Entries<'_>, ConfigError> {
    let mut loader: YamlLoader<'_, MarkedYaml<'_>> = YamlLoader::default();
    loader.early_parse(false);
    let syntax = |e: &saphyr::ScanError| {
        let line = e.marker().line();
        if e.info() == "duplicated key in mapping" {
            // Name the key: it starts at the error's marker.
            let written: String = text
                .lines()
                .nth(line.saturating_sub(1))
                .unwrap_or_default()
                .chars()
                .skip(e.marker().col())
                .collect();
            let key = written.split(':').next().unwrap_or_default().trim();
            return ConfigError::Invalid {
                path: None,
                key: key.trim_matches(['"', '\'']).to_owned(),
                line: Some(line),
                reason: "duplicate key".to_owned(),
            };
        }
        ConfigError::Syntax {
            path: None,
            line,
            column: e.marker().col() + 1,
            message: e.info().to_owned(),
        }
    };
    Parser::new_from_str(text)
        .load(&mut loader, true)
        .map_err(|e| syntax(&e))?;
    if let Some(e) = loader.error() {
        return Err(syntax(e));
    }
    let mut docs = loader.into_documents().into_iter();
    let Some(doc) = docs.next() else {
        return Ok(Vec::new());
    };
    if let Some(second) = docs.next() {
        return Err(ConfigError::Shape {
            path: None,
            line: line(&second),
            message: "a config file holds one YAML document; found a second one".to_owned(),
        });
    }
    if doc.data.is_badvalue() || matches!(shape(&doc), Shape::Scalar(Scalar::Null)) {
        return Ok(Vec::new());
    }
    let doc_line = line(&doc);
    let YamlData::Mapping(map) = doc.data else {
        return Err(ConfigError::Shape {
            path: None,
            line: doc_line,
            message: "the config must be a mapping of `key: value` lines".to_owned(),
        });
    };
    Ok(map
        .into_iter()
        .map(|(k, v)| {
            let name = match shape(&k) {
                Shape::Scalar(Scalar::Plain(t) | Scalar::Quoted(t)) => t.to_owned(),
                _ => describe(&k),
            };
            (
                Key {
                    name,
                    line: line(&k),
                },
                v,
            )
        })
        .collect())
}
