//! The schema: `etc/sql/emqx_backend_sqlite.sql`, embedded, and the check
//! run at start: the five tables exist with the columns and unique
//! indexes the statements need. With `create_tables = true` (the default)
//! the file runs first; every statement in it is idempotent.

use backend_core::schema::{Catalog, PayloadType, Schema, SchemaTarget, TableSpec};
use deadpool_sqlite::rusqlite::Connection;

/// The schema: the file this crate carries (`sql/emqx_backend_sqlite.sql`,
/// the same as `etc/sql/emqx_backend_sqlite.sql` in the repository) and
/// what the statements need of the seed's five tables.
pub const SCHEMA: Schema = Schema {
    text: include_str!("../sql/emqx_backend_sqlite.sql"),
    file: "etc/sql/emqx_backend_sqlite.sql",
    payload: PayloadType {
        name: "blob",
        why: "a payload is bytes, not text",
        fix: "recreate {table} with `{col} BLOB` (SQLite cannot change a column's type)",
    },
    tables: &SPECS,
};

const SPECS: [TableSpec; 5] = [
    TableSpec::new(
        "mqtt_client",
        &["clientid", "state", "node", "online_at", "offline_at"],
    )
    .unique(&[&["clientid"]]),
    TableSpec::new("mqtt_sub", &["clientid", "topic", "qos"]).unique(&[&["clientid", "topic"]]),
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

/// Creates the schema if asked, then checks it.
pub(crate) fn prepare(
    conn: &Connection,
    create: bool,
    target: &SchemaTarget,
) -> Result<(), crate::error::SqliteError> {
    let sqlite = |source| crate::error::SqliteError::Sqlite {
        operation: "schema",
        path: target.label.clone(),
        source,
    };
    if create {
        conn.execute_batch(SCHEMA.text).map_err(sqlite)?;
    }
    let catalog = read_catalog(conn).map_err(sqlite)?;
    SCHEMA.check(&catalog, target)?;
    Ok(())
}

/// The five tables' columns and unique indexes, as the check reads them.
fn read_catalog(conn: &Connection) -> deadpool_sqlite::rusqlite::Result<Catalog> {
    let mut catalog = Catalog::default();
    for table in SCHEMA.table_names() {
        let mut columns = conn.prepare("SELECT name, lower(type) FROM pragma_table_info(?1)")?;
        let rows = columns.query_map([table], |r| Ok((r.get::<_, String>(0)?, r.get(1)?)))?;
        for row in rows {
            let (name, ty) = row?;
            catalog.columns.push((table.to_owned(), name, ty));
        }
        let mut indexes = conn.prepare(
            "SELECT l.name, group_concat(i.name, ',') FROM pragma_index_list(?1) l \
             JOIN pragma_index_info(l.name) i WHERE l.\"unique\" = 1 GROUP BY l.name",
        )?;
        let rows = indexes.query_map([table], |r| r.get::<_, String>(1))?;
        for row in rows {
            let mut cols: Vec<String> = row?.split(',').map(str::to_owned).collect();
            cols.sort_unstable();
            catalog.uniques.push((table.to_owned(), cols.join(",")));
        }
    }
    Ok(catalog)
}
