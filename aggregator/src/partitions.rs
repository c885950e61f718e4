//! `DROP PARTITION` of replicated tables. On ClickHouse 18.16 a replica that is not its table's
//! leader forwards a partition operation to the leader as user `default` without a password,
//! which an installation does not have (docs/operations.md, Running a cluster). So on a cluster
//! the aggregator sends it to each table's leader itself: every node of `[cluster] nodes` is
//! asked whether it leads the table, and each leader (one per shard for the event stores, one
//! for a table replicated on every node) drops the partition. On one server, the server does.

use clickhouse::{Client, error::Error};

pub enum Partitions {
    /// One server.
    Server(Box<Client>),
    /// One client per node of the cluster.
    Cluster(Vec<Client>),
}

impl Partitions {
    /// On one server (no `nodes`): `client`. On a cluster: one client per node.
    pub fn new(client: Client, nodes: Vec<Client>) -> Self {
        if nodes.is_empty() { Self::Server(Box::new(client)) } else { Self::Cluster(nodes) }
    }

    /// One client per node of the cluster; none on one server.
    pub fn nodes(&self) -> &[Client] {
        match self {
            Self::Server(_) => &[],
            Self::Cluster(nodes) => nodes,
        }
    }

    /// Drops partition `partition` (an SQL literal: `'2026-11-24'`, `20261124`) of `table`
    /// (`database.name`, the replicated or the only table; not a Distributed one).
    pub async fn drop_partition(&self, table: &str, partition: &str) -> Result<(), Error> {
        let statement = format!("ALTER TABLE {table} DROP PARTITION {partition}");
        let nodes = match self {
            Self::Server(client) => return client.query(&statement).execute().await,
            Self::Cluster(nodes) => nodes,
        };
        let (database, name) =
            table.split_once('.').ok_or_else(|| Error::Custom(format!("{table} names no database")))?;
        let mut leaders = 0;
        for node in nodes {
            let leads: u64 = node
                .query("SELECT count() FROM system.replicas WHERE database = ? AND table = ? AND is_leader")
                .bind(database)
                .bind(name)
                .fetch_one()
                .await?;
            if leads > 0 {
                node.query(&statement).execute().await?;
                leaders += 1;
            }
        }
        // A leader election in progress: the next pass drops it.
        if leaders == 0 {
            return Err(Error::Custom(format!("no replica of {table} leads it now; {partition} not dropped")));
        }
        Ok(())
    }
}
