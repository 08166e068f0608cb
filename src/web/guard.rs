//! What stands between the network and a handler: bounded slots with a
//! bounded wait, requests in flight per address and per account, and the
//! origin check of every state-changing request.
//!
//! A client that sends a body one byte at a time holds a slot until the
//! request's time runs out; without a bound per address a few hundred of
//! them would hold every slot, and the offices behind them would wait.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap};
use parking_lot::Mutex;
use tokio::sync::Semaphore;

/// Requests served at once by the whole front.
pub(crate) const SLOTS: usize = 256;
/// Requests in flight at once from one address (an office behind one NAT
/// address is dozens of people, each with a page or two loading).
pub(crate) const PER_ADDRESS: usize = 48;
/// How long a request waits for a slot before it is answered 503.
pub(crate) const SLOT_WAIT: Duration = Duration::from_secs(2);
/// Requests per minute of one account (a person clicks; a script that
/// loops is stopped before it floods the audit log).
pub(crate) const PER_ACCOUNT_PER_MINUTE: u32 = 600;

/// Why a request is not let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shut {
    /// Too many requests in flight from its address.
    Address,
    /// Every slot is taken and none freed in time.
    Busy,
}

/// The slots and the counts in flight.
pub(crate) struct Gate {
    slots: Arc<Semaphore>,
    in_flight: Mutex<HashMap<IpAddr, usize>>,
    accounts: Mutex<HashMap<String, (Instant, u32)>>,
}

/// A request let in; frees its place when dropped.
pub(crate) struct Pass<'a> {
    gate: &'a Gate,
    addr: IpAddr,
    _slot: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        let mut f = self.gate.in_flight.lock();
        if let Some(n) = f.get_mut(&self.addr) {
            *n -= 1;
            if *n == 0 {
                f.remove(&self.addr);
            }
        }
    }
}

impl Default for Gate {
    fn default() -> Self {
        Gate {
            slots: Arc::new(Semaphore::new(SLOTS)),
            in_flight: Mutex::new(HashMap::new()),
            accounts: Mutex::new(HashMap::new()),
        }
    }
}

impl Gate {
    /// Lets a request from `addr` in, or says why not.
    pub(crate) async fn enter(&self, addr: IpAddr) -> Result<Pass<'_>, Shut> {
        {
            let mut f = self.in_flight.lock();
            let n = f.entry(addr).or_insert(0);
            if *n >= PER_ADDRESS {
                return Err(Shut::Address);
            }
            *n += 1;
        }
        // counted from here: the pass gives the count back, slot or not
        let mut pass = Pass {
            gate: self,
            addr,
            _slot: None,
        };
        match tokio::time::timeout(SLOT_WAIT, self.slots.clone().acquire_owned()).await {
            Ok(Ok(slot)) => {
                pass._slot = Some(slot);
                Ok(pass)
            }
            _ => Err(Shut::Busy),
        }
    }

    /// Whether account `user` may make another request this minute.
    pub(crate) fn account_may(&self, user: &str) -> bool {
        let mut a = self.accounts.lock();
        if a.len() > 100_000 {
            a.retain(|_, (since, _)| since.elapsed() < Duration::from_secs(60));
        }
        let entry = a.entry(user.to_string()).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= Duration::from_secs(60) {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
        entry.1 <= PER_ACCOUNT_PER_MINUTE
    }
}

/// This front's own origin as a browser writes it (`https://host:port`):
/// the host a trusted proxy was asked for (`public_host`), else `Host`.
fn own_origin(headers: &HeaderMap, secure: bool, public_host: Option<&str>) -> Option<String> {
    let host = match public_host {
        Some(h) => h,
        None => headers.get(header::HOST)?.to_str().ok()?,
    };
    let scheme = if secure { "https" } else { "http" };
    Some(format!("{scheme}://{host}"))
}

/// Whether a state-changing request may come from where it says: an
/// `Origin` that is not this front's is refused; `required` refuses a
/// request without one (the JSON API with a session cookie: browsers send
/// `Origin` on every cross-site and same-site POST).
pub(crate) fn origin_ok(
    headers: &HeaderMap,
    secure: bool,
    required: bool,
    public_host: Option<&str>,
) -> bool {
    match headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) {
        Some(origin) => own_origin(headers, secure, public_host).is_some_and(|own| own == origin),
        None => !required,
    }
}

/// Whether the body is declared JSON (a cross-site form can only send
/// `text/plain`, `multipart/form-data` or a URL-encoded form without a
/// preflight).
pub(crate) fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn a_foreign_origin_is_refused_and_the_api_needs_one() {
        let own = headers(&[
            ("host", "sagak.city.go.kr"),
            ("origin", "https://sagak.city.go.kr"),
        ]);
        assert!(origin_ok(&own, true, true, None));
        assert!(!origin_ok(&own, false, true, None), "scheme differs");
        // behind a proxy that sends the backend's name as Host
        let proxied = headers(&[
            ("host", "10.0.0.7:9465"),
            ("origin", "https://sagak.city.go.kr"),
        ]);
        assert!(!origin_ok(&proxied, true, true, None));
        assert!(origin_ok(&proxied, true, true, Some("sagak.city.go.kr")));
        let evil = headers(&[
            ("host", "sagak.city.go.kr"),
            ("origin", "https://evil.example"),
        ]);
        assert!(!origin_ok(&evil, true, false, None));
        let sibling = headers(&[
            ("host", "sagak.city.go.kr:8443"),
            ("origin", "https://sagak.city.go.kr:9443"),
        ]);
        assert!(
            !origin_ok(&sibling, true, false, None),
            "another port is another origin"
        );
        let none = headers(&[("host", "sagak.city.go.kr")]);
        assert!(origin_ok(&none, true, false, None));
        assert!(!origin_ok(&none, true, true, None));
    }

    #[test]
    fn only_a_declared_json_body_is_json() {
        assert!(is_json(&headers(&[(
            "content-type",
            "application/json; charset=utf-8"
        )])));
        assert!(!is_json(&headers(&[("content-type", "text/plain")])));
        assert!(!is_json(&headers(&[])));
    }

    #[tokio::test]
    async fn one_address_cannot_take_every_slot() {
        let gate = Gate::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let mut held = Vec::new();
        for _ in 0..PER_ADDRESS {
            held.push(gate.enter(a).await.expect("within the bound"));
        }
        assert_eq!(gate.enter(a).await.err(), Some(Shut::Address));
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(gate.enter(b).await.is_ok(), "another address still gets in");
        drop(held);
        assert!(gate.enter(a).await.is_ok(), "places are given back");
        assert!(gate.in_flight.lock().is_empty());
    }

    #[test]
    fn an_account_is_limited_per_minute() {
        let gate = Gate::default();
        for _ in 0..PER_ACCOUNT_PER_MINUTE {
            assert!(gate.account_may("u-1"));
        }
        assert!(!gate.account_may("u-1"));
        assert!(gate.account_may("u-2"));
    }
}
