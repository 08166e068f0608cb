//! Who is asking: sessions from a one-time login with the person's token,
//! bearer tokens for the JSON API, CSRF tokens for forms, and the limit on
//! failed logins per address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use parking_lot::Mutex;
use subtle::ConstantTimeEq;

use super::users::{token_hash, User};

/// The session cookie's name.
pub(crate) const COOKIE: &str = "sagak_session";

/// One logged-in browser.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// The account.
    pub(crate) user_id: String,
    /// The token its forms carry.
    pub(crate) csrf: String,
    last_seen: Instant,
}

/// Sessions and login attempts.
pub(crate) struct Auth {
    idle: Duration,
    failures_per_minute: u32,
    /// By SHA-256 of the session id: a leak of this map opens nothing.
    sessions: Mutex<HashMap<String, Session>>,
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

fn random_text() -> String {
    let mut bytes = [0u8; 32];
    // without randomness no session can be made safely: an empty id
    // matches nothing (see `Auth::session`)
    if getrandom::fill(&mut bytes).is_err() {
        return String::new();
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl Auth {
    /// Sessions ending after `idle`; `failures_per_minute` failed logins
    /// per address before it must wait.
    pub(crate) fn new(idle: Duration, failures_per_minute: u32) -> Self {
        Auth {
            idle,
            failures_per_minute,
            sessions: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `client` may try to log in now; `Err` holds the seconds to
    /// wait.
    pub(crate) fn may_try(&self, client: IpAddr) -> Result<(), u64> {
        let mut f = self.failures.lock();
        match f.get(&client) {
            Some(&(since, n)) if since.elapsed() < Duration::from_secs(60) => {
                if n >= self.failures_per_minute {
                    Err(60u64.saturating_sub(since.elapsed().as_secs()).max(1))
                } else {
                    Ok(())
                }
            }
            Some(_) => {
                f.remove(&client);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Counts a failed login from `client`.
    pub(crate) fn failed(&self, client: IpAddr) {
        let mut f = self.failures.lock();
        let entry = f.entry(client).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= Duration::from_secs(60) {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
    }

    /// Starts a session for `user`; returns its id (the cookie's value).
    pub(crate) fn start(&self, user: &User) -> Option<String> {
        let id = random_text();
        let csrf = random_text();
        if id.is_empty() || csrf.is_empty() {
            return None;
        }
        let mut sessions = self.sessions.lock();
        let idle = self.idle;
        sessions.retain(|_, s| s.last_seen.elapsed() < idle);
        sessions.insert(
            token_hash(&id),
            Session {
                user_id: user.id.clone(),
                csrf,
                last_seen: Instant::now(),
            },
        );
        Some(id)
    }

    /// The live session of cookie value `id`, its idle time restarted.
    pub(crate) fn session(&self, id: &str) -> Option<Session> {
        if id.is_empty() {
            return None;
        }
        let key = token_hash(id);
        let mut sessions = self.sessions.lock();
        let s = sessions.get_mut(&key)?;
        if s.last_seen.elapsed() >= self.idle {
            sessions.remove(&key);
            return None;
        }
        s.last_seen = Instant::now();
        Some(s.clone())
    }

    /// Ends the session of cookie value `id`.
    pub(crate) fn end(&self, id: &str) {
        self.sessions.lock().remove(&token_hash(id));
    }

    /// Ends every session of accounts no longer active; returns how many.
    pub(crate) fn end_revoked(&self, active: impl Fn(&str) -> bool) -> usize {
        let mut sessions = self.sessions.lock();
        let before = sessions.len();
        sessions.retain(|_, s| active(&s.user_id));
        before - sessions.len()
    }
}

/// Whether a form's CSRF token is the session's (in constant time).
pub(crate) fn csrf_ok(session: &Session, given: &str) -> bool {
    !given.is_empty() && bool::from(session.csrf.as_bytes().ct_eq(given.as_bytes()))
}

/// The person behind a request.
#[derive(Debug, Clone)]
pub(crate) struct Person {
    /// Their account.
    pub(crate) user: Arc<User>,
    /// Their browser session (none for a bearer token).
    pub(crate) session: Option<Session>,
}

impl Person {
    /// Whether they may see `dong`'s households.
    pub(crate) fn sees_dong(&self, dong: &str) -> bool {
        match self.user.role {
            super::users::Role::City => true,
            super::users::Role::Dong => self.user.dong.as_deref() == Some(dong),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::users::Role;

    fn user(id: &str) -> User {
        User {
            id: id.into(),
            name: "x".into(),
            role: Role::Dong,
            dong: Some("4125052000".into()),
            token_sha256: String::new(),
            created_at: String::new(),
            revoked_at: None,
        }
    }

    #[test]
    fn a_session_ends_when_idle_or_revoked() {
        let auth = Auth::new(Duration::from_millis(50), 3);
        let id = auth.start(&user("u-1")).unwrap();
        let s = auth.session(&id).unwrap();
        assert!(csrf_ok(&s, &s.csrf));
        assert!(!csrf_ok(&s, ""));
        assert!(!csrf_ok(&s, "forged"));
        std::thread::sleep(Duration::from_millis(80));
        assert!(auth.session(&id).is_none(), "idle too long");
        let id = auth.start(&user("u-2")).unwrap();
        assert_eq!(auth.end_revoked(|u| u != "u-2"), 1);
        assert!(auth.session(&id).is_none(), "revoked");
    }

    #[test]
    fn failed_logins_are_limited_per_address() {
        let auth = Auth::new(Duration::from_secs(60), 3);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..3 {
            assert!(auth.may_try(a).is_ok());
            auth.failed(a);
        }
        assert!(auth.may_try(a).is_err());
        assert!(auth.may_try(b).is_ok());
    }
}
