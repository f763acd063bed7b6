//! [`NodeControl`] for a cluster whose servers this process started, or
//! found running in its data directory (`ecoshard-postgres`). The only part
//! of the bridge library that knows the launcher's operations.

use ecoshard_postgres::{ClusterError, LocalCluster};

use super::control::{ControlError, NodeControl, Promotion};

impl NodeControl for LocalCluster {
    fn is_running(&self, node: &str) -> Result<bool, ControlError> {
        self.is_node_running(node).map_err(control_error)
    }

    fn stop(&self, node: &str, immediate: bool) -> Result<(), ControlError> {
        self.stop_node(node, immediate).map_err(control_error)
    }

    fn start(&self, node: &str) -> Result<Option<String>, ControlError> {
        self.start_node(node).map_err(control_error)
    }

    fn fail_over(&self) -> Result<Promotion, ControlError> {
        let promotion = LocalCluster::fail_over(self).map_err(control_error)?;
        Ok(Promotion {
            from: promotion.from,
            to: promotion.to,
            promote_time: promotion.promote_time,
            repointed: promotion.repointed,
        })
    }

    fn recorded_primary(&self) -> Option<String> {
        self.recorded_primary_name()
    }

    fn checkpoint(&self) -> Result<(), ControlError> {
        LocalCluster::checkpoint(self).map_err(control_error)
    }

    fn sync_replication(&self) -> bool {
        LocalCluster::sync_replication(self)
    }
}

fn control_error(error: ClusterError) -> ControlError {
    ControlError {
        refused: matches!(error, ClusterError::Refused { .. }),
        message: error.to_string(),
    }
}
