//! The RPC accept loop. jsonrpsee's own loop neither tells the HTTP middleware who is
//! calling nor bounds how long a client may take to send a request, so we run the loop
//! ourselves:
//!
//! - every request carries its [`RemoteAddr`] (the [`GuardLayer`](super::GuardLayer) locks
//!   out sources that keep sending wrong tokens);
//! - HTTP/1.1 only; a request's head must arrive within [`RpcLimits::header_timeout`] (this
//!   also closes connections that never send a request, or sit idle between requests);
//! - a JSON-RPC body must arrive within [`RpcLimits::body_timeout`] of its head (not
//!   `/move-torrent`, whose body is a torrent's data);
//! - on stop, connections finish the request in flight and close.

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use jsonrpsee::core::BoxError;
use jsonrpsee::server::{HttpBody, HttpRequest, HttpResponse, Methods, StopHandle};
use tokio::net::TcpListener;

use super::move_torrent::MOVE_TORRENT_PATH;

/// Longest wait for a request's head (request line and headers), counted from the moment
/// the connection is ready for one: a client that trickles its headers, or connects and
/// says nothing, is disconnected after this.
pub const RPC_HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for a JSON-RPC request's whole body once its head arrived. The largest
/// body (`max_request_size`, a base64 `.torrent`) takes well under this on any link a
/// remote RPC client would use.
pub const RPC_BODY_TIMEOUT: Duration = Duration::from_secs(60);
/// Most JSON-RPC requests served at once (jsonrpsee's `max_connections`, which it counts
/// per request in flight); beyond it a request gets 429.
pub const RPC_MAX_IN_FLIGHT: u32 = 100;
/// Most calls in one JSON-RPC batch; a larger batch gets one error reply.
pub const RPC_MAX_BATCH: u32 = 100;

/// The RPC server's time and size bounds ([`Default`]: the named constants).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RpcLimits {
    /// [`RPC_HEADER_TIMEOUT`].
    pub header_timeout: Duration,
    /// [`RPC_BODY_TIMEOUT`].
    pub body_timeout: Duration,
}

impl Default for RpcLimits {
    fn default() -> Self {
        RpcLimits {
            header_timeout: RPC_HEADER_TIMEOUT,
            body_timeout: RPC_BODY_TIMEOUT,
        }
    }
}

/// The caller's address, in every request's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteAddr(pub SocketAddr);

/// Accepts connections on `listener` until `stop` fires; `service` builds each
/// connection's handler.
pub async fn accept_loop<S>(
    listener: TcpListener,
    stop: StopHandle,
    limits: RpcLimits,
    service: impl Fn(Methods, StopHandle) -> S + Send + 'static,
    methods: Methods,
) where
    S: tower::Service<HttpRequest<HttpBody>, Response = HttpResponse, Error = BoxError>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    loop {
        let (socket, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!("RPC accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = stop.clone().shutdown() => break,
        };
        let _ = socket.set_nodelay(true);
        let svc = service(methods.clone(), stop.clone());
        tokio::spawn(serve_connection(socket, remote, svc, stop.clone(), limits));
    }
}

async fn serve_connection<S>(
    socket: tokio::net::TcpStream,
    remote: SocketAddr,
    svc: S,
    stop: StopHandle,
    limits: RpcLimits,
) where
    S: tower::Service<HttpRequest<HttpBody>, Response = HttpResponse, Error = BoxError>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let handler = hyper::service::service_fn(move |request: http::Request<Incoming>| {
        let mut svc = svc.clone();
        let timed = request.uri().path() != MOVE_TORRENT_PATH;
        let mut request = request.map(|body| {
            if timed {
                HttpBody::new(TimedBody::new(body, limits.body_timeout))
            } else {
                HttpBody::new(body)
            }
        });
        request.extensions_mut().insert(RemoteAddr(remote));
        async move {
            // A middleware error has no HTTP form of its own: answer 500.
            Ok::<_, std::convert::Infallible>(
                tower::Service::call(&mut svc, request)
                    .await
                    .unwrap_or_else(|e| {
                        tracing::warn!(%remote, "RPC request failed: {e}");
                        let mut response = HttpResponse::new(HttpBody::empty());
                        *response.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
                        response
                    }),
            )
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let conn = builder.serve_connection(TokioIo::new(socket), handler);
    let stopped = stop.shutdown();
    tokio::pin!(conn, stopped);
    let result = tokio::select! {
        r = &mut conn => r,
        () = &mut stopped => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%remote, "RPC connection closed: {e}");
    }
}

/// A request body that fails once its deadline passes.
struct TimedBody<B> {
    inner: B,
    deadline: Pin<Box<tokio::time::Sleep>>,
    limit: Duration,
}

impl<B> TimedBody<B> {
    fn new(inner: B, limit: Duration) -> Self {
        TimedBody {
            inner,
            deadline: Box::pin(tokio::time::sleep(limit)),
            limit,
        }
    }
}

/// The error a [`TimedBody`] ends with.
#[derive(Debug, thiserror::Error)]
#[error("request body not received within {0:?}")]
struct BodyTimeout(Duration);

impl<B> Body for TimedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(BodyTimeout(self.limit).into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tokio::sync::mpsc;

    /// A body fed through a channel.
    struct Fed(mpsc::Receiver<Bytes>);

    impl Body for Fed {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
            self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
        }
    }

    #[tokio::test]
    async fn a_body_that_does_not_arrive_in_time_fails() {
        let (tx, rx) = mpsc::channel(4);
        let mut body = TimedBody::new(Fed(rx), Duration::from_millis(200));
        tx.send(Bytes::from_static(b"{")).await.unwrap();
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), Bytes::from_static(b"{"));
        // Nothing more arrives: the deadline ends the body with an error.
        let next = tokio::time::timeout(Duration::from_secs(10), body.frame()).await;
        let err = next.expect("the deadline ends it").unwrap().unwrap_err();
        assert!(err.to_string().contains("not received within"), "{err}");
        drop(tx);
    }

    #[tokio::test]
    async fn a_body_that_arrives_in_time_is_passed_through() {
        let (tx, rx) = mpsc::channel(4);
        let body = TimedBody::new(Fed(rx), Duration::from_millis(200));
        tx.send(Bytes::from_static(b"{}")).await.unwrap();
        drop(tx);
        let all = body.collect().await.unwrap().to_bytes();
        assert_eq!(all, Bytes::from_static(b"{}"));
    }
}
