//! `switchyard`: the command line. Client subcommands talk to the daemon
//! over its unix socket; `daemon` runs it; `lab` runs the simulator in
//! process, no daemon and no root needed.

mod api;
mod cli;
mod client;
mod daemon;
mod http;
mod lab;
mod output;
mod paths;
mod run;

use clap::Parser;
use cli::{Cli, Command};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Internal(args) = &cli.command {
        // Namespace helpers must stay single-threaded: no logging threads,
        // no runtime, straight into the helper.
        switchyard_linux::internal_main(&args.args);
    }
    init_logging(&cli.log);
    let result = match cli.command {
        Command::Internal(_) => unreachable!("handled above"),
        Command::Daemon(args) => {
            return daemon::run(args).unwrap_or_else(|e| {
                eprintln!("switchyard daemon: {e:#}");
                ExitCode::from(3)
            })
        }
        Command::Lab(cmd) => {
            return lab::run(cmd).unwrap_or_else(|e| {
                eprintln!("switchyard: {e:#}");
                ExitCode::from(3)
            })
        }
        Command::Network(cmd) => client::network(cmd).map(|()| ExitCode::SUCCESS),
        Command::Ps(a) => client::ps(a).map(|()| ExitCode::SUCCESS),
        Command::Rm(a) => client::rm(a).map(|()| ExitCode::SUCCESS),
        Command::Port(a) => client::port(a).map(|()| ExitCode::SUCCESS),
        Command::Rename(a) => client::rename(a).map(|()| ExitCode::SUCCESS),
        Command::Run(a) => run::run(a),
        Command::Exec(a) => run::exec(a),
        Command::Attach(a) => run::attach(a),
    };
    result.unwrap_or_else(client::ClientError::report)
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
