//! Replays the committed fuzz seed corpus (`fuzz/seeds/<target>/`) through the same functions
//! the fuzz targets run: no panic, bounded output, no value in a location.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use domicile_gateway::inspect::fuzzing::TARGETS;

#[test]
fn every_seed_replays_through_its_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds");
    let mut dirs: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|d| d.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    let mut names: Vec<&str> = TARGETS.iter().map(|(n, _)| *n).collect();
    names.sort_unstable();
    // Every target has seeds, and every seed folder has a target.
    assert_eq!(dirs, names);
    for (name, run) in TARGETS {
        let mut seeds = 0;
        for entry in std::fs::read_dir(root.join(name)).unwrap() {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            if let Err(e) = run(&data) {
                panic!("{}: {e}", path.display());
            }
            // Every prefix too: truncation is the commonest corruption.
            for cut in [
                1,
                data.len() / 3,
                data.len() / 2,
                data.len().saturating_sub(1),
            ] {
                if let Err(e) = run(&data[..cut.min(data.len())]) {
                    panic!("{} cut at {cut}: {e}", path.display());
                }
            }
            seeds += 1;
        }
        assert!(seeds >= 3, "{name} has only {seeds} seeds");
    }
}
