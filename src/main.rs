//! The `sagak` command line: a thin layer over the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use sagak::config::{LogFormat, Settings};
use sagak::metrics::Metrics;
use sagak::ops::OpsState;
use std::sync::Arc;

/// Every micro-batch allocates and frees its assessments, reasons and
/// alerts by the thousand; glibc's malloc took about a fifth of a lane's
/// time over them, mimalloc about a third of that (benches/README.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

/// Size and seed of the synthetic city.
#[derive(clap::Args, Clone)]
struct SynthArgs {
    /// Households in the city (Dongducheon-si has about 45,000).
    #[arg(long, default_value_t = 45_000)]
    households: usize,
    /// Days of event time to simulate.
    #[arg(long, default_value_t = 180)]
    days: u32,
    /// Seed: the same seed gives the same run.
    #[arg(long, default_value_t = 2022)]
    seed: u64,
    /// First simulated day (YYYY-MM-DD).
    #[arg(long, default_value = "2026-05-01")]
    start: chrono::NaiveDate,
    /// Share of households pushed into a multi-signal crisis.
    #[arg(long, default_value_t = 0.03)]
    crisis_share: f64,
    /// No malformed, late or re-sent messages (a clean input, as the peer
    /// benchmark needs).
    #[arg(long)]
    clean: bool,
    /// Spread the households over N equal dongs with generated codes
    /// (1100000000 + 100 i) instead of Dongducheon-si's eight; such
    /// dongs are served only by a pipeline whose dongs.csv lists them.
    #[arg(long, default_value_t = 0)]
    dongs: usize,
}

impl SynthArgs {
    fn config(&self) -> sagak::generate::GeneratorConfig {
        let mut cfg = sagak::generate::GeneratorConfig {
            seed: self.seed,
            households: self.households,
            days: self.days,
            start: self.start,
            crisis_share: self.crisis_share,
            dongs: self.dongs,
            ..Default::default()
        };
        if self.clean {
            cfg.malformed_share = 0.0;
            cfg.late_share = 0.0;
            cfg.duplicate_share = 0.0;
        }
        cfg
    }
}

/// The files a replay reads.
#[derive(clap::Args, Clone)]
struct ReplayArgs {
    /// NDJSON or Parquet files, or folders of them; a file's feed is its
    /// name (health-insurance.ndjson) unless --feed says it.
    #[arg(long, required = true, num_args = 1..)]
    input: Vec<PathBuf>,
    /// The feed of every input file.
    #[arg(long)]
    feed: Option<String>,
    /// Outcome files (NDJSON, dong-office.outcomes values).
    #[arg(long, num_args = 1..)]
    outcomes: Vec<PathBuf>,
    /// Write only these days' lists (YYYY-MM-DD, comma-separated); every
    /// day when absent.
    #[arg(long, value_delimiter = ',')]
    dates: Vec<chrono::NaiveDate>,
    /// Write only the final day's lists (after the last input line).
    #[arg(long)]
    final_list: bool,
    /// Input time per micro-batch, minutes (a batch also ends at each
    /// daily cut-off, so the lists do not depend on it; alerts of a
    /// household whose signals share a batch are decided together).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(i64).range(1..=525_600))]
    batch_minutes: i64,
}

impl ReplayArgs {
    fn config(&self, out: PathBuf) -> sagak::drivers::replay::ReplayConfig {
        use std::io::IsTerminal;
        sagak::drivers::replay::ReplayConfig {
            inputs: self.input.clone(),
            feed: self.feed.clone(),
            outcomes: self.outcomes.clone(),
            out_dir: out,
            dates: self.dates.clone(),
            final_list_only: self.final_list,
            batch_minutes: self.batch_minutes,
            backfill: None,
            progress: std::io::stderr().is_terminal(),
        }
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Target {
    /// The signal topics of the configured Kafka cluster.
    Kafka,
    /// NDJSON files, one per feed.
    Ndjson,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole pipeline on a synthetic Dongducheon-si, with no broker:
    /// alerts, dead letters, daily lists and a summary of how many planted
    /// crises were found.
    Demo {
        #[command(flatten)]
        synth: SynthArgs,
        /// Where the outputs go.
        #[arg(long, default_value = "sagak-out")]
        out: PathBuf,
        /// Serve /metrics (http.listen) and the offices' and city's pages
        /// (web.listen) with one account per dong and one for the city,
        /// whose tokens are printed; after the simulation the clock goes on
        /// at wall speed until Ctrl-C.
        #[arg(long)]
        serve: bool,
        /// Leave the offices out: no outcomes, no planted Suwon household
        /// (what `generate --to ndjson --with-arrival` files replay as).
        #[arg(long)]
        without_offices: bool,
    },
    /// Generate synthetic signals to Kafka (keyed by household) or NDJSON.
    Generate {
        #[command(flatten)]
        synth: SynthArgs,
        /// Where to write.
        #[arg(long, value_enum, default_value = "kafka")]
        to: Target,
        /// Messages per second (Kafka); as fast as possible when absent.
        #[arg(long)]
        rate: Option<u64>,
        /// Folder for NDJSON files.
        #[arg(long, default_value = "sagak-out/generated")]
        out: PathBuf,
        /// NDJSON with each message's arrival time (`{"ts","key","value"}`
        /// lines, bad input included), for `sagak replay`.
        #[arg(long)]
        with_arrival: bool,
    },
    /// Replay signal files (NDJSON or Parquet, one file per feed) through
    /// the engine: alerts, dead letters, daily lists and a summary; with
    /// --snapshots, a backfill that `sagak run` starts from.
    Replay {
        #[command(flatten)]
        files: ReplayArgs,
        /// Where the outputs go.
        #[arg(long, default_value = "sagak-out/replay")]
        out: PathBuf,
        /// Backfill: write the final state as snapshots into this folder
        /// (engine.state_dir of the deployment). No alert is published.
        #[arg(long)]
        snapshots: Option<PathBuf>,
        /// Backfill: partitions of the deployment's input topics.
        #[arg(long, default_value_t = 0)]
        partitions: i32,
        /// Backfill: the partitioner of the agencies' producers.
        #[arg(long, value_enum, default_value = "murmur2-random")]
        partitioner: sagak::embedded::files::Partitioner,
        /// Backfill: where each input partition starts, topic:partition:offset
        /// (comma-separated); others start at their earliest retained offset.
        #[arg(long, value_delimiter = ',')]
        offsets: Vec<String>,
    },
    /// Replay the same files under two pipeline definitions and report what
    /// changes: alerts per priority and dong, households gained and lost per
    /// list day, priority moves, and the households that differ.
    Compare {
        /// Two pipeline folders: the current one, then the candidate.
        #[arg(long = "pipeline", num_args = 1, required = true)]
        pipelines: Vec<PathBuf>,
        #[command(flatten)]
        files: ReplayArgs,
        /// Where the two replays and the comparison go.
        #[arg(long, default_value = "sagak-out/compare")]
        out: PathBuf,
    },
    /// Write the daily candidate lists of one day from the pipeline's state
    /// (the newest snapshot in engine.state_dir).
    Lists {
        /// List day (YYYY-MM-DD); the state as of its cut-off is used.
        #[arg(long)]
        date: chrono::NaiveDate,
        /// Lists go to <out>/lists/<date>/ (default: lists.out_dir).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Run the pipeline against the configured Kafka cluster until SIGINT or
    /// SIGTERM, then finish the batch in flight, checkpoint and exit 0.
    Run,
    /// Per-person accounts of the web front (web.users_file).
    Users {
        #[command(subcommand)]
        action: UsersAction,
    },
    /// Who saw a household, or what a person saw (web.audit_dir).
    Audit {
        /// Views and changes of this household.
        #[arg(long)]
        household: Option<String>,
        /// What this person (account id) did.
        #[arg(long)]
        user: Option<String>,
        /// From this day on (YYYY-MM-DD, UTC).
        #[arg(long)]
        since: Option<chrono::NaiveDate>,
        /// One JSON line per entry instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List what is past its retention (retention.data, retention.audit);
    /// with --apply, delete it.
    Retention {
        /// Delete (without it, only list).
        #[arg(long)]
        apply: bool,
    },
    /// Print the effective settings and pipeline, or fail naming the key
    /// that is wrong.
    CheckConfig,
}

#[derive(Subcommand)]
enum UsersAction {
    /// Create an account and print its token once.
    Add {
        /// Display name.
        #[arg(long)]
        name: String,
        /// `dong` (one office) or `city` (every dong).
        #[arg(long, value_enum)]
        role: sagak::web::users::Role,
        /// The office's 10-digit dong code (dong role).
        #[arg(long)]
        dong: Option<String>,
    },
    /// List the accounts (never their tokens).
    List,
    /// Revoke an account: its token no longer logs in and its sessions end.
    Revoke {
        /// The account id (`sagak users list`).
        id: String,
    },
}

/// Exit status of a failure before the first message was consumed
/// (settings, pipeline definition, TLS files, a port that cannot be bound):
/// EX_CONFIG, so a supervisor can tell a bad deploy from a crash.
const EX_CONFIG: u8 = 78;

/// A failure while starting, for [`exit_code`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Startup(String);

/// [`EX_CONFIG`] when the failure came before the first message, else 1.
fn exit_code(e: &anyhow::Error) -> u8 {
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    // the engine's lanes run on this pool; named, they can be told apart in
    // `top -H` and a profile (it fails only if already built: nothing to do)
    let _ = rayon::ThreadPoolBuilder::new()
        .thread_name(|i| format!("sagak-lane-{i}"))
        .build_global();
    match real_main(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The chain of causes, without repeating a cause its parent's
            // message already quotes.
            let mut msg = e.to_string();
            for cause in e.chain().skip(1) {
                let text = cause.to_string();
                if !msg.contains(&text) {
                    msg.push_str(": ");
                    msg.push_str(&text);
                }
            }
            eprintln!("sagak: {msg}");
            ExitCode::from(exit_code(&e))
        }
    }
}

fn real_main(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load(cli.config.as_deref())?;
    init_logging(settings.log.format);
    if !settings.retention.group.is_empty() {
        let gid = sagak::base::files::resolve_group(&settings.retention.group)
            .map_err(|e| Startup(format!("retention.group: {e}")))?;
        sagak::base::files::set_reader_group(Some(gid));
    }
    let spec = settings.pipeline()?;
    match cli.command {
        Command::CheckConfig => {
            let text =
                toml::to_string_pretty(&redacted(&settings)).context("printing the settings")?;
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
            println!(
                "#   outcomes from {}, escalations to {}",
                settings.topics.outcomes, settings.topics.escalations
            );
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime
                .block_on(sagak::engine::Engine::new(&spec, Metrics::new(&spec)).start())
                .map_err(|e| Startup(e.to_string()))?;
            println!("# scoring SQL plans and returns every column of the contract: OK");
            sagak::kafka::check_clients(&settings.kafka).map_err(|e| {
                Startup(format!(
                    "librdkafka refuses the Kafka settings: {e}. Fix that key under [kafka.properties], [kafka.consumer] or [kafka.producer]"
                ))
            })?;
            println!("# librdkafka accepts the consumer and producer settings: OK");
            Ok(())
        }
        Command::Demo {
            synth,
            out,
            serve,
            without_offices,
        } => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let ops = Arc::new(OpsState::new(&spec, Metrics::new(&spec), "demo"));
            let server = if serve {
                runtime.block_on(start_http(&settings, ops.clone()))?
            } else {
                None
            };
            let mut live = None;
            if serve {
                let (inbox, rx) = sagak::embedded::inbox::Inbox::new(
                    spec.outcome_feed(),
                    &settings.topics.outcomes,
                );
                // the demo's own accounts, beside its outputs: a real users file is never touched
                let users_file = out.join("demo-users.json");
                let accounts = sagak::web::users::demo_accounts(&users_file, &spec.dongs)?;
                let mut web_cfg = web_config(&settings);
                web_cfg.users_file = users_file;
                web_cfg.audit_dir = out.join("audit");
                web_cfg.lists_dir = out.join("lists");
                let web = runtime
                    .block_on(sagak::web::start(
                        web_cfg,
                        &spec,
                        ops.clone(),
                        Arc::new(inbox),
                    ))
                    .map_err(|e| Startup(e.to_string()))?;
                let addr = web.addr;
                // tokens go to a file only its owner reads, never to the
                // standard output a user may redirect to a shared log
                let tokens_file = out.join("demo-tokens.txt");
                let mut text = String::from("# sagak demo: one access token per account (log in with it; keep this file private)\n");
                for (u, token) in &accounts {
                    text.push_str(&format!("{:<11} {:<28} {}\n", u.id, u.name, token));
                }
                sagak::base::files::write_owner_only(&tokens_file, text.as_bytes())
                    .map_err(|e| Startup(format!("cannot write {}: {e}", tokens_file.display())))?;
                live = Some(sagak::drivers::demo::DemoLive {
                    outcomes: rx,
                    on_summary: Box::new(move |summary: &sagak::drivers::demo::DemoSummary| {
                        print!("{}", summary.render());
                        println!("\nthe offices' pages: http://{addr}/ (log in with a token from {}, readable by you only: the city's first, then one per dong)", tokens_file.display());
                        println!("the clock goes on at wall speed; Ctrl-C to stop");
                    }),
                    until: Box::pin(shutdown_signal()),
                });
                // its task serves until the process ends
                drop(web);
            }
            let cfg = sagak::drivers::demo::DemoConfig {
                generator: synth.config(),
                out_dir: out,
                batch_minutes: 60,
                offices: !without_offices,
            };
            eprintln!(
                "simulating {} households over {} days (seed {})...",
                cfg.generator.households, cfg.generator.days, cfg.generator.seed
            );
            ops.health.set_ready();
            ops.metrics.ready.set(1);
            let serving = live.is_some();
            let summary =
                runtime.block_on(sagak::drivers::demo::run_demo_live(&spec, &cfg, &ops, live))?;
            if !serving {
                print!("{}", summary.render());
            }
            drop(server);
            Ok(())
        }
        Command::Generate {
            synth,
            to,
            rate,
            out,
            with_arrival,
        } => {
            let cfg = synth.config();
            let (sent, planted) = match to {
                Target::Ndjson if with_arrival => {
                    let generated = sagak::generate::generate(&cfg);
                    let sent =
                        sagak::generate::publish::to_ndjson_with_arrival(&out, &generated.messages)
                            .with_context(|| format!("writing NDJSON under {}", out.display()))?;
                    (sent, generated.planted.len())
                }
                // straight to disk: one household in memory at a time
                Target::Ndjson => sagak::generate::publish::generate_to_ndjson(&out, &cfg)
                    .with_context(|| format!("writing NDJSON under {}", out.display()))?,
                Target::Kafka => {
                    let generated = sagak::generate::generate(&cfg);
                    let runtime = tokio::runtime::Builder::new_multi_thread()
                        .enable_all()
                        .build()?;
                    let topics = settings.input_topics(&spec);
                    let topic_of = |feed: &str| {
                        spec.feed_index(feed)
                            .map(|i| topics[i].clone())
                            .unwrap_or_else(|| feed.to_string())
                    };
                    let sent = runtime
                        .block_on(sagak::generate::publish::to_kafka(&settings.kafka, &generated.messages, topic_of, rate))
                        .context("sending to Kafka; check kafka.brokers and that the signal topics exist")?;
                    (sent, generated.planted.len())
                }
            };
            println!(
                "sent {} messages in {:.1} s ({:.0}/s), {} planted crises",
                sent.total(),
                sent.seconds,
                sent.total() as f64 / sent.seconds.max(1e-9),
                planted
            );
            for (feed, n) in &sent.per_feed {
                println!("  {feed:<20}{n}");
            }
            if let Target::Ndjson = to {
                println!("written to {}", out.display());
            }
            Ok(())
        }
        Command::Replay {
            files,
            out,
            snapshots,
            partitions,
            partitioner,
            offsets,
        } => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let mut cfg = files.config(out);
            if let Some(state_dir) = snapshots {
                cfg.backfill = Some(sagak::drivers::replay::Backfill {
                    state_dir,
                    partitions,
                    partitioner,
                    offsets: sagak::drivers::replay::parse_offsets(&offsets)?,
                });
            }
            let ops = OpsState::new(&spec, Metrics::new(&spec), "replay");
            let summary = runtime
                .block_on(sagak::drivers::replay::run_replay(&spec, &cfg, &ops))
                .context("replaying")?;
            print!("{}", summary.render());
            Ok(())
        }
        Command::Compare {
            pipelines,
            files,
            out,
        } => {
            let [a, b] = pipelines.as_slice() else {
                anyhow::bail!(
                    "compare needs exactly two --pipeline folders (the current one, then the candidate); got {}",
                    pipelines.len()
                );
            };
            let specs = [
                sagak::definition::PipelineSpec::load(a)?,
                sagak::definition::PipelineSpec::load(b)?,
            ];
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let report = runtime
                .block_on(sagak::drivers::compare::run_compare(
                    &specs,
                    [a, b],
                    &files.config(out.clone()),
                    &out,
                ))
                .context("comparing")?;
            print!("{}", report.render());
            Ok(())
        }
        Command::Lists { date, out } => {
            let out = out.unwrap_or_else(|| settings.lists.out_dir.clone());
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let mut engine = sagak::engine::Engine::new(&spec, Metrics::new(&spec));
                let store = sagak::checkpoint::ShardedStore::open(
                    &settings.engine.state_dir,
                    settings.engine.keep_checkpoints,
                )?;
                if store.each_newest(|snapshot| engine.restore_shard(&snapshot))? == 0 {
                    anyhow::bail!(
                        "no state snapshot in {}: run `sagak run` first, or point engine.state_dir at its state",
                        settings.engine.state_dir.display()
                    );
                }
                let lists = sagak::lists::DailyLists::new(&spec)?;
                let previous = lists.households_on(&out, date - chrono::Duration::days(1));
                let (manifest, _) = lists.make_day(&mut engine, &out, lists.cutoff_ms(date), &previous).await?;
                println!("lists for {} written to {}", manifest.date, manifest.dir.display());
                for l in &manifest.lists {
                    println!(
                        "  {:<11} {:<22} {:>5} households (P1 {}, P2 {}, P3 {}; new {})",
                        l.list, l.name_ko, l.households, l.p1, l.p2, l.p3, l.new
                    );
                }
                anyhow::Ok(())
            })
        }
        Command::Run => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let ops = Arc::new(OpsState::new(&spec, Metrics::new(&spec), "kafka"));
                let server = start_http(&settings, ops.clone()).await?;
                let web = if settings.web.enabled {
                    let producer = sagak::kafka::outcomes::OutcomeProducer::new(&settings.kafka, &settings.topics.outcomes)
                        .map_err(|e| Startup(format!("the outcomes producer: {e}")))?;
                    Some(
                        sagak::web::start(web_config(&settings), &spec, ops.clone(), Arc::new(producer))
                            .await
                            .map_err(|e| Startup(e.to_string()))?,
                    )
                } else {
                    None
                };
                let rules = retention_rules(&settings);
                let retention = tokio::spawn(async move {
                    let mut daily = tokio::time::interval(std::time::Duration::from_secs(86_400));
                    loop {
                        daily.tick().await;
                        match rules.apply(sagak::retention::today(), std::time::SystemTime::now()) {
                            Ok(gone) => tracing::info!(deleted = gone.len(), "retention: deleted what is past its time"),
                            Err(e) => tracing::error!(error = %e, "retention could not delete an expired file; run `sagak retention --apply` to retry"),
                        }
                    }
                });
                sagak::drivers::kafka::run(&settings, &spec, ops, shutdown_signal()).await?;
                retention.abort();
                if let Some(web) = web {
                    web.abort();
                }
                if let Some(server) = server {
                    server.abort();
                }
                Ok(())
            })
        }
        Command::Users { action } => {
            let path = &settings.web.users_file;
            match action {
                UsersAction::Add { name, role, dong } => {
                    let (user, token) = sagak::web::users::add(path, &name, role, dong.as_deref())?;
                    println!(
                        "account {} ({}, {}{}) added to {}",
                        user.id,
                        user.name,
                        user.role.as_str(),
                        user.dong
                            .as_deref()
                            .map(|d| format!(" {d}"))
                            .unwrap_or_default(),
                        path.display()
                    );
                    println!("token (shown this once; give it to the person, who logs in with it on the web front):\n{token}");
                }
                UsersAction::List => {
                    let users = sagak::web::users::load(path)?;
                    println!(
                        "{:<11} {:<5} {:<11} {:<21} {:<21} name",
                        "id", "role", "dong", "created", "revoked"
                    );
                    for u in users {
                        println!(
                            "{:<11} {:<5} {:<11} {:<21} {:<21} {}",
                            u.id,
                            u.role.as_str(),
                            u.dong.as_deref().unwrap_or("-"),
                            u.created_at,
                            u.revoked_at.as_deref().unwrap_or("-"),
                            u.name
                        );
                    }
                }
                UsersAction::Revoke { id } => {
                    let u = sagak::web::users::revoke(path, &id)?;
                    println!("account {} ({}) revoked; a running server ends its sessions within seconds", u.id, u.name);
                }
            }
            Ok(())
        }
        Command::Audit {
            household,
            user,
            since,
            json,
        } => {
            if household.is_none() && user.is_none() {
                anyhow::bail!("say whose record you want: --household ID (who saw it) or --user ID [--since YYYY-MM-DD] (what they saw)");
            }
            let query = sagak::web::audit::AuditQuery {
                household,
                user,
                since,
            };
            let entries = sagak::web::audit::search(&settings.web.audit_dir, &query)?;
            for e in &entries {
                if json {
                    println!("{}", serde_json::to_string(e)?);
                } else {
                    let what = e
                        .file
                        .clone()
                        .unwrap_or_else(|| e.households.len().to_string() + " households");
                    println!(
                        "{}  {:<11} {:<4} {:<15} {:<22} {:<4} {}  {}",
                        e.time, e.user, e.role, e.client, e.action, e.status, e.path, what
                    );
                }
            }
            if !json {
                println!(
                    "{} entries in {}",
                    entries.len(),
                    settings.web.audit_dir.display()
                );
            }
            Ok(())
        }
        Command::Retention { apply } => {
            let rules = retention_rules(&settings);
            let now = std::time::SystemTime::now();
            let today = sagak::retention::today();
            let listed = if apply {
                rules.apply(today, now)?
            } else {
                rules.expired(today, now)
            };
            for e in &listed {
                println!(
                    "{}  {}  {}",
                    if apply { "deleted" } else { "expired" },
                    e.path.display(),
                    e.why
                );
            }
            println!(
                "{} {} (retention.data {}, retention.audit {}){}",
                listed.len(),
                if apply {
                    "deleted"
                } else {
                    "past their retention"
                },
                settings.retention.data,
                settings.retention.audit,
                if apply || listed.is_empty() {
                    ""
                } else {
                    "; run with --apply to delete them"
                }
            );
            Ok(())
        }
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

/// The web front's settings.
fn web_config(settings: &Settings) -> sagak::web::WebConfig {
    let w = &settings.web;
    sagak::web::WebConfig {
        listen: w.listen.clone(),
        tls: w.tls_cert.clone().zip(w.tls_key.clone()),
        trusted_proxy: w.trusted_proxy.as_deref().and_then(|p| p.parse().ok()),
        users_file: w.users_file.clone(),
        audit_dir: w.audit_dir.clone(),
        lists_dir: settings.lists.out_dir.join("lists"),
        idle: w.idle(),
        login_failures_per_minute: w.login_failures_per_minute,
    }
}

/// What retention deletes, from the settings.
fn retention_rules(settings: &Settings) -> sagak::retention::RetentionRules {
    sagak::retention::RetentionRules {
        out_dir: settings.lists.out_dir.clone(),
        state_dir: settings.engine.state_dir.clone(),
        audit_dir: settings.web.audit_dir.clone(),
        data_ms: settings.retention.data_ms(),
        audit_ms: settings.retention.audit_ms(),
    }
}

/// Settings with secrets masked, for printing.
fn redacted(settings: &Settings) -> Settings {
    let mut s = settings.clone();
    if !s.http.token.is_empty() {
        s.http.token = "***".into();
    }
    for map in [
        &mut s.kafka.properties,
        &mut s.kafka.consumer,
        &mut s.kafka.producer,
    ] {
        for (k, v) in map.iter_mut() {
            if k.contains("password")
                || k.contains("secret")
                || k.contains("token")
                || k.contains("key")
            {
                *v = "***".into();
            }
        }
    }
    s
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
