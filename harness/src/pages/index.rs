//! The store's index.html: every stored run, newest first, its verdict coloured, linking
//! each of its files.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::{escape, html_page, PageError};

/// The files of a run, in the order the index lists them.
const RUN_FILES: &[&str] = &[
    "timeline.html",
    "latency.svg",
    "rate.svg",
    "unseen.svg",
    "results.json",
    "history.jsonl",
    "history.edn",
    "params.json",
    "schedule.json",
    "shrunk-schedule.json",
    "shrunk.json",
    "cycles.txt",
    "harness.log",
];

/// One stored run, as the index shows it.
#[derive(Debug, Clone)]
pub struct RunEntry {
    /// Path relative to the store root: `<test>/<stamp>-s<seed>`.
    pub path: String,
    /// The test's name (`mode-workload-nemesis`).
    pub test: String,
    /// The run directory's name, beginning with its UTC start stamp.
    pub run: String,
    /// `true`, `false`, `unknown`, or `incomplete` (no results.json).
    pub verdict: String,
    /// Operations in the history, when known.
    pub ops: Option<u64>,
    /// The settings that differ from the test's defaults (`acks=1`, ...).
    pub settings: Vec<String>,
    /// What the checker found, by name with its count (`lost 56`), or the run's error.
    pub found: Vec<String>,
    /// The files present, in [`RUN_FILES`] order.
    pub files: Vec<&'static str>,
}

/// Every run in the store at `root`, newest first.
pub fn runs(root: &Path) -> std::io::Result<Vec<RunEntry>> {
    let mut entries = Vec::new();
    let Ok(tests) = std::fs::read_dir(root) else {
        return Ok(entries);
    };
    for test in tests {
        let test = test?;
        // `latest` is a link to a run; hidden entries are the store's own.
        let name = test.file_name().to_string_lossy().into_owned();
        if name == "latest" || name.starts_with('.') || !test.file_type()?.is_dir() {
            continue;
        }
        for run in std::fs::read_dir(test.path())? {
            let run = run?;
            if !run.file_type()?.is_dir() {
                continue;
            }
            entries.push(entry(&name, run.path()));
        }
    }
    // The run's name starts with its UTC stamp: newest first, then by test for ties.
    entries.sort_by(|a, b| b.run.cmp(&a.run).then_with(|| a.test.cmp(&b.test)));
    Ok(entries)
}

fn entry(test: &str, dir: PathBuf) -> RunEntry {
    let run = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let results: Option<serde_json::Value> = std::fs::read_to_string(dir.join("results.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let verdict = match results.as_ref().map(|r| &r["valid"]) {
        Some(serde_json::Value::Bool(true)) => "true".to_string(),
        Some(serde_json::Value::Bool(false)) => "false".to_string(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(_) if results.as_ref().is_some_and(|r| r.get("error").is_some()) => "error".to_string(),
        _ => "incomplete".to_string(),
    };
    RunEntry {
        path: format!("{test}/{run}"),
        test: test.to_string(),
        run,
        verdict,
        ops: results.as_ref().and_then(|r| r["op-count"].as_u64()),
        settings: results
            .as_ref()
            .and_then(|r| r["settings"].as_array())
            .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
            .unwrap_or_default(),
        found: results.as_ref().map_or_else(Vec::new, found),
        files: RUN_FILES
            .iter()
            .copied()
            .filter(|f| dir.join(f).is_file())
            .collect(),
    }
}

/// A stored run's findings as `name count`, or its error.
fn found(results: &serde_json::Value) -> Vec<String> {
    if let Some(error) = results["error"].as_str() {
        return vec![error.to_string()];
    }
    let Some(findings) = results["findings"].as_array() else {
        return Vec::new();
    };
    findings
        .iter()
        .filter_map(|pair| Some(format!("{} {}", pair[0].as_str()?, pair[1].as_u64()?)))
        .collect()
}

const STYLE: &str = "table { border-collapse: collapse; }
td, th { padding: 4px 10px; border-bottom: 1px solid #ddd; text-align: left; font-size: 14px; }
.v-true { background: #d8f0de; color: #1d6b35; font-weight: bold; }
.v-false { background: #f8d7d6; color: #a02622; font-weight: bold; }
.v-unknown, .v-incomplete, .v-error { background: #fde9c8; color: #8a5406; font-weight: bold; }
.files a { margin-right: 8px; }
";

/// The index page of the store at `root`.
pub fn html(root: &Path) -> std::io::Result<String> {
    let entries = runs(root)?;
    let mut out = String::from("<h1>tumult results</h1>\n");
    let _ = writeln!(out, "<p>{} runs, newest first.</p>", entries.len());
    out.push_str(
        "<table>\n<tr><th>run</th><th>test</th><th>settings</th><th>valid</th><th>found</th><th>ops</th><th>files</th></tr>\n",
    );
    for e in &entries {
        let files: String = e
            .files
            .iter()
            .map(|f| format!(r#"<a href="{}/{}">{}</a>"#, escape(&e.path), f, f))
            .collect();
        let _ = writeln!(
            out,
            r#"<tr class="run"><td><a href="{path}/">{run}</a></td><td>{test}</td><td class="settings">{settings}</td><td class="v-{verdict}">{verdict}</td><td class="found">{found}</td><td>{ops}</td><td class="files">{files}</td></tr>"#,
            path = escape(&e.path),
            run = escape(&e.run),
            test = escape(&e.test),
            settings = escape(&e.settings.join(" ")),
            found = escape(&e.found.join(", ")),
            verdict = escape(&e.verdict),
            ops = e.ops.map_or(String::new(), |n| n.to_string()),
        );
    }
    out.push_str("</table>\n");
    Ok(html_page("tumult results", STYLE, &out))
}

/// Writes `<root>/index.html` afresh.
pub fn write_index(root: &Path) -> Result<PathBuf, PageError> {
    let path = root.join("index.html");
    std::fs::create_dir_all(root)?;
    // Write beside and rename: a browser reloading never sees half a page.
    let staging = root.join(crate::store::unique_staging(".index.html"));
    std::fs::write(&staging, html(root)?)?;
    std::fs::rename(&staging, &path)?;
    Ok(path)
}
