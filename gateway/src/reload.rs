//! Hot reload: on SIGHUP or a change to the config file, parse and validate off the request
//! path and swap the snapshot atomically. A bad file keeps the running config, logs every
//! problem and counts the failure.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::watch;

use crate::config::Config;
use crate::gateway::Shared;
use crate::metrics as m;
use crate::state::Snapshot;

/// Points this instance's revision gauge at `revision` (the previous one drops to 0).
pub fn publish_revision(shared: &Shared, revision: &str) {
    if let Ok(mut last) = shared.published_revision.lock() {
        let instance = shared.instance.to_string();
        if let Some(old) = last.take() {
            metrics::gauge!(m::CONFIG_REVISION, "instance" => instance.clone(), "revision" => old)
                .set(0.0);
        }
        metrics::gauge!(m::CONFIG_REVISION, "instance" => instance, "revision" => revision.to_owned())
            .set(1.0);
        *last = Some(revision.to_owned());
    }
}

/// Reloads the config file; returns the new revision or every problem found.
pub fn reload(shared: &Shared) -> Result<String, Vec<String>> {
    let Some(path) = &shared.config_path else {
        return Err(vec![
            "this gateway was not started from a config file".into(),
        ]);
    };
    let result = Config::load(path)
        .map_err(|e| e.0.iter().map(ToString::to_string).collect::<Vec<_>>())
        .and_then(Snapshot::build);
    match result {
        Ok(snapshot) => {
            let old = shared.snapshot.load();
            if snapshot.config.server.listen != old.config.server.listen
                || snapshot.config.trace.dir != old.config.trace.dir
            {
                tracing::warn!("listen address and trace directory changes take effect on restart");
            }
            let rev = snapshot.revision.clone();
            shared.snapshot.store(Arc::new(snapshot));
            publish_revision(shared, &rev);
            metrics::counter!(m::CONFIG_RELOADS, "result" => "ok").increment(1);
            tracing::info!(revision = %rev, "configuration reloaded");
            Ok(rev)
        }
        Err(errors) => {
            metrics::counter!(m::CONFIG_RELOADS, "result" => "error").increment(1);
            for e in &errors {
                tracing::error!(problem = %e, "configuration reload refused; keeping the running configuration");
            }
            Err(errors)
        }
    }
}

/// Whether a file event changes the config: a write, creation, removal or rename of the file,
/// or of `..data`, the link Kubernetes swaps when a mounted ConfigMap or Secret changes. Reads
/// and metadata-only events are not changes (reading the file while reloading must not
/// trigger another reload).
fn changes_config(ev: &notify::Event, file_name: Option<&std::ffi::OsStr>) -> bool {
    use notify::EventKind;
    use notify::event::ModifyKind;
    let relevant = matches!(
        ev.kind,
        EventKind::Create(_)
            | EventKind::Remove(_)
            | EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Name(_) | ModifyKind::Any)
    );
    relevant
        && ev.paths.iter().any(|p| {
            let name = p.file_name();
            name == file_name || name == Some(std::ffi::OsStr::new("..data"))
        })
}

/// Reloads on SIGHUP and when the config file changes (debounced).
pub fn spawn_watchers(shared: Arc<Shared>, path: PathBuf, shutdown: watch::Receiver<bool>) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(16);
    let hup_tx = tx.clone();
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        while hup.recv().await.is_some() {
            let _ = hup_tx.send(()).await;
        }
    });
    // Watch the directory, not the file: editors replace files by renaming.
    let dir = path
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    let file_name = path.file_name().map(|f| f.to_owned());
    let watch_tx = tx.clone();
    let watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if let Ok(ev) = ev
            && changes_config(&ev, file_name.as_deref())
        {
            let _ = watch_tx.try_send(());
        }
    });
    let watcher = match watcher {
        Ok(mut w) => match w.watch(&dir, RecursiveMode::NonRecursive) {
            Ok(()) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, dir = %dir.display(), "cannot watch the config directory; reload with SIGHUP");
                None
            }
        },
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch files; reload with SIGHUP");
            None
        }
    };
    tokio::spawn(async move {
        let _keep = watcher;
        let mut shutdown = shutdown;
        loop {
            tokio::select! {
                got = rx.recv() => {
                    if got.is_none() { return; }
                    // Debounce: an editor's save is several events.
                    tokio::time::sleep(Duration::from_millis(150)).await;
                    while rx.try_recv().is_ok() {}
                    let shared = shared.clone();
                    let _ = tokio::task::spawn_blocking(move || reload(&shared)).await;
                }
                _ = shutdown.changed() => return,
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{AccessKind, CreateKind, DataChange, EventKind, ModifyKind, RenameMode};

    fn ev(kind: EventKind, path: &str) -> notify::Event {
        notify::Event::new(kind).add_path(PathBuf::from(path))
    }

    #[test]
    fn only_changes_to_the_config_trigger_a_reload() {
        let name = Some(std::ffi::OsStr::new("domicile.toml"));
        let write = EventKind::Modify(ModifyKind::Data(DataChange::Content));
        assert!(changes_config(&ev(write, "/etc/d/domicile.toml"), name));
        assert!(changes_config(
            &ev(EventKind::Create(CreateKind::File), "/etc/d/domicile.toml"),
            name
        ));
        assert!(changes_config(
            &ev(
                EventKind::Modify(ModifyKind::Name(RenameMode::To)),
                "/etc/d/..data"
            ),
            name
        ));
        assert!(!changes_config(
            &ev(EventKind::Access(AccessKind::Read), "/etc/d/domicile.toml"),
            name
        ));
        assert!(!changes_config(
            &ev(
                EventKind::Access(AccessKind::Open(notify::event::AccessMode::Any)),
                "/etc/d/domicile.toml"
            ),
            name
        ));
        assert!(!changes_config(&ev(write, "/etc/d/other.toml"), name));
    }
}
