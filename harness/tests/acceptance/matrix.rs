//! The matrix measures what it claims: a safe design loses nothing, an unsafe one loses
//! under the fault that exposes it, and the pages are well formed.

use harness::matrix::{designs, html, markdown, run_matrix};

#[test]
fn the_matrix_tells_a_safe_design_from_an_unsafe_one() {
    let chosen: Vec<_> = designs()
        .into_iter()
        .filter(|d| d.name == "single (safe defaults)" || d.name == "single --fsync never")
        .collect();
    assert_eq!(chosen.len(), 2);
    let cells = run_matrix(&chosen, 1, 10, 2, &|| {});
    let cell = |design: &str, fault: &str| {
        cells
            .iter()
            .find(|c| c.design.starts_with(design) && c.fault == fault)
            .unwrap_or_else(|| panic!("no cell {design} / {fault}"))
    };
    for c in cells.iter().filter(|c| c.design.starts_with("single (safe")) {
        assert_eq!((c.lost, c.invalid), (0, 0), "{c:?}");
    }
    let unsafe_kill = cell("single --fsync never", "kill");
    assert!(
        unsafe_kill.lost > 0 && unsafe_kill.invalid == 1,
        "{unsafe_kill:?}"
    );
    // One node cannot be partitioned: that cell is left out, not faked.
    assert_eq!(cell("single (safe", "partition").seeds, 0);
    let safe_kill = cell("single (safe", "kill");
    assert!(
        safe_kill.availability > 0.5 && safe_kill.availability < 1.0,
        "{safe_kill:?}"
    );
    assert!(safe_kill.p50_ms > 0.0 && safe_kill.p99_ms >= safe_kill.p50_ms);

    let md = markdown(&cells, 1, 10);
    assert!(md.contains("| single --fsync never | kill | 1 | 1 |"), "{md}");
    assert!(!md.contains("| partition |"), "{md}");
    let page = html(&cells, 1, 10);
    let doc = roxmltree::Document::parse_with_options(
        &page,
        roxmltree::ParsingOptions {
            allow_dtd: true,
            ..Default::default()
        },
    )
    .expect("well-formed");
    let bad_rows = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("bad"))
        .count();
    assert_eq!(
        bad_rows,
        cells.iter().filter(|c| c.seeds > 0 && c.lost > 0).count()
    );
}
