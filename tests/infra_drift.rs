//! Drift between the code and the infrastructure templates (std only, no AWS).
//!
//! (a) The environment variables the code reads (every `"IADVIZE_…"` string literal in
//!     `src/config.rs`) are exactly the `IADVIZE_` variables the SAM template and the
//!     Terraform module set on the function.
//! (b) The Secrets Manager calls the code makes (every `.client` `.snake_case_op(` in
//!     `src/store.rs`, as `secretsmanager:PascalCase`) are exactly the `secretsmanager:`
//!     actions granted to the function's role in both templates (the consumers' read policy
//!     is not the function's and is not compared).
//!
//! The templates are read as text with small, indentation/brace-based extractors, so a
//! failure names what is missing or extra and in which file and block.

use std::collections::BTreeSet;
use std::path::PathBuf;

const CONFIG_RS: &str = "src/config.rs";
const STORE_RS: &str = "src/store.rs";
const SAM_TEMPLATE: &str = "infra/sam/template.yaml";
const TF_MAIN: &str = "infra/terraform/main.tf";

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
            if len > 0 {
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
        Some(f) => problems.extend(compare(
            "environment variable",
            env,
            CONFIG_RS,
            &sam_env_vars(&f),
            &format!("{SAM_TEMPLATE} ({SAM_FUNCTION} Environment.Variables)"),
        )),
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
        Some(f) => problems.extend(compare(
            "environment variable",
            env,
            CONFIG_RS,
            &tf_env_vars(&f),
            &format!("{TF_MAIN} ({TF_FUNCTION} environment.variables)"),
        )),
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
        "              - secretsmanager:DescribeSecret\n            Resource: !Ref TokenSecret\n          - !If",
        "              - secretsmanager:DescribeSecret\n              - secretsmanager:ListSecrets\n            Resource: !Ref TokenSecret\n          - !If",
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
