/// One versioned schema change. Versions only grow; an applied migration is never edited,
/// because the aggregator records its checksum and refuses to run against a changed history.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    /// SQL with `{audience}`, `{troubleshooting}` and `{meta}` placeholders; statements end
    /// with `;` at the end of a line.
    pub sql: &'static str,
}

/// Created before any migration runs: the admin database with the table that records applied
/// migrations (its row type is [`crate::MigrationRow`]), and the meta database migration 1
/// puts the salts in.
pub const BOOTSTRAP: &str = "\
CREATE DATABASE IF NOT EXISTS {admin};
CREATE DATABASE IF NOT EXISTS {meta};
CREATE TABLE IF NOT EXISTS {admin}.schema_migrations
(
    version    UInt32,
    name       String,
    checksum   String,
    applied_at DateTime('UTC')
)
ENGINE = MergeTree
ORDER BY version;
";

/// Every migration, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "stores", sql: include_str!("../migrations/0001_stores.sql") },
    Migration { version: 2, name: "lifecycle", sql: include_str!("../migrations/0002_lifecycle.sql") },
    Migration { version: 3, name: "roles", sql: include_str!("../migrations/0003_roles.sql") },
    Migration { version: 4, name: "visits", sql: include_str!("../migrations/0004_visits.sql") },
    Migration { version: 5, name: "erasures", sql: include_str!("../migrations/0005_erasures.sql") },
    Migration { version: 6, name: "bot_reason", sql: include_str!("../migrations/0006_bot_reason.sql") },
];

/// Splits a migration into statements: drops `--` comment lines and splits on a `;` that ends
/// a line. Migrations are our own files, so this simple rule is all they need.
pub fn split_statements(sql: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut current = String::new();
    for line in sql.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("--") || trimmed.is_empty() {
            continue;
        }
        current.push_str(line);
        current.push('\n');
        if trimmed.ends_with(';') {
            let statement = current.trim().trim_end_matches(';').trim().to_owned();
            statements.push(statement);
            current.clear();
        }
    }
    if !current.trim().is_empty() {
        statements.push(current.trim().to_owned());
    }
    statements
}

/// `(database, table, column)` of an `ALTER TABLE db.table ADD COLUMN column ...` statement.
/// ClickHouse 18.16 has no `ADD COLUMN IF NOT EXISTS`, so the migrator asks `system.columns`
/// first: that keeps such a statement repeatable like the others.
pub fn added_column(statement: &str) -> Option<(&str, &str, &str)> {
    let mut words = statement.split_whitespace();
    let keywords = ["ALTER", "TABLE"];
    if !keywords.iter().all(|k| words.next().is_some_and(|w| w.eq_ignore_ascii_case(k))) {
        return None;
    }
    let (database, table) = words.next()?.split_once('.')?;
    let mut word = words.next()?;
    if word.eq_ignore_ascii_case("ON") {
        // `ON CLUSTER name` (store::cluster): the column is checked on the node asked.
        words.next().filter(|w| w.eq_ignore_ascii_case("CLUSTER"))?;
        words.next()?;
        word = words.next()?;
    }
    if !word.eq_ignore_ascii_case("ADD") || !words.next()?.eq_ignore_ascii_case("COLUMN") {
        return None;
    }
    Some((database, table, words.next()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_column_an_alter_adds() {
        let sql = "ALTER TABLE p_troubleshooting.events ADD COLUMN bot_reason String";
        assert_eq!(added_column(sql), Some(("p_troubleshooting", "events", "bot_reason")));
        assert_eq!(added_column("alter table a.b add column c UInt8 DEFAULT 1"), Some(("a", "b", "c")));
        assert_eq!(added_column("ALTER TABLE a.b DROP COLUMN c"), None);
        assert_eq!(added_column("CREATE TABLE a.b (c String)"), None);
        assert_eq!(added_column("ALTER TABLE b ADD COLUMN c String"), None);
        assert_eq!(added_column("ALTER TABLE a.b_local ON CLUSTER c ADD COLUMN d String"), Some(("a", "b_local", "d")));
    }

    #[test]
    fn versions_are_strictly_increasing() {
        assert!(MIGRATIONS.windows(2).all(|w| w[0].version < w[1].version));
        assert_eq!(MIGRATIONS[0].version, 1);
    }

    #[test]
    fn splits_on_line_final_semicolons_and_skips_comments() {
        let sql = "-- c\nCREATE DATABASE a;\n\nCREATE TABLE t\n(\n  x String -- y;z\n)\nENGINE = Log;\n";
        assert_eq!(
            split_statements(sql),
            vec!["CREATE DATABASE a", "CREATE TABLE t\n(\n  x String -- y;z\n)\nENGINE = Log"]
        );
    }

    #[test]
    fn every_migration_statement_uses_only_known_placeholders() {
        let db = crate::Databases::new("p").unwrap();
        for sql in MIGRATIONS.iter().map(|m| m.sql).chain([BOOTSTRAP]) {
            for s in split_statements(&db.render(sql)) {
                assert!(!s.contains('{') && !s.contains('}'), "unrendered placeholder in {s}");
            }
        }
    }
}
