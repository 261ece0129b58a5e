//! The process signals the daemon answers: SIGTERM and SIGINT stop it (a second one exits at
//! once), SIGHUP reloads its configuration.

use std::future::Future;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::watch;

pub struct Signals {
    terminate: Signal,
    interrupt: Signal,
    hangup: Signal,
}

impl Signals {
    /// Register the handlers; do it before anything else, so no signal meets the default action.
    pub fn register() -> std::io::Result<Signals> {
        Ok(Signals {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    /// The shutdown future for [`super::run`], and the SIGHUP count it forwards meanwhile
    /// (`DaemonOptions::sighup`). After the first SIGTERM or SIGINT, a second one exits the
    /// process at once (exit code 130).
    pub fn into_shutdown(mut self) -> (impl Future<Output = ()>, watch::Receiver<u64>) {
        let (hup_tx, hup_rx) = watch::channel(0u64);
        let shutdown = async move {
            self.stop_requested(&hup_tx).await;
            tokio::spawn(async move {
                self.stop_requested(&hup_tx).await;
                eprintln!("second signal: exiting now");
                std::process::exit(130);
            });
        };
        (shutdown, hup_rx)
    }

    /// Wait for SIGTERM or SIGINT, forwarding every SIGHUP meanwhile as a reload request.
    async fn stop_requested(&mut self, reload: &watch::Sender<u64>) {
        loop {
            tokio::select! {
                _ = self.terminate.recv() => return,
                _ = self.interrupt.recv() => return,
                _ = self.hangup.recv() => {
                    reload.send_modify(|count| *count += 1);
                }
            }
        }
    }
}
