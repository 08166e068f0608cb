//! `sagak lists --date D`: one day's lists from the newest state snapshot.

use std::path::PathBuf;

use super::Context;

/// Restores the engine from `engine.state_dir` and writes the day's lists.
pub async fn lists(
    cx: &Context,
    date: chrono::NaiveDate,
    out: Option<PathBuf>,
) -> anyhow::Result<()> {
    let (settings, spec) = (&cx.settings, &cx.spec);
    let storage = settings.storage()?;
    let out = match out {
        Some(folder) => sagak::store::open(&folder)?,
        None => storage.lists,
    };
    let mut engine = super::restored_engine(cx, storage.state)?;
    let lists = sagak::lists::DailyLists::new(spec)?;
    let previous = lists.households_on(&*out, date - chrono::Duration::days(1));
    let (manifest, _) = lists
        .make_day(&mut engine, &*out, lists.cutoff(date), &previous)
        .await?;
    println!(
        "lists for {} written to {}",
        manifest.date,
        manifest.dir.display()
    );
    for l in &manifest.lists {
        println!(
            "  {:<11} {:<22} {:>5} households (P1 {}, P2 {}, P3 {}; new {})",
            l.list, l.name_ko, l.households, l.p1, l.p2, l.p3, l.new
        );
    }
    Ok(())
}
