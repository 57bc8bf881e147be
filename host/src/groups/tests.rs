use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::{
    Just, ProptestConfig, any, prop, prop_assert, prop_assert_eq, prop_oneof, proptest,
};
use proptest::strategy::Strategy as PropStrategy;

use super::assignor::{self, Assignment};
use super::*;

const G: &str = "g";

fn tp(topic: &str, partition: u32) -> TopicPartition {
    TopicPartition::new(topic, partition)
}

fn tps(list: &[(&str, u32)]) -> Vec<TopicPartition> {
    list.iter().map(|&(t, p)| tp(t, p)).collect()
}

fn request(client: &str, topics: &[&str], strategy: Strategy) -> JoinRequest {
    JoinRequest {
        topics: topics.iter().map(|t| (*t).to_owned()).collect(),
        strategy,
        session_timeout_ms: 1_000,
        client_id: client.to_owned(),
    }
}

fn subs(list: &[(&str, &[&str])]) -> BTreeMap<String, BTreeSet<String>> {
    list.iter()
        .map(|(m, ts)| {
            (
                (*m).to_owned(),
                ts.iter().map(|t| (*t).to_owned()).collect(),
            )
        })
        .collect()
}

fn counts(list: &[(&str, u32)]) -> BTreeMap<String, u32> {
    list.iter().map(|(t, c)| ((*t).to_owned(), *c)).collect()
}

fn sorted(set: &BTreeSet<TopicPartition>) -> Vec<TopicPartition> {
    set.iter().cloned().collect()
}

/// A partition-count lookup over topics `t0`, `t1`, ...; 0 means absent.
fn lookup(topics: &[u32]) -> impl Fn(&str) -> Option<u32> + '_ {
    move |name| {
        let i: usize = name.strip_prefix('t')?.parse().ok()?;
        topics.get(i).copied().filter(|&c| c > 0)
    }
}

/// A consumer in the simulation. `owned` is what it holds and reports (with
/// `epoch`); a lagging client applies each response only at its next
/// heartbeat, so it keeps the latest one in `next`.
#[derive(Debug, Clone)]
struct Client {
    member_id: String,
    topics: BTreeSet<String>,
    lag: bool,
    epoch: u64,
    owned: Vec<TopicPartition>,
    next: (u64, Vec<TopicPartition>),
}

struct Sim {
    coord: GroupCoordinator,
    strategy: Strategy,
    topics: Vec<u32>,
    now: u64,
    clients: Vec<Client>,
}

impl Sim {
    fn new(strategy: Strategy, topics: Vec<u32>) -> Self {
        Self {
            coord: GroupCoordinator::new(),
            strategy,
            topics,
            now: 0,
            clients: Vec::new(),
        }
    }

    fn join(&mut self, topics: &[String], lag: bool, session_timeout_ms: u64) -> usize {
        let req = JoinRequest {
            topics: topics.to_vec(),
            strategy: self.strategy,
            session_timeout_ms,
            client_id: format!("c{}", self.clients.len()),
        };
        let joined = self
            .coord
            .join(G, req, self.now, &lookup(&self.topics))
            .expect("join");
        self.clients.push(Client {
            member_id: joined.member_id,
            topics: topics.iter().cloned().collect(),
            lag,
            epoch: joined.member_epoch,
            owned: Vec::new(),
            next: (joined.member_epoch, Vec::new()),
        });
        self.clients.len() - 1
    }

    fn heartbeat(&mut self, i: usize) -> HeartbeatResponse {
        let c = &self.clients[i];
        let resp = self
            .coord
            .heartbeat(
                G,
                &c.member_id,
                c.epoch,
                &c.owned,
                self.now,
                &lookup(&self.topics),
            )
            .expect("well-behaved and lagging clients are never fenced");
        let c = &mut self.clients[i];
        let latest = (resp.member_epoch, resp.assigned.clone());
        if c.lag {
            (c.epoch, c.owned) = std::mem::replace(&mut c.next, latest);
        } else {
            (c.epoch, c.owned) = latest.clone();
            c.next = latest;
        }
        resp
    }

    fn leave(&mut self, i: usize) {
        let c = self.clients.remove(i);
        self.coord.leave(G, &c.member_id).expect("leave");
    }

    fn expire(&mut self) -> Vec<(String, String)> {
        let gone = self.coord.expire(self.now);
        self.clients
            .retain(|c| !gone.iter().any(|(_, m)| *m == c.member_id));
        gone
    }

    fn rounds(&mut self, n: usize) {
        for _ in 0..n {
            for i in 0..self.clients.len() {
                self.heartbeat(i);
            }
        }
    }

    fn describe(&self) -> GroupDescription {
        self.coord.describe(G).expect("group exists")
    }

    fn assigned(&self) -> BTreeMap<String, BTreeSet<TopicPartition>> {
        self.describe()
            .members
            .into_iter()
            .map(|m| (m.member_id, m.assigned.into_iter().collect()))
            .collect()
    }

    /// Owner of each assigned partition.
    fn owners(&self) -> BTreeMap<TopicPartition, String> {
        let mut owners = BTreeMap::new();
        for (member, set) in self.assigned() {
            for tp in set {
                owners.insert(tp, member.clone());
            }
        }
        owners
    }

    /// Property (1), and that the coordinator's view covers what clients hold.
    fn check_exclusive(&self) {
        let Some(desc) = self.coord.describe(G) else {
            return;
        };
        let mut assigned = BTreeSet::new();
        let mut may_hold = BTreeSet::new();
        for m in &desc.members {
            for tp in &m.assigned {
                assert!(
                    assigned.insert(tp.clone()),
                    "{tp} assigned twice: {desc:#?}"
                );
            }
            for tp in m.assigned.iter().chain(&m.revoking) {
                assert!(may_hold.insert(tp.clone()), "{tp} held twice: {desc:#?}");
            }
        }
        let mut held = BTreeSet::new();
        for c in &self.clients {
            let m = desc
                .members
                .iter()
                .find(|m| m.member_id == c.member_id)
                .expect("live client is a member");
            for tp in &c.owned {
                assert!(held.insert(tp.clone()), "{tp} consumed twice");
                assert!(
                    m.assigned.contains(tp) || m.revoking.contains(tp),
                    "{tp} held by {} unbeknownst to the coordinator",
                    c.member_id
                );
            }
        }
    }

    /// Property (2): after convergence every partition of every subscribed,
    /// existing topic is assigned to exactly one subscriber.
    fn check_converged(&self) {
        let desc = self.describe();
        if desc.members.is_empty() {
            assert_eq!(desc.state, GroupState::Empty);
            return;
        }
        assert_eq!(desc.state, GroupState::Stable, "{desc:#?}");
        let subscribed: BTreeSet<&String> = self.clients.iter().flat_map(|c| &c.topics).collect();
        let mut expected = BTreeSet::new();
        for t in subscribed {
            let n = lookup(&self.topics)(t).unwrap_or(0);
            expected.extend((0..n).map(|p| tp(t, p)));
        }
        let owners = self.owners();
        assert_eq!(owners.keys().cloned().collect::<BTreeSet<_>>(), expected);
        for (tp, owner) in &owners {
            let c = self
                .clients
                .iter()
                .find(|c| c.member_id == *owner)
                .expect("owner is a client");
            assert!(
                c.topics.contains(&tp.topic),
                "{tp} given to a non-subscriber"
            );
        }
        for m in &desc.members {
            assert!(m.revoking.is_empty());
        }
        // Balance where the strategy promises it.
        let homogeneous = self.clients.windows(2).all(|w| w[0].topics == w[1].topics);
        if homogeneous && self.strategy != Strategy::Range {
            let loads: Vec<usize> = desc.members.iter().map(|m| m.assigned.len()).collect();
            let (lo, hi) = (loads.iter().min(), loads.iter().max());
            assert!(hi.zip(lo).is_none_or(|(h, l)| h - l <= 1), "{loads:?}");
        }
    }

    fn rounds_to_converge(&self) -> usize {
        if self.clients.iter().any(|c| c.lag) {
            4
        } else {
            3
        }
    }

    /// Property (2): with no membership change, every client heartbeating
    /// [`Self::rounds_to_converge`] times, each round in any order (drawn
    /// from `seed`), converges the group.
    fn settle(&mut self, mut seed: u64) {
        if self.coord.describe(G).is_none() {
            return;
        }
        for _ in 0..self.rounds_to_converge() {
            let mut order: Vec<usize> = (0..self.clients.len()).collect();
            for i in (1..order.len()).rev() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                order.swap(i, (seed % (i as u64 + 1)) as usize);
            }
            for i in order {
                self.heartbeat(i);
                self.check_exclusive();
            }
        }
        self.check_converged();
    }
}

// ---------------------------------------------------------------- assignors

#[test]
fn range_matches_kafka_docs() {
    let s = subs(&[("C0", &["t0", "t1"]), ("C1", &["t0", "t1"])]);
    let out = assignor::range(&s, &counts(&[("t0", 3), ("t1", 3)]));
    assert_eq!(
        sorted(&out["C0"]),
        tps(&[("t0", 0), ("t0", 1), ("t1", 0), ("t1", 1)])
    );
    assert_eq!(sorted(&out["C1"]), tps(&[("t0", 2), ("t1", 2)]));
}

#[test]
fn range_per_topic_subscribers() {
    // t1 only has C1 and C2: its ranges are split between them alone.
    let s = subs(&[("C0", &["t0"]), ("C1", &["t0", "t1"]), ("C2", &["t1"])]);
    let out = assignor::range(&s, &counts(&[("t0", 5), ("t1", 2)]));
    assert_eq!(sorted(&out["C0"]), tps(&[("t0", 0), ("t0", 1), ("t0", 2)]));
    assert_eq!(sorted(&out["C1"]), tps(&[("t0", 3), ("t0", 4), ("t1", 0)]));
    assert_eq!(sorted(&out["C2"]), tps(&[("t1", 1)]));
}

#[test]
fn round_robin_matches_kafka_docs() {
    let s = subs(&[("C0", &["t0", "t1"]), ("C1", &["t0", "t1"])]);
    let out = assignor::round_robin(&s, &counts(&[("t0", 3), ("t1", 3)]));
    assert_eq!(sorted(&out["C0"]), tps(&[("t0", 0), ("t0", 2), ("t1", 1)]));
    assert_eq!(sorted(&out["C1"]), tps(&[("t0", 1), ("t1", 0), ("t1", 2)]));

    // Kafka's example with different subscriptions.
    let s = subs(&[
        ("C0", &["t0"]),
        ("C1", &["t0", "t1"]),
        ("C2", &["t0", "t1", "t2"]),
    ]);
    let out = assignor::round_robin(&s, &counts(&[("t0", 1), ("t1", 2), ("t2", 3)]));
    assert_eq!(sorted(&out["C0"]), tps(&[("t0", 0)]));
    assert_eq!(sorted(&out["C1"]), tps(&[("t1", 0)]));
    assert_eq!(
        sorted(&out["C2"]),
        tps(&[("t1", 1), ("t2", 0), ("t2", 1), ("t2", 2)])
    );
}

#[test]
fn sticky_keeps_and_balances() {
    let s = subs(&[("a", &["t"]), ("b", &["t"]), ("c", &["t"])]);
    let c = counts(&[("t", 6)]);
    let first = assignor::sticky(&s, &c, &Assignment::new());
    assert!(first.values().all(|set| set.len() == 2));
    // c leaves: a and b keep theirs and split c's.
    let s2 = subs(&[("a", &["t"]), ("b", &["t"])]);
    let second = assignor::sticky(&s2, &c, &first);
    assert!(first["a"].is_subset(&second["a"]));
    assert!(first["b"].is_subset(&second["b"]));
    assert_eq!(second["a"].len() + second["b"].len(), 6);
    assert_eq!(second["a"].len(), 3);
    // An invalid current assignment (unknown partitions, duplicates) is cleaned.
    let mut bad = Assignment::new();
    bad.insert("a".into(), [tp("t", 0), tp("t", 9), tp("x", 0)].into());
    bad.insert("b".into(), [tp("t", 0), tp("t", 1)].into());
    let third = assignor::sticky(&s2, &c, &bad);
    assert!(third["a"].contains(&tp("t", 0)));
    assert!(third["b"].contains(&tp("t", 1)));
    assert_eq!(third["a"].len(), 3);
    assert_eq!(third["b"].len(), 3);
}

#[test]
fn strategy_names_round_trip() {
    for s in [Strategy::Range, Strategy::RoundRobin, Strategy::Sticky] {
        assert_eq!(Strategy::from_name(s.name()), Some(s));
    }
    assert_eq!(Strategy::from_name("uniform"), Some(Strategy::Sticky));
    assert_eq!(Strategy::from_name("nope"), None);
}

fn arb_assignor_input() -> impl PropStrategy<
    Value = (
        BTreeMap<String, BTreeSet<String>>,
        BTreeMap<String, u32>,
        Assignment,
    ),
> {
    let topics = prop::collection::vec(0u32..=12, 1..=3);
    let members = prop::collection::vec(prop::collection::btree_set(0usize..3, 0..=3), 1..=8);
    let current = prop::collection::vec(
        prop::collection::btree_set((0usize..3, 0u32..14), 0..10),
        0..=8,
    );
    (topics, members, current).prop_map(|(topics, members, current)| {
        let counts: BTreeMap<String, u32> = topics
            .iter()
            .enumerate()
            .map(|(i, &c)| (format!("t{i}"), c))
            .collect();
        let subs: BTreeMap<String, BTreeSet<String>> = members
            .iter()
            .enumerate()
            .map(|(i, ts)| {
                (
                    format!("m{i}"),
                    ts.iter().map(|t| format!("t{t}")).collect(),
                )
            })
            .collect();
        let current: Assignment = current
            .iter()
            .enumerate()
            .map(|(i, set)| {
                let set = set.iter().map(|&(t, p)| tp(&format!("t{t}"), p)).collect();
                (format!("m{i}"), set)
            })
            .collect();
        (subs, counts, current)
    })
}

/// Every strategy's output is a valid assignment.
fn check_valid(
    s: &BTreeMap<String, BTreeSet<String>>,
    c: &BTreeMap<String, u32>,
    out: &Assignment,
) {
    assert_eq!(out.keys().collect::<Vec<_>>(), s.keys().collect::<Vec<_>>());
    let mut seen = BTreeSet::new();
    for (m, set) in out {
        for tp in set {
            assert!(s[m].contains(&tp.topic), "{tp} to non-subscriber {m}");
            assert!(tp.partition < c.get(&tp.topic).copied().unwrap_or(0));
            assert!(seen.insert(tp.clone()), "{tp} twice");
        }
    }
    let subscribed: BTreeSet<&String> = s.values().flatten().collect();
    let expected: usize = subscribed
        .iter()
        .map(|t| c.get(*t).copied().unwrap_or(0) as usize)
        .sum();
    assert_eq!(seen.len(), expected);
}

/// The most partitions `sticky` can keep when everyone subscribes the same
/// topics: quotas `floor`/`ceil`, the larger ones to the members holding most.
fn optimal_kept(mut valid_current: Vec<usize>, total: usize) -> usize {
    let n = valid_current.len();
    valid_current.sort_unstable_by(|a, b| b.cmp(a));
    let (q, r) = (total / n, total % n);
    valid_current
        .iter()
        .enumerate()
        .map(|(i, &c)| c.min(q + usize::from(i < r)))
        .sum()
}

proptest! {
    #[test]
    fn assignors_are_valid((s, c, current) in arb_assignor_input()) {
        for strategy in [Strategy::Range, Strategy::RoundRobin, Strategy::Sticky] {
            let out = assignor::assign(strategy, &s, &c, &current);
            check_valid(&s, &c, &out);
            prop_assert_eq!(&out, &assignor::assign(strategy, &s, &c, &current));
        }
    }

    #[test]
    fn sticky_balances_same_subscriptions((s, c, current) in arb_assignor_input()) {
        let out = assignor::sticky(&s, &c, &current);
        for (a, ta) in &s {
            for (b, tb) in &s {
                if ta == tb {
                    prop_assert!(out[a].len() <= out[b].len() + 1, "{:?}", out);
                }
            }
        }
    }

    #[test]
    fn sticky_moves_the_minimum_for_one_subscription(
        (s, c, current) in arb_assignor_input(),
        topics in prop::collection::btree_set(0usize..3, 1..=3),
    ) {
        let topics: BTreeSet<String> = topics.iter().map(|t| format!("t{t}")).collect();
        let s: BTreeMap<String, BTreeSet<String>> =
            s.keys().map(|m| (m.clone(), topics.clone())).collect();
        let out = assignor::sticky(&s, &c, &current);
        check_valid(&s, &c, &out);
        // What each member could keep: its valid partitions, first claim wins.
        let mut claimed = BTreeSet::new();
        let mut valid = Vec::new();
        let mut kept = 0;
        for m in s.keys() {
            let mine: Vec<&TopicPartition> = current.get(m).map_or(Vec::new(), |set| {
                set.iter()
                    .filter(|tp| topics.contains(&tp.topic)
                        && tp.partition < c.get(&tp.topic).copied().unwrap_or(0)
                        && claimed.insert((*tp).clone()))
                    .collect()
            });
            valid.push(mine.len());
            kept += mine.iter().filter(|tp| out[m].contains(**tp)).count();
        }
        let total: usize = out.values().map(BTreeSet::len).sum();
        prop_assert_eq!(kept, optimal_kept(valid, total));
    }
}

// ------------------------------------------------------------- coordinator

#[test]
fn join_heartbeat_leave_lifecycle() {
    let mut sim = Sim::new(Strategy::Sticky, vec![4]);
    let a = sim.join(&["t0".into()], false, 1_000);
    assert_eq!(sim.describe().state, GroupState::Reconciling);
    let r = sim.heartbeat(a);
    assert_eq!(r.assigned.len(), 4);
    assert_eq!(r.member_epoch, 2);
    assert_eq!(r.group_epoch, 1);
    assert_eq!(sim.describe().state, GroupState::Stable);
    // A heartbeat that changes nothing keeps the epoch.
    assert_eq!(sim.heartbeat(a).member_epoch, 2);

    let b = sim.join(&["t0".into()], false, 1_000);
    // b is blocked until a has released.
    assert!(sim.heartbeat(b).assigned.is_empty());
    let r = sim.heartbeat(a);
    assert_eq!(r.assigned.len(), 2);
    assert_eq!(r.revoke.len(), 2);
    assert_eq!(r.group_epoch, 2);
    sim.check_exclusive();
    // a's release is confirmed with its next heartbeat; then b gets them.
    assert!(sim.heartbeat(b).assigned.is_empty());
    let r = sim.heartbeat(a);
    assert!(r.revoke.is_empty());
    assert_eq!(sim.heartbeat(b).assigned.len(), 2);
    sim.check_converged();

    sim.leave(a);
    let r = sim.heartbeat(0);
    assert_eq!(r.assigned.len(), 4);
    sim.check_converged();
    sim.leave(0);
    let d = sim.describe();
    assert_eq!(d.state, GroupState::Empty);
    assert_eq!(d.strategy, None);
    assert!(sim.coord.is_empty(G));
    assert_eq!(sim.coord.list(), vec![G.to_owned()]);
    sim.coord.delete(G).expect("delete empty group");
    assert!(sim.coord.list().is_empty());
    assert_eq!(sim.coord.delete(G), Err(GroupError::UnknownGroup));
}

#[test]
fn errors() {
    let mut c = GroupCoordinator::new();
    let none = |_: &str| None;
    let mut req = request("x", &["t"], Strategy::Range);
    req.session_timeout_ms = MIN_SESSION_TIMEOUT_MS - 1;
    let invalid = Err(GroupError::InvalidSessionTimeout {
        min: MIN_SESSION_TIMEOUT_MS,
        max: MAX_SESSION_TIMEOUT_MS,
    });
    assert_eq!(c.join(G, req.clone(), 0, &none), invalid);
    req.session_timeout_ms = MAX_SESSION_TIMEOUT_MS + 1;
    assert_eq!(c.join(G, req, 0, &none), invalid);
    assert!(c.list().is_empty(), "a failed join creates no group");

    let j = c
        .join(G, request("x", &["t"], Strategy::Range), 0, &none)
        .unwrap();
    assert_eq!(j.member_id, "x-1");
    assert_eq!(
        c.join(G, request("y", &["t"], Strategy::Sticky), 0, &none),
        Err(GroupError::InconsistentStrategy)
    );
    assert_eq!(c.delete(G), Err(GroupError::NotEmpty));
    assert_eq!(
        c.heartbeat(G, "nobody", 1, &[], 0, &none),
        Err(GroupError::UnknownMember)
    );
    assert_eq!(
        c.heartbeat("other", &j.member_id, 1, &[], 0, &none),
        Err(GroupError::UnknownGroup)
    );
    assert_eq!(
        c.heartbeat(G, &j.member_id, 2, &[], 0, &none),
        Err(GroupError::FencedMemberEpoch { current: 1, got: 2 })
    );
    assert_eq!(c.leave(G, "nobody"), Err(GroupError::UnknownMember));
    assert_eq!(c.leave("other", "x"), Err(GroupError::UnknownGroup));
    // Once the last member left, another strategy is fine.
    c.leave(G, &j.member_id).unwrap();
    let j = c
        .join(G, request("", &["t"], Strategy::Sticky), 0, &none)
        .unwrap();
    assert_eq!(j.member_id, "member-2");
}

#[test]
fn fencing_of_stale_epochs() {
    let mut sim = Sim::new(Strategy::Sticky, vec![2]);
    let a = sim.join(&["t0".into()], false, 1_000);
    let id = sim.clients[a].member_id.clone();
    sim.heartbeat(a); // epoch 2, {0, 1}
    let b = sim.join(&["t0".into()], false, 1_000);
    sim.heartbeat(b);
    sim.heartbeat(a); // epoch 3, {0} (1 revoking)
    // Previous epoch (2) accepted, older (1) and newer (4) fenced.
    let hb =
        |c: &mut GroupCoordinator, e| c.heartbeat(G, &id, e, &tps(&[("t0", 0)]), 0, &lookup(&[2]));
    assert!(hb(&mut sim.coord, 2).is_ok());
    assert_eq!(
        hb(&mut sim.coord, 1),
        Err(GroupError::FencedMemberEpoch { current: 3, got: 1 })
    );
    assert_eq!(
        hb(&mut sim.coord, 4),
        Err(GroupError::FencedMemberEpoch { current: 3, got: 4 })
    );
}

#[test]
fn commit_validation() {
    let mut sim = Sim::new(Strategy::Range, vec![2]);
    // A group that does not exist, or has no members, takes simple commits.
    assert_eq!(sim.coord.validate_commit(G, "", 0, &tp("t0", 0)), Ok(()));
    sim.coord.ensure_group(G).unwrap();
    assert_eq!(sim.describe().state, GroupState::Empty);
    assert_eq!(sim.coord.validate_commit(G, "", 0, &tp("t0", 0)), Ok(()));

    let a = sim.join(&["t0".into()], false, 1_000);
    let id = sim.clients[a].member_id.clone();
    let r = sim.heartbeat(a);
    let e = r.member_epoch;
    assert_eq!(sim.coord.validate_commit(G, &id, e, &tp("t0", 1)), Ok(()));
    // Stale epoch refused (property 6).
    assert_eq!(
        sim.coord.validate_commit(G, &id, e - 1, &tp("t0", 1)),
        Err(GroupError::FencedMemberEpoch {
            current: e,
            got: e - 1
        })
    );
    assert_eq!(
        sim.coord.validate_commit(G, &id, e, &tp("t0", 5)),
        Err(GroupError::NotAssigned(tp("t0", 5)))
    );
    assert_eq!(
        sim.coord.validate_commit(G, "", 0, &tp("t0", 0)),
        Err(GroupError::UnknownMember)
    );
    assert_eq!(
        sim.coord.validate_commit(G, "ghost", e, &tp("t0", 0)),
        Err(GroupError::UnknownMember)
    );
    assert_eq!(
        sim.coord.validate_commit("other", &id, e, &tp("t0", 0)),
        Err(GroupError::UnknownGroup)
    );

    // A member told to revoke may still commit the partition with the new
    // epoch until it reports the release; its old epoch is refused.
    sim.join(&["t0".into()], false, 1_000);
    let r = sim.heartbeat(a);
    assert_eq!(r.revoke, tps(&[("t0", 1)]));
    let e2 = r.member_epoch;
    assert_eq!(sim.coord.validate_commit(G, &id, e2, &tp("t0", 1)), Ok(()));
    assert!(sim.coord.validate_commit(G, &id, e, &tp("t0", 1)).is_err());
    sim.heartbeat(a);
    assert_eq!(
        sim.coord.validate_commit(G, &id, e2, &tp("t0", 1)),
        Err(GroupError::NotAssigned(tp("t0", 1)))
    );
}

#[test]
fn session_expiry_moves_partitions() {
    let mut sim = Sim::new(Strategy::Sticky, vec![6]);
    let a = sim.join(&["t0".into()], false, 500);
    let b = sim.join(&["t0".into()], false, 500);
    sim.rounds(3);
    sim.check_converged();
    let b_id = sim.clients[b].member_id.clone();
    let b_had = sim.assigned()[&b_id].clone();
    assert_eq!(b_had.len(), 3);
    assert_eq!(sim.coord.next_expiry_ms(), Some(501));

    // Only a heartbeats; b falls silent.
    sim.now = 400;
    sim.heartbeat(a);
    sim.now = 500;
    assert!(
        sim.expire().is_empty(),
        "exactly the timeout is not expired"
    );
    assert_eq!(sim.coord.next_expiry_ms(), Some(501));
    sim.now = 501;
    assert_eq!(sim.expire(), vec![(G.to_owned(), b_id)]);
    let r = sim.heartbeat(0);
    assert_eq!(r.assigned.len(), 6);
    assert!(b_had.iter().all(|tp| r.assigned.contains(tp)));
    sim.check_converged();
    assert_eq!(sim.coord.next_expiry_ms(), Some(1_002));
}

#[test]
fn extra_members_get_nothing() {
    // Property (3): with P < N, N - P members are idle, for every strategy.
    for strategy in [Strategy::Range, Strategy::RoundRobin, Strategy::Sticky] {
        let mut sim = Sim::new(strategy, vec![3]);
        for _ in 0..5 {
            sim.join(&["t0".into()], false, 1_000);
        }
        sim.rounds(3);
        sim.check_converged();
        let loads: Vec<usize> = sim.assigned().values().map(BTreeSet::len).collect();
        assert_eq!(loads.iter().filter(|&&l| l == 1).count(), 3, "{strategy:?}");
        assert_eq!(loads.iter().filter(|&&l| l == 0).count(), 2, "{strategy:?}");
    }
}

#[test]
fn range_through_the_coordinator() {
    let mut sim = Sim::new(Strategy::Range, vec![3, 3]);
    let ts = ["t0".to_owned(), "t1".to_owned()];
    let m1 = sim.join(&ts, false, 1_000);
    let m2 = sim.join(&ts, false, 1_000);
    sim.rounds(3);
    let assigned = sim.assigned();
    assert_eq!(
        sorted(&assigned[&sim.clients[m1].member_id]),
        tps(&[("t0", 0), ("t0", 1), ("t1", 0), ("t1", 1)])
    );
    assert_eq!(
        sorted(&assigned[&sim.clients[m2].member_id]),
        tps(&[("t0", 2), ("t1", 2)])
    );
}

#[test]
fn topics_appearing_and_growing_are_picked_up() {
    let mut sim = Sim::new(Strategy::RoundRobin, vec![0, 2]);
    let a = sim.join(&["t0".into(), "t1".into()], false, 1_000);
    let r = sim.heartbeat(a);
    assert_eq!(r.assigned, tps(&[("t1", 0), ("t1", 1)]));
    sim.topics[0] = 1; // t0 created
    let r = sim.heartbeat(a);
    assert_eq!(r.group_epoch, 2);
    assert_eq!(r.assigned, tps(&[("t0", 0), ("t1", 0), ("t1", 1)]));
    sim.topics[1] = 3; // t1 grown
    let r = sim.heartbeat(a);
    assert_eq!(r.group_epoch, 3);
    assert_eq!(r.assigned.len(), 4);
    sim.topics[0] = 0; // t0 deleted: revoked
    let r = sim.heartbeat(a);
    assert_eq!(r.revoke, tps(&[("t0", 0)]));
    assert_eq!(r.assigned.len(), 3);
    sim.heartbeat(a);
    sim.check_converged();
}

#[test]
fn stray_claims_are_revoked_not_recorded() {
    let mut sim = Sim::new(Strategy::Sticky, vec![2]);
    let a = sim.join(&["t0".into()], false, 1_000);
    let b = sim.join(&["t0".into()], false, 1_000);
    sim.rounds(3);
    sim.check_converged();
    // b claims a's partition as well; it is told to drop it, and a keeps it.
    let c = &sim.clients[b];
    let a_part = sim.clients[a].owned.clone();
    let mut claim = c.owned.clone();
    claim.extend(a_part.clone());
    let r = sim
        .coord
        .heartbeat(G, &c.member_id, c.epoch, &claim, 0, &lookup(&[2]))
        .unwrap();
    assert_eq!(r.revoke, a_part);
    assert!(sim.describe().members.iter().all(|m| m.revoking.is_empty()));
}

#[test]
fn group_and_member_limits() {
    let mut c = GroupCoordinator::new();
    let none = |_: &str| None;
    for i in 0..MAX_MEMBERS_PER_GROUP {
        c.join(
            G,
            request(&format!("c{i}"), &["t"], Strategy::Sticky),
            0,
            &none,
        )
        .unwrap();
    }
    assert_eq!(
        c.join(G, request("x", &["t"], Strategy::Sticky), 0, &none),
        Err(GroupError::TooManyMembers)
    );
    for i in 1..MAX_GROUPS {
        c.ensure_group(&format!("g{i}")).unwrap();
    }
    assert_eq!(c.ensure_group("one-more"), Err(GroupError::TooManyGroups));
    assert_eq!(
        c.join("one-more", request("x", &["t"], Strategy::Sticky), 0, &none),
        Err(GroupError::TooManyGroups)
    );
    assert!(c.ensure_group("g1").is_ok(), "existing group is fine");
}

#[test]
fn sticky_join_moves_only_what_balance_requires() {
    // Property (4), one example: 3 members, 7 partitions; a 4th joins and
    // takes floor(7 / 4) = 1 partition; nothing else moves.
    let mut sim = Sim::new(Strategy::Sticky, vec![4, 3]);
    let ts = ["t0".to_owned(), "t1".to_owned()];
    for _ in 0..3 {
        sim.join(&ts, false, 1_000);
    }
    sim.rounds(3);
    sim.check_converged();
    let before = sim.owners();
    sim.join(&ts, false, 1_000);
    sim.rounds(3);
    sim.check_converged();
    let after = sim.owners();
    let moved = before.iter().filter(|(tp, m)| after[*tp] != **m).count();
    assert_eq!(moved, 1);
}

#[test]
fn a_receiver_ahead_of_its_giver_needs_a_third_heartbeat() {
    // Range, t0 grows from 4 to 6: partition 2 moves from the second member
    // to the first. Round 1: the giver is told to revoke; round 2: the
    // receiver (heartbeating first) still waits, the giver confirms; round 3:
    // the receiver gets it.
    let mut sim = Sim::new(Strategy::Range, vec![4]);
    let first = sim.join(&["t0".into()], false, 1_000);
    sim.join(&["t0".into()], false, 1_000);
    sim.rounds(3);
    sim.check_converged();
    sim.topics[0] = 6;
    sim.rounds(2);
    assert_eq!(sim.describe().state, GroupState::Reconciling);
    assert!(!sim.clients[first].owned.contains(&tp("t0", 2)));
    sim.rounds(1);
    sim.check_converged();
    assert_eq!(
        sim.clients[first].owned,
        tps(&[("t0", 0), ("t0", 1), ("t0", 2)])
    );
}

// ----------------------------------------------------------- random runs

#[derive(Debug, Clone)]
enum Op {
    Join {
        topics: BTreeSet<usize>,
        lag: bool,
        timeout: u64,
    },
    Heartbeat(usize),
    Leave(usize),
    Advance(u64),
    Grow {
        topic: usize,
        by: u32,
    },
    /// Heartbeat everyone until converged, in orders drawn from the seed.
    Settle(u64),
}

fn arb_op() -> impl PropStrategy<Value = Op> {
    prop_oneof![
        3 => (prop::collection::btree_set(0usize..3, 1..=3), any::<bool>(), 100u64..=1_000)
            .prop_map(|(topics, lag, timeout)| Op::Join { topics, lag, timeout }),
        8 => any::<usize>().prop_map(Op::Heartbeat),
        1 => any::<usize>().prop_map(Op::Leave),
        1 => (0u64..600).prop_map(Op::Advance),
        1 => (0usize..3, 1u32..=4).prop_map(|(topic, by)| Op::Grow { topic, by }),
        1 => (1u64..).prop_map(Op::Settle),
    ]
}

fn arb_strategy() -> impl PropStrategy<Value = Strategy> {
    prop_oneof![
        Just(Strategy::Range),
        Just(Strategy::RoundRobin),
        Just(Strategy::Sticky),
    ]
}

/// Applies `ops`, checking exclusivity after each, then settles.
fn run(strategy: Strategy, topics: Vec<u32>, ops: &[Op], lagging: bool, seed: u64) {
    let names: Vec<String> = (0..topics.len()).map(|i| format!("t{i}")).collect();
    let mut sim = Sim::new(strategy, topics);
    for op in ops {
        match op {
            Op::Join {
                topics,
                lag,
                timeout,
            } => {
                let ts: Vec<String> = topics
                    .iter()
                    .filter_map(|&t| names.get(t).cloned())
                    .collect();
                sim.join(&ts, lagging && *lag, *timeout);
            }
            Op::Heartbeat(i) if !sim.clients.is_empty() => {
                let i = i % sim.clients.len();
                sim.heartbeat(i);
            }
            Op::Leave(i) if !sim.clients.is_empty() => sim.leave(i % sim.clients.len()),
            Op::Advance(ms) => {
                sim.now += ms;
                sim.expire();
            }
            Op::Grow { topic, by } => {
                if let Some(c) = sim.topics.get_mut(*topic) {
                    *c = (*c + by).min(12);
                }
            }
            Op::Settle(seed) => sim.settle(*seed),
            Op::Heartbeat(_) | Op::Leave(_) => {}
        }
        sim.check_exclusive();
    }
    sim.settle(seed);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_runs_well_behaved(
        strategy in arb_strategy(),
        topics in prop::collection::vec(1u32..=12, 1..=3),
        ops in prop::collection::vec(arb_op(), 0..60),
        seed in 1u64..,
    ) {
        run(strategy, topics, &ops, false, seed);
    }

    #[test]
    fn random_runs_with_lagging_clients(
        strategy in arb_strategy(),
        topics in prop::collection::vec(0u32..=12, 1..=3),
        ops in prop::collection::vec(arb_op(), 0..60),
        seed in 1u64..,
    ) {
        run(strategy, topics, &ops, true, seed);
    }

    /// Property (4): a member joining a stable sticky group of N (all on the
    /// same topics, P partitions) takes floor(P / (N + 1)); nothing else
    /// moves. A member leaving moves exactly its own partitions.
    #[test]
    fn sticky_membership_changes_move_the_minimum(
        topics in prop::collection::vec(1u32..=12, 1..=3),
        n in 1usize..=8,
        leaver in any::<usize>(),
    ) {
        let names: Vec<String> = (0..topics.len()).map(|i| format!("t{i}")).collect();
        let total: u32 = topics.iter().sum();
        let mut sim = Sim::new(Strategy::Sticky, topics);
        for _ in 0..n {
            sim.join(&names, false, 1_000);
        }
        sim.rounds(3);
        sim.check_converged();
        let before = sim.owners();
        let joiner = sim.join(&names, false, 1_000);
        sim.rounds(3);
        sim.check_converged();
        let after = sim.owners();
        let moved = before.iter().filter(|(tp, m)| after[*tp] != **m).count();
        prop_assert_eq!(moved, total as usize / (n + 1));
        let joined = &sim.clients[joiner].member_id;
        prop_assert!(after.iter().filter(|(_, m)| *m == joined).count() == moved);

        let leaver = leaver % sim.clients.len();
        let gone = sim.clients[leaver].member_id.clone();
        let had = after.values().filter(|m| **m == gone).count();
        sim.leave(leaver);
        sim.rounds(3);
        sim.check_converged();
        let last = sim.owners();
        let moved = after.iter().filter(|(tp, m)| last[*tp] != **m).count();
        prop_assert_eq!(moved, had);
    }
}
