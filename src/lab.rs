//! `switchyard lab ...`: runs lab files in the simulator, in process — no
//! daemon, no root. Exit status 0 only when every expectation held (or,
//! for `check`, every run was deterministic); 1 for a failed expectation,
//! a nondeterministic run or a mistake in the lab file.

use crate::cli::{Format, LabCheckArgs, LabCommand, LabRunArgs, LabShowArgs};
use anyhow::Context as _;
use comfy_table::presets::NOTHING;
use comfy_table::{ContentArrangement, Table};
use serde_json::{json, Value};
use std::process::ExitCode;
use switchyard_sim::compare_runs;
use switchyard_sim::lab::{self, units::parse_duration, Lab, RunOptions};

/// Runs a lab subcommand.
pub fn run(cmd: LabCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        LabCommand::Run(args) => run_lab(args),
        LabCommand::Show(args) => show(args),
        LabCommand::Check(args) => check(args),
    }
}

/// `println!` that stops quietly when stdout is closed (`| head`) instead
/// of panicking.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// A borderless table in Docker's style (as `output::table`).
fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut t = Table::new();
    t.load_preset(NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(headers.to_vec());
    for row in rows {
        t.add_row(row);
    }
    t.to_string()
        .lines()
        .map(|l| l.strip_prefix(' ').unwrap_or(l).trim_end())
        .collect::<Vec<_>>()
        .join("\n")
}

fn print_json(v: &Value) {
    say!(
        "{}",
        serde_json::to_string_pretty(v).expect("JSON values serialise")
    );
}

/// Loads a lab, or prints its problems (file:line:column: what to write)
/// and gives the exit status for a user error.
fn load(path: &std::path::Path) -> Result<Lab, ExitCode> {
    Lab::from_file(path).map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(1)
    })
}

fn duration_arg(flag: &str, text: &str) -> Result<std::time::Duration, ExitCode> {
    parse_duration(text).map_err(|e| {
        eprintln!("switchyard: --{flag}: {e}");
        ExitCode::from(1)
    })
}

fn run_lab(args: LabRunArgs) -> anyhow::Result<ExitCode> {
    let lab = match load(&args.file) {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let until = match args
        .until
        .as_deref()
        .map(|u| duration_arg("until", u))
        .transpose()
    {
        Ok(u) => u,
        Err(code) => return Ok(code),
    };
    let options = RunOptions {
        seed: args.seed,
        until,
        explain: args.explain,
        capture: args.pcap.is_some(),
        record: false,
    };
    let (report, sim) = match lab.run(&options) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(1));
        }
    };
    let pcaps = match &args.pcap {
        Some(dir) => sim
            .write_pcaps(dir)
            .with_context(|| format!("writing pcaps into {}", dir.display()))?,
        None => Vec::new(),
    };
    let held = report.steps.iter().filter(|s| s.passed).count();
    match args.format {
        Format::Json => {
            let mut v = serde_json::to_value(&report)?;
            v["digest_hex"] = json!(format!("{:016x}", report.digest.hash));
            v["pcaps"] = json!(pcaps
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>());
            print_json(&v);
        }
        Format::Table => {
            say!("lab {} ({}, seed {})", report.lab, report.file, report.seed);
            if !report.description.is_empty() {
                say!("{}", report.description.trim());
            }
            if !report.explanations.is_empty() {
                say!();
                let rows = report
                    .explanations
                    .iter()
                    .map(|e| vec![e.time.to_string(), e.host.clone(), e.text.clone()])
                    .collect();
                say!(
                    "{}",
                    table(&["TIME", "HOST", "WHY THE FRAME WENT WHERE IT WENT"], rows)
                );
            }
            if !report.faults.is_empty() {
                say!();
                let rows = report
                    .faults
                    .iter()
                    .map(|f| {
                        vec![
                            f.time.to_string(),
                            f.fault.clone(),
                            f.error.clone().unwrap_or_else(|| "applied".into()),
                        ]
                    })
                    .collect();
                say!("{}", table(&["TIME", "FAULT", "RESULT"], rows));
            }
            say!();
            let rows = report
                .steps
                .iter()
                .map(|s| {
                    vec![
                        s.at.to_string(),
                        s.step.clone(),
                        s.expected.clone(),
                        s.observed.clone(),
                        if s.passed {
                            "PASS".into()
                        } else {
                            "FAIL".into()
                        },
                    ]
                })
                .collect();
            say!(
                "{}",
                table(&["TIME", "STEP", "EXPECTED", "OBSERVED", "RESULT"], rows)
            );
            for s in report.steps.iter().filter(|s| !s.passed) {
                say!(
                    "  {}:{}: {} — expected {}, observed {}",
                    report.file,
                    s.line,
                    s.step,
                    s.expected,
                    s.observed
                );
            }
            say!();
            for p in &pcaps {
                say!("pcap: {}", p.display());
            }
            say!(
                "verdict: {} ({held}/{} expectations held, run ended at {})",
                if report.passed { "PASS" } else { "FAIL" },
                report.steps.len(),
                report.ended_at
            );
            say!("digest: {}", report.digest);
        }
    }
    Ok(if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn show(args: LabShowArgs) -> anyhow::Result<ExitCode> {
    let lab = match load(&args.file) {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let at = match duration_arg("at", &args.at) {
        Ok(d) => d,
        Err(code) => return Ok(code),
    };
    let sim = match lab.run_to(args.seed.unwrap_or(lab.seed()), at) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(1));
        }
    };
    let t = match lab::show(&sim, &args.what) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("switchyard: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    match args.format {
        Format::Json => {
            let rows: Vec<Value> = t
                .rows
                .iter()
                .map(|r| {
                    Value::Object(
                        t.headers
                            .iter()
                            .zip(r)
                            .map(|(h, c)| (h.to_ascii_lowercase().replace(' ', "_"), json!(c)))
                            .collect(),
                    )
                })
                .collect();
            print_json(&json!({ "title": t.title, "rows": rows }));
        }
        Format::Table => {
            say!("{}", t.title);
            let headers: Vec<&str> = t.headers.iter().map(String::as_str).collect();
            if t.rows.is_empty() {
                say!("(empty)");
            } else {
                say!("{}", table(&headers, t.rows));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn check(args: LabCheckArgs) -> anyhow::Result<ExitCode> {
    let lab = match load(&args.file) {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let mut rows = Vec::new();
    let mut all_same = true;
    let mut divergences = Vec::new();
    for seed in args.seed..args.seed.saturating_add(args.seeds.max(1)) {
        let options = RunOptions {
            seed: Some(seed),
            record: true,
            ..RunOptions::default()
        };
        let first = lab.run(&options);
        let second = lab.run(&options);
        let ((ra, sa), (rb, sb)) = match (first, second) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => {
                eprintln!("{e}");
                return Ok(ExitCode::from(1));
            }
        };
        let same = compare_runs(&sa, &sb);
        if let Err(d) = &same {
            all_same = false;
            divergences.push(d.to_string());
        }
        let held = ra.steps.iter().filter(|s| s.passed).count();
        rows.push(vec![
            seed.to_string(),
            format!("{:016x}", ra.digest.hash),
            ra.digest.frames.to_string(),
            format!("{held}/{}", ra.steps.len()),
            if same.is_ok() && ra.digest == rb.digest {
                "same".into()
            } else {
                "DIFFERENT".into()
            },
        ]);
    }
    say!(
        "{}",
        table(
            &["SEED", "DIGEST", "FRAMES", "EXPECTATIONS", "TWO RUNS"],
            rows
        )
    );
    for d in &divergences {
        say!("{d}");
    }
    say!(
        "verdict: {}",
        if all_same {
            "deterministic"
        } else {
            "NONDETERMINISTIC"
        }
    );
    Ok(if all_same {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
