//! README's configuration table must list exactly the settings `livegate --help` knows,
//! with the same defaults, so the documentation cannot drift from the binary.

use std::collections::BTreeMap;

use clap::CommandFactory;
use livegate::config::Config;

fn readme_table() -> BTreeMap<String, String> {
    let readme = include_str!("../../../README.md");
    readme
        .lines()
        .filter(|line| line.starts_with("| `LIVE_AI_"))
        .map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let var = cells[1].trim_matches('`').to_owned();
            let default = cells[3].trim_matches('`').to_owned();
            (var, default)
        })
        .collect()
}

#[test]
fn readme_lists_every_setting_with_its_default() {
    let command = Config::command();
    let binary: BTreeMap<String, String> = command
        .get_arguments()
        .filter_map(|arg| {
            let var = arg.get_env()?.to_string_lossy().into_owned();
            let default = arg
                .get_default_values()
                .first()
                .map(|d| d.to_string_lossy().into_owned())
                .filter(|d| !d.is_empty())
                .unwrap_or_else(|| "empty".to_owned());
            Some((var, default))
        })
        .collect();
    assert_eq!(readme_table(), binary);
}
