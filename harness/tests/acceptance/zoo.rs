//! Every recipe of the bug zoo is caught, and its safe counterpart stays valid.

use std::time::Duration;

use harness::zoo::{hunt, recipes, Bounds};

#[test]
fn every_unsafe_recipe_is_caught_and_its_safe_counterpart_stays_valid() {
    let bounds = Bounds {
        seeds: 10,
        // Generous: debug builds on a shared machine; the 60 s aim is measured by `tumult zoo`.
        wall: Duration::from_secs(600),
        safe_seeds: 1,
    };
    // The real products' recipes run only on real processes (`tumult zoo --runtime real`).
    let all: Vec<_> = recipes().into_iter().filter(|r| r.runs_sim()).collect();
    assert!(all.len() >= 17);
    let results = harness::suite::parallel(&all, 2, |r| hunt(r, bounds), |_| {});
    let failed: Vec<String> = results
        .iter()
        .filter(|c| !c.passed())
        .map(|c| {
            format!(
                "{}: caught {:?} after {} seeds; safe {:?}; {}",
                c.recipe, c.seed, c.seeds_tried, c.safe, c.summary
            )
        })
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
    for c in &results {
        assert!(c.count > 0, "{}: caught with a count of zero", c.recipe);
    }
    // The recipes whose loss begins with a promise an invariant monitor covers are seen
    // by that monitor no later than the history shows the loss.
    for (recipe, monitor) in [
        ("single-fsync-never", "durability"),
        ("single-fsync-interval", "durability"),
        ("classic-fsync-never", "durability"),
        ("mirrored-partition-ignore", "mirrored"),
        ("mirrored-partition-autoheal", "mirrored"),
        ("mirrored-promote-unsynced", "mirrored"),
        ("quorum-fsync-never", "durability"),
        ("quorum-log-fsync-never", "durability"),
        ("kafka-truncate-hw", "kafka"),
        ("kafka-unclean-election", "kafka"),
        ("kafka-fsync-interval", "durability"),
        ("kafka-fsync-never", "durability"),
    ] {
        let c = results.iter().find(|c| c.recipe == recipe).expect("a zoo recipe");
        let (seed, name) = c
            .monitor
            .clone()
            .unwrap_or_else(|| panic!("{recipe}: no monitor saw it"));
        assert_eq!(name, monitor, "{recipe}");
        assert!(
            c.seed.is_some_and(|caught| seed <= caught),
            "{recipe}: monitor seed {seed}, history {:?}",
            c.seed
        );
    }
}
