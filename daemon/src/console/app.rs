//! The console's state: a pure model changed only by key events ([`App::on_key`]), pasted
//! text ([`App::on_paste`]), the one-second tick ([`App::tick`]) and RPC results
//! ([`App::apply`]). Each of these returns the requests ([`Command`]s) the I/O loop must send;
//! nothing here touches the terminal or the network.

use std::collections::{HashMap, HashSet};

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::columns::{Column, SortKey};
use crate::client::ClientError;
use crate::rpc::types::{FileStats, Peer, SessionStats, Stats, Torrent, Tracker, Webseed};

/// A tab of the details pane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Tab {
    /// rain's summary, as `rain client stats` prints it.
    #[default]
    General,
    /// Every stats field.
    Stats,
    /// Trackers.
    Trackers,
    /// Connected peers.
    Peers,
    /// WebSeed sources.
    Webseeds,
    /// Files with their progress.
    Files,
}

impl Tab {
    /// The tabs, left to right.
    pub const ALL: [Tab; 6] = [
        Tab::General,
        Tab::Stats,
        Tab::Trackers,
        Tab::Peers,
        Tab::Webseeds,
        Tab::Files,
    ];

    /// Its title.
    pub fn title(self) -> &'static str {
        match self {
            Tab::General => "General",
            Tab::Stats => "Stats",
            Tab::Trackers => "Trackers",
            Tab::Peers => "Peers",
            Tab::Webseeds => "WebSeeds",
            Tab::Files => "Files",
        }
    }

    fn index(self) -> usize {
        Tab::ALL.iter().position(|t| *t == self).unwrap_or(0)
    }

    fn step(self, forward: bool) -> Tab {
        let n = Tab::ALL.len();
        let i = self.index();
        Tab::ALL[if forward {
            (i + 1) % n
        } else {
            (i + n - 1) % n
        }]
    }
}

/// The whole-screen page on show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Page {
    /// The torrent list and the details pane.
    #[default]
    Main,
    /// The key help.
    Help,
    /// Session statistics.
    Session,
}

/// A dialog over the main page.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Mode {
    /// No dialog.
    #[default]
    Normal,
    /// "Remove this torrent?", keeping its data or not.
    ConfirmRemove {
        /// The torrent.
        id: String,
        /// Its name, for the question.
        name: String,
    },
    /// The add prompt: a `.torrent` path, magnet link or URL per line.
    Add {
        /// What has been typed or pasted.
        input: String,
    },
    /// A magnet link on show (also copied to the clipboard).
    Magnet {
        /// The torrent's name.
        name: String,
        /// The link.
        link: String,
    },
}

/// Whether the server answers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Connection {
    /// No answer yet.
    #[default]
    Connecting,
    /// The last request got an answer.
    Up,
    /// The last request could not reach the server; requests go on every second.
    Down {
        /// Why, worded for the banner.
        reason: String,
    },
}

/// What kind of line the message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// An action went through.
    Info,
    /// An action failed.
    Error,
}

/// The data of a details tab, fetched for one torrent.
#[derive(Debug, Clone, PartialEq)]
pub enum DetailData {
    /// General and Stats tabs.
    Stats(Box<Stats>),
    /// Trackers tab.
    Trackers(Vec<Tracker>),
    /// Peers tab.
    Peers(Vec<Peer>),
    /// WebSeeds tab.
    Webseeds(Vec<Webseed>),
    /// Files tab.
    Files(Vec<FileStats>),
}

/// The details pane's content: for which torrent and tab, and what arrived.
#[derive(Debug, Clone, PartialEq)]
pub struct Details {
    /// The torrent.
    pub id: String,
    /// The tab.
    pub tab: Tab,
    /// What arrived: `None` while the first answer is awaited, an error message if it failed.
    pub data: Option<Result<DetailData, String>>,
}

/// A request for the I/O loop to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `ListTorrents`, answered with [`Update::List`].
    List,
    /// `GetTorrentStats` for each torrent, answered with one [`Update::Stats`].
    Stats(Vec<String>),
    /// The data of `tab` for torrent `id`, answered with [`Update::Details`].
    Details {
        /// The torrent.
        id: String,
        /// The tab.
        tab: Tab,
    },
    /// `GetSessionStats`, answered with [`Update::SessionStats`].
    SessionStats,
    /// `StartTorrent`, answered with [`Update::Action`].
    Start(String),
    /// `StopTorrent`.
    Stop(String),
    /// `RemoveTorrent`.
    Remove {
        /// The torrent.
        id: String,
        /// Keep its files.
        keep_data: bool,
    },
    /// `VerifyTorrent`.
    Verify(String),
    /// `AnnounceTorrent`.
    Announce(String),
    /// `AddURI` for links and URLs, `AddTorrent` with the file's bytes for paths; answered
    /// with [`Update::Added`].
    Add(Vec<String>),
    /// `GetMagnet`, answered with [`Update::Magnet`].
    Magnet(String),
}

/// An action that answers with nothing but success or failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Start.
    Start,
    /// Stop.
    Stop,
    /// Remove, keeping the data.
    RemoveKeepData,
    /// Remove with the data.
    Remove,
    /// Verify.
    Verify,
    /// Announce.
    Announce,
}

impl Action {
    fn done(self) -> &'static str {
        match self {
            Action::Start => "Starting",
            Action::Stop => "Stopping",
            Action::RemoveKeepData => "Removed (data kept)",
            Action::Remove => "Removed with its data",
            Action::Verify => "Verifying",
            Action::Announce => "Announced",
        }
    }

    fn verb(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Stop => "stop",
            Action::RemoveKeepData | Action::Remove => "remove",
            Action::Verify => "verify",
            Action::Announce => "announce",
        }
    }
}

/// Why an entry of the add prompt was not added.
#[derive(Debug)]
pub enum AddFailure {
    /// The local `.torrent` file could not be read.
    File(String),
    /// The request failed.
    Rpc(ClientError),
}

impl std::fmt::Display for AddFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AddFailure::File(reason) => f.write_str(reason),
            AddFailure::Rpc(e) => e.fmt(f),
        }
    }
}

/// An RPC result for the model.
#[derive(Debug)]
pub enum Update {
    /// The torrent list.
    List(Result<Vec<Torrent>, ClientError>),
    /// Stats of some torrents.
    Stats(Vec<(String, Result<Stats, ClientError>)>),
    /// A details tab's data.
    Details {
        /// The torrent.
        id: String,
        /// The tab.
        tab: Tab,
        /// The data.
        result: Result<DetailData, ClientError>,
    },
    /// Session stats.
    SessionStats(Result<SessionStats, ClientError>),
    /// The outcome of an action on torrent `id`.
    Action {
        /// The action.
        action: Action,
        /// The torrent.
        id: String,
        /// The outcome.
        result: Result<(), ClientError>,
    },
    /// The outcome of each added entry.
    Added(Vec<(String, Result<Torrent, AddFailure>)>),
    /// The magnet link of torrent `id`.
    Magnet {
        /// The torrent.
        id: String,
        /// The link.
        result: Result<String, ClientError>,
    },
}

/// The console's state.
#[derive(Debug)]
pub struct App {
    /// The server URL, for the title and the banner.
    pub url: String,
    /// The list's columns.
    pub columns: Vec<Column>,
    /// Torrents in display order.
    pub torrents: Vec<Torrent>,
    /// The last stats of each torrent fetched (the visible rows').
    pub stats: HashMap<String, Stats>,
    /// Index of the selected row.
    pub selected: usize,
    /// First row shown.
    pub offset: usize,
    /// Rows the list has room for (set by the loop from the terminal size).
    pub list_rows: usize,
    /// How the list is ordered.
    pub sort: SortKey,
    /// Reverse order.
    pub reverse: bool,
    /// The details tab on show.
    pub tab: Tab,
    /// The details pane's data.
    pub details: Option<Details>,
    /// Lines the details pane is scrolled down by.
    pub detail_scroll: u16,
    /// Rows the list/details separator is moved by (Alt+J / Alt+K).
    pub split: i16,
    /// The page on show.
    pub page: Page,
    /// The dialog on show.
    pub mode: Mode,
    /// The last session stats.
    pub session: Option<SessionStats>,
    /// Whether the server answers.
    pub connection: Connection,
    /// The last action's outcome, shown at the bottom.
    pub message: Option<(Level, String)>,
    /// Set when the user quits.
    pub quit: bool,
    /// Text the loop should put on the clipboard (OSC 52), taken with [`App::take_clipboard`].
    pub clipboard: Option<String>,
    /// A list refresh (and its stats) is under way.
    list_in_flight: bool,
    /// A details fetch is under way.
    details_in_flight: bool,
    /// A session stats fetch is under way.
    session_in_flight: bool,
    /// A torrent to select once it appears in the list (just added).
    select_when_listed: Option<String>,
}

impl App {
    /// A console for the server at `url` showing `columns`.
    pub fn new(url: &str, columns: Vec<Column>) -> App {
        App {
            url: url.to_owned(),
            columns,
            torrents: Vec::new(),
            stats: HashMap::new(),
            selected: 0,
            offset: 0,
            list_rows: 10,
            sort: SortKey::default(),
            reverse: false,
            tab: Tab::default(),
            details: None,
            detail_scroll: 0,
            split: 0,
            page: Page::default(),
            mode: Mode::default(),
            session: None,
            connection: Connection::default(),
            message: None,
            quit: false,
            clipboard: None,
            list_in_flight: false,
            details_in_flight: false,
            session_in_flight: false,
            select_when_listed: None,
        }
    }

    /// The selected torrent.
    pub fn selected_torrent(&self) -> Option<&Torrent> {
        self.torrents.get(self.selected)
    }

    /// The range of rows on show.
    pub fn visible(&self) -> std::ops::Range<usize> {
        let end = self
            .offset
            .saturating_add(self.list_rows)
            .min(self.torrents.len());
        self.offset.min(end)..end
    }

    /// Sets the rows the list has room for, keeping the selection on show.
    pub fn set_list_rows(&mut self, rows: usize) {
        self.list_rows = rows;
        self.scroll_to_selection();
    }

    /// Takes the text to copy to the clipboard.
    pub fn take_clipboard(&mut self) -> Option<String> {
        self.clipboard.take()
    }

    /// The once-a-second refresh: the list (then the visible rows' stats), the details tab,
    /// and on the session page the session stats. A request still under way is not repeated.
    pub fn tick(&mut self) -> Vec<Command> {
        let mut out = Vec::new();
        if !self.list_in_flight {
            self.list_in_flight = true;
            out.push(Command::List);
        }
        if self.page == Page::Session && !self.session_in_flight {
            self.session_in_flight = true;
            out.push(Command::SessionStats);
        }
        if !self.details_in_flight {
            out.extend(self.details_command());
        }
        out
    }

    fn details_command(&mut self) -> Option<Command> {
        let id = self.selected_torrent()?.id.clone();
        self.details_in_flight = true;
        Some(Command::Details { id, tab: self.tab })
    }

    /// Called when the selection or tab changes: shows "refreshing…" and fetches at once.
    fn details_changed(&mut self) -> Vec<Command> {
        self.detail_scroll = 0;
        let Some(t) = self.selected_torrent() else {
            self.details = None;
            return Vec::new();
        };
        let (id, tab) = (t.id.clone(), self.tab);
        if self
            .details
            .as_ref()
            .is_some_and(|d| d.id == id && d.tab == tab)
        {
            return Vec::new();
        }
        self.details = Some(Details {
            id,
            tab,
            data: None,
        });
        self.details_command().into_iter().collect()
    }

    /// Applies an RPC result; returns the requests that follow from it.
    pub fn apply(&mut self, update: Update) -> Vec<Command> {
        match update {
            Update::List(result) => match result {
                Ok(list) => {
                    self.connected();
                    self.set_torrents(list)
                }
                Err(e) => {
                    self.list_in_flight = false;
                    self.failed(None, &e);
                    Vec::new()
                }
            },
            Update::Stats(results) => {
                self.list_in_flight = false;
                for (id, result) in results {
                    match result {
                        Ok(stats) => {
                            self.connected();
                            self.stats.insert(id, stats);
                        }
                        // Removed meanwhile: the next list drops it.
                        Err(ClientError::Server { .. }) => {}
                        Err(e) => self.failed(None, &e),
                    }
                }
                if self.sort.needs_stats() {
                    self.sort_keeping_selection();
                }
                Vec::new()
            }
            Update::Details { id, tab, result } => {
                self.details_in_flight = false;
                let data = match result {
                    Ok(data) => {
                        if let DetailData::Stats(s) = &data {
                            self.stats.insert(id.clone(), (**s).clone());
                        }
                        self.connected();
                        Ok(data)
                    }
                    Err(e) => {
                        // The server's own errors (e.g. the torrent is gone) show in the pane.
                        if !matches!(e, ClientError::Server { .. }) {
                            self.failed(None, &e);
                        }
                        Err(e.to_string())
                    }
                };
                // An answer for a torrent or tab no longer on show is dropped.
                if let Some(details) = self.details.as_mut().filter(|d| d.id == id && d.tab == tab)
                {
                    details.data = Some(data);
                }
                Vec::new()
            }
            Update::SessionStats(result) => {
                self.session_in_flight = false;
                match result {
                    Ok(s) => {
                        self.connected();
                        self.session = Some(s);
                    }
                    Err(e) => self.failed(Some("session stats"), &e),
                }
                Vec::new()
            }
            Update::Action { action, id, result } => {
                let name = self.name_of(&id);
                let mut out = Vec::new();
                match result {
                    Ok(()) => {
                        self.connected();
                        self.message = Some((Level::Info, format!("{} {name}", action.done())));
                        if matches!(action, Action::Remove | Action::RemoveKeepData) {
                            out = self.forget(&id);
                        }
                    }
                    Err(e) => self.failed(Some(&format!("{} {name}", action.verb())), &e),
                }
                out.extend(self.refresh_now());
                out
            }
            Update::Added(results) => {
                let mut added = Vec::new();
                let mut errors = Vec::new();
                for (entry, result) in results {
                    match result {
                        Ok(t) => added.push(t),
                        Err(e) => {
                            errors.push(format!("{entry}: {e}"));
                            if let AddFailure::Rpc(e) = &e
                                && !matches!(e, ClientError::Server { .. })
                            {
                                self.failed(None, e);
                            }
                        }
                    }
                }
                if let Some(last) = added.last() {
                    self.select_when_listed = Some(last.id.clone());
                }
                self.message = Some(if errors.is_empty() {
                    let ids: Vec<&str> = added.iter().map(|t| t.id.as_str()).collect();
                    (Level::Info, format!("Added {}", ids.join(", ")))
                } else {
                    (Level::Error, format!("add {}", errors.join("; ")))
                });
                self.refresh_now()
            }
            Update::Magnet { id, result } => {
                match result {
                    Ok(link) => {
                        self.connected();
                        self.clipboard = Some(link.clone());
                        self.mode = Mode::Magnet {
                            name: self.name_of(&id),
                            link,
                        };
                    }
                    Err(e) => self.failed(Some("magnet"), &e),
                }
                Vec::new()
            }
        }
    }

    /// A refresh after an action, unless one is already under way.
    fn refresh_now(&mut self) -> Vec<Command> {
        let mut out = Vec::new();
        if !self.list_in_flight {
            self.list_in_flight = true;
            out.push(Command::List);
        }
        // The details may have changed too (e.g. peers dropped by a stop).
        if !self.details_in_flight {
            out.extend(self.details_command());
        }
        out
    }

    /// Drops a removed torrent at once rather than at the next refresh.
    fn forget(&mut self, id: &str) -> Vec<Command> {
        let Some(i) = self.torrents.iter().position(|t| t.id == id) else {
            return Vec::new();
        };
        self.torrents.remove(i);
        self.stats.remove(id);
        self.selected = self.selected.min(self.torrents.len().saturating_sub(1));
        self.scroll_to_selection();
        self.details_changed()
    }

    fn connected(&mut self) {
        self.connection = Connection::Up;
    }

    /// Records a failure: the server unreachable shows the banner; an error the server sent
    /// becomes the message (prefixed with what was being done).
    fn failed(&mut self, doing: Option<&str>, e: &ClientError) {
        match e {
            ClientError::Server { .. } => {
                let text = match doing {
                    Some(what) => format!("{what}: {e}"),
                    None => e.to_string(),
                };
                self.message = Some((Level::Error, text));
            }
            _ => {
                self.connection = Connection::Down {
                    reason: e.to_string(),
                };
            }
        }
    }

    fn name_of(&self, id: &str) -> String {
        let listed = self.torrents.iter().find(|t| t.id == id);
        self.stats
            .get(id)
            .map(|s| s.name.clone())
            .or_else(|| listed.map(|t| t.name.clone()))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| id.to_owned())
    }

    fn set_torrents(&mut self, list: Vec<Torrent>) -> Vec<Command> {
        let before = self.selected_torrent().map(|t| t.id.clone());
        let ids: HashSet<&str> = list.iter().map(|t| t.id.as_str()).collect();
        self.stats.retain(|id, _| ids.contains(id.as_str()));
        self.torrents = list;
        self.sort_selecting(before.as_deref());
        if let Some(id) = self.select_when_listed.take() {
            match self.torrents.iter().position(|t| t.id == id) {
                Some(i) => {
                    self.selected = i;
                    self.scroll_to_selection();
                }
                None => self.select_when_listed = Some(id),
            }
        }
        let mut out = Vec::new();
        let ids = if self.sort.needs_stats() {
            self.torrents.iter().map(|t| t.id.clone()).collect()
        } else {
            self.visible_ids()
        };
        if ids.is_empty() {
            self.list_in_flight = false;
        } else {
            out.push(Command::Stats(ids));
        }
        if self.selected_torrent().map(|t| t.id.clone()) != before {
            out.extend(self.details_changed());
        }
        out
    }

    fn visible_ids(&self) -> Vec<String> {
        self.torrents[self.visible()]
            .iter()
            .map(|t| t.id.clone())
            .collect()
    }

    /// Re-sorts, keeping the same torrent selected (or the same row if it is gone).
    fn sort_keeping_selection(&mut self) {
        let id = self.selected_torrent().map(|t| t.id.clone());
        self.sort_selecting(id.as_deref());
    }

    /// Sorts, then selects torrent `id` (or keeps the row if it is not listed).
    fn sort_selecting(&mut self, id: Option<&str>) {
        let (sort, reverse, stats) = (self.sort, self.reverse, &self.stats);
        self.torrents.sort_by(|a, b| {
            let o = sort.compare((a, stats.get(&a.id)), (b, stats.get(&b.id)));
            if reverse { o.reverse() } else { o }
        });
        if let Some(i) = id.and_then(|id| self.torrents.iter().position(|t| t.id == id)) {
            self.selected = i;
        }
        self.selected = self.selected.min(self.torrents.len().saturating_sub(1));
        self.scroll_to_selection();
    }

    fn scroll_to_selection(&mut self) {
        let rows = self.list_rows.max(1);
        if self.selected < self.offset {
            self.offset = self.selected;
        } else if self.selected >= self.offset + rows {
            self.offset = self.selected + 1 - rows;
        }
        // No empty rows below the last torrent when the list could fill them.
        let max_offset = self.torrents.len().saturating_sub(rows);
        self.offset = self.offset.min(max_offset);
    }

    /// Selects row `i` (clamped); fetches the stats of rows that scrolled into view.
    fn select(&mut self, i: usize) -> Vec<Command> {
        if self.torrents.is_empty() {
            return Vec::new();
        }
        let i = i.min(self.torrents.len() - 1);
        if i == self.selected && self.details.is_some() {
            return Vec::new();
        }
        self.selected = i;
        self.scroll_to_selection();
        let mut out = self.details_changed();
        let missing: Vec<String> = self
            .visible_ids()
            .into_iter()
            .filter(|id| !self.stats.contains_key(id))
            .collect();
        if !missing.is_empty() {
            out.push(Command::Stats(missing));
        }
        out
    }

    fn set_tab(&mut self, tab: Tab) -> Vec<Command> {
        self.tab = tab;
        self.details_changed()
    }

    /// Pasted text goes to the add prompt (opening it if needed).
    pub fn on_paste(&mut self, text: &str) {
        if self.page != Page::Main {
            return;
        }
        // Terminals send pasted line breaks as CR, CRLF or LF.
        let text = text.replace("\r\n", "\n").replace('\r', "\n");
        match &mut self.mode {
            Mode::Add { input } => input.push_str(&text),
            Mode::Normal => self.mode = Mode::Add { input: text },
            _ => {}
        }
    }

    /// Handles a key; returns the requests it asks for.
    pub fn on_key(&mut self, key: KeyEvent) -> Vec<Command> {
        if key.kind == KeyEventKind::Release {
            return Vec::new();
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && key.code == KeyCode::Char('c') {
            self.quit = true;
            return Vec::new();
        }
        match self.page {
            Page::Help => {
                if matches!(key.code, KeyCode::Char('q' | '?') | KeyCode::Esc) {
                    self.page = Page::Main;
                }
                Vec::new()
            }
            Page::Session => {
                if matches!(key.code, KeyCode::Char('q' | 'i') | KeyCode::Esc) {
                    self.page = Page::Main;
                }
                Vec::new()
            }
            Page::Main => match self.mode.clone() {
                Mode::Normal => self.main_key(key),
                Mode::ConfirmRemove { id, .. } => self.confirm_key(key, id),
                Mode::Add { .. } => self.add_key(key),
                Mode::Magnet { .. } => {
                    self.mode = Mode::Normal;
                    Vec::new()
                }
            },
        }
    }

    fn confirm_key(&mut self, key: KeyEvent, id: String) -> Vec<Command> {
        let keep_data = match key.code {
            KeyCode::Char('k' | 'K') => true,
            KeyCode::Char('d' | 'D') => false,
            KeyCode::Esc | KeyCode::Char('n' | 'N' | 'q') => {
                self.mode = Mode::Normal;
                return Vec::new();
            }
            _ => return Vec::new(),
        };
        self.mode = Mode::Normal;
        vec![Command::Remove { id, keep_data }]
    }

    fn add_key(&mut self, key: KeyEvent) -> Vec<Command> {
        let Mode::Add { input } = &mut self.mode else {
            return Vec::new();
        };
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Esc => self.mode = Mode::Normal,
            KeyCode::Char('q') if ctrl => self.mode = Mode::Normal,
            KeyCode::Char('u') if ctrl => input.clear(),
            KeyCode::Char(c) if !ctrl => input.push(c),
            KeyCode::Backspace => {
                input.pop();
            }
            KeyCode::Enter => {
                let entries: Vec<String> = input
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned)
                    .collect();
                self.mode = Mode::Normal;
                if !entries.is_empty() {
                    return vec![Command::Add(entries)];
                }
            }
            _ => {}
        }
        Vec::new()
    }

    fn main_key(&mut self, key: KeyEvent) -> Vec<Command> {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        let selected = self.selected_torrent().map(|t| t.id.clone());
        let on_selected = |f: fn(String) -> Command| -> Vec<Command> {
            selected.clone().map(f).into_iter().collect()
        };
        let page = self.list_rows.max(1);
        match key.code {
            // rain's Ctrl(+Alt) keys first.
            KeyCode::Char('s') if ctrl && alt => on_selected(Command::Stop),
            KeyCode::Char('s') if ctrl => on_selected(Command::Start),
            KeyCode::Char('a') if ctrl && alt => on_selected(Command::Announce),
            KeyCode::Char('a') if ctrl => self.open_add(),
            KeyCode::Char('r') if ctrl => self.confirm_remove(),
            KeyCode::Char('v') if ctrl => on_selected(Command::Verify),
            KeyCode::Char(c) if alt => self.alt_key(c),
            _ if ctrl => Vec::new(),
            KeyCode::Char('q') => {
                self.quit = true;
                Vec::new()
            }
            KeyCode::Esc => {
                self.message = None;
                Vec::new()
            }
            KeyCode::Char('j') | KeyCode::Down => self.select(self.selected.saturating_add(1)),
            KeyCode::Char('k') | KeyCode::Up => self.select(self.selected.saturating_sub(1)),
            KeyCode::Char('g') | KeyCode::Home => self.select(0),
            KeyCode::Char('G') | KeyCode::End => self.select(usize::MAX),
            KeyCode::PageDown => self.select(self.selected.saturating_add(page)),
            KeyCode::PageUp => self.select(self.selected.saturating_sub(page)),
            KeyCode::Tab => self.set_tab(self.tab.step(true)),
            KeyCode::BackTab => self.set_tab(self.tab.step(false)),
            KeyCode::Char(c @ '1'..='6') => self.set_tab(Tab::ALL[c as usize - '1' as usize]),
            KeyCode::Char('J') => {
                self.detail_scroll = self.detail_scroll.saturating_add(1);
                Vec::new()
            }
            KeyCode::Char('K') => {
                self.detail_scroll = self.detail_scroll.saturating_sub(1);
                Vec::new()
            }
            KeyCode::Char('s') => on_selected(Command::Start),
            KeyCode::Char('x') => on_selected(Command::Stop),
            KeyCode::Char(' ') => {
                let running = selected
                    .as_ref()
                    .and_then(|id| self.stats.get(id))
                    .is_some_and(|s| s.status != "Stopped");
                on_selected(if running {
                    Command::Stop
                } else {
                    Command::Start
                })
            }
            KeyCode::Char('d') | KeyCode::Delete => self.confirm_remove(),
            KeyCode::Char('v') => on_selected(Command::Verify),
            KeyCode::Char('n') => on_selected(Command::Announce),
            KeyCode::Char('a') => self.open_add(),
            KeyCode::Char('m' | 'c') => on_selected(Command::Magnet),
            KeyCode::Char('o') => {
                self.sort = self.sort.next();
                self.resorted()
            }
            KeyCode::Char('O') => {
                self.reverse = !self.reverse;
                self.resorted()
            }
            KeyCode::Char('r') | KeyCode::F(5) => self.refresh_now(),
            KeyCode::Char('i') => self.open_session(),
            KeyCode::Char('?') => {
                self.page = Page::Help;
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    /// rain's Alt keys: tabs, the session page and the separator.
    fn alt_key(&mut self, c: char) -> Vec<Command> {
        match c.to_ascii_lowercase() {
            'g' => self.set_tab(Tab::General),
            's' => self.set_tab(Tab::Stats),
            't' => self.set_tab(Tab::Trackers),
            'p' => self.set_tab(Tab::Peers),
            'w' => self.set_tab(Tab::Webseeds),
            'f' => self.set_tab(Tab::Files),
            'a' => self.open_session(),
            'j' => {
                self.split = self.split.saturating_add(1).min(100);
                Vec::new()
            }
            'k' => {
                self.split = self.split.saturating_sub(1).max(-100);
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    fn open_add(&mut self) -> Vec<Command> {
        self.mode = Mode::Add {
            input: String::new(),
        };
        Vec::new()
    }

    fn confirm_remove(&mut self) -> Vec<Command> {
        if let Some(t) = self.selected_torrent() {
            let id = t.id.clone();
            self.mode = Mode::ConfirmRemove {
                name: self.name_of(&id),
                id,
            };
        }
        Vec::new()
    }

    fn open_session(&mut self) -> Vec<Command> {
        self.page = Page::Session;
        if self.session_in_flight {
            return Vec::new();
        }
        self.session_in_flight = true;
        vec![Command::SessionStats]
    }

    /// After the order changed: sort now, and fetch every torrent's stats if the order
    /// needs them.
    fn resorted(&mut self) -> Vec<Command> {
        self.sort_keeping_selection();
        if !self.sort.needs_stats() {
            return Vec::new();
        }
        let missing: Vec<String> = self
            .torrents
            .iter()
            .filter(|t| !self.stats.contains_key(&t.id))
            .map(|t| t.id.clone())
            .collect();
        if missing.is_empty() {
            Vec::new()
        } else {
            vec![Command::Stats(missing)]
        }
    }
}
