//! The dependency graph's storage and the two searches run on it, all without recursion:
//! a history's process and realtime chains make depth-first paths as long as the history,
//! so a recursive Tarjan overflows the stack on a few hundred thousand operations.
//!
//! Nodes are dense integers; edges carry a bit set of kinds. The graph is stored as
//! compressed rows (each node's out-edges contiguous), built by a counting sort over edges
//! generated twice, counted and then placed: a few bytes per edge, never a list of them,
//! and every traversal a linear scan.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// A directed graph over nodes `0..node_count`, each edge labelled with a kind mask.
#[derive(Debug, Default)]
pub struct Graph {
    /// `first[n]..first[n + 1]` are node `n`'s out-edges in `targets` and `kinds`.
    first: Vec<u32>,
    targets: Vec<u32>,
    kinds: Vec<u8>,
    /// Tarjan's tables, kept from one call of [`Graph::components`] to the next: the cycle
    /// search runs it several times over the same nodes, and tables of a large graph
    /// allocated afresh each time were faulted in afresh each time.
    tarjan: RefCell<Tarjan>,
}

/// Tarjan's per-node tables. Between calls every index is `UNVISITED` and no node is on
/// the stack.
#[derive(Debug, Default)]
struct Tarjan {
    index: Vec<u32>,
    low: Vec<u32>,
    on_stack: Vec<bool>,
    stack: Vec<u32>,
    /// (node, position of the next out-edge to look at)
    frames: Vec<(u32, u32)>,
}

/// A node with no index yet, in Tarjan's numbering.
const UNVISITED: u32 = u32::MAX;

/// What an edge generator hands its edges to (see [`Graph::generate`]): the first time it
/// runs they are counted per node, the second time placed. An edge from a node to itself
/// is dropped.
#[derive(Debug, Default)]
pub struct EdgeSink {
    /// Counting: out-degrees, shifted by one. Placing: the next free slot of each node
    /// (which ends at the next node's start).
    first: Vec<u32>,
    placing: bool,
    targets: Vec<u32>,
    kinds: Vec<u8>,
}

impl EdgeSink {
    /// One edge.
    pub fn edge(&mut self, from: usize, to: usize, kind: u8) {
        if from == to {
            return;
        }
        if self.placing {
            let slot = &mut self.first[from];
            self.targets[*slot as usize] = to as u32;
            self.kinds[*slot as usize] = kind;
            *slot += 1;
        } else {
            if self.first.len() < from + 2 {
                self.first.resize(from + 2, 0);
            }
            self.first[from + 1] += 1;
        }
    }
}

impl Graph {
    /// Builds the graph from `(from, to, kind)` edges over `nodes` nodes. Parallel edges stay
    /// parallel: the searches do not mind, and merging them would cost a sort.
    #[cfg(test)]
    pub fn from_edges(nodes: usize, edges: &[(u32, u32, u8)]) -> Self {
        Self::generate(|sink| {
            for &(from, to, kind) in edges {
                sink.edge(from as usize, to as usize, kind);
            }
            nodes
        })
    }

    /// Builds the graph from a generator of edges, which runs twice and must hand the
    /// same edges to its sink both times, and returns how many nodes there are. Nothing
    /// but the compressed rows is ever held.
    pub fn generate(mut generator: impl FnMut(&mut EdgeSink) -> usize) -> Self {
        let mut sink = EdgeSink::default();
        let nodes = generator(&mut sink);
        let first = &mut sink.first;
        first.resize(nodes.max(first.len().saturating_sub(1)) + 1, 0);
        for n in 1..first.len() {
            first[n] += first[n - 1];
        }
        let edges = *first.last().expect("one slot at least") as usize;
        sink.targets = vec![0u32; edges];
        sink.kinds = vec![0u8; edges];
        sink.placing = true;
        generator(&mut sink);
        // Each node's cursor ended where the next node's edges start: shift them back into
        // place (a separate table of cursors was one more table the size of the graph).
        let mut first = sink.first;
        let last = first.len() - 1;
        first.copy_within(..last, 1);
        first[0] = 0;
        Self {
            first,
            targets: sink.targets,
            kinds: sink.kinds,
            tarjan: RefCell::default(),
        }
    }

    /// How many nodes there are.
    pub fn node_count(&self) -> usize {
        self.first.len().saturating_sub(1)
    }

    /// How many edges there are.
    pub fn edge_count(&self) -> usize {
        self.targets.len()
    }

    /// Node `n`'s out-edges as (target, kind mask).
    pub fn edges(&self, n: usize) -> impl Iterator<Item = (usize, u8)> + '_ {
        let range = self.first[n] as usize..self.first[n + 1] as usize;
        self.targets[range.clone()]
            .iter()
            .zip(&self.kinds[range])
            .map(|(t, k)| (*t as usize, *k))
    }

    /// The union of the kinds of every edge from `a` to `b`.
    pub fn kinds_between(&self, a: usize, b: usize) -> u8 {
        self.edges(a).filter(|(t, _)| *t == b).fold(0, |w, (_, k)| w | k)
    }

    /// The strongly connected components of more than one node, using only edges whose
    /// kind meets `mask`, among the nodes `include` admits. Tarjan's algorithm with an
    /// explicit stack of (node, next edge) frames instead of recursion.
    pub fn components(&self, mask: u8, include: impl Fn(usize) -> bool) -> Vec<Vec<u32>> {
        let n = self.node_count();
        let mut tarjan = self.tarjan.borrow_mut();
        let Tarjan {
            index,
            low,
            on_stack,
            stack,
            frames,
        } = &mut *tarjan;
        if index.len() != n {
            *index = vec![UNVISITED; n];
            *low = vec![0u32; n];
            *on_stack = vec![false; n];
        }
        let mut next_index = 0u32;
        let mut found = Vec::new();
        for root in 0..n {
            if index[root] != UNVISITED || !include(root) {
                continue;
            }
            // The node to number and descend into next: the root, then each new node found.
            let mut entering = Some(root);
            loop {
                if let Some(w) = entering.take() {
                    index[w] = next_index;
                    low[w] = next_index;
                    next_index += 1;
                    stack.push(w as u32);
                    on_stack[w] = true;
                    frames.push((w as u32, self.first[w]));
                }
                let Some(frame) = frames.last_mut() else { break };
                let v = frame.0 as usize;
                let end = self.first[v + 1];
                while frame.1 < end {
                    let e = frame.1 as usize;
                    frame.1 += 1;
                    if self.kinds[e] & mask == 0 {
                        continue;
                    }
                    let w = self.targets[e] as usize;
                    if !include(w) {
                        continue;
                    }
                    if index[w] == UNVISITED {
                        entering = Some(w);
                        break;
                    } else if on_stack[w] {
                        low[v] = low[v].min(index[w]);
                    }
                }
                if entering.is_some() {
                    continue;
                }
                // Every edge of v is done: close its component if it is a root, then hand
                // its lowlink back to the frame below.
                frames.pop();
                if low[v] == index[v] {
                    let mut component = Vec::new();
                    while let Some(w) = stack.pop() {
                        on_stack[w as usize] = false;
                        component.push(w);
                        if w as usize == v {
                            break;
                        }
                    }
                    if component.len() > 1 {
                        component.sort_unstable();
                        found.push(component);
                    }
                }
                if let Some(parent) = frames.last() {
                    let p = parent.0 as usize;
                    low[p] = low[p].min(low[v]);
                }
            }
        }
        // Every node was popped off the stack; only the indices need clearing.
        index.fill(UNVISITED);
        found
    }
}

/// Breadth-first searches that reuse their scratch tables: a search touches only the
/// nodes it reaches, and clearing a table of the whole graph for each one would make
/// many small searches quadratic.
pub struct Search {
    parent: Vec<u32>,
    touched: Vec<u32>,
    queue: VecDeque<u32>,
    /// Edges looked at, over every search so far.
    pub steps: u64,
}

/// No parent recorded.
const NONE: u32 = u32::MAX;

impl Search {
    /// Scratch space for searches in `graph`.
    pub fn new(graph: &Graph) -> Self {
        Self {
            parent: vec![NONE; graph.node_count()],
            touched: Vec::new(),
            queue: VecDeque::new(),
            steps: 0,
        }
    }

    fn reset(&mut self) {
        for n in self.touched.drain(..) {
            self.parent[n as usize] = NONE;
        }
        self.queue.clear();
    }

    /// The shortest path from `from` to `to` over edges whose kind meets `mask`, through
    /// nodes `include` admits, as the nodes from `from` to the node before `to`; `Ok(None)`
    /// if there is none, `Err(Exhausted)` if finding out would take more than `steps_max`
    /// more edge visits.
    pub fn path(
        &mut self,
        graph: &Graph,
        from: usize,
        to: usize,
        mask: u8,
        include: impl Fn(usize) -> bool,
        steps_max: u64,
    ) -> Result<Option<Vec<usize>>, Exhausted> {
        self.reset();
        let budget_end = self.steps.saturating_add(steps_max);
        self.parent[from] = from as u32;
        self.touched.push(from as u32);
        self.queue.push_back(from as u32);
        while let Some(at) = self.queue.pop_front() {
            for (next, kind) in graph.edges(at as usize) {
                self.steps += 1;
                if self.steps > budget_end {
                    return Err(Exhausted);
                }
                if kind & mask == 0 || !include(next) {
                    continue;
                }
                if next == to {
                    let mut path = vec![at as usize];
                    let mut node = at as usize;
                    while node != from {
                        node = self.parent[node] as usize;
                        path.push(node);
                    }
                    path.reverse();
                    return Ok(Some(path));
                }
                if self.parent[next] == NONE {
                    self.parent[next] = at;
                    self.touched.push(next as u32);
                    self.queue.push_back(next as u32);
                }
            }
        }
        Ok(None)
    }
}

/// Reachability labels for an acyclic part of a graph (GRAIL's intervals): a depth-first
/// post-order number per node and the lowest such number below it. If u reaches v, then
/// v's interval lies inside u's; so a node whose interval does not is certainly not
/// reachable, and most searches that would fail need not run at all.
pub struct Intervals {
    post: Vec<u32>,
    low: Vec<u32>,
}

impl Intervals {
    /// Labels `members` (which `member` marks, acyclic under `mask`, ranked topologically
    /// in `rank`), visiting each node's edges first to last, or last to first when
    /// `reverse`: two labellings disagree on different pairs, and together prune more.
    pub fn new(
        graph: &Graph,
        members: &[u32],
        member: &[bool],
        mask: u8,
        rank: &[u32],
        reverse: bool,
    ) -> Self {
        let n = graph.node_count();
        let mut post = vec![u32::MAX; n];
        let mut low = vec![u32::MAX; n];
        let mut discovered = vec![false; n];
        let mut next = 0u32;
        // (node, edges of it still to look at, counted from the end or the start)
        let mut frames: Vec<(u32, u32)> = Vec::new();
        for &root in members {
            if discovered[root as usize] {
                continue;
            }
            discovered[root as usize] = true;
            frames.push((root, 0));
            while let Some(frame) = frames.last_mut() {
                let v = frame.0 as usize;
                let (first, end) = (graph.first[v], graph.first[v + 1]);
                let mut descended = None;
                while first + frame.1 < end {
                    let e = if reverse {
                        end - 1 - frame.1
                    } else {
                        first + frame.1
                    } as usize;
                    frame.1 += 1;
                    let w = graph.targets[e] as usize;
                    if graph.kinds[e] & mask != 0 && member[w] && !discovered[w] {
                        descended = Some(w);
                        break;
                    }
                }
                match descended {
                    Some(w) => {
                        discovered[w] = true;
                        frames.push((w as u32, 0));
                    }
                    None => {
                        post[v] = next;
                        next += 1;
                        frames.pop();
                    }
                }
            }
        }
        // low(v) = min(post(v), low of each successor): successors rank higher, so
        // descending rank order sees them first.
        let mut order: Vec<u32> = members.to_vec();
        order.sort_unstable_by_key(|v| std::cmp::Reverse(rank[*v as usize]));
        for v in order {
            let v = v as usize;
            let mut lowest = post[v];
            for (w, kind) in graph.edges(v) {
                if kind & mask != 0 && member[w] {
                    lowest = lowest.min(low[w]);
                }
            }
            low[v] = lowest;
        }
        Self { post, low }
    }

    /// False when `from` certainly cannot reach `to`; true when it may.
    pub fn may_reach(&self, from: usize, to: usize) -> bool {
        self.low[from] <= self.low[to] && self.post[to] <= self.post[from]
    }
}

/// A search stopped at its bound before it could answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exhausted;

impl Graph {
    /// Ranks `members` (which `member` marks) in a topological order of the edges whose
    /// kind meets `mask` among them, writing `rank[n]` for each; false if those edges hold a
    /// cycle (some members are then left unranked). Kahn's algorithm: no recursion.
    pub fn rank_topologically(&self, members: &[u32], member: &[bool], mask: u8, rank: &mut [u32]) -> bool {
        // `rank` first counts each member's unranked predecessors; a member is ranked once
        // that count is zero, so one table serves both.
        for &n in members {
            rank[n as usize] = 0;
        }
        for &n in members {
            for (t, kind) in self.edges(n as usize) {
                if kind & mask != 0 && member[t] {
                    rank[t] += 1;
                }
            }
        }
        // Lowest node first: operations are numbered in completion order, so the ranks stay
        // close to the history's own order, and the part of the order between two nodes,
        // which bounds a search from one to the other, stays short.
        let mut ready: BinaryHeap<Reverse<u32>> = members
            .iter()
            .copied()
            .filter(|n| rank[*n as usize] == 0)
            .map(Reverse)
            .collect();
        let mut next = 0u32;
        while let Some(Reverse(n)) = ready.pop() {
            for (t, kind) in self.edges(n as usize) {
                if kind & mask == 0 || !member[t] {
                    continue;
                }
                rank[t] -= 1;
                if rank[t] == 0 {
                    ready.push(Reverse(t as u32));
                }
            }
            rank[n as usize] = next;
            next += 1;
        }
        next as usize == members.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_follow_only_the_masked_kinds() {
        // 0 -> 1 -> 2 -> 0 by kind 1; 2 -> 3 -> 2 by kind 2; 4 alone.
        let edges = [(0, 1, 1), (1, 2, 1), (2, 0, 1), (2, 3, 2), (3, 2, 2)];
        let graph = Graph::from_edges(5, &edges);
        assert_eq!(graph.components(1, |_| true), vec![vec![0, 1, 2]]);
        assert_eq!(graph.components(2, |_| true), vec![vec![2, 3]]);
        assert_eq!(graph.components(3, |_| true), vec![vec![0, 1, 2, 3]]);
        assert_eq!(graph.components(3, |n| n != 2), Vec::<Vec<u32>>::new());
    }

    #[test]
    fn a_path_is_the_shortest_and_respects_its_budget() {
        // 0 -> 1 -> 2 -> 3 and a shortcut 0 -> 3 of another kind.
        let edges = [(0, 1, 1), (1, 2, 1), (2, 3, 1), (0, 3, 2)];
        let graph = Graph::from_edges(4, &edges);
        let mut search = Search::new(&graph);
        assert_eq!(
            search.path(&graph, 0, 3, 1, |_| true, 100),
            Ok(Some(vec![0, 1, 2]))
        );
        assert_eq!(search.path(&graph, 0, 3, 3, |_| true, 100), Ok(Some(vec![0])));
        assert_eq!(search.path(&graph, 0, 3, 1, |_| true, 2), Err(Exhausted));
        assert_eq!(search.path(&graph, 3, 0, 3, |_| true, 100), Ok(None));
    }

    #[test]
    fn a_topological_rank_orders_every_edge_or_reports_a_cycle() {
        let edges = [(0, 1, 1), (0, 2, 1), (2, 1, 1), (1, 3, 1), (3, 0, 2)];
        let graph = Graph::from_edges(4, &edges);
        let members = [0, 1, 2, 3];
        let member = [true; 4];
        let mut rank = [u32::MAX; 4];
        assert!(graph.rank_topologically(&members, &member, 1, &mut rank));
        for (a, b, kind) in edges.iter().filter(|e| e.2 == 1) {
            assert!(
                rank[*a as usize] < rank[*b as usize],
                "{a} -> {b} ({kind}): {rank:?}"
            );
        }
        assert!(!graph.rank_topologically(&members, &member, 3, &mut rank));
    }

    #[test]
    fn intervals_never_deny_a_real_path_and_deny_some_false_ones() {
        // A diamond 0 -> {1, 2} -> 3, and 4 -> 2.
        let edges = [(0, 1, 1), (0, 2, 1), (1, 3, 1), (2, 3, 1), (4, 2, 1)];
        let graph = Graph::from_edges(5, &edges);
        let members = [0, 1, 2, 3, 4];
        let member = [true; 5];
        let mut rank = [0; 5];
        assert!(graph.rank_topologically(&members, &member, 1, &mut rank));
        let reach = |a: usize, b: usize| -> bool {
            let mut search = Search::new(&graph);
            matches!(search.path(&graph, a, b, 1, |_| true, 1000), Ok(Some(_)))
        };
        for reverse in [false, true] {
            let labels = Intervals::new(&graph, &members, &member, 1, &rank, reverse);
            for a in 0..5 {
                for b in 0..5 {
                    if a != b && !reach(a, b) {
                        continue;
                    }
                    assert!(a == b || labels.may_reach(a, b), "{a} reaches {b}");
                }
            }
            assert!(!labels.may_reach(3, 0), "nothing leaves 3");
        }
    }

    #[test]
    fn a_million_node_chain_needs_no_deep_stack() {
        let n = 1_000_000u32;
        let mut edges: Vec<(u32, u32, u8)> = (0..n - 1).map(|i| (i, i + 1, 1)).collect();
        edges.push((n - 1, 0, 1));
        let found = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || {
                let graph = Graph::from_edges(n as usize, &edges);
                graph
                    .components(1, |_| true)
                    .iter()
                    .map(Vec::len)
                    .collect::<Vec<_>>()
            })
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(found, vec![n as usize]);
    }
}
