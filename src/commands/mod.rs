//! One function per command, each in its own file; this module loads the
//! settings and the pipeline once, builds the one tokio runtime, and maps
//! a failure to its exit code.
//!
//! | command | file |
//! |---|---|
//! | `demo` | [`demo`] |
//! | `generate` | [`generate`] |
//! | `replay`, `compare` | [`replay`] |
//! | `lists` | [`lists`] |
//! | `run` | [`run`] |
//! | `users`, `audit` | [`people`] |
//! | `retention` | [`retention`] |
//! | `check-config` | [`check_config`] |

mod agenda;
mod check_config;
mod demo;
mod explain;
mod generate;
mod lists;
mod people;
mod replay;
mod retention;
mod run;

use std::sync::Arc;

use sagak::config::{LogFormat, Settings};
use sagak::definition::PipelineSpec;
use sagak::ops::OpsState;

use crate::cli::{Cli, Command};

/// Exit status of a failure before the first message was consumed
/// (settings, pipeline definition, TLS files, a port that cannot be bound):
/// EX_CONFIG, so a supervisor can tell a bad deploy from a crash.
pub const EX_CONFIG: u8 = 78;

/// A failure while starting, for [`exit_code`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Startup(pub String);

/// [`EX_CONFIG`] when the failure came before the first message, else 1.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    let at_start = e.chain().any(|cause| {
        cause.is::<Startup>()
            || cause.is::<sagak::config::ConfigError>()
            || cause.is::<sagak::definition::PipelineError>()
            || matches!(
                cause.downcast_ref::<sagak::drivers::kafka::RunError>(),
                Some(sagak::drivers::kafka::RunError::Startup(_))
            )
    });
    if at_start {
        EX_CONFIG
    } else {
        1
    }
}

/// What every command starts from: the settings (file and environment)
/// and the pipeline they name, both checked.
pub struct Context {
    /// The settings.
    pub settings: Settings,
    /// The pipeline definition.
    pub spec: PipelineSpec,
}

/// Loads the settings and the pipeline, starts logging, and runs the
/// command on one runtime.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load(cli.config.as_deref())?;
    init_logging(settings.log.format);
    if !settings.retention.group.is_empty() {
        let gid = sagak::base::files::resolve_group(&settings.retention.group)
            .map_err(|e| Startup(format!("retention.group: {e}")))?;
        sagak::base::files::set_reader_group(Some(gid));
    }
    let spec = settings.pipeline()?;
    let cx = Context { settings, spec };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(dispatch(cli.command, &cx))
}

/// The command's function.
async fn dispatch(command: Command, cx: &Context) -> anyhow::Result<()> {
    match command {
        Command::CheckConfig => check_config::check_config(cx).await,
        Command::Demo {
            synth,
            out,
            serve,
            without_offices,
        } => demo::demo(cx, &synth, out, serve, without_offices).await,
        Command::Generate {
            synth,
            to,
            rate,
            out,
            with_arrival,
        } => generate::generate(cx, &synth, to, rate, &out, with_arrival).await,
        Command::Replay {
            files,
            out,
            snapshots,
            partitions,
            partitioner,
            offsets,
        } => {
            let backfill = replay::BackfillArgs {
                snapshots,
                partitions,
                partitioner,
                offsets,
            };
            replay::replay(cx, &files, out, backfill).await
        }
        Command::Compare {
            pipelines,
            files,
            out,
        } => replay::compare(&pipelines, &files, out).await,
        Command::Lists { date, out } => lists::lists(cx, date, out).await,
        Command::Explain { household, at } => explain::explain(cx, &household, at.as_deref()).await,
        Command::Agenda { dong, date, csv } => {
            agenda::agenda(cx, &dong, &date, csv.as_deref()).await
        }
        Command::Run => run::run(cx).await,
        Command::Users { action } => people::users(cx, action),
        Command::Audit {
            household,
            user,
            since,
            json,
        } => people::audit(cx, household, user, since, json),
        Command::Retention { apply } => retention::retention(cx, apply),
    }
}

/// An engine holding the newest snapshot of every partition in `state`
/// (`sagak lists`, `sagak explain`); an error when there is none.
fn restored_engine(
    cx: &Context,
    state: sagak::store::SharedStore,
) -> anyhow::Result<sagak::engine::Engine> {
    let mut engine = sagak::engine::Engine::new(&cx.spec);
    let store = sagak::checkpoint::ShardedStore::on(state, cx.settings.engine.keep_checkpoints)?;
    if store.each_newest(|snapshot| engine.restore_shard(&snapshot))? == 0 {
        anyhow::bail!(
            "no state snapshot in {}: run `sagak run` first, or point engine.state_dir (or storage.url) at its state",
            store.location()
        );
    }
    Ok(engine)
}

/// Logs to stderr in the configured format; colours only on a terminal.
fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,librdkafka=warn".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// Starts the operations endpoints when `http.enabled`.
async fn start_http(
    settings: &Settings,
    ops: Arc<OpsState>,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    if !settings.http.enabled {
        return Ok(None);
    }
    let listener = tokio::net::TcpListener::bind(&settings.http.listen)
        .await
        .map_err(|e| {
            Startup(format!(
                "cannot listen on http.listen = {}: {e}; pick a free address",
                settings.http.listen
            ))
        })?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
    Ok(Some(tokio::spawn(sagak::ops::http::serve(
        listener,
        ops,
        std::future::pending(),
    ))))
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
