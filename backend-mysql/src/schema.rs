//! The schema: `etc/sql/emqx_backend_mysql.sql`, embedded, and the check
//! run at start.
//!
//! At start a backend checks that the six tables (the seed's five and the
//! message writers' lock table) exist in its database
//! with the columns, the payload types and the unique indexes its
//! statements need. With `create_tables = true` it first runs
//! [`SCHEMA`] (idempotent: `CREATE TABLE IF NOT EXISTS`), holding a
//! named lock (`GET_LOCK`) so that pools starting together do not race.

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use backend_core::schema::{Catalog, PayloadType, Schema, SchemaTarget, TableSpec};

use crate::error::MysqlError;

/// The schema: the file this crate carries (`sql/emqx_backend_mysql.sql`,
/// the same as `etc/sql/emqx_backend_mysql.sql` in the repository) and
/// what the statements need of its six tables: the seed's five in its
/// order, then the message writers' lock table. Payload columns are
/// `longblob`.
pub const SCHEMA: Schema = Schema {
    text: include_str!("../sql/emqx_backend_mysql.sql"),
    file: "etc/sql/emqx_backend_mysql.sql",
    payload: PayloadType {
        name: "longblob",
        why: "MQTT payloads reach 256 MiB; blob holds 64 KiB",
        fix: "ALTER TABLE {table} MODIFY {col} LONGBLOB",
    },
    tables: &SPECS,
};

/// Name of the lock held while creating the schema.
const SCHEMA_LOCK: &str = "backend_mysql_schema";

const SPECS: [TableSpec; 6] = [
    TableSpec::new(
        "mqtt_client",
        &["clientid", "state", "node", "online_at", "offline_at"],
    )
    .exact(&["clientid"])
    .unique(&[&["clientid"]]),
    TableSpec::new("mqtt_sub", &["clientid", "topic", "qos"])
        .exact(&["clientid", "topic"])
        .unique(&[&["clientid", "topic"]]),
    TableSpec::new(
        "mqtt_msg",
        &[
            "id", "msgid", "sender", "topic", "qos", "retain", "payload", "arrived", "props",
        ],
    )
    .payload(&["payload"])
    .exact(&["msgid", "topic"])
    .unique(&[&["msgid"]]),
    TableSpec::new(
        "mqtt_retain",
        &[
            "topic", "msgid", "sender", "qos", "payload", "arrived", "props",
        ],
    )
    .payload(&["payload"])
    .exact(&["topic"])
    .unique(&[&["topic"]]),
    TableSpec::new("mqtt_acked", &["clientid", "topic", "mid", "created"])
        .exact(&["clientid", "topic"])
        .unique(&[&["clientid", "topic"]]),
    TableSpec::new("mqtt_msg_lock", &["name"]).unique(&[&["name"]]),
];

const COLUMNS: &str = "\
SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS \
WHERE TABLE_SCHEMA = DATABASE() \
AND TABLE_NAME IN ('mqtt_client', 'mqtt_sub', 'mqtt_msg', 'mqtt_retain', 'mqtt_acked', 'mqtt_msg_lock')";

const UNIQUES: &str = "\
SELECT TABLE_NAME, GROUP_CONCAT(COLUMN_NAME ORDER BY COLUMN_NAME SEPARATOR ',') \
FROM information_schema.STATISTICS \
WHERE TABLE_SCHEMA = DATABASE() AND NON_UNIQUE = 0 AND SUB_PART IS NULL \
AND TABLE_NAME IN ('mqtt_client', 'mqtt_sub', 'mqtt_msg', 'mqtt_retain', 'mqtt_acked', 'mqtt_msg_lock') \
GROUP BY TABLE_NAME, INDEX_NAME";

/// Creates the schema if asked, then checks it.
pub(crate) async fn prepare(
    conn: &mut Conn,
    create: bool,
    target: &SchemaTarget,
) -> Result<(), MysqlError> {
    let my = |operation: &'static str| {
        move |source| MysqlError::Mysql {
            operation,
            server: target.label.clone(),
            source,
        }
    };
    if !create {
        // The lock table is the backend's own, not the seed's: create it
        // even when the user manages the schema, so an existing database
        // keeps working after an upgrade.
        if let Some(stmt) = SCHEMA
            .statements()
            .into_iter()
            .find(|s| s.contains("`mqtt_msg_lock`"))
        {
            conn.query_drop(&stmt).await.map_err(my("create_tables"))?;
        }
    }
    if create {
        let got: Option<Option<i64>> = conn
            .exec_first("SELECT GET_LOCK(?, 30)", (SCHEMA_LOCK,))
            .await
            .map_err(my("create_tables"))?;
        if got.flatten() != Some(1) {
            tracing::warn!(
                pool = %target.pool,
                "create_tables: no schema lock within 30 s; creating anyway"
            );
        }
        let mut result = Ok(());
        for stmt in SCHEMA.statements() {
            if let Err(e) = conn.query_drop(&stmt).await {
                result = Err(my("create_tables")(e));
                break;
            }
        }
        let released: Result<Option<Option<i64>>, _> = conn
            .exec_first("SELECT RELEASE_LOCK(?)", (SCHEMA_LOCK,))
            .await;
        result?;
        released.map_err(my("create_tables"))?;
        tracing::debug!(pool = %target.pool, server = %target.label, "schema created or already present");
    }
    let catalog = Catalog {
        columns: conn.exec(COLUMNS, ()).await.map_err(my("schema check"))?,
        uniques: conn.exec(UNIQUES, ()).await.map_err(my("schema check"))?,
    };
    SCHEMA.check(&catalog, target)?;
    for spec in SCHEMA.tables {
        let columns = catalog.columns_of(spec.name);
        for col in spec.exact {
            if let Some((_, ty)) = columns.iter().find(|(c, _)| c == col) {
                if !matches!(
                    *ty,
                    "varbinary" | "binary" | "blob" | "longblob" | "mediumblob"
                ) {
                    tracing::warn!(
                        table = spec.name,
                        column = col,
                        data_type = ty,
                        "not a binary column: comparisons follow its collation (case, trailing \
                         spaces), not the exact bytes; see etc/sql/emqx_backend_mysql.sql"
                    );
                }
            }
        }
    }
    Ok(())
}
