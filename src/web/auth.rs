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
    /// When it ends without a request (ms since the epoch).
    expires_ms: u64,
}

/// Sessions and login attempts.
///
/// A session is its cookie: the account, the forms' CSRF token and when it
/// ends, signed with HMAC-SHA256 under the accounts' session key
/// ([`session_key`]). Any instance holding the key reads it, and a restart
/// keeps it: no session lives in one process. Its end moves on with each
/// request ([`Auth::renewed`]); a revoked account's sessions end with the
/// account (the caller looks the account up on every request); a logout
/// ends the cookie in the browser and, for the rest of its life, on the
/// instance that served it and (with the accounts in a store) on every
/// other within seconds ([`Auth::reload_ended`]).
pub(crate) struct Auth {
    idle: Duration,
    failures_per_minute: u32,
    key: [u8; 32],
    /// Sessions logged out here (SHA-256 of their CSRF token), with when
    /// their last renewal would end.
    ended: Mutex<HashMap<String, u64>>,
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
    /// The accounts' store, where logouts are told to the other instances
    /// (`logouts/<hash>`, holding when the session would end).
    shared: Option<crate::store::SharedStore>,
}

/// Where the logouts are in the accounts' store.
const LOGOUTS: &str = "logouts/";

fn random_text() -> String {
    let mut bytes = [0u8; 32];
    // without randomness no session can be made safely: an empty id
    // matches nothing (see `Auth::session`)
    if getrandom::fill(&mut bytes).is_err() {
        return String::new();
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// HMAC-SHA256 (RFC 2104) of `message` under `key`.
fn hmac(key: &[u8; 32], message: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let (mut inner, mut outer) = ([0x36u8; 64], [0x5cu8; 64]);
    for (i, k) in key.iter().enumerate() {
        inner[i] ^= k;
        outer[i] ^= k;
    }
    let first = Sha256::new()
        .chain_update(inner)
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(outer)
        .chain_update(first)
        .finalize()
        .into()
}

impl Auth {
    /// Sessions signed with `key`, ending after `idle` without a request;
    /// `failures_per_minute` failed logins per address before it must wait.
    pub(crate) fn new(idle: Duration, failures_per_minute: u32, key: [u8; 32]) -> Self {
        Auth {
            idle,
            failures_per_minute,
            key,
            ended: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            shared: None,
        }
    }

    /// Tells logouts to (and reads them from) the other instances through
    /// `store`.
    pub(crate) fn sharing_logouts(mut self, store: Option<crate::store::SharedStore>) -> Self {
        self.shared = store;
        self
    }

    /// Reads the logouts other instances wrote, and deletes those whose
    /// session has ended anyway.
    pub(crate) fn reload_ended(&self) -> Result<(), crate::store::StoreError> {
        let Some(store) = &self.shared else {
            return Ok(());
        };
        let now = now_ms();
        for key in store.list(LOGOUTS)? {
            let hash = key[LOGOUTS.len()..].to_string();
            if self.ended.lock().contains_key(&hash) {
                continue;
            }
            let until = store
                .get(&key)?
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|t| t.trim().parse::<u64>().ok())
                .unwrap_or(0);
            if until <= now {
                store.delete(&key)?;
            } else {
                self.ended.lock().insert(hash, until);
            }
        }
        Ok(())
    }

    fn idle_ms(&self) -> u64 {
        self.idle.as_millis() as u64
    }

    /// The cookie of a session.
    fn cookie(&self, user_id: &str, csrf: &str, expires_ms: u64) -> String {
        let payload = format!("{user_id}~{csrf}~{expires_ms}");
        let b64 = &base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mac = hmac(&self.key, payload.as_bytes());
        format!("{}.{}", b64.encode(payload), b64.encode(mac))
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

    /// Starts a session for `user`; returns its cookie's value.
    pub(crate) fn start(&self, user: &User) -> Option<String> {
        let csrf = random_text();
        if csrf.is_empty() {
            return None;
        }
        Some(self.cookie(&user.id, &csrf, now_ms() + self.idle_ms()))
    }

    /// The live session of cookie value `value`: signed with this key, not
    /// ended, not logged out here.
    pub(crate) fn session(&self, value: &str) -> Option<Session> {
        let (payload, mac) = value.split_once('.')?;
        let b64 = &base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let (payload, mac) = (b64.decode(payload).ok()?, b64.decode(mac).ok()?);
        let expected = hmac(&self.key, &payload);
        if !bool::from(expected.as_slice().ct_eq(&mac)) {
            return None;
        }
        let text = String::from_utf8(payload).ok()?;
        let mut parts = text.split('~');
        let (user_id, csrf, expires) = (parts.next()?, parts.next()?, parts.next()?);
        let expires_ms: u64 = expires.parse().ok()?;
        if expires_ms <= now_ms() || self.ended.lock().contains_key(&token_hash(csrf)) {
            return None;
        }
        Some(Session {
            user_id: user_id.to_string(),
            csrf: csrf.to_string(),
            expires_ms,
        })
    }

    /// A fresh cookie for `session`, its end moved to `idle` from now, when
    /// a minute or more of it has passed (so a busy page renews it once a
    /// minute, not on every request).
    pub(crate) fn renewed(&self, session: &Session) -> Option<String> {
        let now = now_ms();
        let fresh = now + self.idle_ms();
        (fresh >= session.expires_ms + 60_000)
            .then(|| self.cookie(&session.user_id, &session.csrf, fresh))
    }

    /// Ends the session of cookie value `value`, and its renewals, on
    /// this instance (the browser drops the cookie too).
    pub(crate) fn end(&self, value: &str) {
        let Some(s) = self.session(value) else {
            return;
        };
        let now = now_ms();
        // the CSRF token names the session through its renewals
        let (hash, until) = (token_hash(&s.csrf), now + self.idle_ms());
        {
            let mut ended = self.ended.lock();
            ended.retain(|_, until| *until > now);
            ended.insert(hash.clone(), until);
        }
        if let Some(store) = &self.shared {
            let told = store.put(&format!("{LOGOUTS}{hash}"), &[until.to_string().as_bytes()]);
            if let Err(e) = told {
                tracing::warn!(error = %e, "a logout could not be told to the other instances; it holds here");
            }
        }
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
    fn a_session_ends_when_idle_and_is_read_by_any_instance_with_the_key() {
        let auth = Auth::new(Duration::from_millis(50), 3, [7; 32]);
        let id = auth.start(&user("u-1")).unwrap();
        let s = auth.session(&id).unwrap();
        assert_eq!(s.user_id, "u-1");
        assert!(csrf_ok(&s, &s.csrf));
        assert!(!csrf_ok(&s, ""));
        assert!(!csrf_ok(&s, "forged"));
        // another instance (or this one restarted) with the same key
        let other = Auth::new(Duration::from_millis(50), 3, [7; 32]);
        assert_eq!(other.session(&id).unwrap().csrf, s.csrf);
        // another key, or a changed cookie, reads nothing
        let stranger = Auth::new(Duration::from_millis(50), 3, [8; 32]);
        assert!(stranger.session(&id).is_none());
        let (payload, mac) = id.split_once('.').unwrap();
        let b64 = &base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let text = String::from_utf8(b64.decode(payload).unwrap()).unwrap();
        let forged = text.replace("u-1", "u-2");
        let forged = format!("{}.{mac}", b64.encode(forged));
        assert!(auth.session(&forged).is_none(), "another account's name");
        std::thread::sleep(Duration::from_millis(80));
        assert!(auth.session(&id).is_none(), "idle too long");
    }

    #[test]
    fn a_session_renews_as_it_is_used_and_ends_at_logout() {
        let auth = Auth::new(Duration::from_secs(3600), 3, [7; 32]);
        let id = auth.start(&user("u-1")).unwrap();
        let s = auth.session(&id).unwrap();
        assert!(auth.renewed(&s).is_none(), "fresh: no new cookie yet");
        let older = Session {
            expires_ms: s.expires_ms - 120_000,
            ..s.clone()
        };
        let renewed = auth.renewed(&older).expect("renewed after a minute");
        assert!(auth.session(&renewed).unwrap().expires_ms >= s.expires_ms);
        let other = auth.start(&user("u-1")).unwrap();
        auth.end(&id);
        assert!(auth.session(&id).is_none(), "logged out");
        assert!(auth.session(&renewed).is_none(), "its renewals too");
        assert!(auth.session(&other).is_some(), "another browser's stays");
    }

    #[test]
    fn a_logout_on_one_instance_ends_the_session_on_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::open(dir.path()).unwrap();
        let one =
            Auth::new(Duration::from_secs(3600), 3, [7; 32]).sharing_logouts(Some(store.clone()));
        let two =
            Auth::new(Duration::from_secs(3600), 3, [7; 32]).sharing_logouts(Some(store.clone()));
        let (id, kept) = (
            one.start(&user("u-1")).unwrap(),
            one.start(&user("u-1")).unwrap(),
        );
        assert!(two.session(&id).is_some());
        one.end(&id);
        two.reload_ended().unwrap();
        assert!(two.session(&id).is_none(), "logged out on the other too");
        assert!(
            two.session(&kept).is_some(),
            "the person's other session stays"
        );
        // a restarted instance reads it as well
        let three = Auth::new(Duration::from_secs(3600), 3, [7; 32]).sharing_logouts(Some(store));
        three.reload_ended().unwrap();
        assert!(three.session(&id).is_none());
    }

    #[test]
    fn failed_logins_are_limited_per_address() {
        let auth = Auth::new(Duration::from_secs(60), 3, [7; 32]);
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
