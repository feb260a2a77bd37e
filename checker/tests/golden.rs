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

/// What a case allows: the workload's defaults without those named in `"forbid"`, and with
/// those named in `"allow"`.
fn allowed(expected: &Value) -> Vec<&str> {
    let names = |field: &str| -> Vec<&str> {
        expected[field]
            .as_array()
            .map(|names| names.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    };
    let forbid = names("forbid");
    let mut allowed: Vec<&str> = checker::LOG_ALLOWED
        .iter()
        .copied()
        .filter(|name| !forbid.contains(name))
        .collect();
    allowed.extend(names("allow"));
    allowed
}

fn check(path: &Path, workload: Workload, allowed: &[&str]) -> Report {
    let file = std::fs::File::open(path).unwrap();
    let history = History::read(std::io::BufReader::new(file), Format::Auto)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    match workload {
        Workload::Log => checker::check_allowing(&history, workload, allowed),
        Workload::Queue => checker::check(&history, workload),
    }
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
        let report = check(path, workload, &allowed(expected));
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
        if expected.get("forbid").is_some() {
            // check_file only adds allowances; these cases are read both ways by the
            // golden test itself.
            continue;
        }
        let whole = check(&path, workload, &allowed(&expected));
        let streamed = checker::check_file(&path, Format::Auto, Some(workload), &allowed(&expected))
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
        let allow = allowed(&expected);
        let (edn, json) = (check(&path, workload, &allow), check(&jsonl, workload, &allow));
        assert_eq!(found(&edn), found(&json), "{name}");
        assert_eq!(counts(&edn), counts(&json), "{name}");
        assert_eq!(edn.valid, json.valid, "{name}");
        twins += 1;
    }
    assert!(twins >= 2);
}

/// Jepsen's names for what its tests assert, as tumult counts them: anomalies by their own
/// name, the rest by the report's counts.
fn jepsen_count(report: &Report, name: &str) -> u64 {
    let counted = match name {
        "lost-write" | "lost" => "lost",
        "duplicate" => "duplicates",
        "inconsistent-offsets" => "inconsistent-offsets",
        "duplicated" | "unexpected" | "recovered" => name,
        "unseen" if report.log().is_some_and(|log| log.final_reads) => return 0,
        _ => return found(report).get(name).copied().unwrap_or(0),
    };
    counts(report).get(counted).copied().unwrap_or(0)
}

/// Everything tumult found, in Jepsen's names: anomalies, and the counts Jepsen names.
fn jepsen_findings(report: &Report) -> BTreeMap<String, u64> {
    let mut all = found(report);
    for (ours, theirs) in [
        ("lost", "lost-write"),
        ("duplicates", "duplicate"),
        ("inconsistent-offsets", "inconsistent-offsets"),
        ("dirty-reads", "dirty-reads"),
        ("unexpected", "unexpected"),
        ("duplicated", "duplicated"),
    ] {
        let theirs = if report.total_queue().is_some() && ours == "lost" {
            "lost"
        } else {
            theirs
        };
        if let Some(n) = counts(report).get(ours).filter(|n| **n > 0) {
            all.insert(theirs.to_string(), *n);
        }
    }
    all
}

/// The cases transcribed from Jepsen's own tests (`"jepsen"` in the expectation): each
/// error Jepsen's test asserts (with its count, 0 for "none"), and its verdict where the
/// test asserts one, is what tumult finds, unless the case lists it under `differences`
/// with the reason; anything more tumult finds is listed under `beyond` (found by
/// Jepsen's analysis too, but not what its test looks at) or `differences`.
#[test]
fn transcribed_jepsen_tests_agree_with_jepsen_or_say_why_not() {
    let mut cases_seen = 0;
    let mut failures = Vec::new();
    for (name, path, expected) in cases() {
        let Some(jepsen) = expected.get("jepsen") else {
            continue;
        };
        cases_seen += 1;
        let workload: Workload = expected["workload"].as_str().unwrap().parse().unwrap();
        let report = check(&path, workload, &allowed(&expected));
        let listed = |section: &str, what: &str| jepsen[section].get(what).and_then(Value::as_str).is_some();
        for (error, count) in jepsen["errors"].as_object().into_iter().flatten() {
            let ours = jepsen_count(&report, error);
            if Some(ours) != count.as_u64() && !listed("differences", error) {
                failures.push(format!(
                    "{name}: Jepsen asserts {error} {count}, tumult finds {ours}"
                ));
            }
        }
        if let Some(valid) = jepsen.get("valid").and_then(Value::as_bool) {
            let ours = report.valid == checker::Validity::True;
            if ours != valid && !listed("differences", "valid") {
                failures.push(format!(
                    "{name}: Jepsen says valid {valid}, tumult {:?}",
                    report.valid
                ));
            }
        }
        for (finding, count) in jepsen_findings(&report) {
            let asserted = jepsen["errors"].get(&finding).is_some();
            if !asserted && !listed("beyond", &finding) && !listed("differences", &finding) {
                failures.push(format!(
                    "{name}: tumult finds {finding} {count}, which the case does not explain"
                ));
            }
        }
        for section in ["beyond", "differences"] {
            for (what, why) in jepsen[section].as_object().into_iter().flatten() {
                if why.as_str().is_none_or(|w| w.len() < 20) {
                    failures.push(format!("{name}: {section}.{what} needs its reason"));
                }
            }
        }
    }
    assert!(cases_seen >= 40, "only {cases_seen} transcribed Jepsen cases");
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn every_jsonl_case_written_as_edn_checks_to_the_same_report() {
    let mut written = 0;
    for (name, path, expected) in cases() {
        if path.extension().and_then(|e| e.to_str()) != Some("jsonl") {
            continue;
        }
        let workload: Workload = expected["workload"].as_str().unwrap().parse().unwrap();
        let allow = allowed(&expected);
        let mut edn = Vec::new();
        let file = std::io::BufReader::new(std::fs::File::open(&path).unwrap());
        checker::jsonl_to_edn(file, &mut edn).unwrap_or_else(|e| panic!("{name}: {e}"));
        let from_edn = History::read(edn.as_slice(), Format::Edn)
            .map(|h| checker::check_allowing(&h, workload, &allow))
            .unwrap_or_else(|e| panic!("{name}: {e}\n{}", String::from_utf8_lossy(&edn)));
        let from_jsonl = check(&path, workload, &allow);
        assert_eq!(
            serde_json::to_value(&from_edn).unwrap(),
            serde_json::to_value(&from_jsonl).unwrap(),
            "{name}"
        );
        written += 1;
    }
    assert!(written >= 20, "{written}");
}
