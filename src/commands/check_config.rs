//! `sagak check-config`: the effective settings and pipeline, or the key
//! that is wrong.

use anyhow::Context as _;
use sagak::config::Settings;

use super::{Context, Startup};

/// Prints the settings (secrets masked) and the pipeline, plans the
/// scoring SQL and asks librdkafka whether it accepts the settings.
pub async fn check_config(cx: &Context) -> anyhow::Result<()> {
    let (settings, spec) = (&cx.settings, &cx.spec);
    let text = toml::to_string_pretty(&redacted(settings)).context("printing the settings")?;
    println!("# effective settings (file + SAGAK__ environment)\n{text}");
    println!(
        "# pipeline `{}` version {} from {}",
        spec.name,
        spec.version,
        settings.pipeline.dir.display()
    );
    for (feed, topic) in spec.feeds.iter().zip(settings.input_topics(spec)) {
        println!(
            "#   feed {:<18} topic {:<28} category {}",
            feed.name, topic, feed.category
        );
    }
    println!(
        "#   outcomes from {}, escalations to {}",
        settings.topics.outcomes, settings.topics.escalations
    );
    sagak::engine::Engine::new(spec)
        .start()
        .await
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
