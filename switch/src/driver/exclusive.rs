//! The `host` and `null` drivers: networks whose sandboxes get no
//! interface, no address and no switch port, and which a sandbox joins
//! alone. `host` means the sandbox is the host's own namespace; `null`
//! (behind the predefined `none` network) a private namespace with
//! loopback only. Each exists once, predefined.

use super::{Driver, DriverCapabilities, PortPlan};
use crate::controller::model::{Endpoint, Network, NetworkSpec, Scope};
use crate::controller::ControllerError;
use crate::port::SegmentId;

/// A driver for an exclusive, interface-less network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExclusiveDriver {
    name: &'static str,
}

impl ExclusiveDriver {
    /// The predefined `host` network's driver.
    pub const HOST: ExclusiveDriver = ExclusiveDriver { name: "host" };
    /// The predefined `none` network's driver (Docker calls it `null`).
    pub const NULL: ExclusiveDriver = ExclusiveDriver { name: "null" };
}

impl Driver for ExclusiveDriver {
    fn name(&self) -> &'static str {
        self.name
    }

    fn capabilities(&self) -> DriverCapabilities {
        DriverCapabilities {
            scope: Scope::Local,
            uses_ipam: false,
            uses_segment: false,
            user_creatable: false,
            exclusive: true,
            routes_out: false,
            global_segment: false,
        }
    }

    fn validate(&self, _spec: &NetworkSpec) -> Result<u32, ControllerError> {
        Ok(0)
    }

    fn plan_endpoint_port(
        &self,
        _network: &Network,
        _segment: Option<SegmentId>,
        _endpoint: &Endpoint,
    ) -> Option<PortPlan> {
        None
    }
}
