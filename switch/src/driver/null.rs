//! The `null` driver behind the predefined `none` network: a private
//! namespace with loopback only, which can never join another network.

use super::{Driver, DriverCapabilities, PortPlan};
use crate::controller::model::{Endpoint, Network, NetworkSpec, Scope};
use crate::controller::ControllerError;

/// The predefined `none` network's driver (Docker calls it `null`).
#[derive(Clone, Copy, Debug, Default)]
pub struct NullDriver;

impl Driver for NullDriver {
    fn name(&self) -> &'static str {
        "null"
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
