//! `sagak generate`: synthetic signals to Kafka (keyed by household) or to
//! NDJSON files.

use std::path::Path;

use anyhow::Context as _;

use super::Context;
use crate::cli::{SynthArgs, Target};

/// Generates the city's signals and sends or writes them.
pub async fn generate(
    cx: &Context,
    synth: &SynthArgs,
    to: Target,
    rate: Option<u64>,
    out: &Path,
    with_arrival: bool,
) -> anyhow::Result<()> {
    let (settings, spec) = (&cx.settings, &cx.spec);
    let cfg = synth.config(spec);
    let (sent, planted) = match to {
        Target::Ndjson if with_arrival => {
            let generated = sagak::generate::generate(&cfg);
            let sent = sagak::generate::publish::to_ndjson_with_arrival(out, &generated.messages)
                .with_context(|| format!("writing NDJSON under {}", out.display()))?;
            (sent, generated.planted.len())
        }
        // straight to disk: one household in memory at a time
        Target::Ndjson => sagak::generate::publish::generate_to_ndjson(out, &cfg)
            .with_context(|| format!("writing NDJSON under {}", out.display()))?,
        Target::Kafka => {
            let generated = sagak::generate::generate(&cfg);
            let topics = settings.input_topics(spec);
            let topic_of = |feed: &str| {
                spec.feed_index(feed)
                    .map(|i| topics[i].clone())
                    .unwrap_or_else(|| feed.to_string())
            };
            let sent = sagak::generate::publish::to_kafka(
                &settings.kafka,
                &generated.messages,
                topic_of,
                rate,
            )
            .await
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
