//! What every command shares: exit codes, output (text or one JSON
//! document), progress bars, and asking before a destructive change.

use std::{
    fmt,
    io::{BufRead, IsTerminal, Write},
    process::ExitCode,
};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{json, Value};

/// The exit codes, as `--help` lists them.
pub(crate) mod code {
    /// Done.
    pub(crate) const OK: u8 = 0;
    /// Failed: the server, the configuration, a conflicting index…
    pub(crate) const FAILED: u8 = 1;
    // 2 is clap's: the command line is wrong.
    /// A destructive command without --yes and without a terminal to ask on.
    pub(crate) const NEEDS_YES: u8 = 3;
    /// Asked, and the answer was not yes: nothing was changed.
    pub(crate) const DECLINED: u8 = 4;
    /// Done, but some documents were skipped (the report lists them), or a
    /// later batch failed after earlier ones were done (the report counts
    /// them): run the command again (after fixing what it names).
    pub(crate) const INCOMPLETE: u8 = 5;
}

/// The exit codes' description for `--help` and the README.
pub(crate) const EXIT_CODES: &str = "\
Exit codes:
  0  done
  1  failed (server unreachable, bad configuration, conflicting index, …)
  2  bad command line
  3  refused: a destructive command needs --yes when there is no terminal to ask on
  4  declined at the prompt: nothing was changed
  5  incomplete: some documents were skipped (listed), or a batch failed after others were
     done (what was done is counted); run again (after fixing what it names)";

/// A command's outcome: shown as text, or as one JSON document with --json.
#[derive(Debug)]
pub(crate) struct Report {
    pub(crate) json: Value,
    pub(crate) text: String,
    pub(crate) code: u8,
}

impl Report {
    pub(crate) fn new(json: Value, text: String) -> Self {
        Self {
            json,
            text,
            code: code::OK,
        }
    }

    /// A batched command that stopped part way: what the completed batches
    /// did, the error that stopped it, exit code [`code::INCOMPLETE`].
    pub(crate) fn stopped(mut json: Value, text: &str, error: &dyn fmt::Display) -> Self {
        json["incomplete"] = Value::Bool(true);
        json["error"] = Value::String(error.to_string());
        Self {
            json,
            text: format!(
                "{}\nstopped part way: {error}\nwhat was done stays done: run the command again \
                 to finish",
                text.trim_end()
            ),
            code: code::INCOMPLETE,
        }
    }

    /// With exit code [`code::INCOMPLETE`] when `incomplete`.
    pub(crate) fn incomplete_if(mut self, incomplete: bool) -> Self {
        if incomplete {
            self.code = code::INCOMPLETE;
        }
        self
    }
}

/// An ending that is not a failure of the operation: refused or declined.
#[derive(Debug)]
pub(crate) struct Stop {
    pub(crate) code: u8,
    pub(crate) message: String,
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Stop {}

/// How this run talks to its user.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ui {
    pub(crate) json: bool,
    pub(crate) yes: bool,
}

impl Ui {
    /// A progress bar on stderr, hidden with --json or when stderr is not a
    /// terminal. `total` is an estimate (zero: none).
    pub(crate) fn progress(&self, total: u64) -> ProgressBar {
        if self.json || !std::io::stderr().is_terminal() {
            return ProgressBar::hidden();
        }
        ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr()).with_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} {per_sec} eta {eta} {msg}")
                .expect("a valid template"),
        )
    }

    /// A counter on stderr for work whose total is not known beforehand,
    /// hidden as [`progress`](Self::progress) is.
    pub(crate) fn counter(&self, unit: &str) -> ProgressBar {
        if self.json || !std::io::stderr().is_terminal() {
            return ProgressBar::hidden();
        }
        let template = format!("{{spinner}} {{pos}} {unit} {{per_sec}} {{msg}}");
        ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
            .with_style(ProgressStyle::with_template(&template).expect("a valid template"))
    }

    /// Goes on only if the user agrees to `change`: with --yes at once; on
    /// a terminal after a "y"; without one, never.
    pub(crate) fn confirm(&self, change: &str) -> anyhow::Result<()> {
        if self.yes {
            return Ok(());
        }
        if !std::io::stdin().is_terminal() {
            return Err(Stop {
                code: code::NEEDS_YES,
                message: format!(
                    "refusing to {change} without confirmation: no terminal to ask on; \
                     add --yes to go ahead"
                ),
            }
            .into());
        }
        let mut stderr = std::io::stderr();
        write!(stderr, "About to {change}. Go ahead? [y/N] ")?;
        stderr.flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
            return Ok(());
        }
        Err(Stop {
            code: code::DECLINED,
            message: "not confirmed: nothing was changed".into(),
        }
        .into())
    }
}

/// Prints the outcome and turns it into the process's exit code.
pub(crate) fn finish(program: &str, ui: Ui, outcome: anyhow::Result<Report>) -> ExitCode {
    match outcome {
        Ok(report) => {
            if ui.json {
                println!("{}", report.json);
            } else {
                println!("{}", report.text.trim_end());
            }
            ExitCode::from(report.code)
        }
        Err(error) => {
            let code = error
                .downcast_ref::<Stop>()
                .map_or(code::FAILED, |s| s.code);
            eprintln!("{program}: {error:#}");
            if ui.json {
                println!(
                    "{}",
                    json!({ "error": format!("{error:#}"), "exit_code": code })
                );
            }
            ExitCode::from(code)
        }
    }
}
