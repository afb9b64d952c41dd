//! Cassandra through `cdrs-tokio`, with password authentication: INSERT a row
//! with a unique key into a table of its own in keyspace `mqtt`, SELECT it
//! back, DELETE it.

use std::sync::Arc;

use cdrs_tokio::authenticators::StaticPasswordAuthenticatorProvider;
use cdrs_tokio::cluster::session::{SessionBuilder, TcpSessionBuilder};
use cdrs_tokio::cluster::NodeTcpConfigBuilder;
use cdrs_tokio::load_balancing::RoundRobinLoadBalancingStrategy;
use cdrs_tokio::query_values;
use cdrs_tokio::types::IntoRustByName;
use services_smoke::{cassandra_password, cassandra_user, step, unique_key, CASSANDRA};

#[tokio::test]
async fn cassandra_insert_select_roundtrip() {
    let nodes = CASSANDRA.url();
    let user = cassandra_user();
    let password = cassandra_password();
    // cdrs-tokio's session build retries a refused connection or login
    // forever without reporting it, so first tell "unreachable" apart.
    for node in nodes.split(',').map(str::trim) {
        step(
            &CASSANDRA,
            &nodes,
            &format!("TCP connect to {node}"),
            tokio::net::TcpStream::connect(node),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    }
    let session = step(&CASSANDRA, &nodes, "session build (login)", async {
        let auth = StaticPasswordAuthenticatorProvider::new(&user, &password);
        let config = NodeTcpConfigBuilder::new()
            .with_contact_points(
                nodes
                    .split(',')
                    .map(|n| n.trim().to_owned().into())
                    .collect(),
            )
            .with_authenticator_provider(Arc::new(auth))
            .build()
            .await
            .map_err(|e| e.to_string())?;
        TcpSessionBuilder::new(RoundRobinLoadBalancingStrategy::new(), config)
            .build()
            .await
            .map_err(|e| e.to_string())
    })
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e} (the port answers, so check the credentials: CASSA_USER={user}, \
             password from CASSA_PASSWORD)"
        )
    });

    for (what, cql) in [
        (
            "CREATE KEYSPACE",
            "CREATE KEYSPACE IF NOT EXISTS mqtt WITH replication = \
             {'class': 'SimpleStrategy', 'replication_factor': 1}",
        ),
        (
            "CREATE TABLE",
            "CREATE TABLE IF NOT EXISTS mqtt.services_smoke_kv (k text PRIMARY KEY, v text)",
        ),
    ] {
        step(&CASSANDRA, &nodes, what, session.query(cql))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }

    let key = unique_key("cassa");
    let value = format!("value of {key} ✓");
    step(
        &CASSANDRA,
        &nodes,
        "INSERT",
        session.query_with_values(
            "INSERT INTO mqtt.services_smoke_kv (k, v) VALUES (?, ?)",
            query_values!(key.clone(), value.clone()),
        ),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let envelope = step(
        &CASSANDRA,
        &nodes,
        "SELECT",
        session.query_with_values(
            "SELECT v FROM mqtt.services_smoke_kv WHERE k = ?",
            query_values!(key.clone()),
        ),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let rows = envelope
        .response_body()
        .unwrap_or_else(|e| panic!("{}: reading the SELECT result: {e}", CASSANDRA.name))
        .into_rows()
        .unwrap_or_else(|| panic!("{}: SELECT returned no rows result", CASSANDRA.name));
    let got: Vec<String> = rows
        .iter()
        .map(|row| {
            let v: String = row
                .get_r_by_name("v")
                .unwrap_or_else(|e| panic!("{}: column v: {e}", CASSANDRA.name));
            v
        })
        .collect();
    step(
        &CASSANDRA,
        &nodes,
        "DELETE",
        session.query_with_values(
            "DELETE FROM mqtt.services_smoke_kv WHERE k = ?",
            query_values!(key.clone()),
        ),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    assert_eq!(got, vec![value], "Cassandra SELECT returned other rows");
}
