//! Elle's inference on a log history: a dependency graph over operations, its strongly
//! connected components, and the shortest cycle inside each, classified and explained.
//!
//! Edges (each pair of operations keeps one edge carrying every kind that links them):
//! - `ww`: T1 wrote a value and T2 the next value of the same key, in version order;
//! - `wr`: T2 read a value T1 wrote;
//! - `rw`: T1 read a key up to some value, and T2 wrote the next one: T1 did not see it;
//! - `process`: T1 and T2 are successive operations of one process;
//! - `realtime`: T1 completed `ok` before T2 was invoked (transitively reduced: only from
//!   the operations no later completion separates from T2). An `info` completion dates
//!   nothing: the operation may take effect after it.
//!
//! A cycle made of `ww` only is G0; with `wr` too, G1c; with one `rw`, G-single; with more,
//! G2. A cycle that needs `process` or `realtime` edges takes that suffix (`G0-realtime`).
//! Each component is searched with the narrowest edge kinds first, so the strongest
//! anomaly it holds is the one reported.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use serde_json::json;

use crate::history::OpType;
use crate::model::{KeyId, LogModel, PairMap, ValueId};
use crate::order::Anomalies;

const WW: u8 = 1;
const WR: u8 = 2;
const RW: u8 = 4;
const PROCESS: u8 = 8;
const REALTIME: u8 = 16;

/// The masks tried in turn: each finds a cycle only the masks before it could not.
const LAYERS: [u8; 5] = [
    WW,
    WW | WR,
    WW | WR | RW,
    WW | WR | RW | PROCESS,
    WW | WR | RW | PROCESS | REALTIME,
];

/// Components larger than this are searched from at most this many start nodes per layer.
const STARTS_MAX: usize = 64;

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

struct Graph {
    graph: DiGraph<usize, u8>,
}

/// Edges as they are inferred, merged into the graph at the end: one sort is far cheaper
/// than looking for an existing edge at every insertion.
#[derive(Default)]
struct Edges(Vec<(u32, u32, u8)>);

impl Edges {
    fn edge(&mut self, from: usize, to: usize, kind: u8) {
        if from != to {
            self.0.push((from as u32, to as u32, kind));
        }
    }
}

/// Builds the graph over the model's `ok` operations (and failed or unknown sends whose
/// values were read: they happened).
fn build(model: &LogModel) -> Graph {
    let mut graph = Edges::default();
    // Who wrote each (key, value). A failed send wrote nothing (reading it is G1a).
    let mut writer: PairMap<usize> = PairMap::new(model.value_count());
    for (i, op) in model
        .ops
        .iter()
        .enumerate()
        .filter(|(_, op)| op.kind != OpType::Fail)
    {
        for send in &op.sends {
            writer.insert_first(send.key, send.value, i);
        }
    }
    // ww: successive versions of each key.
    for (key, versions) in model.versions.iter().enumerate() {
        let key = key as KeyId;
        for pair in versions.windows(2) {
            let (Some(a), Some(b)) = (writer.get(key, pair[0].1), writer.get(key, pair[1].1)) else {
                continue;
            };
            graph.edge(a, b, WW);
        }
    }
    // wr and rw from every read.
    for (i, op) in model.ops.iter().enumerate() {
        if op.kind != OpType::Ok {
            continue;
        }
        for (key, records) in &op.reads {
            let mut highest: Option<u32> = None;
            for (_, value) in records {
                if let Some(w) = writer.get(*key, *value) {
                    graph.edge(w, i, WR);
                }
                if let Some(p) = model.position_of(*key, *value) {
                    highest = Some(highest.map_or(p, |h| h.max(p)));
                }
            }
            let Some(h) = highest else { continue };
            if let Some(&(_, next)) = model.versions[*key as usize].get(h as usize + 1) {
                if let Some(w) = writer.get(*key, next) {
                    graph.edge(i, w, RW);
                }
            }
        }
    }
    // process order.
    let mut last_of: BTreeMap<u64, usize> = BTreeMap::new();
    let mut by_invoke: Vec<usize> = (0..model.ops.len()).collect();
    by_invoke.sort_by_key(|i| model.ops[*i].invoke);
    for &i in &by_invoke {
        if let Some(prev) = last_of.insert(model.ops[i].process, i) {
            graph.edge(prev, i, PROCESS);
        }
    }
    // realtime, through barrier nodes: a chain of nodes after the operations, each standing
    // for "everything completed so far". An `ok` completion feeds the next barrier; an
    // invocation hangs off the latest one; each barrier follows the one before. Then T1
    // reaches T2 exactly when T1 completed before T2 was invoked, with a few edges per
    // operation instead of one from every operation of the frontier.
    // Completions are already in order (the ops are); invocations are `by_invoke`: merge.
    let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(model.ops.len() * 2);
    let (mut inv, mut done) = (by_invoke.iter().peekable(), (0..model.ops.len()).peekable());
    loop {
        let next_invoke = inv.peek().map(|i| model.ops[**i].invoke);
        let next_done = done.peek().map(|i| model.ops[*i].complete);
        match (next_invoke, next_done) {
            (Some(a), Some(b)) if a < b => events.push((a, true, *inv.next().expect("peeked"))),
            (_, Some(b)) => events.push((b, false, done.next().expect("peeked"))),
            (Some(a), None) => events.push((a, true, *inv.next().expect("peeked"))),
            (None, None) => break,
        }
    }
    let mut barriers = 0usize;
    let mut current: Option<usize> = None;
    let mut completed: Vec<usize> = Vec::new();
    for (_, is_invoke, i) in events {
        if !is_invoke {
            // Only an `ok` completion dates the operation: an `info` one may take effect
            // after it was recorded, so nothing is known to follow it in real time.
            if model.ops[i].kind == OpType::Ok {
                completed.push(i);
            }
            continue;
        }
        if !completed.is_empty() {
            let barrier = model.ops.len() + barriers;
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
    // Parallel edges stay parallel: Tarjan and the searches do not mind, and merging them
    // would cost a sort of every edge; `describe` unions them where it matters.
    let edges = graph.0;
    let mut graph = DiGraph::with_capacity(model.ops.len() + barriers, edges.len());
    for i in 0..model.ops.len() + barriers {
        graph.add_node(i);
    }
    for (a, b, kind) in edges {
        graph.add_edge(NodeIndex::new(a as usize), NodeIndex::new(b as usize), kind);
    }
    Graph { graph }
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
            b.reads
                .iter()
                .any(|(k, records)| *k == s.key && records.iter().any(|(_, v)| *v == s.value))
                .then_some(Why {
                    key: s.key,
                    value: s.value,
                })
        }),
        RW => a.reads.iter().find_map(|(key, records)| {
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

/// Finds, classifies and explains a cycle in every strongly connected component.
pub fn find_cycles(model: &LogModel) -> Vec<Cycle> {
    let graph = build(model);
    let mut cycles = Vec::new();
    for component in tarjan_scc(&graph.graph) {
        if component.len() < 2 {
            continue;
        }
        let mut members = vec![false; graph.graph.node_count()];
        for n in &component {
            members[n.index()] = true;
        }
        // Start from operations, never from barriers.
        let mut sorted: Vec<NodeIndex> = component
            .iter()
            .copied()
            .filter(|n| n.index() < model.ops.len())
            .collect();
        sorted.sort();
        for mask in LAYERS {
            if let Some(path) = sorted
                .iter()
                .take(STARTS_MAX)
                .find_map(|start| shortest_cycle(&graph, &members, *start, mask))
            {
                cycles.push(describe(model, &graph, &path, mask));
                break;
            }
        }
    }
    cycles.sort_by(|a, b| a.ops.cmp(&b.ops));
    cycles
}

/// The shortest cycle through `start` using only edges with a kind in `mask`, as the list
/// of nodes from `start` round to the node before it.
fn shortest_cycle(graph: &Graph, members: &[bool], start: NodeIndex, mask: u8) -> Option<Vec<usize>> {
    let mut parent: BTreeMap<usize, usize> = BTreeMap::new();
    let mut queue = VecDeque::from([start.index()]);
    while let Some(at) = queue.pop_front() {
        for edge in graph.graph.edges(NodeIndex::new(at)) {
            if edge.weight() & mask == 0 {
                continue;
            }
            let to = edge.target().index();
            if !members[to] {
                continue;
            }
            if to == start.index() {
                let mut path = vec![at];
                let mut node = at;
                while let Some(&p) = parent.get(&node) {
                    path.push(p);
                    node = p;
                }
                path.reverse();
                return Some(path);
            }
            if to != start.index() && !parent.contains_key(&to) {
                parent.insert(to, at);
                queue.push_back(to);
            }
        }
    }
    None
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
            let (a, b) = (NodeIndex::new(path[i]), NodeIndex::new(next));
            let weight = graph.graph.edges_connecting(a, b).fold(0, |w, e| w | e.weight());
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
    for (key, records) in &op.reads {
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
