//! Kafka over TLS, as managed Kafka services require: the test broker
//! behind socat's TLS listener (it speaks plain Kafka itself and tells
//! clients the TLS port), with a certificate for 127.0.0.1 signed by a CA
//! this test makes. Events flow when the bus trusts that CA, and nothing
//! connects when it trusts another one.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use subgraph_kit::events::{CloudEvent, EventBus, EventSettings, KafkaSettings, Start, Topic};
use tokio::process::{Child, Command};

use crate::broker::{Broker, free_port};
use crate::harness::wait_until;

/// Runs `openssl args…` in `dir`; panics with its output if it fails.
async fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .await
        .expect("the openssl tool runs");
    assert!(
        output.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A CA called `name` in `dir` (`name.pem`, `name.key`).
async fn make_ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
        ],
    )
    .await;
}

/// `server.pem`/`server.key` for 127.0.0.1, signed by the CA `ca`.
async fn make_server_certificate(dir: &Path, ca: &str) {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    )
    .await;
    std::fs::write(dir.join("san.cnf"), "subjectAltName=IP:127.0.0.1\n").expect("writes");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "san.cnf",
            "-out",
            "server.pem",
        ],
    )
    .await;
}

/// socat terminating TLS on `tls_port` and forwarding to the broker.
fn tls_proxy(dir: &Path, tls_port: u16, broker_port: u16) -> Child {
    let listen = format!(
        "OPENSSL-LISTEN:{tls_port},bind=127.0.0.1,reuseaddr,fork,cert={cert},key={key},verify=0",
        cert = dir.join("server.pem").display(),
        key = dir.join("server.key").display(),
    );
    Command::new("socat")
        .args([listen, format!("TCP:127.0.0.1:{broker_port}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("socat starts")
}

/// The broker's settings, reached over TLS on `tls_port`, trusting `ca`.
fn over_tls(broker: &Broker, tls_port: u16, ca: &Path) -> EventSettings {
    let mut settings: KafkaSettings = broker.settings();
    settings.brokers = format!("127.0.0.1:{tls_port}");
    settings.client_properties.extend([
        ("security.protocol".to_owned(), "ssl".to_owned()),
        ("ssl.ca.location".to_owned(), ca.display().to_string()),
    ]);
    EventSettings {
        kafka: Some(settings),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_flow_over_tls_to_a_broker_whose_certificate_is_verified() {
    let dir = std::env::temp_dir().join(format!("shopgraph-kafka-tls-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    make_ca(&dir, "trusted-ca").await;
    make_ca(&dir, "other-ca").await;
    make_server_certificate(&dir, "trusted-ca").await;

    let tls_port = free_port();
    let broker = Broker::start_advertising(tls_port).await;
    let _proxy = tls_proxy(&dir, tls_port, broker.port);
    wait_until(
        "the TLS listener is up",
        Duration::from_secs(10),
        || async {
            tokio::net::TcpStream::connect(("127.0.0.1", tls_port))
                .await
                .is_ok()
        },
    )
    .await;

    // Trusting the CA that signed the broker's certificate: a round trip.
    let bus = EventBus::connect(
        &over_tls(&broker, tls_port, &dir.join("trusted-ca.pem")),
        "tls-test",
    )
    .await
    .expect("the topics are created over TLS");
    let event = CloudEvent::new("/tests/tls", "test.OverTls", "key-1", &json!({ "n": 1 }))
        .expect("an event");
    bus.publish(Topic::Payment, &event)
        .await
        .expect("published over TLS");
    let mut subscription = bus
        .subscribe(&[Topic::Payment], Start::Group("tls-audit".into()))
        .await
        .expect("subscribed over TLS");
    let delivery = tokio::time::timeout(Duration::from_secs(60), subscription.next())
        .await
        .expect("the event arrives in time")
        .expect("a delivery");
    let received = delivery.event.expect("the event, intact");
    assert_eq!(received.id, event.id);

    // Trusting another CA: the certificate is refused, nothing connects
    // (librdkafka keeps retrying the handshake, so the topics are never
    // created; the trusted bus above got there in a few seconds).
    let refused = tokio::time::timeout(
        Duration::from_secs(15),
        EventBus::connect(
            &over_tls(&broker, tls_port, &dir.join("other-ca.pem")),
            "tls-test",
        ),
    )
    .await;
    assert!(
        !matches!(refused, Ok(Ok(_))),
        "a broker certificate signed by an untrusted CA is refused"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
