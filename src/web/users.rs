//! Per-person accounts: the users file (`web.users_file`), or with
//! `storage.url` one object of the store that every instance reads (written
//! by compare-and-swap, so two `sagak users` at once lose nothing); tokens;
//! and the running server's view of them, re-read when they change.
//!
//! A token is 32 random bytes in base64url, shown once when the account is
//! made; the file keeps only its SHA-256. A revoked account stays in the
//! file (the audit log names it) and no longer logs in.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What went wrong with the users file.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// It cannot be read or written.
    #[error("users file {path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        error: std::io::Error,
    },
    /// It is not a users file.
    #[error("users file {path} is damaged ({error}); restore it from a backup, or move it away and create the accounts again with `sagak users add`")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// The cause.
        error: serde_json::Error,
    },
    /// A request that cannot be carried out.
    #[error("{0}")]
    Usage(String),
}

/// Where the accounts are kept.
#[derive(Debug, Clone)]
pub enum Accounts {
    /// The users file.
    File(PathBuf),
    /// `users.json` of the accounts' store.
    Store(crate::store::SharedStore),
}

/// The accounts' object in their store.
const KEY: &str = "users.json";

impl From<&Path> for Accounts {
    fn from(path: &Path) -> Self {
        Accounts::File(path.to_path_buf())
    }
}

impl From<&PathBuf> for Accounts {
    fn from(path: &PathBuf) -> Self {
        Accounts::File(path.clone())
    }
}

impl Accounts {
    /// Where they are, for messages.
    fn name(&self) -> PathBuf {
        match self {
            Accounts::File(p) => p.clone(),
            Accounts::Store(s) => PathBuf::from(s.location(KEY)),
        }
    }

    /// The accounts and what says their version (the store's version, or
    /// the file's modification time); none yet: empty.
    fn read(&self) -> Result<(Vec<User>, Option<String>), UsersError> {
        let (bytes, stamp) = match self {
            Accounts::File(path) => {
                let stamp = std::fs::metadata(path)
                    .and_then(|m| m.modified())
                    .ok()
                    .map(|t| format!("{t:?}"));
                match std::fs::read(path) {
                    Ok(b) => (b, stamp),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Ok((Vec::new(), None))
                    }
                    Err(error) => {
                        return Err(UsersError::Io {
                            path: path.clone(),
                            error,
                        })
                    }
                }
            }
            Accounts::Store(store) => match store.get_versioned(KEY).map_err(store_error)? {
                Some((b, v)) => (b, Some(v.0)),
                None => return Ok((Vec::new(), None)),
            },
        };
        let file: UsersFile =
            serde_json::from_slice(&bytes).map_err(|error| UsersError::Damaged {
                path: self.name(),
                error,
            })?;
        Ok((file.users, stamp))
    }

    /// Changes the accounts with `change`, written only over what was read
    /// (compare-and-swap in a store; retried when another writer came
    /// first).
    fn update<T>(
        &self,
        mut change: impl FnMut(&mut Vec<User>) -> Result<T, UsersError>,
    ) -> Result<T, UsersError> {
        let store = match self {
            Accounts::Store(store) => store,
            Accounts::File(path) => {
                let (mut users, _) = self.read()?;
                let out = change(&mut users)?;
                save(path, &users)?;
                return Ok(out);
            }
        };
        for _ in 0..16 {
            let current = store.get_versioned(KEY).map_err(store_error)?;
            let (mut users, version) = match current {
                Some((bytes, v)) => {
                    let file: UsersFile =
                        serde_json::from_slice(&bytes).map_err(|error| UsersError::Damaged {
                            path: self.name(),
                            error,
                        })?;
                    (file.users, Some(v))
                }
                None => (Vec::new(), None),
            };
            let out = change(&mut users)?;
            let json = serde_json::to_vec_pretty(&UsersFile { users }).map_err(|e| {
                store_error(crate::store::StoreError {
                    location: self.name().display().to_string(),
                    error: e.into(),
                })
            })?;
            if store
                .put_if(KEY, &[&json], version.as_ref())
                .map_err(store_error)?
                .is_some()
            {
                return Ok(out);
            }
        }
        Err(UsersError::Usage(
            "the accounts keep changing under this command: run it again".into(),
        ))
    }
}

/// The key that signs sessions ([`super::auth::Auth`]), kept beside the
/// accounts (`session-key` in their store, `<users file>.session-key`
/// owner-only), made by whichever instance starts first (create-if-absent)
/// and read by the others: a session opens on any instance, and survives
/// restarts. Removing it ends every session.
pub(crate) fn session_key(accounts: &Accounts) -> Result<[u8; 32], UsersError> {
    let (store, key) = match accounts {
        Accounts::Store(store) => (store.clone(), "session-key".to_string()),
        Accounts::File(path) => {
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
            let dir = dir.unwrap_or(Path::new("."));
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("users");
            let store = crate::store::open(dir).map_err(store_error)?;
            (store, format!("{name}.session-key"))
        }
    };
    let fresh = random_bytes::<32>()?;
    store.put_new(&key, &[&fresh]).map_err(store_error)?;
    let held = store.get(&key).map_err(store_error)?.unwrap_or_default();
    held.try_into().map_err(|_| {
        UsersError::Usage(format!(
            "the session key {} is damaged: remove it (every session then ends) and restart",
            store.location(&key)
        ))
    })
}

fn store_error(e: crate::store::StoreError) -> UsersError {
    UsersError::Io {
        path: PathBuf::from(e.location),
        error: e.error,
    }
}

/// What a person may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The city team: every dong.
    City,
    /// A dong office: its own dong.
    Dong,
}

impl Role {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::City => "city",
            Role::Dong => "dong",
        }
    }
}

/// One account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Pseudonymous id (`u-` and 8 hex digits): what outcomes and the audit
    /// log name.
    pub id: String,
    /// Display name.
    pub name: String,
    /// `city` or `dong`.
    pub role: Role,
    /// The dong code of a dong role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dong: Option<String>,
    /// SHA-256 of the token, hex.
    pub(crate) token_sha256: String,
    /// When it was made (RFC 3339).
    pub created_at: String,
    /// When it was revoked (RFC 3339), if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct UsersFile {
    users: Vec<User>,
}

fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// SHA-256 of a token, hex.
pub(crate) fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// `n` random bytes from the operating system.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], UsersError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes)
        .map_err(|e| UsersError::Usage(format!("the system has no random numbers: {e}")))?;
    Ok(bytes)
}

/// A new token: 32 random bytes, base64url without padding.
pub(crate) fn new_token() -> Result<String, UsersError> {
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>()?))
}

/// The accounts (none when there are none yet).
pub fn load(accounts: impl Into<Accounts>) -> Result<Vec<User>, UsersError> {
    Ok(accounts.into().read()?.0)
}

fn save(path: &Path, users: &[User]) -> Result<(), UsersError> {
    let io = |error| UsersError::Io {
        path: path.into(),
        error,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let json = serde_json::to_vec_pretty(&UsersFile {
        users: users.to_vec(),
    })
    .map_err(|e| io(e.into()))?;
    // owner only, whatever the group of the lists: the file unlocks them
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io)?;
        f.write_all(&json).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)
}

/// Adds an account and returns it with its token (shown once).
pub fn add(
    accounts: impl Into<Accounts>,
    name: &str,
    role: Role,
    dong: Option<&str>,
) -> Result<(User, String), UsersError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(UsersError::Usage(
            "--name must be 1 to 100 characters: the person's display name".into(),
        ));
    }
    let dong = match (role, dong) {
        (Role::Dong, Some(d)) if crate::base::ids::is_dong_code(d) => Some(d.to_string()),
        (Role::Dong, Some(d)) => {
            return Err(UsersError::Usage(format!(
                "--dong {d:?} is not a dong code: 10 digits, e.g. 4125052000"
            )))
        }
        (Role::Dong, None) => {
            return Err(UsersError::Usage(
                "a dong account needs --dong CODE (the 10-digit code of its office)".into(),
            ))
        }
        (Role::City, Some(_)) => {
            return Err(UsersError::Usage(
                "a city account sees every dong: leave out --dong".into(),
            ))
        }
        (Role::City, None) => None,
    };
    let token = new_token()?;
    let user = accounts.into().update(|users| {
        let id = loop {
            let b = random_bytes::<4>()?;
            let id = format!("u-{:08x}", u32::from_be_bytes(b));
            if !users.iter().any(|u| u.id == id) {
                break id;
            }
        };
        let user = User {
            id,
            name: name.to_string(),
            role,
            dong: dong.clone(),
            token_sha256: token_hash(&token),
            created_at: now_text(),
            revoked_at: None,
        };
        users.push(user.clone());
        Ok(user)
    })?;
    Ok((user, token))
}

/// A fresh users file at `path` for the demo: the city team and one
/// office per dong of `dongs`, with their tokens.
pub fn demo_accounts(
    path: &Path,
    dongs: &[crate::definition::Dong],
) -> Result<Vec<(User, String)>, UsersError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(UsersError::Io {
                path: path.into(),
                error: e,
            })
        }
        _ => {}
    }
    let mut accounts = vec![add(path, "시 통합사례관리팀 city team", Role::City, None)?];
    for d in dongs {
        let name = format!("{} 맞춤형복지팀", d.name_ko);
        accounts.push(add(path, &name, Role::Dong, Some(&d.dong_code))?);
    }
    Ok(accounts)
}

/// Revokes account `id`.
pub fn revoke(accounts: impl Into<Accounts>, id: &str) -> Result<User, UsersError> {
    let accounts = accounts.into();
    let name = accounts.name();
    accounts.update(|users| {
        let Some(user) = users.iter_mut().find(|u| u.id == id) else {
            return Err(UsersError::Usage(format!(
                "no account {id:?} in {}: `sagak users list` shows the ids",
                name.display()
            )));
        };
        if user.revoked_at.is_none() {
            user.revoked_at = Some(now_text());
        }
        Ok(user.clone())
    })
}

/// The accounts as the server sees them: by token hash and by id, re-read
/// when the file's modification time changes.
pub(crate) struct Directory {
    accounts: Accounts,
    inner: RwLock<Loaded>,
}

#[derive(Default)]
struct Loaded {
    /// The version read (file time or store version).
    stamp: Option<String>,
    by_hash: HashMap<String, Arc<User>>,
    by_id: HashMap<String, Arc<User>>,
}

impl Directory {
    /// The accounts of `accounts`, loaded now.
    pub(crate) fn open(accounts: Accounts) -> Result<Self, UsersError> {
        let dir = Directory {
            accounts,
            inner: RwLock::new(Loaded::default()),
        };
        dir.reload()?;
        Ok(dir)
    }

    /// Re-reads the accounts if they changed; returns whether they did.
    pub(crate) fn reload(&self) -> Result<bool, UsersError> {
        if let Accounts::File(path) = &self.accounts {
            let modified = std::fs::metadata(path)
                .and_then(|m| m.modified())
                .ok()
                .map(|t| format!("{t:?}"));
            if modified.is_some() && self.inner.read().stamp == modified {
                return Ok(false);
            }
        }
        let (users, stamp) = self.accounts.read()?;
        if stamp.is_some() && self.inner.read().stamp == stamp {
            return Ok(false);
        }
        let mut loaded = Loaded {
            stamp,
            ..Loaded::default()
        };
        for u in users.into_iter().filter(|u| u.revoked_at.is_none()) {
            let u = Arc::new(u);
            loaded.by_hash.insert(u.token_sha256.clone(), u.clone());
            loaded.by_id.insert(u.id.clone(), u);
        }
        *self.inner.write() = loaded;
        Ok(true)
    }

    /// The active account whose token is `token`.
    pub(crate) fn by_token(&self, token: &str) -> Option<Arc<User>> {
        self.inner.read().by_hash.get(&token_hash(token)).cloned()
    }

    /// The active account `id` (none once revoked).
    pub(crate) fn by_id(&self, id: &str) -> Option<Arc<User>> {
        self.inner.read().by_id.get(id).cloned()
    }

    /// Active accounts.
    pub(crate) fn len(&self) -> usize {
        self.inner.read().by_id.len()
    }

    /// Whether there is no active account.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn an_account_logs_in_with_its_token_until_it_is_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.json");
        let (user, token) = add(&path, "김민지", Role::Dong, Some("4125052000")).unwrap();
        assert_eq!(token.len(), 43, "32 bytes in base64url");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&token), "only the hash is kept");
        let users = Directory::open(Accounts::File(path.clone())).unwrap();
        assert_eq!(
            users.by_token(&token).map(|u| u.id.clone()),
            Some(user.id.clone())
        );
        assert!(users.by_token("not-the-token").is_none());
        // the file's time has a resolution; make sure it moves
        std::thread::sleep(std::time::Duration::from_millis(20));
        revoke(&path, &user.id).unwrap();
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(1);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert!(users.reload().unwrap());
        assert!(users.by_token(&token).is_none());
        assert!(users.by_id(&user.id).is_none());
    }

    #[test]
    fn accounts_say_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.json");
        let err = add(&path, "x", Role::Dong, None).unwrap_err().to_string();
        assert!(err.contains("--dong"), "{err}");
        let err = add(&path, "x", Role::Dong, Some("41250"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("10 digits"), "{err}");
        let err = add(&path, "x", Role::City, Some("4125052000"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("leave out --dong"), "{err}");
        let err = revoke(&path, "u-00000000").unwrap_err().to_string();
        assert!(err.contains("sagak users list"), "{err}");
    }
}
