//! Writes the PrometheusRule of `config/prometheus/` from the rule file `config/monitoring/alerts.yaml`
//! (`make sync` runs it):
//!
//! ```text
//! prometheus-rule config/monitoring/alerts.yaml config/prometheus/prometheus_rule.yaml
//! ```
//!
//! The rule file's `groups:` becomes the resource's `spec.groups`, its text kept as written
//! (indented one level), so comments and block scalars survive. Only the file's leading comment
//! block is dropped: it describes the rule file, not the resource. The result is parsed back and
//! compared with the rule file before it is written, so a broken input never reaches the output.

use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use serde_yaml_ng::Value;

const HEADER: &str = "\
# Generated from config/monitoring/alerts.yaml by `make sync`; edit that file instead.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: molt
  namespace: molt-system
  labels:
    app.kubernetes.io/name: molt
    app.kubernetes.io/instance: molt
spec:
";

/// The PrometheusRule for the rule file `alerts`.
fn render(alerts: &str) -> Result<String> {
    let mut out = String::from(HEADER);
    let body = alerts
        .lines()
        .skip_while(|l| l.starts_with('#') || l.trim().is_empty());
    for line in body {
        if !line.is_empty() {
            out.push_str("  ");
        }
        out.push_str(line);
        out.push('\n');
    }
    let rule: Value = serde_yaml_ng::from_str(&out).context("the generated PrometheusRule")?;
    let source: Value = serde_yaml_ng::from_str(alerts).context("the rule file")?;
    ensure!(
        source.get("groups").is_some_and(Value::is_sequence),
        "the rule file has no `groups:` list"
    );
    ensure!(
        source.as_mapping().is_some_and(|m| m.len() == 1),
        "the rule file has keys besides `groups:`, which a PrometheusRule's spec does not take"
    );
    ensure!(
        rule.get("spec").and_then(|s| s.get("groups")) == source.get("groups"),
        "the generated spec.groups differs from the rule file's groups"
    );
    Ok(out)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output] = args.as_slice() else {
        bail!("usage: prometheus-rule <alerts.yaml> <prometheus_rule.yaml>");
    };
    let alerts = std::fs::read_to_string(input).with_context(|| format!("reading {input}"))?;
    let rule = render(&alerts).with_context(|| format!("rendering {input}"))?;
    let output = Path::new(output);
    std::fs::write(output, rule).with_context(|| format!("writing {}", output.display()))
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn keeps_comments_and_block_scalars_after_the_header() {
        let alerts = "# header\n# more\ngroups:\n  - name: g\n    rules:\n      - alert: A\n        expr: |\n          # not a comment\n          up == 0\n";
        let rule = render(alerts).unwrap();
        assert!(rule.ends_with("spec:\n  groups:\n    - name: g\n      rules:\n        - alert: A\n          expr: |\n            # not a comment\n            up == 0\n"));
        assert!(!rule.contains("# header"));
    }

    #[test]
    fn refuses_a_file_without_groups() {
        assert!(render("rules: []\n").is_err());
    }
}
