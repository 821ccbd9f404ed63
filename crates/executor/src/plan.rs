//! Packing the reviewable part of a diff into model calls under the
//! per-call and per-review token limits.
//!
//! Files are taken in git's order and packed greedily: a file goes whole
//! into the current call if it fits, else whole into a new call, else it
//! is split by hunks (its heading repeated in each call). A hunk too big
//! for any call is left out; once the review's budget cannot pay for the
//! next piece, everything after it is left out. Nothing is dropped
//! silently: each hunk ends up in exactly one call or in `left_out`.

/// Estimated tokens of one file's parts in a user message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileCost {
    /// Its heading (repeated in every call that carries part of it).
    pub header: u64,
    /// Each hunk.
    pub hunks: Vec<u64>,
}

/// Token limits of the review.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most prompt tokens per call.
    pub max_input: u64,
    /// Tokens reserved for each answer.
    pub max_output: u64,
    /// Tokens for the whole review, each call counting its prompt plus
    /// `max_output`.
    pub budget: u64,
}

/// Some hunks of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// Index of the file in the input.
    pub file: usize,
    /// Indices of its hunks, ascending.
    pub hunks: Vec<usize>,
}

/// One model call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// What it carries, in order.
    pub parts: Vec<Part>,
    /// Estimated prompt tokens.
    pub input_tokens: u64,
}

impl Chunk {
    /// Indices of its files.
    pub fn files(&self) -> Vec<usize> {
        self.parts.iter().map(|p| p.file).collect()
    }
}

/// Why a hunk was left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeftOutReason {
    /// Bigger than one call may carry.
    TooLarge {
        /// Estimated prompt tokens of a call with only this hunk.
        tokens: u64,
    },
    /// The review's token budget could not pay for it.
    Budget,
}

/// A hunk that no call carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeftOut {
    /// File index.
    pub file: usize,
    /// Hunk index.
    pub hunk: usize,
    /// Why.
    pub reason: LeftOutReason,
}

/// The calls to make and what stays out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Calls in order.
    pub chunks: Vec<Chunk>,
    /// Hunks no call carries.
    pub left_out: Vec<LeftOut>,
    /// Tokens the calls may use: prompts plus reserved answers.
    pub planned_tokens: u64,
}

#[derive(Default)]
struct Building {
    parts: Vec<Part>,
    files: Vec<usize>,
    fixed: u64,
    body: u64,
}

impl Building {
    fn cost(&self) -> u64 {
        self.fixed + self.body
    }

    fn with(&self, file: usize) -> Vec<usize> {
        let mut f = self.files.clone();
        if !f.contains(&file) {
            f.push(file);
        }
        f
    }
}

/// Packs `files` into calls. `fixed` gives the tokens a call needs
/// besides its parts (system message, preamble, framing) for a set of
/// files, since the rules and languages in the system message depend on
/// them.
pub fn pack(files: &[FileCost], limits: Limits, fixed: &mut dyn FnMut(&[usize]) -> u64) -> Plan {
    let mut plan = Plan::default();
    let mut cur = Building::default();
    let mut exhausted = false;
    let fits = |used: u64, input: u64| {
        input <= limits.max_input && used + input + limits.max_output <= limits.budget
    };
    let close = |cur: &mut Building, plan: &mut Plan| {
        if !cur.parts.is_empty() {
            plan.planned_tokens += cur.cost() + limits.max_output;
            plan.chunks.push(Chunk {
                parts: std::mem::take(&mut cur.parts),
                input_tokens: cur.cost(),
            });
        }
        *cur = Building::default();
    };
    for (fi, f) in files.iter().enumerate() {
        if f.hunks.is_empty() {
            continue;
        }
        if !exhausted {
            let whole = f.header + f.hunks.iter().sum::<u64>();
            let all: Vec<usize> = (0..f.hunks.len()).collect();
            let set = cur.with(fi);
            let fx = fixed(&set);
            if fits(plan.planned_tokens, fx + cur.body + whole) {
                cur.parts.push(Part {
                    file: fi,
                    hunks: all,
                });
                cur.files = set;
                cur.fixed = fx;
                cur.body += whole;
                continue;
            }
            if !cur.parts.is_empty() {
                let alone = fixed(&[fi]);
                let used_after = plan.planned_tokens + cur.cost() + limits.max_output;
                if fits(used_after, alone + whole) {
                    close(&mut cur, &mut plan);
                    cur.parts.push(Part {
                        file: fi,
                        hunks: all,
                    });
                    cur.files = vec![fi];
                    cur.fixed = alone;
                    cur.body = whole;
                    continue;
                }
            }
        }
        for (hi, &hc) in f.hunks.iter().enumerate() {
            if exhausted {
                plan.left_out.push(LeftOut {
                    file: fi,
                    hunk: hi,
                    reason: LeftOutReason::Budget,
                });
                continue;
            }
            let same_file = cur.parts.last().is_some_and(|p| p.file == fi);
            let add = if same_file { hc } else { f.header + hc };
            let set = cur.with(fi);
            let fx = fixed(&set);
            if fits(plan.planned_tokens, fx + cur.body + add) {
                match cur.parts.last_mut() {
                    Some(p) if same_file => p.hunks.push(hi),
                    _ => cur.parts.push(Part {
                        file: fi,
                        hunks: vec![hi],
                    }),
                }
                cur.files = set;
                cur.fixed = fx;
                cur.body += add;
                continue;
            }
            let fx_alone = fixed(&[fi]);
            let alone = fx_alone + f.header + hc;
            if alone > limits.max_input {
                plan.left_out.push(LeftOut {
                    file: fi,
                    hunk: hi,
                    reason: LeftOutReason::TooLarge { tokens: alone },
                });
                continue;
            }
            let used_after = plan.planned_tokens
                + if cur.parts.is_empty() {
                    0
                } else {
                    cur.cost() + limits.max_output
                };
            if fits(used_after, alone) {
                close(&mut cur, &mut plan);
                cur.parts.push(Part {
                    file: fi,
                    hunks: vec![hi],
                });
                cur.files = vec![fi];
                cur.fixed = fx_alone;
                cur.body = f.header + hc;
                continue;
            }
            exhausted = true;
            plan.left_out.push(LeftOut {
                file: fi,
                hunk: hi,
                reason: LeftOutReason::Budget,
            });
        }
    }
    close(&mut cur, &mut plan);
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fixed_cost(files: &[usize]) -> u64 {
        // Depends on the set, as the real system prompt does.
        100 + 7 * files.len() as u64
    }

    #[test]
    fn packs_whole_files_then_splits_then_stops_at_the_budget() {
        let files = vec![
            FileCost {
                header: 5,
                hunks: vec![50, 50],
            },
            FileCost {
                header: 5,
                hunks: vec![300, 300],
            },
            FileCost {
                header: 5,
                hunks: vec![2000],
            },
            FileCost {
                header: 5,
                hunks: vec![10],
            },
            FileCost {
                header: 5,
                hunks: vec![10, 10],
            },
        ];
        let limits = Limits {
            max_input: 600,
            max_output: 100,
            budget: 2100,
        };
        let plan = pack(&files, limits, &mut |f| fixed_cost(f));
        let shape: Vec<Vec<(usize, Vec<usize>)>> = plan
            .chunks
            .iter()
            .map(|c| c.parts.iter().map(|p| (p.file, p.hunks.clone())).collect())
            .collect();
        assert_eq!(
            shape,
            vec![
                vec![(0, vec![0, 1]), (1, vec![0])],
                vec![(1, vec![1]), (3, vec![0]), (4, vec![0, 1])],
            ]
        );
        assert_eq!(
            plan.left_out,
            vec![LeftOut {
                file: 2,
                hunk: 0,
                reason: LeftOutReason::TooLarge { tokens: 2112 }
            }]
        );
        let tight = Limits {
            budget: 900,
            ..limits
        };
        let plan = pack(&files, tight, &mut |f| fixed_cost(f));
        assert_eq!(plan.chunks.len(), 1);
        assert!(plan.planned_tokens <= 900);
        assert!(
            plan.left_out
                .iter()
                .any(|l| l.file == 4 && l.reason == LeftOutReason::Budget)
        );
    }

    proptest! {
        #[test]
        fn every_hunk_is_sent_once_or_left_out_and_limits_hold(
            costs in prop::collection::vec((1u64..40, prop::collection::vec(0u64..400, 0..6)), 0..30),
            max_input in 150u64..800,
            max_output in 0u64..200,
            budget in 0u64..6000,
        ) {
            let files: Vec<FileCost> = costs.into_iter().map(|(header, hunks)| FileCost { header, hunks }).collect();
            let limits = Limits { max_input, max_output, budget };
            let plan = pack(&files, limits, &mut |f| fixed_cost(f));
            let mut seen = std::collections::BTreeMap::new();
            let mut total = 0;
            let mut last = (0usize, 0usize);
            for c in &plan.chunks {
                prop_assert!(!c.parts.is_empty());
                prop_assert!(c.input_tokens <= max_input);
                let mut recomputed = fixed_cost(&c.files());
                for p in &c.parts {
                    recomputed += files[p.file].header;
                    for &h in &p.hunks {
                        recomputed += files[p.file].hunks[h];
                        prop_assert!((p.file, h) >= last, "git order");
                        last = (p.file, h);
                        prop_assert!(seen.insert((p.file, h), "sent").is_none());
                    }
                }
                prop_assert_eq!(recomputed, c.input_tokens);
                total += c.input_tokens + max_output;
            }
            prop_assert_eq!(total, plan.planned_tokens);
            prop_assert!(total <= budget);
            for l in &plan.left_out {
                prop_assert!(seen.insert((l.file, l.hunk), "left").is_none());
                if let LeftOutReason::TooLarge { tokens } = l.reason {
                    prop_assert!(tokens > max_input);
                }
            }
            let hunks: usize = files.iter().map(|f| f.hunks.len()).sum();
            prop_assert_eq!(seen.len(), hunks);
        }
    }
}
