//! Union-find (disjoint sets) with path halving and union by size. Used to recompute clusters after
//! a split, for batch components and for probabilistic links.

/// Disjoint sets over `0..len`.
#[derive(Debug, Clone)]
pub struct UnionFind {
    parent: Vec<u32>,
    size: Vec<u32>,
}

impl UnionFind {
    pub fn new(len: usize) -> UnionFind {
        debug_assert!(len <= u32::MAX as usize);
        UnionFind {
            parent: (0..len as u32).collect(),
            size: vec![1; len],
        }
    }

    pub fn len(&self) -> usize {
        self.parent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.parent.is_empty()
    }

    /// The representative of `element`'s set.
    pub fn find(&mut self, element: usize) -> usize {
        let mut current = element as u32;
        while self.parent[current as usize] != current {
            let grandparent = self.parent[self.parent[current as usize] as usize];
            self.parent[current as usize] = grandparent;
            current = grandparent;
        }
        current as usize
    }

    /// Joins the sets of `left` and `right`; returns the new representative, or `None` if they were
    /// already one set.
    pub fn union(&mut self, left: usize, right: usize) -> Option<usize> {
        let (left_root, right_root) = (self.find(left), self.find(right));
        if left_root == right_root {
            return None;
        }
        let (big, small) = if self.size[left_root] >= self.size[right_root] {
            (left_root, right_root)
        } else {
            (right_root, left_root)
        };
        self.parent[small] = big as u32;
        self.size[big] += self.size[small];
        Some(big)
    }

    /// The size of `element`'s set.
    pub fn set_size(&mut self, element: usize) -> usize {
        let root = self.find(element);
        self.size[root] as usize
    }

    /// Every set with more than one element, each sorted, sets ordered by their smallest element.
    pub fn groups(&mut self) -> Vec<Vec<usize>> {
        let mut by_root: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
        for element in 0..self.len() {
            let root = self.find(element);
            by_root.entry(root).or_default().push(element);
        }
        let mut groups: Vec<Vec<usize>> = by_root.into_values().collect();
        groups.sort_by_key(|group| group[0]);
        groups
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Union-find agrees with a naive label-propagation over the same unions, and the
        /// partition does not depend on the order of the unions.
        #[test]
        fn agrees_with_naive_components(
            len in 1usize..40,
            pairs in proptest::collection::vec((0usize..40, 0usize..40), 0..60),
        ) {
            let pairs: Vec<(usize, usize)> =
                pairs.into_iter().map(|(a, b)| (a % len, b % len)).collect();
            let mut sets = UnionFind::new(len);
            for &(a, b) in &pairs {
                sets.union(a, b);
            }
            let mut labels: Vec<usize> = (0..len).collect();
            loop {
                let mut changed = false;
                for &(a, b) in &pairs {
                    let low = labels[a].min(labels[b]);
                    for element in [a, b] {
                        if labels[element] != low {
                            labels[element] = low;
                            changed = true;
                        }
                    }
                }
                // Propagate through elements sharing a label.
                for element in 0..len {
                    let label = labels[element];
                    if labels[label] < label {
                        labels[element] = labels[label];
                        changed = true;
                    }
                }
                if !changed {
                    break;
                }
            }
            for a in 0..len {
                for b in 0..len {
                    prop_assert_eq!(sets.find(a) == sets.find(b), labels[a] == labels[b]);
                }
            }
            let mut reversed = UnionFind::new(len);
            for &(a, b) in pairs.iter().rev() {
                reversed.union(a, b);
            }
            prop_assert_eq!(reversed.groups(), sets.groups());
            let total: usize = sets.groups().iter().map(Vec::len).sum();
            prop_assert_eq!(total, len);
        }
    }
}
