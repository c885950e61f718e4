use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::{Parser, Subcommand};
use clickhouse::Compression;

/// The webstats aggregator: owns the ClickHouse schema, the salts, and reports.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Configuration file (TOML); see config/aggregator.toml for every key.
    #[arg(short, long, env = "WEBSTATS_AGGREGATOR_CONFIG", default_value = "config/aggregator.toml", global = true)]
    config: PathBuf,
    /// Log line format.
    #[arg(long, value_enum, default_value_t = runtime::LogFormat::Text, env = "WEBSTATS_LOG_FORMAT", global = true)]
    log_format: runtime::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum SubjectAction {
    /// Drop the person's new beacons and hide their past rows from analysts.
    Block,
    /// Lift a block.
    Unblock,
    /// Print everything stored about the person as JSON.
    Export,
    /// Delete every row stored about the person, in every store.
    Erase,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum RolesFormat {
    UsersXml,
    Sql,
}

#[derive(Subcommand)]
enum Command {
    /// Apply pending schema migrations, then create the current and next salts if missing.
    Migrate,
    /// Rotate salts, enforce retention and refresh the analysts' rollups, every
    /// `run.interval_s`, until SIGINT, SIGTERM or SIGHUP.
    Run {
        /// One pass, then exit.
        #[arg(long)]
        once: bool,
    },
    /// Create the salts of the current and next period if missing; delete expired salts.
    Salts,
    /// Drop event partitions older than the retention of their store.
    Retention,
    /// Recompute the analysts' rollups of the last days (today included) and record the
    /// current visitors.
    Rollups {
        /// How many days; default: privacy.rollup_days.
        #[arg(long)]
        days: Option<u16>,
    },
    /// A data-subject request about one person, named by what the site showed them.
    Subject {
        #[arg(value_enum)]
        action: SubjectAction,
        /// The site id.
        #[arg(long)]
        site: String,
        /// The value of the site's first-party cookie (cookie mode).
        #[arg(long, conflicts_with_all = ["ip", "ua"], required_unless_present = "ip")]
        cookie: Option<String>,
        /// The visitor's IP address (with --ua; matches only days whose salts are still held:
        /// by default yesterday, today and tomorrow).
        #[arg(long, requires = "ua")]
        ip: Option<std::net::IpAddr>,
        /// The visitor's User-Agent (with --ip).
        #[arg(long, requires = "ip")]
        ua: Option<String>,
    },
    /// Print the ClickHouse users of this installation (ingest, ingest_meta, analyst, sre),
    /// with each password read from WEBSTATS_CH_PASSWORD_<ROLE> and stored as a SHA-256.
    Roles {
        /// `users-xml`: a users.d file for ClickHouse 18.16; `sql`: CREATE USER and GRANT
        /// statements for current ClickHouse.
        #[arg(long, value_enum, default_value_t = RolesFormat::UsersXml)]
        format: RolesFormat,
    },
    /// Pageviews, visitors, bot hits and top pages of a site for a period.
    Stats {
        /// The site id.
        #[arg(long)]
        site: String,
        /// Start (inclusive): `YYYY-MM-DD` or RFC 3339; default: today 00:00 UTC.
        #[arg(long)]
        from: Option<String>,
        /// End (exclusive): `YYYY-MM-DD` or RFC 3339; default: now.
        #[arg(long)]
        to: Option<String>,
        /// How many top pages to list.
        #[arg(long, default_value_t = 10)]
        top: u32,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    runtime::init_logging(args.log_format);
    let config = match aggregator::Config::load(&args.config) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime starts");
    match tokio.block_on(run(config, args.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: aggregator::Config, command: Command) -> anyhow::Result<()> {
    let databases = config.clickhouse.databases();
    // Uncompressed: admin traffic is small, and it keeps every ClickHouse-speaking server usable.
    let client = config.clickhouse.client(Compression::None);
    let partitions = config.partitions(&client);
    let now = runtime::unix_now();
    match command {
        Command::Migrate => {
            let report = aggregator::migrate(&client, &databases, now).await?;
            let completed = aggregator::complete_nodes(partitions.nodes(), &databases).await?;
            let created = aggregator::ensure_salts(&client, &databases, config.salts.rotation_period_s, now).await?;
            println!(
                "migrations applied: {:?}; already applied: {:?}; salts created for {} period(s)",
                report.applied,
                report.already_applied,
                created.len()
            );
            if completed.iter().any(|&n| n > 0) {
                println!("tables created on nodes that lacked them (in [cluster] nodes order): {completed:?}");
            }
        }
        Command::Run { once: true } => {
            let pass = aggregator::run_pass(&client, &partitions, &databases, &config, now).await?;
            println!(
                "salts created: {}; salts deleted: {}; partitions dropped: {}; rollup days refreshed: {}",
                pass.salts_created, pass.salts_deleted, pass.partitions_dropped, pass.rollup_days
            );
        }
        Command::Run { once: false } => {
            aggregator::run_forever(
                &client,
                &partitions,
                &databases,
                &config,
                runtime::unix_now,
                runtime::shutdown_signal(),
            )
            .await;
        }
        Command::Salts => {
            let created = aggregator::ensure_salts(&client, &databases, config.salts.rotation_period_s, now).await?;
            let deleted =
                aggregator::expire_salts(&client, &partitions, &databases, config.salts.grace_period_s, now).await?;
            println!("salts created for {} period(s); {} expired salt(s) deleted", created.len(), deleted.len());
        }
        Command::Rollups { days } => {
            let today = store::day_number(now);
            let days: Vec<u16> =
                (0..days.unwrap_or(config.privacy.rollup_days)).filter_map(|b| today.checked_sub(b)).collect();
            aggregator::refresh_rollups(&client, &partitions, &databases, &days, config.privacy.min_group_size).await?;
            aggregator::record_current_visitors(&client, &databases, now, config.privacy.min_group_size).await?;
            println!("rollup days refreshed: {}", days.len());
        }
        Command::Retention => {
            let dropped =
                aggregator::enforce_retention(&client, &partitions, &databases, &config.retention, now).await?;
            println!("partitions dropped: {}", dropped.len());
            for row in dropped {
                println!("  {} ({} rows)", row.target, row.rows);
            }
        }
        Command::Subject { action, site, cookie, ip, ua } => {
            let identity = match (cookie, ip, ua) {
                (Some(value), _, _) => aggregator::Identity::Cookie(value),
                (None, Some(ip), Some(user_agent)) => aggregator::Identity::Connection { ip, user_agent },
                _ => anyhow::bail!("name the person with --cookie, or with --ip and --ua"),
            };
            let cookie_key = match identity {
                aggregator::Identity::Cookie(_) => {
                    let privacy = &config.privacy;
                    let material = store::read_cookie_key(privacy.cookie_key_file.as_deref(), &privacy.cookie_key_env)
                        .map_err(|problem| anyhow::anyhow!("{problem}"))?;
                    Some(store::pseudonym::CookieKey::from_material(&material).context("cookie key")?)
                }
                aggregator::Identity::Connection { .. } => None,
            };
            let subjects =
                aggregator::resolve_subject(&client, &databases, &site, &identity, cookie_key.as_ref()).await?;
            // Found before acting: after an erase the person's days can no longer be found.
            let days = aggregator::subject_days(&client, &databases, &site, &subjects).await?;
            match action {
                SubjectAction::Block | SubjectAction::Unblock => {
                    let block = matches!(action, SubjectAction::Block);
                    aggregator::set_blocked(&client, &databases, &site, &subjects, block, now).await?;
                    println!("{} {} pseudonym(s)", if block { "blocked" } else { "unblocked" }, subjects.len());
                }
                SubjectAction::Export => {
                    let export = aggregator::export(&client, &databases, &site, &subjects, now).await?;
                    println!("{}", serde_json::to_string_pretty(&export)?);
                }
                SubjectAction::Erase => {
                    let rows = aggregator::erase(&client, &databases, &site, &subjects, now).await?;
                    println!("erased {rows} row(s)");
                }
            }
            if !matches!(action, SubjectAction::Export) {
                aggregator::refresh_rollups(&client, &partitions, &databases, &days, config.privacy.min_group_size)
                    .await?;
            }
        }
        Command::Roles { format } => {
            // Every password is checked first, so one message names all the missing ones.
            let missing: Vec<&str> = store::roles::Role::ALL
                .iter()
                .map(|r| r.password_env())
                .filter(|var| std::env::var(var).map_or(true, |p| p.is_empty()))
                .collect();
            anyhow::ensure!(missing.is_empty(), "set the passwords in {}", missing.join(", "));
            let hash = |role: store::roles::Role| {
                store::roles::sha256_hex(&std::env::var(role.password_env()).unwrap_or_default())
            };
            let output = match format {
                RolesFormat::UsersXml => store::roles::users_xml(&databases, hash),
                RolesFormat::Sql => store::roles::grants_sql(&databases, hash).join(";\n") + ";\n",
            };
            print!("{output}");
        }
        Command::Stats { site, from, to, top, json } => {
            let from = match from {
                Some(t) => parse_time(&t).context("--from")?,
                None => aggregator::period_start(now, 86_400),
            };
            let to = match to {
                Some(t) => parse_time(&t).context("--to")?,
                None => now + 1,
            };
            anyhow::ensure!(from < to, "--from must be before --to");
            let stats = aggregator::stats(&client, &databases, &site, from, to, top).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&stats)?);
            } else {
                print!("{stats}");
            }
        }
    }
    Ok(())
}

/// `YYYY-MM-DD` (00:00 UTC) or an RFC 3339 time, as Unix seconds.
fn parse_time(text: &str) -> anyhow::Result<u32> {
    let seconds = match chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        Ok(date) => date.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc().timestamp(),
        Err(_) => chrono::DateTime::parse_from_rfc3339(text)
            .with_context(|| format!("{text:?} is neither YYYY-MM-DD nor an RFC 3339 time"))?
            .timestamp(),
    };
    u32::try_from(seconds).with_context(|| format!("{text:?} is outside 1970..2106"))
}
