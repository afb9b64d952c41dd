//! PostgreSQL through `tokio-postgres`: INSERT a row with a unique key into a
//! table of its own, SELECT it back, DELETE it.

use services_smoke::{step, unique_key, PGSQL};

#[tokio::test]
async fn postgres_insert_select_roundtrip() {
    let url = PGSQL.url();
    let (client, connection) = step(
        &PGSQL,
        &url,
        "connect",
        tokio_postgres::connect(&url, tokio_postgres::NoTls),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let driver = tokio::spawn(connection);

    step(
        &PGSQL,
        &url,
        "CREATE TABLE",
        client.batch_execute(
            "CREATE TABLE IF NOT EXISTS services_smoke_kv (k TEXT PRIMARY KEY, v TEXT NOT NULL)",
        ),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    let key = unique_key("pgsql");
    let value = format!("value of {key} ✓");
    step(
        &PGSQL,
        &url,
        "INSERT",
        client.execute(
            "INSERT INTO services_smoke_kv (k, v) VALUES ($1, $2)",
            &[&key, &value],
        ),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let row = step(
        &PGSQL,
        &url,
        "SELECT",
        client.query_opt("SELECT v FROM services_smoke_kv WHERE k = $1", &[&key]),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let got: Option<String> = row.map(|r| r.get(0));
    step(
        &PGSQL,
        &url,
        "DELETE",
        client.execute("DELETE FROM services_smoke_kv WHERE k = $1", &[&key]),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    drop(client);
    driver
        .await
        .expect("the PostgreSQL connection task panicked")
        .unwrap_or_else(|e| panic!("PostgreSQL connection failed ({}): {e}", PGSQL.var));

    assert_eq!(
        got.as_deref(),
        Some(value.as_str()),
        "PostgreSQL SELECT returned another value"
    );
}
