//! Drawing: a pure function of the [`App`] onto a ratatui [`Frame`]. Any size renders,
//! down to nothing at all; what does not fit is cut off.

use std::fmt::Write as _;

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Row, Table, Wrap};

use super::app::{App, Connection, DetailData, Level, Mode, Page, Tab};
use super::columns::Column;
use crate::client::format::{format_session_stats, format_stats};
use crate::rpc::types::{FileStats, Peer, Stats, Time, Tracker, Webseed};

/// The key hints at the bottom when there is no message.
const HINTS: &str = "s start  x stop  d remove  v verify  n announce  a add  m magnet  o sort  \
                     ? help  q quit";

/// The help page's lines: keys, then what they do.
const HELP: &[(&str, &str)] = &[
    ("j / Down, k / Up", "select the next / previous torrent"),
    ("g / Home, G / End", "select the first / last torrent"),
    ("PgDn / PgUp", "move the selection by a page"),
    (
        "Tab / Shift+Tab, 1-6",
        "details tab: General Stats Trackers Peers WebSeeds Files",
    ),
    ("Alt+G/S/T/P/W/F", "the same tabs (rain's keys)"),
    ("J / K", "scroll the details down / up"),
    ("Alt+J / Alt+K", "move the list/details separator"),
    ("s, Ctrl+S", "start the torrent"),
    ("x, Ctrl+Alt+S", "stop the torrent"),
    ("Space", "start or stop the torrent"),
    (
        "d, Delete, Ctrl+R",
        "remove the torrent (asks: keep the data or delete it)",
    ),
    ("v, Ctrl+V", "verify the torrent's files"),
    ("n, Ctrl+Alt+A", "announce to trackers and the DHT"),
    (
        "a, Ctrl+A, paste",
        "add torrents: .torrent paths, magnet links, URLs",
    ),
    ("m, c", "show the magnet link and copy it (OSC 52)"),
    ("o / O", "change the sort order / reverse it"),
    ("r, F5", "refresh now"),
    ("i, Alt+A", "session stats"),
    ("?", "this help"),
    ("Esc", "clear the message"),
    ("q", "quit (on this page and session stats: back)"),
    ("Ctrl+C", "quit from anywhere"),
];

/// Where things go on the main page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Areas {
    /// The "server unreachable" banner (zero height when there is none).
    pub banner: Rect,
    /// The list's column header.
    pub header: Rect,
    /// The list's rows.
    pub rows: Rect,
    /// The details pane, tab line included.
    pub details: Rect,
}

fn inner(area: Rect) -> Rect {
    Block::bordered().inner(area)
}

/// Splits the screen `area` for `app`.
pub fn areas(app: &App, area: Rect) -> Areas {
    let inner = inner(area);
    let banner_height =
        u16::from(matches!(app.connection, Connection::Down { .. }) && inner.height > 1);
    let rest = inner.height - banner_height;
    let list_height = if rest < 6 {
        rest
    } else {
        let wanted = i32::from(rest / 2) + i32::from(app.split);
        wanted.clamp(2, i32::from(rest) - 3) as u16
    };
    let banner = Rect {
        height: banner_height,
        ..inner
    };
    let header = Rect {
        y: inner.y + banner_height,
        height: list_height.min(1),
        ..inner
    };
    let rows = Rect {
        y: header.y + header.height,
        height: list_height - header.height,
        ..inner
    };
    let details = Rect {
        y: rows.y + rows.height,
        height: rest - list_height,
        ..inner
    };
    Areas {
        banner,
        header,
        rows,
        details,
    }
}

/// How many list rows fit on a screen of `area`.
pub fn list_rows(app: &App, area: Rect) -> usize {
    usize::from(areas(app, area).rows.height)
}

/// Draws the whole screen.
pub fn render(app: &App, frame: &mut Frame<'_>) {
    let area = frame.area();
    let title = Line::from(format!(" rain [{}] (Press '?' for help) ", app.url)).bold();
    let sort = format!(
        " {} torrents, by {}{} ",
        app.torrents.len(),
        app.sort.title(),
        if app.reverse { " (reversed)" } else { "" }
    );
    let bottom = match &app.message {
        Some((Level::Error, text)) => Line::from(format!(" {text} ")).fg(Color::Red).bold(),
        Some((Level::Info, text)) => Line::from(format!(" {text} ")).fg(Color::Green),
        None => Line::from(format!(" {HINTS} ")).fg(Color::DarkGray),
    };
    let outer = Block::bordered()
        .title(title)
        .title_top(Line::from(sort).right_aligned())
        .title_bottom(bottom);
    frame.render_widget(outer, area);
    match app.page {
        Page::Help => render_help(frame, inner(area)),
        Page::Session => render_session(app, frame, inner(area)),
        Page::Main => {
            let a = areas(app, area);
            if let Connection::Down { reason } = &app.connection {
                let text = format!(" ! Reconnecting… {reason}");
                let style = Style::new().fg(Color::White).bg(Color::Red).bold();
                frame.render_widget(Paragraph::new(text).style(style), a.banner);
            }
            render_list(app, frame, a);
            render_details(app, frame, a.details);
            render_dialog(app, frame, area);
        }
    }
}

/// The columns that fit in `width`: Name first, then the row number and the status, then
/// the rest in the order given; shown in the order given.
pub fn fit_columns(columns: &[Column], width: u16, rows: usize) -> Vec<Column> {
    let priority = |c: Column| match c {
        Column::Name => 0,
        Column::Number => 1,
        Column::Status => 2,
        _ => 3,
    };
    let mut order: Vec<usize> = (0..columns.len()).collect();
    order.sort_by_key(|&i| (priority(columns[i]), i));
    let mut keep = vec![false; columns.len()];
    let mut used = 0u32;
    for i in order {
        let spacing = u32::from(used > 0);
        let need = u32::from(columns[i].width(rows).unwrap_or(8)) + spacing;
        if used == 0 || used + need <= u32::from(width) {
            keep[i] = true;
            used += need;
        }
    }
    columns
        .iter()
        .zip(keep)
        .filter_map(|(c, k)| k.then_some(*c))
        .collect()
}

fn render_list(app: &App, frame: &mut Frame<'_>, a: Areas) {
    let columns = fit_columns(&app.columns, a.rows.width, app.torrents.len());
    let widths: Vec<Constraint> = columns
        .iter()
        .map(|c| match c.width(app.torrents.len()) {
            Some(w) => Constraint::Length(w),
            None => Constraint::Fill(1),
        })
        .collect();
    let header = Row::new(columns.iter().map(|c| c.title())).bold();
    frame.render_widget(
        Table::new([header], widths.clone()).column_spacing(1),
        a.header,
    );
    if app.torrents.is_empty() {
        let text = match app.connection {
            Connection::Connecting => format!("Connecting to {}…", app.url),
            Connection::Down { .. } => "Waiting for the server…".to_owned(),
            Connection::Up => "No torrents. Press 'a' to add one.".to_owned(),
        };
        frame.render_widget(Paragraph::new(text).fg(Color::DarkGray), a.rows);
        return;
    }
    let stale = !matches!(app.connection, Connection::Up);
    let rows = app.visible().map(|i| {
        let t = &app.torrents[i];
        let stats = app.stats.get(&t.id);
        let cells = columns.iter().map(|c| c.cell(i, t, stats));
        let row = Row::new(cells);
        if i == app.selected {
            row.style(Style::new().fg(Color::Black).bg(Color::Green))
        } else if stale {
            row.fg(Color::DarkGray)
        } else {
            row
        }
    });
    frame.render_widget(Table::new(rows, widths).column_spacing(1), a.rows);
}

fn tabs_line(current: Tab) -> Line<'static> {
    let mut spans = vec![Span::raw("─")];
    for (i, tab) in Tab::ALL.into_iter().enumerate() {
        if i > 0 {
            spans.push(Span::raw("│"));
        }
        let text = format!(" {} ", tab.title());
        spans.push(if tab == current {
            Span::styled(text, Style::new().fg(Color::Black).bg(Color::Cyan).bold())
        } else {
            Span::raw(text)
        });
    }
    Line::from(spans)
}

/// What the details pane has for the selected torrent.
enum Pane<'a> {
    Loading,
    Failed(&'a str),
    Data(&'a DetailData),
}

fn pane<'a>(app: &'a App, id: &str) -> Pane<'a> {
    match &app.details {
        Some(d) if d.id == id && d.tab == app.tab => match &d.data {
            None => Pane::Loading,
            Some(Ok(data)) => Pane::Data(data),
            Some(Err(e)) => Pane::Failed(e),
        },
        _ => Pane::Loading,
    }
}

fn render_details(app: &App, frame: &mut Frame<'_>, area: Rect) {
    if area.height == 0 {
        return;
    }
    let block = Block::new().borders(Borders::TOP).title(tabs_line(app.tab));
    let content = block.inner(area);
    frame.render_widget(block, area);
    let Some(t) = app.selected_torrent() else {
        return;
    };
    let pane = pane(app, &t.id);
    let scroll = app.detail_scroll;
    let text = |s: String| {
        Paragraph::new(s)
            .wrap(Wrap { trim: false })
            .scroll((scroll, 0))
    };
    match app.tab {
        Tab::General | Tab::Stats => {
            let stats = match pane {
                Pane::Data(DetailData::Stats(s)) => Some(&**s),
                _ => app.stats.get(&t.id),
            };
            match (stats, pane) {
                (Some(s), _) if app.tab == Tab::General => {
                    frame.render_widget(text(format_stats(s)), content);
                }
                (Some(s), _) => frame.render_widget(text(stats_lines(s)), content),
                (None, Pane::Failed(e)) => frame.render_widget(failed(e), content),
                (None, _) => frame.render_widget(refreshing(), content),
            }
        }
        _ => match pane {
            // A stats answer belongs to the General and Stats tabs: wait for this tab's.
            Pane::Loading | Pane::Data(DetailData::Stats(_)) => {
                frame.render_widget(refreshing(), content);
            }
            Pane::Failed(e) => frame.render_widget(failed(e), content),
            Pane::Data(DetailData::Trackers(list)) => {
                frame.render_widget(text(trackers_text(list)), content);
            }
            Pane::Data(DetailData::Peers(list)) => peers_table(frame, content, list, scroll),
            Pane::Data(DetailData::Webseeds(list)) => {
                webseeds_table(frame, content, list, scroll);
            }
            Pane::Data(DetailData::Files(list)) => files_table(frame, content, list, scroll),
        },
    }
}

fn refreshing() -> Paragraph<'static> {
    Paragraph::new("refreshing…").fg(Color::DarkGray)
}

fn failed(e: &str) -> Paragraph<'_> {
    Paragraph::new(e).fg(Color::Red).wrap(Wrap { trim: false })
}

/// Every stats field, `Name: value` sorted by name, values as compact JSON (rain's Stats tab).
pub fn stats_lines(s: &Stats) -> String {
    let Ok(serde_json::Value::Object(map)) = serde_json::to_value(s) else {
        return String::new();
    };
    let mut fields: Vec<_> = map.into_iter().collect();
    fields.sort_by(|a, b| a.0.cmp(&b.0));
    let mut o = String::new();
    for (k, v) in fields {
        let _ = writeln!(o, "{k}: {v}");
    }
    o
}

fn time_text(t: Time, zero: &str) -> String {
    match t.0 {
        Some(t) => humantime::format_rfc3339_seconds(t).to_string(),
        None => zero.to_owned(),
    }
}

/// The Trackers tab, sorted by URL.
pub fn trackers_text(list: &[Tracker]) -> String {
    if list.is_empty() {
        return "No trackers.\n".to_owned();
    }
    let mut sorted: Vec<&Tracker> = list.iter().collect();
    sorted.sort_by(|a, b| a.url.cmp(&b.url));
    let mut o = String::new();
    for (i, t) in sorted.into_iter().enumerate() {
        let _ = writeln!(o, "#{} {}", i + 1, t.url);
        if t.status == "Not working" {
            let _ = write!(o, "    Status: {}, Error: {}", t.status, t.error);
            if t.error_unknown && !t.error_internal.is_empty() {
                let _ = write!(o, " ({})", t.error_internal);
            }
            o.push('\n');
        } else {
            let _ = write!(
                o,
                "    Status: {}, Seeders: {}, Leechers: {}",
                t.status, t.seeders, t.leechers
            );
            if !t.warning.is_empty() {
                let _ = write!(o, ", Warning: {}", t.warning);
            }
            o.push('\n');
        }
        let _ = writeln!(
            o,
            "    Last announce: {}, Next announce: {}",
            time_text(t.last_announce, "Never"),
            time_text(t.next_announce, "Unknown")
        );
    }
    o
}

/// rain's six peer flags (reference/rain-behaviour.md §7).
pub fn peer_flags(p: &Peer) -> String {
    let down = match (p.client_interested, p.peer_choking) {
        (true, false) => 'D',
        (true, true) => 'd',
        (false, false) => 'K',
        (false, true) => ' ',
    };
    let up = match (p.peer_interested, p.client_choking) {
        (true, false) => 'U',
        (true, true) => 'u',
        (false, false) => '?',
        (false, true) => ' ',
    };
    let source = match p.source.as_str() {
        "DHT" => 'H',
        "PEX" => 'X',
        "INCOMING" => 'I',
        "MANUAL" => 'M',
        _ => ' ',
    };
    let crypto = if p.encrypted_stream {
        'E'
    } else if p.encrypted_handshake {
        'e'
    } else {
        ' '
    };
    [
        down,
        up,
        if p.optimistic_unchoked { 'O' } else { ' ' },
        if p.snubbed { 'S' } else { ' ' },
        source,
        crypto,
    ]
    .iter()
    .collect()
}

fn kib(bytes_per_sec: u64) -> String {
    format!("{} KiB/s", bytes_per_sec / 1024)
}

fn table<'a>(
    frame: &mut Frame<'_>,
    area: Rect,
    header: &'a [&'a str],
    widths: &[Constraint],
    rows: Vec<Vec<String>>,
    scroll: u16,
) {
    let rows = rows.into_iter().skip(usize::from(scroll)).map(Row::new);
    let t = Table::new(rows, widths.to_vec())
        .header(Row::new(header.iter().copied()).bold())
        .column_spacing(1);
    frame.render_widget(t, area);
}

fn peers_table(frame: &mut Frame<'_>, area: Rect, list: &[Peer], scroll: u16) {
    if list.is_empty() {
        frame.render_widget(Paragraph::new("No peers."), area);
        return;
    }
    let mut sorted: Vec<&Peer> = list.iter().collect();
    sorted.sort_by(|a, b| (a.connected_at.0, &a.addr).cmp(&(b.connected_at.0, &b.addr)));
    let rows = sorted
        .iter()
        .enumerate()
        .map(|(i, p)| {
            vec![
                (i + 1).to_string(),
                p.addr.clone(),
                peer_flags(p),
                kib(p.download_speed),
                kib(p.upload_speed),
                p.client.clone(),
            ]
        })
        .collect();
    let widths = [
        Constraint::Length(3),
        Constraint::Length(21),
        Constraint::Length(6),
        Constraint::Length(12),
        Constraint::Length(12),
        Constraint::Fill(1),
    ];
    let header = ["#", "Addr", "Flags", "Download", "Upload", "Client"];
    table(frame, area, &header, &widths, rows, scroll);
}

fn webseeds_table(frame: &mut Frame<'_>, area: Rect, list: &[Webseed], scroll: u16) {
    if list.is_empty() {
        frame.render_widget(Paragraph::new("No webseeds."), area);
        return;
    }
    let mut sorted: Vec<&Webseed> = list.iter().collect();
    sorted.sort_by(|a, b| a.url.cmp(&b.url));
    let rows = sorted
        .iter()
        .enumerate()
        .map(|(i, w)| {
            vec![
                (i + 1).to_string(),
                w.url.clone(),
                kib(w.download_speed),
                w.error.clone(),
            ]
        })
        .collect();
    let widths = [
        Constraint::Length(3),
        Constraint::Fill(2),
        Constraint::Length(12),
        Constraint::Fill(1),
    ];
    table(
        frame,
        area,
        &["#", "URL", "Speed", "Error"],
        &widths,
        rows,
        scroll,
    );
}

/// A file's percent done.
pub fn file_progress(f: &FileStats) -> u64 {
    if f.file.length == 0 {
        100
    } else {
        (u128::from(f.bytes_completed.min(f.file.length)) * 100 / u128::from(f.file.length)) as u64
    }
}

fn bar(percent: u64) -> String {
    let full = (percent / 10).min(10) as usize;
    format!(
        "[{}{}] {percent:>3}%",
        "#".repeat(full),
        "-".repeat(10 - full)
    )
}

fn files_table(frame: &mut Frame<'_>, area: Rect, list: &[FileStats], scroll: u16) {
    if list.is_empty() {
        frame.render_widget(Paragraph::new("No files (metadata not known yet)."), area);
        return;
    }
    let rows = list
        .iter()
        .enumerate()
        .map(|(i, f)| {
            vec![
                (i + 1).to_string(),
                bar(file_progress(f)),
                crate::client::format::size(f.file.length),
                f.file.path.clone(),
            ]
        })
        .collect();
    let widths = [
        Constraint::Length(3),
        Constraint::Length(17),
        Constraint::Length(10),
        Constraint::Fill(1),
    ];
    let header = ["#", "Progress", "Size", "Path"];
    table(frame, area, &header, &widths, rows, scroll);
}

fn render_help(frame: &mut Frame<'_>, area: Rect) {
    let mut lines = vec![
        Line::from("Keys (q, Esc or ? to go back)").bold(),
        Line::from(""),
    ];
    for (keys, what) in HELP {
        lines.push(Line::from(vec![
            Span::styled(format!("{keys:<22}"), Style::new().fg(Color::Cyan)),
            Span::raw(*what),
        ]));
    }
    lines.push(Line::from(""));
    lines.push(Line::from(format!(
        "Columns (--columns): {}",
        Column::ALL.map(Column::title).join(" ")
    )));
    frame.render_widget(Paragraph::new(lines), area);
}

fn render_session(app: &App, frame: &mut Frame<'_>, area: Rect) {
    let mut lines = vec![
        Line::from("Session stats (q or Esc to go back)").bold(),
        Line::from(""),
    ];
    match &app.session {
        Some(s) => lines.extend(Text::from(format_session_stats(s)).lines),
        None => lines.push(Line::from("refreshing…").fg(Color::DarkGray)),
    }
    if let Connection::Down { reason } = &app.connection {
        lines.push(Line::from(""));
        lines.push(Line::from(format!("! Reconnecting… {reason}")).fg(Color::Red));
    }
    frame.render_widget(Paragraph::new(lines), area);
}

/// A box of `width` × `height` in the middle of `area`, shrunk to fit.
fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

fn render_dialog(app: &App, frame: &mut Frame<'_>, area: Rect) {
    let (title, lines): (&str, Vec<Line<'_>>) = match &app.mode {
        Mode::Normal => return,
        Mode::ConfirmRemove { name, .. } => (
            " Remove torrent ",
            vec![
                Line::from(format!("Remove \"{name}\"?")),
                Line::from(""),
                Line::from("k    remove it, keep the downloaded data"),
                Line::from("d    remove it and DELETE the data").fg(Color::Red),
                Line::from("Esc  cancel"),
            ],
        ),
        Mode::Add { input } => {
            let mut lines = vec![
                Line::from("A .torrent file, magnet link or http(s) URL; one per line."),
                Line::from(""),
            ];
            let mut entries: Vec<&str> = input.split('\n').collect();
            let last = entries.pop().unwrap_or_default();
            lines.extend(entries.into_iter().map(|l| Line::from(format!("> {l}"))));
            lines.push(Line::from(format!("> {last}_")));
            lines.push(Line::from(""));
            lines.push(Line::from("Enter: add   Esc: cancel   Ctrl+U: clear").fg(Color::DarkGray));
            (" Add torrent ", lines)
        }
        Mode::Magnet { name, link } => (
            " Magnet link ",
            vec![
                Line::from(name.as_str()).bold(),
                Line::from(""),
                Line::from(link.as_str()),
                Line::from(""),
                Line::from("Sent to the clipboard (OSC 52). Any key closes.").fg(Color::DarkGray),
            ],
        ),
    };
    let width = area.width.saturating_sub(4).min(76);
    let text_width = usize::from(width.saturating_sub(2).max(1));
    // Wrapped height: each line takes ceil(len / width) rows (at least one).
    let rows: usize = lines
        .iter()
        .map(|l| l.width().div_ceil(text_width).max(1))
        .sum();
    let height = u16::try_from(rows + 2).unwrap_or(u16::MAX);
    let popup = centered(area, width, height);
    frame.render_widget(Clear, popup);
    let block = Block::bordered().title(Line::from(title).bold());
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false }),
        popup,
    );
}
