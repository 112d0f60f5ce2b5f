//! `trace verify` across rotated files: every kind of tampering is reported with the file and
//! line where the chain breaks, and signed checkpoints are checked.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use domicile_gateway::config::Durability;
use domicile_gateway::config::trace::{Rotation, SigningKey};
use domicile_gateway::trace::verify::{Checkpoint, Verified, verify_dir};
use domicile_gateway::trace::writer::{TraceWriter, WriterOptions, chain_line};

const SEED: [u8; 32] = [42; 32];

/// A region directory with three sealed files and an active one, every checkpoint signed.
async fn rotated() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let w = TraceWriter::start_with(
        dir.path().to_path_buf(),
        WriterOptions {
            durability: Durability::Batch,
            rotation: Rotation {
                max_bytes: Some(4096),
                max_age: None,
            },
            signing_key: Some(SigningKey(ed25519_dalek::SigningKey::from_bytes(&SEED))),
        },
    )
    .unwrap();
    for i in 0..14 {
        let body = format!(
            "{{\"schema\":\"domicile.decision/1\",\"decision_id\":\"d{i:03}\",\"pad\":\"{}\"}}",
            "x".repeat(1000)
        );
        w.append(Arc::from("eu-central"), body.into_bytes())
            .await
            .unwrap();
    }
    drop(w);
    let region = dir.path().join("eu-central");
    (dir, region)
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

/// The breaks found, as (file name, line, message).
fn breaks(results: &[Verified]) -> Vec<(String, usize, String)> {
    results
        .iter()
        .filter_map(|v| v.result.as_ref().err())
        .map(|b| {
            let name = Path::new(&b.path)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (name, b.line, b.message.clone())
        })
        .collect()
}

fn verify(dir: &Path) -> Vec<(String, usize, String)> {
    breaks(&verify_dir(dir, None).unwrap())
}

/// Re-chains a line after changing its content, so only the change under test is wrong.
fn rechain(line: &str, edit: impl FnOnce(&str) -> String) -> String {
    let at = line.rfind(",\"prev_hash\":\"").unwrap();
    let prev = &line[at + 14..at + 14 + 64];
    let body = edit(&format!("{}}}", &line[..at]));
    let (line, _) = chain_line(body.as_bytes(), prev);
    String::from_utf8(line).unwrap().trim_end().to_owned()
}

#[tokio::test]
async fn an_untouched_rotated_trail_verifies_with_signed_checkpoints() {
    let (dir, region) = rotated().await;
    let results = verify_dir(dir.path(), None).unwrap();
    let names: Vec<String> = results
        .iter()
        .map(|v| v.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "decisions-000001.jsonl",
            "decisions-000002.jsonl",
            "decisions-000003.jsonl",
            "decisions.jsonl"
        ]
    );
    assert!(breaks(&results).is_empty(), "{results:?}");
    let public = ed25519_dalek::SigningKey::from_bytes(&SEED).verifying_key();
    for v in &results[..3] {
        assert_eq!(
            v.result.as_ref().unwrap().checkpoint,
            Some(Checkpoint::Signed(public))
        );
    }
    // The checkpoint names the head it seals and the key that signed it.
    let cp: serde_json::Value = serde_json::from_str(
        lines(&region.join("decisions-000001.jsonl"))
            .last()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(cp["schema"], "domicile.checkpoint/1");
    assert_eq!(cp["sequence"], 1);
    assert_eq!(cp["file"], "decisions-000001.jsonl");
    assert_eq!(cp["public_key"], hex::encode(public.as_bytes()));
    assert!(breaks(&verify_dir(dir.path(), Some(&public)).unwrap()).is_empty());
}

#[tokio::test]
async fn an_edited_record_is_reported_with_file_and_line() {
    let (dir, region) = rotated().await;
    let f = region.join("decisions-000002.jsonl");
    let mut l = lines(&f);
    l[1] = l[1].replacen("\"pad\":\"x", "\"pad\":\"y", 1);
    write_lines(&f, &l);
    let b = verify(dir.path());
    assert_eq!(b.len(), 1, "{b:?}");
    assert_eq!((b[0].0.as_str(), b[0].1), ("decisions-000002.jsonl", 2));
    assert!(b[0].2.contains("edited"), "{b:?}");
}

#[tokio::test]
async fn a_deleted_record_is_reported_with_file_and_line() {
    let (dir, region) = rotated().await;
    let f = region.join("decisions-000002.jsonl");
    let mut l = lines(&f);
    l.remove(1);
    write_lines(&f, &l);
    let b = verify(dir.path());
    assert_eq!(b.len(), 1, "{b:?}");
    assert_eq!((b[0].0.as_str(), b[0].1), ("decisions-000002.jsonl", 2));
    assert!(b[0].2.contains("removed, inserted or reordered"), "{b:?}");
}

#[tokio::test]
async fn reordered_records_are_reported_with_file_and_line() {
    let (dir, region) = rotated().await;
    let f = region.join("decisions-000003.jsonl");
    let mut l = lines(&f);
    l.swap(1, 2);
    write_lines(&f, &l);
    let b = verify(dir.path());
    assert_eq!(b.len(), 1, "{b:?}");
    assert_eq!((b[0].0.as_str(), b[0].1), ("decisions-000003.jsonl", 2));
}

#[tokio::test]
async fn an_inserted_record_is_reported_with_file_and_line() {
    let (dir, region) = rotated().await;
    let copied = lines(&region.join("decisions-000001.jsonl"))[0].clone();
    let f = region.join("decisions.jsonl");
    let mut l = lines(&f);
    l.insert(1, copied);
    write_lines(&f, &l);
    let b = verify(dir.path());
    assert_eq!(b.len(), 1, "{b:?}");
    assert_eq!((b[0].0.as_str(), b[0].1), ("decisions.jsonl", 2));
}

#[tokio::test]
async fn a_missing_file_in_the_middle_is_reported() {
    let (dir, region) = rotated().await;
    std::fs::remove_file(region.join("decisions-000002.jsonl")).unwrap();
    let b = verify(dir.path());
    assert_eq!(b.len(), 2, "{b:?}");
    assert_eq!((b[0].0.as_str(), b[0].1), ("decisions-000002.jsonl", 0));
    assert!(b[0].2.contains("missing"), "{b:?}");
    assert_eq!((b[1].0.as_str(), b[1].1), ("decisions-000003.jsonl", 1));
    assert!(
        b[1].2.contains("does not continue the previous file"),
        "{b:?}"
    );
}

#[tokio::test]
async fn a_bad_checkpoint_signature_is_reported() {
    let (dir, region) = rotated().await;
    let f = region.join("decisions-000001.jsonl");
    let mut l = lines(&f);
    let last = l.len() - 1;
    l[last] = rechain(&l[last], |body| {
        let at = body.find("\"signature\":\"").unwrap() + 13;
        let flipped = if &body[at..=at] == "0" { "1" } else { "0" };
        format!("{}{flipped}{}", &body[..at], &body[at + 1..])
    });
    write_lines(&f, &l);
    let b = verify(dir.path());
    assert_eq!(
        (b[0].0.as_str(), b[0].1, b[0].2.as_str()),
        (
            "decisions-000001.jsonl",
            last + 1,
            "the checkpoint's signature does not verify"
        )
    );
}

#[tokio::test]
async fn checkpoints_signed_by_another_key_fail_against_the_pinned_key() {
    let (dir, _region) = rotated().await;
    let other = ed25519_dalek::SigningKey::from_bytes(&[1; 32]).verifying_key();
    let b = breaks(&verify_dir(dir.path(), Some(&other)).unwrap());
    assert_eq!(b.len(), 3, "{b:?}");
    assert!(
        b.iter()
            .all(|x| x.2 == "the checkpoint is signed by another key than the one given"),
        "{b:?}"
    );
}

#[tokio::test]
async fn a_sealed_file_cut_before_its_checkpoint_is_reported() {
    let (dir, region) = rotated().await;
    let f = region.join("decisions-000002.jsonl");
    let mut l = lines(&f);
    l.pop();
    let n = l.len();
    write_lines(&f, &l);
    let b = verify(dir.path());
    assert_eq!((b[0].0.as_str(), b[0].1), ("decisions-000002.jsonl", n + 1));
    assert!(b[0].2.contains("does not end with a checkpoint"), "{b:?}");
}

#[tokio::test]
async fn a_checkpoint_re_signed_with_another_key_is_reported_without_a_pinned_key() {
    use ed25519_dalek::Signer;
    let (dir, region) = rotated().await;
    // The third file's checkpoint signed again, validly, by another key.
    let other = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let f = region.join("decisions-000003.jsonl");
    let mut l = lines(&f);
    let last = l.len() - 1;
    l[last] = rechain(&l[last], |body| {
        let cp: serde_json::Value = serde_json::from_str(body).unwrap();
        let message = domicile_gateway::trace::writer::checkpoint_message(
            cp["region"].as_str().unwrap(),
            cp["sequence"].as_u64().unwrap(),
            cp["records"].as_u64().unwrap(),
            cp["head"].as_str().unwrap(),
        );
        // The fields replaced where they are: a checkpoint starts with its schema.
        body.replace(
            cp["public_key"].as_str().unwrap(),
            &hex::encode(other.verifying_key().as_bytes()),
        )
        .replace(
            cp["signature"].as_str().unwrap(),
            &hex::encode(other.sign(&message).to_bytes()),
        )
    });
    write_lines(&f, &l);
    let b = verify(dir.path());
    let first = &b[0];
    assert_eq!(
        (first.0.as_str(), first.1),
        ("decisions-000003.jsonl", last + 1),
        "{b:?}"
    );
    assert!(
        first.2.starts_with(&format!(
            "the checkpoint is signed by another key ({}) than the region's earlier checkpoints",
            hex::encode(other.verifying_key().as_bytes())
        )),
        "{b:?}"
    );
}

#[tokio::test]
async fn a_line_still_being_written_is_not_checked_in_the_active_file_only() {
    let (dir, region) = rotated().await;
    // Half a record at the end of the active file, as a reader may see it while the writer
    // appends: not a break there.
    let active = region.join("decisions.jsonl");
    let whole = lines(&active);
    let half = &whole[0][..whole[0].len() / 2];
    std::fs::write(&active, whole.join("\n") + "\n" + half).unwrap();
    assert_eq!(verify(dir.path()), vec![]);
    // Half a record at the end of a sealed file is one.
    let f = region.join("decisions-000002.jsonl");
    let sealed = lines(&f);
    std::fs::write(&f, sealed.join("\n") + "\n" + half).unwrap();
    let b = verify(dir.path());
    assert_eq!(
        (b[0].0.as_str(), b[0].1),
        ("decisions-000002.jsonl", sealed.len() + 1)
    );
}
