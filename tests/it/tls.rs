//! Kafka through TLS, with a test CA the test makes: sagak reads signals
//! and writes alerts through it, and refuses a server certificate that
//! another CA signed.

use std::net::TcpListener;
use std::time::Duration;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sagak_works_through_tls_and_refuses_a_certificate_of_another_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = test_ca(dir.path(), "city");
    let (other_ca, _, _) = test_ca(dir.path(), "other");
    // the broker's plain port is for the terminator only; clients are told
    // the TLS port
    let plain = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let front = TlsFront::start(format!("127.0.0.1:{plain}"), &cert, &key);
    let _broker = TestBroker::advertising(plain, "memory://tansu/", Some(front.port));
    let addr = format!("127.0.0.1:{}", front.port);
    let ca = ca.to_str().unwrap().to_string();
    let tls = [
        ("security.protocol", "SSL"),
        ("ssl.ca.location", ca.as_str()),
    ];

    let s = Scenario::with_properties("tls", &addr, &tls).await;
    let p = Producer::with(&addr, &tls);
    p.crisis(&s, "hh-tls", &days_ago(4)).await;
    let pipeline = s.start();
    let mut alerts = Collector::with(&s.settings.topics.alerts, &addr, &tls);
    alerts
        .wait_for("a P1 alert through TLS", |seen| {
            priorities_of(seen, "hh-tls").contains(&"P1".into())
        })
        .await;
    pipeline.stop().await;

    // trusting another CA, the same broker is refused at the handshake:
    // `sagak run` stops at start-up with a message that says what to check
    let mut settings = s.settings.clone();
    settings.kafka.properties.insert(
        "ssl.ca.location".into(),
        other_ca.to_str().unwrap().to_string(),
    );
    let refused = sagak::drivers::kafka::run(
        &settings,
        &s.spec,
        std::sync::Arc::new(sagak::ops::OpsState::new(
            &s.spec,
            sagak::metrics::Metrics::new(&s.spec),
            "kafka",
        )),
        std::future::pending(),
    );
    let err = tokio::time::timeout(Duration::from_secs(60), refused)
        .await
        .expect("an answer within a minute")
        .expect_err("another CA's certificate is refused");
    assert!(
        matches!(err, sagak::drivers::kafka::RunError::Startup(_)),
        "a failure to start (exit 78): {err}"
    );
    let text = err.to_string();
    println!("refused: {text}");
    assert!(text.contains("certificate verify failed"), "{text}");
    assert!(text.contains("ssl.ca.location"), "{text}");
}
