//! The `sagak` command line: a thin layer over the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use sagak::config::Settings;
use sagak::metrics::Metrics;

/// sagak: finds households in crisis from agency signals on Kafka and sends
/// prioritized, explained alerts to the dong welfare offices.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Settings file (TOML). Environment variables SAGAK__SECTION__KEY
    /// override it, e.g. SAGAK__KAFKA__BROKERS=kafka1:9092.
    #[arg(long, short, global = true, env = "SAGAK_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the pipeline against the configured Kafka cluster until SIGINT or
    /// SIGTERM, then finish the batch in flight, checkpoint and exit 0.
    Run,
    /// Print the effective settings and pipeline, or fail naming the key
    /// that is wrong.
    CheckConfig,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,librdkafka=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match real_main(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sagak: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load(cli.config.as_deref())?;
    let spec = settings.pipeline()?;
    match cli.command {
        Command::CheckConfig => {
            let text = toml::to_string_pretty(&settings).context("printing the settings")?;
            println!("# effective settings (file + SAGAK__ environment)\n{text}");
            println!(
                "# pipeline `{}` version {} from {}",
                spec.name,
                spec.version,
                settings.pipeline.dir.display()
            );
            for (feed, topic) in spec.feeds.iter().zip(settings.input_topics(&spec)) {
                println!(
                    "#   feed {:<18} topic {:<28} category {}",
                    feed.name, topic, feed.category
                );
            }
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(sagak::engine::Engine::new(&spec, Metrics::new(&spec)).start())?;
            println!("# scoring SQL plans and returns every column of the contract: OK");
            Ok(())
        }
        Command::Run => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let metrics = Metrics::new(&spec);
                sagak::run::run(&settings, &spec, metrics, shutdown_signal()).await?;
                Ok(())
            })
        }
    }
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
