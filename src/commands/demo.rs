//! `sagak demo`: the whole pipeline on a synthetic Dongducheon-si, with no
//! broker; with `--serve`, its pages and metrics too.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sagak::drivers::demo::{DemoConfig, DemoLive, DemoSummary};
use sagak::metrics::Metrics;
use sagak::ops::OpsState;

use super::{shutdown_signal, start_http, Context, Startup};
use crate::cli::SynthArgs;

/// Simulates the city and prints the summary; with `serve`, goes on at
/// wall speed serving the pages until Ctrl-C.
pub async fn demo(
    cx: &Context,
    synth: &SynthArgs,
    out: PathBuf,
    serve: bool,
    without_offices: bool,
) -> anyhow::Result<()> {
    let spec = &cx.spec;
    let ops = Arc::new(OpsState::new(spec, Metrics::new(spec), "demo"));
    let server = match serve {
        true => start_http(&cx.settings, ops.clone()).await?,
        false => None,
    };
    let live = match serve {
        true => Some(serve_pages(cx, &ops, &out).await?),
        false => None,
    };
    let cfg = DemoConfig {
        generator: synth.config(spec),
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
    let summary = sagak::drivers::demo::run_demo_live(spec, &cfg, &ops, live).await?;
    if !serving {
        print!("{}", summary.render());
    }
    drop(server);
    Ok(())
}

/// The pages on the demo's own accounts (beside its outputs: a real users
/// file is never touched), outcomes recorded there fed to the engine.
async fn serve_pages(cx: &Context, ops: &Arc<OpsState>, out: &Path) -> anyhow::Result<DemoLive> {
    let (settings, spec) = (&cx.settings, &cx.spec);
    let (inbox, rx) =
        sagak::embedded::inbox::Inbox::new(spec.outcome_feed(), &settings.topics.outcomes);
    let users_file = out.join("demo-users.json");
    let accounts = sagak::web::users::demo_accounts(&users_file, &spec.dongs)?;
    let lists = sagak::store::open(out)?;
    let mut web_cfg = sagak::web::WebConfig::from_settings(settings, lists);
    web_cfg.users_file = users_file;
    web_cfg.audit_dir = out.join("audit");
    web_cfg.out_dir = out.to_path_buf();
    let web = sagak::web::start(web_cfg, spec, ops.clone(), Arc::new(inbox))
        .await
        .map_err(|e| Startup(e.to_string()))?;
    let addr = web.addr;
    // tokens go to a file only its owner reads, never to the standard
    // output a user may redirect to a shared log
    let tokens_file = out.join("demo-tokens.txt");
    let mut text = String::from(
        "# sagak demo: one access token per account (log in with it; keep this file private)\n",
    );
    for (u, token) in &accounts {
        text.push_str(&format!("{:<11} {:<28} {}\n", u.id, u.name, token));
    }
    sagak::base::files::write_owner_only(&tokens_file, text.as_bytes())
        .map_err(|e| Startup(format!("cannot write {}: {e}", tokens_file.display())))?;
    // its task serves until the process ends
    drop(web);
    Ok(DemoLive {
        outcomes: rx,
        on_summary: Box::new(move |summary: &DemoSummary| {
            print!("{}", summary.render());
            println!("\nthe offices' pages: http://{addr}/ (log in with a token from {}, readable by you only: the city's first, then one per dong)", tokens_file.display());
            println!("the clock goes on at wall speed; Ctrl-C to stop");
        }),
        until: Box::pin(shutdown_signal()),
    })
}
