//! docs/configuration.md lists every flag of `molt run` with its environment variable and
//! default, exactly as the command line defines them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use clap::CommandFactory;
use std::collections::BTreeMap;

/// flag → (env, default) as the command line defines them.
fn flags() -> BTreeMap<String, (String, Option<String>)> {
    let cli = molt::cli::Cli::command();
    let run = cli.find_subcommand("run").unwrap();
    run.get_arguments()
        .filter_map(|a| {
            let long = a.get_long()?;
            if long == "help" {
                return None;
            }
            let env = a
                .get_env()
                .map(|e| e.to_string_lossy().into_owned())
                .unwrap_or_default();
            let default = a
                .get_default_values()
                .first()
                .map(|d| d.to_string_lossy().into_owned());
            Some((format!("--{long}"), (env, default)))
        })
        .collect()
}

/// flag → (env, default) as the `molt run` table of docs/configuration.md lists them; a
/// default in words (`off`, `host name`) is `None`.
fn documented() -> BTreeMap<String, (String, Option<String>)> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/configuration.md"
    ))
    .unwrap();
    let section = text
        .split("## `molt run`")
        .nth(1)
        .unwrap()
        .split("\n## ")
        .next()
        .unwrap();
    let tick = |c: &str| {
        let c = c.trim();
        (c.starts_with('`') && c.ends_with('`') && c.len() > 1)
            .then(|| c.trim_matches('`').to_string())
    };
    section
        .lines()
        .filter(|l| l.starts_with("| `--"))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split('|').collect();
            (
                tick(cells[0]).unwrap(),
                (tick(cells[1]).unwrap_or_default(), tick(cells[2])),
            )
        })
        .collect()
}

#[test]
fn every_flag_is_documented_with_its_env_and_default() {
    let (code, docs) = (flags(), documented());
    assert_eq!(
        code.keys().collect::<Vec<_>>(),
        docs.keys().collect::<Vec<_>>(),
        "flags of `molt run` and the table of docs/configuration.md differ"
    );
    for (flag, (env, default)) in &code {
        let (doc_env, doc_default) = &docs[flag];
        assert_eq!(env, doc_env, "{flag}: environment variable");
        if let Some(d) = doc_default {
            assert_eq!(default.as_ref(), Some(d), "{flag}: default");
        } else {
            assert!(
                default.is_none() || default.as_deref() == Some("false"),
                "{flag}: the docs give no default, the code {default:?}"
            );
        }
    }
}
