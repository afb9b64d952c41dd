//! MariaDB/MySQL through `mysql_async`: INSERT a row with a unique key into a
//! table of its own, SELECT it back, DELETE it.

use mysql_async::prelude::Queryable;
use services_smoke::{step, unique_key, MYSQL};

#[tokio::test]
async fn mysql_insert_select_roundtrip() {
    let url = MYSQL.url();
    let mut conn = step(&MYSQL, &url, "connect", async {
        let opts = mysql_async::Opts::from_url(&url)?;
        mysql_async::Conn::new(opts).await
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    step(
        &MYSQL,
        &url,
        "CREATE TABLE",
        conn.query_drop(
            "CREATE TABLE IF NOT EXISTS services_smoke_kv (\
             k VARCHAR(128) NOT NULL PRIMARY KEY, v TEXT NOT NULL) \
             DEFAULT CHARSET = utf8mb4",
        ),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    let key = unique_key("mysql");
    let value = format!("value of {key} ✓");
    step(
        &MYSQL,
        &url,
        "INSERT",
        conn.exec_drop(
            "INSERT INTO services_smoke_kv (k, v) VALUES (?, ?)",
            (&key, &value),
        ),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let got: Option<String> = step(
        &MYSQL,
        &url,
        "SELECT",
        conn.exec_first("SELECT v FROM services_smoke_kv WHERE k = ?", (&key,)),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    step(
        &MYSQL,
        &url,
        "DELETE",
        conn.exec_drop("DELETE FROM services_smoke_kv WHERE k = ?", (&key,)),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    step(&MYSQL, &url, "disconnect", conn.disconnect())
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    assert_eq!(
        got.as_deref(),
        Some(value.as_str()),
        "MariaDB/MySQL SELECT returned another value"
    );
}
