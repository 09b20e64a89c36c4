//! What can go wrong loading a config file, and what is only worth a warning.

use std::fmt;
use std::path::{Path, PathBuf};

/// A config that cannot be used. Each message is one line naming the file, the line and the key
/// where they are known, e.g.
/// `/home/u/rain/config.yaml:3: resume-write-interval: missing unit in duration "30" (…)`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A config file given explicitly (`--config`) does not exist.
    #[error("config file {} does not exist", path.display())]
    NotFound {
        /// The file asked for.
        path: PathBuf,
    },
    /// The file exists but cannot be read (permissions, a directory, not UTF-8, …).
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// No `--config` was given and `$HOME` is unset, so the default file cannot be located.
    #[error("cannot locate the default config file $HOME/rain/config.yaml: HOME is not set")]
    NoHome,
    /// The file is not well-formed YAML.
    #[error("{}malformed YAML at line {line}, column {column}: {message}", Prefix(path.as_deref(), None))]
    Syntax {
        /// The file, when loading from a file.
        path: Option<PathBuf>,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's description.
        message: String,
    },
    /// Well-formed YAML but not a config: the top level is not a mapping, or there are several
    /// documents.
    #[error("{}{message}", Prefix(path.as_deref(), Some(*line)))]
    Shape {
        /// The file, when loading from a file.
        path: Option<PathBuf>,
        /// 1-based line of the offending node.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A known key with a value of the wrong type or out of range, a duplicate key, or keys
    /// that contradict each other (`port-begin` ≥ `port-end`).
    #[error("{}{key}: {reason}", Prefix(path.as_deref(), *line))]
    Invalid {
        /// The file, when loading from a file.
        path: Option<PathBuf>,
        /// The YAML key, as written in the file (dash-separated).
        key: String,
        /// 1-based line of the offending value, when it comes from the file.
        line: Option<usize>,
        /// What is wrong with it.
        reason: String,
    },
}

impl ConfigError {
    /// The key this error is about, if any.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }

    /// The 1-based line this error points at, if any.
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::Syntax { line, .. } | ConfigError::Shape { line, .. } => Some(*line),
            ConfigError::Invalid { line, .. } => *line,
            _ => None,
        }
    }

    /// Attaches the file the YAML came from, for messages.
    pub(crate) fn in_file(mut self, file: &Path) -> Self {
        match &mut self {
            ConfigError::Syntax { path, .. }
            | ConfigError::Shape { path, .. }
            | ConfigError::Invalid { path, .. } => *path = Some(file.to_owned()),
            _ => {}
        }
        self
    }
}

/// `path:line: `, `path: `, `line N: ` or nothing.
struct Prefix<'a>(Option<&'a Path>, Option<usize>);

impl fmt::Display for Prefix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.0, self.1) {
            (Some(path), Some(line)) => write!(f, "{}:{line}: ", path.display()),
            (Some(path), None) => write!(f, "{}: ", path.display()),
            (None, Some(line)) => write!(f, "line {line}: "),
            (None, None) => Ok(()),
        }
    }
}

/// Something worth telling the user that does not stop the config from loading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    /// A key rain does not know; it is ignored (rain ignores it silently).
    UnknownKey {
        /// The key as written.
        key: String,
        /// 1-based line of the key.
        line: usize,
    },
    /// A notice rather than a problem: the default config file does not exist, so the defaults
    /// are used (as rain does).
    DefaultFileMissing {
        /// The default path that was looked at.
        path: PathBuf,
    },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::UnknownKey { key, line } => {
                write!(f, "line {line}: unknown config key {key:?} ignored")
            }
            Warning::DefaultFileMissing { path } => {
                write!(f, "no config file at {}; using defaults", path.display())
            }
        }
    }
}
