//! `check_file` on the files a new user hands it: empty ones, nemesis-only ones, and
//! histories of another workload than the one asked for.

use std::path::PathBuf;

use checker::{check_file, CheckFileError, Format, Validity, Workload};

fn file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tumult-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

const QUEUE: &str = r#"{"index":0,"time":0,"type":"invoke","process":0,"f":"enqueue","value":1}
{"index":1,"time":5,"type":"ok","process":0,"f":"enqueue","value":1}
{"index":2,"time":6,"type":"invoke","process":0,"f":"drain","value":null}
{"index":3,"time":9,"type":"ok","process":0,"f":"drain","value":[]}
"#;

const LOG: &str = r#"{"index":0,"time":0,"type":"invoke","process":0,"f":"send","value":[["k",1]]}
{"index":1,"time":5,"type":"ok","process":0,"f":"send","value":[["k",[0,1]]]}
"#;

const NEMESIS: &str = r#"{"index":0,"time":0,"type":"info","process":"nemesis","f":"kill","value":null}
{"index":1,"time":9,"type":"info","process":"nemesis","f":"start","value":null}
"#;

#[test]
fn an_empty_or_nemesis_only_history_is_unknown_and_says_why_for_every_workload() {
    let empty = file("empty.jsonl", "");
    let nemesis = file("nemesis.jsonl", NEMESIS);
    for workload in [None, Some(Workload::Queue), Some(Workload::Log)] {
        for path in [&empty, &nemesis] {
            let checked = check_file(path, Format::Auto, workload, &[]).unwrap();
            assert_eq!(checked.report.valid, Validity::Unknown, "{path:?} {workload:?}");
            let summary: Vec<String> = checked.report.analyses.values().map(|a| a.summary()).collect();
            assert!(
                summary.iter().all(|s| s.contains("no client operation")),
                "{summary:?}"
            );
        }
    }
}

#[test]
fn a_workload_whose_operations_the_history_lacks_is_refused_naming_what_it_holds() {
    let queue = file("queue.jsonl", QUEUE);
    let log = file("log.jsonl", LOG);
    let err = check_file(&queue, Format::Auto, Some(Workload::Log), &[]).unwrap_err();
    assert!(matches!(err, CheckFileError::WorkloadMismatch { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("'enqueue'") && message.contains("--workload queue"),
        "{message}"
    );
    let err = check_file(&log, Format::Auto, Some(Workload::Queue), &[]).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("'send'") && message.contains("--workload log"),
        "{message}"
    );
    // The matching workloads still judge them.
    let checked = check_file(&queue, Format::Auto, Some(Workload::Queue), &[]).unwrap();
    assert_eq!(checked.report.valid, Validity::False);
    let checked = check_file(&log, Format::Auto, None, &[]).unwrap();
    assert_eq!(checked.report.workload, Workload::Log);
}

#[test]
fn a_history_of_functions_tumult_does_not_check_is_refused_naming_them() {
    let rw = file(
        "rw.jsonl",
        &QUEUE.replace("enqueue", "write").replace("drain", "read"),
    );
    let err = check_file(&rw, Format::Auto, None, &[]).unwrap_err();
    assert!(matches!(err, CheckFileError::UnknownWorkload { .. }), "{err}");
    assert!(err.to_string().contains("'write' and 'read'"), "{err}");
}

#[test]
fn a_lone_completion_is_never_ordered_after_itself_in_real_time() {
    // Completions without invocations (Jepsen's histories after an info, or cut at the
    // start): when they were invoked is unknown, so no realtime edge may reach them.
    let lone = file(
        "lone.edn",
        "{:index 0, :time 0, :type :ok, :process 0, :f :send, :value [[:k [0 1]]]}\n\
         {:index 1, :time 1, :type :ok, :process 1, :f :send, :value [[:k [1 2]]]}\n",
    );
    let checked = check_file(&lone, Format::Auto, None, &[]).unwrap();
    let text = serde_json::to_string(&checked.report).unwrap();
    assert!(!text.contains("realtime"), "{text}");
    assert_ne!(checked.report.valid, Validity::False, "{text}");
}
