//! Elle's inference on a log history: a dependency graph over operations, its strongly
//! connected components, and a shortest cycle inside each, classified and explained.
//!
//! Edges (parallel edges of different kinds may link one pair; a poll's run of records
//! from one writer gives one `wr` edge):
//! - `ww`: T1 wrote a value and T2 the next value of the same key, in version order;
//! - `wr`: T2 read a value T1 wrote (from the writer of the latest version a poll read of
//!   a key, and from the writer of any other version it read whose ww chain to that one is
//!   broken by a version nobody is known to have written: the rest follow through ww);
//! - `rw`: T1 read a key up to some value, and T2 wrote the next one: T1 did not see it;
//! - `process`: T1 and T2 are successive operations of one process;
//! - `realtime`: T1 completed `ok` before T2 was invoked (transitively reduced: only from
//!   the operations no later completion separates from T2). An `info` completion dates
//!   nothing: the operation may take effect after it.
//!
//! A cycle made of `ww` only is G0; with `wr` too, G1c; with one `rw`, G-single; with more,
//! G2. A cycle that needs `process` or `realtime` edges takes that suffix (`G0-realtime`).
//! Each component is searched with the narrowest edge kinds first, so the strongest
//! anomaly it holds is the one reported: the rw-free kinds first (linear: a component of
//! the graph cut down to them holds a cycle of exactly that strength), then G-single
//! (bounded), then one witness of whatever is left. No search here recurses.

use std::fmt::Write as _;

use serde_json::json;

use crate::graph::{EdgeSink, Exhausted, Graph, Intervals, Search};
use crate::history::{ByProcess, OpType};
use crate::model::{KeyId, LogModel, ValueId, NO_POSITION};
use crate::order::Anomalies;

const WW: u8 = 1;
const WR: u8 = 2;
const RW: u8 = 4;
const PROCESS: u8 = 8;
const REALTIME: u8 = 16;
const ALL: u8 = WW | WR | RW | PROCESS | REALTIME;

/// Marks an invocation among [`realtime_events`]: an op's position is below it (a
/// history of 2^31 ops would not fit in memory as a model).
const INVOCATION: u32 = 1 << 31;

/// A version whose writer is not known.
const NO_WRITER: u32 = u32::MAX;

/// The rw-free masks, narrowest first: a strongly connected component of the graph cut
/// down to one of them holds a cycle of exactly that strength (G0, G1c, then the same
/// through process or realtime order), found in time linear in the graph.
const RW_FREE_LAYERS: [u8; 4] = [WW, WW | WR, WW | WR | PROCESS, WW | WR | PROCESS | REALTIME];

/// Edge visits the search for G-single (one rw edge closed by ww and wr edges) may make
/// over a whole history, per edge of its graph, and at least [`SEARCH_STEPS_MIN`]. That
/// search is the one step that is not linear; past this bound it stops and says so, and the
/// verdict cannot be `true`.
pub const SEARCH_STEPS_PER_EDGE: u64 = 200;
/// The least bound of the G-single search, whatever the history's size.
pub const SEARCH_STEPS_MIN: u64 = 50_000_000;

/// Why one edge exists, for the explanation.
#[derive(Debug, Clone, Copy)]
struct Why {
    key: KeyId,
    value: ValueId,
}

/// One cycle found.
#[derive(Debug, Clone)]
pub struct Cycle {
    /// G0, G1c, G-single or G2, with `-process` or `-realtime` when it needs them.
    pub anomaly: String,
    /// Positions in `LogModel::ops` along the cycle.
    pub ops: Vec<usize>,
    /// The explanation, in words.
    pub explanation: String,
}

/// What the cycle search found, and whether it finished.
#[derive(Debug, Clone, Default)]
pub struct Cycles {
    /// One cycle per component searched, at its narrowest strength.
    pub cycles: Vec<Cycle>,
    /// Set when the G-single search hit its bound: what was left unsearched.
    pub bounded: Option<String>,
}

/// Builds the graph over the model's `ok` operations (and failed or unknown sends whose
/// values were read: they happened). Nodes past the operations are realtime barriers.
fn build(model: &LogModel, rw: bool) -> Graph {
    let events = realtime_events(model);
    // Per key: the writer of each version (`NO_WRITER` if none is known), and how many
    // versions before it have none. Where none between two versions lacks one, the ww
    // edges chain the first's writer to the second's. (A poll's records are successive
    // versions: these tables are read in sequence, the two side by side.) The first op
    // to send a value wrote it; a failed send wrote nothing (reading it is G1a). Filled
    // from the sends, which come in about the order their values were interned, rather
    // than by looking up each version's value: that was a cache miss per version.
    let mut writers: Vec<Vec<(u32, u32)>> = model
        .versions
        .iter()
        .map(|v| vec![(NO_WRITER, 0); v.len()])
        .collect();
    for (i, op) in model
        .ops
        .iter()
        .enumerate()
        .filter(|(_, op)| op.kind != OpType::Fail)
    {
        for send in &op.sends {
            if let Some(p) = model.position_of(send.key, send.value) {
                let (writer, _) = &mut writers[send.key as usize][p as usize];
                if *writer == NO_WRITER {
                    *writer = i as u32;
                }
            }
        }
    }
    for versions in &mut writers {
        let mut missing = 0u32;
        for (writer, before) in versions.iter_mut() {
            *before = missing;
            missing += u32::from(*writer == NO_WRITER);
        }
    }
    // The edges are generated twice, counted and then placed, rather than listed once and
    // then sorted into place: the list would be the largest thing the checker holds.
    Graph::generate(|graph| {
        // ww: successive versions of each key.
        for writers in &writers {
            for pair in writers.windows(2) {
                let (a, b) = (pair[0].0, pair[1].0);
                if a != NO_WRITER && b != NO_WRITER {
                    graph.edge(a as usize, b as usize, WW);
                }
            }
        }
        // wr and rw from every read.
        for (i, op) in model.ops.iter().enumerate() {
            if op.kind != OpType::Ok {
                continue;
            }
            for (key, _, positions) in model.reads_positioned(op) {
                let writers = &writers[key as usize];
                let written = |p: u32| Some(writers[p as usize].0).filter(|w| *w != NO_WRITER);
                let mut highest: Option<u32> = None;
                // The latest version read that has a writer: its writer gets a wr edge.
                let mut top: Option<(u32, u32)> = None;
                for &p in positions.iter().filter(|p| **p != NO_POSITION) {
                    highest = Some(highest.map_or(p, |h| h.max(p)));
                    if top.is_none_or(|(t, _)| p > t) {
                        if let Some(w) = written(p) {
                            top = Some((p, w));
                        }
                    }
                }
                if let Some((t, top_writer)) = top {
                    graph.edge(top_writer as usize, i, WR);
                    // The writers of the other versions read reach that writer through ww
                    // edges when no version between lacks a writer: their own wr edges
                    // would add no path (a poll reads a run of records from many writers,
                    // and these edges were half the graph). The others get theirs; a
                    // batch's records mostly share a writer: one edge for a run of them.
                    // (Versions p..=t lack none exactly when as many lack one before p as
                    // before t, which has a writer.)
                    let missing = |p: u32| writers[p as usize].1;
                    let mut last_writer = top_writer;
                    for &p in positions.iter().filter(|p| **p != NO_POSITION) {
                        let Some(w) = written(p) else { continue };
                        if w != last_writer && missing(t) != missing(p) {
                            graph.edge(w as usize, i, WR);
                            last_writer = w;
                        }
                    }
                }
                let Some(h) = highest.filter(|_| rw) else { continue };
                if let Some(&(w, _)) = writers.get(h as usize + 1).filter(|w| w.0 != NO_WRITER) {
                    graph.edge(i, w as usize, RW);
                }
            }
        }
        // Process order: each operation follows its process's previous one. A process has
        // one operation open at a time, so it completes them in the order it invoked them,
        // and the ops (in order of completion) list each process's in order: no sort is
        // needed. Found on each of the two passes rather than listed once: the list was
        // 8 bytes per op, faulted in afresh at every check of a large history.
        let mut last_of: ByProcess<u32> = ByProcess::default();
        for (i, op) in model.ops.iter().enumerate() {
            if let Some(&previous) = last_of.get(op.process) {
                graph.edge(previous as usize, i, PROCESS);
            }
            last_of.insert(op.process, i as u32);
        }
        model.ops.len() + realtime(model.ops.len(), &events, graph)
    })
}

/// The ops in order of invocation. Invocation indices are distinct history positions,
/// so a table indexed by them sorts in one pass; a history whose indices are far apart
/// (or, from a caller's own ops, repeated) is sorted instead.
fn by_invocation(model: &LogModel) -> Vec<u32> {
    let ops = model.ops.len();
    let highest = model.ops.iter().map(|op| op.invoke).max().unwrap_or(0);
    if highest < 4 * ops as u64 + 1024 {
        let mut table = vec![u32::MAX; highest as usize + 1];
        let mut placed = 0;
        for (i, op) in model.ops.iter().enumerate() {
            let slot = &mut table[op.invoke as usize];
            placed += usize::from(*slot == u32::MAX);
            *slot = i as u32;
        }
        if placed == ops {
            table.retain(|i| *i != u32::MAX);
            return table;
        }
    }
    let mut sorted: Vec<(u64, u32)> = model
        .ops
        .iter()
        .enumerate()
        .map(|(i, op)| (op.invoke, i as u32))
        .collect();
    sorted.sort_unstable();
    sorted.into_iter().map(|(_, i)| i).collect()
}

/// The invocations and `ok` completions in history order, each an op's position with
/// [`INVOCATION`] set for an invocation (4 bytes an event: a large history's list is
/// faulted in afresh at every check). Only an `ok` completion dates the operation: an
/// `info` one may take effect after it was recorded, so nothing is known to follow it in
/// real time. Nor does an `ok` one with a send whose offset it does
/// not give: a producer that does not wait for the log (Kafka's acks=0) completes once the
/// request is written, before the record is appended. A lone completion (its own
/// partner) has no invocation event: when it was invoked is unknown, so nothing is known
/// to precede it (and dating it at its completion would make it follow itself).
fn realtime_events(model: &LogModel) -> Vec<u32> {
    let by_invoke = by_invocation(model);
    let mut events = Vec::with_capacity(model.ops.len() * 2);
    let (mut inv, mut done) = (by_invoke.iter().peekable(), (0..model.ops.len()).peekable());
    loop {
        let next_invoke = inv.peek().map(|i| model.ops[**i as usize].invoke);
        let next_done = done.peek().map(|i| model.ops[*i].complete);
        let invocation_first = match (next_invoke, next_done) {
            (Some(a), Some(b)) => a < b,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        if invocation_first {
            let i = *inv.next().expect("peeked") as usize;
            if model.ops[i].invoke != model.ops[i].complete {
                events.push(i as u32 | INVOCATION);
            }
        } else {
            let i = done.next().expect("peeked");
            let op = &model.ops[i];
            if op.kind == OpType::Ok && op.sends.iter().all(|send| send.offset.is_some()) {
                events.push(i as u32);
            }
        }
    }
    events
}

/// Realtime order through barrier nodes: a chain of nodes after the operations, each
/// standing for "everything completed so far". An `ok` completion feeds the next barrier;
/// an invocation hangs off the latest one; each barrier follows the one before. Then T1
/// reaches T2 exactly when T1 completed before T2 was invoked, with a few edges per
/// operation instead of one from every operation of the frontier. Returns how many
/// barriers there are.
fn realtime(ops: usize, events: &[u32], graph: &mut EdgeSink) -> usize {
    let mut barriers = 0usize;
    let mut current: Option<usize> = None;
    let mut completed: Vec<usize> = Vec::new();
    for &event in events {
        let i = (event & !INVOCATION) as usize;
        if event & INVOCATION == 0 {
            completed.push(i);
            continue;
        }
        if !completed.is_empty() {
            let barrier = ops + barriers;
            barriers += 1;
            if let Some(previous) = current {
                graph.edge(previous, barrier, REALTIME);
            }
            for done in completed.drain(..) {
                graph.edge(done, barrier, REALTIME);
            }
            current = Some(barrier);
        }
        if let Some(barrier) = current {
            graph.edge(barrier, i, REALTIME);
        }
    }
    barriers
}

/// The key and value that justify a data edge, found again only for edges on a cycle.
fn why(model: &LogModel, from: usize, to: usize, kind: u8) -> Option<Why> {
    let (a, b) = (&model.ops[from], &model.ops[to]);
    match kind {
        WW => b.sends.iter().find_map(|s| {
            let p = model.position_of(s.key, s.value)?;
            let prev = model.versions[s.key as usize].get(p.checked_sub(1)? as usize)?.1;
            a.sends
                .iter()
                .any(|w| w.key == s.key && w.value == prev)
                .then_some(Why {
                    key: s.key,
                    value: s.value,
                })
        }),
        WR => a.sends.iter().find_map(|s| {
            model
                .reads(b)
                .any(|(k, records)| *k == s.key && records.iter().any(|(_, v)| *v == s.value))
                .then_some(Why {
                    key: s.key,
                    value: s.value,
                })
        }),
        RW => model.reads(a).find_map(|(key, records)| {
            let highest = records
                .iter()
                .filter_map(|(_, v)| model.position_of(*key, *v))
                .max()?;
            let next = model.versions[*key as usize].get(highest as usize + 1)?.1;
            b.sends
                .iter()
                .any(|s| s.key == *key && s.value == next)
                .then_some(Why {
                    key: *key,
                    value: next,
                })
        }),
        _ => None,
    }
}

/// Finds, classifies and explains cycles: in every strongly connected component of the
/// whole graph, the narrowest kind of cycle it holds. Each step is linear in the graph but
/// the G-single search, which is bounded (see [`SEARCH_STEPS_PER_EDGE`]).
///
/// With `rw` false, no rw edge is inferred and only the rw-free kinds (G0, G1c and their
/// variants) are searched: the caller allows every cycle that needs an rw edge, so their
/// search, the one that is not linear, would find nothing that counts.
pub fn find_cycles(model: &LogModel, rw: bool) -> Cycles {
    let graph = build(model, rw);
    let ops = model.ops.len();
    // Which component of the whole graph each node is in (u32::MAX: none of size > 1).
    let mut component = vec![u32::MAX; graph.node_count()];
    let tops = graph.components(ALL, |_| true);
    for (c, members) in tops.iter().enumerate() {
        for n in members {
            component[*n as usize] = c as u32;
        }
    }
    let mut done = vec![false; tops.len()];
    let mut found = Vec::new();
    let mut search = Search::new(&graph);
    // Each rw-free mask holds the edges of the ones before it, so their cyclic parts lie
    // inside the widest one's: a clean history needs that one pass only.
    let widest = RW_FREE_LAYERS[RW_FREE_LAYERS.len() - 1];
    let cyclic = graph.components(widest, |n| component[n] != u32::MAX);
    let mut rw_free_cyclic = vec![false; graph.node_count()];
    for n in cyclic.iter().flatten() {
        rw_free_cyclic[*n as usize] = true;
    }
    for mask in RW_FREE_LAYERS.into_iter().filter(|_| !cyclic.is_empty()) {
        let open = |n: usize| rw_free_cyclic[n] && !done[component[n] as usize];
        let subs = graph.components(mask, open);
        let mut reported = Vec::new();
        for sub in &subs {
            let Some(path) = cycle_in(&graph, &mut search, sub, ops, mask) else {
                continue;
            };
            reported.push(component[sub[0] as usize]);
            found.push(describe(model, &graph, &path, mask));
        }
        for c in reported {
            done[c as usize] = true;
        }
    }
    if !rw {
        found.sort_by(|a, b| a.ops.cmp(&b.ops));
        return Cycles {
            cycles: found,
            bounded: None,
        };
    }
    let open = |n: usize| component[n] != u32::MAX && !done[component[n] as usize];
    let subs = graph.components(WW | WR | RW, open);
    let bounded = g_single(&graph, &mut search, &subs, |path| {
        done[component[path[0]] as usize] = true;
        found.push(describe(model, &graph, path, WW | WR | RW));
    });
    // Whatever else is cyclic holds only what the narrower searches ruled out: two or more
    // rw edges, or one through process or realtime order. One witness per component.
    for (c, members) in tops.iter().enumerate() {
        if done[c] {
            continue;
        }
        if let Some(path) = cycle_in(&graph, &mut search, members, ops, ALL) {
            found.push(describe(model, &graph, &path, ALL));
        }
    }
    found.sort_by(|a, b| a.ops.cmp(&b.ops));
    Cycles {
        cycles: found,
        bounded,
    }
}

/// G-single: an rw edge a -> b, and b reaching a through ww and wr edges, in each of
/// `subs` (the strongly connected components under ww, wr and rw, in which ww and wr alone
/// are acyclic, else a narrower search would have reported them). Hands each cycle found
/// (from a) to `found`, one per component; returns where the search stopped at its
/// bound, if it did. A path from b to a can only pass through nodes that a
/// topological order of ww and wr puts between them, which keeps each search local.
fn g_single(
    graph: &Graph,
    search: &mut Search,
    subs: &[Vec<u32>],
    mut found: impl FnMut(&[usize]),
) -> Option<String> {
    let steps_before = search.steps;
    let steps_max = SEARCH_STEPS_MIN.max(SEARCH_STEPS_PER_EDGE * graph.edge_count() as u64);
    let mut member = vec![false; graph.node_count()];
    let mut rank = vec![u32::MAX; graph.node_count()];
    // Per node: one more than the highest rank among its ww and wr predecessors (0: none).
    let mut latest_before = vec![0u32; graph.node_count()];
    for sub in subs {
        for n in sub {
            member[*n as usize] = true;
        }
        // ww and wr are acyclic here (else G0 or G1c was reported), so this succeeds.
        let ranked = graph.rank_topologically(sub, &member, WW | WR, &mut rank);
        // A path from b to a ends in an edge into a from a node ranked after b: a whose
        // every ww and wr predecessor ranks before b cannot be reached from b.
        for &n in sub {
            latest_before[n as usize] = 0;
        }
        for &n in sub {
            for (t, kind) in graph.edges(n as usize) {
                if kind & (WW | WR) != 0 && member[t] {
                    latest_before[t] = latest_before[t].max(rank[n as usize] + 1);
                }
            }
        }
        // In a large component, interval labels rule out most pairs without a search. (Only
        // in large ones: the labels cost tables of the whole graph, at most 64 times.)
        let labels = (ranked && sub.len() * 64 >= graph.node_count()).then(|| {
            [false, true].map(|reverse| Intervals::new(graph, sub, &member, WW | WR, &rank, reverse))
        });
        let mut cycle = None;
        'edges: for &a in sub.iter().filter(|_| ranked) {
            let a = a as usize;
            for (b, kind) in graph.edges(a) {
                if kind & RW == 0 || !member[b] || rank[b] > rank[a] || latest_before[a] <= rank[b] {
                    continue;
                }
                if labels
                    .as_ref()
                    .is_some_and(|ls| ls.iter().any(|l| !l.may_reach(b, a)))
                {
                    continue;
                }
                let left = steps_max.saturating_sub(search.steps - steps_before);
                let limit = rank[a];
                match search.path(graph, b, a, WW | WR, |n| member[n] && rank[n] <= limit, left) {
                    Ok(Some(mut path)) => {
                        // The cycle, from a: a -rw-> b ... -> a.
                        path.insert(0, a);
                        cycle = Some(path);
                        break 'edges;
                    }
                    Ok(None) => {}
                    Err(Exhausted) => {
                        return Some(format!(
                            "the G-single search stopped after {steps_max} steps, in a \
                             component of {} operations: G-single was not ruled out there",
                            sub.len()
                        ));
                    }
                }
            }
        }
        for n in sub {
            member[*n as usize] = false;
        }
        if let Some(path) = cycle {
            found(&path);
        }
    }
    None
}

/// The shortest cycle through the first operation of a strongly connected component
/// (under `mask`), as the nodes from it round to the node before it. Every node of such a
/// component lies on a cycle, so one search from one node suffices.
fn cycle_in(graph: &Graph, search: &mut Search, members: &[u32], ops: usize, mask: u8) -> Option<Vec<usize>> {
    // Start from an operation, never from a barrier; members are sorted, operations first.
    let start = *members.first().filter(|n| (**n as usize) < ops)? as usize;
    let inside = |n: usize| members.binary_search(&(n as u32)).is_ok();
    search
        .path(graph, start, start, mask, inside, u64::MAX)
        .ok()
        .flatten()
}

/// The narrowest kind of an edge within `mask`, in the order that names anomalies best.
fn kind_of(weight: u8, mask: u8) -> u8 {
    [WW, WR, PROCESS, RW, REALTIME]
        .into_iter()
        .find(|k| weight & mask & k != 0)
        .unwrap_or(0)
}

fn describe(model: &LogModel, graph: &Graph, raw: &[usize], mask: u8) -> Cycle {
    // Barriers are how realtime order is stored, not operations: a step through them is
    // one realtime edge between the operations on either side.
    let is_op = |node: usize| node < model.ops.len();
    let path: Vec<usize> = raw.iter().copied().filter(|n| is_op(*n)).collect();
    let n = path.len();
    let kinds: Vec<u8> = (0..n)
        .map(|i| {
            let at = raw.iter().position(|x| *x == path[i]).expect("an op of the path");
            let next = raw[(at + 1) % raw.len()];
            if !is_op(next) {
                return REALTIME;
            }
            let weight = graph.kinds_between(path[i], next);
            kind_of(weight, mask)
        })
        .collect();
    let path = &path[..];
    let rw = kinds.iter().filter(|k| **k == RW).count();
    let base = match rw {
        0 if kinds.contains(&WR) => "G1c",
        0 => "G0",
        1 => "G-single",
        _ => "G2",
    };
    let suffix = if kinds.contains(&REALTIME) {
        "-realtime"
    } else if kinds.contains(&PROCESS) {
        "-process"
    } else {
        ""
    };
    let name = |i: usize| format!("T{}", i + 1);
    let mut text = String::from("Let:\n");
    for (i, &op) in path.iter().enumerate() {
        let _ = writeln!(text, "  {} = {}", name(i), summary(model, op));
    }
    text.push_str("\nThen:\n");
    for i in 0..n {
        let (a, b) = (path[i], path[(i + 1) % n]);
        let why = why(model, a, b, kinds[i]);
        let key_value = |w: &Why| format!("{} to key {}", model.value_text(w.value), model.key_name(w.key));
        let reason = match (kinds[i], why.as_ref()) {
            (WW, Some(w)) => format!(
                "{} wrote the value after {}'s in key {}: {}",
                name((i + 1) % n),
                name(i),
                model.key_name(w.key),
                model.value_text(w.value)
            ),
            (WR, Some(w)) => format!(
                "{} read {}'s write of {}",
                name((i + 1) % n),
                name(i),
                key_value(w)
            ),
            (RW, Some(w)) => format!(
                "{} did not observe {}'s write of {}",
                name(i),
                name((i + 1) % n),
                key_value(w)
            ),
            (PROCESS, _) => format!(
                "process {} did {} before {}",
                model.ops[a].process,
                name(i),
                name((i + 1) % n)
            ),
            (REALTIME, _) => format!("{} completed before {} began", name(i), name((i + 1) % n)),
            _ => "they are linked".to_string(),
        };
        let end = if i + 1 == n { ": a contradiction!" } else { ";" };
        let _ = writeln!(
            text,
            "  - {} < {} because {}{}",
            name(i),
            name((i + 1) % n),
            reason,
            end
        );
    }
    Cycle {
        anomaly: format!("{base}{suffix}"),
        ops: path.to_vec(),
        explanation: text,
    }
}

/// One operation in a line: its process, function and what it sent and read.
fn summary(model: &LogModel, op: usize) -> String {
    let op = &model.ops[op];
    let mut parts = Vec::new();
    for send in &op.sends {
        let at = send.offset.map_or(String::new(), |o| format!(" at offset {o}"));
        parts.push(format!(
            "send {} to key {}{at}",
            model.value_text(send.value),
            model.key_name(send.key)
        ));
    }
    for (key, records) in model.reads(op) {
        let values: Vec<String> = records
            .iter()
            .map(|(o, v)| format!("{o}:{}", model.value_text(*v)))
            .collect();
        parts.push(format!(
            "read key {} [{}]",
            model.key_name(*key),
            values.join(" ")
        ));
    }
    format!(
        "process {} (op {}): {}",
        op.process,
        op.complete,
        parts.join(", ")
    )
}

/// Records each cycle as an anomaly witness.
pub fn add_cycles(anomalies: &mut Anomalies, model: &LogModel, cycles: &[Cycle]) {
    for cycle in cycles {
        let ops: Vec<u64> = cycle.ops.iter().map(|i| model.ops[*i].complete).collect();
        anomalies
            .entry(cycle.anomaly.clone())
            .or_default()
            .add(json!({ "ops": ops, "explanation": cycle.explanation }));
    }
}
