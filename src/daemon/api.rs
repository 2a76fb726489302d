//! Request routing: `/v1/...` routes to controller operations, each
//! followed by realising the controller's changes in the runtime (TAP
//! ports, namespaces, DNS records). Routes are documented in `docs/api.md`.

use super::runtime::RuntimeError;
use super::{Daemon, Inner};
use crate::api::{
    ConnectRequest, ContainerCreateRequest, DisconnectRequest, ErrorBody, ProcessReport, PREFIX,
};
use crate::http::server::Handler;
use crate::http::{Request, Response};
use serde_json::{json, Value};
use std::sync::Arc;
use switchyard_switch::controller::model::{
    EndpointSpec, NetnsMode, NetworkFilter, NetworkSpec, SandboxSpec,
};
use switchyard_switch::ControllerError;

/// An API failure: an HTTP status and the one-line message for the user.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: u16,
    message: String,
}

impl ApiError {
    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 400,
            message: message.into(),
        }
    }
    fn not_found(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 404,
            message: message.into(),
        }
    }
}

impl From<ControllerError> for ApiError {
    fn from(e: ControllerError) -> ApiError {
        let status = match &e {
            ControllerError::NoSuchNetwork { .. } | ControllerError::NoSuchSandbox { .. } => 404,
            ControllerError::NetworkExists { .. }
            | ControllerError::SandboxExists { .. }
            | ControllerError::AlreadyConnected { .. }
            | ControllerError::ActiveEndpoints { .. }
            | ControllerError::SandboxInUse { .. }
            | ControllerError::ConcurrentChange { .. } => 409,
            e if e.is_user_error() => 400,
            _ => 500,
        };
        ApiError {
            status,
            message: e.to_string(),
        }
    }
}

impl From<RuntimeError> for ApiError {
    fn from(e: RuntimeError) -> ApiError {
        ApiError {
            status: if e.is_user_error() { 400 } else { 500 },
            message: e.to_string(),
        }
    }
}

type ApiResult = Result<(u16, Value), ApiError>;

/// Routes one request.
pub(crate) fn handle(daemon: &Daemon, req: &Request) -> Response {
    match route(daemon, req) {
        Ok((status, body)) => Response::json(status, &body),
        Err(e) => {
            if e.status >= 500 {
                tracing::error!(path = %req.path, error = %e.message, "request failed");
            }
            let kind = if e.status >= 500 { "internal" } else { "user" };
            Response::json(
                e.status,
                &serde_json::to_value(ErrorBody {
                    message: e.message,
                    kind: kind.into(),
                })
                .expect("serialises"),
            )
        }
    }
}

/// The routes as the API server runs them.
pub(crate) struct ApiHandler(pub(crate) Arc<Daemon>);

impl Handler for ApiHandler {
    fn handle(&self, req: &Request) -> Response {
        handle(&self.0, req)
    }

    /// A handler panicked, maybe holding the control-plane lock: take the
    /// lock over and clear its poison, put the controller's memory back to
    /// the store's copy (an operation cut short commits nothing), then
    /// realise the changes committed before the panic that the handler did
    /// not get to apply. What the panic left half-done in the data plane
    /// only a restart (which restores every port) repairs; the 500 says so.
    fn recover(&self, req: &Request) {
        let mut inner = self.0.lock();
        self.0.inner.clear_poison();
        let Inner {
            controller,
            runtime,
        } = &mut *inner;
        if let Err(e) = controller.reload() {
            tracing::error!(error = %e, "could not reload the state after a panicked request");
        }
        if let Err(e) = runtime.apply(controller) {
            tracing::error!(error = %e, "could not realise the changes left by a panicked request");
        }
        tracing::error!(method = %req.method, path = %req.path, "recovered from a panic in an API handler");
    }
}

fn body<T: serde::de::DeserializeOwned>(req: &Request) -> Result<T, ApiError> {
    let bytes = if req.body.is_empty() {
        b"{}".as_slice()
    } else {
        &req.body
    };
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("bad request body: {e}")))
}

fn route(daemon: &Daemon, req: &Request) -> ApiResult {
    let path = req.path.strip_prefix(PREFIX).ok_or_else(|| {
        ApiError::not_found(format!("no route {}; routes start with {PREFIX}", req.path))
    })?;
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let method = req.method.as_str();
    let mut inner = daemon.lock();
    let inner = &mut *inner;
    match (method, parts.as_slice()) {
        ("GET", ["version"]) => Ok((200, version(daemon))),
        ("GET", ["networks"]) => list_networks(inner, req),
        ("POST", ["networks"]) => create_network(inner, body(req)?),
        ("GET", ["networks", key]) => inspect_network(inner, key),
        ("DELETE", ["networks", key]) => remove_network(inner, key),
        ("POST", ["networks", key, "connect"]) => connect(inner, key, body(req)?),
        ("POST", ["networks", key, "disconnect"]) => disconnect(inner, key, body(req)?),
        ("GET", ["containers"]) => {
            let list: Vec<Value> = inner
                .controller
                .sandboxes()
                .map(|s| inner.runtime.container_info(&inner.controller, s))
                .map(|c| serde_json::to_value(c).expect("serialises"))
                .collect();
            Ok((200, Value::Array(list)))
        }
        ("POST", ["containers"]) => create_container(inner, body(req)?),
        ("GET", ["containers", key]) => {
            let sandbox = inner.controller.sandbox(key)?;
            Ok((
                200,
                to_json(&inner.runtime.container_info(&inner.controller, sandbox)),
            ))
        }
        ("DELETE", ["containers", key]) => {
            let force = matches!(req.query_param("force"), Some("1" | "true"));
            remove_container(inner, key, force)
        }
        ("POST", ["containers", key, "rename"]) => {
            #[derive(serde::Deserialize)]
            struct Rename {
                name: String,
            }
            let req: Rename = body(req)?;
            let sandbox = inner.controller.rename_sandbox(key, &req.name)?;
            inner.runtime.apply(&mut inner.controller)?;
            Ok((200, json!({ "Name": sandbox.name, "Id": sandbox.id })))
        }
        ("POST", ["containers", key, "process"]) => {
            let report: ProcessReport = body(req)?;
            inner
                .runtime
                .record_process(&mut inner.controller, key, report)?;
            Ok((200, json!({})))
        }
        ("GET", ["switch"]) => Ok((200, inner.runtime.switch_view(&inner.controller))),
        (_, ["version" | "networks" | "containers" | "switch", ..]) => Err(ApiError {
            status: 405,
            message: format!("{method} is not allowed on {}", req.path),
        }),
        _ => Err(ApiError::not_found(format!(
            "no route {method} {}; see docs/api.md",
            req.path
        ))),
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).expect("API types serialise")
}

fn version(daemon: &Daemon) -> Value {
    json!({
        "Version": env!("CARGO_PKG_VERSION"),
        "ApiVersion": 1,
        "Pid": std::process::id(),
        "Rootless": !crate::paths::is_root(),
        "StateDir": daemon.state_dir,
        "Socket": daemon.socket,
    })
}

fn list_networks(inner: &mut Inner, req: &Request) -> ApiResult {
    let mut filter = NetworkFilter::default();
    for f in req.query_params("filter") {
        filter.add(f).map_err(ApiError::bad_request)?;
    }
    let list: Vec<Value> = inner
        .controller
        .list_networks(&filter)
        .into_iter()
        .map(|n| {
            let mut v = to_json(&inner.controller.network_view(n));
            v["Switchyard"]["Counters"] = inner.runtime.network_counters(&inner.controller, n);
            v
        })
        .collect();
    Ok((200, Value::Array(list)))
}

fn create_network(inner: &mut Inner, spec: NetworkSpec) -> ApiResult {
    let network = inner.controller.create_network(spec)?;
    inner.runtime.apply(&mut inner.controller)?;
    Ok((201, to_json(&inner.controller.network_view(&network))))
}

fn inspect_network(inner: &mut Inner, key: &str) -> ApiResult {
    let network = inner.controller.network(key)?;
    let mut v = to_json(&inner.controller.network_view(network));
    v["Switchyard"]["Counters"] = inner.runtime.network_counters(&inner.controller, network);
    v["Switchyard"]["Ports"] = inner.runtime.port_counters(&inner.controller, network);
    if let Some(gateway) = inner.runtime.gateway(&network.id) {
        v["Switchyard"]["Gateway"] = match gateway.report() {
            Ok(report) => to_json(&report),
            Err(e) => json!({ "Error": e.to_string() }),
        };
    }
    Ok((200, v))
}

fn remove_network(inner: &mut Inner, key: &str) -> ApiResult {
    let network = inner.controller.remove_network(key)?;
    inner.runtime.apply(&mut inner.controller)?;
    Ok((200, json!({ "Name": network.name, "Id": network.id })))
}

fn connect(inner: &mut Inner, key: &str, req: ConnectRequest) -> ApiResult {
    let ifname = inner
        .runtime
        .interface_name_for(&inner.controller, &req.container)?;
    let spec = EndpointSpec {
        ipv4: req.ip,
        ipv6: req.ip6,
        aliases: req.aliases,
        mac: None,
        ifname,
    };
    let endpoint = inner.controller.connect(key, &req.container, spec)?;
    if let Err(e) = inner.runtime.apply(&mut inner.controller) {
        // The port could not be made: undo the endpoint so state and data
        // plane agree, then report the cause.
        let _ = inner.controller.disconnect(key, &req.container, true);
        let _ = inner.runtime.apply(&mut inner.controller);
        return Err(e.into());
    }
    Ok((200, to_json(&endpoint)))
}

fn disconnect(inner: &mut Inner, key: &str, req: DisconnectRequest) -> ApiResult {
    let endpoint = inner
        .controller
        .disconnect(key, &req.container, req.force)?;
    inner.runtime.apply(&mut inner.controller)?;
    Ok((200, to_json(&endpoint)))
}

fn create_container(inner: &mut Inner, req: ContainerCreateRequest) -> ApiResult {
    let (mode, network) = if req.netns.is_some() {
        (NetnsMode::Private, Some(req.network.clone()))
    } else {
        match req.network.as_str() {
            "host" => (NetnsMode::Host, None),
            "none" => (NetnsMode::None, None),
            n => match n.strip_prefix("container:") {
                Some(other) => (NetnsMode::Container(other.to_string()), None),
                None => (NetnsMode::Private, Some(n.to_string())),
            },
        }
    };
    if network.is_none() && (req.ip.is_some() || req.ip6.is_some() || !req.aliases.is_empty()) {
        return Err(ApiError::bad_request(format!(
            "--ip, --ip6 and --alias need a network to apply to; --network {} has none",
            req.network
        )));
    }
    if network.is_none() && !req.publish.is_empty() {
        return Err(ApiError::bad_request(format!(
            "-p needs a network with a way in; --network {} has none (use a bridge network, \
             or leave out -p: with --network host the container's ports are the host's)",
            req.network
        )));
    }
    // Check the network before creating anything, so a typo costs nothing.
    if let Some(n) = &network {
        inner.controller.network(n)?;
    }
    let sandbox = inner.controller.create_sandbox(SandboxSpec {
        name: req.name.clone(),
        hostname: String::new(),
        mode,
        labels: Default::default(),
    })?;
    let result = (|| -> Result<(), ApiError> {
        inner
            .runtime
            .prepare_sandbox(&mut inner.controller, &sandbox.id, &req)?;
        if let Some(n) = &network {
            let spec = EndpointSpec {
                ipv4: req.ip,
                ipv6: req.ip6,
                aliases: req.aliases.clone(),
                mac: None,
                ifname: inner
                    .runtime
                    .interface_name_for(&inner.controller, &sandbox.id)?,
            };
            inner.controller.connect(n, &sandbox.id, spec)?;
        }
        inner.runtime.apply(&mut inner.controller)?;
        inner
            .runtime
            .publish_ports(&mut inner.controller, &sandbox.id, &req.publish)?;
        Ok(())
    })();
    if let Err(e) = result {
        // Leave nothing behind: no sandbox record, no holder, no TAP.
        let _ = inner.controller.remove_sandbox(&sandbox.id, true);
        let _ = inner.runtime.apply(&mut inner.controller);
        return Err(e);
    }
    let sandbox = inner.controller.sandbox(&sandbox.id)?;
    Ok((
        201,
        to_json(&inner.runtime.container_info(&inner.controller, sandbox)),
    ))
}

fn remove_container(inner: &mut Inner, key: &str, force: bool) -> ApiResult {
    let sandbox = inner.controller.sandbox(key)?.clone();
    inner
        .runtime
        .check_removable(&inner.controller, &sandbox, force)?;
    let removed = inner.controller.remove_sandbox(key, force)?;
    inner.runtime.apply(&mut inner.controller)?;
    Ok((200, json!({ "Name": removed.name, "Id": removed.id })))
}
