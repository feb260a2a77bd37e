//! Reading the nodes' answers to "who leads what" (each system asks in its own way,
//! [`crate::systems::System::leaders`]): for the `leader` fault target, and to tell when
//! the cluster has formed, or recovered after healing.

pub use crate::systems::Answer;

/// Each name's leader as most answering nodes report it (ties to the first reported).
pub fn consensus(answers: &[Option<Answer>]) -> Vec<(String, String)> {
    let mut tally: Vec<(String, Vec<(String, usize)>)> = Vec::new();
    for (name, leader) in answers.iter().flatten().flatten() {
        let Some(leader) = leader else { continue };
        let entry = match tally.iter().position(|(n, _)| n == name) {
            Some(i) => &mut tally[i].1,
            None => {
                tally.push((name.clone(), Vec::new()));
                &mut tally.last_mut().expect("just pushed").1
            }
        };
        match entry.iter_mut().find(|(l, _)| l == leader) {
            Some((_, votes)) => *votes += 1,
            None => entry.push((leader.clone(), 1)),
        }
    }
    tally
        .into_iter()
        .filter_map(|(name, votes)| {
            let best = votes.iter().map(|(_, v)| *v).max()?;
            let leader = votes.into_iter().find(|(_, v)| *v == best)?.0;
            Some((name, leader))
        })
        .collect()
}

/// Whether the cluster looks recovered: every node answered, and for every name the nodes
/// that report it agree on one leader (or all know of none, a queue never created). A node
/// that leaves a name out holds no replica of it (a partition placed on other nodes) and
/// has no say.
pub fn agreed(answers: &[Option<Answer>]) -> bool {
    let Some(all) = answers.iter().map(Option::as_ref).collect::<Option<Vec<_>>>() else {
        return false;
    };
    let mut names: Vec<&String> = all.iter().flat_map(|a| a.iter().map(|(n, _)| n)).collect();
    names.sort_unstable();
    names.dedup();
    names.into_iter().all(|name| {
        let mut said = all
            .iter()
            .filter_map(|answer| answer.iter().find(|(n, _)| n == name).map(|(_, l)| l));
        let first = said.next();
        said.all(|leader| Some(leader) == first)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(pairs: &[(&str, Option<&str>)]) -> Option<Answer> {
        Some(
            pairs
                .iter()
                .map(|(n, l)| (n.to_string(), l.map(str::to_string)))
                .collect(),
        )
    }

    #[test]
    fn agreement_needs_every_node_and_one_leader_per_name() {
        let a = answer(&[("0", Some("n1")), ("1", Some("n2"))]);
        assert!(agreed(&[a.clone(), a.clone()]));
        assert!(!agreed(&[a.clone(), None]));
        let split = answer(&[("0", Some("n3")), ("1", Some("n2"))]);
        assert!(!agreed(&[a.clone(), split.clone()]));
        // A node that holds no replica of "1" leaves it out and has no say on it; it must
        // still answer, and agree on what it does report.
        let partial = answer(&[("0", Some("n1"))]);
        assert!(agreed(&[a.clone(), partial.clone()]));
        assert!(!agreed(&[split.clone(), partial]));
        assert_eq!(
            consensus(&[a.clone(), a, split]),
            vec![
                ("0".to_string(), "n1".to_string()),
                ("1".to_string(), "n2".to_string())
            ]
        );
    }
}
