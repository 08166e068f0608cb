//! `sagak retention [--apply]`: what is past its retention, deleted on
//! demand.

use super::Context;

/// Lists (or deletes) what has expired.
pub fn retention(cx: &Context, apply: bool) -> anyhow::Result<()> {
    let settings = &cx.settings;
    let rules = sagak::retention::RetentionRules::from_settings(settings, &cx.spec)?;
    let now = std::time::SystemTime::now();
    let today = rules.today();
    let listed = if apply {
        rules.apply(today, now)?
    } else {
        rules.expired(today, now)
    };
    for e in &listed {
        let what = if apply { "deleted" } else { "expired" };
        println!("{what}  {}  {}", e.path.display(), e.why);
    }
    let hint = if apply || listed.is_empty() {
        ""
    } else {
        "; run with --apply to delete them"
    };
    println!(
        "{} {} (retention.data {}, retention.audit {}){hint}",
        listed.len(),
        if apply {
            "deleted"
        } else {
            "past their retention"
        },
        settings.retention.data,
        settings.retention.audit,
    );
    Ok(())
}
