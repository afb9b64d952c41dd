//! The schema: `etc/sql/emqx_backend_pgsql.sql`, embedded, and the check
//! run at start.
//!
//! At start a backend checks that the five tables exist with the columns,
//! the `bytea` payloads and the unique indexes its statements need. With
//! `create_tables = true` it first runs [`SCHEMA_SQL`] (idempotent: it
//! creates only what is missing), under an advisory lock so that pools
//! starting together do not race.

use backend_core::schema::{check_table, PayloadType, SchemaTarget, TableSpec};
use backend_core::CommonError;

use crate::error::PgsqlError;

/// The schema file (`sql/emqx_backend_pgsql.sql` in this crate, the same as
/// `etc/sql/emqx_backend_pgsql.sql` in the repository).
pub const SCHEMA_SQL: &str = include_str!("../sql/emqx_backend_pgsql.sql");

/// Where users find the schema to load by hand.
pub const SCHEMA_FILE: &str = "etc/sql/emqx_backend_pgsql.sql";

/// Payload columns are `bytea`.
const PAYLOAD: PayloadType = PayloadType {
    name: "bytea",
    why: "MQTT payloads are binary",
    fix: "ALTER TABLE {table} ALTER COLUMN {col} TYPE bytea USING convert_to({col}, 'UTF8')",
};

/// The tables, in the seed's order.
pub const TABLES: [&str; 5] = [
    "mqtt_client",
    "mqtt_sub",
    "mqtt_msg",
    "mqtt_retain",
    "mqtt_acked",
];

/// Key of the advisory lock held while creating the schema.
const SCHEMA_LOCK: i64 = 0x6d71_7474_7067; // "mqttpg"

const SPECS: [TableSpec; 5] = [
    TableSpec {
        name: "mqtt_client",
        columns: &[
            "clientid",
            "state",
            "node",
            "online_at",
            "offline_at",
            "created",
        ],
        payload: &[],
        exact: &[],
        unique: &[&["clientid"]],
    },
    TableSpec {
        name: "mqtt_sub",
        columns: &["clientid", "topic", "qos", "created"],
        payload: &[],
        exact: &[],
        unique: &[&["clientid", "topic"]],
    },
    TableSpec {
        name: "mqtt_msg",
        columns: &[
            "id", "msgid", "sender", "topic", "qos", "retain", "payload", "arrived",
        ],
        payload: &["payload"],
        exact: &[],
        unique: &[&["msgid"]],
    },
    TableSpec {
        name: "mqtt_retain",
        columns: &["topic", "msgid", "sender", "qos", "payload", "arrived"],
        payload: &["payload"],
        exact: &[],
        unique: &[&["topic"]],
    },
    TableSpec {
        name: "mqtt_acked",
        columns: &["clientid", "topic", "mid", "created"],
        payload: &[],
        exact: &[],
        unique: &[&["clientid", "topic"]],
    },
];

/// One query describing every table: whether it exists (in the search
/// path, as the backend's unqualified statements see it), its columns with
/// their types, and its unique indexes as sorted column lists.
const DESCRIBE: &str = r#"
SELECT t.name,
       c.oid IS NOT NULL,
       ARRAY(SELECT a.attname::text || ':' || format_type(a.atttypid, NULL)
               FROM pg_attribute a
              WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
       ARRAY(SELECT (SELECT string_agg(a.attname::text, ',' ORDER BY a.attname::text)
                       FROM pg_attribute a
                      WHERE a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey))
               FROM pg_index i
              WHERE i.indrelid = c.oid AND i.indisunique
                AND i.indpred IS NULL AND i.indexprs IS NULL)
  FROM unnest($1::text[]) AS t(name)
  LEFT JOIN pg_class c ON c.oid = to_regclass(t.name)
"#;

/// Creates the schema if asked, then checks it.
pub(crate) async fn prepare(
    client: &tokio_postgres::Client,
    create: bool,
    target: &SchemaTarget,
) -> Result<(), PgsqlError> {
    // A complete schema is left alone: no DDL, no table locks at start.
    let first = check(client, target).await;
    match first {
        Ok(()) => return Ok(()),
        Err(PgsqlError::Common(CommonError::MissingTable { .. } | CommonError::Schema { .. }))
            if create => {}
        Err(e) => return Err(e),
    }
    // One simple-query message: one implicit transaction, so the advisory
    // lock is held until every statement has run.
    let batch = format!(
        "SET LOCAL client_min_messages = warning; \
         SELECT pg_advisory_xact_lock({SCHEMA_LOCK}); {SCHEMA_SQL}"
    );
    client
        .batch_execute(&batch)
        .await
        .map_err(|source| PgsqlError::Postgres {
            operation: "create_tables",
            server: target.label.clone(),
            source,
        })?;
    tracing::info!(pool = %target.pool, server = %target.label, "created the missing tables and indexes");
    check(client, target).await
}

/// Checks the five tables; the first problem found is the error.
async fn check(client: &tokio_postgres::Client, target: &SchemaTarget) -> Result<(), PgsqlError> {
    let pg = |source| PgsqlError::Postgres {
        operation: "schema check",
        server: target.label.clone(),
        source,
    };
    let names: Vec<&str> = TABLES.to_vec();
    let rows = client.query(DESCRIBE, &[&names]).await.map_err(pg)?;
    for spec in &SPECS {
        let row = rows
            .iter()
            .find(|r| r.try_get::<_, &str>(0).ok() == Some(spec.name));
        let Some(row) = row else {
            continue;
        };
        let exists: bool = row.try_get(1).map_err(pg)?;
        if !exists {
            return Err(target.missing(spec.name).into());
        }
        let columns: Vec<String> = row.try_get(2).map_err(pg)?;
        let uniques: Vec<Option<String>> = row.try_get(3).map_err(pg)?;
        let columns: Vec<(&str, &str)> = columns.iter().filter_map(|c| c.split_once(':')).collect();
        let uniques: Vec<&str> = uniques.iter().flatten().map(String::as_str).collect();
        check_table(spec, &columns, &uniques, &PAYLOAD)
            .map_err(|problem| target.wrong(spec.name, problem))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_creates_every_table() {
        for t in TABLES {
            assert!(
                SCHEMA_SQL.contains(&format!("CREATE TABLE IF NOT EXISTS {t} (")),
                "{t}"
            );
        }
        assert!(!SCHEMA_SQL.contains("CREATE TABLE mqtt"), "all idempotent");
    }

    #[test]
    fn seed_tables_are_reported() {
        let seed_msg = [
            ("id", "integer"),
            ("msgid", "character varying"),
            ("sender", "character varying"),
            ("topic", "character varying"),
            ("qos", "integer"),
            ("retain", "integer"),
            ("payload", "text"),
            ("arrived", "timestamp without time zone"),
        ];
        let e = check_table(&SPECS[2], &seed_msg, &["id"], &PAYLOAD).expect_err("text payload");
        assert!(e.contains("`payload` of type text, not bytea"), "{e}");
        assert!(e.contains("USING convert_to(payload, 'UTF8')"), "{e}");
    }
}

#[cfg(test)]
mod copy_tests {
    /// The crate carries its schema (so it packages on its own); `etc/sql/`
    /// has the same file for users loading it by hand.
    #[test]
    fn etc_holds_the_same_schema() {
        backend_core::testkit::assert_same_schema(
            env!("CARGO_MANIFEST_DIR"),
            "../etc/sql/emqx_backend_pgsql.sql",
            super::SCHEMA_SQL,
        );
    }
}
