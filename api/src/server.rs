//! The listener: HTTP/1.1 connections accepted within bounds, so that no client, and no number
//! of clients, can take the server's file descriptors or tasks from everyone else.
//!
//! `axum::serve` has no header-read timeout and no connection cap: idle sockets that never
//! finish a request were held for as long as their peers liked, until `accept` failed with
//! "Too many open files" and `/health` stopped answering. Here each connection needs a permit
//! (a total cap, derived from the process's file-descriptor limit, and a cap per client
//! address); one that cannot get a permit is closed at once rather than left in the kernel's
//! backlog; and hyper's header-read timeout closes a connection that has not sent a complete
//! request head in time, whether it is new, idle between keep-alive requests, or trickling.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tower::ServiceExt;

/// Connection bounds (docs/operations.md, "Limits").
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Open connections at once, all clients together.
    pub max_connections: usize,
    /// Open connections at once from one client address (an IPv6 client: its /64).
    pub max_per_client: usize,
    /// A connection that has not sent a complete request head this long after it opened, or
    /// after its last response, is closed.
    pub header_read_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 8192,
            max_per_client: 256,
            header_read_timeout: Duration::from_secs(10),
        }
    }
}

/// File descriptors kept back from the connection cap for the database pools, the log files,
/// imports' temporary files and the listener itself.
const RESERVED_FDS: u64 = 512;

impl ConnectionLimits {
    /// The cap lowered, if need be, so that connections alone can never exhaust the process's
    /// file descriptors (`nofile`: the soft limit, after `serve` raised it to the hard one).
    pub fn within_fd_limit(mut self, nofile: u64) -> Self {
        let room = nofile.saturating_sub(RESERVED_FDS).max(16);
        self.max_connections = self.max_connections.min(room as usize);
        self.max_per_client = self.max_per_client.min(self.max_connections);
        self
    }
}

/// Open connections, in all and per client: a connection holds a [`Permit`] until it closes.
#[derive(Clone)]
struct Counts {
    limits: ConnectionLimits,
    open: Arc<Mutex<(usize, HashMap<IpAddr, usize>)>>,
}

struct Permit {
    counts: Counts,
    client: IpAddr,
}

impl Counts {
    fn try_open(&self, client: IpAddr) -> Option<Permit> {
        let mut open = self.open.lock().expect("not poisoned");
        let (total, per_client) = &mut *open;
        let mine = per_client.get(&client).copied().unwrap_or(0);
        if *total >= self.limits.max_connections || mine >= self.limits.max_per_client {
            return None;
        }
        *total += 1;
        per_client.insert(client, mine + 1);
        Some(Permit {
            counts: self.clone(),
            client,
        })
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut open = self.counts.open.lock().expect("not poisoned");
        let (total, per_client) = &mut *open;
        *total -= 1;
        if let Some(n) = per_client.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                per_client.remove(&self.client);
            }
        }
    }
}

/// The key a client's connections are counted under: its address, or for IPv6 its /64 (one
/// subscriber's allocation, where each device may hold many addresses).
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut s = v6.segments();
                s[4..].fill(0);
                IpAddr::V6(s.into())
            }
        },
    }
}

/// Connections the kernel completes and queues before `accept` takes them (capped by the
/// system's `net.core.somaxconn`). The standard library's 128 overflowed under a burst of new
/// connections: the kernel then drops handshakes, and a health probe caught in the burst
/// waited a second for its SYN to be sent again.
const LISTEN_BACKLOG: u32 = 4096;

/// A listening socket on `addr` with a backlog for bursts.
pub fn listen(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Serves `app` on `listener` until `shutdown` completes, then stops accepting and waits for
/// the requests in progress (connections idle between requests are closed).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let counts = Counts {
        limits,
        open: Default::default(),
    };
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let graceful = GracefulShutdown::new();
    let mut refused_since_log = 0u64;
    let mut last_refusal_log = tokio::time::Instant::now();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors or memory, or a connection reset before it was
                    // accepted: none of them is this server's end. Pausing keeps a full
                    // descriptor table from turning the loop into a busy spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(permit) = counts.try_open(client_key(peer.ip())) else {
            // Closed at once, before any byte is read: the descriptor is free again and the
            // client sees a reset, not a hang. Logged as a count (addresses are personal).
            drop(stream);
            refused_since_log += 1;
            if last_refusal_log.elapsed() >= Duration::from_secs(10) {
                tracing::warn!(
                    refused = refused_since_log,
                    max_connections = limits.max_connections,
                    max_per_client = limits.max_per_client,
                    "connections refused at the connection caps"
                );
                refused_since_log = 0;
                last_refusal_log = tokio::time::Instant::now();
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            // What `into_make_service_with_connect_info` gave: the peer, for the client
            // address (behind trusted proxies, the forwarded one is derived from it).
            req.extensions_mut().insert(ConnectInfo(peer));
            app.clone().oneshot(req.map(axum::body::Body::new))
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // Errors here are the client's doing (a reset, a header timeout, a malformed
            // request hyper already answered with 400); nothing to report.
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(client_key(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn permits_count_per_client_and_in_all() {
        let counts = Counts {
            limits: ConnectionLimits {
                max_connections: 3,
                max_per_client: 2,
                header_read_timeout: Duration::from_secs(1),
            },
            open: Default::default(),
        };
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let a1 = counts.try_open(a).unwrap();
        let _a2 = counts.try_open(a).unwrap();
        assert!(counts.try_open(a).is_none(), "a third from one client");
        let _b1 = counts.try_open(b).unwrap();
        assert!(counts.try_open(b).is_none(), "a fourth in all");
        drop(a1);
        assert!(
            counts.try_open(b).is_some(),
            "a closed connection frees its place"
        );
    }

    #[test]
    fn the_cap_leaves_descriptors_for_everything_else() {
        let limits = ConnectionLimits::default().within_fd_limit(1024);
        assert_eq!(limits.max_connections, 512);
        assert_eq!(limits.max_per_client, 256);
        let roomy = ConnectionLimits::default().within_fd_limit(1 << 20);
        assert_eq!(roomy.max_connections, 8192);
    }
}
