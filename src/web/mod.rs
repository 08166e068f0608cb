//! The web front for dong offices and the city team: pages and a JSON API
//! with household data, on their own listener (`web.listen`), behind
//! per-person accounts, every view audited.
//!
//! * [`users`]: accounts and tokens; [`auth`]: sessions, login, CSRF.
//! * [`routes`]: the router, its gate and the connection loop; the
//!   handlers: [`session`] (log in and out), [`households`] (queue,
//!   household, visit sheet, outcomes), [`downloads`] (lists), [`console`]
//!   (the city); under them [`caller`] (who asks) and [`respond`]
//!   (refusals and the audit line).
//! * [`guard`]: slots, bounds per address and account, origin checks.
//! * [`audit`]: the audit log; [`pages`], [`queue`], [`city`] and
//!   [`charts`]: what is drawn; [`form`]: an outcome form as the outcomes
//!   topic's JSON; [`escalations`]: the city team's hold on escalations.
//!
//! Single sign-on (GPKI, SAML, OIDC) would replace `session::login`: the
//! identity provider's assertion names the person, whose role and dong
//! still come from the users file, and the session works as here.

pub(crate) mod agenda;
pub mod audit;
pub(crate) mod auth;
pub(crate) mod caller;
pub(crate) mod charts;
pub(crate) mod city;
pub(crate) mod console;
pub(crate) mod downloads;
pub(crate) mod escalations;
pub(crate) mod form;
pub(crate) mod guard;
pub(crate) mod households;
pub(crate) mod pages;
pub(crate) mod queue;
pub(crate) mod respond;
pub(crate) mod routes;
pub(crate) mod session;
pub mod users;
pub(crate) mod yields;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::definition::PipelineSpec;
use crate::ops::OpsState;
use audit::AuditLog;
use users::Directory;

/// Escapes text for HTML.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// What went wrong starting the web front.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// The listener cannot be bound.
    #[error("cannot listen on web.listen = {addr}: {error}; pick a free address")]
    Bind {
        /// The address.
        addr: String,
        /// The cause.
        error: std::io::Error,
    },
    /// The certificate or key cannot be used.
    #[error("web.tls_cert / web.tls_key: {0}")]
    Tls(String),
    /// The users file.
    #[error(transparent)]
    Users(#[from] users::UsersError),
    /// The audit log.
    #[error(transparent)]
    Audit(#[from] audit::AuditError),
    /// The escalation states, beside the lists.
    #[error("the escalation states: {0}. Check `lists.out_dir` (or `storage.url`)")]
    States(crate::store::StoreError),
    /// The lists' store.
    #[error("the daily lists at {0}: check `lists.out_dir`")]
    Lists(#[from] crate::store::StoreError),
}

/// Where an outcome recorded on a page goes: the outcomes topic in Kafka
/// mode, the engine's input in the demo.
pub trait OutcomePublisher: Send + Sync {
    /// Publishes one outcome (key: household id; value: its JSON); done
    /// once it is durably accepted.
    fn publish<'a>(
        &'a self,
        household_id: &'a str,
        value: Vec<u8>,
    ) -> BoxFuture<'a, Result<(), String>>;
}

/// What the web front is started with.
pub struct WebConfig {
    /// Listen address.
    pub listen: String,
    /// PEM certificate chain and key: serve TLS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Address of a TLS-terminating proxy in front.
    pub trusted_proxy: Option<IpAddr>,
    /// The users file.
    pub users_file: PathBuf,
    /// The accounts' store, when they are kept in one (`storage.url`):
    /// used instead of `users_file`.
    pub users_store: Option<crate::store::SharedStore>,
    /// The audit folder.
    pub audit_dir: PathBuf,
    /// The audit's store, when it is kept in one (`storage.url`): used
    /// instead of `audit_dir`.
    pub audit_store: Option<crate::store::SharedStore>,
    /// The daily lists' store (the days in `lists/<date>/`).
    pub lists: crate::store::SharedStore,
    /// The folder of the escalation states file (`lists.out_dir`).
    pub out_dir: PathBuf,
    /// Session idle time.
    pub idle: Duration,
    /// Failed logins per address and minute.
    pub login_failures_per_minute: u32,
}

impl WebConfig {
    /// The web front's part of the settings (`[web]`), showing the lists
    /// of `lists`.
    pub fn from_settings(
        settings: &crate::config::Settings,
        lists: crate::store::SharedStore,
    ) -> WebConfig {
        let w = &settings.web;
        WebConfig {
            lists,
            listen: w.listen.clone(),
            tls: w.tls_cert.clone().zip(w.tls_key.clone()),
            trusted_proxy: w.trusted_proxy.as_deref().and_then(|p| p.parse().ok()),
            users_file: w.users_file.clone(),
            users_store: None,
            audit_dir: w.audit_dir.clone(),
            audit_store: None,
            out_dir: settings.lists.out_dir.clone(),
            idle: w.idle(),
            login_failures_per_minute: w.login_failures_per_minute,
        }
    }
}

/// Everything a request reads.
pub(crate) struct WebState {
    /// The pipeline's live state.
    pub(crate) ops: Arc<OpsState>,
    /// Accounts.
    pub(crate) users: Directory,
    /// Sessions and login limits.
    pub(crate) auth: auth::Auth,
    /// Audit log.
    pub(crate) audit: AuditLog,
    /// Outcomes recorded on the pages go here.
    pub(crate) publisher: Arc<dyn OutcomePublisher>,
    /// The daily lists' store.
    pub(crate) lists: crate::store::SharedStore,
    /// Cookies are marked Secure (TLS, or a TLS proxy in front).
    pub(crate) secure: bool,
    /// A proxy whose `X-Forwarded-For` is trusted.
    pub(crate) trusted_proxy: Option<IpAddr>,
    /// Served dongs (code, Korean and English names).
    pub(crate) dongs: Vec<crate::definition::Dong>,
    /// The city's code (outcomes the city records carry it).
    pub(crate) city_code: String,
    /// Korean labels of outcome kinds, values and statuses.
    pub(crate) labels: std::collections::BTreeMap<String, String>,
    /// How far ahead of the clock an outcome may be recorded, ms.
    pub(crate) max_future_ms: i64,
    /// Requests in flight: slots and bounds.
    pub(crate) gate: guard::Gate,
    /// The city team's hold on escalations, shared by the instances.
    pub(crate) escalation_states: escalations::States,
    /// The pipeline's categories with their Korean names.
    pub(crate) categories: crate::definition::CategoryNames,
    /// Feeds in order with their normal quiet spell (`expected_gap`).
    pub(crate) feeds: Vec<(String, Option<Duration>)>,
    /// Feeds' Korean names.
    pub(crate) feeds_ko: std::collections::BTreeMap<String, String>,
    /// The offices' clock (the pipeline's `lists.utc_offset_hours`).
    pub(crate) clock: crate::base::civil::LocalClock,
    /// Signals received per feed, sampled every few seconds (the feeds'
    /// rates on the city page).
    pub(crate) received: parking_lot::Mutex<
        std::collections::VecDeque<(std::time::Instant, std::collections::BTreeMap<String, f64>)>,
    >,
}

/// Samples of the received counters kept: a minute at one per 10 s.
const RATE_SAMPLES: usize = 7;

impl WebState {
    /// Takes a sample of the signals received per feed.
    pub(crate) fn sample_received(&self) {
        // the counter itself: gathering every metric (tens of thousands of
        // series at national scale) is the dashboard's work, not this one's
        let counts = self
            .ops
            .feeds
            .iter()
            .map(|f| {
                let n = self
                    .ops
                    .metrics
                    .received
                    .with_label_values(&[f.as_str()])
                    .get();
                (f.clone(), n as f64)
            })
            .collect();
        let mut r = self.received.lock();
        r.push_back((std::time::Instant::now(), counts));
        while r.len() > RATE_SAMPLES {
            r.pop_front();
        }
    }

    /// Signals per second of `feed` over the sampled span (none before two
    /// samples).
    pub(crate) fn rate(&self, feed: &str) -> Option<f64> {
        let r = self.received.lock();
        let (first, last) = (r.front()?, r.back()?);
        let secs = last.0.duration_since(first.0).as_secs_f64();
        if secs < 1.0 {
            return None;
        }
        Some((last.1.get(feed)? - first.1.get(feed).copied().unwrap_or(0.0)).max(0.0) / secs)
    }
}

impl WebState {
    /// A time on the offices' clock (the pipeline's time zone), to the
    /// minute: `2026-10-27 23:22`.
    pub(crate) fn local_time(&self, ms: i64) -> String {
        self.clock.minute_text(ms)
    }

    /// The Korean name of a feed.
    pub(crate) fn feed_ko<'a>(&'a self, feed: &'a str) -> &'a str {
        self.feeds_ko.get(feed).map_or(feed, String::as_str)
    }

    /// The Korean name of a dong code.
    pub(crate) fn dong_name(&self, code: &str) -> (String, String) {
        self.dongs
            .iter()
            .find(|d| d.dong_code == code)
            .map(|d| (d.name_ko.clone(), d.name_en.clone()))
            .unwrap_or_else(|| ("미배정".into(), "unassigned".into()))
    }

    /// A Korean label, or the name itself.
    pub(crate) fn label(&self, name: &str) -> String {
        self.labels
            .get(name)
            .cloned()
            .unwrap_or_else(|| name.to_string())
    }
}

/// A running web front.
pub struct WebServer {
    /// The address it listens on.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl WebServer {
    /// Stops serving.
    pub fn abort(&self) {
        self.task.abort();
    }
}

/// Starts the web front: binds, loads the accounts and opens the audit
/// log (an error here stops start-up), then serves until aborted.
pub async fn start(
    cfg: WebConfig,
    spec: &PipelineSpec,
    ops: Arc<OpsState>,
    publisher: Arc<dyn OutcomePublisher>,
) -> Result<WebServer, WebError> {
    let tls = match &cfg.tls {
        Some((cert, key)) => Some(routes::tls_acceptor(cert, key).map_err(WebError::Tls)?),
        None => None,
    };
    let accounts = match cfg.users_store.clone() {
        Some(store) => users::Accounts::Store(store),
        None => users::Accounts::File(cfg.users_file.clone()),
    };
    let session_key = users::session_key(&accounts)?;
    let users = Directory::open(accounts)?;
    let audit = match cfg.audit_store.clone() {
        Some(store) => AuditLog::in_store(store)?,
        None => AuditLog::open(&cfg.audit_dir)?,
    };
    // beside the lists: shared by the instances of a group
    let escalation_states =
        escalations::States::open(cfg.lists.clone()).map_err(WebError::States)?;
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .map_err(|error| WebError::Bind {
            addr: cfg.listen.clone(),
            error,
        })?;
    let addr = listener.local_addr().map_err(|error| WebError::Bind {
        addr: cfg.listen.clone(),
        error,
    })?;
    ops.work.enable();
    let state = Arc::new(WebState {
        ops,
        users,
        auth: auth::Auth::new(cfg.idle, cfg.login_failures_per_minute, session_key)
            .sharing_logouts(cfg.users_store.clone()),
        audit,
        publisher,
        lists: cfg.lists,
        secure: tls.is_some() || cfg.trusted_proxy.is_some(),
        trusted_proxy: cfg.trusted_proxy,
        dongs: spec.dongs.clone(),
        city_code: spec.outcomes.city_code.clone(),
        labels: spec.outcomes.labels_ko.clone(),
        max_future_ms: i64::from(spec.window.max_future_hours) * 3_600_000,
        gate: guard::Gate::default(),
        escalation_states,
        categories: spec.category_names(),
        feeds: spec
            .feeds
            .iter()
            .map(|f| (f.name.clone(), f.expected_gap))
            .collect(),
        feeds_ko: spec
            .feeds
            .iter()
            .filter_map(|f| Some((f.name.clone(), f.name_ko.clone()?)))
            .collect(),
        clock: spec.local_clock(),
        received: parking_lot::Mutex::new(std::collections::VecDeque::new()),
    });
    if state.users.is_empty() {
        tracing::warn!(file = %cfg.users_file.display(), "no accounts yet: nobody can log in; create one with `sagak users add`");
    }
    tracing::info!(%addr, tls = tls.is_some(), "serving the offices' and the city's pages");
    let task = tokio::spawn(routes::serve(listener, tls, state.clone()));
    Ok(WebServer { addr, task })
}
