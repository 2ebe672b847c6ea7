//! Stopping cleanly: SIGTERM (a service manager, a timeout, Lambda's shutdown) and SIGINT (Ctrl-C)
//! are caught once for the whole process. A running load cancels its statement on the server,
//! rolls back, is recorded as failed and sends its notice; the watch loops stop before the next
//! marker. Nothing is cut off in the middle without the database knowing.

use std::sync::OnceLock;

use tokio::sync::watch;

/// The signal that asked us to stop.
static STOP: OnceLock<watch::Receiver<Option<&'static str>>> = OnceLock::new();

/// Starts listening for SIGTERM and SIGINT (idempotent; needs a tokio runtime). Before this is
/// called, signals keep their default behaviour.
pub fn listen() {
    STOP.get_or_init(|| {
        let (tx, rx) = watch::channel(None);
        tokio::spawn(async move {
            let name = wait_for_signal().await;
            tracing::warn!(
                "{name} received: stopping (the running load is cancelled and rolled back)"
            );
            let _ = tx.send(Some(name));
        });
        rx
    });
}

#[cfg(unix)]
async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without handlers the default (exit) applies; never report a stop that did not happen.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() -> &'static str {
    let _ = tokio::signal::ctrl_c().await;
    "Ctrl-C"
}

/// The signal received so far, if any.
pub fn requested() -> Option<&'static str> {
    STOP.get().and_then(|rx| *rx.borrow())
}

/// Waits until a stop is requested; never returns when [`listen`] was not called.
pub async fn requested_wait() -> &'static str {
    let Some(rx) = STOP.get() else {
        return std::future::pending().await;
    };
    let mut rx = rx.clone();
    let name = match rx.wait_for(Option::is_some).await {
        Ok(name) => name.unwrap_or("a stop request"),
        Err(_) => return std::future::pending().await,
    };
    name
}
