//! The schema: `etc/emqx_backend_cassa.cql`, embedded, and the check run
//! at start. With `create_tables = true` the missing tables are created
//! first (`CREATE TABLE IF NOT EXISTS`); the keyspace must exist.

use backend_core::schema::{check_table, PayloadType, SchemaTarget, TableSpec};
use backend_core::{BackendKind, CommonError};
use cdrs_tokio::types::IntoRustByIndex;

use crate::driver::{Cql, CqlValue};
use crate::error::CassaError;

/// The schema file (`cql/emqx_backend_cassa.cql` in this crate, the same as
/// `etc/emqx_backend_cassa.cql` in the repository).
pub const SCHEMA_CQL: &str = include_str!("../cql/emqx_backend_cassa.cql");

/// Where users find the schema to load by hand.
pub const SCHEMA_FILE: &str = "etc/emqx_backend_cassa.cql";

/// Payload columns are `blob`.
const PAYLOAD: PayloadType = PayloadType {
    name: "blob",
    why: "MQTT payloads are bytes; text refuses what is not UTF-8",
    fix: "recreate {table} from etc/emqx_backend_cassa.cql (CQL cannot change {col}'s type)",
};

/// The tables: the seed's five, then the backend's own.
pub const TABLES: [&str; 9] = [
    "client",
    "sub",
    "msg",
    "retain",
    "acked",
    "msg_seq",
    "msg_topic",
    "retain_topic",
    "sub_start",
];

const fn spec(
    name: &'static str,
    columns: &'static [&'static str],
    payload: &'static [&'static str],
) -> TableSpec {
    TableSpec {
        name,
        columns,
        payload,
        exact: &[],
        // CQL has no unique indexes: the primary keys below are the
        // upsert targets, checked as columns.
        unique: &[],
    }
}

const SPECS: [TableSpec; 9] = [
    spec(
        "client",
        &["client_id", "node", "state", "connected", "disconnected"],
        &[],
    ),
    spec("sub", &["client_id", "topic", "qos"], &[]),
    spec(
        "msg",
        &[
            "topic", "seq", "msgid", "sender", "username", "qos", "retain", "payload", "arrived",
        ],
        &["payload"],
    ),
    spec(
        "retain",
        &[
            "topic", "msgid", "sender", "username", "qos", "payload", "arrived",
        ],
        &["payload"],
    ),
    spec("acked", &["client_id", "topic", "msgid", "seq"], &[]),
    spec("msg_seq", &["topic", "msgid", "seq"], &[]),
    spec("msg_topic", &["root", "topic"], &[]),
    spec("retain_topic", &["root", "topic"], &[]),
    spec("sub_start", &["client_id", "filter", "seq"], &[]),
];

/// The statements of [`SCHEMA_CQL`], without comments.
pub fn schema_statements() -> Vec<String> {
    let code: String = SCHEMA_CQL
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .map(|l| format!("{l}\n"))
        .collect();
    code.split(';')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

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
    for statement in schema_statements() {
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
    let mut columns: Vec<(String, String, String)> = Vec::with_capacity(rows.len());
    for row in rows {
        let text = |i: usize| -> Result<String, CassaError> {
            IntoRustByIndex::<String>::get_by_index(&row, i)
                .ok()
                .flatten()
                .ok_or_else(|| {
                    CommonError::data("system_schema.columns", "an unreadable row").into()
                })
        };
        columns.push((text(0)?, text(1)?, text(2)?));
    }
    for spec in &SPECS {
        let cols: Vec<(&str, &str)> = columns
            .iter()
            .filter(|(t, _, _)| t == spec.name)
            .map(|(_, c, ty)| (c.as_str(), ty.as_str()))
            .collect();
        if cols.is_empty() {
            return Err(target.missing(spec.name).into());
        }
        check_table(spec, &cols, &[], &PAYLOAD).map_err(|p| target.wrong(spec.name, p))?;
    }
    Ok(())
}

/// The target of the check, for its errors.
pub(crate) fn target(pool: &str, nodes: &str, keyspace: &str, label: &str) -> SchemaTarget {
    SchemaTarget {
        kind: BackendKind::Cassa,
        pool: pool.to_owned(),
        host_port: nodes.to_owned(),
        database: keyspace.to_owned(),
        label: label.to_owned(),
        schema_file: SCHEMA_FILE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_creates_every_table() {
        let stmts = schema_statements();
        assert_eq!(stmts.len(), TABLES.len());
        for t in TABLES {
            let head = format!("CREATE TABLE IF NOT EXISTS {t} (");
            assert!(stmts.iter().any(|s| s.starts_with(&head)), "{t}");
        }
        for (t, spec) in TABLES.iter().zip(&SPECS) {
            assert_eq!(*t, spec.name);
        }
    }

    #[test]
    fn the_seeds_text_payload_is_reported() {
        let seed_msg = [
            ("topic", "text"),
            ("seq", "bigint"),
            ("msgid", "text"),
            ("sender", "text"),
            ("username", "text"),
            ("qos", "int"),
            ("retain", "int"),
            ("payload", "text"),
            ("arrived", "timestamp"),
        ];
        let e = check_table(&SPECS[2], &seed_msg, &[], &PAYLOAD).expect_err("text payload");
        assert!(e.contains("`payload` of type text, not blob"), "{e}");
        let e = check_table(&SPECS[2], &seed_msg[..3], &[], &PAYLOAD).expect_err("columns");
        assert!(e.contains("lacks the column(s) sender"), "{e}");
    }

    #[test]
    fn etc_holds_the_same_schema() {
        backend_core::testkit::assert_same_schema(
            env!("CARGO_MANIFEST_DIR"),
            "../etc/emqx_backend_cassa.cql",
            SCHEMA_CQL,
        );
    }
}
