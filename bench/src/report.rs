//! The results: Markdown tables, the goals, and an SVG plot.

use std::fmt::Write;

use crate::{
    load::{Measured, Scenario},
    server::OpCounters,
    systems::{Role, System, ONE_READ},
};

/// One system in one scenario at one concurrency.
#[derive(Debug, Clone)]
pub struct Cell {
    /// Which system.
    pub system: System,
    /// Which scenario.
    pub scenario: Scenario,
    /// Concurrent clients.
    pub concurrency: usize,
    /// What the load generator saw.
    pub measured: Measured,
    /// What the server counted during the measured run.
    pub ops: OpCounters,
}

impl Cell {
    fn per_request(&self, count: i64) -> f64 {
        count as f64 / (self.measured.requests.max(1)) as f64
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
}

impl Report {
    fn cell(&self, key: &str, scenario: Scenario, concurrency: usize) -> Option<&Cell> {
        self.cells
            .iter()
            .find(|c| c.system.key == key && c.scenario == scenario && c.concurrency == concurrency)
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

    /// `cell`'s rate as a share of the one-read ceiling in the same scenario.
    fn share(&self, cell: &Cell) -> Option<f64> {
        let ceiling = self.cell(ONE_READ, cell.scenario, cell.concurrency)?;
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

    /// The summary table (req/s and share of the one-read ceiling) and the
    /// detailed one.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let columns: Vec<(Scenario, usize)> = Scenario::ALL
            .iter()
            .flat_map(|s| self.concurrencies.iter().map(move |c| (*s, *c)))
            .collect();
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
                match self.cell(system.key, *scenario, *c) {
                    Some(cell) => {
                        let share = self
                            .share(cell)
                            .map(|s| format!(" ({:.0} %)", s * 100.0))
                            .unwrap_or_default();
                        let _ = write!(out, " {:.0}{share} |", cell.measured.rate());
                    }
                    None => out.push_str(" – |"),
                }
            }
            out.push('\n');
        }
        out.push_str(
            "\nRequests per second; in brackets, the share of the one-read ceiling \
             (axum + one raw driver call) in the same scenario.\n\n",
        );
        out.push_str(
            "| system | scenario | c | req/s | p50 ms | p99 ms | finds/req | writes/req | other ops/req | wrong answers |\n\
             |---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for cell in &self.cells {
            let m = &cell.measured;
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
                cell.system.label,
                cell.scenario.name(),
                cell.concurrency,
                m.rate(),
                m.percentile_ms(0.5),
                m.percentile_ms(0.99),
                cell.per_request(cell.ops.query),
                cell.per_request(cell.ops.writes()),
                cell.per_request(cell.ops.other()),
                m.errors,
            );
        }
        for (system, why) in &self.skipped {
            let _ = writeln!(out, "\nNot run: {} — {why}", system.label);
        }
        out
    }

    /// The goals, each with the figure that meets or misses it.
    pub fn goals(&self) -> String {
        let mut out = String::new();
        for &c in &self.concurrencies {
            for key in ["tower", "actix"] {
                if let Some(cell) = self.cell(key, Scenario::Read, c) {
                    if let Some(share) = self.share(cell) {
                        let verdict = if share >= 0.9 { "met" } else { "not met" };
                        let _ = writeln!(
                            out,
                            "- read-only at ≥ 90 % of the one-read ceiling ({}, c={c}): {:.0} % — {verdict}",
                            cell.system.label,
                            share * 100.0
                        );
                    }
                }
            }
        }
        for cell in self
            .cells
            .iter()
            .filter(|c| c.system.role == Role::Ours && c.scenario == Scenario::Read)
        {
            let writes = cell.per_request(cell.ops.writes());
            let verdict = if cell.ops.writes() == 0 {
                "met"
            } else {
                "not met"
            };
            let _ = writeln!(
                out,
                "- 0 writes per unmodified request ({}, c={}): {writes:.3} — {verdict}",
                cell.system.label, cell.concurrency
            );
        }
        for &c in &self.concurrencies {
            if let (Some(cached), Some(peer)) = (
                self.cell("tower-cache", Scenario::Read, c),
                self.cell("asm", Scenario::Read, c),
            ) {
                let (ours, theirs) = (cached.measured.rate(), peer.measured.rate());
                let verdict = if ours >= theirs { "met" } else { "not met" };
                let _ = writeln!(
                    out,
                    "- cached read-only ≥ axum_session_mongo's in-memory rate (c={c}): {ours:.0} vs {theirs:.0} req/s — {verdict}"
                );
            }
        }
        out
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
                if let Some(cell) = self.cell(system.key, *scenario, *c) {
                    let rate = cell.measured.rate();
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

fn color(index: usize) -> &'static str {
    const PALETTE: [&str; 9] = [
        "#9e9e9e", "#bdbdbd", "#616161", "#1565c0", "#42a5f5", "#2e7d32", "#ef6c00", "#8e24aa",
        "#c62828",
    ];
    PALETTE[index % PALETTE.len()]
}
