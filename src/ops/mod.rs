//! The operations view: what city operations staff and the SRE on call see.
//!
//! * `/metrics`: Prometheus text format (open).
//! * `/healthz`: the process is alive (open).
//! * `/readyz`: connected and assigned partitions, or the embedded source
//!   running; 503 with a JSON reason otherwise (open).
//! * `/dashboard` and `/api/dashboard`: the live page and its data. They
//!   show household ids, so they need the bearer token (`http.token`), and
//!   every access is logged.

pub mod http;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use serde::Serialize;

use crate::alert::Alert;
use crate::metrics::Metrics;
use crate::pipeline::{Dong, PipelineSpec};

/// Households shown per dong on the dashboard.
pub const TOP_PER_DONG: usize = 10;

/// Readiness of the pipeline, set by its driver.
#[derive(Debug, Default)]
pub struct Health {
    ready: AtomicBool,
    reason: Mutex<String>,
}

impl Health {
    /// Not ready, with `reason`.
    pub fn new(reason: &str) -> Self {
        Health {
            ready: AtomicBool::new(false),
            reason: Mutex::new(reason.into()),
        }
    }

    /// Marks ready.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
    }

    /// Marks not ready, with a reason for `/readyz`.
    pub fn set_not_ready(&self, reason: &str) {
        self.ready.store(false, Ordering::Relaxed);
        if let Ok(mut r) = self.reason.lock() {
            reason.clone_into(&mut r);
        }
    }

    /// Ready, or the reason it is not.
    pub fn status(&self) -> Result<(), String> {
        if self.ready.load(Ordering::Relaxed) {
            Ok(())
        } else {
            Err(self.reason.lock().map(|r| r.clone()).unwrap_or_default())
        }
    }
}

/// One household on the dashboard.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TopHousehold {
    /// Pseudonymous id.
    pub household_id: String,
    /// Priority of its latest alert.
    pub priority: String,
    /// Its score.
    pub score: f64,
    /// Reasons in Korean.
    pub reasons_ko: Vec<String>,
    /// Reasons in English.
    pub reasons: Vec<String>,
    /// When the alert was emitted.
    pub emitted_at: String,
}

/// The latest alerted households per dong, updated once per batch.
#[derive(Debug, Default)]
pub struct LiveView {
    top: Mutex<BTreeMap<String, Vec<TopHousehold>>>,
}

impl LiveView {
    /// Takes in a batch's alerts, keeping the most urgent per dong.
    pub fn record(&self, alerts: &[Alert]) {
        if alerts.is_empty() {
            return;
        }
        let Ok(mut top) = self.top.lock() else { return };
        for a in alerts {
            // A household that moved leaves its old dong's board.
            for list in top.values_mut() {
                list.retain(|h| h.household_id != a.household_id);
            }
            let list = top.entry(a.dong_code.clone()).or_default();
            list.push(TopHousehold {
                household_id: a.household_id.clone(),
                priority: a.priority.as_str().into(),
                score: a.score,
                reasons_ko: a.reasons.iter().map(|r| r.detail_ko.clone()).collect(),
                reasons: a.reasons.iter().map(|r| r.detail.clone()).collect(),
                emitted_at: crate::alert::rfc3339(a.emitted_at),
            });
            list.sort_by(|x, y| {
                x.priority
                    .cmp(&y.priority)
                    .then(y.score.total_cmp(&x.score))
            });
            list.truncate(TOP_PER_DONG);
        }
    }

    /// The board, per dong code.
    pub fn snapshot(&self) -> BTreeMap<String, Vec<TopHousehold>> {
        self.top.lock().map(|t| t.clone()).unwrap_or_default()
    }
}

/// What the HTTP endpoints read.
pub struct OpsState {
    /// Metrics registry.
    pub metrics: Metrics,
    /// Readiness.
    pub health: Health,
    /// Dashboard board.
    pub live: LiveView,
    /// Bearer token for the dashboard; `None` disables it.
    pub token: Option<String>,
    /// Served dongs, for Korean names.
    pub dongs: Vec<Dong>,
    /// Feed names, in order.
    pub feeds: Vec<String>,
    /// "kafka" or "demo".
    pub mode: String,
}

impl OpsState {
    /// State for `spec`, not ready yet.
    pub fn new(spec: &PipelineSpec, metrics: Metrics, token: Option<String>, mode: &str) -> Self {
        OpsState {
            metrics,
            health: Health::new("starting"),
            live: LiveView::default(),
            token: token.filter(|t| !t.is_empty()),
            dongs: spec.dongs.clone(),
            feeds: spec.feeds.iter().map(|f| f.name.clone()).collect(),
            mode: mode.into(),
        }
    }
}
