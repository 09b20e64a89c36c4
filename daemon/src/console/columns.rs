//! The torrent list's columns (`--columns`) and sort orders, and how a cell is written.

use std::cmp::Ordering;

use crate::client::format::{go_duration, progress, ratio, size};
use crate::rpc::types::{Stats, Torrent};

/// rain's default `--columns`.
pub const DEFAULT_COLUMNS: &str = "# ID Name";

/// A column of the torrent list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    /// Row number.
    Number,
    /// The torrent's ID.
    Id,
    /// Its name.
    Name,
    /// Hex info-hash.
    InfoHash,
    /// Listen port.
    Port,
    /// Status ("Downloading Metadata" shows as "Downloading", as in rain).
    Status,
    /// Percent done.
    Progress,
    /// Download and upload speed, KiB/s.
    Speed,
    /// Connected peers.
    Peers,
    /// Total size.
    Size,
    /// Time left.
    Eta,
    /// Uploaded / downloaded.
    Ratio,
}

impl Column {
    /// Every column, in the order `--help` lists them.
    pub const ALL: [Column; 12] = [
        Column::Number,
        Column::Id,
        Column::Name,
        Column::InfoHash,
        Column::Port,
        Column::Status,
        Column::Progress,
        Column::Speed,
        Column::Peers,
        Column::Size,
        Column::Eta,
        Column::Ratio,
    ];

    /// The name used by `--columns` and shown in the header.
    pub fn title(self) -> &'static str {
        match self {
            Column::Number => "#",
            Column::Id => "ID",
            Column::Name => "Name",
            Column::InfoHash => "InfoHash",
            Column::Port => "Port",
            Column::Status => "Status",
            Column::Progress => "Progress",
            Column::Speed => "Speed",
            Column::Peers => "Peers",
            Column::Size => "Size",
            Column::Eta => "ETA",
            Column::Ratio => "Ratio",
        }
    }

    /// Fixed width in cells; `None` for the one that takes the rest (Name).
    pub fn width(self, rows: usize) -> Option<u16> {
        match self {
            Column::Number => Some(rows.max(1).to_string().len().max(1) as u16),
            Column::Id => Some(22),
            Column::Name => None,
            Column::InfoHash => Some(40),
            Column::Port | Column::Peers | Column::Ratio => Some(5),
            Column::Status => Some(11),
            Column::Progress => Some(8),
            Column::Speed => Some(15),
            Column::Size => Some(10),
            Column::Eta => Some(9),
        }
    }

    /// The cell for the torrent at (0-based) `index`; stats-based cells are empty until its
    /// stats arrive.
    pub fn cell(self, index: usize, torrent: &Torrent, stats: Option<&Stats>) -> String {
        match self {
            Column::Number => (index + 1).to_string(),
            Column::Id => torrent.id.clone(),
            Column::Name => stats.map_or_else(|| torrent.name.clone(), |s| s.name.clone()),
            Column::InfoHash => torrent.info_hash.clone(),
            Column::Port => torrent.port.to_string(),
            _ => stats.map(|s| self.stats_cell(s)).unwrap_or_default(),
        }
    }

    fn stats_cell(self, s: &Stats) -> String {
        match self {
            Column::Status => status_text(s).to_owned(),
            Column::Progress => format!("{}%", progress(s)),
            Column::Speed => format!("↓{} ↑{}", s.speed.download / 1024, s.speed.upload / 1024),
            Column::Peers => s.peers.total.to_string(),
            Column::Size => size(s.bytes.total),
            Column::Eta if s.eta >= 0 => go_duration(s.eta),
            Column::Ratio => format!("{:.2}", ratio(s)),
            _ => String::new(),
        }
    }
}

/// The status as the list shows it.
pub fn status_text(s: &Stats) -> &str {
    if s.status == "Downloading Metadata" {
        "Downloading"
    } else {
        &s.status
    }
}

/// Parses `--columns`: names separated by spaces, matched without regard to case.
pub fn parse_columns(spec: &str) -> Result<Vec<Column>, String> {
    let columns = spec
        .split_whitespace()
        .map(|name| {
            Column::ALL
                .into_iter()
                .find(|c| c.title().eq_ignore_ascii_case(name))
                .ok_or_else(|| format!("unknown column {name:?} (columns: {})", all_names()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if columns.is_empty() {
        return Err(format!(
            "--columns names no column (columns: {})",
            all_names()
        ));
    }
    Ok(columns)
}

fn all_names() -> String {
    Column::ALL.map(Column::title).join(" ")
}

/// How the list is ordered; ties fall back to rain's order (added time, then ID).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortKey {
    /// rain's order: when added, then ID.
    #[default]
    Added,
    /// By name.
    Name,
    /// By ID.
    Id,
    /// By status.
    Status,
    /// By percent done.
    Progress,
    /// By download plus upload speed.
    Speed,
    /// By connected peers.
    Peers,
    /// By total size.
    Size,
    /// By time left (unknown last).
    Eta,
}

impl SortKey {
    /// Every order, in the order `o` cycles through them.
    pub const ALL: [SortKey; 9] = [
        SortKey::Added,
        SortKey::Name,
        SortKey::Id,
        SortKey::Status,
        SortKey::Progress,
        SortKey::Speed,
        SortKey::Peers,
        SortKey::Size,
        SortKey::Eta,
    ];

    /// Its name, as shown in the title.
    pub fn title(self) -> &'static str {
        match self {
            SortKey::Added => "Added",
            SortKey::Name => "Name",
            SortKey::Id => "ID",
            SortKey::Status => "Status",
            SortKey::Progress => "Progress",
            SortKey::Speed => "Speed",
            SortKey::Peers => "Peers",
            SortKey::Size => "Size",
            SortKey::Eta => "ETA",
        }
    }

    /// The next order in the cycle.
    pub fn next(self) -> SortKey {
        let i = SortKey::ALL.iter().position(|k| *k == self).unwrap_or(0);
        SortKey::ALL[(i + 1) % SortKey::ALL.len()]
    }

    /// Sorting by this needs every torrent's stats, not only the visible rows'.
    pub fn needs_stats(self) -> bool {
        !matches!(self, SortKey::Added | SortKey::Name | SortKey::Id)
    }

    /// Compares two torrents; torrents whose stats are not known yet sort last.
    pub fn compare(self, a: (&Torrent, Option<&Stats>), b: (&Torrent, Option<&Stats>)) -> Ordering {
        let by_stats = |f: &dyn Fn(&Stats) -> Ordering| match (a.1, b.1) {
            (Some(x), Some(_)) => f(x),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        };
        let (ta, tb) = (a.0, b.0);
        let primary = match self {
            SortKey::Added => Ordering::Equal,
            SortKey::Name => name_of(a).to_lowercase().cmp(&name_of(b).to_lowercase()),
            SortKey::Id => ta.id.cmp(&tb.id),
            SortKey::Status => by_stats(&|x| status_text(x).cmp(b.1.map_or("", status_text))),
            SortKey::Progress => by_stats(&|x| progress(x).cmp(&b.1.map_or(0, progress))),
            SortKey::Speed => by_stats(&|x| speed_sum(x).cmp(&b.1.map_or(0, speed_sum))),
            SortKey::Peers => by_stats(&|x| x.peers.total.cmp(&b.1.map_or(0, |y| y.peers.total))),
            SortKey::Size => by_stats(&|x| x.bytes.total.cmp(&b.1.map_or(0, |y| y.bytes.total))),
            SortKey::Eta => by_stats(&|x| eta_key(x).cmp(&b.1.map_or(u64::MAX, eta_key))),
        };
        primary
            .then_with(|| ta.added_at.0.cmp(&tb.added_at.0))
            .then_with(|| ta.id.cmp(&tb.id))
    }
}

fn name_of<'a>(t: (&'a Torrent, Option<&'a Stats>)) -> &'a str {
    t.1.map_or(&t.0.name, |s| &s.name)
}

fn speed_sum(s: &Stats) -> u64 {
    s.speed.download.saturating_add(s.speed.upload)
}

/// An unknown ETA sorts after every known one.
fn eta_key(s: &Stats) -> u64 {
    u64::try_from(s.eta).unwrap_or(u64::MAX)
}
