//! A subscription's delivery loop while it runs: how to stop it, and its counters.

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::delivery::worker::{Context, Resume, Worker};
use super::delivery::DeliveryMetrics;

pub(super) struct Running {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    pub metrics: Arc<DeliveryMetrics>,
}

impl Running {
    pub fn start(ctx: Context, resume: Resume) -> Running {
        let metrics = ctx.metrics.clone();
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(Worker::new(Arc::new(ctx), resume).run(stopped));
        Running { stop, task, metrics }
    }

    /// Stops the loop and waits until it has written its mark.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "event grid: a delivery loop ended abnormally");
        }
    }
}
