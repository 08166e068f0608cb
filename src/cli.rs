//! The command line as clap reads it: every command, its options and
//! their documentation (`sagak --help`). Turned into checked values once,
//! in [`crate::commands`].

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// sagak: finds households in crisis from agency signals on Kafka and sends
/// prioritized, explained alerts to the dong welfare offices.
#[derive(Parser)]
#[command(version, about)]
pub struct Cli {
    /// Settings file (TOML). Environment variables SAGAK__SECTION__KEY
    /// override it, e.g. SAGAK__KAFKA__BROKERS=kafka1:9092.
    #[arg(long, short, global = true, env = "SAGAK_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

/// Size and seed of the synthetic city.
#[derive(clap::Args, Clone)]
pub struct SynthArgs {
    /// Households in the city (Dongducheon-si has about 45,000).
    #[arg(long, default_value_t = 45_000)]
    pub households: usize,
    /// Days of event time to simulate.
    #[arg(long, default_value_t = 180)]
    pub days: u32,
    /// Seed: the same seed gives the same run.
    #[arg(long, default_value_t = 2022)]
    pub seed: u64,
    /// First simulated day (YYYY-MM-DD).
    #[arg(long, default_value = "2026-05-01")]
    pub start: chrono::NaiveDate,
    /// Share of households pushed into a multi-signal crisis.
    #[arg(long, default_value_t = 0.03)]
    pub crisis_share: f64,
    /// No malformed, late or re-sent messages (a clean input, as the peer
    /// benchmark needs).
    #[arg(long)]
    pub clean: bool,
    /// Spread the households over N equal dongs with generated codes
    /// (1100000000 + 100 i) instead of Dongducheon-si's eight; such
    /// dongs are served only by a pipeline whose dongs.csv lists them.
    #[arg(long, default_value_t = 0)]
    pub dongs: usize,
}

impl SynthArgs {
    /// The generator's settings, its signals dated on `spec`'s clock.
    pub fn config(
        &self,
        spec: &sagak::definition::PipelineSpec,
    ) -> sagak::generate::GeneratorConfig {
        let mut cfg = sagak::generate::GeneratorConfig {
            utc_offset_hours: spec.lists.utc_offset_hours,
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
pub struct ReplayArgs {
    /// NDJSON or Parquet files, or folders of them; a file's feed is its
    /// name (health-insurance.ndjson) unless --feed says it.
    #[arg(long, required = true, num_args = 1..)]
    pub input: Vec<PathBuf>,
    /// The feed of every input file.
    #[arg(long)]
    pub feed: Option<String>,
    /// Outcome files (NDJSON, dong-office.outcomes values).
    #[arg(long, num_args = 1..)]
    pub outcomes: Vec<PathBuf>,
    /// Write only these days' lists (YYYY-MM-DD, comma-separated); every
    /// day when absent.
    #[arg(long, value_delimiter = ',')]
    pub dates: Vec<chrono::NaiveDate>,
    /// Write only the final day's lists (after the last input line).
    #[arg(long)]
    pub final_list: bool,
    /// Input time per micro-batch, minutes (a batch also ends at each
    /// daily cut-off, so the lists do not depend on it; alerts of a
    /// household whose signals share a batch are decided together).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(i64).range(1..=525_600))]
    pub batch_minutes: i64,
}

impl ReplayArgs {
    pub fn config(&self, out: PathBuf) -> sagak::drivers::replay::ReplayConfig {
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
pub enum Target {
    /// The signal topics of the configured Kafka cluster.
    Kafka,
    /// NDJSON files, one per feed.
    Ndjson,
}

#[derive(Subcommand)]
pub enum Command {
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
    /// Why a household was or was not alerted, from the pipeline's state
    /// (the newest snapshots): its signals and whether each counted, the
    /// priority and score, the cooldown, a hold and the outcome that set it.
    Explain {
        /// The household.
        #[arg(long)]
        household: String,
        /// As of this time (RFC 3339; default now).
        #[arg(long)]
        at: Option<String>,
    },
    /// A dong's case meeting agenda for a date, from the newest state
    /// snapshots: new candidates, cases to review, cases ready to close,
    /// and the month's figures.
    Agenda {
        /// The dong's 10-digit code.
        #[arg(long)]
        dong: String,
        /// The meeting's date (YYYY-MM-DD).
        #[arg(long)]
        date: String,
        /// Also write the agenda as CSV (Excel) to this file.
        #[arg(long)]
        csv: Option<PathBuf>,
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
pub enum UsersAction {
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
