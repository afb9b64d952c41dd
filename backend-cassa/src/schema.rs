//! The schema: `etc/emqx_backend_cassa.cql`, embedded, and the check run
//! at start. With `create_tables = true` the missing tables are created
//! first (`CREATE TABLE IF NOT EXISTS`); the keyspace must exist.

use backend_core::schema::{Catalog, PayloadType, Schema, SchemaTarget, TableSpec};
use backend_core::CommonError;
use cdrs_tokio::types::IntoRustByIndex;

use crate::driver::{Cql, CqlValue};
use crate::error::CassaError;

/// The schema: the file this crate carries (`cql/emqx_backend_cassa.cql`,
/// the same as `etc/emqx_backend_cassa.cql` in the repository) and what
/// the statements need of its tables: the seed's five, then the backend's
/// own. Payload columns are `blob`.
pub const SCHEMA: Schema = Schema {
    text: include_str!("../cql/emqx_backend_cassa.cql"),
    file: "etc/emqx_backend_cassa.cql",
    payload: PayloadType {
        name: "blob",
        why: "MQTT payloads are bytes; text refuses what is not UTF-8",
        fix: "recreate {table} from etc/emqx_backend_cassa.cql (CQL cannot change {col}'s type)",
    },
    tables: &SPECS,
};

// CQL has no unique indexes: the primary keys are the upsert targets,
// checked as columns.
const SPECS: [TableSpec; 9] = [
    TableSpec::new(
        "client",
        &["client_id", "node", "state", "connected", "disconnected"],
    ),
    TableSpec::new("sub", &["client_id", "topic", "qos"]),
    TableSpec::new(
        "msg",
        &[
            "topic", "seq", "msgid", "sender", "username", "qos", "retain", "payload", "arrived",
            "props",
        ],
    )
    .payload(&["payload"]),
    TableSpec::new(
        "retain",
        &[
            "topic", "msgid", "sender", "username", "qos", "payload", "arrived", "props",
        ],
    )
    .payload(&["payload"]),
    TableSpec::new("acked", &["client_id", "topic", "msgid", "seq"]),
    TableSpec::new("msg_seq", &["topic", "msgid", "seq"]),
    TableSpec::new("msg_topic", &["root", "topic"]),
    TableSpec::new("retain_topic", &["root", "topic"]),
    TableSpec::new("sub_start", &["client_id", "filter", "seq"]),
];

const COLUMNS: &str =
    "SELECT table_name, column_name, type FROM system_schema.columns WHERE keyspace_name = ?";

/// Creates the missing tables if asked, then checks every table.
pub(crate) async fn prepare(
    cql: &Cql,
    keyspace: &str,
    create: bool,
    target: &SchemaTarget,
) -> Result<(), CassaError> {
    let first = check(cql, keyspace, target).await;
    match first {
        Ok(()) => return Ok(()),
        Err(CassaError::Common(CommonError::MissingTable { .. })) if create => {}
        Err(e) => return Err(e),
    }
    for statement in SCHEMA.statements() {
        cql.ddl("create_tables", &statement).await?;
    }
    tracing::info!(pool = %target.pool, server = cql.label(), "created the missing tables");
    // On a cluster the new tables reach the other nodes by gossip: wait
    // until the nodes agree on the schema and the check (which any node
    // may answer) sees every table, within the connect timeout.
    let deadline = tokio::time::Instant::now() + cql.connect_timeout();
    loop {
        let agreed = schema_agreed(cql).await.unwrap_or(false);
        match check(cql, keyspace, target).await {
            Ok(()) if agreed => return Ok(()),
            Ok(()) | Err(CassaError::Common(CommonError::MissingTable { .. }))
                if tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            other => return other,
        }
    }
}

/// Whether the node answering sees every node on its own schema version.
async fn schema_agreed(cql: &Cql) -> Result<bool, CassaError> {
    let (_, local) = cql
        .exec(
            "schema agreement",
            "SELECT CAST(schema_version AS text) FROM system.local",
            vec![],
        )
        .await?;
    let (_, peers) = cql
        .exec(
            "schema agreement",
            "SELECT CAST(schema_version AS text) FROM system.peers_v2",
            vec![],
        )
        .await?;
    let version = |row: &crate::driver::CqlRow| -> Option<String> {
        IntoRustByIndex::get_by_index(row, 0).ok().flatten()
    };
    let Some(mine) = local.first().and_then(version) else {
        return Ok(false);
    };
    Ok(peers.iter().all(|p| version(p).as_ref() == Some(&mine)))
}

async fn check(cql: &Cql, keyspace: &str, target: &SchemaTarget) -> Result<(), CassaError> {
    let (_, rows) = cql
        .exec(
            "schema check",
            COLUMNS,
            vec![CqlValue::from(keyspace.to_owned())],
        )
        .await?;
    let mut catalog = Catalog::default();
    for row in rows {
        let text = |i: usize| -> Result<String, CassaError> {
            IntoRustByIndex::<String>::get_by_index(&row, i)
                .ok()
                .flatten()
                .ok_or_else(|| {
                    CommonError::data("system_schema.columns", "an unreadable row").into()
                })
        };
        catalog.columns.push((text(0)?, text(1)?, text(2)?));
    }
    Ok(SCHEMA.check(&catalog, target)?)
}

/// The target of the check, for its errors.
pub(crate) fn target(pool: &str, nodes: &str, keyspace: &str, label: &str) -> SchemaTarget {
    SchemaTarget {
        kind: crate::KIND,
        pool: pool.to_owned(),
        host_port: nodes.to_owned(),
        database: keyspace.to_owned(),
        label: label.to_owned(),
        schema_file: SCHEMA.file,
    }
}
