//! `run`, `exec` and `attach`: the daemon makes the sandbox; the client
//! itself starts the user's command inside it (joining its namespaces just
//! before `exec`), so the command's stdio is the user's terminal and its
//! exit status is ours.

use crate::api::{ContainerCreateRequest, ContainerInfo, ProcessReport};
use crate::cli::{AttachArgs, ExecArgs, RunArgs};
use crate::client::{
    container, create_container, parse_ipv4, parse_ipv6, Client, ClientError, ClientResult,
};
use crate::http::percent_encode;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitCode, Stdio};
use switchyard_linux::{command_in, command_in_confined, Capabilities, Holder, Join, NetnsTarget};
use switchyard_switch::controller::publish::{parse_add_host, parse_publish};

/// Builds the command for `argv` inside a container's namespaces: every
/// namespace of its holder (mount, UTS, PID, network; user when rootless),
/// narrowed to the capabilities the daemon recorded for it. A namespace
/// adopted with `attach` has only its network to join, and its commands
/// are not confined.
fn command_for(info: &ContainerInfo, argv: &[String]) -> ClientResult<Command> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| ClientError::User("no command given after --".into()))?;
    if info.status != "running" {
        return Err(ClientError::User(format!(
            "container {} has no namespace any more (status {}); remove it with switchyard rm {}",
            info.name, info.status, info.name
        )));
    }
    let mut cmd = if let (Some(pid), Some(start_time)) = (info.holder_pid, info.holder_start_time) {
        let target = NetnsTarget::Holder(Holder { pid, start_time });
        let caps = match &info.capabilities {
            Some(names) => Capabilities::from_names(names).map_err(ClientError::Internal)?,
            None => Capabilities::docker_default(),
        };
        command_in_confined(&target, Join::ALL, caps, program)
            .map_err(|e| ClientError::Internal(e.to_string()))?
    } else if info.mode == "host" {
        // Made before host containers had a holder of their own.
        Command::new(program)
    } else if let Some(path) = &info.netns {
        command_in(&NetnsTarget::Path(path.into()), Join::NET, program)
            .map_err(|e| ClientError::Internal(e.to_string()))?
    } else {
        return Err(ClientError::Internal(format!(
            "container {} has no namespace to enter",
            info.name
        )));
    };
    cmd.args(args);
    Ok(cmd)
}

fn report(client: &Client, name: &str, report: &ProcessReport) {
    let body = serde_json::to_value(report).expect("serialises");
    if let Err(ClientError::User(m) | ClientError::Internal(m)) = client.call(
        "POST",
        &format!("/containers/{}/process", percent_encode(name)),
        Some(&body),
    ) {
        tracing::warn!(error = %m, "could not record the command with the daemon");
    }
}

/// The exit status to give for a finished child: its code, or 128+signal.
fn exit_code_of(status: std::process::ExitStatus) -> i32 {
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// `run`.
pub fn run(a: RunArgs) -> ClientResult<ExitCode> {
    // Checked here too, so a typo fails before anything is made.
    for spec in &a.publish {
        parse_publish(spec).map_err(|e| ClientError::User(e.to_string()))?;
    }
    for spec in &a.add_host {
        parse_add_host(spec).map_err(|e| ClientError::User(e.to_string()))?;
    }
    if a.detach && a.rm {
        return Err(ClientError::User(
            "--rm cannot be combined with -d yet; remove the container with switchyard rm -f"
                .into(),
        ));
    }
    let client = Client::new(&a.socket);
    let req = ContainerCreateRequest {
        name: a.name.clone(),
        network: a.network.clone(),
        ip: parse_ipv4("--ip", &a.ip)?,
        ip6: parse_ipv6("--ip6", &a.ip6)?,
        aliases: a.alias.clone(),
        netns: None,
        cap_add: a.cap_add.clone(),
        cap_drop: a.cap_drop.clone(),
        privileged: a.privileged,
        pid: a.pid.clone(),
        publish: a.publish.clone(),
        add_host: a.add_host.clone(),
    };
    let info = create_container(&client, &req)?;
    let mut cmd = command_for(&info, &a.command)?;
    if a.detach {
        let log = info.log.clone().unwrap_or_else(|| "/dev/null".into());
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| ClientError::Internal(format!("opening {log}: {e}")))?;
        let err = out
            .try_clone()
            .map_err(|e| ClientError::Internal(e.to_string()))?;
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child = cmd.spawn().map_err(|e| spawn_error(&a.command, e))?;
        report(
            &client,
            &info.id,
            &ProcessReport {
                pid: child.id(),
                start_time: start_time_of(child.id()),
                command: a.command.clone(),
                exit_code: None,
            },
        );
        println!("{}", info.id);
        return Ok(ExitCode::SUCCESS);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            if a.rm {
                let _ = client.call(
                    "DELETE",
                    &format!("/containers/{}?force=1", percent_encode(&info.id)),
                    None,
                );
            }
            return Err(spawn_error(&a.command, e));
        }
    };
    report(
        &client,
        &info.id,
        &ProcessReport {
            pid: child.id(),
            start_time: start_time_of(child.id()),
            command: a.command.clone(),
            exit_code: None,
        },
    );
    let status = child
        .wait()
        .map_err(|e| ClientError::Internal(format!("waiting for the command: {e}")))?;
    let code = exit_code_of(status);
    if a.rm {
        client.call(
            "DELETE",
            &format!("/containers/{}?force=1", percent_encode(&info.id)),
            None,
        )?;
    } else {
        report(
            &client,
            &info.id,
            &ProcessReport {
                pid: child.id(),
                start_time: None,
                command: a.command,
                exit_code: Some(code),
            },
        );
    }
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

/// The start time of a process we just spawned (see [`ProcessReport`]).
fn start_time_of(pid: u32) -> Option<u64> {
    Holder::from_pid(pid).ok().map(|h| h.start_time)
}

fn spawn_error(argv: &[String], e: std::io::Error) -> ClientError {
    let program = argv.first().map(String::as_str).unwrap_or("");
    if e.kind() == std::io::ErrorKind::NotFound {
        ClientError::User(format!(
            "{program}: command not found inside the container (check the name and PATH)"
        ))
    } else {
        ClientError::Internal(format!("cannot start {program} inside the container: {e}"))
    }
}

/// `exec`.
pub fn exec(a: ExecArgs) -> ClientResult<ExitCode> {
    let client = Client::new(&a.socket);
    let info = container(&client, &a.container)?;
    let mut cmd = command_for(&info, &a.command)?;
    let status = cmd.status().map_err(|e| spawn_error(&a.command, e))?;
    Ok(ExitCode::from(exit_code_of(status).clamp(0, 255) as u8))
}

/// `attach`.
pub fn attach(a: AttachArgs) -> ClientResult<ExitCode> {
    let client = Client::new(&a.socket);
    // Not canonicalised: /proc/PID/ns/net is a magic link, not a real path.
    let netns = if a.netns.is_absolute() {
        a.netns.clone()
    } else {
        std::env::current_dir()
            .map_err(|e| ClientError::Internal(e.to_string()))?
            .join(&a.netns)
    };
    let req = ContainerCreateRequest {
        name: a.name,
        network: a.network,
        ip: parse_ipv4("--ip", &a.ip)?,
        ip6: None,
        aliases: a.alias,
        netns: Some(netns),
        ..Default::default()
    };
    let info = create_container(&client, &req)?;
    println!("{}", info.id);
    Ok(ExitCode::SUCCESS)
}
