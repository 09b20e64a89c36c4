//! End to end: `rain client console` in a tmux pane against a real `raind`. Keys go in with
//! `tmux send-keys`, the screen comes back with `tmux capture-pane -p`. Every wait is bounded;
//! the tmux server and raind are killed when their guards drop.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{RAIN, Raind, make_torrent};

/// How long the screen may take to show what is expected.
const SCREEN_WAIT: Duration = Duration::from_secs(30);

/// A private tmux server (its own socket, no config) running one session, "console".
struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    fn tmux(&self) -> Command {
        let mut c = Command::new("tmux");
        c.arg("-S").arg(&self.socket).args(["-f", "/dev/null"]);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        let out = self.tmux().args(args).output().expect("tmux runs");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Starts `command` in a `width` × `height` pane that stays after the command exits.
    fn start(socket: &Path, width: u16, height: u16, command: &str) -> Tmux {
        let t = Tmux {
            socket: socket.to_owned(),
        };
        let (w, h) = (width.to_string(), height.to_string());
        t.run(&[
            "new-session",
            "-d",
            "-s",
            "console",
            "-x",
            &w,
            "-y",
            &h,
            command,
            ";",
            "set-option",
            "-g",
            "remain-on-exit",
            "on",
        ]);
        t
    }

    fn send(&self, keys: &str) {
        self.run(&["send-keys", "-t", "console", keys]);
    }

    fn screen(&self) -> String {
        let out = self.run(&["capture-pane", "-p", "-t", "console"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Polls the screen until `done` holds; returns that screen.
    fn wait_for(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + SCREEN_WAIT;
        loop {
            let screen = self.screen();
            if done(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "the console never showed {what}; the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux().arg("kill-server").output();
    }
}

/// The list row of the torrent with ID `id` (the ID column shows it only there).
fn row<'a>(screen: &'a str, id: &str) -> Option<&'a str> {
    screen
        .lines()
        .find(|l| l.split_whitespace().any(|w| w == id))
}

fn row_shows(screen: &str, id: &str, status: &str) -> bool {
    row(screen, id).is_some_and(|r| r.contains(status))
}

fn tmux_present() -> bool {
    Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn console_selects_stops_and_starts_under_tmux() {
    if !tmux_present() {
        assert!(
            std::env::var("RAIN_REQUIRE_INTEROP").as_deref() != Ok("1"),
            "tmux is not installed (scripts/install-peers.sh installs it)"
        );
        println!("SKIP console_selects_stops_and_starts_under_tmux: tmux is not installed");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut d = Raind::start(&tmp.path().join("d"), "");
    // Two torrents whose data is in place, so both seed.
    for (id, file, len) in [
        ("first", "one.bin", 200_000),
        ("second", "two.bin", 300_000),
    ] {
        let (torrent, _) = make_torrent(tmp.path(), file, len);
        std::fs::create_dir_all(d.dir.join("data").join(id)).unwrap();
        std::fs::copy(
            tmp.path().join("src").join(file),
            d.dir.join("data").join(id).join(file),
        )
        .unwrap();
        d.json(&["add", "-t", torrent.to_str().unwrap(), "--id", id]);
        d.wait_for(id, "seeding", |s| s["Status"] == "Seeding");
    }

    // The shell records the console's exit status once it quits.
    let status_file = tmp.path().join("console.status");
    let command = format!(
        "'{RAIN}' client --url {} console --columns '# ID Name Status'; echo $? > '{}'",
        d.url,
        status_file.display()
    );
    let tmux = Tmux::start(&tmp.path().join("tmux.sock"), 100, 30, &command);
    let screen = tmux.wait_for("both torrents seeding", |s| {
        row_shows(s, "first", "Seeding") && row_shows(s, "second", "Seeding")
    });
    assert!(screen.contains("Press '?' for help"), "{screen}");
    assert!(
        screen.contains("Name: one.bin"),
        "first selected:\n{screen}"
    );

    // Select the second torrent and stop it.
    tmux.send("j");
    tmux.wait_for("the second torrent's details", |s| {
        s.contains("Name: two.bin")
    });
    tmux.send("x");
    let screen = tmux.wait_for("the second torrent stopped", |s| {
        row_shows(s, "second", "Stopped")
    });
    assert!(row_shows(&screen, "first", "Seeding"), "{screen}");
    assert_eq!(d.stats("second")["Status"], "Stopped");
    assert_eq!(d.stats("first")["Status"], "Seeding");

    // And start it again.
    tmux.send("s");
    tmux.wait_for("the second torrent seeding again", |s| {
        row_shows(s, "second", "Seeding")
    });
    assert_eq!(d.stats("second")["Status"], "Seeding");

    // The server goes away: a banner; it comes back: the banner goes.
    d.stop();
    tmux.wait_for("the reconnecting banner", |s| s.contains("Reconnecting"));
    d.spawn();
    tmux.wait_for("the list after the reconnection", |s| {
        !s.contains("Reconnecting") && row_shows(s, "second", "Seeding")
    });

    // A small window still shows the list: the ID column gives way to the name.
    tmux.run(&["resize-window", "-t", "console", "-x", "40", "-y", "8"]);
    let screen = tmux.wait_for("the list in a small window", |s| {
        s.lines()
            .any(|l| l.contains("two.bin") && l.contains("Seeding"))
    });
    assert!(screen.lines().all(|l| l.chars().count() <= 40), "{screen}");

    // q quits with status 0 and gives the screen back.
    tmux.send("q");
    let deadline = Instant::now() + SCREEN_WAIT;
    let exit = loop {
        if let Ok(status) = std::fs::read_to_string(&status_file)
            && status.ends_with('\n')
        {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "q did not quit:\n{}",
            tmux.screen()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(exit.trim(), "0", "exit status");
    let screen = tmux.screen();
    assert!(!screen.contains("Press '?' for help"), "{screen}");
}

/// Without a terminal, or with an unknown column, the console says so in one line.
#[test]
fn console_needs_a_terminal_and_known_columns() {
    let out = Command::new(RAIN)
        .args(["client", "console", "--columns", "# Bogus"])
        .output()
        .unwrap();
    let err = common::one_error_line(&out);
    assert!(err.contains("unknown column \"Bogus\""), "{err}");
    let out = Command::new(RAIN)
        .args(["client", "--url", "http://127.0.0.1:1", "console"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = common::one_error_line(&out);
    assert!(err.contains("needs a terminal"), "{err}");
}
