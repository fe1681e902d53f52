//! Drift between the code and the infrastructure templates (std only, no AWS).
//!
//! (a) The environment variables the code reads (every `"IADVIZE_…"` string literal in
//!     `src/config.rs`) are exactly the `IADVIZE_` variables the SAM template and the
//!     Terraform module set on the function, except that a template may leave out the few
//!     of [`OPTIONAL_ENV`].
//! (b) The Secrets Manager calls the code makes (every `.client` `.snake_case_op(` in
//!     `src/store.rs`, as `secretsmanager:PascalCase`) are exactly the `secretsmanager:`
//!     actions granted to the function's role in both templates (the consumers' read policy
//!     is not the function's and is not compared).
//!
//! (c) Where those actions are granted: discovery (`ListSecrets`, `BatchGetSecretValue`) is
//!     the only thing granted on `*`; statements for secrets onboarded by tag carry a
//!     `secretsmanager:ResourceTag` condition; the tag actions are limited (`aws:TagKeys`) to
//!     the broker's state tags (every `"iadvize:…"` literal in `src/` that names a tag the
//!     broker writes), which Terraform also ignores; credentials get `GetSecretValue` and
//!     `DescribeSecret`, nothing else.
//! (d) The rotation permission names its secret (`SourceArn`), the expiry alarm is
//!     fleet-wide.
//! (e) Every duration input accepts what the code's parser accepts (`1h30m`).
//! (f) The variables/outputs tables of the READMEs list exactly what the `.tf` files and the
//!     SAM template declare.
//! (g) A quota-10 account: with its default inputs, neither flavour reserves concurrency
//!     (reserved or provisioned) on any resource; a reservation only behind an option that
//!     is off by default.
//! (h) The log level inputs accept exactly TRACE, DEBUG and INFO (the metric lines count as
//!     INFO for Lambda's filter).
//! (i) Every name either flavour builds (every name-like property of every SAM resource,
//!     every name argument of every `.tf` resource, examples included) fits its service's
//!     limit for the longest accepted stack/module name and inputs.
//!
//! The templates are read as text with small, indentation/brace-based extractors, so a
//! failure names what is missing or extra and in which file and block.

use std::collections::BTreeSet;
use std::path::PathBuf;

const CONFIG_RS: &str = "src/config.rs";
const STORE_RS: &str = "src/store.rs";
const SAM_TEMPLATE: &str = "infra/sam/template.yaml";
const TF_MAIN: &str = "infra/terraform/main.tf";
const TF_MODULE_DIR: &str = "infra/terraform";
const SAM_PREBUILT_TEMPLATE: &str = "infra/sam/template-prebuilt.yaml";
const TF_README: &str = "infra/terraform/README.md";
const INFRA_README: &str = "infra/README.md";
const SRC_DIR: &str = "src";

/// The only actions that may be granted on `*` (they have no resource-level permission).
const STAR_ACTIONS: &[&str] = &[
    "secretsmanager:ListSecrets",
    "secretsmanager:BatchGetSecretValue",
];
/// Variables the templates may leave unset (when they set one, it must still be one the code
/// reads): the AWS SDK time-outs, whose defaults fit any function time-out, since the time
/// left before each invocation's deadline bounds every call anyway.
const OPTIONAL_ENV: &[&str] = &[
    "IADVIZE_AWS_OPERATION_TIMEOUT",
    "IADVIZE_AWS_ATTEMPT_TIMEOUT",
];

/// Variables the templates set before the code reads them (the broker's handling of reports,
/// follow-ups and the 429 pause lands separately): treated as the code's until it reads them
/// itself, when this list can go.
const AHEAD_OF_CODE_ENV: &[&str] = &[];

/// State tags the IAM tag-key lists and Terraform's `ignore_changes` name before the code
/// writes them: treated as the code's until it does.
const AHEAD_OF_CODE_STATE_TAGS: &[&str] = &[];

/// The variables a template must set: the code's, less the optional ones it leaves out.
fn required_env(code: &Names, declared: &Names) -> Names {
    code.iter()
        .filter(|v| !OPTIONAL_ENV.contains(&v.as_str()) || declared.contains(*v))
        .cloned()
        .collect()
}

/// Tags the broker reads but never writes.
const INPUT_TAGS: &[&str] = &[
    "iadvize:managed",
    "iadvize:credentials-secret-id",
    "iadvize:credentials",
];

/// SAM resources whose policies are the function's own (role, and the function in case
/// someone adds SAM `Policies:` to it).
const SAM_FUNCTION: &str = "BrokerFunction";
const SAM_FUNCTION_POLICY_RESOURCES: &[&str] = &["BrokerRole", "BrokerFunction"];
/// Terraform blocks holding the function's environment and its role's policy.
const TF_FUNCTION: &str = r#"resource "aws_lambda_function" "broker""#;
const TF_FUNCTION_POLICY_BLOCKS: &[&str] = &[
    r#"data "aws_iam_policy_document" "broker""#,
    r#"resource "aws_iam_role_policy" "broker""#,
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let path: PathBuf = root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

type Names = BTreeSet<String>;

// ------------------------------------------------------------------------------------------
// What the code does
// ------------------------------------------------------------------------------------------

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Every string literal that is exactly `IADVIZE_[A-Z_]+`.
fn env_vars_in_code(src: &str) -> Names {
    let mut out = Names::new();
    let mut rest = src;
    while let Some(i) = rest.find("\"IADVIZE_") {
        let after = &rest[i + 1..];
        let len = after
            .find(|c: char| !(c.is_ascii_uppercase() || c == '_'))
            .unwrap_or(after.len());
        if after[len..].starts_with('"') {
            out.insert(after[..len].to_owned());
        }
        rest = &after[len..];
    }
    out
}

/// `describe_secret` → `DescribeSecret`.
fn pascal_case(snake: &str) -> String {
    snake
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// Every `.client` followed (after optional whitespace) by `.snake_case_op(`, as
/// `secretsmanager:PascalCase`.
fn sdk_actions_in_code(src: &str) -> Names {
    let mut out = Names::new();
    let mut rest = src;
    while let Some(i) = rest.find(".client") {
        rest = &rest[i + ".client".len()..];
        if rest.starts_with(is_ident) {
            continue; // .client_request_token(…) and the like
        }
        let Some(after_dot) = rest.trim_start().strip_prefix('.') else {
            continue;
        };
        let len = after_dot
            .find(|c: char| !is_ident(c))
            .unwrap_or(after_dot.len());
        let op = &after_dot[..len];
        if !op.is_empty() && after_dot[len..].starts_with('(') {
            out.insert(format!("secretsmanager:{}", pascal_case(op)));
        }
    }
    out
}

// ------------------------------------------------------------------------------------------
// What the templates say
// ------------------------------------------------------------------------------------------

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

fn strip_yaml_comment(line: &str) -> &str {
    // Good enough for this template: no '#' inside its quoted strings.
    match line
        .find(" #")
        .or_else(|| line.trim_start().starts_with('#').then_some(0))
    {
        Some(i) => &line[..i],
        None => line,
    }
}

/// The lines of the top-level resource `name` (under `Resources:`), comments removed.
fn yaml_resource_block(template: &str, name: &str) -> Option<Vec<String>> {
    let header = format!("{name}:");
    // Resources are indented by the first non-blank, non-comment line's indentation.
    let mut block = Vec::new();
    let mut level = None;
    let mut inside = false;
    for line in template
        .lines()
        .skip_while(|l| l.trim_end() != "Resources:")
        .skip(1)
    {
        let code = strip_yaml_comment(line);
        if code.trim().is_empty() {
            continue;
        }
        let ind = indent(code);
        let level = *level.get_or_insert(ind);
        if ind < level {
            break; // end of Resources:
        }
        if ind == level {
            if inside {
                break;
            }
            inside = code.trim() == header;
            continue;
        }
        if inside {
            block.push(code.to_owned());
        }
    }
    inside.then_some(block)
}

/// Keys `IADVIZE_…:` under `Environment:` → `Variables:` of a YAML resource block.
fn sam_env_vars(block: &[String]) -> Names {
    let mut out = Names::new();
    let mut vars_indent = None;
    for line in block {
        let ind = indent(line);
        let t = line.trim();
        match vars_indent {
            None if t == "Variables:" => vars_indent = Some(ind),
            Some(v) if ind <= v => vars_indent = (t == "Variables:").then_some(ind),
            Some(_) => {
                if let Some((key, _)) = t.split_once(':')
                    && key.starts_with("IADVIZE_")
                {
                    out.insert(key.to_owned());
                }
            }
            None => {}
        }
    }
    out
}

/// Every `secretsmanager:Action` token in some lines.
fn sm_actions<'a>(lines: impl IntoIterator<Item = &'a str>) -> Names {
    let mut out = Names::new();
    for line in lines {
        let mut rest = line;
        while let Some(i) = rest.find("secretsmanager:") {
            let after = &rest[i + "secretsmanager:".len()..];
            let len = after
                .find(|c: char| !c.is_ascii_alphanumeric() && c != '*')
                .unwrap_or(after.len());
            // `secretsmanager:ResourceTag/…` is a condition key, not an action.
            if len > 0 && !after[len..].starts_with('/') {
                out.insert(format!("secretsmanager:{}", &after[..len]));
            }
            rest = &after[len..];
        }
    }
    out
}

fn strip_hcl_comments(src: &str) -> String {
    src.lines()
        .map(|l| {
            let t = l.trim_start();
            if t.starts_with('#') || t.starts_with("//") {
                ""
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The body of the HCL block whose header starts with `header` (`resource "t" "n"`), by
/// brace matching; comment lines removed. Strings in this module hold no braces except
/// `${…}` interpolations, which balance.
fn hcl_block(src: &str, header: &str) -> Option<String> {
    let src = strip_hcl_comments(src);
    let (pos, line) = src
        .lines()
        .scan(0usize, |pos, l| {
            let here = *pos;
            *pos += l.len() + 1;
            Some((here, l))
        })
        .find(|(_, l)| l.trim_start().starts_with(header))?;
    let open = pos + line.find('{')?;
    let mut depth = 0usize;
    for (i, c) in src[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(src[open + 1..open + i].to_owned());
                }
            }
            _ => {}
        }
    }
    None
}

/// Keys `IADVIZE_… =` inside `environment { variables = { … } }` of a Lambda block.
fn tf_env_vars(function_block: &str) -> Names {
    let Some(env) = hcl_block(function_block, "environment") else {
        return Names::new();
    };
    let Some(vars) = hcl_block(&env, "variables") else {
        return Names::new();
    };
    vars.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, _)| k.trim().trim_matches('"').to_owned())
        .filter(|k| k.starts_with("IADVIZE_"))
        .collect()
}

// ------------------------------------------------------------------------------------------
// The comparison and its messages
// ------------------------------------------------------------------------------------------

/// Differences between what the code needs and what a template has, as readable lines.
fn compare(
    what: &str,
    code: &Names,
    code_where: &str,
    template: &Names,
    template_where: &str,
) -> Vec<String> {
    let mut problems = Vec::new();
    for missing in code.difference(template) {
        problems.push(format!(
            "{template_where}: missing {what} {missing} (used in {code_where})"
        ));
    }
    for extra in template.difference(code) {
        problems.push(format!(
            "{template_where}: {what} {extra} is not used in {code_where}"
        ));
    }
    problems
}

fn check_sam(template: &str, env: &Names, actions: &Names) -> Vec<String> {
    let mut problems = Vec::new();
    match yaml_resource_block(template, SAM_FUNCTION) {
        Some(f) => {
            let declared = sam_env_vars(&f);
            problems.extend(compare(
                "environment variable",
                &required_env(env, &declared),
                CONFIG_RS,
                &declared,
                &format!("{SAM_TEMPLATE} ({SAM_FUNCTION} Environment.Variables)"),
            ))
        }
        None => problems.push(format!("{SAM_TEMPLATE}: resource {SAM_FUNCTION} not found")),
    }
    let mut granted = Names::new();
    for name in SAM_FUNCTION_POLICY_RESOURCES {
        match yaml_resource_block(template, name) {
            Some(b) => granted.extend(sm_actions(b.iter().map(String::as_str))),
            None => problems.push(format!("{SAM_TEMPLATE}: resource {name} not found")),
        }
    }
    problems.extend(compare(
        "IAM action",
        actions,
        STORE_RS,
        &granted,
        &format!(
            "{SAM_TEMPLATE} (function role {})",
            SAM_FUNCTION_POLICY_RESOURCES.join(" + ")
        ),
    ));
    problems
}

fn check_terraform(main_tf: &str, env: &Names, actions: &Names) -> Vec<String> {
    let mut problems = Vec::new();
    match hcl_block(main_tf, TF_FUNCTION) {
        Some(f) => {
            let declared = tf_env_vars(&f);
            problems.extend(compare(
                "environment variable",
                &required_env(env, &declared),
                CONFIG_RS,
                &declared,
                &format!("{TF_MAIN} ({TF_FUNCTION} environment.variables)"),
            ))
        }
        None => problems.push(format!("{TF_MAIN}: {TF_FUNCTION} not found")),
    }
    let granted: Names = TF_FUNCTION_POLICY_BLOCKS
        .iter()
        .filter_map(|h| hcl_block(main_tf, h))
        .flat_map(|b| sm_actions(b.lines()))
        .collect();
    problems.extend(compare(
        "IAM action",
        actions,
        STORE_RS,
        &granted,
        &format!(
            "{TF_MAIN} (function role: {})",
            TF_FUNCTION_POLICY_BLOCKS.join(" + ")
        ),
    ));
    problems
}

fn assert_no_problems(problems: Vec<String>) {
    assert!(
        problems.is_empty(),
        "infrastructure drifted from the code:\n  {}\n",
        problems.join("\n  ")
    );
}

fn code_env() -> Names {
    let mut env = env_vars_in_code(&read(CONFIG_RS));
    assert!(
        !env.is_empty(),
        "no \"IADVIZE_…\" string literal found in {CONFIG_RS}"
    );
    env.extend(AHEAD_OF_CODE_ENV.iter().map(|v| (*v).to_owned()));
    env
}

fn code_actions() -> Names {
    let actions = sdk_actions_in_code(&read(STORE_RS));
    assert!(
        !actions.is_empty(),
        "no `.client.op(` call found in {STORE_RS}"
    );
    actions
}

#[test]
fn sam_template_matches_the_code() {
    assert_no_problems(check_sam(&read(SAM_TEMPLATE), &code_env(), &code_actions()));
}

#[test]
fn terraform_module_matches_the_code() {
    assert_no_problems(check_terraform(
        &read(TF_MAIN),
        &code_env(),
        &code_actions(),
    ));
}

#[test]
fn the_files_checked_exist() {
    for f in [CONFIG_RS, STORE_RS, SAM_TEMPLATE, TF_MAIN] {
        assert!(root().join(f).is_file(), "{f} is missing");
    }
}

// ------------------------------------------------------------------------------------------
// The checker itself catches drift
// ------------------------------------------------------------------------------------------

fn names(items: &[&str]) -> Names {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn code_scanners_read_literals_and_client_calls() {
    let config = r#"
        /// Reads `IADVIZE_IN_A_COMMENT` (not a literal).
        const A: &str = "IADVIZE_TOKEN_SECRET_IDS";
        let b = lookup("IADVIZE_HTTP_TIMEOUT");
        let not_env = "IADVIZE_lower";
        let prefix = format!("IADVIZE_{x}");
    "#;
    assert_eq!(
        env_vars_in_code(config),
        names(&["IADVIZE_HTTP_TIMEOUT", "IADVIZE_TOKEN_SECRET_IDS"])
    );

    let store = r#"
        let r = self.client.get_secret_value().secret_id(id);
        self.client
            .describe_secret()
            .send();
        self.client
            .put_secret_value()
            .client_request_token(v)
            .send();
        let c = self.client_for(x); let d = self.client.clone;
    "#;
    assert_eq!(
        sdk_actions_in_code(store),
        names(&[
            "secretsmanager:DescribeSecret",
            "secretsmanager:GetSecretValue",
            "secretsmanager:PutSecretValue"
        ])
    );
    assert_eq!(
        pascal_case("update_secret_version_stage"),
        "UpdateSecretVersionStage"
    );
}

#[test]
fn an_optional_variable_may_be_left_out_but_every_other_is_required() {
    let code = names(&["IADVIZE_AWS_OPERATION_TIMEOUT", "IADVIZE_HTTP_TIMEOUT"]);
    assert!(
        OPTIONAL_ENV.iter().all(|v| code_env().contains(*v)),
        "{OPTIONAL_ENV:?} are read by the code"
    );
    assert_eq!(
        required_env(&code, &names(&[])),
        names(&["IADVIZE_HTTP_TIMEOUT"])
    );
    assert_eq!(
        required_env(&code, &names(&["IADVIZE_AWS_OPERATION_TIMEOUT"])),
        code,
        "set, it is compared as any other"
    );
}

#[test]
fn sam_checker_catches_a_forgotten_action_and_variable() {
    let template = read(SAM_TEMPLATE);
    let (env, actions) = (code_env(), code_actions());
    assert!(template.contains("- secretsmanager:UntagResource\n"));
    assert!(template.contains("IADVIZE_MAX_CONCURRENCY:"));

    let broken = template
        .replace("- secretsmanager:UntagResource\n", "")
        .lines()
        .filter(|l| !l.trim_start().starts_with("IADVIZE_MAX_CONCURRENCY:"))
        .collect::<Vec<_>>()
        .join("\n");
    let problems = check_sam(&broken, &env, &actions).join("\n");
    assert!(
        problems.contains("missing IAM action secretsmanager:UntagResource"),
        "not caught:\n{problems}"
    );
    assert!(
        problems.contains("missing environment variable IADVIZE_MAX_CONCURRENCY"),
        "not caught:\n{problems}"
    );

    // An action the code does not call, and one granted only to consumers (not counted).
    let extra = template
        .replace(
            "- secretsmanager:ListSecretVersionIds\n",
            "- secretsmanager:ListSecretVersionIds\n                  - secretsmanager:DeleteSecret\n",
        )
        .replace(
            "IADVIZE_VERIFY_TOKEN: !Ref VerifyToken\n",
            "IADVIZE_VERIFY_TOKEN: !Ref VerifyToken\n          IADVIZE_UNREAD: x\n",
        );
    let problems = check_sam(&extra, &env, &actions).join("\n");
    assert!(
        problems.contains("secretsmanager:DeleteSecret is not used in src/store.rs"),
        "{problems}"
    );
    assert!(
        problems.contains("IADVIZE_UNREAD is not used in src/config.rs"),
        "{problems}"
    );

    // The consumer policy's actions are not the function's.
    let consumer_only = template.replace(
        "              - secretsmanager:DescribeSecret\n            Resource: !If\n              - HasReplica",
        "              - secretsmanager:DescribeSecret\n              - secretsmanager:DeleteSecret\n            Resource: !If\n              - HasReplica",
    );
    assert_ne!(consumer_only, template, "consumer policy snippet not found");
    assert_no_problems(check_sam(&consumer_only, &env, &actions));
}

#[test]
fn terraform_checker_catches_a_forgotten_action_and_variable() {
    let main_tf = read(TF_MAIN);
    let (env, actions) = (code_env(), code_actions());
    assert!(main_tf.contains("      \"secretsmanager:TagResource\",\n"));

    let broken = main_tf
        .replace("      \"secretsmanager:TagResource\",\n", "")
        .lines()
        .filter(|l| !l.trim_start().starts_with("IADVIZE_API_URL "))
        .collect::<Vec<_>>()
        .join("\n");
    let problems = check_terraform(&broken, &env, &actions).join("\n");
    assert!(
        problems.contains("missing IAM action secretsmanager:TagResource"),
        "not caught:\n{problems}"
    );
    assert!(
        problems.contains("missing environment variable IADVIZE_API_URL"),
        "not caught:\n{problems}"
    );

    // A commented-out grant does not count.
    let commented = main_tf.replace(
        "      \"secretsmanager:TagResource\",\n",
        "      # \"secretsmanager:TagResource\",\n",
    );
    let problems = check_terraform(&commented, &env, &actions).join("\n");
    assert!(
        problems.contains("missing IAM action secretsmanager:TagResource"),
        "not caught:\n{problems}"
    );
}

// ------------------------------------------------------------------------------------------
// Where the actions are granted
// ------------------------------------------------------------------------------------------

/// One IAM statement of the function's policy: its Sid, its `secretsmanager:` actions and
/// its text (whitespace removed, for simple `contains` checks).
struct Statement {
    sid: String,
    actions: Names,
    text: String,
    raw: String,
}

fn squeeze(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

/// The statements of a SAM policy: list items starting with `- Sid:`.
fn sam_statements(block: &[String]) -> Vec<Statement> {
    let mut out: Vec<(usize, String, Vec<&str>)> = Vec::new();
    let mut open = false;
    for line in block {
        let t = line.trim_start();
        if let Some(sid) = t.strip_prefix("- Sid:") {
            out.push((indent(line), sid.trim().to_owned(), vec![line.as_str()]));
            open = true;
            continue;
        }
        if let Some((ind, _, lines)) = out.last_mut() {
            if open && (indent(line) > *ind) {
                lines.push(line);
            } else {
                open = false;
            }
        }
    }
    out.into_iter()
        .map(|(_, sid, lines)| Statement {
            sid,
            actions: sm_actions(lines.iter().copied()),
            text: squeeze(&lines.join("\n")),
            raw: lines.join("\n"),
        })
        .collect()
}

/// Every brace-matched block opened on a line that starts with one of `openers`.
fn hcl_blocks(src: &str, openers: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    let mut pos = 0;
    for line in src.lines() {
        let here = pos;
        pos += line.len() + 1;
        let t = line.trim_start();
        if !openers.iter().any(|o| t.starts_with(o)) {
            continue;
        }
        let Some(brace) = line.find('{') else {
            continue;
        };
        let open = here + brace;
        let mut depth = 0usize;
        for (i, c) in src[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        out.push(src[open + 1..open + i].to_owned());
                        break;
                    }
                }
                _ => {}
            }
        }
    }
    out
}

/// The statements of the Terraform policy document (plain and dynamic ones).
fn tf_statements(policy_block: &str) -> Vec<Statement> {
    hcl_blocks(policy_block, &["statement {", "content {"])
        .into_iter()
        .filter(|b| b.contains("actions"))
        .map(|b| {
            let sid = b
                .lines()
                .find_map(|l| {
                    let t = l.trim();
                    t.starts_with("sid").then(|| t.split('"').nth(1))?
                })
                .unwrap_or_default()
                .to_owned();
            Statement {
                sid,
                actions: sm_actions(b.lines()),
                text: squeeze(&b),
                raw: b,
            }
        })
        .collect()
}

/// `iadvize:…` tag keys named in some text, without the tags the broker only reads.
fn state_tags_in(text: &str) -> Names {
    let mut out = Names::new();
    let mut rest = text;
    while let Some(i) = rest.find("iadvize:") {
        let after = &rest[i..];
        let len = after["iadvize:".len()..]
            .find(|c: char| !(c.is_ascii_lowercase() || c == '-'))
            .map_or(after.len(), |l| l + "iadvize:".len());
        let tag = &after[..len];
        if tag.len() > "iadvize:".len() && !INPUT_TAGS.contains(&tag) {
            out.insert(tag.to_owned());
        }
        rest = &after[len..];
    }
    out
}

/// The state tags the code writes: every `"iadvize:…"` literal under src/ that is not an
/// input tag, plus those the contracts allow ahead of the code.
fn code_state_tags() -> Names {
    fn walk(dir: &std::path::Path, out: &mut Names) {
        let entries =
            std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let src = std::fs::read_to_string(&path).unwrap_or_default();
                for piece in src.split('"').skip(1).step_by(2) {
                    if piece.starts_with("iadvize:") {
                        out.extend(state_tags_in(piece));
                    }
                }
            }
        }
    }
    let mut out = Names::new();
    walk(&root().join(SRC_DIR), &mut out);
    assert!(
        !out.is_empty(),
        "no \"iadvize:…\" state tag literal under {SRC_DIR}/"
    );
    out.extend(AHEAD_OF_CODE_STATE_TAGS.iter().map(|t| (*t).to_owned()));
    out
}

fn check_statements(file: &str, statements: &[Statement], state_tags: &Names) -> Vec<String> {
    let mut problems = Vec::new();
    let star: Names = STAR_ACTIONS.iter().map(|a| (*a).to_owned()).collect();
    let tag_actions = names(&["secretsmanager:TagResource", "secretsmanager:UntagResource"]);
    let credentials = names(&[
        "secretsmanager:GetSecretValue",
        "secretsmanager:DescribeSecret",
    ]);
    for s in statements {
        let on_star = s.text.contains("Resource:\"*\"") || s.text.contains("resources=[\"*\"]");
        if on_star && !s.actions.is_subset(&star) {
            problems.push(format!(
                "{file}: statement {} grants {:?} on \"*\" (only {:?} may be)",
                s.sid,
                s.actions.difference(&star).collect::<Vec<_>>(),
                STAR_ACTIONS
            ));
        }
        if !on_star && !s.actions.is_disjoint(&star) {
            problems.push(format!(
                "{file}: statement {} grants discovery actions on something else than \"*\"",
                s.sid
            ));
        }
        if s.sid.contains("Tagged") && !s.text.contains("secretsmanager:ResourceTag/iadvize:") {
            problems.push(format!(
                "{file}: statement {} (secrets onboarded by tag) has no secretsmanager:ResourceTag/iadvize:… condition",
                s.sid
            ));
        }
        if !s.actions.is_disjoint(&tag_actions) {
            let granted = state_tags_in(&s.raw);
            if !s.text.contains("aws:TagKeys") || &granted != state_tags {
                problems.push(format!(
                    "{file}: statement {} may tag {granted:?} (needs an aws:TagKeys condition on exactly the state tags {state_tags:?})",
                    s.sid
                ));
            }
        }
        if s.sid.starts_with("Credentials") && s.actions != credentials {
            problems.push(format!(
                "{file}: statement {} grants {:?} on credentials secrets (exactly GetSecretValue and DescribeSecret: status reads the version id from DescribeSecret)",
                s.sid, s.actions
            ));
        }
    }
    for (what, found) in [
        (
            "a discovery statement on \"*\"",
            statements.iter().any(|s| s.actions == star),
        ),
        (
            "a credentials statement",
            statements.iter().any(|s| s.sid.starts_with("Credentials")),
        ),
        (
            "a statement for token secrets onboarded by tag",
            statements
                .iter()
                .any(|s| s.sid.starts_with("TokenSecretsTagged")),
        ),
    ] {
        if !found {
            problems.push(format!("{file}: no {what}"));
        }
    }
    problems
}

fn sam_policy_statements(template: &str) -> Vec<Statement> {
    let role = yaml_resource_block(template, "BrokerRole").expect("BrokerRole in the SAM template");
    sam_statements(&role)
}

fn tf_policy_statements(main_tf: &str) -> Vec<Statement> {
    let mut src = strip_hcl_comments(main_tf);
    // The Terraform statements name the state tags through a local: expand it.
    if let Some(list) = hcl_list(&src, "state_tag_keys") {
        src = src.replace("local.state_tag_keys", &list);
    }
    let policy = hcl_block(&src, TF_FUNCTION_POLICY_BLOCKS[0]).expect("broker policy document");
    tf_statements(&policy)
}

/// The text of `name = [ … ]` (brackets included).
fn hcl_list(src: &str, name: &str) -> Option<String> {
    let start = src.find(&format!("{name} = ["))?;
    let open = start + src[start..].find('[')?;
    let close = open + src[open..].find(']')?;
    Some(src[open..=close].to_owned())
}

#[test]
fn iam_statements_grant_each_action_where_it_belongs() {
    let tags = code_state_tags();
    let mut problems = check_statements(
        SAM_TEMPLATE,
        &sam_policy_statements(&read(SAM_TEMPLATE)),
        &tags,
    );
    problems.extend(check_statements(
        TF_MAIN,
        &tf_policy_statements(&read(TF_MAIN)),
        &tags,
    ));
    assert_no_problems(problems);
}

#[test]
fn statement_checker_catches_a_wide_grant_an_untagged_fleet_and_a_missing_describe() {
    let tags = code_state_tags();
    let sam = read(SAM_TEMPLATE);
    // PutSecretValue on "*", the tag condition of onboarded secrets removed, DescribeSecret
    // dropped from the credentials, and any tag key allowed.
    let broken = sam
        .replacen(
            "                  - secretsmanager:BatchGetSecretValue\n",
            "                  - secretsmanager:BatchGetSecretValue\n                  - secretsmanager:PutSecretValue\n",
            1,
        )
        .replace("secretsmanager:ResourceTag/iadvize:managed", "aws:ResourceTag/team")
        .replace(
            "                  - secretsmanager:GetSecretValue\n                  - secretsmanager:DescribeSecret\n                Resource: !If [CreateCredentialsSecret",
            "                  - secretsmanager:GetSecretValue\n                Resource: !If [CreateCredentialsSecret",
        )
        .replace("                      - iadvize:rejected-credentials-version\n", "");
    assert_ne!(broken, sam);
    let problems =
        check_statements(SAM_TEMPLATE, &sam_policy_statements(&broken), &tags).join("\n");
    for expected in [
        "statement Discovery grants [\"secretsmanager:PutSecretValue\"] on \"*\"",
        "statement TokenSecretsTagged (secrets onboarded by tag) has no secretsmanager:ResourceTag",
        "statement CredentialsListed grants",
        "statement TokenSecretStateTagsListed may tag",
    ] {
        assert!(
            problems.contains(expected),
            "{expected} not caught:\n{problems}"
        );
    }

    let tf = read(TF_MAIN);
    let broken = tf.replace(
        "    resources = [local.fleet_secret_arns]\n    condition {\n      test     = \"StringEquals\"\n      variable = \"secretsmanager:ResourceTag/iadvize:credentials\"",
        "    resources = [\"*\"]\n    condition {\n      test     = \"StringEquals\"\n      variable = \"secretsmanager:ResourceTag/iadvize:credentials\"",
    );
    assert_ne!(broken, tf);
    let problems = check_statements(TF_MAIN, &tf_policy_statements(&broken), &tags).join("\n");
    assert!(
        problems.contains("statement CredentialsTagged grants"),
        "not caught:\n{problems}"
    );
}

// ------------------------------------------------------------------------------------------
// Function, rotation and alarm settings both flavours must keep
// ------------------------------------------------------------------------------------------

fn check_settings_sam(template: &str) -> Vec<String> {
    let block = |name: &str| {
        yaml_resource_block(template, name)
            .map(|b| squeeze(&b.join("\n")))
            .unwrap_or_default()
    };
    let mut problems = Vec::new();
    let mut need = |ok: bool, what: &str| {
        if !ok {
            problems.push(format!("{SAM_TEMPLATE}: {what}"));
        }
    };
    need(
        block("RotationPermission").contains("SourceArn:!RefTokenSecret"),
        "RotationPermission needs SourceArn: !Ref TokenSecret",
    );
    let alarm = block("TokenExpiryAlarm");
    need(
        alarm.contains("MetricName:MinSecondsUntilExpiry") && !alarm.contains("Dimensions:"),
        "TokenExpiryAlarm must watch the fleet-wide MinSecondsUntilExpiry (no dimension)",
    );
    need(
        alarm.contains("EvaluationPeriods:2") && alarm.contains("DatapointsToAlarm:2"),
        "TokenExpiryAlarm must need 2 of 2 periods (one late tick must not page)",
    );
    for r in ["TokenSecret", "CredentialsSecret"] {
        let header = template
            .lines()
            .skip_while(|l| l.trim() != format!("{r}:"))
            .take(5)
            .collect::<String>();
        need(
            header.contains("DeletionPolicy: Retain")
                && header.contains("UpdateReplacePolicy: Retain"),
            &format!(
                "{r} must survive a stack deletion (DeletionPolicy/UpdateReplacePolicy: Retain)"
            ),
        );
    }
    problems
}

fn check_settings_terraform(main_tf: &str, state_tags: &Names) -> Vec<String> {
    let src = strip_hcl_comments(main_tf);
    let block = |h: &str| hcl_block(&src, h).map(|b| squeeze(&b)).unwrap_or_default();
    let mut problems = Vec::new();
    let mut need = |ok: bool, what: String| {
        if !ok {
            problems.push(format!("{TF_MAIN}: {what}"));
        }
    };
    need(
        block(r#"resource "aws_lambda_permission" "rotation""#).contains("source_arn="),
        "the rotation permission needs source_arn".into(),
    );
    let alarm = block(r#"resource "aws_cloudwatch_metric_alarm" "token_expiry""#);
    need(
        alarm.contains("metric_name=\"MinSecondsUntilExpiry\"") && !alarm.contains("dimensions"),
        "the expiry alarm must watch the fleet-wide MinSecondsUntilExpiry (no dimension)".into(),
    );
    need(
        alarm.contains("evaluation_periods=2") && alarm.contains("datapoints_to_alarm=2"),
        "the expiry alarm must need 2 of 2 periods (one late tick must not page)".into(),
    );
    for secret in ["token", "integration_token"] {
        let b = block(&format!(
            r#"resource "aws_secretsmanager_secret" "{secret}""#
        ));
        for tag in state_tags {
            need(
                b.contains(&format!("tags[\"{tag}\"]"))
                    && b.contains(&format!("tags_all[\"{tag}\"]")),
                format!(
                    "aws_secretsmanager_secret.{secret} must ignore changes to the broker's state tag {tag}"
                ),
            );
        }
    }
    problems
}

#[test]
fn both_flavours_keep_rotation_scope_alarm_and_state_tags() {
    let mut problems = check_settings_sam(&read(SAM_TEMPLATE));
    problems.extend(check_settings_terraform(&read(TF_MAIN), &code_state_tags()));
    assert_no_problems(problems);
}

#[test]
fn settings_checker_catches_alarm_and_ignored_tags() {
    let sam = read(SAM_TEMPLATE).replace(
        "      EvaluationPeriods: 2\n      DatapointsToAlarm: 2\n",
        "      EvaluationPeriods: 1\n",
    );
    let problems = check_settings_sam(&sam).join("\n");
    assert!(problems.contains("2 of 2 periods"), "{problems}");

    let tf = read(TF_MAIN).replace("      tags[\"iadvize:last-login-attempt\"],\n", "");
    let problems = check_settings_terraform(&tf, &code_state_tags()).join("\n");
    assert!(
        problems
            .contains("must ignore changes to the broker's state tag iadvize:last-login-attempt"),
        "{problems}"
    );
}

// ------------------------------------------------------------------------------------------
// Durations
// ------------------------------------------------------------------------------------------

const DURATION_PATTERN: &str = "^([0-9]+(ms|s|m|h|d))+$";
const DURATION_OR_OFF_PATTERN: &str = "^(off|([0-9]+(ms|s|m|h|d))+)$";

/// DURATION_PATTERN by hand (no regex crate): one or more `<digits><unit>`.
fn matches_duration_pattern(text: &str) -> bool {
    let mut rest = text;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return false;
        }
        rest = &rest[digits..];
        let unit = ["ms", "s", "m", "h", "d"]
            .iter()
            .find(|u| rest.starts_with(*u))
            .map(|u| u.len());
        match unit {
            Some(n) => rest = &rest[n..],
            None => return false,
        }
    }
    true
}

/// The duration patterns of a template: every pattern mentioning the units.
fn duration_patterns(src: &str, sam: bool) -> Vec<String> {
    src.lines()
        .filter(|l| l.contains("(ms|s|m|h|d)"))
        .filter_map(|l| {
            if sam {
                l.trim()
                    .strip_prefix("AllowedPattern:")
                    .map(|p| p.trim().to_owned())
            } else {
                l.split("regex(\"")
                    .nth(1)?
                    .split('"')
                    .next()
                    .map(str::to_owned)
            }
        })
        .collect()
}

#[test]
fn duration_inputs_accept_what_the_code_accepts() {
    use iadvize_token_broker::config::parse_duration;
    for (file, sam) in [
        (SAM_TEMPLATE, true),
        ("infra/terraform/variables.tf", false),
    ] {
        let patterns = duration_patterns(&read(file), sam);
        // REFRESH_BEFORE_EXPIRY, MIN_LOGIN_INTERVAL, STUCK_ROTATION_AFTER, HTTP_TIMEOUT,
        // REFUSED_CREDENTIALS_RETRY, REPORT_VERIFY_INTERVAL, THROTTLE_PAUSE.
        assert_eq!(patterns.len(), 7, "{file}: duration patterns {patterns:?}");
        for p in &patterns {
            assert!(
                p == DURATION_PATTERN || p == DURATION_OR_OFF_PATTERN,
                "{file}: duration pattern {p} differs from {DURATION_PATTERN}"
            );
        }
    }
    for good in ["90s", "15m", "4h", "1h30m", "500ms", "2d", "1h30m15s", "0s"] {
        assert!(matches_duration_pattern(good), "pattern rejects {good}");
        assert!(parse_duration(good).is_ok(), "code rejects {good}");
    }
    // Whatever the pattern accepts, the code accepts (a deploy never fails at start-up).
    for bad in [
        "", "4", "h", "4 h", "1.5h", "-1h", "4hours", "1h 30m", "off",
    ] {
        assert!(!matches_duration_pattern(bad), "pattern accepts {bad:?}");
    }
}

// ------------------------------------------------------------------------------------------
// README tables
// ------------------------------------------------------------------------------------------

/// Backticked names in the first cell of each table row under the heading `heading`.
fn readme_table_names(readme: &str, heading: &str) -> Names {
    let mut out = Names::new();
    let mut inside = false;
    for line in readme.lines() {
        if line.starts_with('#') {
            inside = line.trim_start_matches('#').trim() == heading;
            continue;
        }
        if !inside || !line.starts_with('|') {
            continue;
        }
        let first = line.split('|').nth(1).unwrap_or_default();
        for (i, piece) in first.split('`').enumerate() {
            if i % 2 == 1 && !piece.is_empty() {
                out.insert(piece.to_owned());
            }
        }
    }
    out
}

/// `variable "x"` / `output "x"` names of the module's .tf files.
fn tf_declared(kind: &str) -> Names {
    let mut out = Names::new();
    let dir = root().join(TF_MODULE_DIR);
    for entry in std::fs::read_dir(&dir).expect("module dir").flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "tf") {
            let src = strip_hcl_comments(&std::fs::read_to_string(&path).unwrap_or_default());
            for line in src.lines() {
                if let Some(rest) = line.strip_prefix(&format!("{kind} \""))
                    && let Some(name) = rest.split('"').next()
                {
                    out.insert(name.to_owned());
                }
            }
        }
    }
    out
}

/// Top-level keys of a section (`Parameters:`, `Outputs:`) of the SAM template.
fn sam_section_keys(template: &str, section: &str) -> Names {
    template
        .lines()
        .skip_while(|l| l.trim_end() != format!("{section}:"))
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with(' ') || l.starts_with('#'))
        .filter(|l| indent(l) == 2 && !l.trim_start().starts_with('#'))
        .filter_map(|l| l.trim().strip_suffix(':').map(str::to_owned))
        .collect()
}

#[test]
fn readme_tables_list_every_input_and_output() {
    let tf_readme = read(TF_README);
    let infra_readme = read(INFRA_README);
    let sam = read(SAM_TEMPLATE);
    // The prebuilt template adds the package parameters.
    let mut sam_parameters = sam_section_keys(&sam, "Parameters");
    sam_parameters.extend(sam_section_keys(&read(SAM_PREBUILT_TEMPLATE), "Parameters"));
    let mut problems = Vec::new();
    for (what, declared, documented, file) in [
        (
            "variable",
            tf_declared("variable"),
            readme_table_names(&tf_readme, "Inputs"),
            TF_README,
        ),
        (
            "output",
            tf_declared("output"),
            readme_table_names(&tf_readme, "Outputs"),
            TF_README,
        ),
        (
            "parameter",
            sam_parameters,
            readme_table_names(&infra_readme, "SAM parameters"),
            INFRA_README,
        ),
        (
            "output",
            sam_section_keys(&sam, "Outputs"),
            readme_table_names(&infra_readme, "SAM outputs"),
            INFRA_README,
        ),
    ] {
        assert!(!declared.is_empty(), "no {what} found for {file}");
        problems.extend(compare(what, &declared, "the templates", &documented, file));
    }
    assert_no_problems(problems);
}

#[test]
fn readme_table_reader_sees_a_forgotten_row() {
    let readme = read(TF_README);
    let row = readme
        .lines()
        .find(|l| l.starts_with("| `fleet_name_prefix` |"))
        .expect("fleet_name_prefix row");
    let without = readme.replace(&format!("{row}\n"), "");
    assert!(readme_table_names(&readme, "Inputs").contains("fleet_name_prefix"));
    assert!(!readme_table_names(&without, "Inputs").contains("fleet_name_prefix"));
    // Backticked names of other sections' tables are not documented inputs.
    assert!(!readme_table_names(&readme, "Inputs").contains("package_build = true"));
    assert!(readme_table_names(&readme, "Outputs").contains("broker_policy_json"));
}

// ------------------------------------------------------------------------------------------
// Small readers shared by the quota, log level and name checks
// ------------------------------------------------------------------------------------------

/// A YAML flow value of the SAM template: `!Tag arg`, `[a, b]` or a scalar.
#[derive(Debug, Clone, PartialEq)]
enum Yaml {
    Tag(String, Box<Yaml>),
    Seq(Vec<Yaml>),
    Scalar(String),
}

/// Parses one flow value (`!If [C, !Ref P, !Sub "${AWS::StackName}-x"]`).
fn parse_yaml_flow(text: &str) -> Result<Yaml, String> {
    fn value(s: &[char], i: &mut usize) -> Result<Yaml, String> {
        while *i < s.len() && s[*i] == ' ' {
            *i += 1;
        }
        match s.get(*i) {
            Some('!') => {
                let start = *i + 1;
                while *i < s.len() && !matches!(s[*i], ' ' | ',' | ']') {
                    *i += 1;
                }
                let tag: String = s[start..*i].iter().collect();
                Ok(Yaml::Tag(tag, Box::new(value(s, i)?)))
            }
            Some('[') => {
                *i += 1;
                let mut items = Vec::new();
                loop {
                    while *i < s.len() && s[*i] == ' ' {
                        *i += 1;
                    }
                    if s.get(*i) == Some(&']') {
                        *i += 1;
                        return Ok(Yaml::Seq(items));
                    }
                    items.push(value(s, i)?);
                    while *i < s.len() && s[*i] == ' ' {
                        *i += 1;
                    }
                    match s.get(*i) {
                        Some(',') => *i += 1,
                        Some(']') => {}
                        other => {
                            return Err(format!("expected , or ] in flow sequence, got {other:?}"));
                        }
                    }
                }
            }
            Some(q @ ('"' | '\'')) => {
                let q = *q;
                *i += 1;
                let start = *i;
                while *i < s.len() && s[*i] != q {
                    *i += 1;
                }
                let text: String = s[start..*i].iter().collect();
                *i += 1;
                Ok(Yaml::Scalar(text))
            }
            _ => {
                let start = *i;
                while *i < s.len() && !matches!(s[*i], ',' | ']') {
                    *i += 1;
                }
                Ok(Yaml::Scalar(
                    s[start..*i].iter().collect::<String>().trim().to_owned(),
                ))
            }
        }
    }
    let chars: Vec<char> = text.trim().chars().collect();
    let mut i = 0;
    let v = value(&chars, &mut i)?;
    if i < chars.len() && chars[i..].iter().any(|c| *c != ' ') {
        return Err(format!("trailing text in {text:?}"));
    }
    Ok(v)
}

/// One SAM resource: its logical id, `Type` and the lines of its `Properties` (comments
/// removed), as written.
struct SamResource {
    name: String,
    kind: String,
    properties: Vec<String>,
}

fn sam_resources(template: &str) -> Vec<SamResource> {
    let mut names = Vec::new();
    let mut level = None;
    for line in template
        .lines()
        .skip_while(|l| l.trim_end() != "Resources:")
        .skip(1)
    {
        let code = strip_yaml_comment(line);
        if code.trim().is_empty() {
            continue;
        }
        let ind = indent(code);
        let level = *level.get_or_insert(ind);
        if ind < level {
            break;
        }
        if ind == level {
            names.push(code.trim().trim_end_matches(':').to_owned());
        }
    }
    names
        .into_iter()
        .filter_map(|name| {
            let block = yaml_resource_block(template, &name)?;
            let base = block.first().map(|l| indent(l))?;
            let kind = block
                .iter()
                .find_map(|l| (indent(l) == base).then(|| l.trim().strip_prefix("Type:"))?)?
                .trim()
                .to_owned();
            let properties = block
                .iter()
                .skip_while(|l| !(indent(l) == base && l.trim() == "Properties:"))
                .skip(1)
                .take_while(|l| indent(l) > base)
                .cloned()
                .collect();
            Some(SamResource {
                name,
                kind,
                properties,
            })
        })
        .collect()
}

/// The top-level keys of a SAM section with their inline value and the lines below them.
fn sam_section(template: &str, section: &str) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for line in template
        .lines()
        .skip_while(|l| l.trim_end() != format!("{section}:"))
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with(' ') || l.starts_with('#'))
    {
        let code = strip_yaml_comment(line);
        if code.trim().is_empty() {
            continue;
        }
        if indent(code) == 2 {
            if let Some((key, rest)) = code.trim().split_once(':') {
                out.push((key.to_owned(), vec![rest.trim().to_owned()]));
            }
        } else if let Some((_, lines)) = out.last_mut() {
            lines.push(code.to_owned());
        }
    }
    out
}

/// `Key: value` of a SAM parameter (its first-level attributes).
fn sam_parameter(template: &str, name: &str) -> Option<Vec<(String, String)>> {
    let (_, lines) = sam_section(template, "Parameters")
        .into_iter()
        .find(|(k, _)| k == name)?;
    Some(
        lines
            .iter()
            .skip(1)
            .filter(|l| indent(l) == 4)
            .filter_map(|l| l.trim().split_once(':'))
            .map(|(k, v)| (k.to_owned(), v.trim().trim_matches('"').to_owned()))
            .collect(),
    )
}

fn sam_parameter_attr(template: &str, name: &str, attr: &str) -> Option<String> {
    sam_parameter(template, name)?
        .into_iter()
        .find_map(|(k, v)| (k == attr).then_some(v))
}

/// The body of `variable "name"` in some `.tf` files.
fn tf_variable(files: &[(String, String)], name: &str) -> Option<String> {
    files
        .iter()
        .find_map(|(_, src)| hcl_block(src, &format!("variable \"{name}\" ")))
}

/// `(file name, text)` of the `.tf` files of a folder, comments removed.
fn tf_files(dir: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let path = root().join(dir);
    let mut entries: Vec<_> = std::fs::read_dir(&path)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", path.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "tf"))
        .collect();
    entries.sort();
    for p in entries {
        let text = std::fs::read_to_string(&p).unwrap_or_default();
        let rel = format!(
            "{dir}/{}",
            p.file_name().unwrap_or_default().to_string_lossy()
        );
        out.push((rel, strip_hcl_comments(&text)));
    }
    out
}

/// The Terraform folders checked: the module and every example root module.
fn tf_dirs() -> Vec<String> {
    let mut dirs = vec![TF_MODULE_DIR.to_owned()];
    let examples = root().join(TF_MODULE_DIR).join("examples");
    let mut found: Vec<String> = std::fs::read_dir(&examples)
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().join("main.tf").is_file())
                .map(|e| {
                    format!(
                        "{TF_MODULE_DIR}/examples/{}",
                        e.file_name().to_string_lossy()
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    dirs.extend(found);
    dirs
}

/// Every `resource "type" "name" { … }` of some HCL text: (type, name, body).
fn tf_resources(src: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for line in src.lines() {
        let Some(rest) = line.strip_prefix("resource \"") else {
            continue;
        };
        let mut parts = rest.split('"');
        let (Some(kind), _, Some(name)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if let Some(body) = hcl_block(src, &format!("resource \"{kind}\" \"{name}\"")) {
            out.push((kind.to_owned(), name.to_owned(), body));
        }
    }
    out
}

/// Top-level `key = expression` arguments of an HCL body (nested blocks skipped; an
/// expression runs until its brackets balance).
fn hcl_arguments(body: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut current: Option<(String, String, i32)> = None;
    for line in body.lines() {
        let t = line.trim();
        if let Some((key, expr, open)) = current.as_mut() {
            expr.push('\n');
            expr.push_str(t);
            *open += bracket_balance(t);
            if *open <= 0 {
                out.push((key.clone(), expr.clone()));
                current = None;
            }
            continue;
        }
        if depth == 0
            && let Some((key, expr)) = t.split_once('=')
        {
            let key = key.trim();
            if !key.is_empty()
                && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !expr.starts_with('=')
            {
                let expr = expr.trim().to_owned();
                let open = bracket_balance(&expr);
                if open > 0 {
                    current = Some((key.to_owned(), expr, open));
                } else {
                    out.push((key.to_owned(), expr));
                }
                continue;
            }
        }
        depth += bracket_balance(t);
    }
    out
}

/// Opening minus closing brackets of a line, outside string literals.
fn bracket_balance(line: &str) -> i32 {
    let mut n = 0;
    let mut in_str = false;
    let mut prev = ' ';
    let mut interp = 0;
    for c in line.chars() {
        if in_str {
            match c {
                '"' if prev != '\\' && interp == 0 => in_str = false,
                '{' if prev == '$' => interp += 1,
                '}' if interp > 0 => interp -= 1,
                _ => {}
            }
        } else {
            match c {
                '"' => in_str = true,
                '{' | '[' | '(' => n += 1,
                '}' | ']' | ')' => n -= 1,
                _ => {}
            }
        }
        prev = c;
    }
    n
}

// ------------------------------------------------------------------------------------------
// (g) A quota-10 account: nothing reserved with the default inputs
// ------------------------------------------------------------------------------------------

/// Properties that take concurrency from the account's unreserved pool: an account whose
/// Lambda concurrency quota is 10 rejects any ("decreases account's
/// UnreservedConcurrentExecution below its minimum value of [10]").
const SAM_RESERVING: &[&str] = &[
    "ReservedConcurrentExecutions",
    "ProvisionedConcurrencyConfig",
    "ProvisionedConcurrentExecutions",
];
const TF_RESERVING_ARGUMENTS: &[&str] = &[
    "reserved_concurrent_executions",
    "provisioned_concurrent_executions",
];

/// A SAM condition, evaluated with every parameter at its default.
fn sam_condition_default(template: &str, name: &str, depth: usize) -> Result<bool, String> {
    if depth > 10 {
        return Err(format!("condition {name} is too deep"));
    }
    let (_, lines) = sam_section(template, "Conditions")
        .into_iter()
        .find(|(k, _)| k == name)
        .ok_or_else(|| format!("no condition {name}"))?;
    let expr = parse_yaml_flow(&lines.join(" "))?;
    fn value(template: &str, v: &Yaml, depth: usize) -> Result<String, String> {
        Ok(match v {
            Yaml::Scalar(s) => s.clone(),
            Yaml::Tag(t, arg) if t == "Ref" => {
                let Yaml::Scalar(p) = arg.as_ref() else {
                    return Err(format!("!Ref of {arg:?}"));
                };
                sam_parameter_attr(template, p, "Default").unwrap_or_default()
            }
            Yaml::Tag(t, arg) if t == "Join" => match arg.as_ref() {
                Yaml::Seq(items) if items.len() == 2 => {
                    let Yaml::Scalar(sep) = &items[0] else {
                        return Err("!Join separator".into());
                    };
                    match &items[1] {
                        // A CommaDelimitedList at its default: its items joined.
                        list @ Yaml::Tag(..) => value(template, list, depth)?
                            .split(',')
                            .collect::<Vec<_>>()
                            .join(sep),
                        Yaml::Seq(parts) => parts
                            .iter()
                            .map(|p| value(template, p, depth))
                            .collect::<Result<Vec<_>, _>>()?
                            .join(sep),
                        other => return Err(format!("!Join of {other:?}")),
                    }
                }
                other => return Err(format!("!Join {other:?}")),
            },
            other => truth(template, other, depth)?.to_string(),
        })
    }
    fn truth(template: &str, v: &Yaml, depth: usize) -> Result<bool, String> {
        match v {
            Yaml::Tag(t, arg) => match (t.as_str(), arg.as_ref()) {
                ("Equals", Yaml::Seq(items)) if items.len() == 2 => {
                    Ok(value(template, &items[0], depth)? == value(template, &items[1], depth)?)
                }
                ("Not", Yaml::Seq(items)) if items.len() == 1 => {
                    Ok(!truth(template, &items[0], depth)?)
                }
                ("And", Yaml::Seq(items)) => items
                    .iter()
                    .try_fold(true, |acc, i| Ok(acc && truth(template, i, depth)?)),
                ("Or", Yaml::Seq(items)) => items
                    .iter()
                    .try_fold(false, |acc, i| Ok(acc || truth(template, i, depth)?)),
                ("Condition", Yaml::Scalar(c)) => sam_condition_default(template, c, depth + 1),
                _ => Err(format!("cannot evaluate condition !{t} {arg:?}")),
            },
            Yaml::Scalar(s) if s == "true" || s == "false" => Ok(s == "true"),
            other => Err(format!("cannot evaluate condition {other:?}")),
        }
    }
    truth(template, &expr, depth)
}

fn check_quota_10_sam(file: &str, template: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for r in sam_resources(template) {
        for line in &r.properties {
            let t = line.trim().trim_start_matches("- ");
            let Some((key, rest)) = t.split_once(':') else {
                continue;
            };
            if !SAM_RESERVING.contains(&key) {
                continue;
            }
            let what = format!("{file}: {} {key}", r.name);
            // Only behind a condition that is false at the defaults, with no value then.
            let gated = match parse_yaml_flow(rest) {
                Ok(Yaml::Tag(tag, arg)) if tag == "If" => match arg.as_ref() {
                    Yaml::Seq(items) if items.len() == 3 => {
                        let no_value = items[2]
                            == Yaml::Tag(
                                "Ref".into(),
                                Box::new(Yaml::Scalar("AWS::NoValue".into())),
                            );
                        match &items[0] {
                            Yaml::Scalar(cond) if no_value => {
                                sam_condition_default(template, cond, 0).map(|on| !on)
                            }
                            _ => Ok(false),
                        }
                    }
                    _ => Ok(false),
                },
                Ok(_) => Ok(false),
                Err(e) => Err(e),
            };
            match gated {
                Ok(true) => {}
                Ok(false) => problems.push(format!(
                    "{what} reserves concurrency in the default deploy: an account whose concurrency quota is 10 rejects it (make it `!If [Cond, …, !Ref AWS::NoValue]` with Cond false by default)"
                )),
                Err(e) => problems.push(format!("{what}: cannot tell whether it is off by default: {e}")),
            }
        }
    }
    problems
}

/// The `default` of a Terraform variable, as written.
fn tf_variable_default(files: &[(String, String)], name: &str) -> Option<String> {
    let body = tf_variable(files, name)?;
    hcl_arguments(&body)
        .into_iter()
        .find_map(|(k, v)| (k == "default").then_some(v))
}

fn check_quota_10_terraform(files: &[(String, String)]) -> Vec<String> {
    let mut problems = Vec::new();
    let off = |expr: &str| -> bool {
        let expr = expr.trim();
        if expr == "-1" {
            return true;
        }
        expr.strip_prefix("var.").is_some_and(|v| {
            v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && matches!(
                    tf_variable_default(files, v).as_deref(),
                    Some("null" | "-1")
                )
        })
    };
    for (file, src) in files {
        for (kind, name, body) in tf_resources(src) {
            let args = hcl_arguments(&body);
            for (key, expr) in &args {
                if TF_RESERVING_ARGUMENTS.contains(&key.as_str()) && !off(expr) {
                    problems.push(format!(
                        "{file}: {kind}.{name} sets {key} = {expr} in the default deploy: an account whose concurrency quota is 10 rejects any reservation (use a variable that defaults to null)"
                    ));
                }
            }
            if kind == "aws_lambda_provisioned_concurrency_config" {
                let gate = args
                    .iter()
                    .find(|(k, _)| k == "count" || k == "for_each")
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                let var = gate.split("var.").nth(1).map(|v| {
                    v.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .next()
                        .unwrap_or("")
                });
                let default_off = var.is_some_and(|v| {
                    matches!(
                        tf_variable_default(files, v).as_deref(),
                        Some("null" | "0" | "[]" | "{}" | "false")
                    )
                });
                if !default_off {
                    problems.push(format!(
                        "{file}: {kind}.{name} reserves provisioned concurrency unless gated by a count/for_each on a variable that is off by default"
                    ));
                }
            }
        }
    }
    problems
}

#[test]
fn the_default_deploy_of_both_flavours_reserves_no_concurrency() {
    let mut problems = Vec::new();
    for file in [SAM_TEMPLATE, SAM_PREBUILT_TEMPLATE] {
        problems.extend(check_quota_10_sam(file, &read(file)));
    }
    for dir in tf_dirs() {
        problems.extend(check_quota_10_terraform(&tf_files(&dir)));
    }
    assert_no_problems(problems);
    // The option is there, and on when asked.
    let sam = read(SAM_TEMPLATE);
    assert!(sam.contains("ReservedConcurrentExecutions: !If [HasReservedConcurrency, !Ref ReservedConcurrentExecutions, !Ref AWS::NoValue]"));
    assert_eq!(
        sam_parameter_attr(&sam, "ReservedConcurrentExecutions", "Default").as_deref(),
        Some("")
    );
    assert_eq!(
        tf_variable_default(&tf_files(TF_MODULE_DIR), "reserved_concurrent_executions").as_deref(),
        Some("null")
    );
}

#[test]
fn quota_check_catches_a_hard_coded_reservation_in_either_flavour() {
    let sam = read(SAM_TEMPLATE).replace(
        "ReservedConcurrentExecutions: !If [HasReservedConcurrency, !Ref ReservedConcurrentExecutions, !Ref AWS::NoValue]",
        "ReservedConcurrentExecutions: 1",
    );
    let problems = check_quota_10_sam(SAM_TEMPLATE, &sam).join("\n");
    assert!(
        problems.contains("BrokerFunction ReservedConcurrentExecutions reserves concurrency"),
        "{problems}"
    );
    // A condition that is on by default is no better.
    let sam = read(SAM_TEMPLATE).replace(
        "  HasReservedConcurrency: !Not [!Equals [!Ref ReservedConcurrentExecutions, \"\"]]",
        "  HasReservedConcurrency: !Equals [!Ref ReservedConcurrentExecutions, \"\"]",
    );
    let problems = check_quota_10_sam(SAM_TEMPLATE, &sam).join("\n");
    assert!(problems.contains("reserves concurrency"), "{problems}");
    // A resource added later is covered too (provisioned concurrency on an alias).
    let sam = read(SAM_TEMPLATE).replace(
        "\nOutputs:\n",
        "  LiveAlias:\n    Type: AWS::Lambda::Alias\n    Properties:\n      FunctionName: !Ref BrokerFunction\n      FunctionVersion: \"1\"\n      Name: live\n      ProvisionedConcurrencyConfig:\n        ProvisionedConcurrentExecutions: 1\n\nOutputs:\n",
    );
    let problems = check_quota_10_sam(SAM_TEMPLATE, &sam).join("\n");
    assert!(
        problems.contains("LiveAlias ProvisionedConcurrencyConfig"),
        "{problems}"
    );

    let mut files = tf_files(TF_MODULE_DIR);
    for (_, src) in &mut files {
        *src = src.replace(
            "reserved_concurrent_executions = var.reserved_concurrent_executions",
            "reserved_concurrent_executions = 1",
        );
        src.push_str("\nresource \"aws_lambda_provisioned_concurrency_config\" \"live\" {\n  function_name = aws_lambda_function.broker.function_name\n  qualifier = \"1\"\n  provisioned_concurrent_executions = 2\n}\n");
    }
    let problems = check_quota_10_terraform(&files).join("\n");
    assert!(
        problems.contains("aws_lambda_function.broker sets reserved_concurrent_executions = 1"),
        "{problems}"
    );
    assert!(
        problems.contains(
            "aws_lambda_provisioned_concurrency_config.live reserves provisioned concurrency"
        ),
        "{problems}"
    );
}

// ------------------------------------------------------------------------------------------
// (h) Log levels: exactly what keeps the metric lines
// ------------------------------------------------------------------------------------------

/// The levels at which Lambda's filter keeps a JSON line without a valid `level` and RFC 3339
/// `timestamp` (it counts as INFO): the metric lines.
const LOG_LEVELS: &[&str] = &["TRACE", "DEBUG", "INFO"];

fn check_log_levels_sam(file: &str, template: &str) -> Vec<String> {
    let want: Names = names(LOG_LEVELS);
    let mut problems = Vec::new();
    let mut seen = 0;
    for r in sam_resources(template) {
        for line in &r.properties {
            let Some(value) = line.trim().strip_prefix("ApplicationLogLevel:") else {
                continue;
            };
            seen += 1;
            let value = value.trim();
            let accepted: Names = match value.strip_prefix("!Ref ") {
                Some(p) => sam_parameter_attr(template, p.trim(), "AllowedValues")
                    .unwrap_or_default()
                    .trim_matches(|c| c == '[' || c == ']')
                    .split(',')
                    .map(|v| v.trim().trim_matches('"').to_owned())
                    .filter(|v| !v.is_empty())
                    .collect(),
                None => names(&[value.trim_matches('"')]),
            };
            if !accepted.is_subset(&want) || (value.starts_with("!Ref ") && accepted != want) {
                problems.push(format!(
                    "{file}: {} ApplicationLogLevel accepts {accepted:?}, must be exactly {want:?} (above INFO Lambda drops the metric lines)",
                    r.name
                ));
            }
        }
    }
    if seen == 0 {
        problems.push(format!("{file}: no ApplicationLogLevel found"));
    }
    problems
}

fn check_log_levels_terraform(files: &[(String, String)]) -> Vec<String> {
    let want: Names = names(LOG_LEVELS);
    let mut problems = Vec::new();
    for (file, src) in files {
        for block in hcl_blocks(src, &["logging_config {"]) {
            for (key, expr) in hcl_arguments(&block) {
                if key != "application_log_level" {
                    continue;
                }
                let accepted: Names = match expr.trim().strip_prefix("var.") {
                    Some(v) => {
                        let body = tf_variable(files, v).unwrap_or_default();
                        body.split("contains([")
                            .nth(1)
                            .and_then(|r| r.split(']').next())
                            .unwrap_or_default()
                            .split(',')
                            .map(|s| s.trim().trim_matches('"').to_owned())
                            .filter(|s| !s.is_empty())
                            .collect()
                    }
                    None => names(&[expr.trim().trim_matches('"')]),
                };
                if !accepted.is_subset(&want)
                    || (expr.trim().starts_with("var.") && accepted != want)
                {
                    problems.push(format!(
                        "{file}: application_log_level accepts {accepted:?}, must be exactly {want:?} (above INFO Lambda drops the metric lines)"
                    ));
                }
            }
        }
    }
    problems
}

#[test]
fn log_level_inputs_accept_exactly_trace_debug_info() {
    let mut problems = Vec::new();
    for file in [SAM_TEMPLATE, SAM_PREBUILT_TEMPLATE] {
        problems.extend(check_log_levels_sam(file, &read(file)));
    }
    let files = tf_files(TF_MODULE_DIR);
    assert!(
        files
            .iter()
            .any(|(_, s)| s.contains("application_log_level = var.application_log_level"))
    );
    problems.extend(check_log_levels_terraform(&files));
    assert_no_problems(problems);
}

#[test]
fn log_level_check_catches_warn() {
    let sam = read(SAM_TEMPLATE).replace(
        "AllowedValues: [TRACE, DEBUG, INFO]\n",
        "AllowedValues: [TRACE, DEBUG, INFO, WARN, ERROR, FATAL]\n",
    );
    let problems = check_log_levels_sam(SAM_TEMPLATE, &sam).join("\n");
    assert!(
        problems.contains("ApplicationLogLevel accepts"),
        "{problems}"
    );
    let mut files = tf_files(TF_MODULE_DIR);
    for (_, src) in &mut files {
        *src = src.replace(
            "contains([\"TRACE\", \"DEBUG\", \"INFO\"], var.application_log_level)",
            "contains([\"TRACE\", \"DEBUG\", \"INFO\", \"WARN\"], var.application_log_level)",
        );
    }
    let problems = check_log_levels_terraform(&files).join("\n");
    assert!(
        problems.contains("application_log_level accepts"),
        "{problems}"
    );
}

// ------------------------------------------------------------------------------------------
// (i) Names: every name built from the stack or module name fits its service's limit
// ------------------------------------------------------------------------------------------

/// CloudFormation stack names: up to 128 characters; a template cannot constrain its own.
const STACK_NAME_MAX: usize = 128;
/// Region names are counted this long (the longest today, us-isof-south-1, has 15).
const REGION_MAX: usize = 20;
/// Partition names (aws, aws-cn, aws-us-gov, aws-iso-b, …).
const PARTITION_MAX: usize = 10;

/// A name a resource property or argument defines: (resource type, property path, limit,
/// service). Paths: `.` between keys, `[]` for list items, `*` for any key. Limits from
/// the services' API references: Lambda CreateFunction (FunctionName 64), AddPermission
/// (StatementId 100); IAM quotas (role 64, policy 128); EventBridge PutRule (64); EventBridge
/// Scheduler CreateSchedule (64); CloudWatch PutMetricAlarm (255), PutDashboard (255); Logs
/// CreateLogGroup (512); SQS CreateQueue (80, ".fifo" included); SNS CreateTopic (256);
/// Secrets Manager CreateSecret (512); SNS display names (100, for SMS subscriptions); KMS
/// CreateAlias (AliasName 256, "alias/" included).
const NAME_LIMITS: &[(&str, &str, usize, &str)] = &[
    // SAM / CloudFormation
    (
        "AWS::Serverless::Function",
        "FunctionName",
        64,
        "Lambda function",
    ),
    (
        "AWS::Serverless::Function",
        "Events.*.Properties.Name",
        64,
        "EventBridge rule or schedule",
    ),
    (
        "AWS::Lambda::Function",
        "FunctionName",
        64,
        "Lambda function",
    ),
    ("AWS::IAM::Role", "RoleName", 64, "IAM role"),
    (
        "AWS::IAM::Role",
        "Policies[].PolicyName",
        128,
        "IAM inline policy",
    ),
    (
        "AWS::IAM::ManagedPolicy",
        "ManagedPolicyName",
        128,
        "IAM policy",
    ),
    ("AWS::IAM::Policy", "PolicyName", 128, "IAM inline policy"),
    ("AWS::Events::Rule", "Name", 64, "EventBridge rule"),
    (
        "AWS::Scheduler::Schedule",
        "Name",
        64,
        "EventBridge Scheduler schedule",
    ),
    (
        "AWS::CloudWatch::Alarm",
        "AlarmName",
        255,
        "CloudWatch alarm",
    ),
    (
        "AWS::CloudWatch::Dashboard",
        "DashboardName",
        255,
        "CloudWatch dashboard",
    ),
    (
        "AWS::Logs::LogGroup",
        "LogGroupName",
        512,
        "CloudWatch log group",
    ),
    ("AWS::SQS::Queue", "QueueName", 80, "SQS queue"),
    ("AWS::SNS::Topic", "TopicName", 256, "SNS topic"),
    ("AWS::KMS::Alias", "AliasName", 256, "KMS alias"),
    ("AWS::SNS::Topic", "DisplayName", 100, "SNS topic display"),
    (
        "AWS::SecretsManager::Secret",
        "Name",
        512,
        "Secrets Manager secret",
    ),
    // Terraform
    (
        "aws_lambda_function",
        "function_name",
        64,
        "Lambda function",
    ),
    (
        "aws_lambda_permission",
        "statement_id",
        100,
        "Lambda permission statement id",
    ),
    (
        "aws_lambda_permission",
        "statement_id_prefix",
        74,
        "Lambda permission statement id prefix",
    ),
    ("aws_iam_role", "name", 64, "IAM role"),
    ("aws_iam_role", "name_prefix", 38, "IAM role name prefix"),
    ("aws_iam_role_policy", "name", 128, "IAM inline policy"),
    ("aws_iam_policy", "name", 128, "IAM policy"),
    (
        "aws_iam_policy",
        "name_prefix",
        102,
        "IAM policy name prefix",
    ),
    ("aws_cloudwatch_event_rule", "name", 64, "EventBridge rule"),
    (
        "aws_cloudwatch_event_rule",
        "name_prefix",
        38,
        "EventBridge rule name prefix",
    ),
    (
        "aws_scheduler_schedule",
        "name",
        64,
        "EventBridge Scheduler schedule",
    ),
    (
        "aws_cloudwatch_metric_alarm",
        "alarm_name",
        255,
        "CloudWatch alarm",
    ),
    (
        "aws_cloudwatch_dashboard",
        "dashboard_name",
        255,
        "CloudWatch dashboard",
    ),
    (
        "aws_cloudwatch_log_group",
        "name",
        512,
        "CloudWatch log group",
    ),
    ("aws_sqs_queue", "name", 80, "SQS queue"),
    ("aws_sns_topic", "name", 256, "SNS topic"),
    ("aws_kms_alias", "name", 256, "KMS alias"),
    ("aws_sns_topic", "display_name", 100, "SNS topic display"),
    (
        "aws_secretsmanager_secret",
        "name",
        512,
        "Secrets Manager secret",
    ),
];

/// Name-like properties that name something else (a reference, a metric, a dimension),
/// not the resource: (resource type, path).
const NAME_REFERENCES: &[(&str, &str)] = &[
    ("AWS::Lambda::Permission", "FunctionName"),
    ("AWS::Lambda::EventInvokeConfig", "FunctionName"),
    ("AWS::CloudWatch::Alarm", "MetricName"),
    ("AWS::Lambda::EventSourceMapping", "FunctionName"),
    ("AWS::Events::Rule", "EventPattern.detail.eventName"),
    ("AWS::CloudWatch::Alarm", "Dimensions[].Name"),
    ("aws_lambda_permission", "function_name"),
    ("aws_lambda_function_event_invoke_config", "function_name"),
    ("aws_lambda_event_source_mapping", "function_name"),
    ("aws_cloudwatch_metric_alarm", "metric_name"),
];

fn is_name_like(key: &str) -> bool {
    key == "Name"
        || key.ends_with("Name")
        || key == "name"
        || key == "name_prefix"
        || key.ends_with("_name")
        || key.starts_with("statement_id")
}

fn path_matches(pattern: &str, path: &str) -> bool {
    let (p, q): (Vec<&str>, Vec<&str>) = (pattern.split('.').collect(), path.split('.').collect());
    p.len() == q.len() && p.iter().zip(&q).all(|(a, b)| *a == "*" || a == b)
}

/// What a name-like property is: Some(limit, service), or None for a reference.
fn name_rule(kind: &str, path: &str) -> Result<Option<(usize, &'static str)>, String> {
    if let Some((_, _, limit, what)) = NAME_LIMITS
        .iter()
        .find(|(k, p, _, _)| *k == kind && path_matches(p, path))
    {
        return Ok(Some((*limit, what)));
    }
    if NAME_REFERENCES
        .iter()
        .any(|(k, p)| *k == kind && path_matches(p, path))
    {
        return Ok(None);
    }
    Err(format!(
        "{kind} {path}: a name-like property whose limit this test does not know: add it to NAME_LIMITS (or to NAME_REFERENCES if it names something else)"
    ))
}

/// A name, its longest accepted length, and how it was built.
struct NameCheck {
    place: String,
    expr: String,
    len: Result<usize, String>,
    limit: usize,
    what: &'static str,
}

fn name_problems(checks: &[NameCheck]) -> Vec<String> {
    checks
        .iter()
        .filter_map(|c| match &c.len {
            Ok(n) if *n <= c.limit => None,
            Ok(n) => Some(format!(
                "{}: {} is {n} characters for the longest accepted inputs; a {} name holds {}",
                c.place, c.expr, c.what, c.limit
            )),
            Err(e) => Some(format!("{}: {}: {e}", c.place, c.expr)),
        })
        .collect()
}

// ---- SAM ----------------------------------------------------------------------------------

/// Longest value a SAM parameter accepts: MaxLength, AllowedValues, or a `{m,n}` pattern.
fn sam_parameter_max(template: &str, name: &str) -> Result<usize, String> {
    match name {
        "AWS::StackName" => return Ok(STACK_NAME_MAX),
        "AWS::Region" => return Ok(REGION_MAX),
        "AWS::AccountId" => return Ok(12),
        "AWS::Partition" => return Ok(PARTITION_MAX),
        _ => {}
    }
    let attrs = sam_parameter(template, name).ok_or_else(|| format!("no parameter {name}"))?;
    let get = |a: &str| {
        attrs
            .iter()
            .find_map(|(k, v)| (k == a).then_some(v.as_str()))
    };
    if let Some(n) = get("MaxLength") {
        return n.parse().map_err(|_| format!("{name} MaxLength {n}"));
    }
    if let Some(values) = get("AllowedValues") {
        return Ok(values
            .trim_matches(|c| c == '[' || c == ']')
            .split(',')
            .map(|v| v.trim().trim_matches('"').len())
            .max()
            .unwrap_or(0));
    }
    if let Some(p) = get("AllowedPattern")
        && let Some(n) = pattern_max(p)
    {
        return Ok(n);
    }
    Err(format!(
        "parameter {name} accepts any length: give it a MaxLength (a name built from it must fit)"
    ))
}

/// The longest string a pattern `^[class]{m,n}$` (or `^([class]{m,n})?$`) accepts.
fn pattern_max(pattern: &str) -> Option<usize> {
    let p = pattern.trim().trim_matches('"');
    let body = p.strip_prefix('^')?.strip_suffix('$')?;
    let body = body
        .strip_prefix('(')
        .and_then(|b| b.strip_suffix(")?"))
        .unwrap_or(body);
    let close = body.rfind(']')?;
    if !body.starts_with('[') {
        return None;
    }
    let q = &body[close + 1..];
    let n = q.strip_prefix('{')?.strip_suffix('}')?;
    let max = n.split(',').next_back()?;
    max.trim().parse().ok()
}

/// Longest value of a `${…}` template: literal characters plus the longest of each variable.
fn sub_max(
    template: &str,
    text: &str,
    vars: &[(String, Yaml)],
    depth: usize,
) -> Result<usize, String> {
    let mut total = 0;
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        total += rest[..i].chars().count();
        let end = rest[i..].find('}').ok_or("unclosed ${")? + i;
        let var = &rest[i + 2..end];
        total += match vars.iter().find(|(k, _)| k == var) {
            Some((_, v)) => yaml_max(template, v, depth + 1)?,
            None if var.contains('.') => {
                return Err(format!("${{{var}}} (an attribute) cannot be bounded"));
            }
            None => sam_parameter_max(template, var)?,
        };
        rest = &rest[end + 1..];
    }
    Ok(total + rest.chars().count())
}

fn yaml_max(template: &str, v: &Yaml, depth: usize) -> Result<usize, String> {
    if depth > 10 {
        return Err("too deep".into());
    }
    match v {
        Yaml::Scalar(s) => Ok(s.chars().count()),
        Yaml::Tag(t, arg) => match (t.as_str(), arg.as_ref()) {
            ("Ref", Yaml::Scalar(p)) => sam_parameter_max(template, p),
            ("Sub", Yaml::Scalar(s)) => sub_max(template, s, &[], depth),
            // The UUID at the end of the stack's id (arn:…:stack/<name>/<uuid>).
            ("Select", Yaml::Seq(items))
                if items.len() == 2
                    && items[0] == Yaml::Scalar("2".into())
                    && items[1]
                        == Yaml::Tag(
                            "Split".into(),
                            Box::new(Yaml::Seq(vec![
                                Yaml::Scalar("/".into()),
                                Yaml::Tag(
                                    "Ref".into(),
                                    Box::new(Yaml::Scalar("AWS::StackId".into())),
                                ),
                            ])),
                        ) =>
            {
                Ok(36)
            }
            ("If", Yaml::Seq(items)) if items.len() == 3 => Ok(yaml_max(
                template,
                &items[1],
                depth + 1,
            )?
            .max(yaml_max(template, &items[2], depth + 1)?)),
            _ => Err(format!("cannot bound !{t} {arg:?}")),
        },
        Yaml::Seq(_) => Err(format!("cannot bound a list {v:?}")),
    }
}

/// The value of a name-like key: its inline flow value, or the block below it (a `!Sub`
/// with its variables: `- "template"` then `- Var: value` lines).
fn sam_value_max(template: &str, inline: &str, below: &[String]) -> Result<usize, String> {
    let inline = inline.trim();
    if inline == "!Sub" {
        let items: Vec<&str> = below.iter().map(|l| l.trim()).collect();
        let text = items
            .first()
            .and_then(|l| l.strip_prefix("- "))
            .ok_or("!Sub block without a template")?;
        let Yaml::Scalar(text) = parse_yaml_flow(text)? else {
            return Err("!Sub template is not a string".into());
        };
        let mut vars = Vec::new();
        for l in &items[1..] {
            let l = l.trim_start_matches("- ");
            let (k, v) = l.split_once(':').ok_or("!Sub variable without a value")?;
            vars.push((k.trim().to_owned(), parse_yaml_flow(v)?));
        }
        return sub_max(template, &text, &vars, 0);
    }
    yaml_max(template, &parse_yaml_flow(inline)?, 0)
}

fn sam_name_checks(file: &str, template: &str) -> (Vec<NameCheck>, Vec<String>) {
    let mut checks = Vec::new();
    let mut unknown = Vec::new();
    for r in sam_resources(template) {
        // (indent, key) of the enclosing keys; a list item adds "[]".
        let mut stack: Vec<(usize, String)> = Vec::new();
        let base = r.properties.first().map(|l| indent(l)).unwrap_or(0);
        // The lines below a name-like key are its value (a !Sub's variables), not keys.
        let mut skip_deeper_than: Option<usize> = None;
        for (i, line) in r.properties.iter().enumerate() {
            if let Some(level) = skip_deeper_than {
                if indent(line) > level {
                    continue;
                }
                skip_deeper_than = None;
            }
            let mut ind = indent(line);
            let mut t = line.trim();
            let item = t.starts_with("- ");
            if item {
                t = &t[2..];
                ind += 2;
            }
            while stack.last().is_some_and(|(si, _)| *si >= ind) {
                stack.pop();
            }
            let Some((key, value)) = t.split_once(':') else {
                continue;
            };
            if key.contains(' ') || key.starts_with('!') || key.starts_with('"') {
                continue;
            }
            if item
                && let Some((_, parent)) = stack.last_mut()
                && !parent.ends_with("[]")
            {
                parent.push_str("[]");
            }
            let path = stack
                .iter()
                .map(|(_, k)| k.as_str())
                .chain([key])
                .collect::<Vec<_>>()
                .join(".");
            stack.push((ind, key.to_owned()));
            if !is_name_like(key) || ind < base {
                continue;
            }
            skip_deeper_than = Some(indent(line));
            match name_rule(&r.kind, &path) {
                Err(e) => unknown.push(format!("{file}: {}: {e}", r.name)),
                Ok(None) => {}
                Ok(Some((limit, what))) => {
                    let below: Vec<String> = r.properties[i + 1..]
                        .iter()
                        .take_while(|l| indent(l) > indent(line) + usize::from(item) * 2)
                        .cloned()
                        .collect();
                    checks.push(NameCheck {
                        place: format!("{file}: {} {path}", r.name),
                        expr: format!(
                            "{}{}",
                            value.trim(),
                            if below.is_empty() {
                                String::new()
                            } else {
                                format!(
                                    " {}",
                                    below.iter().map(|l| l.trim()).collect::<Vec<_>>().join(" ")
                                )
                            }
                        ),
                        len: sam_value_max(template, value, &below),
                        limit,
                        what,
                    });
                }
            }
        }
    }
    (checks, unknown)
}

// ---- Terraform ----------------------------------------------------------------------------

/// Positions of `needle` in `expr` outside strings and brackets.
fn top_level(expr: &str, needle: char) -> Vec<usize> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut in_str = false;
    let mut interp = 0;
    let mut prev = ' ';
    for (i, c) in expr.char_indices() {
        if in_str {
            match c {
                '"' if prev != '\\' && interp == 0 => in_str = false,
                '{' if prev == '$' => interp += 1,
                '}' if interp > 0 => interp -= 1,
                _ => {}
            }
        } else {
            match c {
                c if c == needle && depth == 0 => out.push(i),
                '"' => in_str = true,
                '(' | '[' | '{' => depth += 1,
                ')' | ']' | '}' => depth -= 1,
                _ => {}
            }
        }
        prev = c;
    }
    out
}

/// Terraform values in one folder: variables (their validations), locals and resources.
struct TfScope<'a> {
    files: &'a [(String, String)],
}

impl TfScope<'_> {
    fn local(&self, name: &str) -> Option<String> {
        self.files.iter().find_map(|(_, src)| {
            hcl_blocks(src, &["locals {"])
                .into_iter()
                .flat_map(|b| hcl_arguments(&b))
                .find_map(|(k, v)| (k == name).then_some(v))
        })
    }

    /// `{m,n}` of a `regex("…", var.NAME)` (or of `k` for `keys(var.NAME)`) in its validations.
    fn variable_max(&self, name: &str, keys: bool) -> Result<usize, String> {
        let body = tf_variable(self.files, name).ok_or_else(|| format!("no variable {name}"))?;
        for v in hcl_blocks(&body, &["validation {"]) {
            let cond = hcl_arguments(&v)
                .into_iter()
                .find_map(|(k, c)| (k == "condition").then_some(c))
                .unwrap_or_default();
            if keys != cond.contains(&format!("keys(var.{name})")) {
                continue;
            }
            if let Some(list) = cond.strip_prefix("contains([")
                && let Some(items) = list.split(']').next()
            {
                return Ok(items
                    .split(',')
                    .map(|s| s.trim().trim_matches('"').len())
                    .max()
                    .unwrap_or(0));
            }
            if let Some(p) = cond
                .split("regex(\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                && let Some(n) = pattern_max(&p.replace("\\\\", "\\"))
            {
                return Ok(n);
            }
        }
        Err(format!(
            "variable {name}{} accepts any length: validate it (a name built from it must fit)",
            if keys { "'s keys" } else { "" }
        ))
    }

    /// Longest key of a `for_each` expression.
    fn key_max(&self, expr: &str, depth: usize) -> Result<usize, String> {
        let e = expr.trim();
        if depth > 10 {
            return Err("too deep".into());
        }
        if let Some((a, b)) = split_conditional(e) {
            return Ok(self.key_max(a, depth + 1)?.max(self.key_max(b, depth + 1)?));
        }
        if let Some(v) = e.strip_prefix("var.") {
            return self.variable_max(v, true);
        }
        if let Some(l) = e.strip_prefix("local.") {
            let v = self.local(l).ok_or_else(|| format!("no local {l}"))?;
            return self.key_max(&v, depth + 1);
        }
        if let Some(args) = e.strip_prefix("merge(").and_then(|a| a.strip_suffix(')')) {
            return split_args(args)
                .iter()
                .try_fold(0, |m, a| Ok(m.max(self.key_max(a, depth + 1)?)));
        }
        if let Some(body) = e.strip_prefix('{').and_then(|b| b.strip_suffix('}')) {
            let body = body.trim();
            if let Some(f) = body.strip_prefix("for ") {
                // { for k, v in SOURCE : k => … }: the keys of SOURCE.
                let source = f
                    .split(" in ")
                    .nth(1)
                    .and_then(|s| s.split(':').next())
                    .unwrap_or("");
                return self.key_max(source, depth + 1);
            }
            return Ok(split_args(body)
                .iter()
                .filter_map(|kv| kv.split('=').next())
                .map(|k| k.trim().trim_matches('"').len())
                .max()
                .unwrap_or(0));
        }
        // The keys of another resource's for_each.
        let mut parts = e.split('.');
        if let (Some(kind), Some(name), None) = (parts.next(), parts.next(), parts.next())
            && kind.starts_with("aws_")
        {
            for (_, src) in self.files {
                if let Some(body) = hcl_block(src, &format!("resource \"{kind}\" \"{name}\"")) {
                    let fe = hcl_arguments(&body)
                        .into_iter()
                        .find_map(|(k, v)| (k == "for_each").then_some(v))
                        .ok_or_else(|| format!("{kind}.{name} has no for_each"))?;
                    return self.key_max(&fe, depth + 1);
                }
            }
        }
        Err(format!("cannot bound the keys of {e}"))
    }

    /// Longest value of a name expression; `for_each` is the enclosing resource's.
    fn max(&self, expr: &str, for_each: Option<&str>, depth: usize) -> Result<usize, String> {
        let e = expr.trim();
        if depth > 10 {
            return Err("too deep".into());
        }
        if let Some(inner) = e.strip_prefix('(').and_then(|i| i.strip_suffix(')')) {
            return self.max(inner, for_each, depth + 1);
        }
        if let Some((a, b)) = split_conditional(e) {
            return Ok(self
                .max(a, for_each, depth + 1)?
                .max(self.max(b, for_each, depth + 1)?));
        }
        if e.len() >= 2 && e.starts_with('"') && e.ends_with('"') {
            let text = &e[1..e.len() - 1];
            let mut total = 0;
            let mut rest = text;
            while let Some(i) = rest.find("${") {
                total += rest[..i].chars().count();
                let after = &rest[i + 2..];
                let close = top_level(after, '}')
                    .into_iter()
                    .next()
                    .ok_or("unclosed ${")?;
                total += self.max(&after[..close], for_each, depth + 1)?;
                rest = &after[close + 1..];
            }
            if rest.contains("%{") {
                return Err("template directives are not bounded".into());
            }
            return Ok(total + rest.chars().count());
        }
        if let Some(args) = e
            .strip_prefix("coalesce(")
            .and_then(|a| a.strip_suffix(')'))
        {
            return split_args(args).iter().try_fold(0, |m, a| {
                Ok(m.max(if a.trim() == "null" {
                    0
                } else {
                    self.max(a, for_each, depth + 1)?
                }))
            });
        }
        if let Some(v) = e.strip_prefix("var.") {
            return self.variable_max(v, false);
        }
        if let Some(l) = e.strip_prefix("local.") {
            let v = self.local(l).ok_or_else(|| format!("no local {l}"))?;
            return self.max(&v, for_each, depth + 1);
        }
        if e == "each.key" {
            let fe = for_each.ok_or("each.key outside a for_each")?;
            return self.key_max(fe, depth + 1);
        }
        if e.starts_with("data.aws_region.") {
            return Ok(REGION_MAX);
        }
        if e.starts_with("data.aws_partition.") {
            return Ok(PARTITION_MAX);
        }
        if e.starts_with("data.aws_caller_identity.") && e.ends_with(".account_id") {
            return Ok(12);
        }
        Err(format!("cannot bound {e}"))
    }
}

fn split_conditional(e: &str) -> Option<(&str, &str)> {
    let q = *top_level(e, '?').first()?;
    let rest = &e[q + 1..];
    let c = *top_level(rest, ':').first()?;
    Some((&rest[..c], &rest[c + 1..]))
}

fn split_args(args: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in top_level(args, ',') {
        out.push(args[start..i].trim());
        start = i + 1;
    }
    let last = args[start..].trim();
    if !last.is_empty() {
        out.push(last);
    }
    out
}

fn tf_name_checks(files: &[(String, String)]) -> (Vec<NameCheck>, Vec<String>) {
    let scope = TfScope { files };
    let mut checks = Vec::new();
    let mut unknown = Vec::new();
    for (file, src) in files {
        for (kind, name, body) in tf_resources(src) {
            let args = hcl_arguments(&body);
            let for_each = args
                .iter()
                .find_map(|(k, v)| (k == "for_each").then_some(v.as_str()));
            for (key, expr) in &args {
                if !is_name_like(key) {
                    continue;
                }
                match name_rule(&kind, key) {
                    Err(e) => unknown.push(format!("{file}: {kind}.{name}: {e}")),
                    Ok(None) => {}
                    Ok(Some((limit, what))) => checks.push(NameCheck {
                        place: format!("{file}: {kind}.{name} {key}"),
                        expr: expr.clone(),
                        len: scope.max(expr, for_each, 0),
                        limit,
                        what,
                    }),
                }
            }
        }
    }
    (checks, unknown)
}

fn all_name_checks() -> (Vec<NameCheck>, Vec<String>) {
    let (mut checks, mut unknown) = (Vec::new(), Vec::new());
    for file in [SAM_TEMPLATE, SAM_PREBUILT_TEMPLATE] {
        let (c, u) = sam_name_checks(file, &read(file));
        checks.extend(c);
        unknown.extend(u);
    }
    for dir in tf_dirs() {
        let (c, u) = tf_name_checks(&tf_files(&dir));
        checks.extend(c);
        unknown.extend(u);
    }
    (checks, unknown)
}

#[test]
fn every_generated_name_fits_its_limit_for_the_longest_accepted_inputs() {
    let (checks, unknown) = all_name_checks();
    for c in &checks {
        println!(
            "{} = {} -> {:?} (limit {})",
            c.place, c.expr, c.len, c.limit
        );
    }
    // The extractors see the names this file knows to be there.
    for place in [
        "infra/sam/template.yaml: TokenSecret Name",
        "infra/sam/template.yaml: CredentialsSecret Name",
        "infra/sam/template.yaml: LogGroup LogGroupName",
        "infra/sam/template.yaml: ReportQueue QueueName",
        "infra/terraform/reports.tf: aws_sqs_queue.reports name",
        "infra/terraform/events.tf: aws_cloudwatch_event_rule.credentials name",
        "infra/sam/template.yaml: BrokerRole Policies[].PolicyName",
        "infra/terraform/main.tf: aws_iam_role.broker name",
        "infra/terraform/main.tf: aws_iam_policy.integration_consumer name",
        "infra/terraform/main.tf: aws_cloudwatch_event_rule.tick name",
        "infra/terraform/main.tf: aws_lambda_permission.rotation statement_id",
        "infra/terraform/examples/complete/main.tf: aws_iam_role.own name",
    ] {
        assert!(checks.iter().any(|c| c.place == place), "{place} not found");
    }
    let mut problems = unknown;
    problems.extend(name_problems(&checks));
    assert_no_problems(problems);
}

#[test]
fn name_check_catches_long_names_unbounded_inputs_and_unknown_resources() {
    // The tick rule named after the stack, as it was: 128 + 5 > 64.
    let sam = read(SAM_TEMPLATE).replace(
        "          Properties:\n            Schedule: !Ref ScheduleExpression\n",
        "          Properties:\n            Name: !Sub ${AWS::StackName}-tick\n            Schedule: !Ref ScheduleExpression\n",
    );
    let (checks, _) = sam_name_checks(SAM_TEMPLATE, &sam);
    let problems = name_problems(&checks).join("\n");
    assert!(
        problems.contains("BrokerFunction Events.RefreshTick.Properties.Name: !Sub ${AWS::StackName}-tick is 133 characters")
            && problems.contains("holds 64"),
        "{problems}"
    );
    // A token secret name without a bound; a new resource type.
    let sam = read(SAM_TEMPLATE)
        .replace("    MaxLength: 500\n", "")
        .replace(
            "\nOutputs:\n",
            "  Queue:\n    Type: AWS::Some::Thing\n    Properties:\n      ThingName: !Sub ${AWS::StackName}-q\n\nOutputs:\n",
        );
    let (checks, unknown) = sam_name_checks(SAM_TEMPLATE, &sam);
    let problems = name_problems(&checks).join("\n");
    assert!(
        problems.contains("TokenSecretName accepts any length"),
        "{problems}"
    );
    assert!(
        unknown.join("\n").contains("AWS::Some::Thing ThingName"),
        "{unknown:?}"
    );

    // Terraform: a name over its limit, an unvalidated variable, an unknown resource type.
    let mut files = tf_files(TF_MODULE_DIR);
    for (_, src) in &mut files {
        *src = src
            .replace(
                "name                = \"${var.name}-tick\"",
                "name                = \"${var.name}-tick-${var.name}\"",
            )
            .replace("\"^[A-Za-z0-9_.-]{1,48}$\"", "\"^[A-Za-z0-9_.-]+$\"");
        src.push_str("\nresource \"aws_sqs_queue\" \"q\" {\n  name = \"${var.name}-events-that-are-waiting-for-the-next-tick-of-the-broker.fifo\"\n}\nresource \"aws_thing\" \"t\" {\n  thing_name = var.name\n}\n");
    }
    let (checks, unknown) = tf_name_checks(&files);
    let problems = name_problems(&checks).join("\n");
    assert!(
        problems.contains(
            "aws_cloudwatch_event_rule.tick name: \"${var.name}-tick-${var.name}\" is 86 characters"
        ),
        "{problems}"
    );
    assert!(
        problems.contains("variable integrations's keys accepts any length"),
        "{problems}"
    );
    assert!(
        problems.contains("aws_sqs_queue.q name") && problems.contains("holds 80"),
        "{problems}"
    );
    assert!(
        unknown.join("\n").contains("aws_thing thing_name"),
        "{unknown:?}"
    );
}

// ------------------------------------------------------------------------------------------
// (j) The dashboards show what the code emits; follow-ups may invoke the function only
// ------------------------------------------------------------------------------------------

const METRICS_RS: &str = "src/metrics.rs";
const TF_DASHBOARD: &str = "infra/terraform/dashboard.tf";
/// Series the dashboards show before the broker emits them (reports, follow-ups and logins by
/// outcome land with the broker's handling of reports): treated as the code's until it does.
const AHEAD_OF_CODE_METRICS: &[&str] = &[];
/// Dimensions ahead of the code likewise (none now: the code emits `Outcome`).
const AHEAD_OF_CODE_DIMENSIONS: &[&str] = &[];

/// The `IadvizeTokenBroker` metric names and dimensions a dashboard shows: plain series
/// (`["IadvizeTokenBroker", "X"` or `[local.metrics_namespace, "X"`) and `SEARCH`
/// expressions (`{IadvizeTokenBroker,D} MetricName=\"X\"`, or the Terraform `format` of one).
fn dashboard_metrics(text: &str) -> (Names, Names) {
    let (mut metrics, mut dimensions) = (Names::new(), Names::new());
    let quoted_after = |rest: &str| -> Option<String> {
        let rest = rest.trim_start().strip_prefix(',')?.trim_start();
        let rest = rest.strip_prefix('"')?;
        Some(rest[..rest.find('"')?].to_owned())
    };
    for opener in [
        "[\"IadvizeTokenBroker\"",
        "[local.metrics_namespace",
        "format(local.by_outcome",
    ] {
        for (i, _) in text.match_indices(opener) {
            if let Some(m) = quoted_after(&text[i + opener.len()..]) {
                metrics.insert(m);
            }
        }
    }
    for (i, _) in text.match_indices("MetricName=\\\"") {
        let rest = &text[i + "MetricName=\\\"".len()..];
        if let Some(end) = rest.find('\\') {
            metrics.insert(rest[..end].to_owned());
        }
    }
    for (i, _) in text.match_indices("IadvizeTokenBroker,") {
        let rest = &text[i + "IadvizeTokenBroker,".len()..];
        if let Some(end) = rest.find('}') {
            dimensions.insert(rest[..end].to_owned());
        }
    }
    for (i, _) in text.match_indices("{${local.metrics_namespace},") {
        let rest = &text[i + "{${local.metrics_namespace},".len()..];
        if let Some(end) = rest.find('}') {
            dimensions.insert(rest[..end].to_owned());
        }
    }
    // `%s` is the Terraform template's placeholder for the metric name.
    metrics.remove("%s");
    (metrics, dimensions)
}

/// Every string literal of the metrics module that looks like a metric or dimension name.
fn code_metric_names() -> Names {
    let src = read(METRICS_RS);
    let mut out: Names = src
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|p| {
            p.len() > 2
                && p.starts_with(|c: char| c.is_ascii_uppercase())
                && p.chars().all(|c| c.is_ascii_alphanumeric())
        })
        .map(str::to_owned)
        .collect();
    out.extend(AHEAD_OF_CODE_METRICS.iter().map(|m| (*m).to_owned()));
    out.extend(AHEAD_OF_CODE_DIMENSIONS.iter().map(|m| (*m).to_owned()));
    out
}

fn check_dashboards(sam: &str, tf: &str, code: &Names) -> Vec<String> {
    let mut problems = Vec::new();
    let sam_block = yaml_resource_block(sam, "Dashboard")
        .map(|b| b.join("\n"))
        .unwrap_or_default();
    let (sam_metrics, sam_dims) = dashboard_metrics(&sam_block);
    let (tf_metrics, tf_dims) = dashboard_metrics(&strip_hcl_comments(tf));
    if sam_metrics.is_empty() || tf_metrics.is_empty() {
        problems.push(format!(
            "no IadvizeTokenBroker metric found in the dashboards ({SAM_TEMPLATE} Dashboard: {sam_metrics:?}, {TF_DASHBOARD}: {tf_metrics:?})"
        ));
    }
    problems.extend(compare(
        "dashboard metric",
        &sam_metrics,
        SAM_TEMPLATE,
        &tf_metrics,
        TF_DASHBOARD,
    ));
    problems.extend(compare(
        "dashboard dimension",
        &sam_dims,
        SAM_TEMPLATE,
        &tf_dims,
        TF_DASHBOARD,
    ));
    for m in sam_metrics
        .iter()
        .chain(&sam_dims)
        .chain(&tf_metrics)
        .chain(&tf_dims)
    {
        if !code.contains(m) {
            problems.push(format!(
                "the dashboards show {m}, which {METRICS_RS} does not emit"
            ));
        }
    }
    problems
}

#[test]
fn dashboards_show_the_same_metrics_the_code_emits() {
    let (sam, tf) = (read(SAM_TEMPLATE), read(TF_DASHBOARD));
    let (metrics, dims) = dashboard_metrics(&strip_hcl_comments(&tf));
    for m in [
        "MinSecondsUntilExpiry",
        "LoginAttempts",
        "RejectionReports",
        "FollowUpsSent",
    ] {
        assert!(
            metrics.contains(m),
            "{m} not read from {TF_DASHBOARD}: {metrics:?}"
        );
    }
    assert_eq!(dims, names(&["Outcome"]));
    assert_no_problems(check_dashboards(&sam, &tf, &code_metric_names()));
}

#[test]
fn dashboard_check_catches_a_renamed_metric() {
    let sam = read(SAM_TEMPLATE).replacen("\"SecretsDeferred\"", "\"SecretsPostponed\"", 1);
    let problems = check_dashboards(&sam, &read(TF_DASHBOARD), &code_metric_names()).join("\n");
    assert!(
        problems.contains("dashboard metric SecretsPostponed")
            && problems
                .contains("dashboards show SecretsPostponed, which src/metrics.rs does not emit"),
        "{problems}"
    );
}

/// Follow-ups: the function may invoke itself and nothing else. SAM: no IAM statement grants
/// a `lambda:` action (the grant sits on the function, naming its role); Terraform: the one
/// statement that does names the function's own ARN, built from the function's name.
fn check_follow_up_grants(sam: &str, main_tf: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for r in sam_resources(sam) {
        let text = squeeze(&r.properties.join("\n"));
        if r.kind.starts_with("AWS::IAM::") && text.contains("lambda:") {
            problems.push(format!(
                "{SAM_TEMPLATE}: {} grants a lambda: action; the follow-up grant belongs on the function (FollowUpPermission)",
                r.name
            ));
        }
    }
    let follow_up = yaml_resource_block(sam, "FollowUpPermission")
        .map(|b| squeeze(&b.join("\n")))
        .unwrap_or_default();
    if !(follow_up.contains("FunctionName:!GetAttBrokerFunction.Arn")
        && follow_up.contains("Action:lambda:InvokeFunction")
        && follow_up.contains("Principal:!If[CreateRole,!GetAttBrokerRole.Arn,!RefRoleArn]"))
    {
        problems.push(format!(
            "{SAM_TEMPLATE}: FollowUpPermission must let the function's own role (BrokerRole or RoleArn) invoke BrokerFunction: {follow_up}"
        ));
    }
    let src = strip_hcl_comments(main_tf);
    let invoking: Vec<Statement> = tf_policy_statements(main_tf)
        .into_iter()
        .filter(|s| s.text.contains("lambda:"))
        .collect();
    let arn = hcl_list(&src, "function_arn").unwrap_or_default();
    let function_arn = src
        .lines()
        .find_map(|l| l.trim().strip_prefix("function_arn = "))
        .unwrap_or_default();
    let function = hcl_block(&src, TF_FUNCTION)
        .map(|b| squeeze(&b))
        .unwrap_or_default();
    if invoking.len() != 1
        || !invoking[0]
            .text
            .contains("actions=[\"lambda:InvokeFunction\"]")
        || !invoking[0].text.contains("resources=[local.function_arn]")
        || !function_arn.ends_with(":function:${var.name}\"")
        || !function.contains("function_name=var.name")
        || !arn.is_empty()
    {
        problems.push(format!(
            "{TF_MAIN}: exactly one statement may grant lambda:InvokeFunction, on local.function_arn = the function's own ARN (\"…:function:${{var.name}}\", the function named var.name): {:?}, function_arn = {function_arn}",
            invoking.iter().map(|s| &s.sid).collect::<Vec<_>>()
        ));
    }
    problems
}

#[test]
fn follow_ups_may_invoke_the_function_itself_only() {
    assert_no_problems(check_follow_up_grants(&read(SAM_TEMPLATE), &read(TF_MAIN)));
}

#[test]
fn follow_up_check_catches_a_wider_grant() {
    let sam = read(SAM_TEMPLATE).replace(
        "              - Sid: Logs\n",
        "              - Sid: Invoke\n                Effect: Allow\n                Action: lambda:InvokeFunction\n                Resource: !Sub arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:${AWS::StackName}-*\n              - Sid: Logs\n",
    );
    let tf = read(TF_MAIN).replace(
        "    resources = [local.function_arn]",
        "    resources = [\"arn:${local.partition}:lambda:${local.region}:${local.account_id}:function:*\"]",
    );
    assert_ne!(tf, read(TF_MAIN));
    let problems = check_follow_up_grants(&sam, &tf).join("\n");
    assert!(
        problems.contains("BrokerRole grants a lambda: action")
            && problems.contains("exactly one statement may grant lambda:InvokeFunction"),
        "{problems}"
    );
}
