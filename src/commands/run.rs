//! `sagak run`: the pipeline against the configured Kafka cluster, with
//! its operations endpoints, its pages and the daily retention pass.

use std::sync::Arc;

use sagak::metrics::Metrics;
use sagak::ops::OpsState;

use super::{shutdown_signal, start_http, Context, Startup};

/// Runs until SIGINT or SIGTERM.
pub async fn run(cx: &Context) -> anyhow::Result<()> {
    let (settings, spec) = (&cx.settings, &cx.spec);
    let ops = Arc::new(OpsState::new(spec, Metrics::new(spec), "kafka"));
    let server = start_http(settings, ops.clone()).await?;
    let web = match settings.web.enabled {
        true => Some(start_pages(cx, &ops).await?),
        false => None,
    };
    let rules = sagak::retention::RetentionRules::from_settings(settings, spec)?;
    let retention = tokio::spawn(async move {
        let mut daily = tokio::time::interval(std::time::Duration::from_secs(86_400));
        loop {
            daily.tick().await;
            match rules.apply(rules.today(), std::time::SystemTime::now()) {
                Ok(gone) => tracing::info!(
                    deleted = gone.len(),
                    "retention: deleted what is past its time"
                ),
                Err(e) => {
                    tracing::error!(error = %e, "retention could not delete an expired file; run `sagak retention --apply` to retry")
                }
            }
        }
    });
    sagak::drivers::kafka::run(settings, spec, ops, shutdown_signal()).await?;
    retention.abort();
    if let Some(web) = web {
        web.abort();
    }
    if let Some(server) = server {
        server.abort();
    }
    Ok(())
}

/// The offices' and the city's pages, outcomes recorded there published
/// to the outcomes topic.
async fn start_pages(cx: &Context, ops: &Arc<OpsState>) -> anyhow::Result<sagak::web::WebServer> {
    let settings = &cx.settings;
    let producer =
        sagak::kafka::outcomes::OutcomeProducer::new(&settings.kafka, &settings.topics.outcomes)
            .map_err(|e| Startup(format!("the outcomes producer: {e}")))?;
    let storage = settings.storage()?;
    let mut cfg = sagak::web::WebConfig::from_settings(settings, storage.lists);
    cfg.audit_store = storage.audit;
    cfg.users_store = storage.accounts;
    let web = sagak::web::start(cfg, &cx.spec, ops.clone(), Arc::new(producer))
        .await
        .map_err(|e| Startup(e.to_string()))?;
    Ok(web)
}
