//! `switchyard`: the command line. Client subcommands talk to the daemon
//! over its unix socket; `daemon` runs it; `lab` runs the simulator in
//! process, no daemon and no root needed.

mod cli;

use clap::Parser;
use cli::{Cli, Command};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Internal(args) = &cli.command {
        // Namespace helpers must stay single-threaded: no logging threads,
        // no runtime, straight into the helper.
        switchyard_switch::real::internal_main(&args.args);
    }
    init_logging(&cli.log);
    match cli.command {
        Command::Internal(_) => unreachable!("handled above"),
        other => {
            eprintln!("switchyard: {other:?} is being built in this revision");
            ExitCode::from(2)
        }
    }
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}
