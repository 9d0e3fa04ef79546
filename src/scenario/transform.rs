//! Plans derived from a plan: the part of it one shard runs (`--shard K/N`). See
//! [`crate::shard`] for how a load splits.

use crate::shard::{Shard, ShardError};

use super::{Endpoint, LoadShape, RunPlan};

/// The plan this shard runs: users and in-flight cap split, the embedded mocks' seed derived. Refuses splits
/// that would leave a shard with nothing to do.
pub fn apply_shard(mut plan: RunPlan, shard: Shard) -> Result<RunPlan, ShardError> {
    plan.shard = shard;
    if shard.is_whole() {
        return Ok(plan);
    }
    let n = shard.count;
    match &mut plan.load.shape {
        LoadShape::Closed { users } => {
            if *users < n {
                return Err(ShardError(format!(
                    "load.users = {users} cannot be split over {n} shards: every shard needs at \
                     least one user (use at most {users} shards or more users)"
                )));
            }
            *users = shard.share(u64::from(*users)) as u32;
        }
        LoadShape::Open { max_in_flight, .. } | LoadShape::Trace { max_in_flight, .. } => {
            if let Some(cap) = max_in_flight {
                if *cap < n {
                    return Err(ShardError(format!(
                        "load.max_in_flight = {cap} cannot be split over {n} shards: every shard \
                         needs at least one request in flight"
                    )));
                }
                *cap = shard.share(u64::from(*cap)) as u32;
            }
        }
    }
    if let Some(requests) = plan.load.requests {
        if requests < u64::from(n) {
            return Err(ShardError(format!(
                "load.requests = {requests} cannot be split over {n} shards: every shard needs \
                 at least one request"
            )));
        }
    }
    // Prompts, classes and datasets are not split: request k draws from the scenario seed and
    // the whole dataset on every shard, as the unsharded run does. An embedded mock gets the
    // shard's own seed (its latency draws are the server's, not the traffic's).
    let seed = shard.seed(plan.seed);
    for target in &mut plan.targets {
        if let Endpoint::Mock(config) = &mut target.endpoint {
            config.seed = seed;
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(dir: &std::path::Path, load: &str) -> RunPlan {
        let dataset: String = (0..10)
            .map(|i| format!("{{\"messages\":[{{\"role\":\"user\",\"content\":\"q{i}\"}}]}}\n"))
            .collect();
        std::fs::write(dir.join("d.jsonl"), dataset).unwrap();
        let text = format!(
            "name = \"s\"\n[[targets]]\nname = \"t\"\nmodel = \"m\"\n[targets.mock]\n\
             [[classes]]\nname = \"c\"\ndataset = \"d.jsonl\"\n[load]\n{load}\n"
        );
        crate::scenario::parse(&text, &dir.join("s.toml")).unwrap()
    }

    #[test]
    fn applying_a_shard_splits_users_and_sends_the_unsharded_requests() {
        let dir = tempfile::tempdir().unwrap();
        let whole = plan(dir.path(), "kind = \"closed\"\nusers = 7\nrequests = 100");
        let mut users = 0;
        let mut bodies = std::collections::BTreeMap::new();
        for index in 0..3 {
            let sharded = apply_shard(whole.clone(), Shard::new(index, 3).unwrap()).unwrap();
            let LoadShape::Closed { users: here } = sharded.load.shape else {
                panic!("closed loop expected");
            };
            users += here;
            assert_eq!(sharded.shard.index, index);
            // Shard `index` sends the global indices k ≡ index (mod 3).
            for k in (u64::from(index)..100).step_by(3) {
                bodies.insert(k, crate::driver::request_bytes(&sharded, 0, k));
            }
        }
        assert_eq!(users, 7);
        // Request k of the shards is request k of the unsharded run, body for body (the same
        // class, dataset record and output cap).
        assert_eq!(bodies.len(), 100);
        for (k, body) in &bodies {
            assert_eq!(
                body,
                &crate::driver::request_bytes(&whole, 0, *k),
                "request {k}"
            );
        }

        let error = apply_shard(whole.clone(), Shard::new(0, 8).unwrap()).unwrap_err();
        assert!(
            error
                .0
                .contains("load.users = 7 cannot be split over 8 shards"),
            "{error}"
        );
        let error = apply_shard(whole, Shard::new(0, 11).unwrap()).unwrap_err();
        assert!(error.0.contains("users"), "{error}");
        let open = plan(
            dir.path(),
            "kind = \"open\"\nrate = 5\nrequests = 3\nmax_in_flight = 8",
        );
        let error = apply_shard(open, Shard::new(0, 4).unwrap()).unwrap_err();
        assert!(error.0.contains("load.requests = 3"), "{error}");
    }
}
