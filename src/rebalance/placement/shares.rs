//! Placement's share arithmetic: how many replicas (or top states) each zone and instance
//! should hold, from weights, bounds and a total. Every function here is exact and
//! deterministic (ties broken by the caller's stable hashes), so placing twice from the same
//! input gives the same targets.

/// Slack for floating-point shares that should be whole numbers.
const EPS: f64 = 1e-6;

/// Replicas of one partition each zone may hold: one per zone when there are at least as
/// many zones as replicas, else the smallest even spread the zone sizes allow
/// (`ANY_LIVEINSTANCE`: every instance).
pub(super) fn zone_limits(sizes: &[usize], r: usize, any: bool) -> Vec<u32> {
    if any {
        return sizes.iter().map(|&s| s as u32).collect();
    }
    let mut k = 1;
    while sizes.iter().map(|&s| s.min(k)).sum::<usize>() < r {
        k += 1;
    }
    sizes.iter().map(|&s| s.min(k) as u32).collect()
}

/// The floor and the ceiling of one share, within `[0, hi]`.
pub(super) fn share_bound(v: f64, hi: u64) -> (u32, u32) {
    let low = ((v + EPS).floor().max(0.0) as u64).min(hi) as u32;
    let up = ((v - EPS).ceil().max(0.0) as u64).min(hi) as u32;
    (low, up)
}

/// The floor and the ceiling of each share, within `[0, hi]`.
pub(super) fn share_bounds(x: &[f64], hi: &[u64]) -> (Vec<u32>, Vec<u32>) {
    x.iter().zip(hi).map(|(&v, &h)| share_bound(v, h)).unzip()
}

/// Finds `λ` in `[0, max]` with `f(λ) ≈ target` for a non-decreasing `f`.
pub(super) fn bisect(max: f64, target: f64, f: impl Fn(f64) -> f64) -> f64 {
    let (mut lo, mut hi) = (0.0, max);
    for _ in 0..64 {
        let mid = 0.5 * (lo + hi);
        if f(mid) < target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

/// A water level over flat terms: `f(λ) = Σ_k clamp(clamp(λ·w_k, lo_k, hi_k), zlo_k, zhi_k)`,
/// summed in index order (the outer clamp only with `outer`, as `(zlo, zhi)`).
pub(super) struct Level<'a> {
    pub w: &'a [f64],
    pub lo: &'a [f64],
    pub hi: &'a [f64],
    pub outer: Option<(&'a [f64], &'a [f64])>,
}

impl Level<'_> {
    fn term(&self, k: usize, l: f64) -> f64 {
        let v = (l * self.w[k]).clamp(self.lo[k], self.hi[k]);
        match self.outer {
            Some((zlo, zhi)) => v.clamp(zlo[k], zhi[k]),
            None => v,
        }
    }

    /// `f(λ)`, summed in index order: the value [`bisect`] over it compares.
    fn exact(&self, l: f64) -> f64 {
        (0..self.w.len()).map(|k| self.term(k, l)).sum()
    }

    /// Whether `f(λ) < target`, exactly as [`Self::exact`] says: first from a sum in eight
    /// lanes (no chain of dependent additions), which decides whenever it is farther from
    /// `target` than the two sums can differ; else from the ordered sum.
    fn below(&self, l: f64, target: f64) -> bool {
        let n = self.w.len();
        let (w, lo, hi) = (&self.w[..n], &self.lo[..n], &self.hi[..n]);
        // Without an outer clamp, clamping again to `lo..hi` changes nothing.
        let (zlo, zhi) = self.outer.unwrap_or((lo, hi));
        let (zlo, zhi) = (&zlo[..n], &zhi[..n]);
        // Selects by comparison are `clamp` up to the sign of a zero, which no sum's value
        // sees (and, unlike `f64::max`, compile to plain vector instructions).
        #[inline(always)]
        fn term(l: f64, w: f64, lo: f64, hi: f64, zlo: f64, zhi: f64) -> f64 {
            let v = l * w;
            let v = if v < lo { lo } else { v };
            let v = if v > hi { hi } else { v };
            let v = if v < zlo { zlo } else { v };
            if v > zhi {
                zhi
            } else {
                v
            }
        }
        let (mut acc, mut abs) = ([0.0f64; 8], [0.0f64; 8]);
        let chunks = w
            .chunks_exact(8)
            .zip(lo.chunks_exact(8))
            .zip(hi.chunks_exact(8))
            .zip(zlo.chunks_exact(8).zip(zhi.chunks_exact(8)));
        for (((w, lo), hi), (zlo, zhi)) in chunks {
            for j in 0..8 {
                let v = term(l, w[j], lo[j], hi[j], zlo[j], zhi[j]);
                acc[j] += v;
                abs[j] += v.abs();
            }
        }
        for (j, k) in (n - n % 8..n).enumerate() {
            let v = term(l, w[k], lo[k], hi[k], zlo[k], zhi[k]);
            acc[j] += v;
            abs[j] += v.abs();
        }
        let fast: f64 = acc.iter().sum();
        let size: f64 = abs.iter().sum();
        // Any order of summing n terms is within γ_n·Σ|v| ≈ n·u·Σ|v| of the exact sum
        // (u = ε/2), so the two sums are within 2·n·u·Σ|v| of each other; the bound below
        // is twice that with room for the rounding of `size` itself. A NaN or an infinity
        // decides nothing here.
        let tol = 4.0 * (n as f64 + 8.0) * f64::EPSILON * size + f64::MIN_POSITIVE;
        if fast - target > tol {
            false
        } else if target - fast > tol {
            true
        } else {
            self.exact(l) < target
        }
    }
}

/// [`bisect`] over a [`Level`]: the same `λ`, with most evaluations in eight lanes.
pub(super) fn bisect_level(max: f64, target: f64, level: &Level<'_>) -> f64 {
    let (mut lo, mut hi) = (0.0, max);
    for _ in 0..64 {
        let mid = 0.5 * (lo + hi);
        if level.below(mid, target) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

/// `x_i = clamp(λ·w_i, lo_i, hi_i)` with `Σ x_i = total`.
pub(super) fn waterfill(w: &[f64], lo: &[f64], hi: &[f64], total: f64) -> Vec<f64> {
    let at = |l: f64, i: usize| (l * w[i]).clamp(lo[i], hi[i]);
    if w.len() == 1 {
        return vec![total.clamp(lo[0], hi[0])];
    }
    let lambda_max = (0..w.len()).map(|i| hi[i] / w[i]).fold(0.0, f64::max) + 1.0;
    let level = Level {
        w,
        lo,
        hi,
        outer: None,
    };
    let lambda = bisect_level(lambda_max, total, &level);
    (0..w.len()).map(|i| at(lambda, i)).collect()
}

/// A share's floor, within `[lo, hi]`.
fn floor_within(x: f64, lo: u64, hi: u64) -> u64 {
    ((x + EPS).floor().max(0.0) as u64).clamp(lo, hi)
}

/// Who takes a ceiling first (smallest first): a positive fraction, then the most held
/// above the floor, then the larger fraction, then the tie hash.
type CeilingKey = std::cmp::Reverse<(bool, i64, i64, u64)>;

/// Rounds shares `x` to integers within `[lo, hi]` that sum to `total`: each is the floor
/// or the ceiling of its share; the ceilings go first to entries holding the most above
/// their floor already (`held`), then to larger fractions, then by `tie`.
pub(super) fn apportion(
    x: &[f64],
    lo: &[u64],
    hi: &[u64],
    total: u64,
    held: &[u64],
    tie: &[u64],
) -> Vec<u64> {
    let n = x.len();
    let mut out: Vec<u64> = (0..n).map(|i| floor_within(x[i], lo[i], hi[i])).collect();
    let sum: u64 = out.iter().sum();
    let frac = |out: &[u64], i: usize| ((x[i] - out[i] as f64) * 1e6).round() as i64;
    // Each key is computed once; the index ends every key, so the order is total and an
    // unstable sort gives the one order there is.
    if sum < total {
        let mut order: Vec<(CeilingKey, usize)> = (0..n)
            .filter(|&i| out[i] < hi[i])
            .map(|i| {
                let f = frac(&out, i);
                (
                    std::cmp::Reverse((f > 0, held[i] as i64 - out[i] as i64, f, tie[i])),
                    i,
                )
            })
            .collect();
        let mut need = total - sum;
        if need < order.len() as u64 {
            // One round takes the first `need` in order, one ceiling each: which they are
            // matters, not their order, so selecting them is enough.
            order.select_nth_unstable(need as usize);
            for &(_, i) in &order[..need as usize] {
                out[i] += 1;
            }
            return out;
        }
        order.sort_unstable();
        // Two rounds: ceilings first; a second only if rounding left a shortfall.
        for _ in 0..2 {
            for &(_, i) in &order {
                if need == 0 {
                    break;
                }
                if out[i] < hi[i] {
                    out[i] += 1;
                    need -= 1;
                }
            }
        }
    } else if sum > total {
        let mut order: Vec<((bool, i64, u64), usize)> = (0..n)
            .filter(|&i| out[i] > lo[i])
            .map(|i| ((held[i] >= out[i], frac(&out, i), tie[i]), i))
            .collect();
        let mut extra = sum - total;
        // The first `extra` in order lose one each: which they are matters, not their order.
        if extra < order.len() as u64 {
            order.select_nth_unstable(extra as usize);
        }
        for &(_, i) in &order {
            if extra == 0 {
                break;
            }
            out[i] -= 1;
            extra -= 1;
        }
    }
    out
}

/// [`apportion`] of a single share (its `held` and `tie` cannot matter), without the
/// vectors: the common zone of one instance.
pub(super) fn apportion_one(x: f64, lo: u64, hi: u64, total: u64) -> u64 {
    let out = floor_within(x, lo, hi);
    if out < total {
        // Up to two rounds of one ceiling each, never past `hi`.
        out + (total - out).min(2).min(hi - out)
    } else if out > total && out > lo {
        out - 1
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apportion_gives_ceilings_to_holders_first() {
        let x = [1.5, 1.5, 1.0];
        let out = apportion(&x, &[0; 3], &[5; 3], 4, &[1, 2, 0], &[1, 2, 3]);
        assert_eq!(out, vec![1, 2, 1]);
    }

    /// [`apportion`] as first written: every candidate sorted, the rounds walked in order.
    fn apportion_by_sorting(
        x: &[f64],
        lo: &[u64],
        hi: &[u64],
        total: u64,
        held: &[u64],
        tie: &[u64],
    ) -> Vec<u64> {
        let n = x.len();
        let mut out: Vec<u64> = (0..n).map(|i| floor_within(x[i], lo[i], hi[i])).collect();
        let sum: u64 = out.iter().sum();
        let frac = |out: &[u64], i: usize| ((x[i] - out[i] as f64) * 1e6).round() as i64;
        if sum < total {
            let mut order: Vec<usize> = (0..n).filter(|&i| out[i] < hi[i]).collect();
            order.sort_by_key(|&i| {
                let f = frac(&out, i);
                (
                    std::cmp::Reverse((f > 0, held[i] as i64 - out[i] as i64, f, tie[i])),
                    i,
                )
            });
            let mut need = total - sum;
            for _ in 0..2 {
                for &i in &order {
                    if need > 0 && out[i] < hi[i] {
                        out[i] += 1;
                        need -= 1;
                    }
                }
            }
        } else if sum > total {
            let mut order: Vec<usize> = (0..n).filter(|&i| out[i] > lo[i]).collect();
            order.sort_by_key(|&i| ((held[i] >= out[i], frac(&out, i), tie[i]), i));
            let mut extra = sum - total;
            for &i in &order {
                if extra > 0 {
                    out[i] -= 1;
                    extra -= 1;
                }
            }
        }
        out
    }

    #[test]
    fn apportion_by_selection_equals_apportion_by_sorting() {
        let mut z: u64 = 3;
        let mut next = |m: u64| {
            z = z
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (z >> 33) % m
        };
        let mut branches = [0; 3];
        for _ in 0..5_000 {
            let n = 1 + next(40) as usize;
            let x: Vec<f64> = (0..n).map(|_| next(2_000) as f64 / 100.0).collect();
            let lo: Vec<u64> = (0..n).map(|_| next(3)).collect();
            let hi: Vec<u64> = lo.iter().map(|&l| l + next(25)).collect();
            let held: Vec<u64> = (0..n).map(|_| next(25)).collect();
            // Ties, so that only the index breaks some.
            let tie: Vec<u64> = (0..n).map(|_| next(4)).collect();
            let floor: u64 = (0..n).map(|i| floor_within(x[i], lo[i], hi[i])).sum();
            let total = (floor + next(2 * n as u64 + 2)).saturating_sub(n as u64);
            let got = apportion(&x, &lo, &hi, total, &held, &tie);
            assert_eq!(got, apportion_by_sorting(&x, &lo, &hi, total, &held, &tie));
            branches[usize::from(total > floor) + usize::from(total > floor + n as u64 / 2)] += 1;
        }
        assert!(branches.iter().all(|&b| b > 100), "{branches:?}");
    }

    #[test]
    fn apportion_of_one_share_equals_the_general_one() {
        // A small deterministic generator: shares around the bounds, totals below, at and
        // above the floor, bounds that pinch.
        let mut z: u64 = 7;
        let mut next = |m: u64| {
            z = z
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (z >> 33) % m
        };
        let mut cases = 0;
        for _ in 0..20_000 {
            let lo = next(6);
            let hi = lo + next(8);
            let x = next(1200) as f64 / 100.0 + [0.0, 1e-7, 0.5, 0.999_999_5][next(4) as usize];
            let total = next(16);
            let one = apportion_one(x, lo, hi, total);
            let all = apportion(&[x], &[lo], &[hi], total, &[next(12)], &[next(99)]);
            assert_eq!(vec![one], all, "x {x} lo {lo} hi {hi} total {total}");
            assert_eq!(share_bound(x, hi), {
                let (l, u) = share_bounds(&[x], &[hi]);
                (l[0], u[0])
            });
            cases += usize::from(one != floor_within(x, lo, hi));
        }
        // Both the raising and the lowering branches ran.
        assert!(cases > 1000);
    }

    #[test]
    fn a_level_bisects_to_the_same_lambda_as_the_ordered_sum() {
        let mut z: u64 = 11;
        let mut next = |m: u64| {
            z = z
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (z >> 33) % m
        };
        let mut near = 0;
        for case in 0..300 {
            let n = 1 + next(1500) as usize;
            let w: Vec<f64> = (0..n)
                .map(|_| [1000.0, 500.0, 1.0, 3.0][next(4) as usize])
                .collect();
            let lo: Vec<f64> = (0..n).map(|_| [0.0, 0.0, 2.0][next(3) as usize]).collect();
            let hi: Vec<f64> = lo.iter().map(|&l| l + next(40) as f64).collect();
            let zlo: Vec<f64> = (0..n).map(|_| next(3) as f64).collect();
            let zhi: Vec<f64> = zlo.iter().map(|&l| l + next(50) as f64).collect();
            let outer = (case % 2 == 0).then_some((&zlo[..], &zhi[..]));
            let level = Level {
                w: &w,
                lo: &lo,
                hi: &hi,
                outer,
            };
            let sum_hi: f64 = hi.iter().sum();
            let target = (next(1 + sum_hi as u64) as f64).max(1.0);
            let max = (0..n).map(|i| hi[i] / w[i]).fold(0.0, f64::max) + 1.0;
            let ordered = bisect(max, target, |l| level.exact(l));
            assert_eq!(
                bisect_level(max, target, &level).to_bits(),
                ordered.to_bits(),
                "case {case}"
            );
            // Every step decides as the ordered sum does, also next to the answer.
            let (mut lo_l, mut hi_l) = (0.0, max);
            for _ in 0..64 {
                let mid = 0.5 * (lo_l + hi_l);
                let exact = level.exact(mid) < target;
                assert_eq!(level.below(mid, target), exact, "case {case}, λ {mid}");
                near += usize::from((level.exact(mid) - target).abs() < 1e-6);
                if exact {
                    lo_l = mid;
                } else {
                    hi_l = mid;
                }
            }
        }
        // The steps next to the answer, where only the ordered sum decides, were reached.
        assert!(near > 0);
    }

    #[test]
    fn zone_limits_spread_as_evenly_as_sizes_allow() {
        assert_eq!(zone_limits(&[2, 2, 2], 3, false), vec![1, 1, 1]);
        assert_eq!(zone_limits(&[3, 3], 3, false), vec![2, 2]);
        assert_eq!(zone_limits(&[1, 10], 3, false), vec![1, 2]);
        assert_eq!(zone_limits(&[1, 1, 5], 5, false), vec![1, 1, 3]);
    }
}
