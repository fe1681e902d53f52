//! The `iadvize-standin` binary: start-up line, users from flags and from a file.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::Value;

#[tokio::test]
async fn the_binary_prints_its_url_and_serves_configured_users() {
    let dir = std::env::temp_dir().join(format!("standin-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let users_file = dir.join("users.json");
    std::fs::write(&users_file, r#"{"file-user": "file-secret"}"#).expect("users file");

    let mut child = Command::new(env!("CARGO_BIN_EXE_iadvize-standin"))
        .args(["--user", "flag-user:flag-secret", "--token-lifetime", "120"])
        .arg("--users-file")
        .arg(&users_file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn iadvize-standin");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("the start-up line");
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .expect("`listening on URL`")
        .to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    let client = reqwest::Client::new();
    for (user, password) in [("flag-user", "flag-secret"), ("file-user", "file-secret")] {
        let body: Value = client
            .post(format!("{url}/oauth2/token"))
            .form(&[
                ("grant_type", "password"),
                ("username", user),
                ("password", password),
            ])
            .send()
            .await
            .expect("login")
            .json()
            .await
            .expect("json");
        assert_eq!(body["expires_in"], 120, "{user}");
    }

    // SIGTERM stops it cleanly.
    let killed = Command::new("kill")
        .arg(child.id().to_string())
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = child.wait().expect("wait");
    assert!(status.success(), "{status}");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).expect("rest of stdout");
    assert!(rest.is_empty(), "one line only, got more: {rest}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_arguments_fail_without_echoing_secrets() {
    let output = Command::new(env!("CARGO_BIN_EXE_iadvize-standin"))
        .args(["--user", "no-colon-secret"])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("NAME:PASSWORD"), "{stderr}");
    assert!(!stderr.contains("no-colon-secret"), "{stderr}");
}
