//! Serving HTTP/1.1 on a listener with the bounds every sagak listener
//! keeps: a client that sends its headers slowly, holds a connection idle,
//! or opens many connections from one address cannot use up the process's
//! file descriptors (which the audit log and the lists share) or its slots.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use parking_lot::Mutex;

/// The connection's peer, set on every request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer(pub SocketAddr);

/// How one listener bounds its connections.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    /// Time to send a request's headers (slow-header clients).
    pub(crate) header_time: Duration,
    /// Time a connection is kept, idle or not; at its end the connection
    /// finishes the request in flight and closes (a browser opens another).
    pub(crate) lifetime: Duration,
    /// Connections open at once from one address; more are closed at once.
    pub(crate) per_address: usize,
    /// An address without that bound: a TLS-terminating proxy in front,
    /// whose connections carry every client's requests (they are bounded
    /// per forwarded address by the handlers instead).
    pub(crate) unbounded: Option<IpAddr>,
}

/// Open connections per address.
#[derive(Default)]
struct Open(Mutex<HashMap<IpAddr, usize>>);

/// One counted connection; uncounted when dropped.
struct Counted(Arc<Open>, IpAddr);

impl Open {
    fn enter(self: &Arc<Self>, ip: IpAddr, most: usize) -> Option<Counted> {
        let mut open = self.0.lock();
        let n = open.entry(ip).or_insert(0);
        if *n >= most {
            return None;
        }
        *n += 1;
        Some(Counted(self.clone(), ip))
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let mut open = (self.0).0.lock();
        if let Some(n) = open.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.1);
            }
        }
    }
}

/// Accepts connections on `listener` until the task is aborted, each
/// served by hyper's HTTP/1.1 within `bounds`, over TLS when given.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: Router,
    bounds: Bounds,
) {
    let open = Arc::new(Open::default());
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // out of descriptors, say: wait rather than spin
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let most = match bounds.unbounded == Some(peer.ip()) {
            true => usize::MAX,
            false => bounds.per_address,
        };
        let Some(counted) = open.enter(peer.ip(), most) else {
            tracing::debug!(%peer, "too many connections from one address: closed");
            continue;
        };
        let (app, tls) = (app.clone(), tls.clone());
        tokio::spawn(async move {
            let _counted = counted;
            match tls {
                Some(acceptor) => {
                    let accepted =
                        tokio::time::timeout(bounds.header_time, acceptor.accept(stream)).await;
                    if let Ok(Ok(s)) = accepted {
                        connection(s, peer, app, bounds).await;
                    }
                }
                None => connection(stream, peer, app, bounds).await,
            }
        });
    }
}

/// Serves one connection for at most its lifetime.
async fn connection<S>(stream: S, peer: SocketAddr, app: Router, bounds: Bounds)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use tower::ServiceExt;
    let svc = app.map_request(move |mut req: axum::http::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(Peer(peer));
        req
    });
    let svc = hyper_util::service::TowerToHyperService::new(svc);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(bounds.header_time)
        .max_buf_size(16 * 1024);
    let conn = http.serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
    tokio::pin!(conn);
    let ended = tokio::select! {
        ended = conn.as_mut() => Some(ended),
        () = tokio::time::sleep(bounds.lifetime) => None,
    };
    let ended = match ended {
        Some(ended) => ended,
        None => {
            // closes at once when idle; a request in flight gets its answer
            conn.as_mut().graceful_shutdown();
            match tokio::time::timeout(bounds.header_time, conn).await {
                Ok(ended) => ended,
                Err(_) => return,
            }
        }
    };
    if let Err(e) = ended {
        tracing::debug!(error = %e, "connection ended");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_from_one_address_are_bounded_and_freed() {
        let open = Arc::new(Open::default());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let held: Vec<Counted> = (0..3).map(|_| open.enter(a, 3).unwrap()).collect();
        assert!(open.enter(a, 3).is_none(), "a fourth from the same address");
        assert!(
            open.enter(b, 3).is_some(),
            "another address is not affected"
        );
        drop(held);
        assert!(open.enter(a, 3).is_some(), "freed when they close");
        assert!(open.0.lock().is_empty(), "no count is left behind");
    }
}
