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
//! (d) The function runs one invocation at a time (reserved concurrency 1), the rotation
//!     permission names its secret (`SourceArn`), the expiry alarm is fleet-wide.
//! (e) Every duration input accepts what the code's parser accepts (`1h30m`).
//! (f) The variables/outputs tables of the READMEs list exactly what the `.tf` files and the
//!     SAM template declare.
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
                if let Some((key, _)) = t.split_once(':') {
                    if key.starts_with("IADVIZE_") {
                        out.insert(key.to_owned());
                    }
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
    let env = env_vars_in_code(&read(CONFIG_RS));
    assert!(
        !env.is_empty(),
        "no \"IADVIZE_…\" string literal found in {CONFIG_RS}"
    );
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
        block(SAM_FUNCTION).contains("ReservedConcurrentExecutions:1"),
        "BrokerFunction needs ReservedConcurrentExecutions: 1",
    );
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
        block(TF_FUNCTION).contains("reserved_concurrent_executions=1"),
        "the function needs reserved_concurrent_executions = 1".into(),
    );
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
fn both_flavours_keep_concurrency_rotation_scope_alarm_and_state_tags() {
    let mut problems = check_settings_sam(&read(SAM_TEMPLATE));
    problems.extend(check_settings_terraform(&read(TF_MAIN), &code_state_tags()));
    assert_no_problems(problems);
}

#[test]
fn settings_checker_catches_concurrency_alarm_and_ignored_tags() {
    let sam = read(SAM_TEMPLATE)
        .replace("      ReservedConcurrentExecutions: 1\n", "")
        .replace(
            "      EvaluationPeriods: 2\n      DatapointsToAlarm: 2\n",
            "      EvaluationPeriods: 1\n",
        );
    let problems = check_settings_sam(&sam).join("\n");
    assert!(
        problems.contains("ReservedConcurrentExecutions"),
        "{problems}"
    );
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
        // REFUSED_CREDENTIALS_RETRY.
        assert_eq!(patterns.len(), 5, "{file}: duration patterns {patterns:?}");
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
                if let Some(rest) = line.strip_prefix(&format!("{kind} \"")) {
                    if let Some(name) = rest.split('"').next() {
                        out.insert(name.to_owned());
                    }
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
