use super::*;
use crate::stages::decode::Decoder;
use crate::testkit::default_spec;

fn small() -> GeneratorConfig {
    GeneratorConfig {
        households: 3_000,
        days: 160,
        ..GeneratorConfig::default()
    }
}

#[test]
fn the_same_seed_gives_the_same_messages() {
    let a = generate(&small());
    let b = generate(&small());
    assert_eq!(a.messages.len(), b.messages.len());
    assert!(a
        .messages
        .iter()
        .zip(&b.messages)
        .all(|(x, y)| x.payload == y.payload && x.arrival_ms == y.arrival_ms));
    assert_eq!(a.planted, b.planted);
    let c = generate(&GeneratorConfig { seed: 7, ..small() });
    assert_ne!(a.planted, c.planted);
}

#[test]
fn most_households_never_appear_and_a_few_are_in_crisis() {
    let g = generate(&small());
    let mut seen = std::collections::HashSet::new();
    for m in &g.messages {
        seen.insert(m.key.clone());
    }
    assert!(
        seen.len() < 3_000 / 2,
        "{} of 3000 households appear",
        seen.len()
    );
    let share = g.planted.len() as f64 / 3_000.0;
    assert!((0.015..0.05).contains(&share), "planted share {share}");
}

#[test]
fn every_message_decodes_as_the_generator_expects() {
    let spec = default_spec();
    let g = generate(&GeneratorConfig {
        malformed_share: 0.05,
        late_share: 0.03,
        ..small()
    });
    let mut decoder = Decoder::new(&spec);
    let mut counts = std::collections::BTreeMap::new();
    for (i, m) in g.messages.iter().enumerate() {
        let feed = spec.feed_index(m.feed).unwrap() as u16;
        let got = decoder.decode(
            i as u32,
            feed,
            m.key.as_deref(),
            Some(&m.payload),
            m.arrival_ms,
        );
        match m.expect {
            Expect::Valid | Expect::Duplicate => {
                assert!(
                    got.is_ok(),
                    "{:?}: {}",
                    got,
                    String::from_utf8_lossy(&m.payload)
                )
            }
            // lateness depends on the watermark: the window stage decides
            Expect::Reject(RejectClass::LateEvent) => assert!(got.is_ok()),
            Expect::Reject(class) => assert_eq!(got.map_err(|r| r.class), Err(class)),
        }
        *counts.entry(format!("{:?}", m.expect)).or_insert(0) += 1;
    }
    for kind in [
        "Valid",
        "Duplicate",
        "Reject(LateEvent)",
        "Reject(NotJson)",
        "Reject(ResidentRegistrationNumber)",
    ] {
        assert!(
            counts.get(kind).copied().unwrap_or(0) > 0,
            "no {kind} in {counts:?}"
        );
    }
}

#[test]
fn written_straight_to_disk_the_files_hold_the_same_lines() {
    let dir = tempfile::tempdir().unwrap();
    let (streamed, in_memory) = (dir.path().join("streamed"), dir.path().join("in-memory"));
    let generated = generate(&small());
    publish::to_ndjson(&in_memory, &generated.messages).unwrap();
    let (sent, planted) = publish::generate_to_ndjson(&streamed, &small()).unwrap();
    assert_eq!(planted, generated.planted.len());
    assert_eq!(sent.total(), generated.messages.len());
    for entry in std::fs::read_dir(&in_memory).unwrap() {
        let name = entry.unwrap().file_name();
        let lines = |dir: &std::path::Path| {
            let mut l: Vec<String> = std::fs::read_to_string(dir.join(&name))
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect();
            l.sort();
            l
        };
        let (a, b) = (lines(&in_memory), lines(&streamed));
        assert!(!a.is_empty());
        assert_eq!(
            a, b,
            "{name:?}: the same lines, in household order instead of arrival order"
        );
    }
}
