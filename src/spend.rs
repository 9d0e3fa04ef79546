//! The spend guard: what a run will cost before it starts, and a cap it cannot pass.
//!
//! **Projection** replays the scenario's requests without sending them: the same request indices,
//! classes and prompt lengths the driver will draw (all seeded), each request's input tokens
//! counted as the chat format counts them (the prompt plus 3 tokens per message and 3 to prime the
//! reply: 7 for one synthetic user message) and its output at the class's `max_tokens` (an upper
//! bound; 1,024 assumed when a class sets none), priced with the target's price.
//!
//! **Enforcement** reserves each request's projected cost before it is sent and settles the
//! reservation with the actual cost (from the response's usage) when it ends. A request whose
//! reservation would take spend past a cap waits while other requests are still in flight (their
//! settlements free room); when none is, the cap is reached: no new request starts, those in
//! flight finish, and the run ends `budget_exhausted`.
//!
//! Reservations **learn from what requests really cost**: a server may count more tokens than the
//! projection (another tokenizer, hidden system prompts, reasoning), so each target's
//! reservations are its projections times the largest actual-to-projected ratio settled so far
//! (never below 1). Spend therefore stays at most the cap plus, for the requests in flight, what
//! each cost beyond its reservation: once one request of a kind has settled, only requests that
//! overrun it by more than any before can exceed the cap, and by at most their own overrun.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::cost::TokenUsage;
use crate::scenario::{ClassPlan, RunPlan, TargetPlan};
use crate::workload::{self, PromptDraw, PromptSource, Trace};

/// Output tokens assumed for a class that sets no `max_tokens`.
pub const ASSUMED_OUTPUT_TOKENS: u64 = 1024;

/// Token sizes of requests, drawn exactly as the driver draws them.
#[derive(Debug, Clone)]
pub struct RequestSizer {
    tokenizer: crate::tokenizer::Tokenizer,
    api: crate::protocol::Api,
    /// Per class: each dataset record's input tokens, counted once.
    record_tokens: Vec<Vec<u64>>,
}

impl RequestSizer {
    pub fn new(
        classes: &[ClassPlan],
        tokenizer: crate::tokenizer::Tokenizer,
        api: crate::protocol::Api,
    ) -> Self {
        RequestSizer {
            api,
            tokenizer: tokenizer.clone(),
            record_tokens: classes
                .iter()
                .map(|class| match &class.prompt {
                    PromptSource::Dataset(source) => source
                        .data
                        .records
                        .iter()
                        .map(|record| record.input_tokens(&tokenizer) + record.image_tokens(api))
                        .collect(),
                    _ => Vec::new(),
                })
                .collect(),
        }
    }

    /// Whether some class's output size is assumed (no `max_tokens`).
    pub fn assumes_output(classes: &[ClassPlan]) -> bool {
        classes.iter().any(|c| c.max_tokens.is_none())
    }

    /// The class and token sizes of request `k`: input exact (synthetic prompts are exact by
    /// construction, records are counted), output the request's cap. A multi-turn class counts
    /// its first turn.
    pub fn size(
        &self,
        classes: &[ClassPlan],
        trace: Option<&Trace>,
        seed: u64,
        k: u64,
    ) -> (usize, TokenUsage) {
        let drawn = workload::draw(classes, trace, seed, k);
        let input = match drawn.prompt {
            PromptDraw::Record(index) if drawn.prefix.is_none() => {
                self.record_tokens[drawn.class][index]
                    + classes[drawn.class]
                        .images
                        .as_ref()
                        .map_or(0, |images| images.tokens(self.api))
            }
            _ => workload::input_tokens(classes, trace, &drawn, &self.tokenizer, self.api),
        };
        (
            drawn.class,
            TokenUsage {
                input,
                cached_input: 0,
                output: drawn.max_tokens.map_or(ASSUMED_OUTPUT_TOKENS, u64::from),
                // Not known before the answers: projected as answer tokens.
                reasoning_output: 0,
            },
        )
    }
}

/// What one target is projected to send and cost.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetProjection {
    pub target: String,
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// `None` when the target is unpriced.
    pub cost: Option<f64>,
    /// The cheapest and dearest 5% of single requests (p5, p95), when priced.
    pub request_cost_p5_p95: Option<(f64, f64)>,
}

/// What a run is projected to cost.
#[derive(Debug, Clone, PartialEq)]
pub struct RunProjection {
    pub currency: String,
    pub targets: Vec<TargetProjection>,
    /// Some class has no `max_tokens`, so its output size is assumed.
    pub output_assumed: bool,
}

impl RunProjection {
    /// The sum over priced targets.
    pub fn total(&self) -> f64 {
        self.targets.iter().filter_map(|t| t.cost).sum()
    }

    pub fn unpriced(&self) -> Vec<&str> {
        self.targets
            .iter()
            .filter(|t| t.cost.is_none())
            .map(|t| t.target.as_str())
            .collect()
    }

    /// Lines for the terminal.
    pub fn describe(&self) -> String {
        use crate::units::{money, thousands};
        let mut lines = Vec::new();
        for t in &self.targets {
            let cost = match (t.cost, t.request_cost_p5_p95) {
                (Some(cost), Some((p5, p95))) => format!(
                    "{} {} (a request {}–{} p5–p95)",
                    money(cost),
                    self.currency,
                    money(p5),
                    money(p95)
                ),
                (Some(cost), None) => format!("{} {}", money(cost), self.currency),
                (None, _) => "unpriced (its model is not in the pricing table)".into(),
            };
            lines.push(format!(
                "projection \"{}\": {} requests, {} input + {} output tokens{}: {cost}",
                t.target,
                thousands(t.requests),
                thousands(t.input_tokens),
                thousands(t.output_tokens),
                if self.output_assumed {
                    " (outputs at max_tokens, 1,024 where unset)"
                } else {
                    " (outputs at max_tokens)"
                },
            ));
        }
        if self.targets.iter().any(|t| t.cost.is_some()) {
            lines.push(format!(
                "projection total: {} {} (an upper bound: responses are projected at their max_tokens)",
                money(self.total()),
                self.currency
            ));
        } else {
            lines.push("projection total: no target is priced".into());
        }
        lines.join("\n")
    }
}

/// The requests and tokens of a whole session whose first turn has `first`'s size: turn t sends
/// t + 1 prompts of that size and the t answers before it (each at the output cap).
fn session_usage(class: &ClassPlan, first: TokenUsage) -> (u64, TokenUsage) {
    let turns = class.session.map_or(1, |s| u64::from(s.turns));
    let history_turns = turns * (turns - 1) / 2;
    (
        turns,
        TokenUsage {
            input: first.input * (turns + history_turns) + first.output * history_turns,
            cached_input: 0,
            output: first.output * turns,
            reasoning_output: first.reasoning_output * turns,
        },
    )
}

/// Why a run cannot be projected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProjectionError(pub String);

/// Planned requests walked one by one by [`project`]; a larger run is extrapolated from them.
pub const EXACT_WALK: u64 = 1_000_000;

/// Projects every target's requests, tokens and cost, in constant memory. A migration is
/// projected phase by phase (each target counting only the requests its phases send it), a
/// sweep step by step.
pub fn project(plan: &RunPlan) -> Result<RunProjection, ProjectionError> {
    // A migration is the sum of its phases, a sweep the sum of its steps: one budget covers
    // them all.
    let parts: Vec<RunPlan> = match (&plan.shadow, &plan.migration, &plan.sweep) {
        (None, Some(migration), _) => (0..migration.phases.len())
            .filter_map(|index| plan.at_phase(index))
            .collect(),
        (_, None, Some(sweep)) => sweep
            .values
            .iter()
            .map(|&value| plan.at_sweep_step(sweep.over, value, sweep.step_duration))
            .collect(),
        _ => Vec::new(),
    };
    let mut projected = parts.iter().map(project);
    if let Some(first) = projected.next() {
        return projected.try_fold(first?, |sum, part| Ok(add_projections(sum, part?)));
    }
    let mut targets = Vec::new();
    for (index, target) in plan.targets.iter().enumerate() {
        targets.push(project_target(plan, index, target)?);
    }
    Ok(RunProjection {
        currency: plan.cost.currency.clone(),
        targets,
        output_assumed: RequestSizer::assumes_output(&plan.classes),
    })
}

/// Adds one part's projection (a migration phase, a sweep step) to the sum so far.
fn add_projections(mut sum: RunProjection, part: RunProjection) -> RunProjection {
    for (total, more) in sum.targets.iter_mut().zip(part.targets) {
        total.requests += more.requests;
        total.input_tokens += more.input_tokens;
        total.output_tokens += more.output_tokens;
        total.cost = total.cost.zip(more.cost).map(|(a, b)| a + b);
        total.request_cost_p5_p95 = match (total.request_cost_p5_p95, more.request_cost_p5_p95) {
            (Some((a5, a95)), Some((b5, b95))) => Some((a5.min(b5), a95.max(b95))),
            (one, other) => one.or(other),
        };
    }
    sum
}

/// One target's projection: its planned requests walked (up to [`EXACT_WALK`], then scaled to
/// the expected count), each sized and priced as the driver will send it.
fn project_target(
    plan: &RunPlan,
    index: usize,
    target: &TargetPlan,
) -> Result<TargetProjection, ProjectionError> {
    let seed = plan.seed;
    let sizer = RequestSizer::new(&plan.classes, target.tokenizer.clone(), target.api);
    let mut projection = TargetProjection {
        target: target.name.clone(),
        requests: 0,
        input_tokens: 0,
        output_tokens: 0,
        cost: target.price.as_ref().map(|_| 0.0),
        request_cost_p5_p95: None,
    };
    // Single requests' costs in billionths, two significant digits, for the p5–p95 range.
    // (up to a million per request).
    let mut costs = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 1_000_000_000_000_000, 2)
        .expect("static bounds");
    // Past EXACT_WALK requests the walk stops, and the sums are scaled to the expected
    // count: the first requests are a fair sample of the class mix (each request's class
    // is drawn from the seed and its index alone), so a month-long soak projects in bounded
    // time.
    let mut visited = 0u64;
    let walked = crate::traffic::planned_requests(&plan.load, plan.shard, plan.seed, |k, _, _| {
        if visited >= EXACT_WALK {
            return false;
        }
        visited += 1;
        if let Some(shadow) = &plan.shadow {
            let (to_primary, to_candidate) = crate::traffic::sides_of(shadow, seed, k);
            let sent = (index != shadow.primary || to_primary)
                && (index != shadow.candidate || to_candidate);
            if !sent {
                return true;
            }
        }
        let trace = plan.load.shape.trace();
        let (class, first) = sizer.size(&plan.classes, trace, seed, k);
        let (requests, usage) = session_usage(&plan.classes[class], first);
        projection.requests += requests;
        projection.input_tokens += usage.input;
        projection.output_tokens += usage.output;
        if let (Some(total), Some(price)) = (&mut projection.cost, target.price_for(class)) {
            let cost = price.cost(&usage).total();
            *total += cost;
            costs.saturating_record(((cost * 1e9).round() as u64).max(1));
        }
        true
    });
    let Some(complete) = walked else {
        return Err(ProjectionError(
            "a closed loop bounded only by load.duration cannot be projected: its request \
             count depends on the server's speed (set load.requests)"
                .into(),
        ));
    };
    if !complete {
        let expected = plan
            .load
            .expected_requests(plan.shard)
            .unwrap_or(visited as f64);
        let scale = (expected / visited.max(1) as f64).max(1.0);
        let scaled = |n: u64| (n as f64 * scale).round() as u64;
        projection.requests = scaled(projection.requests);
        projection.input_tokens = scaled(projection.input_tokens);
        projection.output_tokens = scaled(projection.output_tokens);
        projection.cost = projection.cost.map(|c| c * scale);
    }
    if !costs.is_empty() {
        let at = |q: f64| costs.value_at_quantile(q) as f64 / 1e9;
        projection.request_cost_p5_p95 = Some((at(0.05), at(0.95)));
    }
    Ok(projection)
}

/// Spend caps, in the reporting currency.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Caps {
    pub run: Option<f64>,
    /// Per target, by index.
    pub targets: Vec<Option<f64>>,
}

#[derive(Debug, Default)]
struct State {
    spent_run: f64,
    spent: Vec<f64>,
    reserved_run: f64,
    reserved: Vec<f64>,
    /// Per target: the largest actual cost over projected cost settled so far (at least 1),
    /// which every later reservation is multiplied by.
    scale: Vec<f64>,
    /// Reservations not yet settled.
    outstanding: usize,
    alerts_crossed: Vec<f64>,
}

/// A request's reserved cost, to settle when it ends.
#[derive(Debug)]
#[must_use = "a reservation must be settled"]
pub struct Reservation {
    target: usize,
    /// What is held: the projection times the target's scale when it was taken.
    amount: f64,
    /// The request's projected cost.
    projected: f64,
}

/// The most a target's reservations are scaled up by (a server claiming a million times the
/// projection still leaves a finite reservation).
const MAX_RESERVATION_SCALE: f64 = 1e6;

/// Tracks spend against caps while a run goes on.
#[derive(Debug)]
pub struct SpendGuard {
    caps: Caps,
    /// Fractions of the run cap that print a warning when passed (e.g. 0.5, 0.8).
    alerts: Vec<f64>,
    currency: String,
    state: Mutex<State>,
    settled: tokio::sync::Notify,
    /// The run cap was reached (every target stops), or a target's own cap (that one stops).
    run_exhausted: AtomicBool,
    target_exhausted: Vec<AtomicBool>,
    /// Where a crossed alert is announced.
    notices: crate::notice::Notices,
}

impl SpendGuard {
    /// Announces crossed alerts through `notices` (by default they are dropped).
    pub fn with_notices(mut self, notices: crate::notice::Notices) -> Self {
        self.notices = notices;
        self
    }

    pub fn new(caps: Caps, alerts: Vec<f64>, currency: String, targets: usize) -> Self {
        SpendGuard {
            caps,
            alerts,
            currency,
            state: Mutex::new(State {
                spent: vec![0.0; targets],
                reserved: vec![0.0; targets],
                scale: vec![1.0; targets],
                ..State::default()
            }),
            settled: tokio::sync::Notify::new(),
            run_exhausted: AtomicBool::new(false),
            notices: crate::notice::Notices::default(),
            target_exhausted: (0..targets).map(|_| AtomicBool::new(false)).collect(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `amount` more for `target` fits under the run cap and under the target's cap.
    fn fits(&self, state: &State, target: usize, amount: f64) -> (bool, bool) {
        let run_ok = self
            .caps
            .run
            .is_none_or(|cap| state.spent_run + state.reserved_run + amount <= cap);
        let target_ok = self
            .caps
            .targets
            .get(target)
            .copied()
            .flatten()
            .is_none_or(|cap| state.spent[target] + state.reserved[target] + amount <= cap);
        (run_ok, target_ok)
    }

    /// Records which cap stopped a request.
    fn mark_exhausted(&self, target: usize, (run_ok, _): (bool, bool)) {
        if run_ok {
            if let Some(flag) = self.target_exhausted.get(target) {
                flag.store(true, Ordering::Relaxed);
            }
        } else {
            self.run_exhausted.store(true, Ordering::Relaxed);
        }
    }

    /// Whether requests to `target` may no longer start.
    fn stopped(&self, target: usize) -> bool {
        self.run_exhausted.load(Ordering::Relaxed)
            || self
                .target_exhausted
                .get(target)
                .is_some_and(|f| f.load(Ordering::Relaxed))
    }

    /// What a request projected at `projected` holds: the projection times what the target's
    /// requests have cost beyond their projections so far.
    fn held(state: &State, target: usize, projected: f64) -> f64 {
        projected * state.scale.get(target).copied().unwrap_or(1.0)
    }

    fn take(&self, state: &mut State, target: usize, projected: f64) -> Reservation {
        let amount = Self::held(state, target, projected);
        state.reserved_run += amount;
        state.reserved[target] += amount;
        state.outstanding += 1;
        Reservation {
            target,
            amount,
            projected,
        }
    }

    /// The factor `target`'s reservations are scaled by (1 until a request cost more than
    /// projected).
    pub fn reservation_scale(&self, target: usize) -> f64 {
        self.state().scale.get(target).copied().unwrap_or(1.0)
    }

    /// Reserves a request to `target` projected at `amount` without waiting; `None` when it
    /// does not fit.
    pub fn try_reserve(&self, target: usize, amount: f64) -> Option<Reservation> {
        let mut state = self.state();
        if self.stopped(target) {
            return None;
        }
        let fits = self.fits(&state, target, Self::held(&state, target, amount));
        if fits == (true, true) {
            Some(self.take(&mut state, target, amount))
        } else {
            self.mark_exhausted(target, fits);
            None
        }
    }

    /// Reserves a request projected at `amount` (scaled as [`SpendGuard::try_reserve`] says),
    /// waiting for requests in flight to settle while it does not fit; `None` once it cannot fit
    /// even with nothing in flight (the cap is reached).
    pub async fn reserve(&self, target: usize, amount: f64) -> Option<Reservation> {
        loop {
            let notified = self.settled.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut state = self.state();
                if self.stopped(target) {
                    return None;
                }
                let fits = self.fits(&state, target, Self::held(&state, target, amount));
                if fits == (true, true) {
                    return Some(self.take(&mut state, target, amount));
                }
                if state.outstanding == 0 {
                    self.mark_exhausted(target, fits);
                    self.settled.notify_waiters();
                    return None;
                }
            }
            notified.await;
        }
    }

    /// Replaces a reservation by what the request actually cost.
    pub fn settle(&self, reservation: Reservation, actual: f64) {
        let crossed = {
            let mut state = self.state();
            let t = reservation.target;
            state.reserved_run -= reservation.amount;
            state.reserved[t] -= reservation.amount;
            state.outstanding -= 1;
            state.spent_run += actual;
            state.spent[t] += actual;
            // Later reservations of this target hold at least what this one turned out to cost.
            if reservation.projected > 0.0 && actual.is_finite() {
                let ratio = (actual / reservation.projected).min(MAX_RESERVATION_SCALE);
                if let Some(scale) = state.scale.get_mut(t) {
                    *scale = scale.max(ratio);
                }
            }
            let mut crossed = Vec::new();
            if let Some(cap) = self.caps.run {
                for &alert in &self.alerts {
                    if state.spent_run >= cap * alert && !state.alerts_crossed.contains(&alert) {
                        state.alerts_crossed.push(alert);
                        crossed.push((alert, state.spent_run, cap));
                    }
                }
            }
            crossed
        };
        for (alert, spent, cap) in crossed {
            self.notices.send(&format!(
                "warning: spend passed {:.0}% of the budget: {} of {} {}",
                alert * 100.0,
                crate::units::money(spent),
                crate::units::money(cap),
                self.currency
            ));
        }
        self.settled.notify_waiters();
    }

    /// Whether a cap stopped requests from starting.
    pub fn exhausted(&self) -> bool {
        self.run_exhausted.load(Ordering::Relaxed)
            || self
                .target_exhausted
                .iter()
                .any(|f| f.load(Ordering::Relaxed))
    }

    /// Spend so far, per target and in total.
    pub fn spent(&self) -> (f64, Vec<f64>) {
        let state = self.state();
        (state.spent_run, state.spent.clone())
    }

    /// Alert thresholds passed so far.
    pub fn alerts_crossed(&self) -> Vec<f64> {
        self.state().alerts_crossed.clone()
    }

    pub fn caps(&self) -> &Caps {
        &self.caps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_projects_every_turn_with_its_history() {
        let plan = crate::scenario::parse(
            "[[targets]]\nname = \"t\"\nmodel = \"m\"\n[targets.mock]\n\n[[classes]]\nname = \"c\"\ninput_tokens = 93\nmax_tokens = 50\nturns = 3\n\n[load]\nkind = \"closed\"\nusers = 1\nrequests = 2\n",
            std::path::Path::new("s.toml"),
        )
        .unwrap();
        let projection = project(&plan).unwrap();
        let target = &projection.targets[0];
        // A turn-1 prompt is 93 + 7 = 100 tokens. Turn 1 sends 100; turn 2 100 + 50 + 100; turn 3
        // 100 + 50 + 100 + 50 + 100: 750 input and 3 × 50 output per session, two sessions.
        assert_eq!(target.requests, 6);
        assert_eq!(target.input_tokens, 1500);
        assert_eq!(target.output_tokens, 300);
    }

    #[tokio::test]
    async fn reservations_stop_at_the_cap_and_wait_for_settlements() {
        let guard = std::sync::Arc::new(SpendGuard::new(
            Caps {
                run: Some(1.0),
                targets: vec![None],
            },
            vec![0.5],
            "USD".into(),
            1,
        ));
        let a = guard.reserve(0, 0.4).await.unwrap();
        let b = guard.reserve(0, 0.4).await.unwrap();
        // 0.8 reserved: a third 0.4 does not fit yet, but waits for a settlement.
        let waiting = {
            let guard = guard.clone();
            tokio::spawn(async move { guard.reserve(0, 0.4).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        // a cost less than reserved: 0.1 spent + 0.4 reserved (b) + 0.4 fits under 1.
        guard.settle(a, 0.1);
        let c = tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("the waiting reservation is woken by the settlement")
            .unwrap()
            .expect("0.1 + 0.4 + 0.4 ≤ 1");
        guard.settle(b, 0.4);
        guard.settle(c, 0.2);
        assert_eq!(guard.alerts_crossed(), vec![0.5]);
        // 0.7 spent, nothing in flight: 0.4 can never fit.
        assert!(guard.reserve(0, 0.4).await.is_none());
        assert!(guard.exhausted());
        assert!((guard.spent().0 - 0.7).abs() < 1e-12);
    }

    #[test]
    fn reservations_learn_what_requests_really_cost() {
        let guard = SpendGuard::new(
            Caps {
                run: Some(1.0),
                targets: vec![None],
            },
            Vec::new(),
            "USD".into(),
            1,
        );
        // Projected at 0.01, a request really costs 0.1 (the server counts ten times more).
        let first = guard.try_reserve(0, 0.01).unwrap();
        guard.settle(first, 0.1);
        assert_eq!(guard.reservation_scale(0), 10.0);
        // Later requests hold 0.1 each: 9 more fit under the cap of 1 (0.1 spent), not 99.
        let held: Vec<Reservation> = (0..20).filter_map(|_| guard.try_reserve(0, 0.01)).collect();
        assert_eq!(held.len(), 9);
        for reservation in held {
            guard.settle(reservation, 0.1);
        }
        let (spent, _) = guard.spent();
        assert!((spent - 1.0).abs() < 1e-9, "{spent}");
        // A request cheaper than projected never lowers the scale.
        assert_eq!(guard.reservation_scale(0), 10.0);
    }

    #[test]
    fn a_target_cap_holds_that_target_only() {
        let guard = SpendGuard::new(
            Caps {
                run: None,
                targets: vec![Some(0.5), None],
            },
            Vec::new(),
            "USD".into(),
            2,
        );
        let r = guard.try_reserve(0, 0.5).unwrap();
        assert!(guard.try_reserve(0, 0.01).is_none());
        assert!(guard.exhausted());
        let other = guard.try_reserve(1, 100.0).unwrap();
        guard.settle(r, 0.5);
        guard.settle(other, 100.0);
    }
}
