//! One regression tree: its serialised form, prediction, and best-first growth on
//! histograms of binned features.
//!
//! The design decision: a node's histogram holds, per feature and bin, the sums of
//! gradients and hessians and the row count; only the smaller child's is built from rows,
//! the sibling's is the parent's minus it. Everything runs in a fixed order on one thread,
//! and ties between splits go to the lowest feature, bin and node, so growth is
//! deterministic.

use serde::{Deserialize, Serialize};

/// A split's children must each hold at least this much hessian (sklearn's
/// `min_hessian_to_split`).
const MIN_HESSIAN: f64 = 1e-3;

/// A node of a fitted tree. Children always have larger indices than their parent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum Node {
    /// An inner node: rows with `x[feature] <= threshold` go left, missing values go left
    /// when `missing_left`.
    Split {
        /// The feature's column position.
        feature: usize,
        /// The largest raw value sent left.
        threshold: f64,
        /// Where a missing value goes.
        missing_left: bool,
        /// The left child's index.
        left: usize,
        /// The right child's index.
        right: usize,
    },
    /// A leaf: its contribution to the raw score (log-odds), learning rate included.
    Leaf {
        /// The added log-odds.
        value: f64,
    },
}

/// A fitted regression tree; node 0 is the root.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tree {
    pub(crate) nodes: Vec<Node>,
}

impl Tree {
    /// The nodes, root first.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The number of leaves.
    pub fn n_leaves(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| matches!(n, Node::Leaf { .. }))
            .count()
    }

    /// This tree's log-odds for a raw row (`NaN` = missing).
    pub fn predict_row(&self, row: &[f64]) -> f64 {
        let mut i = 0;
        loop {
            match self.nodes[i] {
                Node::Leaf { value } => return value,
                Node::Split {
                    feature,
                    threshold,
                    missing_left,
                    left,
                    right,
                } => {
                    let x = row[feature];
                    let go_left = if x.is_nan() { missing_left } else { x <= threshold };
                    i = if go_left { left } else { right };
                }
            }
        }
    }

    /// Checks the structure against `n_features` columns: indices in range, children
    /// after parents, finite values.
    pub(crate) fn validate(&self, n_features: usize) -> Result<(), String> {
        if self.nodes.is_empty() {
            return Err("a tree without nodes".into());
        }
        for (i, node) in self.nodes.iter().enumerate() {
            match *node {
                Node::Leaf { value } if !value.is_finite() => {
                    return Err(format!("leaf {i} has a non-finite value"));
                }
                Node::Split {
                    feature,
                    threshold,
                    left,
                    right,
                    ..
                } => {
                    if feature >= n_features {
                        return Err(format!("node {i} splits on feature {feature} of {n_features}"));
                    }
                    if threshold.is_nan() {
                        return Err(format!("node {i} has a NaN threshold"));
                    }
                    let n = self.nodes.len();
                    if left <= i || right <= i || left >= n || right >= n {
                        return Err(format!("node {i} has children {left} and {right} of {n} nodes"));
                    }
                }
                Node::Leaf { .. } => {}
            }
        }
        Ok(())
    }
}

/// One histogram cell.
#[derive(Debug, Clone, Copy, Default)]
struct Bin {
    g: f64,
    h: f64,
    n: u32,
}

/// The binned training rows and what growth needs to know about them.
pub(crate) struct Binned<'a> {
    /// Column-major codes: `codes[f * n_rows + i]`.
    pub codes: &'a [u8],
    pub n_rows: usize,
    /// Per feature, the number of value bins (also the missing code).
    pub n_value_bins: &'a [usize],
    /// Per feature, the raw upper edges of the value bins (the last bin has none).
    pub edges: &'a [Vec<f64>],
}

/// How to grow one tree.
pub(crate) struct GrowParams {
    pub max_leaf_nodes: usize,
    pub max_depth: Option<usize>,
    pub min_samples_leaf: usize,
    pub l2: f64,
    pub learning_rate: f64,
}

#[derive(Debug, Clone, Copy)]
struct SplitInfo {
    gain: f64,
    feature: usize,
    bin: usize,
    missing_left: bool,
    n_left: usize,
}

/// A leaf that may still be split.
struct Candidate {
    node: usize,
    start: usize,
    end: usize,
    depth: usize,
    g: f64,
    h: f64,
    hist: Vec<Bin>,
    split: Option<SplitInfo>,
}

/// Per-node working memory reused across trees.
pub(crate) struct Grower<'a> {
    data: Binned<'a>,
    params: GrowParams,
    /// Histogram offset of each feature; each feature has `n_value_bins + 1` cells.
    offsets: Vec<usize>,
    hist_len: usize,
    /// Row indices, partitioned so each node owns a contiguous range.
    rows: Vec<u32>,
    scratch: Vec<u32>,
    ordered_g: Vec<f64>,
    ordered_h: Vec<f64>,
}

impl<'a> Grower<'a> {
    pub(crate) fn new(data: Binned<'a>, params: GrowParams) -> Self {
        let mut offsets = Vec::with_capacity(data.n_value_bins.len());
        let mut total = 0;
        for &nb in data.n_value_bins {
            offsets.push(total);
            total += nb + 1;
        }
        let n = data.n_rows;
        Grower {
            data,
            params,
            offsets,
            hist_len: total,
            rows: Vec::with_capacity(n),
            scratch: vec![0; n],
            ordered_g: Vec::with_capacity(n),
            ordered_h: Vec::with_capacity(n),
        }
    }

    /// Grows one tree on gradients `g` and hessians `h`, adding each leaf's value to
    /// `raw` for the rows in it.
    pub(crate) fn grow(&mut self, g: &[f64], h: &[f64], raw: &mut [f64]) -> Tree {
        let n = self.data.n_rows;
        self.rows.clear();
        self.rows.extend(0..n as u32);
        let mut nodes = vec![Node::Leaf { value: 0.0 }];
        let hist = self.build_hist(0, n, g, h);
        let (sg, sh) = (sum_in_order(g), sum_in_order(h));
        let mut root = Candidate {
            node: 0,
            start: 0,
            end: n,
            depth: 0,
            g: sg,
            h: sh,
            hist,
            split: None,
        };
        root.split = self.find_split(&root);
        let mut open = vec![root];
        let mut done: Vec<Candidate> = Vec::new();
        let mut n_leaves = 1;
        while n_leaves < self.params.max_leaf_nodes {
            // The open leaf with the largest gain; ties go to the lowest node index.
            let mut best: Option<(usize, f64, usize)> = None;
            for (k, c) in open.iter().enumerate() {
                if let Some(s) = c.split
                    && best.is_none_or(|(_, gain, node)| s.gain > gain || (s.gain == gain && c.node < node))
                {
                    best = Some((k, s.gain, c.node));
                }
            }
            let Some((k, _, _)) = best else { break };
            let parent = open.swap_remove(k);
            let (left, right) = self.split(parent, &mut nodes, g, h);
            n_leaves += 1;
            for c in [left, right] {
                if c.split.is_some() {
                    open.push(c);
                } else {
                    done.push(c);
                }
            }
        }
        done.extend(open);
        done.sort_by_key(|c| c.node);
        for c in &done {
            let value = -c.g / (c.h + self.params.l2) * self.params.learning_rate;
            nodes[c.node] = Node::Leaf { value };
            for &i in &self.rows[c.start..c.end] {
                raw[i as usize] += value;
            }
        }
        Tree { nodes }
    }

    fn split(
        &mut self,
        parent: Candidate,
        nodes: &mut Vec<Node>,
        g: &[f64],
        h: &[f64],
    ) -> (Candidate, Candidate) {
        let s = parent.split.expect("only candidates with a split are split");
        let col = &self.data.codes[s.feature * self.data.n_rows..(s.feature + 1) * self.data.n_rows];
        let missing = self.data.n_value_bins[s.feature];
        // Stable partition of the parent's rows: left ones first, then right ones.
        let range = &mut self.rows[parent.start..parent.end];
        let (mut l, mut r) = (0, 0);
        let right_buf = &mut self.scratch[..range.len()];
        for k in 0..range.len() {
            let i = range[k];
            let b = col[i as usize] as usize;
            let go_left = if b == missing { s.missing_left } else { b <= s.bin };
            if go_left {
                range[l] = i;
                l += 1;
            } else {
                right_buf[r] = i;
                r += 1;
            }
        }
        range[l..].copy_from_slice(&right_buf[..r]);
        debug_assert_eq!(l, s.n_left);
        let mid = parent.start + l;

        let edges = &self.data.edges[s.feature];
        let threshold = edges.get(s.bin).copied().unwrap_or(f64::MAX);
        let (li, ri) = (nodes.len(), nodes.len() + 1);
        nodes[parent.node] = Node::Split {
            feature: s.feature,
            threshold,
            missing_left: s.missing_left,
            left: li,
            right: ri,
        };
        nodes.push(Node::Leaf { value: 0.0 });
        nodes.push(Node::Leaf { value: 0.0 });

        let left_small = l <= r;
        let (ss, se) = if left_small {
            (parent.start, mid)
        } else {
            (mid, parent.end)
        };
        let small_hist = self.build_hist(ss, se, g, h);
        let mut big_hist = parent.hist;
        for (b, s) in big_hist.iter_mut().zip(&small_hist) {
            b.g -= s.g;
            b.h -= s.h;
            b.n -= s.n;
        }
        let (lh, rh) = if left_small {
            (small_hist, big_hist)
        } else {
            (big_hist, small_hist)
        };
        let sum = |start: usize, end: usize, v: &[f64]| -> f64 {
            let mut acc = 0.0;
            for &i in &self.rows[start..end] {
                acc += v[i as usize];
            }
            acc
        };
        let (lg, lhs) = (sum(parent.start, mid, g), sum(parent.start, mid, h));
        let (rg, rhs) = (sum(mid, parent.end, g), sum(mid, parent.end, h));
        let depth = parent.depth + 1;
        let mut left = Candidate {
            node: li,
            start: parent.start,
            end: mid,
            depth,
            g: lg,
            h: lhs,
            hist: lh,
            split: None,
        };
        let mut right = Candidate {
            node: ri,
            start: mid,
            end: parent.end,
            depth,
            g: rg,
            h: rhs,
            hist: rh,
            split: None,
        };
        left.split = self.find_split(&left);
        right.split = self.find_split(&right);
        (left, right)
    }

    fn build_hist(&mut self, start: usize, end: usize, g: &[f64], h: &[f64]) -> Vec<Bin> {
        let rows = &self.rows[start..end];
        self.ordered_g.clear();
        self.ordered_h.clear();
        self.ordered_g.extend(rows.iter().map(|&i| g[i as usize]));
        self.ordered_h.extend(rows.iter().map(|&i| h[i as usize]));
        let mut hist = vec![Bin::default(); self.hist_len];
        let n = self.data.n_rows;
        for (f, &off) in self.offsets.iter().enumerate() {
            let col = &self.data.codes[f * n..(f + 1) * n];
            let cells = &mut hist[off..off + self.data.n_value_bins[f] + 1];
            for ((&i, &gi), &hi) in rows.iter().zip(&self.ordered_g).zip(&self.ordered_h) {
                let cell = &mut cells[col[i as usize] as usize];
                cell.g += gi;
                cell.h += hi;
                cell.n += 1;
            }
        }
        hist
    }

    fn find_split(&self, c: &Candidate) -> Option<SplitInfo> {
        let p = &self.params;
        let n = c.end - c.start;
        if n < 2 * p.min_samples_leaf.max(1) || p.max_depth.is_some_and(|d| c.depth >= d) {
            return None;
        }
        let score = |g: f64, h: f64| g * g / (h + p.l2);
        let parent_score = score(c.g, c.h);
        let mut best: Option<SplitInfo> = None;
        for (f, &off) in self.offsets.iter().enumerate() {
            let nb = self.data.n_value_bins[f];
            let cells = &c.hist[off..off + nb + 1];
            let miss = cells[nb];
            let has_missing = miss.n > 0;
            // Missing values go right (or, with none, to the larger side): left = bins 0..=b.
            // When there are missing values, b = nb - 1 (all values left) is a split too.
            // Then missing values go left: left = missing + bins 0..=b.
            for missing_left in [false, true] {
                if missing_left && !has_missing {
                    break;
                }
                let (mut lg, mut lh, mut ln) = if missing_left {
                    (miss.g, miss.h, miss.n as usize)
                } else {
                    (0.0, 0.0, 0)
                };
                let last = if missing_left || !has_missing { nb - 1 } else { nb };
                for (b, cell) in cells[..last].iter().enumerate() {
                    lg += cell.g;
                    lh += cell.h;
                    ln += cell.n as usize;
                    let rn = n - ln;
                    if ln < p.min_samples_leaf {
                        continue;
                    }
                    if rn < p.min_samples_leaf {
                        break;
                    }
                    let (rg, rh) = (c.g - lg, c.h - lh);
                    if lh < MIN_HESSIAN || rh < MIN_HESSIAN {
                        continue;
                    }
                    let gain = score(lg, lh) + score(rg, rh) - parent_score;
                    if gain > 0.0 && best.is_none_or(|s| gain > s.gain) {
                        let ml = if has_missing { missing_left } else { ln >= rn };
                        best = Some(SplitInfo {
                            gain,
                            feature: f,
                            bin: b,
                            missing_left: ml,
                            n_left: ln,
                        });
                    }
                }
            }
        }
        best
    }
}

/// A plain left-to-right sum (the order is part of determinism).
fn sum_in_order(v: &[f64]) -> f64 {
    let mut acc = 0.0;
    for &x in v {
        acc += x;
    }
    acc
}
