//! The results: Markdown tables led by CPU per request, and an SVG plot.
//! The goals of issue 25 are evaluated in [`crate::goals`].

use std::{fmt::Write, time::Duration};

use crate::{
    cpu::Sample,
    load::{Measured, Scenario},
    server::OpCounters,
    systems::{Role, System, ONE_READ},
};

/// One system in one scenario at one concurrency, in one run.
#[derive(Debug, Clone)]
pub struct Cell {
    /// Which system.
    pub system: System,
    /// Which scenario.
    pub scenario: Scenario,
    /// Concurrent clients.
    pub concurrency: usize,
    /// Which repetition of the whole matrix (0-based).
    pub run: usize,
    /// What the load generator saw.
    pub measured: Measured,
    /// What the server counted during the measured run.
    pub ops: OpCounters,
    /// The system process's own CPU time (user + sys) over the measured
    /// run; `None` where `/proc` could not be read.
    pub cpu: Option<Duration>,
}

impl Cell {
    /// `count` divided by the requests measured.
    pub fn per_request(&self, count: i64) -> f64 {
        count as f64 / (self.measured.requests.max(1)) as f64
    }

    /// The system's CPU time per request, in microseconds.
    pub fn cpu_us(&self) -> Option<f64> {
        let cpu = self.cpu?;
        Some(cpu.as_secs_f64() * 1e6 / (self.measured.requests.max(1)) as f64)
    }

    /// Database operations on the request path per request: everything the
    /// server counted but `getMore`, which is the cache's change-stream tail
    /// (one per batch of events, whoever wrote them), not a request's.
    pub fn db_ops(&self) -> f64 {
        self.per_request(self.ops.query + self.ops.writes() + self.ops.command)
    }

    /// The progress line for stderr.
    pub fn progress(&self) -> String {
        let m = &self.measured;
        format!(
            "{:<46} {:<11} c={:<3} cpu {:>6} µs/req {:>7.0} req/s  db ops/req {:.2} find {:.2} write {:.2} other  p50 {:.2} ms  p99 {:.2} ms  wrong {}",
            self.system.label,
            self.scenario.name(),
            self.concurrency,
            self.cpu_us().map_or_else(|| "?".into(), |us| format!("{us:.1}")),
            m.rate(),
            self.per_request(self.ops.query),
            self.per_request(self.ops.writes()),
            self.per_request(self.ops.other()),
            m.percentile_ms(0.5),
            m.percentile_ms(0.99),
            m.errors,
        )
    }
}

/// Every cell of a run.
#[derive(Debug, Default)]
pub struct Report {
    /// Measured cells, in run order.
    pub cells: Vec<Cell>,
    /// Systems that could not run here, and why.
    pub skipped: Vec<(System, String)>,
    /// The concurrencies run.
    pub concurrencies: Vec<usize>,
    /// How many times the whole matrix ran.
    pub runs: usize,
}

impl Report {
    /// `key`'s cell in `run`.
    pub fn cell(
        &self,
        run: usize,
        key: &str,
        scenario: Scenario,
        concurrency: usize,
    ) -> Option<&Cell> {
        self.cells.iter().find(|c| {
            c.run == run
                && c.system.key == key
                && c.scenario == scenario
                && c.concurrency == concurrency
        })
    }

    /// `key`'s cells in every run.
    fn across_runs(&self, key: &str, scenario: Scenario, concurrency: usize) -> Vec<&Cell> {
        self.cells
            .iter()
            .filter(|c| {
                c.system.key == key && c.scenario == scenario && c.concurrency == concurrency
            })
            .collect()
    }

    fn systems(&self) -> Vec<System> {
        let mut systems: Vec<System> = Vec::new();
        for cell in &self.cells {
            if !systems.iter().any(|s| s.key == cell.system.key) {
                systems.push(cell.system);
            }
        }
        systems
    }

    fn columns(&self) -> Vec<(Scenario, usize)> {
        Scenario::ALL
            .iter()
            .flat_map(|s| self.concurrencies.iter().map(move |c| (*s, *c)))
            .collect()
    }

    /// `cell`'s rate as a share of the raw-driver ceiling in the same
    /// scenario and run.
    fn share(&self, cell: &Cell) -> Option<f64> {
        let ceiling = self.cell(cell.run, ONE_READ, cell.scenario, cell.concurrency)?;
        Some(cell.measured.rate() / ceiling.measured.rate())
    }

    /// Whether any answer was wrong.
    pub fn has_errors(&self) -> bool {
        self.cells.iter().any(|c| c.measured.errors > 0)
    }

    /// Our read-only cells that wrote anything: inside `touch_after`, an
    /// unmodified session must cost no write, and the run fails if one did.
    pub fn unexpected_writes(&self) -> Vec<&Cell> {
        self.cells
            .iter()
            .filter(|c| c.system.role == Role::Ours && c.scenario == Scenario::Read)
            .filter(|c| c.ops.writes() > 0)
            .collect()
    }

    /// The summary tables (CPU per request first, then req/s with the share
    /// of the raw-driver ceiling) and the detailed one; with several runs,
    /// every figure is the range over the runs.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let runs = if self.runs > 1 {
            format!("; min–max over {} runs", self.runs)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "CPU time of the system's own process per request, µs (user + sys from \
             /proc/<pid>/stat over the measured window{runs}; lower is better):\n"
        );
        self.summary(&mut out, |cells| {
            spread(cells.iter().filter_map(|c| c.cpu_us()), 1)
        });
        if let Some(coarsest) = self.coarsest_cpu_us() {
            let _ = writeln!(
                out,
                "\nExact to one clock tick ({:.0} ms) per window: ±{coarsest:.1} µs/req in the \
                 cell with the fewest requests, less in the others.",
                Sample::resolution_per_request(1).as_secs_f64() * 1e3
            );
        }
        let _ = writeln!(
            out,
            "\nRequests per second; in brackets, the share of the raw-driver ceiling \
             (axum + the fewest raw driver calls, no session layer) in the same scenario{runs}:\n"
        );
        self.summary(&mut out, |cells| {
            let rate = spread(cells.iter().map(|c| c.measured.rate()), 0);
            let shares: Vec<f64> = cells.iter().filter_map(|c| self.share(c)).collect();
            if shares.is_empty() {
                rate
            } else {
                format!("{rate} ({} %)", spread(shares.iter().map(|s| s * 100.0), 0))
            }
        });
        out.push('\n');
        self.details(&mut out);
        for (system, why) in &self.skipped {
            let _ = writeln!(out, "\nNot run: {} — {why}", system.label);
        }
        out
    }

    /// The coarsest CPU-per-request figure's resolution, µs.
    fn coarsest_cpu_us(&self) -> Option<f64> {
        self.cells
            .iter()
            .filter(|c| c.cpu.is_some())
            .map(|c| Sample::resolution_per_request(c.measured.requests).as_secs_f64() * 1e6)
            .reduce(f64::max)
    }

    fn summary(&self, out: &mut String, figure: impl Fn(&[&Cell]) -> String) {
        let columns = self.columns();
        out.push_str("| system |");
        for (scenario, c) in &columns {
            let _ = write!(out, " {} c={c} |", scenario.name());
        }
        out.push_str("\n|---|");
        out.push_str(&"---:|".repeat(columns.len()));
        out.push('\n');
        for system in self.systems() {
            let _ = write!(out, "| {} |", system.label);
            for (scenario, c) in &columns {
                let cells = self.across_runs(system.key, *scenario, *c);
                if cells.is_empty() {
                    out.push_str(" – |");
                } else {
                    let _ = write!(out, " {} |", figure(&cells));
                }
            }
            out.push('\n');
        }
    }

    fn details(&self, out: &mut String) {
        out.push_str(
            "| system | scenario | c | CPU µs/req | req/s | db ops/req | finds/req | writes/req | other ops/req | p50 ms | p99 ms | wrong answers |\n\
             |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for system in self.systems() {
            for (scenario, c) in self.columns() {
                let cells = self.across_runs(system.key, scenario, c);
                if cells.is_empty() {
                    continue;
                }
                let per = |count: fn(&OpCounters) -> i64| {
                    spread(
                        cells.iter().map(|cell| cell.per_request(count(&cell.ops))),
                        2,
                    )
                };
                let _ = writeln!(
                    out,
                    "| {} | {} | {c} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    system.label,
                    scenario.name(),
                    spread(cells.iter().filter_map(|cell| cell.cpu_us()), 1),
                    spread(cells.iter().map(|cell| cell.measured.rate()), 0),
                    spread(cells.iter().map(|cell| cell.db_ops()), 2),
                    per(|ops| ops.query),
                    per(OpCounters::writes),
                    per(OpCounters::other),
                    spread(cells.iter().map(|cell| cell.measured.percentile_ms(0.5)), 2),
                    spread(
                        cells.iter().map(|cell| cell.measured.percentile_ms(0.99)),
                        2
                    ),
                    cells.iter().map(|cell| cell.measured.errors).sum::<u64>(),
                );
            }
        }
    }

    /// The median of `key`'s rate over the runs, for the plot.
    fn median_rate(&self, key: &str, scenario: Scenario, concurrency: usize) -> Option<f64> {
        let mut rates: Vec<f64> = self
            .across_runs(key, scenario, concurrency)
            .iter()
            .map(|c| c.measured.rate())
            .collect();
        if rates.is_empty() {
            return None;
        }
        rates.sort_by(f64::total_cmp);
        Some(rates[rates.len() / 2])
    }

    /// A grouped bar chart of requests per second on a log scale (the
    /// systems span two orders of magnitude), one group per scenario and
    /// concurrency, one bar per system.
    pub fn svg(&self) -> String {
        let systems = self.systems();
        let groups: Vec<(Scenario, usize)> = Scenario::ALL
            .iter()
            .flat_map(|s| self.concurrencies.iter().map(move |c| (*s, *c)))
            .collect();
        let top = self
            .cells
            .iter()
            .map(|c| c.measured.rate())
            .fold(1.0_f64, f64::max);
        let (width, height, left, bottom, top_margin) = (1000.0, 560.0, 70.0, 60.0, 30.0);
        let legend = 22.0 * systems.len() as f64;
        let plot_h = height - bottom - top_margin - legend;
        let group_w = (width - left - 20.0) / groups.len().max(1) as f64;
        let bar_w = (group_w - 16.0) / systems.len().max(1) as f64;
        let (low, high) = (100.0_f64.log10(), top.log10().ceil());
        let y = |rate: f64| {
            let level = rate.max(100.0).log10();
            top_margin + plot_h * (1.0 - (level - low) / (high - low))
        };
        let mut svg = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
             font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
             <text x=\"{left}\" y=\"18\" font-size=\"14\">Requests per second, log scale (higher is better)</text>\n"
        );
        for power in 2..=(high as i32) {
            let rate = 10f64.powi(power);
            let _ = writeln!(
                svg,
                "<line x1=\"{left}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>\
                 <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{rate:.0}</text>",
                width - 20.0,
                left - 6.0,
                y(rate) + 4.0,
                y = y(rate),
            );
        }
        for (g, (scenario, c)) in groups.iter().enumerate() {
            let x0 = left + g as f64 * group_w + 8.0;
            for (i, system) in systems.iter().enumerate() {
                if let Some(rate) = self.median_rate(system.key, *scenario, *c) {
                    let _ = writeln!(
                        svg,
                        "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"><title>{}: {rate:.0} req/s</title></rect>",
                        x0 + i as f64 * bar_w,
                        y(rate),
                        (bar_w - 2.0).max(1.0),
                        top_margin + plot_h - y(rate),
                        color(i),
                        system.label,
                    );
                }
            }
            let _ = writeln!(
                svg,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{} c={c}</text>",
                x0 + (group_w - 16.0) / 2.0,
                top_margin + plot_h + 18.0,
                scenario.name(),
            );
        }
        for (i, system) in systems.iter().enumerate() {
            let ly = height - legend - 10.0 + 22.0 * i as f64;
            let _ = writeln!(
                svg,
                "<rect x=\"{left}\" y=\"{ly:.1}\" width=\"14\" height=\"14\" fill=\"{}\"/>\
                 <text x=\"{}\" y=\"{:.1}\">{}</text>",
                color(i),
                left + 20.0,
                ly + 12.0,
                system.label,
            );
        }
        svg.push_str("</svg>\n");
        svg
    }
}

/// `values` as `min–max` (just the one figure when they agree to
/// `decimals`), or `–` when there are none.
pub fn spread(values: impl Iterator<Item = f64>, decimals: usize) -> String {
    let values: Vec<f64> = values.collect();
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if values.is_empty() {
        return "–".into();
    }
    let (low, high) = (format!("{min:.decimals$}"), format!("{max:.decimals$}"));
    if low == high {
        low
    } else {
        format!("{low}–{high}")
    }
}

fn color(index: usize) -> &'static str {
    // In `systems::ALL`'s order: greys for the ceilings, blues for this
    // store, warm colours for the peers.
    const PALETTE: [&str; 12] = [
        "#9e9e9e", "#bdbdbd", "#d6d6d6", "#616161", "#0d47a1", "#1976d2", "#42a5f5", "#90caf9",
        "#2e7d32", "#ef6c00", "#8e24aa", "#c62828",
    ];
    PALETTE[index % PALETTE.len()]
}

#[cfg(test)]
mod tests {
    use crate::goals::tests::report;

    #[test]
    fn the_tables_lead_with_cpu_per_request_as_ranges_over_the_runs() {
        let table = report().markdown();
        assert!(table.starts_with("CPU time of the system's own process per request"));
        let cpu =
            table.find("| this store, tower-sessions | – | 40.0–56.0 | – | 80.0–110.0 | – | – |");
        let rate = table.find("| this store, tower-sessions | – | 4300 (86 %) |");
        assert!(cpu.is_some() && rate.is_some() && cpu < rate, "{table}");
        // 10 ms over actix-session's 1,300 modify requests, the fewest.
        assert!(
            table.contains("±7.7 µs/req in the cell with the fewest"),
            "{table}"
        );
        assert!(table.contains(
            "| this store, tower-sessions | modify | 32 | 80.0–110.0 | 1800 | 2.00 | 1.00 | 1.00 | 0.10 |"
        ));
    }
}
