//! Membership timing: SWIM's knobs and strand's additions, with LAN/loopback defaults.
//!
//! The defaults aim at sub-second detection on loopback (SIGKILL of one member of five seen
//! as down by the first observer in about 0.35 s): probe every 100 ms, 40 ms for a direct
//! ack, three indirect probes, 200 ms to refute a suspicion, gossip of fresh updates every
//! 50 ms. The local-health guard stretches these while the node itself lags.

use std::num::{NonZeroU8, NonZeroUsize};
use std::time::Duration;

use super::health::HealthConfig;
use super::MembershipError;

/// How a member probes, suspects, gossips and rejoins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipConfig {
    /// How often a random member is probed.
    pub probe_period: Duration,
    /// How long to wait for a direct ack before asking others to probe indirectly.
    pub probe_rtt: Duration,
    /// How many members are asked to probe indirectly.
    pub num_indirect_probes: usize,
    /// How long a suspected member has to refute before it is declared down.
    pub suspect_to_down_after: Duration,
    /// How many times each update is piggybacked.
    pub max_transmissions: u8,
    /// How often fresh updates are gossiped (to `gossip_fanout` members).
    pub gossip_period: Duration,
    /// How many members each periodic gossip goes to.
    pub gossip_fanout: usize,
    /// How often a member asks a random peer for its member list.
    pub announce_period: Duration,
    /// How often a member announces itself to members it believes down (heals partitions).
    pub announce_down_period: Duration,
    /// How long a down identity is remembered.
    pub remove_down_after: Duration,
    /// How often seeds (and known members) are contacted while the node has no live peer.
    pub join_retry: Duration,
    /// No packet from any peer for this long: the node is isolated. Keep it at most
    /// `suspect_to_down_after`: others need at least `probe_period + suspect_to_down_after`
    /// to declare a cut-off node down, so the node hears of its isolation first.
    pub isolation_after: Duration,
    /// Whether a node that is cut off (nothing addressed to it for `isolation_after`, with at
    /// least two peers present) holds its accusations back until then and for a grace after
    /// it hears from its peers again, so that a healed cut makes no one else rejoin. On by
    /// default; off only to show what it prevents.
    pub hold_accusations_when_cut_off: bool,
    /// Whether a member that cannot show it reaches a majority of the members it knows
    /// holds its suspect→down verdicts back (`membership::quorum`), and after
    /// `minority_hold_max` gives them locally only, never spread, so that a healed cut makes
    /// no member of the majority rejoin. On by default; off only to show what it prevents.
    pub hold_verdicts_in_minority: bool,
    /// How long a member in the minority holds its verdicts back before it gives them
    /// locally (a real death of a majority then still fails over on the survivors).
    pub minority_hold_max: Duration,
    /// How many times a graceful leave is sent directly to every member.
    pub leave_repeats: u32,
    /// The pause between those repeats.
    pub leave_spacing: Duration,
    /// How the node judges its own health.
    pub health: HealthConfig,
    /// How many incoming datagrams and requests may wait for the membership task.
    pub inbox_capacity: usize,
    /// How many events a subscriber may fall behind before it misses some.
    pub event_capacity: usize,
}

impl Default for MembershipConfig {
    fn default() -> Self {
        Self::lan()
    }
}

impl MembershipConfig {
    /// Defaults for loopback and LANs (see the module documentation).
    pub fn lan() -> Self {
        MembershipConfig {
            probe_period: Duration::from_millis(100),
            probe_rtt: Duration::from_millis(40),
            num_indirect_probes: 3,
            suspect_to_down_after: Duration::from_millis(200),
            max_transmissions: 12,
            gossip_period: Duration::from_millis(50),
            gossip_fanout: 3,
            announce_period: Duration::from_secs(5),
            announce_down_period: Duration::from_secs(1),
            remove_down_after: Duration::from_secs(3600),
            join_retry: Duration::from_millis(250),
            isolation_after: Duration::from_millis(200),
            hold_accusations_when_cut_off: true,
            hold_verdicts_in_minority: true,
            minority_hold_max: Duration::from_secs(3),
            leave_repeats: 3,
            leave_spacing: Duration::from_millis(10),
            health: HealthConfig::default(),
            inbox_capacity: 4096,
            event_capacity: 4096,
        }
    }

    /// Checks that the values make sense together.
    pub fn validate(&self) -> Result<(), MembershipError> {
        let bad = |reason: &str| {
            Err(MembershipError::BadConfig {
                reason: reason.to_string(),
            })
        };
        if self.probe_rtt.is_zero() || self.probe_period <= self.probe_rtt {
            return bad("probe_rtt must be non-zero and shorter than probe_period");
        }
        if self.suspect_to_down_after.is_zero() {
            return bad("suspect_to_down_after must be non-zero");
        }
        if self.num_indirect_probes == 0 || self.gossip_fanout == 0 || self.max_transmissions == 0 {
            return bad("num_indirect_probes, gossip_fanout and max_transmissions must be at least 1");
        }
        if self.gossip_period.is_zero()
            || self.announce_period.is_zero()
            || self.announce_down_period.is_zero()
            || self.join_retry.is_zero()
            || self.isolation_after.is_zero()
        {
            return bad("periods and timeouts must be non-zero");
        }
        if self.inbox_capacity == 0 || self.event_capacity == 0 {
            return bad("capacities must be at least 1");
        }
        Ok(())
    }

    /// foca's configuration for packets of at most `max_packet` bytes.
    pub(crate) fn foca_config(&self, max_packet: usize) -> foca::Config {
        let one = NonZeroUsize::MIN;
        foca::Config {
            probe_period: self.probe_period,
            probe_rtt: self.probe_rtt,
            num_indirect_probes: NonZeroUsize::new(self.num_indirect_probes).unwrap_or(one),
            max_transmissions: NonZeroU8::new(self.max_transmissions).unwrap_or(NonZeroU8::MIN),
            suspect_to_down_after: self.suspect_to_down_after,
            remove_down_after: Some(self.remove_down_after),
            max_packet_size: NonZeroUsize::new(max_packet).unwrap_or(one),
            notify_down_members: true,
            periodic_announce: Some(foca::PeriodicParams {
                frequency: self.announce_period,
                num_members: one,
            }),
            periodic_announce_to_down_members: Some(foca::PeriodicParams {
                frequency: self.announce_down_period,
                num_members: NonZeroUsize::new(2).unwrap_or(one),
            }),
            periodic_gossip: Some(foca::PeriodicParams {
                frequency: self.gossip_period,
                num_members: NonZeroUsize::new(self.gossip_fanout).unwrap_or(one),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lan_defaults_are_valid_and_map_to_foca() {
        let c = MembershipConfig::lan();
        c.validate().unwrap();
        let f = c.foca_config(1000);
        assert_eq!(f.probe_period, Duration::from_millis(100));
        assert_eq!(f.max_packet_size.get(), 1000);
        assert!(f.notify_down_members);
    }

    #[test]
    fn inconsistent_timing_is_refused() {
        let mut c = MembershipConfig::lan();
        c.probe_rtt = c.probe_period;
        assert!(matches!(c.validate(), Err(MembershipError::BadConfig { .. })));
        let mut c = MembershipConfig::lan();
        c.gossip_fanout = 0;
        assert!(c.validate().is_err());
    }
}
