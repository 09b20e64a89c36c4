//! The human summaries printed by `rain client stats` and `rain client session-stats`
//! without `--json`: rain's console text (reference/rain-behaviour.md §7), line for line.

use std::fmt::Write as _;

use crate::rpc::types::{SessionStats, Stats};

/// A whole number of seconds the way Go's `time.Duration.String` prints it:
/// `0s`, `45s`, `1m5s`, `2h0m30s`, `-1s`.
pub fn go_duration(secs: i64) -> String {
    if secs == 0 {
        return "0s".to_owned();
    }
    let abs = secs.unsigned_abs();
    let (h, m, s) = (abs / 3600, abs % 3600 / 60, abs % 60);
    let body = if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    };
    if secs < 0 { format!("-{body}") } else { body }
}

fn secs_i64(secs: u64) -> i64 {
    i64::try_from(secs).unwrap_or(i64::MAX)
}

/// Percent done: pieces checked while verifying, bytes allocated while allocating, pieces
/// held otherwise (rounded down).
pub fn progress(stats: &Stats) -> u64 {
    let total = u64::from(stats.pieces.total);
    if total == 0 {
        return 0;
    }
    match stats.status.as_str() {
        "Verifying" => u64::from(stats.pieces.checked) * 100 / total,
        "Allocating" if stats.bytes.total > 0 => {
            (u128::from(stats.bytes.allocated) * 100 / u128::from(stats.bytes.total)) as u64
        }
        "Allocating" => 0,
        _ => u64::from(stats.pieces.have) * 100 / total,
    }
}

/// Uploaded / downloaded, 0 before anything was downloaded.
pub fn ratio(stats: &Stats) -> f64 {
    if stats.bytes.downloaded == 0 {
        0.0
    } else {
        stats.bytes.uploaded as f64 / stats.bytes.downloaded as f64
    }
}

/// `N bytes`, `N KiB` or `N MiB`, rounded down.
pub fn size(bytes: u64) -> String {
    if bytes < 1 << 10 {
        format!("{bytes} bytes")
    } else if bytes < 1 << 20 {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{} MiB", bytes >> 20)
    }
}

/// rain's torrent summary (the console's General tab).
pub fn format_stats(stats: &Stats) -> String {
    let status = if stats.status == "Stopped" && !stats.error.is_empty() {
        format!("{}: {}", stats.status, stats.error)
    } else {
        stats.status.clone()
    };
    let download = format!("{} KiB/s", stats.speed.download / 1024);
    let upload = format!("{} KiB/s", stats.speed.upload / 1024);
    let eta = if stats.eta < 0 {
        String::new()
    } else {
        go_duration(stats.eta)
    };
    let mut o = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(o, "Name: {}", stats.name);
    let _ = writeln!(o, "Private: {}", stats.private);
    let _ = writeln!(o, "Status: {status}");
    let _ = writeln!(o, "Progress: {}%", progress(stats));
    let _ = writeln!(o, "Ratio: {:.2}", ratio(stats));
    let _ = writeln!(o, "Size: {}", size(stats.bytes.total));
    let _ = writeln!(
        o,
        "Peers: {} in / {} out",
        stats.peers.incoming, stats.peers.outgoing
    );
    let _ = writeln!(o, "Download speed: {download:>11}");
    let _ = writeln!(o, "Upload speed:   {upload:>11}");
    let _ = writeln!(o, "ETA: {eta}");
    o
}

/// rain's session summary (the console's session-stats page). Sizes are whole MiB and
/// speeds whole KiB/s, labelled "MB" and "KB/s" as rain labels them.
pub fn format_session_stats(s: &SessionStats) -> String {
    const MIB: u64 = 1 << 20;
    // rain prints "-1s ago" for a blocklist never loaded; say so instead.
    let updated = if s.block_list_recency < 0 {
        "never".to_owned()
    } else {
        format!("{} ago", go_duration(s.block_list_recency))
    };
    let mut o = String::new();
    let _ = writeln!(
        o,
        "Torrents: {}, Peers: {}, Uptime: {}",
        s.torrents,
        s.peers,
        go_duration(secs_i64(s.uptime))
    );
    let _ = writeln!(
        o,
        "BlocklistRules: {}, Updated: {updated}",
        s.block_list_rules
    );
    let _ = writeln!(
        o,
        "Reads: {}/s, {}KB/s, Active: {}, Pending: {}",
        s.reads_per_second,
        s.speed_read / 1024,
        s.reads_active,
        s.reads_pending
    );
    let _ = writeln!(
        o,
        "Writes: {}/s, {}KB/s, Active: {}, Pending: {}",
        s.writes_per_second,
        s.speed_write / 1024,
        s.writes_active,
        s.writes_pending
    );
    let _ = writeln!(
        o,
        "ReadCache Objects: {}, Size: {}MB, Utilization: {}%",
        s.read_cache_objects,
        s.read_cache_size / MIB,
        s.read_cache_utilization
    );
    let _ = writeln!(
        o,
        "WriteCache Objects: {}, Size: {}MB, PendingKeys: {}",
        s.write_cache_objects,
        s.write_cache_size / MIB,
        s.write_cache_pending_keys
    );
    let _ = writeln!(
        o,
        "DownloadSpeed: {}KB/s, UploadSpeed: {}KB/s",
        s.speed_download / 1024,
        s.speed_upload / 1024
    );
    let _ = writeln!(
        o,
        "BytesDownloaded: {}MB, BytesUploaded: {}MB",
        s.bytes_downloaded / MIB,
        s.bytes_uploaded / MIB
    );
    let _ = writeln!(
        o,
        "BytesRead: {}MB, BytesWritten: {}MB",
        s.bytes_read / MIB,
        s.bytes_written / MIB
    );
    o
}
