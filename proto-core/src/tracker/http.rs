//! HTTP(S) trackers: announce and scrape URLs, and reply parsing (BEP 3, 7, 23, 48).

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::{
    AnnounceReply, DEFAULT_INTERVAL, Event, MAX_PEERS_PER_REPLY, ScrapeStats, TrackerError,
    clamp_interval, parse_compact_peers, tracker_message,
};
use crate::InfoHash;
use crate::bencode::{self, Value};

/// Deepest nesting accepted in a tracker reply.
pub const MAX_REPLY_DEPTH: usize = 8;

/// Appends `%XX` for every byte, as rain does for `info_hash` and `peer_id`: always valid, and
/// some private trackers compare the raw query string.
fn escape_all(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        let _ = write!(out, "%{b:02X}");
    }
}

/// The announce URL, parameters in rain's fixed order (some private trackers need `info_hash`
/// and `peer_id` first). Existing query parameters of `base` are kept.
pub fn announce_url(base: &str, a: &super::Announce, tracker_id: Option<&[u8]>) -> String {
    let mut url = String::with_capacity(base.len() + 256);
    url.push_str(base);
    url.push(if base.contains('?') { '&' } else { '?' });
    url.push_str("info_hash=");
    escape_all(&mut url, &a.info_hash.0);
    url.push_str("&peer_id=");
    escape_all(&mut url, &a.peer_id);
    let _ = write!(
        url,
        "&port={}&uploaded={}&downloaded={}&left={}&compact=1&no_peer_id=1&numwant={}",
        a.port, a.uploaded, a.downloaded, a.left, a.num_want
    );
    match a.event {
        Event::None => {}
        Event::Started => url.push_str("&event=started"),
        Event::Completed => url.push_str("&event=completed"),
        Event::Stopped => url.push_str("&event=stopped"),
    }
    if let Some(id) = tracker_id {
        url.push_str("&trackerid=");
        for b in percent_encoding::percent_encode(id, percent_encoding::NON_ALPHANUMERIC) {
            url.push_str(b);
        }
    }
    let _ = write!(url, "&key={:08x}", a.key);
    url
}

/// The scrape URL for an announce URL (BEP 48): the last path segment must start with
/// `announce`, which becomes `scrape`. `None` when the tracker cannot scrape.
pub fn scrape_url(announce: &str, info_hashes: &[InfoHash]) -> Option<String> {
    let (path, query) = announce
        .split_once('?')
        .map_or((announce, None), |(p, q)| (p, Some(q)));
    let slash = path.rfind('/')?;
    let rest = path[slash + 1..].strip_prefix("announce")?;
    let mut url = format!("{}scrape{rest}", &path[..=slash]);
    let mut sep = '?';
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
        sep = '&';
    }
    for h in info_hashes {
        url.push(sep);
        url.push_str("info_hash=");
        escape_all(&mut url, &h.0);
        sep = '&';
    }
    Some(url)
}

fn decode_reply(body: &[u8]) -> Result<Value<'_>, TrackerError> {
    let limits = bencode::Limits {
        max_depth: MAX_REPLY_DEPTH,
        max_size: body.len(),
        strict: false,
        max_tokens: bencode::Limits::DEFAULT_MAX_TOKENS,
    };
    let value =
        bencode::decode(body, &limits).map_err(|e| TrackerError::InvalidResponse(e.to_string()))?;
    if value.as_dict().is_none() {
        return Err(TrackerError::InvalidResponse("not a dictionary".into()));
    }
    Ok(value)
}

/// The reply's dictionary. A bencoded body is honoured whatever the HTTP status (rain's rule);
/// otherwise a non-200 status is the error. `failure reason` becomes [`TrackerError::Refused`].
fn reply_dict(status: u16, body: &[u8]) -> Result<Value<'_>, TrackerError> {
    let v = match decode_reply(body) {
        Ok(v) => v,
        Err(_) if status != 200 => return Err(TrackerError::HttpStatus(status)),
        Err(e) => return Err(e),
    };
    match refusal(&v) {
        Some(refused) => Err(refused),
        None => Ok(v),
    }
}

/// A human-readable message (`failure reason`, `warning message`), cleaned and capped.
fn text(v: &Value<'_>, key: &[u8]) -> Option<String> {
    v.get(key).and_then(Value::as_bytes).map(tracker_message)
}

fn seconds(v: &Value<'_>, key: &[u8]) -> Option<Duration> {
    v.get(key)
        .and_then(Value::as_int)
        .and_then(|s| u64::try_from(s).ok())
        .map(Duration::from_secs)
}

fn count(v: &Value<'_>, key: &[u8]) -> Option<u32> {
    v.get(key)
        .and_then(Value::as_int)
        .and_then(|n| u32::try_from(n).ok())
}

/// `failure reason` (with `retry in`, in minutes, as a string or an integer), if present.
fn refusal(v: &Value<'_>) -> Option<TrackerError> {
    let reason = text(v, b"failure reason")?;
    let retry_in = v.get(b"retry in").and_then(|r| match r.as_int() {
        Some(n) => u64::try_from(n).ok(),
        None => r.as_str().and_then(|s| s.trim().parse().ok()),
    });
    Some(TrackerError::Refused {
        reason,
        retry_in: retry_in.map(|m| Duration::from_secs(m.saturating_mul(60))),
    })
}

/// Parses an announce reply body; `status` is the HTTP status.
pub fn parse_announce(status: u16, body: &[u8]) -> Result<AnnounceReply, TrackerError> {
    let v = reply_dict(status, body)?;
    let mut peers = Vec::new();
    match v.get(b"peers") {
        Some(p) if p.as_bytes().is_some() => {
            let bytes = p.as_bytes().unwrap_or_default();
            peers = parse_compact_peers(bytes, false, MAX_PEERS_PER_REPLY).ok_or_else(|| {
                TrackerError::InvalidResponse("compact peers not a multiple of 6 bytes".into())
            })?;
        }
        Some(p) => {
            let list = p
                .as_list()
                .ok_or_else(|| TrackerError::InvalidResponse("peers is not a list".into()))?;
            peers.extend(list.iter().filter_map(dict_peer).take(MAX_PEERS_PER_REPLY));
        }
        None => {}
    }
    if let Some(p6) = v.get(b"peers6").and_then(Value::as_bytes) {
        let room = MAX_PEERS_PER_REPLY.saturating_sub(peers.len());
        let more = parse_compact_peers(p6, true, room).ok_or_else(|| {
            TrackerError::InvalidResponse("peers6 not a multiple of 18 bytes".into())
        })?;
        peers.extend(more);
    }
    let external_ip = v
        .get(b"external ip")
        .and_then(Value::as_bytes)
        .and_then(|b| match b.len() {
            4 => Some(IpAddr::from(<[u8; 4]>::try_from(b).ok()?)),
            16 => Some(IpAddr::from(<[u8; 16]>::try_from(b).ok()?)),
            _ => None,
        });
    Ok(AnnounceReply {
        interval: clamp_interval(seconds(&v, b"interval").unwrap_or(DEFAULT_INTERVAL)),
        min_interval: seconds(&v, b"min interval").map(clamp_interval),
        tracker_id: v
            .get(b"tracker id")
            .and_then(Value::as_bytes)
            .map(<[u8]>::to_vec),
        seeders: count(&v, b"complete"),
        leechers: count(&v, b"incomplete"),
        peers,
        warning: text(&v, b"warning message"),
        external_ip,
    })
}

/// A `{ip, port}` peer dictionary; hostnames are skipped (no resolving in the core).
fn dict_peer(p: &Value<'_>) -> Option<SocketAddr> {
    let ip: IpAddr = p.get(b"ip")?.as_str()?.parse().ok()?;
    let port = u16::try_from(p.get(b"port")?.as_int()?)
        .ok()
        .filter(|p| *p != 0)?;
    Some(SocketAddr::new(ip, port))
}

/// Parses a scrape reply for one torrent.
pub fn parse_scrape(
    status: u16,
    body: &[u8],
    info_hash: &InfoHash,
) -> Result<ScrapeStats, TrackerError> {
    let v = reply_dict(status, body)?;
    let entry = v
        .get(b"files")
        .and_then(|f| f.get(&info_hash.0))
        .ok_or_else(|| TrackerError::InvalidResponse("torrent missing from scrape".into()))?;
    Ok(ScrapeStats {
        seeders: count(entry, b"complete").unwrap_or(0),
        leechers: count(entry, b"incomplete").unwrap_or(0),
        completed: count(entry, b"downloaded").unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bencode::Item;
    use crate::tracker::{Announce, MIN_INTERVAL_FLOOR};

    fn announce(event: Event) -> Announce {
        Announce {
            info_hash: InfoHash([0xab; 20]),
            peer_id: *b"-RN0010-abcdefghijkl",
            port: 20001,
            uploaded: 1,
            downloaded: 2,
            left: 3,
            event,
            num_want: 200,
            key: 0xdead_beef,
        }
    }

    #[test]
    fn announce_url_encodes_in_rains_order() {
        let url = announce_url("http://t.example/announce", &announce(Event::Started), None);
        let ih = "%AB".repeat(20);
        let pid = "%2D%52%4E%30%30%31%30%2D%61%62%63%64%65%66%67%68%69%6A%6B%6C";
        assert_eq!(
            url,
            format!(
                "http://t.example/announce?info_hash={ih}&peer_id={pid}&port=20001&uploaded=1&downloaded=2&left=3\
                 &compact=1&no_peer_id=1&numwant=200&event=started&key=deadbeef"
            )
        );
        let url = announce_url(
            "http://t/a?passkey=xyz",
            &announce(Event::None),
            Some(b"id 1"),
        );
        assert!(url.starts_with("http://t/a?passkey=xyz&info_hash=%AB"));
        assert!(!url.contains("event="));
        assert!(url.contains("&trackerid=id%201&key="));
        assert!(announce_url("u", &announce(Event::Stopped), None).contains("&event=stopped"));
        assert!(announce_url("u", &announce(Event::Completed), None).contains("&event=completed"));
    }

    #[test]
    fn scrape_url_follows_bep_48() {
        let h = [InfoHash([1; 20])];
        assert_eq!(
            scrape_url("http://t/announce", &[]).as_deref(),
            Some("http://t/scrape")
        );
        assert_eq!(
            scrape_url("http://t/x/announce.php?k=1", &h).as_deref(),
            Some(format!("http://t/x/scrape.php?k=1&info_hash={}", "%01".repeat(20)).as_str())
        );
        assert_eq!(scrape_url("http://t/a", &h), None);
        assert_eq!(scrape_url("http://t/announce/x", &h), None);
    }

    #[test]
    fn parses_compact_dict_and_ipv6_peers() {
        let mut compact = vec![10, 0, 0, 1, 0x1a, 0xe1, 127, 0, 0, 1, 0, 0];
        compact.extend([192, 168, 1, 2, 0, 80]);
        let mut v6 = [0u8; 18];
        v6[15] = 1;
        v6[17] = 7;
        let body = Item::dict()
            .with("interval", 1800)
            .with("min interval", 5)
            .with("complete", 4)
            .with("incomplete", 9)
            .with("tracker id", "tid")
            .with("warning message", "careful")
            .with("external ip", vec![1u8, 2, 3, 4])
            .with("peers", compact)
            .with("peers6", v6.to_vec())
            .to_bytes();
        let r = parse_announce(200, &body).unwrap();
        let peers: Vec<String> = r.peers.iter().map(ToString::to_string).collect();
        assert_eq!(
            peers,
            ["10.0.0.1:6881", "192.168.1.2:80", "[::1]:7"],
            "port 0 dropped"
        );
        assert_eq!(r.interval, Duration::from_secs(1800));
        assert_eq!(r.min_interval, Some(MIN_INTERVAL_FLOOR), "clamped");
        assert_eq!((r.seeders, r.leechers), (Some(4), Some(9)));
        assert_eq!(r.tracker_id.as_deref(), Some(&b"tid"[..]));
        assert_eq!(r.warning.as_deref(), Some("careful"));
        assert_eq!(r.external_ip, Some("1.2.3.4".parse().unwrap()));

        let dicts = Item::dict()
            .with(
                "peers",
                vec![
                    Item::dict()
                        .with("ip", "1.2.3.4")
                        .with("port", 5)
                        .with("peer id", "x"),
                    Item::dict().with("ip", "tracker.example").with("port", 5),
                    Item::dict().with("ip", "::2").with("port", 70000),
                ],
            )
            .to_bytes();
        let r = parse_announce(200, &dicts).unwrap();
        assert_eq!(r.peers, ["1.2.3.4:5".parse().unwrap()]);
        assert_eq!(r.interval, DEFAULT_INTERVAL);
    }

    #[test]
    fn messages_are_capped_and_stripped_of_control_characters() {
        use super::super::MAX_MESSAGE_CHARS;
        let evil = format!("\x1b]0;owned\x07{}\r\n", "z".repeat(100_000));
        let body = Item::dict()
            .with("failure reason", evil.as_str())
            .to_bytes();
        let Err(TrackerError::Refused { reason, .. }) = parse_announce(200, &body) else {
            panic!("not a refusal");
        };
        assert_eq!(reason.chars().count(), MAX_MESSAGE_CHARS);
        assert!(!reason.chars().any(char::is_control), "{reason:?}");
        assert!(reason.starts_with(" ]0;owned "));
        let body = Item::dict()
            .with("warning message", "été\u{7}")
            .with("peers", Vec::<u8>::new())
            .to_bytes();
        assert_eq!(
            parse_announce(200, &body).unwrap().warning.as_deref(),
            Some("été ")
        );
    }

    #[test]
    fn failures_and_garbage() {
        let body = Item::dict()
            .with("failure reason", "unregistered torrent")
            .with("retry in", "2")
            .to_bytes();
        assert_eq!(
            parse_announce(200, &body),
            Err(TrackerError::Refused {
                reason: "unregistered torrent".into(),
                retry_in: Some(Duration::from_secs(120))
            })
        );
        assert_eq!(
            parse_announce(200, &body).unwrap_err().to_string(),
            "announce error: unregistered torrent"
        );
        // A bencoded failure on a non-200 status is still honoured.
        assert!(matches!(
            parse_announce(400, &body),
            Err(TrackerError::Refused { .. })
        ));
        assert_eq!(
            parse_announce(404, b"<html>not found</html>"),
            Err(TrackerError::HttpStatus(404))
        );
        assert!(matches!(
            parse_announce(200, b"<html>"),
            Err(TrackerError::InvalidResponse(_))
        ));
        assert!(matches!(
            parse_announce(200, b"le"),
            Err(TrackerError::InvalidResponse(_))
        ));
        let odd = Item::dict().with("peers", vec![1u8; 7]).to_bytes();
        assert!(matches!(
            parse_announce(200, &odd),
            Err(TrackerError::InvalidResponse(_))
        ));
        let deep = format!("d5:peers{}{}e", "l".repeat(50), "e".repeat(50));
        assert!(matches!(
            parse_announce(200, deep.as_bytes()),
            Err(TrackerError::InvalidResponse(_))
        ));
    }

    #[test]
    fn reply_bomb_is_capped() {
        let many = vec![1u8; 6 * (MAX_PEERS_PER_REPLY + 500)];
        let body = Item::dict().with("peers", many).to_bytes();
        assert_eq!(
            parse_announce(200, &body).unwrap().peers.len(),
            MAX_PEERS_PER_REPLY
        );
    }

    #[test]
    fn scrape_replies() {
        let ih = InfoHash([7; 20]);
        let entry = Item::dict()
            .with("complete", 3)
            .with("incomplete", 2)
            .with("downloaded", 10);
        let Item::Dict(mut files) = Item::dict() else {
            unreachable!()
        };
        files.insert(ih.0.to_vec(), entry);
        let body = Item::dict().with("files", Item::Dict(files)).to_bytes();
        assert_eq!(
            parse_scrape(200, &body, &ih),
            Ok(ScrapeStats {
                seeders: 3,
                leechers: 2,
                completed: 10
            })
        );
        assert!(matches!(
            parse_scrape(200, &body, &InfoHash([8; 20])),
            Err(TrackerError::InvalidResponse(_))
        ));
    }
}
