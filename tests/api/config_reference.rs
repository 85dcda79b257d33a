//! The README's configuration reference is the one list of environment
//! variables, and it is kept true by this test: every variable the code
//! reads (as [`Env::names_read`] records it while each service builds its
//! settings) must be in the reference, and every variable in the reference
//! must be read by some service.

use std::collections::BTreeSet;

use shopgraph_core::config::Env;
use shopgraph_core::settings::RunMode;
use shopgraph_core::telemetry::TelemetrySettings;
use shopgraph_router::config::RouterSettings;
use subgraph_kit::events::EventSettings;

/// Environments that reach every optional branch of the settings code
/// (Kafka's variables are read only once `KAFKA_BROKERS` is set).
/// `serve` refuses to start without `JWT_SECRET` (or a JWKS), so every
/// environment sets one.
fn environments() -> Vec<Env> {
    const SECRET: &str = "config-reference-secret-0123456789abcdef";
    // ... and without the hop's keys (`HOP_*`).
    let [signing, trusted] = shopgraph_core::hop::HopKeyPair::of_this_process().env_vars();
    vec![
        Env::from_pairs([("JWT_SECRET", SECRET), signing, trusted]),
        Env::from_pairs([
            ("JWT_SECRET", SECRET),
            ("KAFKA_BROKERS", "127.0.0.1:9092"),
            signing,
            trusted,
        ]),
        // The supergraph from a URL: its own variables are read then.
        Env::from_pairs([
            ("JWT_SECRET", SECRET),
            ("SUPERGRAPH_URL", "https://cdn.example.com/supergraph"),
            signing,
            trusted,
        ]),
    ]
}

/// What every process reads, in both run modes.
fn names_the_code_reads() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for env in environments() {
        for mode in [RunMode::Dev, RunMode::Serve] {
            TelemetrySettings::from_env(&env, mode).expect("telemetry defaults");
            EventSettings::from_env(&env).expect("event defaults");
            product_subgraph::ProductSettings::from_env(&env, mode).expect("product defaults");
            basket_subgraph::BasketSettings::from_env(&env, mode).expect("basket defaults");
            payment_subgraph::PaymentSettings::from_env(&env, mode).expect("payment defaults");
            notification_subgraph::NotificationSettings::from_env(&env, mode)
                .expect("notification defaults");
            RouterSettings::from_env(&env, mode).expect("router defaults");
        }
        names.extend(env.names_read());
    }
    names
}

/// The variable names in the first cell of each row of the README's
/// `## Configuration` tables; `<SUBGRAPH>_X` / `<SERVICE>_X` placeholders
/// become `*_X`, as [`Env::names_read`] writes families, and examples in
/// `(e.g. …)` are not names of their own.
fn names_the_readme_documents() -> BTreeSet<String> {
    let readme = include_str!("../../README.md");
    let section = readme
        .split("\n## Configuration\n")
        .nth(1)
        .expect("the README has a `## Configuration` section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let mut names = BTreeSet::new();
    for row in section.lines().filter(|line| line.starts_with("| `")) {
        let mut first_cell = row.split(" | ").next().unwrap_or_default().to_owned();
        while let Some(start) = first_cell.find("(e.g.") {
            let end = first_cell[start..]
                .find(')')
                .map_or(first_cell.len(), |end| start + end + 1);
            first_cell.replace_range(start..end, "");
        }
        for quoted in first_cell.split('`').skip(1).step_by(2) {
            let name = match quoted.split_once(">_") {
                Some((placeholder, rest)) if placeholder.starts_with('<') => format!("*_{rest}"),
                _ => quoted.to_owned(),
            };
            if name
                .trim_start_matches("*_")
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            {
                names.insert(name);
            }
        }
    }
    names
}

#[test]
fn every_variable_the_code_reads_is_in_the_readme_and_the_other_way_round() {
    let read = names_the_code_reads();
    let documented = names_the_readme_documents();
    assert!(read.len() > 50, "too few variables read: {read:?}");
    let undocumented: Vec<_> = read.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "read by the code but missing from the README's configuration reference: {undocumented:?}"
    );
    let unread: Vec<_> = documented.difference(&read).collect();
    assert!(
        unread.is_empty(),
        "in the README's configuration reference but read by no service: {unread:?}"
    );
}
