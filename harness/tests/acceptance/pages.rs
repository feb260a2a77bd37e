//! The pages of a known run are well-formed XML and show its operations and faults.

use harness::{run_and_store, FaultSet, Store, TestSpec};

fn parse(text: &str) -> roxmltree::Document<'_> {
    roxmltree::Document::parse_with_options(
        text,
        roxmltree::ParsingOptions {
            allow_dtd: true,
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("not well-formed: {e}"))
}

fn has_class(node: &roxmltree::Node<'_, '_>, class: &str) -> bool {
    node.attribute("class")
        .is_some_and(|c| c.split_whitespace().any(|c| c == class))
}

#[test]
fn a_runs_pages_are_well_formed_and_show_its_ops_and_faults() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::new(root.path());
    let spec = TestSpec {
        mode: broker::Mode::Kafka,
        nodes: 3,
        workload: "log".into(),
        nemesis: "kill,partition".parse::<FaultSet>().unwrap(),
        nemesis_interval_s: 3.0,
        time_limit_s: 12,
        ..TestSpec::new(3)
    };
    let run = run_and_store(&spec, &store).unwrap();
    let history = run.outcome.history.ops();
    let invocations = history
        .iter()
        .filter(|op| op.kind == checker::OpType::Invoke)
        .count();
    let schedule = &run.outcome.schedule.faults;
    assert!(schedule.len() >= 2, "a run with faults to show: {schedule:?}");

    // timeline.html: one bar per client operation, one band per fault.
    let text = std::fs::read_to_string(run.dir.join("timeline.html")).unwrap();
    let doc = parse(&text);
    let ops: Vec<_> = doc.descendants().filter(|n| has_class(n, "op")).collect();
    assert_eq!(ops.len(), invocations);
    let completed_kinds = ["ok", "fail", "info"];
    assert!(ops
        .iter()
        .all(|n| completed_kinds.iter().any(|k| has_class(n, k))));
    // A hover shows the op's values: the first send's value is in some bar's title.
    let first_send = history.iter().find(|op| op.f == "send").unwrap();
    let shown = first_send.value.to_string();
    assert!(
        ops.iter()
            .any(|n| n.attribute("title").unwrap_or("").contains(&shown)),
        "no bar shows {shown}"
    );
    // One lane per thread, however many processes replaced retired ones.
    let lanes: Vec<&str> = doc
        .descendants()
        .filter(|n| has_class(n, "lane"))
        .filter_map(|n| n.text())
        .collect();
    assert_eq!(lanes.len(), spec.concurrency, "{lanes:?}");
    assert!(lanes.iter().all(|l| l.starts_with("thread ")), "{lanes:?}");
    let processes: std::collections::BTreeSet<u64> = history
        .iter()
        .filter_map(|op| match op.process {
            checker::Process::Client(p) => Some(p),
            _ => None,
        })
        .collect();
    assert!(
        processes.len() > spec.concurrency,
        "a run with retired processes: {processes:?}"
    );
    // The zoom: "fit" checked, and each bar placed by the zoom's length of a second.
    let fit = doc
        .descendants()
        .find(|n| n.attribute("id") == Some("z-fit"))
        .unwrap();
    assert_eq!(fit.attribute("checked"), Some("checked"));
    assert!(ops
        .iter()
        .all(|n| n.attribute("style").unwrap_or("").contains("var(--s)")));
    let bands: Vec<&str> = doc
        .descendants()
        .filter(|n| has_class(n, "fault"))
        .filter_map(|n| n.attribute("data-kind"))
        .collect();
    let kinds: Vec<String> = schedule
        .iter()
        .map(|f| {
            serde_json::to_value(&f.fault).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(bands, kinds);

    // The pictures: well-formed SVG with a marker per completed op and the faults named.
    let completed = history
        .iter()
        .filter(|op| op.kind != checker::OpType::Invoke && matches!(op.process, checker::Process::Client(_)))
        .count();
    for (file, markers_at_least) in [("latency.svg", completed), ("rate.svg", 1), ("unseen.svg", 1)] {
        let text = std::fs::read_to_string(run.dir.join(file)).unwrap();
        let doc = parse(&text);
        assert_eq!(doc.root_element().tag_name().name(), "svg", "{file}");
        let markers = doc
            .descendants()
            .filter(|n| {
                matches!(
                    n.tag_name().name(),
                    "circle" | "polygon" | "rect" | "line" | "polyline" | "path"
                )
            })
            .count();
        assert!(
            markers >= markers_at_least,
            "{file}: {markers} shapes for {markers_at_least} ops"
        );
        let labels: Vec<&str> = doc
            .descendants()
            .filter(|n| n.tag_name().name() == "text")
            .filter_map(|n| n.text().map(str::trim))
            .collect();
        for kind in &kinds {
            assert!(
                labels.contains(&kind.as_str()),
                "{file} does not name the {kind} fault"
            );
        }
    }
    let rate = std::fs::read_to_string(run.dir.join("rate.svg")).unwrap();
    assert!(rate.contains("send ok") && rate.contains("poll ok"));

    // index.html lists the run and links its files.
    let text = std::fs::read_to_string(root.path().join("index.html")).unwrap();
    let doc = parse(&text);
    let run_name = run.dir.file_name().unwrap().to_string_lossy().into_owned();
    let links: Vec<&str> = doc.descendants().filter_map(|n| n.attribute("href")).collect();
    for file in [
        "timeline.html",
        "latency.svg",
        "rate.svg",
        "unseen.svg",
        "history.jsonl",
        "history.edn",
        "results.json",
    ] {
        assert!(
            links.iter().any(|l| l.contains(&run_name) && l.ends_with(file)),
            "index.html does not link {file}"
        );
    }
    assert!(
        run.dir.join("cycles.txt").is_file(),
        "a log run always has cycles.txt"
    );
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["version"], harness::RESULTS_VERSION);
}

#[test]
fn the_index_tells_runs_of_one_test_apart_by_their_settings_and_findings() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::new(root.path());
    let safe = TestSpec::new(3);
    let unsafe_ = TestSpec {
        fsync: broker::FsyncPolicy::Never,
        ..TestSpec::new(3)
    };
    assert_eq!(safe.test_name(), unsafe_.test_name());
    let lost = run_and_store(&unsafe_, &store).unwrap();
    let lost_count = lost.outcome.report.total_queue().unwrap().lost_count;
    assert!(lost_count > 0);
    // The durability monitor saw each confirm given before an fsync.
    let violations = lost.outcome.report.monitors().unwrap().violation_count;
    assert!(violations > 0);
    run_and_store(&safe, &store).unwrap();
    let text = std::fs::read_to_string(root.path().join("index.html")).unwrap();
    let doc = parse(&text);
    let rows: Vec<(String, String)> = doc
        .descendants()
        .filter(|n| has_class(n, "run"))
        .map(|row| {
            let cell = |class: &str| {
                row.descendants()
                    .find(|n| has_class(n, class))
                    .map(|n| n.text().unwrap_or("").to_string())
                    .unwrap_or_default()
            };
            (cell("settings"), cell("found"))
        })
        .collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        rows.contains(&(
            "fsync=never".to_string(),
            format!("lost {lost_count}, monitor-violations {violations}")
        )),
        "{rows:?}"
    );
    assert!(rows.contains(&(String::new(), String::new())), "{rows:?}");
}
