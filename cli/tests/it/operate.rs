//! The CLI as scripts and operators use it: `--json` on every command (failures included),
//! `refresh` without a secret doing what a tick does, discovery failures that are not usage
//! errors, progress while a refresh waits for a login slot, completions and the man page.

use std::process::Output;

use crate::common::{code, command, stderr, stdout};
use crate::support::*;
use aws_sdk_secretsmanager::types::Tag;
use serde_json::{Value, json};
use standins::SmProxy;
use standins::sm_proxy::Storm;

/// Runs the CLI with the world's environment plus `extra` (an empty value unsets).
async fn cli(world: &World, args: &[&str], extra: &[(&str, &str)]) -> Output {
    let mut command = command(world, args);
    command.env("RUST_LOG", "off");
    for (key, value) in extra {
        if value.is_empty() {
            command.env_remove(key);
        } else {
            command.env(key, value);
        }
    }
    command.output().await.expect("the CLI runs")
}

fn json_of(output: &Output) -> Value {
    serde_json::from_str(&stdout(output))
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{}", stdout(output)))
}

#[tokio::test]
async fn every_command_prints_one_json_document_with_json_also_when_it_fails() {
    let world = World::new().await;
    let id = world.token_id.clone();

    // Failures first: nothing stored yet.
    let output = cli(&world, &["--json", "get", &id], &[]).await;
    assert_eq!(code(&output), 3);
    let document = json_of(&output);
    assert_eq!(document["exit_code"], 3);
    assert!(
        document["error"]
            .as_str()
            .unwrap()
            .contains("holds no token yet"),
        "{document}"
    );
    let output = cli(
        &world,
        &["verify", "--json", "no-such-secret-anywhere"],
        &[],
    )
    .await;
    assert_eq!(code(&output), 3);
    assert_eq!(json_of(&output)["exit_code"], 3);
    let output = cli(
        &world,
        &["status", "--json"],
        &[("IADVIZE_API_URL", "ftp://x")],
    )
    .await;
    assert_eq!(code(&output), 2);
    assert!(
        json_of(&output)["error"]
            .as_str()
            .unwrap()
            .contains("IADVIZE_API_URL"),
        "{}",
        stdout(&output)
    );

    let output = cli(&world, &["refresh", "--json", &id], &[]).await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(json_of(&output)["results"][0]["outcome"], "refreshed");
    let token = world.current().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    let output = cli(&world, &["get", "--json", &id], &[]).await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let document = json_of(&output);
    assert_eq!(document["secret_id"], id.as_str());
    assert_eq!(document["access_token"], token.as_str());
    assert_eq!(document["token_type"], "Bearer");
    assert!(document["expires_at"].is_string() && document["issued_at"].is_string());
    assert!(document["remaining_seconds"].as_u64().unwrap() > 23 * 3600);

    let output = cli(&world, &["status", "--json", &id], &[]).await;
    assert_eq!(code(&output), 0);
    assert_eq!(json_of(&output)["secrets"][0]["token"], "valid");
    let output = cli(&world, &["--json", "verify", &id], &[]).await;
    assert_eq!(code(&output), 0);
    assert!(json_of(&output).is_object());

    let output = cli(&world, &["resume", "--json", &id], &[]).await;
    assert_eq!(code(&output), 0);
    assert_eq!(json_of(&output), json!({"secret_id": id, "resumed": false}));
    let version = world.start_sm_rotation().await;
    let output = cli(
        &world,
        &["resume", "--json", &id],
        &[("IADVIZE_STUCK_ROTATION_AFTER", "0s")],
    )
    .await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let document = json_of(&output);
    assert_eq!(document["resumed"], true);
    assert_eq!(document["version_id"], version.as_str());
    assert!(document["expires_at"].is_string());
}

/// A region of its own: discovery lists every tagged secret of a region, and other tests
/// must not see these.
// A region no other test uses: the fleet refresh covers every managed secret in it.
const FLEET_REGION: &str = "af-south-1";

#[tokio::test]
async fn refresh_without_a_secret_refreshes_the_whole_fleet_tagged_secrets_included() {
    let world = World::new().await;
    let sm = standins::moto::client_with(&moto_endpoint(), FLEET_REGION, None);
    let creds = unique("creds");
    sm.create_secret()
        .name(&creds)
        .secret_string(json!({"username": world.username, "password": world.password}).to_string())
        .send()
        .await
        .unwrap();
    let listed = unique("listed");
    create_empty_secret(&sm, &listed).await;
    let tagged = unique("tagged");
    sm.create_secret()
        .name(&tagged)
        .tags(Tag::builder().key("iadvize:managed").value("true").build())
        .tags(
            Tag::builder()
                .key("iadvize:credentials-secret-id")
                .value(&creds)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let env = [
        ("AWS_REGION", FLEET_REGION),
        ("IADVIZE_TOKEN_SECRET_IDS", listed.as_str()),
        ("IADVIZE_CREDENTIALS_SECRET_ID", creds.as_str()),
    ];

    let output = cli(&world, &["refresh"], &env).await;

    let text = stdout(&output);
    assert_eq!(code(&output), 0, "{text}{}", stderr(&output));
    for id in [&listed, &tagged] {
        assert!(text.contains(&format!("{id}: refreshed")), "{text}");
        assert!(
            current_of(&sm, id).await.is_some(),
            "{id} holds a token after `refresh`"
        );
    }
    // And status (already fleet-wide) agrees.
    let output = cli(&world, &["status", "--json"], &env).await;
    assert_eq!(code(&output), 0, "{}", stdout(&output));
    assert_eq!(json_of(&output)["summary"]["fresh"], 2);
}

#[tokio::test]
async fn a_failed_discovery_exits_1_not_as_a_usage_error() {
    let world = World::new().await;
    let proxy = SmProxy::start(&moto_endpoint()).await.unwrap();
    proxy.storm(Storm::new(7).internal_errors(1.0).only(&["ListSecrets"]));
    let through = proxy.url();
    let nothing_listed = [
        ("AWS_ENDPOINT_URL", through.as_str()),
        ("IADVIZE_TOKEN_SECRET_IDS", ""),
    ];

    for command in [&["refresh"][..], &["status"], &["refresh", "--json"]] {
        let output = cli(&world, command, &nothing_listed).await;
        assert_eq!(
            code(&output),
            1,
            "`{}`: {}",
            command.join(" "),
            stderr(&output)
        );
        assert!(
            stderr(&output).contains("ListSecrets"),
            "`{}` names the failed discovery: {}",
            command.join(" "),
            stderr(&output)
        );
    }

    // With a listed secret, it is refreshed, and the failed discovery still fails the command.
    let output = cli(
        &world,
        &["refresh"],
        &[("AWS_ENDPOINT_URL", through.as_str())],
    )
    .await;
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    assert!(
        stdout(&output).contains(&format!("{}: refreshed", world.token_id)),
        "{}",
        stdout(&output)
    );
    assert!(
        stderr(&output).contains("discovery of tagged token secrets failed"),
        "{}",
        stderr(&output)
    );
    assert!(proxy.calls("ListSecrets") >= 2);
}

#[tokio::test]
async fn refresh_says_on_stderr_when_it_waits_for_a_login_slot() {
    let world = World::new().await;
    let second = unique("token");
    create_empty_secret(&world.sm, &second).await;

    // Two token secrets of one iAdvize user: the second login waits the spacing.
    let output = cli(
        &world,
        &["refresh", "--json", &world.token_id, &second],
        &[("IADVIZE_MIN_LOGIN_INTERVAL", "2s")],
    )
    .await;

    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let results = &json_of(&output)["results"];
    assert_eq!(results[0]["outcome"], "refreshed");
    assert_eq!(results[1]["outcome"], "refreshed");
    let progress = stderr(&output);
    assert!(
        progress.contains(&format!(
            "{second}: waiting for a login slot (login pacing), 2s…"
        )) || progress.contains(&format!(
            "{}: waiting for a login slot (login pacing), 2s…",
            world.token_id
        )),
        "{progress}"
    );
    assert_eq!(
        progress.lines().count(),
        1,
        "one progress line, no logs: {progress}"
    );
}

#[tokio::test]
async fn completions_for_each_shell_and_a_man_page() {
    let world = World::new().await;
    for (shell, marker) in [
        ("bash", "complete -F _iadvize__token"),
        ("zsh", "#compdef iadvize-token"),
        ("fish", "complete -c iadvize-token"),
    ] {
        let output = cli(&world, &["completions", shell], &[]).await;
        assert_eq!(code(&output), 0, "{}", stderr(&output));
        let script = stdout(&output);
        assert!(script.contains(marker), "{shell}: {script}");
        for command in ["check", "refresh", "status", "resume"] {
            assert!(script.contains(command), "{shell} completes {command}");
        }
    }
    let output = cli(&world, &["completions", "tcsh-of-the-future"], &[]).await;
    assert_eq!(code(&output), 2);

    let output = cli(&world, &["manpage"], &[]).await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let page = stdout(&output);
    assert!(
        page.starts_with(".ie") || page.contains(".TH iadvize-token"),
        "{page}"
    );
    for expected in ["Exit codes", "check", "completions", "\\-\\-json"] {
        assert!(page.contains(expected), "the man page has {expected:?}");
    }

    // Every page, for packagers: the command's and one per subcommand it names.
    let dir = std::env::temp_dir().join(unique("man"));
    std::fs::create_dir_all(&dir).unwrap();
    let output = cli(&world, &["manpage", dir.to_str().unwrap()], &[]).await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    for page in [
        "iadvize-token.1",
        "iadvize-token-check.1",
        "iadvize-token-refresh.1",
    ] {
        let text = std::fs::read_to_string(dir.join(page)).unwrap_or_default();
        assert!(text.contains(".TH"), "{page} written");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// What the bash completion script offers for `words` (the last one being completed): the
/// script sourced in a bash, its function called as bash's `complete -F` calls it.
async fn bash_completes(script: &std::path::Path, words: &[&str]) -> Vec<String> {
    let program = r#"
        source "$1"; shift
        COMP_WORDS=("$@")
        COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
        COMP_LINE="$*"
        COMP_POINT=${#COMP_LINE}
        COMPREPLY=()
        _iadvize__token iadvize-token "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
        printf '%s\n' "${COMPREPLY[@]}"
    "#;
    let output = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(program)
        .arg("bash")
        .arg(script)
        .args(words)
        .output()
        .await
        .expect("bash runs");
    assert!(output.status.success(), "{}", stderr(&output));
    stdout(&output)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn bash_completes_the_options_and_values_of_each_subcommand() {
    let world = World::new().await;
    let output = cli(&world, &["completions", "bash"], &[]).await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let script = std::env::temp_dir().join(format!("{}.bash", unique("completions")));
    std::fs::write(&script, stdout(&output).as_bytes()).unwrap();

    let cases: [(&[&str], &[&str]); 5] = [
        (
            &["iadvize-token", "re"],
            &["refresh", "resume", "report-rejected"],
        ),
        (&["iadvize-token", "check", "--f"], &["--function"]),
        (
            &["iadvize-token", "status", "--"],
            &["--json", "--timeout", "--verbose"],
        ),
        (
            &["iadvize-token", "completions", ""],
            &["bash", "zsh", "fish"],
        ),
        (
            &["iadvize-token", "report-rejected", "--t"],
            &["--token-sha256", "--timeout"],
        ),
    ];
    for (words, expected) in cases {
        let offered = bash_completes(&script, words).await;
        for word in expected {
            assert!(
                offered.iter().any(|o| o == word),
                "`{}<TAB>` offers {word}: {offered:?}",
                words.join(" ")
            );
        }
    }
    let _ = std::fs::remove_file(&script);
}

#[tokio::test]
async fn usage_errors_with_json_print_the_error_document_and_help_stays_text() {
    let world = World::new().await;
    let cases: [&[&str]; 6] = [
        &["--json", "get"],
        &["--json", "bogus"],
        &["--json", "get", "a", "b"],
        &["--json", "--timeout", "xyz", "status"],
        &["--json", "check"],
        &["completions", "tcsh", "--json"],
    ];
    for args in cases {
        // Colours forced: the document still carries plain text.
        let output = cli(&world, args, &[("CLICOLOR_FORCE", "1")]).await;
        assert_eq!(code(&output), 2, "`{}`", args.join(" "));
        let document = json_of(&output);
        assert_eq!(document["exit_code"], 2, "{document}");
        let error = document["error"].as_str().unwrap_or_default();
        assert!(!error.is_empty(), "`{}`: {document}", args.join(" "));
        assert!(!error.contains('\u{1b}'), "no ANSI codes: {error:?}");
        assert!(
            !stderr(&output).is_empty(),
            "clap's message stays on stderr"
        );
    }
    let output = cli(&world, &["--json", "get"], &[]).await;
    assert!(
        json_of(&output)["error"]
            .as_str()
            .unwrap()
            .contains("<SECRET_ID>"),
        "clap's message names what is missing"
    );

    // Without --json, nothing on stdout; help and version are no failures.
    let output = cli(&world, &["get"], &[]).await;
    assert_eq!((code(&output), stdout(&output).as_str()), (2, ""));
    for args in [&["--json", "--help"][..], &["--version", "--json"]] {
        let output = cli(&world, args, &[]).await;
        assert_eq!(code(&output), 0, "`{}`", args.join(" "));
        assert!(
            serde_json::from_str::<Value>(&stdout(&output)).is_err(),
            "`{}` prints text: {}",
            args.join(" "),
            stdout(&output)
        );
    }
}

#[tokio::test]
async fn a_reader_that_stops_reading_ends_the_output_quietly() {
    let world = World::new().await;
    for args in [
        &["check", "--function", "no-such-function-for-a-closed-pipe"][..],
        &["completions", "zsh"],
    ] {
        let mut command = command(&world, args);
        command
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = command.spawn().expect("the CLI starts");
        // As `| head -0` would: the reader goes away before the CLI writes.
        drop(child.stdout.take());
        let output = child.wait_with_output().await.expect("the CLI ends");
        assert!(
            !stderr(&output).contains("panicked"),
            "`{}`: {}",
            args.join(" "),
            stderr(&output)
        );
        let expected = if args[0] == "check" { 1 } else { 0 };
        assert_eq!(
            code(&output),
            expected,
            "`{}`: {}",
            args.join(" "),
            stderr(&output)
        );
    }
}

#[tokio::test]
async fn a_failed_discovery_is_the_status_reports_discovery_error_not_a_secret() {
    let world = World::new().await;
    world.put_record(20).await;
    let proxy = SmProxy::start(&moto_endpoint()).await.unwrap();
    proxy.storm(Storm::new(7).internal_errors(1.0).only(&["ListSecrets"]));
    let through = [("AWS_ENDPOINT_URL", proxy.url())];
    let through: Vec<(&str, &str)> = through.iter().map(|(k, v)| (*k, v.as_str())).collect();

    let output = cli(&world, &["status", "--json"], &through).await;
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    let document = json_of(&output);
    assert!(
        document["discovery_error"]
            .as_str()
            .is_some_and(|e| e.contains("ListSecrets")),
        "{document}"
    );
    assert_eq!(document["summary"]["managed"], 1, "{document}");
    let secrets = document["secrets"].as_array().expect("secrets");
    assert_eq!(secrets.len(), 1, "{document}");
    assert_eq!(secrets[0]["secret_id"], world.token_id.as_str());

    // The text keeps its wording.
    let output = cli(&world, &["status"], &through).await;
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("(discovery of tagged secrets)"), "{text}");
    assert!(text.starts_with("1 managed:"), "{text}");
}
