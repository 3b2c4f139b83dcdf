//! `fedmesh run` and `fedmesh join`: start a node and serve until Ctrl-C or SIGTERM.

use std::process::ExitCode;

use anyhow::Context;

use crate::cli::init_logging;
use crate::config::{LogFormat, NodeConfig};
use crate::node::Node;

/// Runs a node with a resolved configuration until it is told to stop.
pub fn run_node(config: NodeConfig) -> anyhow::Result<ExitCode> {
    init_logging("info", config.log_format == LogFormat::Json);
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let node = Node::start(config).await.context("cannot start the node")?;
        eprintln!(
            "fedmesh node {} listening on {}{}",
            node.id(),
            node.local_addr(),
            node.admin_addr()
                .map(|a| format!(", admin http://{a}"))
                .unwrap_or_default()
        );
        wait_for_stop().await;
        tracing::info!("stopping: leaving the federation");
        node.shutdown().await;
        Ok(ExitCode::SUCCESS)
    })
}

async fn wait_for_stop() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
