//! Delayed rebalance: offline instances keep their places until the delay expires, while
//! `MIN_ACTIVE_REPLICAS` holds.
//!
//! Placement runs twice when some instance is inside its delay window: once over the live
//! instances plus the offline ones that keep their places ("all"), once over the live
//! instances only ("active"). The result is the "all" lists, each topped up from its
//! "active" list with just enough live replicas to reach `MIN_ACTIVE_REPLICAS`. This is
//! Helix's delayed auto rebalancer, on integer indices.
//!
//! Placement uses this module, never the other way round: the settings live here and
//! `placement` re-exports them.

use super::InstanceInfo;

/// Delayed rebalance settings, resolved from the resource and the cluster config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DelaySettings {
    /// How long an offline instance keeps its place (ms).
    pub delay_ms: u64,
    /// `MIN_ACTIVE_REPLICAS`: below this many live replicas, add replicas at once.
    pub min_active_replicas: usize,
}

/// When `instance`'s delay window closes, if it is still open at `now_ms`: the instance is
/// offline, went offline at a known time, and `offline_since_ms + delay_ms > now_ms`.
pub fn expiry(instance: &InstanceInfo, delay: &DelaySettings, now_ms: u64) -> Option<u64> {
    if instance.live {
        return None;
    }
    instance
        .offline_since_ms
        .map(|t| t.saturating_add(delay.delay_ms))
        .filter(|&e| e > now_ms)
}

/// Adds live replicas to each list of `all` until it has `min_active` live replicas (or
/// there are no more to offer), never past `cap` partitions on an instance; then moves the
/// first live replica of each list to the front. The replicas come first from the
/// partition's `previous` list (so the extras of the last round stay where they are and a
/// result placed again is unchanged), then from its `active` list.
/// Lists hold instance indices; `live[i]` says whether instance `i` is live.
pub fn top_up(
    all: &mut [Vec<u32>],
    previous: &[Vec<u32>],
    active: &[Vec<u32>],
    live: &[bool],
    min_active: usize,
    cap: Option<usize>,
) {
    let mut count = vec![0usize; live.len()];
    for list in all.iter() {
        for &i in list {
            count[i as usize] += 1;
        }
    }
    let cap = cap.unwrap_or(usize::MAX);
    for (p, list) in all.iter_mut().enumerate() {
        let mut live_now = list.iter().filter(|&&i| live[i as usize]).count();
        let before = previous.get(p).map_or(&[][..], Vec::as_slice);
        let fresh = active.get(p).map_or(&[][..], Vec::as_slice);
        for &i in before.iter().chain(fresh) {
            if live_now >= min_active {
                break;
            }
            if !live[i as usize] || list.contains(&i) || count[i as usize] >= cap {
                continue;
            }
            list.push(i);
            count[i as usize] += 1;
            live_now += 1;
        }
        // A live replica goes first: the top state is served by a live instance.
        if let Some(k) = list.iter().position(|&i| live[i as usize]) {
            list[..=k].rotate_right(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(delay_ms: u64) -> DelaySettings {
        DelaySettings {
            delay_ms,
            min_active_replicas: 1,
        }
    }

    #[test]
    fn expiry_is_open_only_inside_the_window() {
        let mut x = InstanceInfo::new("a");
        assert_eq!(
            expiry(&x, &settings(100), 50),
            None,
            "a live instance has no window"
        );
        x.live = false;
        assert_eq!(
            expiry(&x, &settings(100), 50),
            None,
            "unknown offline time: no window"
        );
        x.offline_since_ms = Some(1_000);
        assert_eq!(expiry(&x, &settings(100), 1_050), Some(1_100));
        assert_eq!(
            expiry(&x, &settings(100), 1_100),
            None,
            "closed at the expiry instant"
        );
    }

    #[test]
    fn top_up_adds_only_enough_live_replicas() {
        let live = [false, true, true, true];
        let mut all = vec![vec![0, 1], vec![1, 2]];
        let active = vec![vec![1, 2, 3], vec![1, 2]];
        top_up(&mut all, &[], &active, &live, 2, None);
        assert_eq!(all, vec![vec![1, 0, 2], vec![1, 2]]);
        // The previous round's extra stays.
        let mut again = vec![vec![0, 1], vec![1, 2]];
        top_up(&mut again, &[vec![0, 1, 3]], &active, &live, 2, None);
        assert_eq!(again, vec![vec![1, 0, 3], vec![1, 2]]);
    }

    #[test]
    fn top_up_respects_the_cap() {
        let live = [false, true, true];
        let mut all = vec![vec![0], vec![0]];
        let active = vec![vec![1, 2], vec![1, 2]];
        top_up(&mut all, &[], &active, &live, 1, Some(1));
        assert_eq!(
            all,
            vec![vec![1, 0], vec![2, 0]],
            "live first, one partition each"
        );
    }
}
