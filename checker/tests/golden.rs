//! Golden histories: `checker/testdata/NAME.jsonl` (or `.edn`) beside `NAME.expected.json`,
//! which names the workload, the verdict, every anomaly the checker must find (and so no
//! other), and any counts to compare. Adding a case is adding those two files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use checker::{Format, History, Report, Workload};
use serde_json::Value;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

fn cases() -> Vec<(String, PathBuf, Value)> {
    let mut cases = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(testdata())
        .expect("checker/testdata exists")
        .map(|e| e.expect("readable").path())
        .collect();
    entries.sort();
    for expected in entries {
        let Some(name) = expected
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".expected.json"))
        else {
            continue;
        };
        let history = ["jsonl", "edn"]
            .iter()
            .map(|ext| testdata().join(format!("{name}.{ext}")))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("{name}: no {name}.jsonl or {name}.edn beside its expectation"));
        let text = std::fs::read_to_string(&expected).unwrap();
        let value: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        cases.push((name.to_string(), history, value));
    }
    cases
}

fn check(path: &Path, workload: Workload) -> Report {
    let file = std::fs::File::open(path).unwrap();
    let history = History::read(std::io::BufReader::new(file), Format::Auto)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    checker::check(&history, workload)
}

/// The anomalies found, by name, with their counts (allowed ones included).
fn found(report: &Report) -> BTreeMap<String, u64> {
    report
        .log()
        .map(|log| {
            log.anomalies
                .iter()
                .filter(|(_, c)| c.count > 0)
                .map(|(n, c)| (n.clone(), c.count as u64))
                .collect()
        })
        .unwrap_or_default()
}

/// Named counts of the report, in the expectation files' spelling.
fn counts(report: &Report) -> BTreeMap<&'static str, u64> {
    let mut counts = BTreeMap::new();
    if let Some(log) = report.log() {
        counts.insert("lost", log.lost_count as u64);
        counts.insert("dirty-reads", log.dirty_read_count as u64);
        counts.insert("inconsistent-offsets", log.inconsistent_offset_count as u64);
        counts.insert("duplicates", log.duplicate_count as u64);
        counts.insert("unexpected", log.unexpected_count as u64);
        counts.insert("unseen", log.unseen.count as u64);
    }
    if let Some(queue) = report.total_queue() {
        counts.insert("lost", queue.lost_count as u64);
        counts.insert("duplicated", queue.duplicated_count as u64);
        counts.insert("unexpected", queue.unexpected_count as u64);
        counts.insert("recovered", queue.recovered_count as u64);
        counts.insert("reordered", queue.reordered_count as u64);
    }
    counts
}

#[test]
fn every_golden_history_gets_exactly_its_expected_verdict_and_anomalies() {
    let cases = cases();
    assert!(cases.len() >= 25, "only {} golden cases", cases.len());
    let mut failures = Vec::new();
    for (name, path, expected) in &cases {
        let workload: Workload = expected["workload"].as_str().unwrap().parse().unwrap();
        let report = check(path, workload);
        let valid = serde_json::to_value(report.valid).unwrap();
        if valid != expected["valid"] {
            failures.push(format!("{name}: valid {valid}, expected {}", expected["valid"]));
        }
        let want: BTreeMap<String, u64> = expected["anomalies"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_u64().unwrap())).collect())
            .unwrap_or_default();
        let got = found(&report);
        if got != want {
            failures.push(format!("{name}: anomalies {got:?}, expected {want:?}"));
        }
        let have = counts(&report);
        for (count, value) in expected["counts"].as_object().into_iter().flatten() {
            let got = have.get(count.as_str()).copied();
            if got != value.as_u64() {
                failures.push(format!("{name}: {count} {got:?}, expected {value}"));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn checking_the_file_streamed_gives_the_report_of_the_history_read_whole() {
    for (name, path, expected) in cases() {
        let workload: Workload = expected["workload"].as_str().unwrap().parse().unwrap();
        let whole = check(&path, workload);
        let streamed = checker::check_file(&path, Format::Auto, Some(workload))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .report;
        assert_eq!(
            serde_json::to_value(&streamed).unwrap(),
            serde_json::to_value(&whole).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn jepsen_edn_twins_give_the_same_report_as_their_jsonl() {
    let mut twins = 0;
    for (name, path, expected) in cases() {
        let Some(base) = name.strip_suffix("-jepsen") else {
            continue;
        };
        let jsonl = testdata().join(format!("{base}.jsonl"));
        let workload: Workload = expected["workload"].as_str().unwrap().parse().unwrap();
        let (edn, json) = (check(&path, workload), check(&jsonl, workload));
        assert_eq!(found(&edn), found(&json), "{name}");
        assert_eq!(counts(&edn), counts(&json), "{name}");
        assert_eq!(edn.valid, json.valid, "{name}");
        twins += 1;
    }
    assert!(twins >= 2);
}
