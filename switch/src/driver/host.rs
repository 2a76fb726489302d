//! The `host` driver: the sandbox is the host's own network namespace. No
//! interface, no address, no switch port.

use super::{Driver, DriverCapabilities, PortPlan};
use crate::controller::model::{Endpoint, Network, NetworkSpec, Scope};
use crate::controller::ControllerError;

/// The predefined `host` network's driver.
#[derive(Clone, Copy, Debug, Default)]
pub struct HostDriver;

impl Driver for HostDriver {
    fn name(&self) -> &'static str {
        "host"
    }

    fn capabilities(&self) -> DriverCapabilities {
        DriverCapabilities {
            scope: Scope::Local,
            uses_ipam: false,
            uses_segment: false,
            user_creatable: false,
            exclusive: true,
        }
    }

    fn validate(&self, _spec: &NetworkSpec) -> Result<u32, ControllerError> {
        Ok(0)
    }

    fn plan_port(&self, _network: &Network, _endpoint: &Endpoint) -> Option<PortPlan> {
        None
    }
}
