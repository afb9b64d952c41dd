//! The schema check the SQL backends run at start, written once: each
//! backend describes its tables as [`TableSpec`]s, reads the columns and
//! unique indexes from its catalog, and [`check_table`] says what is wrong
//! in words a user can act on.

use crate::config::{BackendKind, DbSettings};
use crate::error::CommonError;

/// What a built-in table must have for the backend's statements.
#[derive(Debug, Clone, Copy)]
pub struct TableSpec {
    /// The table.
    pub name: &'static str,
    /// Columns the built-in statements use.
    pub columns: &'static [&'static str],
    /// Columns that hold MQTT payloads, which must be of the backend's
    /// [`PayloadType`].
    pub payload: &'static [&'static str],
    /// Columns compared as topics or ids, which should compare byte for
    /// byte (a backend may warn when their type does not).
    pub exact: &'static [&'static str],
    /// Column sets that need a unique index (upsert targets).
    pub unique: &'static [&'static [&'static str]],
}

impl TableSpec {
    /// A table whose statements use `columns`; no payload, exact or
    /// unique columns until the methods below add them.
    pub const fn new(name: &'static str, columns: &'static [&'static str]) -> Self {
        TableSpec {
            name,
            columns,
            payload: &[],
            exact: &[],
            unique: &[],
        }
    }

    /// With these payload columns.
    pub const fn payload(mut self, columns: &'static [&'static str]) -> Self {
        self.payload = columns;
        self
    }

    /// With these columns compared byte for byte.
    pub const fn exact(mut self, columns: &'static [&'static str]) -> Self {
        self.exact = columns;
        self
    }

    /// With these column sets needing a unique index.
    pub const fn unique(mut self, sets: &'static [&'static [&'static str]]) -> Self {
        self.unique = sets;
        self
    }
}

/// The column type a backend needs for payloads, and how to fix a table
/// that has another.
#[derive(Debug, Clone, Copy)]
pub struct PayloadType {
    /// The type, as the catalog names it (`bytea`, `longblob`).
    pub name: &'static str,
    /// Why it must be this type.
    pub why: &'static str,
    /// The statement that fixes it; `{table}` and `{col}` are replaced.
    pub fix: &'static str,
}

/// A backend's schema: the file it carries and what its statements need
/// of each table. One `const` per backend; [`Schema::check`] runs the
/// start-up check over what the backend read from its catalog.
#[derive(Debug, Clone, Copy)]
pub struct Schema {
    /// The schema file's text, embedded in the crate (`include_str!`).
    pub text: &'static str,
    /// Where users find the same file in the repository, to load it by
    /// hand (`etc/sql/emqx_backend_pgsql.sql`); errors name it.
    pub file: &'static str,
    /// The type payload columns must have.
    pub payload: PayloadType,
    /// The built-in tables, in the file's order.
    pub tables: &'static [TableSpec],
}

impl Schema {
    /// The file's statements, without `--` comment lines, in order.
    pub fn statements(&self) -> Vec<String> {
        let code: String = self
            .text
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .map(|l| format!("{l}\n"))
            .collect();
        code.split(';')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// The built-in tables' names.
    pub fn table_names(&self) -> Vec<&'static str> {
        self.tables.iter().map(|t| t.name).collect()
    }

    /// Checks every table against `catalog`; the first problem found is
    /// the error: a missing table, or what [`check_table`] finds wanting.
    pub fn check(&self, catalog: &Catalog, target: &SchemaTarget) -> Result<(), CommonError> {
        for spec in self.tables {
            let columns = catalog.columns_of(spec.name);
            if columns.is_empty() {
                return Err(target.missing(spec.name));
            }
            let uniques: Vec<&str> = catalog
                .uniques
                .iter()
                .filter(|(t, _)| t.eq_ignore_ascii_case(spec.name))
                .map(|(_, u)| u.as_str())
                .collect();
            check_table(spec, &columns, &uniques, &self.payload)
                .map_err(|problem| target.wrong(spec.name, problem))?;
        }
        Ok(())
    }
}

/// What a backend read from its catalog about its tables. A table with no
/// columns listed does not exist.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// `(table, column, type)` rows.
    pub columns: Vec<(String, String, String)>,
    /// `(table, columns)` rows, one per unique index: its columns sorted
    /// and joined by `,`.
    pub uniques: Vec<(String, String)>,
}

impl Catalog {
    /// The `(column, type)` pairs of one table.
    pub fn columns_of(&self, table: &str) -> Vec<(&str, &str)> {
        self.columns
            .iter()
            .filter(|(t, _, _)| t.eq_ignore_ascii_case(table))
            .map(|(_, c, ty)| (c.as_str(), ty.as_str()))
            .collect()
    }
}

/// Checks one existing table: `columns` are its `(name, type)` pairs as
/// the catalog gives them, `uniques` its unique indexes as column lists
/// sorted and joined by `,`. The error says what is wrong and how to fix it.
pub fn check_table(
    spec: &TableSpec,
    columns: &[(&str, &str)],
    uniques: &[&str],
    payload: &PayloadType,
) -> Result<(), String> {
    let type_of = |name: &str| {
        columns
            .iter()
            .find(|(c, _)| c.eq_ignore_ascii_case(name))
            .map(|(_, t)| *t)
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
    for col in spec.payload {
        if let Some(t) = type_of(col).filter(|t| !t.eq_ignore_ascii_case(payload.name)) {
            let fix = payload
                .fix
                .replace("{table}", spec.name)
                .replace("{col}", col);
            return Err(format!(
                "has `{col}` of type {t}, not {} ({}): {fix}",
                payload.name, payload.why
            ));
        }
    }
    for set in spec.unique {
        let mut want: Vec<&str> = set.to_vec();
        want.sort_unstable();
        let want = want.join(",");
        if !uniques.iter().any(|u| *u == want) {
            return Err(format!(
                "has no unique index on ({}), which its upserts need",
                set.join(", ")
            ));
        }
    }
    Ok(())
}

/// Where a schema check runs, for its errors.
#[derive(Debug, Clone)]
pub struct SchemaTarget {
    /// The backend kind.
    pub kind: BackendKind,
    /// The pool.
    pub pool: String,
    /// `host:port`.
    pub host_port: String,
    /// The database.
    pub database: String,
    /// `host:port/database`.
    pub label: String,
    /// The schema file users load by hand.
    pub schema_file: &'static str,
}

impl SchemaTarget {
    /// The target of a pool with these settings.
    pub fn of(kind: BackendKind, settings: &DbSettings, schema_file: &'static str) -> Self {
        SchemaTarget {
            kind,
            pool: settings.pool_name.clone(),
            host_port: settings.host_port(),
            database: settings.database.clone(),
            label: settings.server_label(),
            schema_file,
        }
    }

    /// The error for a table that does not exist.
    pub fn missing(&self, table: &'static str) -> CommonError {
        CommonError::MissingTable {
            kind: self.kind,
            pool: self.pool.clone(),
            server: self.host_port.clone(),
            database: self.database.clone(),
            table,
            schema_file: self.schema_file,
        }
    }

    /// The error for a table [`check_table`] found wanting.
    pub fn wrong(&self, table: &'static str, problem: String) -> CommonError {
        CommonError::Schema {
            server: self.label.clone(),
            table,
            problem,
            schema_file: self.schema_file,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: TableSpec = TableSpec {
        name: "mqtt_msg",
        columns: &["id", "msgid", "topic", "payload"],
        payload: &["payload"],
        exact: &["topic"],
        unique: &[&["msgid"]],
    };
    const BYTEA: PayloadType = PayloadType {
        name: "bytea",
        why: "MQTT payloads are binary",
        fix: "ALTER TABLE {table} ALTER COLUMN {col} TYPE bytea",
    };

    #[test]
    fn problems_are_named_with_their_fix() {
        let seed = [
            ("id", "integer"),
            ("msgid", "text"),
            ("topic", "text"),
            ("payload", "text"),
        ];
        let e = check_table(&MSG, &seed, &["id"], &BYTEA).expect_err("text payload");
        assert_eq!(
            e,
            "has `payload` of type text, not bytea (MQTT payloads are binary): \
             ALTER TABLE mqtt_msg ALTER COLUMN payload TYPE bytea"
        );
        let mut fixed = seed;
        fixed[3].1 = "BYTEA";
        let e = check_table(&MSG, &fixed, &["id"], &BYTEA).expect_err("no unique msgid");
        assert!(e.contains("no unique index on (msgid)"), "{e}");
        check_table(&MSG, &fixed, &["id", "msgid"], &BYTEA).expect("complete");
        let e = check_table(&MSG, &fixed[..2], &[], &BYTEA).expect_err("columns");
        assert_eq!(e, "lacks the column(s) topic, payload");
        let upper = [
            ("ID", "integer"),
            ("MSGID", "text"),
            ("Topic", "text"),
            ("payload", "bytea"),
        ];
        check_table(&MSG, &upper, &["msgid"], &BYTEA).expect("names compare without case");
    }

    const SCHEMA: Schema = Schema {
        text: "-- the messages\nCREATE TABLE mqtt_msg (id int);\n\n-- done\nCREATE INDEX i ON mqtt_msg (id);\n",
        file: "etc/sql/x.sql",
        payload: BYTEA,
        tables: &[MSG],
    };

    fn pgsql_pool() -> DbSettings {
        DbSettings::new(
            "pool1",
            crate::db_defaults!(crate::testkit::kinds::PGSQL, 5432, "username"),
        )
    }

    #[test]
    fn statements_drop_comments_and_split() {
        assert_eq!(
            SCHEMA.statements(),
            [
                "CREATE TABLE mqtt_msg (id int)",
                "CREATE INDEX i ON mqtt_msg (id)"
            ]
        );
        assert_eq!(SCHEMA.table_names(), ["mqtt_msg"]);
    }

    #[test]
    fn the_catalog_check_finds_missing_and_wanting_tables() {
        let target = SchemaTarget::of(crate::testkit::kinds::PGSQL, &pgsql_pool(), SCHEMA.file);
        let mut catalog = Catalog::default();
        let e = SCHEMA.check(&catalog, &target).expect_err("no table");
        assert!(
            matches!(
                e,
                CommonError::MissingTable {
                    table: "mqtt_msg",
                    ..
                }
            ),
            "{e}"
        );
        for (c, t) in [("id", "integer"), ("msgid", "text"), ("topic", "text")] {
            catalog
                .columns
                .push(("MQTT_MSG".into(), c.into(), t.into()));
        }
        catalog
            .columns
            .push(("other".into(), "payload".into(), "bytea".into()));
        let e = SCHEMA
            .check(&catalog, &target)
            .expect_err("no payload column");
        assert!(e.to_string().contains("lacks the column(s) payload"), "{e}");
        catalog
            .columns
            .push(("mqtt_msg".into(), "payload".into(), "bytea".into()));
        let e = SCHEMA
            .check(&catalog, &target)
            .expect_err("no unique index");
        assert!(e.to_string().contains("no unique index on (msgid)"), "{e}");
        catalog.uniques.push(("other".into(), "msgid".into()));
        SCHEMA
            .check(&catalog, &target)
            .expect_err("another table's index");
        catalog.uniques.push(("mqtt_msg".into(), "msgid".into()));
        SCHEMA.check(&catalog, &target).expect("complete");
    }

    #[test]
    fn targets_name_the_pool_and_the_file() {
        let t = SchemaTarget::of(crate::testkit::kinds::PGSQL, &pgsql_pool(), "etc/sql/x.sql");
        let e = t.missing("mqtt_msg").to_string();
        assert_eq!(
            e,
            "table `mqtt_msg` does not exist in database `mqtt` on 127.0.0.1:5432: create the \
             tables with etc/sql/x.sql or set backend.pgsql.pool1.create_tables = true"
        );
        let e = t.wrong("mqtt_msg", "lacks x".into()).to_string();
        assert_eq!(
            e,
            "table `mqtt_msg` on 127.0.0.1:5432/mqtt lacks x; see etc/sql/x.sql"
        );
    }
}
