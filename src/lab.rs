//! `switchyard lab ...`: runs lab files in the simulator (being built).

use crate::cli::LabCommand;
use std::process::ExitCode;

/// Runs a lab subcommand.
pub fn run(cmd: LabCommand) -> anyhow::Result<ExitCode> {
    anyhow::bail!("lab {cmd:?}: the simulator is being built in this revision")
}
