//! The HTTP benchmark: every system of `bench/CONTRACT.md` through the same
//! scenarios (read-only, modify, new session; concurrency 1 and 32) against
//! one MongoDB server (`MONGODB_URI`), checking every answer, and measuring
//! each system process's own CPU time per request.
//!
//! Run everything with `scripts/bench`, which builds the peers and starts a
//! local server when `MONGODB_URI` is unset.

use std::{path::PathBuf, time::Duration};

use bench::{
    cpu,
    load::{self, Scenario},
    report::{Cell, Report},
    server::OpCounters,
    systems::{Locations, Running, System, ALL},
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
    /// Only these systems (keys: bare, tower-memory, tower-memory-always-save, raw, tower,
    /// tower-always-save, tower-cache, tower-cache-always-save, actix, tsms, asm, express).
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
    /// Repeat the whole matrix this many times; the tables then give every
    /// figure as min–max over the runs, and each goal is judged per run.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
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
        runs: args.runs as usize,
        ..Report::default()
    };
    for run in 0..report.runs {
        if report.runs > 1 {
            eprintln!("run {} of {}", run + 1, report.runs);
        }
        run_matrix(&args, &at, &admin, run, &mut report).await?;
    }
    println!("{}", report.markdown());
    println!("Goals:\n\n{}", report.goals());
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir)?;
        let table = format!("{}\n## Goals\n\n{}", report.markdown(), report.goals());
        std::fs::write(dir.join("benchmarks-table.md"), table)?;
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

/// Every chosen system through every chosen scenario and concurrency, once.
async fn run_matrix(
    args: &Args,
    at: &Locations,
    admin: &mongodb::Client,
    run: usize,
    report: &mut Report,
) -> Result<(), Box<dyn std::error::Error>> {
    let chosen = ALL
        .iter()
        .filter(|s| args.systems.is_empty() || args.systems.iter().any(|k| k == s.key));
    for system in chosen {
        let database = format!("bench_{}", system.key.replace('-', "_"));
        admin.database(&database).drop().await?;
        let running = match system.start(at, &args.mongodb_uri, &database).await {
            Ok(running) => running,
            Err(why) if !args.require_all => {
                eprintln!("skipping {}: {why}", system.label);
                if !report.skipped.iter().any(|(s, _)| s.key == system.key) {
                    report.skipped.push((*system, why));
                }
                continue;
            }
            Err(why) => return Err(why.into()),
        };
        let scenarios = Scenario::ALL
            .into_iter()
            .filter(|s| args.scenarios.is_empty() || args.scenarios.iter().any(|k| k == s.key()));
        for scenario in scenarios {
            for &concurrency in &args.concurrency {
                let target = Target {
                    system,
                    running: &running,
                    scenario,
                    concurrency,
                    run,
                };
                let cell = measure(args, admin, &target).await?;
                eprintln!("{}", cell.progress());
                report.cells.push(cell);
            }
        }
        drop(running);
        admin.database(&database).drop().await?;
    }
    Ok(())
}

/// One cell to measure.
struct Target<'a> {
    system: &'a System,
    running: &'a Running,
    scenario: Scenario,
    concurrency: usize,
    run: usize,
}

async fn measure(
    args: &Args,
    admin: &mongodb::Client,
    target: &Target<'_>,
) -> Result<Cell, Box<dyn std::error::Error>> {
    let (system, base) = (target.system, &target.running.base);
    let http = load::client(target.concurrency);
    let workers = load::prepare(&http, base, target.scenario, target.concurrency)
        .await
        .map_err(|e| format!("{}: {e}", system.label))?;
    let (workers, _) = load::drive(workers, Duration::from_secs_f64(args.warmup)).await;
    let before = OpCounters::read(admin).await?;
    // Sampled right around the measured window: the server's counters are
    // read outside it, and the warm-up's requests have all been answered.
    let pid = target.running.pid();
    let cpu_before = pid.map(cpu::Sample::read);
    let (_, measured) = load::drive(workers, Duration::from_secs_f64(args.seconds)).await;
    let cpu_after = pid.map(cpu::Sample::read);
    let ops = OpCounters::read(admin).await?.since(&before);
    let cpu = match (cpu_before, cpu_after) {
        (Some(Ok(before)), Some(Ok(after))) => Some(after.since(before)),
        (Some(Err(why)), _) | (_, Some(Err(why))) => {
            eprintln!("no CPU time for {}: {why}", system.label);
            None
        }
        _ => None,
    };
    Ok(Cell {
        system: *system,
        scenario: target.scenario,
        concurrency: target.concurrency,
        run: target.run,
        measured,
        ops,
        cpu,
    })
}
