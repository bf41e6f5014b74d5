//! The HTTP benchmark: every system of `bench/CONTRACT.md` through the same
//! scenarios (read-only, modify, new session; concurrency 1 and 32) against
//! one MongoDB server (`MONGODB_URI`), checking every answer.
//!
//! Run everything with `scripts/bench`, which builds the peers and starts a
//! local server when `MONGODB_URI` is unset.

use std::{path::PathBuf, time::Duration};

use bench::{
    load::{self, Scenario},
    report::{Cell, Report},
    server::OpCounters,
    systems::{Locations, System, ALL},
};
use clap::Parser;

#[derive(Debug, Parser)]
#[command(about = "Runs every session store through the same HTTP scenarios")]
struct Args {
    /// The MongoDB server every system uses.
    #[arg(long, env = "MONGODB_URI")]
    mongodb_uri: String,
    /// Seconds measured per scenario.
    #[arg(long, default_value_t = 4.0)]
    seconds: f64,
    /// Seconds of unmeasured warm-up before each.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Concurrencies to run.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 32])]
    concurrency: Vec<usize>,
    /// Only these systems (keys: bare, tower-memory, raw, tower, tower-cache, actix, tsms, asm, express).
    #[arg(long, value_delimiter = ',')]
    systems: Vec<String>,
    /// Only these scenarios (read, modify, new).
    #[arg(long, value_delimiter = ',')]
    scenarios: Vec<String>,
    /// A short smoke run (CI): 0.5 s per scenario.
    #[arg(long)]
    quick: bool,
    /// Fail if a system cannot be started (instead of reporting it skipped).
    #[arg(long)]
    require_all: bool,
    /// Also write `benchmarks-table.md` and `benchmarks.svg` here.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = Args::parse();
    if args.quick {
        args.seconds = 0.5;
        args.warmup = 0.2;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let at = Locations::new(&root);
    let admin = mongodb::Client::with_uri_str(&args.mongodb_uri).await?;
    let mut report = Report {
        concurrencies: args.concurrency.clone(),
        ..Report::default()
    };
    let chosen = ALL
        .iter()
        .filter(|s| args.systems.is_empty() || args.systems.iter().any(|k| k == s.key));
    for system in chosen {
        let database = format!("bench_{}", system.key.replace('-', "_"));
        admin.database(&database).drop().await?;
        let running = match system.start(&at, &args.mongodb_uri, &database).await {
            Ok(running) => running,
            Err(why) if !args.require_all => {
                eprintln!("skipping {}: {why}", system.label);
                report.skipped.push((*system, why));
                continue;
            }
            Err(why) => return Err(why.into()),
        };
        let scenarios = Scenario::ALL
            .into_iter()
            .filter(|s| args.scenarios.is_empty() || args.scenarios.iter().any(|k| k == s.key()));
        for scenario in scenarios {
            for &concurrency in &args.concurrency {
                let cell =
                    measure(&args, &admin, system, &running.base, scenario, concurrency).await?;
                eprintln!(
                    "{:<45} {:<12} c={concurrency:<3} {:>8.0} req/s  p50 {:.2} ms  p99 {:.2} ms  wrong {}",
                    system.label,
                    scenario.name(),
                    cell.measured.rate(),
                    cell.measured.percentile_ms(0.5),
                    cell.measured.percentile_ms(0.99),
                    cell.measured.errors,
                );
                report.cells.push(cell);
            }
        }
        drop(running);
        admin.database(&database).drop().await?;
    }
    println!("{}", report.markdown());
    println!("Goals:\n{}", report.goals());
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("benchmarks-table.md"), report.markdown())?;
        std::fs::write(dir.join("benchmarks.svg"), report.svg())?;
    }
    for cell in report.unexpected_writes() {
        eprintln!(
            "WRITES on unmodified sessions: {} (c={}) wrote {} times",
            cell.system.label,
            cell.concurrency,
            cell.ops.writes()
        );
    }
    if !report.unexpected_writes().is_empty() {
        return Err("an unmodified session was written inside touch_after".into());
    }
    if report.has_errors() {
        for cell in report.cells.iter().filter(|c| c.measured.errors > 0) {
            eprintln!(
                "WRONG ANSWERS from {} ({} c={}): {} — first: {}",
                cell.system.label,
                cell.scenario.name(),
                cell.concurrency,
                cell.measured.errors,
                cell.measured.first_error.as_deref().unwrap_or("?"),
            );
        }
        return Err("some systems answered wrongly".into());
    }
    Ok(())
}

async fn measure(
    args: &Args,
    admin: &mongodb::Client,
    system: &System,
    base: &str,
    scenario: Scenario,
    concurrency: usize,
) -> Result<Cell, Box<dyn std::error::Error>> {
    let http = load::client(concurrency);
    let workers = load::prepare(&http, base, scenario, concurrency)
        .await
        .map_err(|e| format!("{}: {e}", system.label))?;
    let (workers, _) = load::drive(workers, Duration::from_secs_f64(args.warmup)).await;
    let before = OpCounters::read(admin).await?;
    let (_, measured) = load::drive(workers, Duration::from_secs_f64(args.seconds)).await;
    let ops = OpCounters::read(admin).await?.since(&before);
    Ok(Cell {
        system: *system,
        scenario,
        concurrency,
        measured,
        ops,
    })
}
