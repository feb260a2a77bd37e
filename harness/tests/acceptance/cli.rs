//! The `tumult` command as a user meets it: exit codes, what it prints, bad input.

use std::path::Path;
use std::process::{Command, Output};

fn tumult(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tumult"))
        .args(args)
        .output()
        .expect("tumult runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn run_test(store: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["test", "--store", store.to_str().unwrap()];
    args.extend_from_slice(extra);
    tumult(&args)
}

#[test]
fn a_test_prints_its_seed_first_and_verdict_directory_and_replay_last() {
    let store = tempfile::tempdir().unwrap();
    let out = run_test(store.path(), &["--seed", "11", "--time-limit", "10"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.starts_with("tumult test: seed 11\n"), "{stdout}");
    assert!(stdout.contains("\nVALID"), "{stdout}");
    assert!(stdout.contains("lost 0"), "{stdout}");
    let results = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("results: "))
        .expect("results line");
    assert!(Path::new(results).join("history.jsonl").is_file());
    let replay = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("replay:"))
        .expect("replay line");
    assert!(
        replay.contains("--seed 11") && replay.contains("--time-limit 10"),
        "{replay}"
    );
}

#[test]
fn without_fsync_the_run_and_the_recheck_both_report_loss_with_exit_1() {
    let store = tempfile::tempdir().unwrap();
    let out = run_test(store.path(), &["--seed", "2", "--fsync", "never"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("INVALID"), "{stdout}");
    let latest = store.path().join("latest");
    let check = tumult(&["check", latest.to_str().unwrap()]);
    assert_eq!(check.status.code(), Some(1), "{}", text(&check.stdout));
    let run_counts = stdout
        .lines()
        .find(|l| l.contains("total-queue:"))
        .unwrap()
        .trim()
        .to_string();
    let check_counts = text(&check.stdout)
        .lines()
        .find(|l| l.contains("total-queue:"))
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(run_counts, check_counts);
    // Both name a few of the lost values, not only their count.
    for out in [&stdout, &text(&check.stdout)] {
        let exemplars = out
            .lines()
            .find(|l| l.trim_start().starts_with("lost ("))
            .unwrap_or("");
        assert!(exemplars.contains("more") || exemplars.contains(", "), "{out}");
    }
    // The run's Jepsen-form twin reads back to the same counts.
    let edn = latest.join("history.edn");
    let check = tumult(&["check", edn.to_str().unwrap()]);
    assert_eq!(check.status.code(), Some(1), "{}", text(&check.stderr));
    assert!(
        text(&check.stdout).contains(&check_counts),
        "{}",
        text(&check.stdout)
    );
    let first = std::fs::read_to_string(&edn).unwrap();
    assert!(
        first.starts_with("{:index 0, :time 0, :type :invoke"),
        "{first:.200}"
    );
}

#[test]
fn checking_garbage_names_the_line_and_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.jsonl");
    std::fs::write(
        &path,
        "{\"index\":0,\"time\":0,\"type\":\"invoke\",\"process\":0,\"f\":\"enqueue\",\"value\":1}\n\u{1}garbage\n",
    )
    .unwrap();
    let out = tumult(&["check", path.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("line 2"), "{stderr}");
}

#[test]
fn checking_a_truncated_history_names_the_cut_line_and_exits_3() {
    let store = tempfile::tempdir().unwrap();
    let out = run_test(store.path(), &["--seed", "5", "--time-limit", "5"]);
    assert_eq!(out.status.code(), Some(0));
    let history = std::fs::read_to_string(store.path().join("latest/history.jsonl")).unwrap();
    let lines = history.lines().count();
    let cut = history.trim_end().len() - 10;
    let path = store.path().join("cut.jsonl");
    std::fs::write(&path, &history[..cut]).unwrap();
    let out = tumult(&["check", path.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(&format!("line {lines}")),
        "expected line {lines}: {stderr}"
    );
}

#[test]
fn a_missing_file_an_unknown_flag_and_a_bad_value_are_errors_with_exit_3() {
    let out = tumult(&["check", "/nonexistent/history.jsonl"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stderr).contains("cannot open"));
    let out = tumult(&["test", "--no-such-flag"]);
    assert_eq!(out.status.code(), Some(3));
    let out = tumult(&["test", "--mode", "paxos"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("unknown mode 'paxos'"),
        "{}",
        text(&out.stderr)
    );
    let out = tumult(&["test", "--concurrency", "0"]);
    assert_eq!(out.status.code(), Some(3));
    // A knob of another mode is refused, not silently ignored.
    let out = tumult(&["test", "--mode", "quorum", "--promote-unsynced"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("apply to mode mirrored"),
        "{}",
        text(&out.stderr)
    );
    let out = tumult(&["test", "--mode", "single", "--nodes", "3"]);
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn help_documents_every_flag() {
    for command in [
        "test", "check", "serve", "bench", "zoo", "sweep", "merge", "shrink", "matrix",
    ] {
        let out = tumult(&[command, "--help"]);
        assert_eq!(out.status.code(), Some(0));
        let help = text(&out.stdout);
        let lines: Vec<&str> = help.lines().collect();
        let options: Vec<usize> = (0..lines.len())
            .filter(|i| lines[*i].trim_start().starts_with("--"))
            .collect();
        // `shrink` takes only its run directory.
        assert!(options.len() >= 2 || command == "shrink", "{help}");
        assert!(help.contains("Arguments:") || command != "shrink", "{help}");
        for i in options {
            // clap puts the description after a gap on the flag's line, or (when some help
            // is long) alone on the next line.
            let same_line = lines[i]
                .trim()
                .split_once("  ")
                .map(|(_, d)| d.trim())
                .unwrap_or("");
            let next_line = lines
                .get(i + 1)
                .map(|l| l.trim())
                .filter(|l| !l.starts_with('-'))
                .unwrap_or("");
            let description = if same_line.is_empty() {
                next_line
            } else {
                same_line
            };
            assert!(
                description.len() >= 10,
                "tumult {command}: no help text for: {}",
                lines[i]
            );
        }
    }
}

#[test]
fn a_log_history_is_detected_and_a_lost_send_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.jsonl");
    let lines = [
        r#"{"index":0,"time":0,"type":"invoke","process":0,"f":"send","value":[["send",2,17]]}"#,
        r#"{"index":1,"time":5,"type":"ok","process":0,"f":"send","value":[["send",2,[0,17]]]}"#,
        r#"{"index":2,"time":6,"type":"invoke","process":0,"f":"send","value":[["send",2,18]]}"#,
        r#"{"index":3,"time":9,"type":"ok","process":0,"f":"send","value":[["send",2,[1,18]]]}"#,
        r#"{"index":4,"time":10,"type":"invoke","process":1,"f":"final-poll","value":[["poll"]]}"#,
        r#"{"index":5,"time":12,"type":"ok","process":1,"f":"final-poll","value":[["poll",{"2":[[0,17]]}]]}"#,
    ];
    std::fs::write(&path, lines.join("\n")).unwrap();
    let out = tumult(&["check", path.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("log: sent 2, acknowledged 2, lost 1"), "{stdout}");
    let json = tumult(&["check", path.to_str().unwrap(), "--workload", "log", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(
        report["analyses"]["log"]["lost"][0]["value"],
        serde_json::json!("18")
    );
}

#[test]
fn a_cluster_that_cannot_finish_its_final_reads_is_a_liveness_failure_with_exit_4() {
    let store = tempfile::tempdir().unwrap();
    let out = run_test(
        store.path(),
        &["--seed", "1", "--time-limit", "3", "--recovery", "0"],
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(4), "{stdout}");
    assert!(stdout.contains("\nLIVENESS FAILURE"), "{stdout}");
}

#[test]
fn the_printed_replay_command_reproduces_the_history_byte_for_byte() {
    for first in [
        vec![
            "--mode",
            "mirrored",
            "--promote-unsynced",
            "--nemesis",
            "kill,partition",
            "--seed",
            "5",
        ],
        vec![
            "--mode",
            "kafka",
            "--acks",
            "1",
            "--overlap",
            "--nemesis",
            "kill,partition",
            "--seed",
            "6",
        ],
    ] {
        let store = tempfile::tempdir().unwrap();
        let mut args = first.clone();
        args.extend(["--time-limit", "8"]);
        let out = run_test(store.path(), &args);
        let stdout = text(&out.stdout);
        let replay = stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix("replay:"))
            .expect("replay line");
        let first_history = std::fs::read(store.path().join("latest/history.jsonl")).unwrap();
        let words: Vec<&str> = replay.split_whitespace().skip(1).collect();
        assert_eq!(words[0], "test", "{replay}");
        let mut again = words[1..].to_vec();
        again.extend(["--store", store.path().to_str().unwrap()]);
        let out = tumult(&{
            let mut a = vec!["test"];
            a.extend(again);
            a
        });
        assert!(
            out.status.success() || out.status.code() == Some(1),
            "{}",
            text(&out.stderr)
        );
        let second_history = std::fs::read(store.path().join("latest/history.jsonl")).unwrap();
        assert!(
            first_history == second_history,
            "replaying `{replay}` gave another history"
        );
    }
}

#[test]
fn swarm_prints_its_profile_and_determinism_is_checked_by_running_twice() {
    let store = tempfile::tempdir().unwrap();
    let args = [
        "--mode",
        "quorum",
        "--swarm",
        "--seed",
        "4",
        "--time-limit",
        "8",
        "--check-determinism",
    ];
    let out = run_test(store.path(), &args);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    let profile = stdout.lines().nth(1).expect("a second line");
    assert!(profile.starts_with("  swarm profile: nemesis "), "{stdout}");
    assert!(
        stdout.contains("determinism: the second run's history is byte-identical"),
        "{stdout}"
    );
    // The replay command spells out what the swarm drew, and needs no --swarm.
    let replay = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("replay:"))
        .expect("replay");
    assert!(
        !replay.contains("--swarm") && replay.contains("--latency "),
        "{replay}"
    );
    let results = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("results: "))
        .expect("results");
    assert!(Path::new(results).join("schedule.json").is_file());
}

#[test]
fn bad_schedules_and_latencies_are_usage_errors() {
    let store = tempfile::tempdir().unwrap();
    let bad = store.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"version":1,"faults":[{"start_ms":5,"end_ms":9,"fault":{"kind":"kill","nodes":["n7"]}}]}"#,
    )
    .unwrap();
    let out = run_test(
        store.path(),
        &["--mode", "quorum", "--schedule", bad.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("names host 'n7'"),
        "{}",
        text(&out.stderr)
    );
    std::fs::write(&bad, "{ not json").unwrap();
    let out = run_test(store.path(), &["--schedule", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("is not a tumult schedule"),
        "{}",
        text(&out.stderr)
    );
    let out = run_test(store.path(), &["--latency", "9..2"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("MIN is above MAX"),
        "{}",
        text(&out.stderr)
    );
    let out = run_test(store.path(), &["--target", "king"]);
    assert!(text(&out.stderr).contains("leader"), "{}", text(&out.stderr));
    // A schedule that cannot be read is refused before a run directory is made: the
    // store holds only the bad schedule file written above.
    let missing = store.path().join("missing.json");
    let out = run_test(store.path(), &["--schedule", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stderr).contains("cannot read"), "{}", text(&out.stderr));
    let entries: Vec<_> = std::fs::read_dir(store.path()).unwrap().collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
}

#[test]
fn impossible_settings_are_refused_up_front_and_errors_name_their_path_once() {
    let out = tumult(&["test", "--mode", "kafka", "--min-isr", "4"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("--min-isr must be 1..=3"),
        "{}",
        text(&out.stderr)
    );
    let out = tumult(&["test", "--concurrency", "101"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stderr).contains("1..=100"), "{}", text(&out.stderr));
    let out = tumult(&["test", "--store", "/proc/forbidden"]);
    assert_eq!(out.status.code(), Some(3));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("/proc/forbidden/single-queue-kill"), "{stderr}");
    assert_eq!(stderr.matches("os error").count(), 1, "{stderr}");
    let out = tumult(&["check", "/nonexistent/history.jsonl"]);
    let stderr = text(&out.stderr);
    assert_eq!(
        stderr.matches("/nonexistent/history.jsonl").count(),
        1,
        "{stderr}"
    );
    // What real runs cannot do is refused before anything starts, with the reason.
    let out = tumult(&[
        "test",
        "--runtime",
        "real",
        "--mode",
        "quorum",
        "--nemesis",
        "disk",
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stderr).contains("torn writes"), "{}", text(&out.stderr));
    let out = tumult(&["test", "--runtime", "real", "--check-determinism"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("never happens the same way twice"),
        "{}",
        text(&out.stderr)
    );
    // The program's own description, not the crate's.
    let out = tumult(&["-h"]);
    assert!(
        text(&out.stdout).starts_with("Jepsen-style"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn many_clients_run_without_overflowing_the_simulated_listener() {
    // With turmoil's default backlog of 64 this run panics ("server socket buffer full"):
    // 70 clients happen not to, 90 do (checked by building with the default).
    let store = tempfile::tempdir().unwrap();
    let out = run_test(
        store.path(),
        &["--concurrency", "90", "--time-limit", "1", "--seed", "1"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn an_empty_history_is_unknown_and_a_history_of_another_workload_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    let out = tumult(&["check", empty.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("no client operation"),
        "{}",
        text(&out.stdout)
    );
    let queue = dir.path().join("queue.jsonl");
    std::fs::write(
        &queue,
        concat!(
            r#"{"index":0,"time":0,"type":"invoke","process":0,"f":"enqueue","value":1}"#,
            "\n",
            r#"{"index":1,"time":5,"type":"ok","process":0,"f":"enqueue","value":1}"#,
            "\n"
        ),
    )
    .unwrap();
    let out = tumult(&["check", queue.to_str().unwrap(), "--workload", "log"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("--workload queue"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn list_shows_every_workload_with_its_knobs_and_every_mode_and_fault() {
    let out = tumult(&["list"]);
    assert_eq!(out.status.code(), Some(0));
    let listing = text(&out.stdout);
    for registration in workloads::registry() {
        assert!(
            listing.contains(&format!("\n  {:<10} {}", registration.name, registration.about)),
            "{listing}"
        );
        for knob in registration.knobs {
            assert!(
                listing.contains(&format!(
                    "{:<16} {} (default {})",
                    knob.name, knob.help, knob.default
                )),
                "{} missing from {listing}",
                knob.name
            );
        }
    }
    for (mode, _) in broker::Mode::ALL {
        assert!(listing.contains(&format!("\n  {mode}")), "{mode} missing");
    }
    for (kind, _) in harness::FaultKind::ALL {
        assert!(
            listing.contains(&format!("\n  {}", kind.as_str())),
            "{kind:?} missing"
        );
    }
}

#[test]
fn knobs_are_set_recorded_and_replayed_and_bad_ones_refused() {
    let store = tempfile::tempdir().unwrap();
    let out = run_test(
        store.path(),
        &[
            "--mode",
            "kafka",
            "--seed",
            "4",
            "--time-limit",
            "8",
            "--knob",
            "send-batch=3",
            "--knob",
            "consume=subscribe",
        ],
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("--knob consume=subscribe --knob send-batch=3"),
        "{stdout}"
    );
    let params: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(store.path().join("latest/params.json")).unwrap())
            .unwrap();
    assert_eq!(params["knobs"]["send-batch"], "3");
    let history = std::fs::read_to_string(store.path().join("latest/history.jsonl")).unwrap();
    assert!(history.contains(r#""f":"subscribe""#), "a subscribing consumer");
    for (args, message) in [
        (vec!["--knob", "sendbatch=3"], "has no knob 'sendbatch'"),
        (
            vec!["--knob", "send-batch=0"],
            "knob send-batch=0: must be 1..=16",
        ),
        (vec!["--knob", "send-batch"], "expected NAME=VALUE"),
        (vec!["--workload", "stack"], "unknown workload 'stack'"),
    ] {
        let mut all = vec!["--mode", "kafka", "--time-limit", "2"];
        all.extend(args);
        let out = run_test(store.path(), &all);
        assert_eq!(out.status.code(), Some(3));
        assert!(text(&out.stderr).contains(message), "{}", text(&out.stderr));
    }
}

#[test]
fn serve_refuses_a_missing_store_with_exit_3() {
    let out = tumult(&["serve", "--store", "/nonexistent/store", "--port", "0"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stderr).contains("no results store at /nonexistent/store"));
}

#[test]
fn a_sharded_sweep_merges_into_one_summary_with_junit_and_replays() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let store = path("store");
    let common = [
        "--seeds",
        "1..5",
        "--fsync",
        "never",
        "--time-limit",
        "8",
        "--nemesis-interval",
        "2",
        "--jobs",
        "2",
        "--store",
        &store,
    ];
    let mut summaries = Vec::new();
    for shard in ["1/2", "2/2"] {
        let summary = path(&format!("summary-{}.json", &shard[..1]));
        let mut args = vec!["sweep", "--shard", shard, "--summary", &summary];
        args.extend(common);
        let out = tumult(&args);
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        summaries.push(summary);
    }
    let junit = path("junit.xml");
    let out = tumult(&["merge", &summaries[0], &summaries[1], "--junit", &junit]);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("5 seeds:"), "{stdout}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    let cases = xml.matches("<testcase ").count();
    let failures = xml.matches("<failure ").count();
    assert_eq!(cases, 5, "{xml}");
    // Without fsync, kills lose confirmed messages: the sweep must notice.
    assert!(failures >= 1, "{xml}");
    assert_eq!(out.status.code(), Some(1));
    // Each failure's replay command reproduces it, and its run was stored.
    let replay = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("replay: "))
        .expect("a replay line");
    let args: Vec<&str> = replay.split_whitespace().skip(1).collect();
    let mut args = args.clone();
    args.extend(["--store", &store]);
    let again = tumult(&args);
    assert_eq!(again.status.code(), Some(1), "{}", text(&again.stdout));
    assert!(stdout.contains("stored: "), "{stdout}");
}

#[test]
fn allow_judges_a_jepsen_history_as_jepsen_does_with_ww_deps_and_refuses_unknown_names() {
    let case = Path::new(env!("CARGO_MANIFEST_DIR")).join("../checker/testdata/jepsen-kafka-g1c-ww-wr.edn");
    let case = case.to_str().unwrap();
    // By default a cycle of a write-write and a write-read dependency is G1c: invalid.
    let strict = tumult(&["check", case]);
    assert_eq!(strict.status.code(), Some(1), "{}", text(&strict.stdout));
    assert!(text(&strict.stdout).contains("G1c 1"), "{}", text(&strict.stdout));
    // Allowed as with :ww-deps, it is still reported, and only the unread values remain.
    let allowed = tumult(&["check", case, "--allow", "G0,G1c,G1c-process,G1c-realtime"]);
    let stdout = text(&allowed.stdout);
    assert!(stdout.contains("G1c 1 (allowed)"), "{stdout}");
    assert!(stdout.contains("unseen 2"), "{stdout}");
    let bad = tumult(&["check", case, "--allow", "G7"]);
    assert_eq!(bad.status.code(), Some(3));
    assert!(
        text(&bad.stderr).contains("unknown anomaly 'G7'"),
        "{}",
        text(&bad.stderr)
    );
}

#[test]
fn the_readme_examples_that_catch_a_bug_do_catch_it() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let section = readme
        .split("To watch the harness catch a real bug")
        .nth(1)
        .and_then(|rest| rest.split("```sh").nth(1))
        .and_then(|block| block.split("```").next())
        .expect("the README's bug-catching example block");
    let store = tempfile::tempdir().unwrap();
    let mut runs = 0;
    for line in section.lines() {
        let Some(args) = line.trim().strip_prefix("cargo run --bin tumult -- test ") else {
            continue;
        };
        let args: Vec<&str> = args.split('#').next().unwrap().split_whitespace().collect();
        let out = run_test(store.path(), &args);
        assert_eq!(out.status.code(), Some(1), "{line}: {}", text(&out.stdout));
        let stdout = text(&out.stdout);
        let lost: u64 = stdout
            .split("lost ")
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        assert!(lost > 0, "{line}: {stdout}");
        runs += 1;
    }
    assert_eq!(runs, 2, "{section}");
}
