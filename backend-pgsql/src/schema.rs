//! The schema: `etc/sql/emqx_backend_pgsql.sql`, embedded, and the check
//! run at start.
//!
//! At start a backend checks that the five tables exist with the columns,
//! the `bytea` payloads and the unique indexes its statements need. With
//! `create_tables = true` it first runs [`SCHEMA`] (idempotent: it
//! creates only what is missing), under an advisory lock so that pools
//! starting together do not race.

use backend_core::schema::{Catalog, PayloadType, Schema, SchemaTarget, TableSpec};
use backend_core::CommonError;

use crate::error::PgsqlError;

/// The schema: the file this crate carries (`sql/emqx_backend_pgsql.sql`,
/// the same as `etc/sql/emqx_backend_pgsql.sql` in the repository) and
/// what the statements need of its five tables, in the seed's order.
/// Payload columns are `bytea`.
pub const SCHEMA: Schema = Schema {
    text: include_str!("../sql/emqx_backend_pgsql.sql"),
    file: "etc/sql/emqx_backend_pgsql.sql",
    payload: PayloadType {
        name: "bytea",
        why: "MQTT payloads are binary",
        fix: "ALTER TABLE {table} ALTER COLUMN {col} TYPE bytea USING convert_to({col}, 'UTF8')",
    },
    tables: &SPECS,
};

/// Key of the advisory lock held while creating the schema.
const SCHEMA_LOCK: i64 = 0x6d71_7474_7067; // "mqttpg"

const SPECS: [TableSpec; 5] = [
    TableSpec::new(
        "mqtt_client",
        &[
            "clientid",
            "state",
            "node",
            "online_at",
            "offline_at",
            "created",
        ],
    )
    .unique(&[&["clientid"]]),
    TableSpec::new("mqtt_sub", &["clientid", "topic", "qos", "created"])
        .unique(&[&["clientid", "topic"]]),
    TableSpec::new(
        "mqtt_msg",
        &[
            "id", "msgid", "sender", "topic", "qos", "retain", "payload", "arrived", "props",
        ],
    )
    .payload(&["payload"])
    .unique(&[&["msgid"]]),
    TableSpec::new(
        "mqtt_retain",
        &[
            "topic", "msgid", "sender", "qos", "payload", "arrived", "props",
        ],
    )
    .payload(&["payload"])
    .unique(&[&["topic"]]),
    TableSpec::new("mqtt_acked", &["clientid", "topic", "mid", "created"])
        .unique(&[&["clientid", "topic"]]),
];

/// One query describing every table as the backend's unqualified
/// statements see it (through the search path): its columns with their
/// types, and its unique indexes as sorted column lists; a table that does
/// not exist has no columns.
const DESCRIBE: &str = r#"
SELECT t.name,
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
         SELECT pg_advisory_xact_lock({SCHEMA_LOCK}); {}",
        SCHEMA.text
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
    let rows = client
        .query(DESCRIBE, &[&SCHEMA.table_names()])
        .await
        .map_err(pg)?;
    let mut catalog = Catalog::default();
    for row in &rows {
        let table: String = row.try_get(0).map_err(pg)?;
        let columns: Vec<String> = row.try_get(1).map_err(pg)?;
        let uniques: Vec<Option<String>> = row.try_get(2).map_err(pg)?;
        for (column, ty) in columns.iter().filter_map(|c| c.split_once(':')) {
            catalog
                .columns
                .push((table.clone(), column.to_owned(), ty.to_owned()));
        }
        for unique in uniques.into_iter().flatten() {
            catalog.uniques.push((table.clone(), unique));
        }
    }
    Ok(SCHEMA.check(&catalog, target)?)
}
