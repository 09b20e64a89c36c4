//! KRPC (BEP 5): the bencoded query/response/error messages DHT nodes exchange over UDP.
//!
//! [`Message::decode`] turns one datagram into a typed message or a [`DecodeError`]; it never
//! panics and bounds every field (see the `MAX_*` constants). [`Message::encode`] writes the
//! canonical encoding (keys sorted), so `decode(encode(m)) == m`.
//!
//! Supported: `ping`, `find_node`, `get_peers`, `announce_peer` (with `implied_port`),
//! responses (`id`, `nodes`, `nodes6`, `values`, `token`), errors 201–204, `want` (BEP 32),
//! `ro` (BEP 43), the client version `v`, and the requester's address `ip` (BEP 42).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::node_id::NodeId;
use crate::InfoHash;
use crate::bencode::{self, Item, Limits, Value};

/// Largest datagram decoded; anything longer is rejected unread.
pub const MAX_DATAGRAM: usize = 2048;
/// Longest transaction id accepted (ours are 2 bytes; real clients use 1–8).
pub const MAX_TID_LEN: usize = 16;
/// Longest token accepted.
pub const MAX_TOKEN_LEN: usize = 64;
/// Longest client version string accepted.
pub const MAX_VERSION_LEN: usize = 16;
/// Most peer addresses accepted in one `values` list.
pub const MAX_VALUES: usize = 128;
/// Most nodes accepted in one `nodes` or `nodes6` string.
pub const MAX_COMPACT_NODES: usize = 32;
/// Longest error message accepted.
pub const MAX_ERROR_MESSAGE: usize = 256;
/// Deepest bencode nesting a KRPC message needs (message → arguments → `want`/`values`).
const MAX_DEPTH: usize = 4;
/// Size of a compact IPv4 node: id, address, port.
pub const COMPACT_NODE_V4: usize = 26;
/// Size of a compact IPv6 node: id, address, port.
pub const COMPACT_NODE_V6: usize = 38;

/// A node as it travels in `nodes`/`nodes6`: its id and UDP address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct CompactNode {
    /// The node's id.
    pub id: NodeId,
    /// The node's UDP address.
    pub addr: SocketAddr,
}

/// Which address families a querier wants nodes for (BEP 32). Both false: not specified,
/// answer with the querier's own family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Want {
    /// `n4`: IPv4 nodes.
    pub v4: bool,
    /// `n6`: IPv6 nodes.
    pub v6: bool,
}

/// A query and its arguments (besides the querier's id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// `ping`.
    Ping,
    /// `find_node`: the nodes closest to `target`.
    FindNode {
        /// The id looked for.
        target: NodeId,
    },
    /// `get_peers`: peers for an info-hash, or the closest nodes and a token.
    GetPeers {
        /// The torrent.
        info_hash: InfoHash,
    },
    /// `announce_peer`: the querier downloads `info_hash` on `port`.
    AnnouncePeer {
        /// The torrent.
        info_hash: InfoHash,
        /// The TCP port, ignored when `implied_port` is set.
        port: u16,
        /// Use the UDP source port of the query instead of `port`.
        implied_port: bool,
        /// The token from an earlier `get_peers` response.
        token: Vec<u8>,
    },
}

impl Query {
    /// The method name on the wire.
    pub fn method(&self) -> &'static str {
        match self {
            Query::Ping => "ping",
            Query::FindNode { .. } => "find_node",
            Query::GetPeers { .. } => "get_peers",
            Query::AnnouncePeer { .. } => "announce_peer",
        }
    }
}

/// A response's fields. KRPC responses are untyped; which fields matter depends on the query.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Response {
    /// The responder's id.
    pub id: NodeId,
    /// Compact IPv4 nodes (`nodes`).
    pub nodes: Vec<CompactNode>,
    /// Compact IPv6 nodes (`nodes6`).
    pub nodes6: Vec<CompactNode>,
    /// Peers (`values`).
    pub values: Vec<SocketAddr>,
    /// Write token for a later `announce_peer`.
    pub token: Option<Vec<u8>>,
}

/// KRPC error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// 201.
    Generic,
    /// 202.
    Server,
    /// 203: malformed packet, invalid arguments or bad token.
    Protocol,
    /// 204.
    MethodUnknown,
    /// Another code (in `100..1000`).
    Other(u16),
}

impl ErrorCode {
    /// The numeric code.
    pub fn code(self) -> i64 {
        match self {
            ErrorCode::Generic => 201,
            ErrorCode::Server => 202,
            ErrorCode::Protocol => 203,
            ErrorCode::MethodUnknown => 204,
            ErrorCode::Other(c) => i64::from(c),
        }
    }

    fn from_code(c: i64) -> Option<Self> {
        Some(match c {
            201 => ErrorCode::Generic,
            202 => ErrorCode::Server,
            203 => ErrorCode::Protocol,
            204 => ErrorCode::MethodUnknown,
            100..=999 => ErrorCode::Other(c as u16),
            _ => return None,
        })
    }
}

/// An error message (`y` = `e`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorMessage {
    /// The code.
    pub code: ErrorCode,
    /// The human-readable text (bounded by [`MAX_ERROR_MESSAGE`]).
    pub message: Vec<u8>,
}

/// What a message is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// A query from `id`.
    Query {
        /// The querier's id.
        id: NodeId,
        /// Method and arguments.
        query: Query,
        /// BEP 32 `want`.
        want: Want,
    },
    /// A response.
    Response(Response),
    /// An error.
    Error(ErrorMessage),
}

/// One KRPC message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Transaction id (`t`), 1..=[`MAX_TID_LEN`] bytes.
    pub tid: Vec<u8>,
    /// Client version (`v`).
    pub version: Option<Vec<u8>>,
    /// BEP 43 read-only flag (`ro`), meaningful on queries.
    pub read_only: bool,
    /// BEP 42 `ip`: the address the responder saw the query come from.
    pub ip: Option<SocketAddr>,
    /// The message proper.
    pub body: Body,
}

/// Why a datagram is not a valid KRPC message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// Longer than [`MAX_DATAGRAM`].
    #[error("datagram too large")]
    TooLarge,
    /// Not bencode, or nested too deep.
    #[error("invalid bencode")]
    Bencode,
    /// The top level is not a dictionary.
    #[error("not a dictionary")]
    NotADict,
    /// A required key is absent.
    #[error("missing field `{0}`")]
    Missing(&'static str),
    /// A key holds a value of the wrong type, size or range.
    #[error("invalid field `{0}`")]
    Invalid(&'static str),
    /// A query with a method we do not implement.
    #[error("unknown method")]
    UnknownMethod,
    /// `y` is none of `q`, `r`, `e`.
    #[error("unknown message type")]
    UnknownType,
}

/// A datagram that failed to decode, with the transaction id when it was a query that
/// deserves a KRPC error reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed KRPC message: {reason}")]
pub struct DecodeError {
    /// What was wrong.
    pub reason: Malformed,
    /// Set when the datagram was a query with a valid transaction id: the sender can be
    /// answered with error 203 (or 204 for [`Malformed::UnknownMethod`]).
    pub query_tid: Option<Vec<u8>>,
}

fn limits() -> Limits {
    Limits {
        max_depth: MAX_DEPTH,
        max_size: MAX_DATAGRAM,
        strict: false,
        max_tokens: bencode::Limits::DEFAULT_MAX_TOKENS,
    }
}

fn err(reason: Malformed) -> DecodeError {
    DecodeError {
        reason,
        query_tid: None,
    }
}

fn bytes_field<'a>(d: &Value<'a>, key: &'static str) -> Result<&'a [u8], Malformed> {
    d.get(key.as_bytes())
        .ok_or(Malformed::Missing(key))?
        .as_bytes()
        .ok_or(Malformed::Invalid(key))
}

fn id_field(d: &Value<'_>, key: &'static str) -> Result<[u8; 20], Malformed> {
    bytes_field(d, key)?
        .try_into()
        .map_err(|_| Malformed::Invalid(key))
}

/// Parses a compact IPv4 (6 bytes) or IPv6 (18 bytes) address.
pub fn parse_compact_addr(b: &[u8]) -> Option<SocketAddr> {
    match b.len() {
        6 => {
            let ip = Ipv4Addr::new(b[0], b[1], b[2], b[3]);
            Some(SocketAddr::new(
                IpAddr::V4(ip),
                u16::from_be_bytes([b[4], b[5]]),
            ))
        }
        18 => {
            let mut o = [0u8; 16];
            o.copy_from_slice(&b[..16]);
            Some(SocketAddr::new(
                IpAddr::V6(Ipv6Addr::from(o)),
                u16::from_be_bytes([b[16], b[17]]),
            ))
        }
        _ => None,
    }
}

/// Appends the compact form of `addr` (6 or 18 bytes).
pub fn write_compact_addr(out: &mut Vec<u8>, addr: SocketAddr) {
    match addr.ip() {
        IpAddr::V4(v4) => out.extend_from_slice(&v4.octets()),
        IpAddr::V6(v6) => out.extend_from_slice(&v6.octets()),
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
}

/// Parses a `nodes` (`v6` false, 26-byte entries) or `nodes6` (38-byte entries) string.
/// Entries with port 0 are skipped; a length that is not a multiple of the entry size, or more
/// than [`MAX_COMPACT_NODES`] entries, is an error.
pub fn parse_compact_nodes(b: &[u8], v6: bool) -> Option<Vec<CompactNode>> {
    let size = if v6 { COMPACT_NODE_V6 } else { COMPACT_NODE_V4 };
    if !b.len().is_multiple_of(size) || b.len() / size > MAX_COMPACT_NODES {
        return None;
    }
    let mut out = Vec::with_capacity(b.len() / size);
    for chunk in b.chunks_exact(size) {
        let mut id = [0u8; 20];
        id.copy_from_slice(&chunk[..20]);
        let addr = parse_compact_addr(&chunk[20..])?;
        if addr.port() != 0 {
            out.push(CompactNode {
                id: NodeId(id),
                addr,
            });
        }
    }
    Some(out)
}

/// Appends compact nodes (each 26 or 38 bytes, by address family).
pub fn write_compact_nodes(out: &mut Vec<u8>, nodes: &[CompactNode]) {
    for n in nodes {
        out.extend_from_slice(&n.id.0);
        write_compact_addr(out, n.addr);
    }
}

impl Message {
    /// Decodes one datagram. Never panics; every field is bounded.
    pub fn decode(input: &[u8]) -> Result<Message, DecodeError> {
        if input.len() > MAX_DATAGRAM {
            return Err(err(Malformed::TooLarge));
        }
        let v = bencode::decode(input, &limits()).map_err(|_| err(Malformed::Bencode))?;
        if v.as_dict().is_none() {
            return Err(err(Malformed::NotADict));
        }
        let tid = bytes_field(&v, "t").map_err(err)?;
        if tid.is_empty() || tid.len() > MAX_TID_LEN {
            return Err(err(Malformed::Invalid("t")));
        }
        let y = bytes_field(&v, "y").map_err(err)?;
        let is_query = y == b"q";
        let fail = |reason| DecodeError {
            reason,
            query_tid: is_query.then(|| tid.to_vec()),
        };
        let version = match v.get(b"v") {
            None => None,
            Some(x) => match x.as_bytes() {
                Some(b) if b.len() <= MAX_VERSION_LEN => Some(b.to_vec()),
                _ => return Err(fail(Malformed::Invalid("v"))),
            },
        };
        let read_only = match v.get(b"ro") {
            None => false,
            Some(x) => match x.as_int() {
                Some(0) => false,
                Some(1) => true,
                _ => return Err(fail(Malformed::Invalid("ro"))),
            },
        };
        let ip = match v.get(b"ip") {
            None => None,
            Some(x) => Some(
                x.as_bytes()
                    .and_then(parse_compact_addr)
                    .ok_or_else(|| fail(Malformed::Invalid("ip")))?,
            ),
        };
        let body = match y {
            b"q" => decode_query(&v).map_err(fail)?,
            b"r" => decode_response(&v).map_err(fail)?,
            b"e" => decode_error(&v).map_err(fail)?,
            _ => return Err(fail(Malformed::UnknownType)),
        };
        Ok(Message {
            tid: tid.to_vec(),
            version,
            read_only,
            ip,
            body,
        })
    }

    /// Appends the canonical encoding.
    pub fn encode(&self, out: &mut Vec<u8>) {
        self.to_item().encode(out);
    }

    /// The canonical encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        self.encode(&mut out);
        out
    }

    fn to_item(&self) -> Item {
        let mut top = Item::dict().with("t", self.tid.clone());
        if let Some(v) = &self.version {
            top = top.with("v", v.clone());
        }
        if self.read_only {
            top = top.with("ro", 1);
        }
        if let Some(ip) = self.ip {
            let mut b = Vec::with_capacity(18);
            write_compact_addr(&mut b, ip);
            top = top.with("ip", b);
        }
        match &self.body {
            Body::Query { id, query, want } => {
                let mut a = Item::dict().with("id", id.0.to_vec());
                match query {
                    Query::Ping => {}
                    Query::FindNode { target } => a = a.with("target", target.0.to_vec()),
                    Query::GetPeers { info_hash } => {
                        a = a.with("info_hash", info_hash.0.to_vec());
                    }
                    Query::AnnouncePeer {
                        info_hash,
                        port,
                        implied_port,
                        token,
                    } => {
                        a = a
                            .with("info_hash", info_hash.0.to_vec())
                            .with("port", i64::from(*port))
                            .with("token", token.clone());
                        if *implied_port {
                            a = a.with("implied_port", 1);
                        }
                    }
                }
                let mut w = Vec::new();
                if want.v4 {
                    w.push(Item::from("n4"));
                }
                if want.v6 {
                    w.push(Item::from("n6"));
                }
                if !w.is_empty() {
                    a = a.with("want", w);
                }
                top.with("y", "q").with("q", query.method()).with("a", a)
            }
            Body::Response(r) => {
                let mut d = Item::dict().with("id", r.id.0.to_vec());
                if !r.nodes.is_empty() {
                    let mut b = Vec::with_capacity(r.nodes.len() * COMPACT_NODE_V4);
                    write_compact_nodes(&mut b, &r.nodes);
                    d = d.with("nodes", b);
                }
                if !r.nodes6.is_empty() {
                    let mut b = Vec::with_capacity(r.nodes6.len() * COMPACT_NODE_V6);
                    write_compact_nodes(&mut b, &r.nodes6);
                    d = d.with("nodes6", b);
                }
                if !r.values.is_empty() {
                    let vals = r
                        .values
                        .iter()
                        .map(|a| {
                            let mut b = Vec::with_capacity(18);
                            write_compact_addr(&mut b, *a);
                            Item::Bytes(b)
                        })
                        .collect::<Vec<_>>();
                    d = d.with("values", vals);
                }
                if let Some(t) = &r.token {
                    d = d.with("token", t.clone());
                }
                top.with("y", "r").with("r", d)
            }
            Body::Error(e) => top.with("y", "e").with(
                "e",
                vec![Item::Int(e.code.code()), Item::Bytes(e.message.clone())],
            ),
        }
    }
}

fn decode_query(v: &Value<'_>) -> Result<Body, Malformed> {
    let method = bytes_field(v, "q")?;
    let a = v.get(b"a").ok_or(Malformed::Missing("a"))?;
    if a.as_dict().is_none() {
        return Err(Malformed::Invalid("a"));
    }
    let id = NodeId(id_field(a, "id")?);
    let want = match a.get(b"want") {
        None => Want::default(),
        Some(w) => {
            let list = w.as_list().ok_or(Malformed::Invalid("want"))?;
            if list.len() > 4 {
                return Err(Malformed::Invalid("want"));
            }
            let mut want = Want::default();
            for item in list {
                match item.as_bytes() {
                    Some(b"n4") => want.v4 = true,
                    Some(b"n6") => want.v6 = true,
                    Some(_) => {}
                    None => return Err(Malformed::Invalid("want")),
                }
            }
            want
        }
    };
    let query = match method {
        b"ping" => Query::Ping,
        b"find_node" => Query::FindNode {
            target: NodeId(id_field(a, "target")?),
        },
        b"get_peers" => Query::GetPeers {
            info_hash: InfoHash(id_field(a, "info_hash")?),
        },
        b"announce_peer" => {
            let info_hash = InfoHash(id_field(a, "info_hash")?);
            let implied_port = match a.get(b"implied_port") {
                None => false,
                Some(x) => match x.as_int() {
                    Some(0) => false,
                    Some(1) => true,
                    _ => return Err(Malformed::Invalid("implied_port")),
                },
            };
            let port = match a.get(b"port").map(Value::as_int) {
                None if implied_port => 0,
                None => return Err(Malformed::Missing("port")),
                Some(Some(p)) if (1..=65535).contains(&p) => p as u16,
                // With implied_port the given port is ignored; tolerate 0.
                Some(Some(0)) if implied_port => 0,
                Some(_) => return Err(Malformed::Invalid("port")),
            };
            let token = bytes_field(a, "token")?;
            if token.is_empty() || token.len() > MAX_TOKEN_LEN {
                return Err(Malformed::Invalid("token"));
            }
            Query::AnnouncePeer {
                info_hash,
                port,
                implied_port,
                token: token.to_vec(),
            }
        }
        _ => return Err(Malformed::UnknownMethod),
    };
    Ok(Body::Query { id, query, want })
}

fn decode_response(v: &Value<'_>) -> Result<Body, Malformed> {
    let r = v.get(b"r").ok_or(Malformed::Missing("r"))?;
    if r.as_dict().is_none() {
        return Err(Malformed::Invalid("r"));
    }
    let id = NodeId(id_field(r, "id")?);
    let nodes = match r.get(b"nodes") {
        None => Vec::new(),
        Some(x) => x
            .as_bytes()
            .and_then(|b| parse_compact_nodes(b, false))
            .ok_or(Malformed::Invalid("nodes"))?,
    };
    let nodes6 = match r.get(b"nodes6") {
        None => Vec::new(),
        Some(x) => x
            .as_bytes()
            .and_then(|b| parse_compact_nodes(b, true))
            .ok_or(Malformed::Invalid("nodes6"))?,
    };
    let values = match r.get(b"values") {
        None => Vec::new(),
        Some(x) => {
            let list = x.as_list().ok_or(Malformed::Invalid("values"))?;
            if list.len() > MAX_VALUES {
                return Err(Malformed::Invalid("values"));
            }
            let mut out = Vec::with_capacity(list.len());
            for item in list {
                let addr = item
                    .as_bytes()
                    .and_then(parse_compact_addr)
                    .ok_or(Malformed::Invalid("values"))?;
                if addr.port() != 0 {
                    out.push(addr);
                }
            }
            out
        }
    };
    let token = match r.get(b"token") {
        None => None,
        Some(x) => match x.as_bytes() {
            Some(t) if !t.is_empty() && t.len() <= MAX_TOKEN_LEN => Some(t.to_vec()),
            _ => return Err(Malformed::Invalid("token")),
        },
    };
    Ok(Body::Response(Response {
        id,
        nodes,
        nodes6,
        values,
        token,
    }))
}

fn decode_error(v: &Value<'_>) -> Result<Body, Malformed> {
    let e = v
        .get(b"e")
        .ok_or(Malformed::Missing("e"))?
        .as_list()
        .ok_or(Malformed::Invalid("e"))?;
    let (code, message) = match e {
        [c, m] => (c.as_int(), m.as_bytes()),
        _ => return Err(Malformed::Invalid("e")),
    };
    let code = code
        .and_then(ErrorCode::from_code)
        .ok_or(Malformed::Invalid("e"))?;
    let message = message
        .filter(|m| m.len() <= MAX_ERROR_MESSAGE)
        .ok_or(Malformed::Invalid("e"))?;
    Ok(Body::Error(ErrorMessage {
        code,
        message: message.to_vec(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn node(i: u8, v6: bool) -> CompactNode {
        let addr = if v6 {
            SocketAddr::new(
                IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(i))),
                6881,
            )
        } else {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, i)), 6881)
        };
        CompactNode {
            id: NodeId([i; 20]),
            addr,
        }
    }

    fn msg(body: Body) -> Message {
        Message {
            tid: b"aa".to_vec(),
            version: Some(b"RN\x00\x01".to_vec()),
            read_only: false,
            ip: None,
            body,
        }
    }

    fn round_trip(m: &Message) {
        let bytes = m.to_bytes();
        assert_eq!(Message::decode(&bytes).as_ref(), Ok(m), "{bytes:?}");
        // Canonical: re-encoding gives the same bytes.
        assert_eq!(Message::decode(&bytes).unwrap().to_bytes(), bytes);
    }

    #[test]
    fn every_message_type_round_trips() {
        let id = NodeId([7; 20]);
        let queries = [
            Query::Ping,
            Query::FindNode {
                target: NodeId([9; 20]),
            },
            Query::GetPeers {
                info_hash: InfoHash([3; 20]),
            },
            Query::AnnouncePeer {
                info_hash: InfoHash([3; 20]),
                port: 6881,
                implied_port: false,
                token: b"tok".to_vec(),
            },
            Query::AnnouncePeer {
                info_hash: InfoHash([3; 20]),
                port: 1,
                implied_port: true,
                token: vec![0; MAX_TOKEN_LEN],
            },
        ];
        for (i, query) in queries.into_iter().enumerate() {
            let want = Want {
                v4: i % 2 == 0,
                v6: i % 3 == 0,
            };
            let mut m = msg(Body::Query { id, query, want });
            m.read_only = i == 1;
            round_trip(&m);
        }
        let mut m = msg(Body::Response(Response {
            id,
            nodes: vec![node(1, false), node(2, false)],
            nodes6: vec![node(3, true)],
            values: vec![node(4, false).addr, node(5, true).addr],
            token: Some(b"secret".to_vec()),
        }));
        m.ip = Some(node(9, false).addr);
        round_trip(&m);
        round_trip(&msg(Body::Response(Response {
            id,
            ..Response::default()
        })));
        for code in [
            ErrorCode::Generic,
            ErrorCode::Server,
            ErrorCode::Protocol,
            ErrorCode::MethodUnknown,
            ErrorCode::Other(405),
        ] {
            round_trip(&msg(Body::Error(ErrorMessage {
                code,
                message: b"oops".to_vec(),
            })));
        }
    }

    #[test]
    fn decodes_a_bep5_example() {
        let ping = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe";
        let m = Message::decode(ping).unwrap();
        assert_eq!(m.tid, b"aa");
        assert_eq!(
            m.body,
            Body::Query {
                id: NodeId(*b"abcdefghij0123456789"),
                query: Query::Ping,
                want: Want::default()
            }
        );
        let e = b"d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee";
        let m = Message::decode(e).unwrap();
        assert!(matches!(
            m.body,
            Body::Error(ErrorMessage {
                code: ErrorCode::Generic,
                ..
            })
        ));
    }

    #[test]
    fn malformed_inputs_are_rejected() {
        let cases: &[(&[u8], Malformed)] = &[
            (b"", Malformed::Bencode),
            (b"le", Malformed::NotADict),
            (b"d1:t2:aa1:y1:qe", Malformed::Missing("q")),
            // id of 19 bytes
            (
                b"d1:ad2:id19:abcdefghij012345678e1:q4:ping1:t2:aa1:y1:qe",
                Malformed::Invalid("id"),
            ),
            // empty transaction id
            (
                b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t0:1:y1:qe",
                Malformed::Invalid("t"),
            ),
            (
                b"d1:ad2:id20:abcdefghij0123456789e1:q4:fooo1:t2:aa1:y1:qe",
                Malformed::UnknownMethod,
            ),
            // announce with port 0 and no implied_port
            (
                b"d1:ad2:id20:abcdefghij01234567899:info_hash20:abcdefghij01234567894:porti0e5:token1:xe1:q13:announce_peer1:t2:aa1:y1:qe",
                Malformed::Invalid("port"),
            ),
            // nodes not a multiple of 26
            (
                b"d1:rd2:id20:abcdefghij01234567895:nodes3:abce1:t2:aa1:y1:re",
                Malformed::Invalid("nodes"),
            ),
            // a value of 5 bytes
            (
                b"d1:rd2:id20:abcdefghij01234567896:valuesl5:abcdeee1:t2:aa1:y1:re",
                Malformed::Invalid("values"),
            ),
            (b"d1:eli1000e1:xe1:t2:aa1:y1:ee", Malformed::Invalid("e")),
            (b"d1:eli201ee1:t2:aa1:y1:ee", Malformed::Invalid("e")),
            (b"d1:eli99e1:xe1:t2:aa1:y1:ee", Malformed::Invalid("e")),
            (b"d1:t2:aa1:y1:ze", Malformed::UnknownType),
            // too deep
            (b"d1:rd2:idllllleeeeee1:t2:aa1:y1:re", Malformed::Bencode),
        ];
        for (input, reason) in cases {
            let e = Message::decode(input).unwrap_err();
            assert_eq!(e.reason, *reason, "{}", String::from_utf8_lossy(input));
        }
        // Queries keep their transaction id so they can be answered with an error.
        let e = Message::decode(b"d1:ad2:id20:abcdefghij0123456789e1:q4:fooo1:t2:aa1:y1:qe")
            .unwrap_err();
        assert_eq!(e.query_tid.as_deref(), Some(&b"aa"[..]));
        assert!(matches!(
            Message::decode(&vec![b'x'; MAX_DATAGRAM + 1]),
            Err(DecodeError {
                reason: Malformed::TooLarge,
                ..
            })
        ));
        // Too many values.
        let mut m = msg(Body::Response(Response {
            id: NodeId([1; 20]),
            values: vec![node(1, false).addr; MAX_VALUES + 1],
            ..Response::default()
        }))
        .to_bytes();
        assert_eq!(
            Message::decode(&m).unwrap_err().reason,
            Malformed::Invalid("values")
        );
        m.clear();
    }

    #[test]
    fn zero_ports_in_node_lists_are_skipped() {
        let mut n = node(1, false);
        n.addr.set_port(0);
        let mut b = Vec::new();
        write_compact_nodes(&mut b, &[n, node(2, false)]);
        let parsed = parse_compact_nodes(&b, false).unwrap();
        assert_eq!(parsed, vec![node(2, false)]);
        assert!(parse_compact_nodes(&b, true).is_none());
    }

    fn arb_addr() -> impl Strategy<Value = SocketAddr> {
        prop_oneof![
            (any::<[u8; 4]>(), 1u16..).prop_map(|(ip, p)| SocketAddr::new(IpAddr::from(ip), p)),
            (any::<[u8; 16]>(), 1u16..).prop_map(|(ip, p)| SocketAddr::new(IpAddr::from(ip), p)),
        ]
    }

    fn arb_v4_node() -> impl Strategy<Value = CompactNode> {
        (any::<[u8; 20]>(), any::<[u8; 4]>(), 1u16..).prop_map(|(id, ip, p)| CompactNode {
            id: NodeId(id),
            addr: SocketAddr::new(IpAddr::from(ip), p),
        })
    }

    fn arb_v6_node() -> impl Strategy<Value = CompactNode> {
        (any::<[u8; 20]>(), any::<[u8; 16]>(), 1u16..).prop_map(|(id, ip, p)| CompactNode {
            id: NodeId(id),
            addr: SocketAddr::new(IpAddr::from(ip), p),
        })
    }

    fn arb_message() -> impl Strategy<Value = Message> {
        let query = prop_oneof![
            Just(Query::Ping),
            any::<[u8; 20]>().prop_map(|t| Query::FindNode { target: NodeId(t) }),
            any::<[u8; 20]>().prop_map(|h| Query::GetPeers {
                info_hash: InfoHash(h)
            }),
            (
                any::<[u8; 20]>(),
                1u16..,
                any::<bool>(),
                prop::collection::vec(any::<u8>(), 1..=MAX_TOKEN_LEN)
            )
                .prop_map(|(h, port, implied_port, token)| Query::AnnouncePeer {
                    info_hash: InfoHash(h),
                    port,
                    implied_port,
                    token
                }),
        ];
        let body = prop_oneof![
            (any::<[u8; 20]>(), query, any::<(bool, bool)>()).prop_map(|(id, query, (v4, v6))| {
                Body::Query {
                    id: NodeId(id),
                    query,
                    want: Want { v4, v6 },
                }
            }),
            (
                any::<[u8; 20]>(),
                prop::collection::vec(arb_v4_node(), 0..8),
                prop::collection::vec(arb_v6_node(), 0..8),
                prop::collection::vec(arb_addr(), 0..20),
                prop::option::of(prop::collection::vec(any::<u8>(), 1..=MAX_TOKEN_LEN)),
            )
                .prop_map(|(id, nodes, nodes6, values, token)| {
                    Body::Response(Response {
                        id: NodeId(id),
                        nodes,
                        nodes6,
                        values,
                        token,
                    })
                }),
            (
                201i64..=204,
                prop::collection::vec(any::<u8>(), 0..MAX_ERROR_MESSAGE)
            )
                .prop_map(|(c, m)| Body::Error(ErrorMessage {
                    code: ErrorCode::from_code(c).unwrap(),
                    message: m
                })),
        ];
        (
            prop::collection::vec(any::<u8>(), 1..=MAX_TID_LEN),
            prop::option::of(prop::collection::vec(any::<u8>(), 0..=MAX_VERSION_LEN)),
            any::<bool>(),
            prop::option::of(arb_addr()),
            body,
        )
            .prop_map(|(tid, version, read_only, ip, body)| Message {
                tid,
                version,
                read_only,
                ip,
                body,
            })
    }

    proptest! {
        #[test]
        fn decode_never_panics(data in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = Message::decode(&data);
        }

        #[test]
        fn decode_never_panics_on_mutated_messages(
            m in arb_message(),
            flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..4),
        ) {
            let mut bytes = m.to_bytes();
            for (at, x) in flips {
                let i = at % bytes.len();
                bytes[i] ^= x;
            }
            if let Ok(m2) = Message::decode(&bytes) {
                // Whatever decodes re-encodes and decodes to the same message.
                prop_assert_eq!(Message::decode(&m2.to_bytes()), Ok(m2));
            }
        }

        #[test]
        fn encode_decode_round_trip(m in arb_message()) {
            let bytes = m.to_bytes();
            prop_assert_eq!(Message::decode(&bytes), Ok(m));
        }
    }
}
