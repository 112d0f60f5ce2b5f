//! Hot reload: on SIGHUP or a change to the config file, parse and validate off the request
//! path and swap the snapshot atomically. A bad file keeps the running config, logs every
//! problem and counts the failure.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::watch;

use crate::config::{Config, GeoipSource};
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
    // How old the GeoIP data is: alert on a database that stopped being updated.
    if let Some(geo) = &shared.snapshot.load().geoip {
        metrics::gauge!(m::GEOIP_BUILD_EPOCH, "instance" => shared.instance.to_string())
            .set(geo.build_epoch() as f64);
    }
}

/// Reloads the config file; returns the new revision or every problem found.
pub fn reload(shared: &Shared) -> Result<String, Vec<String>> {
    let Some(path) = &shared.config_path else {
        return Err(vec![
            "this gateway was not started from a config file".into(),
        ]);
    };
    let result = Config::load_for_running(path, shared.buffer_budget)
        .map_err(|e| e.0.iter().map(ToString::to_string).collect::<Vec<_>>())
        .and_then(|config| {
            // A listener open beyond loopback never runs without a token.
            if let Some(addr) = shared.admin_open
                && config.admin.token.is_none()
            {
                return Err(vec![format!(
                    "{}: admin.token: required while the admin listener ({addr}) is not on loopback",
                    path.display()
                )]);
            }
            // The certificate, key and client CA are read again, for new connections: a
            // rotated certificate is served without a restart, a broken one refuses the reload.
            let tls = match (&shared.tls, &config.server.tls) {
                (Some(_), Some(t)) => Some(
                    crate::tls::server_config_with_client_ca(&t.cert, &t.key, t.client_ca.as_deref())
                        .map_err(|e| vec![format!("{}: server.tls: {e}", path.display())])?,
                ),
                _ => None,
            };
            Ok((config, tls))
        })
        .and_then(|(config, tls)| Ok((Snapshot::build(config)?, tls)));
    match result {
        Ok((snapshot, tls)) => {
            let old = shared.snapshot.load();
            if snapshot.config.server.listen != old.config.server.listen
                || snapshot.config.trace.dir != old.config.trace.dir
            {
                tracing::warn!("listen address and trace directory changes take effect on restart");
            }
            let (new, running) = (&snapshot.config.server.limits, &old.config.server.limits);
            if new.max_buffered_bytes != running.max_buffered_bytes
                || new.max_concurrent_requests != running.max_concurrent_requests
                || new.max_connections != running.max_connections
            {
                tracing::warn!(
                    "server.limits max_buffered_bytes, max_concurrent_requests and max_connections changes take effect on restart"
                );
            }
            if snapshot.config.admin.listen != old.config.admin.listen
                || snapshot.config.server.tls.is_some() != shared.tls.is_some()
            {
                tracing::warn!(
                    "admin listen address changes, and turning TLS on or off, take effect on restart"
                );
            }
            let rev = snapshot.revision.clone();
            let snapshot = Arc::new(snapshot);
            shared.snapshot.store(snapshot.clone());
            if let (Some(live), Some(tls)) = (&shared.tls, tls) {
                live.store(tls);
            }
            crate::upstream::spawn_health_checks(&snapshot);
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

/// Whether a file event changes a watched file: a write, creation, removal or rename of it,
/// or of `..data`, the link Kubernetes swaps when a mounted ConfigMap or Secret changes. Reads
/// and metadata-only events are not changes (reading the file while reloading must not
/// trigger another reload).
fn changes_watched(ev: &notify::Event, names: &[OsString]) -> bool {
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
            p.file_name()
                .is_some_and(|name| name == "..data" || names.iter().any(|n| n == name))
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
    // The files whose change reloads: the config, the GeoIP database and any extra
    // knowledge-base files it names. Directories are watched, not files: editors and
    // deployment tools replace files by renaming.
    let mut files = vec![path.clone()];
    {
        let snap = shared.snapshot.load();
        if let Some(GeoipSource::File(db)) = &snap.config.geoip {
            files.push(db.clone());
        }
        files.extend(snap.config.policy.knowledge_base.iter().cloned());
    }
    let names: Vec<OsString> = files
        .iter()
        .filter_map(|f| f.file_name().map(|n| n.to_owned()))
        .collect();
    let mut dirs: Vec<PathBuf> = files
        .iter()
        .map(|f| {
            f.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map_or_else(|| PathBuf::from("."), PathBuf::from)
        })
        .collect();
    dirs.sort();
    dirs.dedup();
    let watch_tx = tx.clone();
    let watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if let Ok(ev) = ev
            && changes_watched(&ev, &names)
        {
            let _ = watch_tx.try_send(());
        }
    });
    let watcher = match watcher {
        Ok(mut w) => {
            for dir in &dirs {
                if let Err(e) = w.watch(dir, RecursiveMode::NonRecursive) {
                    tracing::warn!(error = %e, dir = %dir.display(), "cannot watch this directory; reload with SIGHUP");
                }
            }
            Some(w)
        }
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
        let name = &[OsString::from("domicile.toml")][..];
        let write = EventKind::Modify(ModifyKind::Data(DataChange::Content));
        assert!(changes_watched(&ev(write, "/etc/d/domicile.toml"), name));
        assert!(changes_watched(
            &ev(EventKind::Create(CreateKind::File), "/etc/d/domicile.toml"),
            name
        ));
        assert!(changes_watched(
            &ev(
                EventKind::Modify(ModifyKind::Name(RenameMode::To)),
                "/etc/d/..data"
            ),
            name
        ));
        assert!(!changes_watched(
            &ev(EventKind::Access(AccessKind::Read), "/etc/d/domicile.toml"),
            name
        ));
        assert!(!changes_watched(
            &ev(
                EventKind::Access(AccessKind::Open(notify::event::AccessMode::Any)),
                "/etc/d/domicile.toml"
            ),
            name
        ));
        assert!(!changes_watched(&ev(write, "/etc/d/other.toml"), name));
    }
}
