//! The schema: `etc/sql/emqx_backend_pgsql.sql`, embedded, and the check
//! run at start.
//!
//! At start a backend checks that the five tables exist with the columns,
//! the `bytea` payloads and the unique indexes its statements need. With
//! `create_tables = true` it first runs [`SCHEMA_SQL`] (idempotent: it
//! creates only what is missing), under an advisory lock so that pools
//! starting together do not race.

use crate::error::PgsqlError;

/// The schema file (`sql/emqx_backend_pgsql.sql` in this crate, the same as
/// `etc/sql/emqx_backend_pgsql.sql` in the repository).
pub const SCHEMA_SQL: &str = include_str!("../sql/emqx_backend_pgsql.sql");

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

struct TableSpec {
    name: &'static str,
    /// Columns the built-in statements use.
    columns: &'static [&'static str],
    /// Columns that must be `bytea`.
    bytea: &'static [&'static str],
    /// Column sets that need a unique index (`ON CONFLICT` targets).
    unique: &'static [&'static [&'static str]],
}

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
        bytea: &[],
        unique: &[&["clientid"]],
    },
    TableSpec {
        name: "mqtt_sub",
        columns: &["clientid", "topic", "qos", "created"],
        bytea: &[],
        unique: &[&["clientid", "topic"]],
    },
    TableSpec {
        name: "mqtt_msg",
        columns: &[
            "id", "msgid", "sender", "topic", "qos", "retain", "payload", "arrived",
        ],
        bytea: &["payload"],
        unique: &[&["msgid"]],
    },
    TableSpec {
        name: "mqtt_retain",
        columns: &["topic", "msgid", "sender", "qos", "payload", "arrived"],
        bytea: &["payload"],
        unique: &[&["topic"]],
    },
    TableSpec {
        name: "mqtt_acked",
        columns: &["clientid", "topic", "mid", "created"],
        bytea: &[],
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

/// Where the check runs, for its errors.
pub(crate) struct Target<'a> {
    pub pool: &'a str,
    pub host_port: String,
    pub database: &'a str,
    pub label: String,
}

/// Creates the schema if asked, then checks it.
pub(crate) async fn prepare(
    client: &tokio_postgres::Client,
    create: bool,
    target: &Target<'_>,
) -> Result<(), PgsqlError> {
    // A complete schema is left alone: no DDL, no table locks at start.
    let first = check(client, target).await;
    match first {
        Ok(()) => return Ok(()),
        Err(PgsqlError::MissingTable { .. } | PgsqlError::Schema { .. }) if create => {}
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
    tracing::info!(pool = target.pool, server = %target.label, "created the missing tables and indexes");
    check(client, target).await
}

/// Checks the five tables; the first problem found is the error.
async fn check(client: &tokio_postgres::Client, target: &Target<'_>) -> Result<(), PgsqlError> {
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
            return Err(PgsqlError::MissingTable {
                pool: target.pool.to_owned(),
                server: target.host_port.clone(),
                database: target.database.to_owned(),
                table: spec.name,
            });
        }
        let columns: Vec<String> = row.try_get(2).map_err(pg)?;
        let uniques: Vec<Option<String>> = row.try_get(3).map_err(pg)?;
        check_table(spec, &columns, &uniques).map_err(|problem| PgsqlError::Schema {
            server: target.label.clone(),
            table: spec.name,
            problem,
        })?;
    }
    Ok(())
}

fn check_table(
    spec: &TableSpec,
    columns: &[String],
    uniques: &[Option<String>],
) -> Result<(), String> {
    let type_of = |name: &str| {
        columns.iter().find_map(|c| {
            c.split_once(':')
                .filter(|(n, _)| *n == name)
                .map(|(_, t)| t)
        })
    };
    let missing: Vec<&str> = spec
        .columns
        .iter()
        .copied()
        .filter(|c| type_of(c).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(format!("lacks the column(s) {}", missing.join(", ")));
    }
    for col in spec.bytea {
        if let Some(t) = type_of(col).filter(|t| *t != "bytea") {
            return Err(format!(
                "has `{col}` of type {t}, not bytea (MQTT payloads are binary): \
                 ALTER TABLE {table} ALTER COLUMN {col} TYPE bytea USING convert_to({col}, 'UTF8')",
                table = spec.name
            ));
        }
    }
    for set in spec.unique {
        let mut want: Vec<&str> = set.to_vec();
        want.sort_unstable();
        let want = want.join(",");
        if !uniques.iter().flatten().any(|u| *u == want) {
            return Err(format!(
                "has no unique index on ({}), which its upserts need",
                set.join(", ")
            ));
        }
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
        let seed_msg: Vec<String> = [
            "id:integer",
            "msgid:character varying",
            "sender:character varying",
            "topic:character varying",
            "qos:integer",
            "retain:integer",
            "payload:text",
            "arrived:timestamp without time zone",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let e = check_table(&SPECS[2], &seed_msg, &[Some("id".into())]).expect_err("text payload");
        assert!(e.contains("`payload` of type text, not bytea"), "{e}");
        let mut fixed = seed_msg.clone();
        fixed[6] = "payload:bytea".into();
        let e = check_table(&SPECS[2], &fixed, &[Some("id".into())]).expect_err("no unique msgid");
        assert!(e.contains("no unique index on (msgid)"), "{e}");
        check_table(
            &SPECS[2],
            &fixed,
            &[Some("id".into()), Some("msgid".into())],
        )
        .expect("ok");
        let e = check_table(&SPECS[2], &fixed[..3], &[]).expect_err("columns");
        assert!(e.contains("lacks the column(s) topic, qos"), "{e}");
    }
}

#[cfg(test)]
mod copy_tests {
    /// The crate carries its schema (so it packages on its own); `etc/sql/`
    /// has the same file for users loading it by hand. They must not drift.
    #[test]
    fn etc_holds_the_same_schema() {
        let etc = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../etc/sql/emqx_backend_pgsql.sql"
        );
        let etc = std::fs::read_to_string(etc).expect("etc/sql/emqx_backend_pgsql.sql");
        assert_eq!(
            etc,
            super::SCHEMA_SQL,
            "backend-pgsql/sql/ and etc/sql/ differ: copy one onto the other"
        );
    }
}
