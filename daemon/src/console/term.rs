//! The thin I/O loop: crossterm events in, [`App`] updates, RPC requests sent on a tokio
//! runtime whose results come back over a channel, frames drawn with ratatui. The terminal is
//! restored however the loop ends: normally, with an error (a drop guard) or by a panic
//! (a panic hook).

use std::io::{self, IsTerminal, Stdout, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Once, mpsc};
use std::time::{Duration, Instant};

use crossterm::event::{self, DisableBracketedPaste, EnableBracketedPaste, Event};
use crossterm::{cursor, execute, terminal};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::layout::Rect;
use tokio::runtime::Runtime;
use tokio::task::JoinSet;

use super::app::{Action, AddFailure, App, Command, DetailData, Tab, Update};
use super::columns::Column;
use super::ui;
use crate::cli::CliError;
use crate::client::RpcClient;
use crate::rpc::types::{AddOptions, Torrent};

/// How often the list, the details and the session stats are refreshed.
const TICK: Duration = Duration::from_secs(1);

/// The longest wait for a key, so that RPC results are drawn promptly.
const POLL: Duration = Duration::from_millis(50);

/// A local file larger than this is not a `.torrent`.
const MAX_TORRENT_FILE: u64 = 64 * 1024 * 1024;

/// Whether the terminal is in raw mode on the alternate screen (and must be restored).
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Puts the terminal back as it was; does nothing if it already is.
fn restore() {
    if ACTIVE.swap(false, Ordering::SeqCst) {
        let _ = terminal::disable_raw_mode();
        let _ = execute!(
            io::stdout(),
            DisableBracketedPaste,
            terminal::LeaveAlternateScreen,
            cursor::Show
        );
    }
}

/// Restores the terminal before a panic message is printed, so it is readable.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
}

/// Raw mode and the alternate screen for as long as it lives.
struct TerminalGuard;

impl TerminalGuard {
    fn enter() -> io::Result<TerminalGuard> {
        install_panic_hook();
        terminal::enable_raw_mode()?;
        ACTIVE.store(true, Ordering::SeqCst);
        // From here on, dropping the guard undoes what was done.
        let guard = TerminalGuard;
        execute!(
            io::stdout(),
            terminal::EnterAlternateScreen,
            EnableBracketedPaste,
            cursor::Hide
        )?;
        Ok(guard)
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

fn failed(msg: impl std::fmt::Display) -> CliError {
    CliError::Failed(msg.to_string())
}

/// Runs the console until the user quits.
pub fn run(
    url: &str,
    timeout: Duration,
    token: Option<&str>,
    columns: Vec<Column>,
) -> Result<(), CliError> {
    if !io::stdin().is_terminal() || !io::stdout().is_terminal() {
        return Err(failed("the console needs a terminal"));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| failed(format!("cannot start the runtime: {e}")))?;
    let client = {
        let _entered = runtime.enter();
        Arc::new(RpcClient::new(url, timeout, token).map_err(failed)?)
    };
    let mut app = App::new(url, columns);
    let result = {
        let guard = TerminalGuard::enter().map_err(|e| failed(format!("terminal: {e}")))?;
        let result = CrosstermBackend::new(io::stdout());
        let result = Terminal::new(result)
            .and_then(|mut terminal| event_loop(&mut terminal, &runtime, &client, &mut app));
        drop(guard);
        result
    };
    // Requests still under way are not waited for.
    runtime.shutdown_background();
    result.map_err(|e| failed(format!("terminal: {e}")))
}

fn event_loop(
    terminal: &mut Terminal<CrosstermBackend<Stdout>>,
    runtime: &Runtime,
    client: &Arc<RpcClient>,
    app: &mut App,
) -> io::Result<()> {
    let (tx, rx) = mpsc::channel();
    let send = |commands: Vec<Command>| {
        for command in commands {
            let (client, tx) = (Arc::clone(client), tx.clone());
            runtime.spawn(async move {
                let _ = tx.send(perform(client, command).await);
            });
        }
    };
    let mut next_tick = Instant::now();
    let mut dirty = true;
    loop {
        if Instant::now() >= next_tick {
            send(app.tick());
            next_tick = Instant::now() + TICK;
        }
        while let Ok(update) = rx.try_recv() {
            send(app.apply(update));
            dirty = true;
        }
        if let Some(text) = app.take_clipboard() {
            let osc52 = format!(
                "\x1b]52;c;{}\x07",
                data_encoding::BASE64.encode(text.as_bytes())
            );
            terminal.backend_mut().write_all(osc52.as_bytes())?;
            terminal.backend_mut().flush()?;
        }
        if app.quit {
            return Ok(());
        }
        if dirty {
            let size = terminal.size()?;
            app.set_list_rows(ui::list_rows(app, Rect::new(0, 0, size.width, size.height)));
            terminal.draw(|frame| ui::render(app, frame))?;
            dirty = false;
        }
        let wait = next_tick
            .saturating_duration_since(Instant::now())
            .min(POLL);
        if event::poll(wait)? {
            match event::read()? {
                Event::Key(key) => send(app.on_key(key)),
                Event::Paste(text) => app.on_paste(&text),
                // A resize (or anything else) just redraws.
                _ => {}
            }
            dirty = true;
        }
    }
}

/// Sends one request and wraps its answer for the model.
async fn perform(client: Arc<RpcClient>, command: Command) -> Update {
    let c = &*client;
    match command {
        Command::List => Update::List(c.list_torrents().await),
        Command::Stats(ids) => {
            // In parallel, as rain does; answers are put back in the order asked.
            let mut set = JoinSet::new();
            for (i, id) in ids.into_iter().enumerate() {
                let client = Arc::clone(&client);
                set.spawn(async move {
                    let result = client.torrent_stats(&id).await;
                    (i, id, result)
                });
            }
            let mut out = Vec::new();
            while let Some(joined) = set.join_next().await {
                out.extend(joined.ok());
            }
            out.sort_by_key(|(i, _, _)| *i);
            Update::Stats(out.into_iter().map(|(_, id, r)| (id, r)).collect())
        }
        Command::Details { id, tab } => {
            let result = match tab {
                Tab::General | Tab::Stats => c
                    .torrent_stats(&id)
                    .await
                    .map(|s| DetailData::Stats(Box::new(s))),
                Tab::Trackers => c.trackers(&id).await.map(DetailData::Trackers),
                Tab::Peers => c.peers(&id).await.map(DetailData::Peers),
                Tab::Webseeds => c.webseeds(&id).await.map(DetailData::Webseeds),
                Tab::Files => c.file_stats(&id).await.map(DetailData::Files),
            };
            Update::Details { id, tab, result }
        }
        Command::SessionStats => Update::SessionStats(c.session_stats().await),
        Command::Start(id) => {
            let result = c.start(&id).await;
            Update::Action {
                action: Action::Start,
                id,
                result,
            }
        }
        Command::Stop(id) => {
            let result = c.stop(&id).await;
            Update::Action {
                action: Action::Stop,
                id,
                result,
            }
        }
        Command::Remove { id, keep_data } => {
            let result = c.remove_torrent(&id, keep_data).await;
            let action = if keep_data {
                Action::RemoveKeepData
            } else {
                Action::Remove
            };
            Update::Action { action, id, result }
        }
        Command::Verify(id) => {
            let result = c.verify(&id).await;
            Update::Action {
                action: Action::Verify,
                id,
                result,
            }
        }
        Command::Announce(id) => {
            let result = c.announce(&id).await;
            Update::Action {
                action: Action::Announce,
                id,
                result,
            }
        }
        Command::Add(entries) => {
            let mut out = Vec::new();
            for entry in entries {
                let result = add_entry(c, &entry).await;
                out.push((entry, result));
            }
            Update::Added(out)
        }
        Command::Magnet(id) => {
            let result = c.magnet(&id).await;
            Update::Magnet { id, result }
        }
    }
}

/// `magnet:`, `http://` and `https://` go to `AddURI`; anything else is a local file.
fn is_uri(entry: &str) -> bool {
    ["magnet:", "http://", "https://"]
        .iter()
        .any(|prefix| entry.starts_with(prefix))
}

async fn add_entry(client: &RpcClient, entry: &str) -> Result<Torrent, AddFailure> {
    if is_uri(entry) {
        return client
            .add_uri(entry, AddOptions::default())
            .await
            .map_err(AddFailure::Rpc);
    }
    let data = read_torrent_file(entry).map_err(AddFailure::File)?;
    client
        .add_torrent(&data, AddOptions::default())
        .await
        .map_err(AddFailure::Rpc)
}

/// Reads a local `.torrent` (`~/` is the home directory).
fn read_torrent_file(entry: &str) -> Result<Vec<u8>, String> {
    let path = match (entry.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(entry),
    };
    let cannot = |e: &dyn std::fmt::Display| format!("cannot read {}: {e}", path.display());
    let meta = std::fs::metadata(&path).map_err(|e| cannot(&e))?;
    if meta.is_dir() {
        return Err(cannot(&"is a directory"));
    }
    if meta.len() > MAX_TORRENT_FILE {
        return Err(cannot(&"too large for a torrent file"));
    }
    std::fs::read(&path).map_err(|e| cannot(&e))
}
