//! Assignment strategies: pure functions from members, their subscriptions
//! and the topics' partition counts to a target assignment.
//!
//! Every strategy assigns each partition of every subscribed, existing topic
//! to exactly one member that subscribes to its topic, and nothing else.
//! Members are always considered in member-id order, so the result is a
//! deterministic function of the inputs.
//!
//! - [`Strategy::Range`]: Kafka's `RangeAssignor`. Per topic, the subscribers
//!   sorted by member id each get a contiguous range; the first
//!   `partitions % subscribers` get one extra.
//! - [`Strategy::RoundRobin`]: Kafka's `RoundRobinAssignor`. All subscribed
//!   topic-partitions, sorted, are dealt over the members sorted by id; a
//!   member not subscribing to a partition's topic is skipped.
//! - [`Strategy::Sticky`]: keeps every still-valid partition of the current
//!   assignment, hands the rest to the least-loaded subscriber, then moves
//!   partitions from the most-loaded members to subscribers holding at least
//!   two fewer until no such move exists. Hence two members with the same
//!   subscription never differ by more than one partition, and when all
//!   members share one subscription the number of partitions that change
//!   owner is the minimum balance requires (see [`sticky`]).

use std::collections::{BTreeMap, BTreeSet};

use super::{Strategy, TopicPartition};

/// A target assignment: member id to the partitions it should own. Has an
/// entry (possibly empty) for every member.
pub type Assignment = BTreeMap<String, BTreeSet<TopicPartition>>;

/// Computes the target assignment for `subscriptions` (member id to
/// subscribed topics) with `strategy`. `partition_counts` gives each topic's
/// partition count; a missing topic has none. `current` (the previous
/// target) is used only by [`Strategy::Sticky`].
pub fn assign(
    strategy: Strategy,
    subscriptions: &BTreeMap<String, BTreeSet<String>>,
    partition_counts: &BTreeMap<String, u32>,
    current: &Assignment,
) -> Assignment {
    match strategy {
        Strategy::Range => range(subscriptions, partition_counts),
        Strategy::RoundRobin => round_robin(subscriptions, partition_counts),
        Strategy::Sticky => sticky(subscriptions, partition_counts, current),
    }
}

fn count_of(partition_counts: &BTreeMap<String, u32>, topic: &str) -> u32 {
    partition_counts.get(topic).copied().unwrap_or(0)
}

fn empty_assignment(subscriptions: &BTreeMap<String, BTreeSet<String>>) -> Assignment {
    subscriptions
        .keys()
        .map(|member| (member.clone(), BTreeSet::new()))
        .collect()
}

/// Subscribers of each topic, in member-id order.
fn subscribers(subscriptions: &BTreeMap<String, BTreeSet<String>>) -> BTreeMap<&str, Vec<&str>> {
    let mut by_topic: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (member, topics) in subscriptions {
        for topic in topics {
            by_topic.entry(topic).or_default().push(member);
        }
    }
    by_topic
}

/// Kafka's range assignment.
pub fn range(
    subscriptions: &BTreeMap<String, BTreeSet<String>>,
    partition_counts: &BTreeMap<String, u32>,
) -> Assignment {
    let mut out = empty_assignment(subscriptions);
    for (topic, members) in subscribers(subscriptions) {
        let partitions = count_of(partition_counts, topic);
        let k = members.len() as u32; // >= 1: the topic has a subscriber
        let (per, extra) = (partitions / k, partitions % k);
        for (i, member) in (0u32..).zip(&members) {
            let start = i * per + i.min(extra);
            let len = per + u32::from(i < extra);
            let owned = out.entry((*member).to_owned()).or_default();
            owned.extend((start..start + len).map(|p| TopicPartition::new(topic, p)));
        }
    }
    out
}

/// Kafka's round-robin assignment.
pub fn round_robin(
    subscriptions: &BTreeMap<String, BTreeSet<String>>,
    partition_counts: &BTreeMap<String, u32>,
) -> Assignment {
    let mut out = empty_assignment(subscriptions);
    let members: Vec<(&String, &BTreeSet<String>)> = subscriptions.iter().collect();
    let mut next = 0;
    // Topics in name order, partitions in number order: the sorted list.
    for topic in subscribers(subscriptions).into_keys() {
        for partition in 0..count_of(partition_counts, topic) {
            // Some member subscribes to `topic`, so this finds one within a lap.
            while !members[next % members.len()].1.contains(topic) {
                next += 1;
            }
            let member = members[next % members.len()].0;
            next += 1;
            if let Some(owned) = out.get_mut(member) {
                owned.insert(TopicPartition::new(topic, partition));
            }
        }
    }
    out
}

/// Sticky, balanced assignment.
///
/// 1. Each member keeps the partitions of `current` that still exist and
///    whose topic it still subscribes to (a partition listed for two members
///    stays with the first by id).
/// 2. Every other partition goes, most-constrained topic first, to the
///    subscriber with the fewest partitions (ties: lower member id).
/// 3. While the most-loaded member that can give holds a partition whose
///    topic a member with at least two fewer partitions subscribes to, that
///    partition moves to the least-loaded such member.
///
/// Step 3 ends because each move lowers the sum of squared loads. It
/// leaves no member with a partition that a subscriber with two fewer could
/// take, so members with the same subscription differ by at most one. When
/// all members share one subscription, a member that gains never loses and
/// the reverse, and a loser never drops below a member that only gained, so
/// the partitions kept are `sum(min(current_i, quota_i))` with the larger
/// quotas going to the members that held more: the fewest moves possible.
pub fn sticky(
    subscriptions: &BTreeMap<String, BTreeSet<String>>,
    partition_counts: &BTreeMap<String, u32>,
    current: &Assignment,
) -> Assignment {
    let members: Vec<(&String, &BTreeSet<String>)> = subscriptions.iter().collect();
    let by_topic = subscribers(subscriptions);
    let index: BTreeMap<&str, usize> = (0..)
        .zip(&members)
        .map(|(i, (id, _))| (id.as_str(), i))
        .collect();
    // Per topic with partitions, its subscribers ordered by (load, index).
    let mut loads: BTreeMap<&str, BTreeSet<(usize, usize)>> = BTreeMap::new();
    let mut owned: Vec<BTreeSet<TopicPartition>> = vec![BTreeSet::new(); members.len()];

    // 1. Keep what is still valid.
    let mut taken = BTreeSet::new();
    for (i, (id, topics)) in members.iter().enumerate() {
        let Some(previous) = current.get(*id) else {
            continue;
        };
        for tp in previous {
            let valid =
                topics.contains(&tp.topic) && tp.partition < count_of(partition_counts, &tp.topic);
            if valid && taken.insert(tp) {
                owned[i].insert(tp.clone());
            }
        }
    }
    for (topic, subs) in &by_topic {
        if count_of(partition_counts, topic) > 0 {
            let set = subs
                .iter()
                .map(|m| (owned[index[m]].len(), index[m]))
                .collect();
            loads.insert(topic, set);
        }
    }
    let mut sticky = Sticky {
        members: &members,
        loads,
        owned,
    };

    // 2. Place the rest, topics with fewer subscribers first.
    let mut topics: Vec<(&str, usize)> = by_topic.iter().map(|(t, s)| (*t, s.len())).collect();
    topics.sort_by_key(|&(topic, subs)| (subs, topic));
    for (topic, _) in topics {
        for partition in 0..count_of(partition_counts, topic) {
            let tp = TopicPartition::new(topic, partition);
            if taken.contains(&tp) {
                continue;
            }
            if let Some(&(_, to)) = sticky.loads.get(topic).and_then(BTreeSet::first) {
                sticky.give(to, tp);
            }
        }
    }

    // 3. Even out.
    while let Some((from, tp, to)) = sticky.best_move() {
        sticky.take(from, &tp);
        sticky.give(to, tp);
    }

    members
        .iter()
        .zip(sticky.owned)
        .map(|((id, _), set)| ((*id).clone(), set))
        .collect()
}

/// Working state of [`sticky`]: `loads` mirrors `owned[i].len()` for every
/// subscriber of every topic with partitions.
struct Sticky<'a> {
    members: &'a [(&'a String, &'a BTreeSet<String>)],
    loads: BTreeMap<&'a str, BTreeSet<(usize, usize)>>,
    owned: Vec<BTreeSet<TopicPartition>>,
}

impl Sticky<'_> {
    fn set_load(&mut self, member: usize, old: usize, new: usize) {
        for topic in self.members[member].1 {
            if let Some(set) = self.loads.get_mut(topic.as_str()) {
                set.remove(&(old, member));
                set.insert((new, member));
            }
        }
    }

    fn give(&mut self, member: usize, tp: TopicPartition) {
        let load = self.owned[member].len();
        self.owned[member].insert(tp);
        self.set_load(member, load, load + 1);
    }

    fn take(&mut self, member: usize, tp: &TopicPartition) {
        let load = self.owned[member].len();
        self.owned[member].remove(tp);
        self.set_load(member, load, load - 1);
    }

    /// The move step 3 makes next: from the most-loaded member that has a
    /// partition some subscriber with at least two fewer could take, its last
    /// partition of the topic whose least-loaded subscriber is lightest.
    fn best_move(&self) -> Option<(usize, TopicPartition, usize)> {
        let mut order: Vec<usize> = (0..self.owned.len()).collect();
        order.sort_by_key(|&i| (std::cmp::Reverse(self.owned[i].len()), i));
        for from in order {
            let load = self.owned[from].len();
            if load < 2 {
                return None;
            }
            // The last partition held of each topic (owned is sorted).
            let mut last: BTreeMap<&str, &TopicPartition> = BTreeMap::new();
            for tp in &self.owned[from] {
                last.insert(&tp.topic, tp);
            }
            let mut best: Option<(usize, &TopicPartition, usize)> = None;
            for (topic, tp) in last {
                let Some(&(to_load, to)) = self.loads.get(topic).and_then(BTreeSet::first) else {
                    continue;
                };
                if to_load + 2 <= load && best.is_none_or(|(l, _, _)| to_load < l) {
                    best = Some((to_load, tp, to));
                }
            }
            if let Some((_, tp, to)) = best {
                return Some((from, tp.clone(), to));
            }
        }
        None
    }
}
