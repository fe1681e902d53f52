//! What the release zip is built with, and the zip-size budget (std only; no build).
//!
//! `cargo lambda build --release` (`make package`, `make dist`, `sam build`) adds its own
//! defaults for each of `lto`, `codegen-units`, `strip` and `panic` that `[profile.release]`
//! leaves unset — `panic = "abort"` among them
//! (<https://www.cargo-lambda.info/guide/release-optimizations.html>). With `abort`, a panic
//! kills the execution environment instead of becoming the invocation's error report, so the
//! profile must say every one of them itself.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The `key = value` lines of one `[section]` of a TOML file, comments and blanks left out.
fn section(text: &str, name: &str) -> Vec<(String, String)> {
    let header = format!("[{name}]");
    text.lines()
        .skip_while(|line| line.trim() != header)
        .skip(1)
        .take_while(|line| !line.trim_start().starts_with('['))
        .filter_map(|line| {
            let line = line.split('#').next().unwrap_or_default().trim();
            let (key, value) = line.split_once('=')?;
            Some((key.trim().to_owned(), value.trim().to_owned()))
        })
        .collect()
}

#[test]
fn the_release_profile_sets_what_cargo_lambda_would_otherwise_choose() {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let profile = section(&manifest, "profile.release");
    let value = |key: &str| {
        profile
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(
        value("panic"),
        Some("\"unwind\""),
        "[profile.release] must set panic = \"unwind\": without it cargo-lambda builds the \
         zip with panic = \"abort\" ({profile:?})"
    );
    for key in ["lto", "codegen-units", "strip", "opt-level"] {
        assert!(
            value(key).is_some(),
            "[profile.release] must set {key} (else cargo-lambda or cargo chooses): {profile:?}"
        );
    }
}

/// Runs scripts/check-zip-size.sh on files of the given sizes; exit code and output.
fn check_sizes(sizes: &[u64], max: Option<&str>) -> (Option<i32>, String) {
    static RUN: AtomicUsize = AtomicUsize::new(0);
    let run = RUN.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("zip-size-{}-{run}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let files: Vec<PathBuf> = sizes
        .iter()
        .enumerate()
        .map(|(i, &size)| {
            let path = dir.join(format!("{i}-{size}.zip"));
            let file = std::fs::File::create(&path).unwrap();
            file.set_len(size).unwrap();
            path
        })
        .collect();
    let mut command = Command::new(root().join("scripts/check-zip-size.sh"));
    command.args(&files).env_remove("MAX_ZIP_BYTES");
    if let Some(max) = max {
        command.env("MAX_ZIP_BYTES", max);
    }
    let output = command.output().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.code(), text)
}

#[test]
fn a_zip_over_4_mb_fails_the_size_check_with_its_size_and_the_budget() {
    let (code, text) = check_sizes(&[4_000_000], None);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("4000000 bytes (budget 4000000)"), "{text}");

    // Every zip is checked; one over the budget fails the whole check.
    let (code, text) = check_sizes(&[3_900_000, 4_000_001], None);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("is 4000001 bytes, over the budget of 4000000 bytes by 1"),
        "{text}"
    );
    assert!(text.contains("3900000 bytes (budget 4000000)"), "{text}");
    assert!(text.contains("RELEASING.md"), "{text}");
}

#[test]
fn the_size_budget_can_be_set_and_bad_input_is_refused() {
    let (code, text) = check_sizes(&[1_001], Some("1000"));
    assert_eq!(code, Some(1), "{text}");
    let (code, text) = check_sizes(&[1_000], Some("4MB"));
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("MAX_ZIP_BYTES must be a number of bytes"),
        "{text}"
    );
    let output = Command::new(root().join("scripts/check-zip-size.sh"))
        .arg(root().join("no-such.zip"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no such file"));
}
