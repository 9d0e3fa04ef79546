//! Goodput, request by request: whether a finished request met every latency criterion that
//! applies to its target and class (the SLO's upper-bound latency assertions).

use std::time::Duration;

use crate::record::RequestRecord;

use super::spec::Comparison;

/// A latency a single request has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PerRequest {
    Ttft,
    TtftCorrected,
    Ttfb,
    TimeToFirstEvent,
    TimeToFirstAnswer,
    /// The mean of the request's inter-token gaps.
    Itl,
    Tpot,
    E2e,
    E2eCorrected,
}

impl PerRequest {
    pub(super) fn from_name(name: &str) -> Option<PerRequest> {
        Some(match name {
            "ttft" => PerRequest::Ttft,
            "ttft_corrected" => PerRequest::TtftCorrected,
            "ttfb" => PerRequest::Ttfb,
            "time_to_first_event" => PerRequest::TimeToFirstEvent,
            "time_to_first_answer" => PerRequest::TimeToFirstAnswer,
            "itl" => PerRequest::Itl,
            "tpot" => PerRequest::Tpot,
            "e2e" => PerRequest::E2e,
            "e2e_corrected" => PerRequest::E2eCorrected,
            _ => return None,
        })
    }

    fn of(self, record: &RequestRecord) -> Option<Duration> {
        match self {
            PerRequest::Ttft => record.ttft(),
            PerRequest::TtftCorrected => record.ttft_corrected(),
            PerRequest::Ttfb => record.ttfb(),
            PerRequest::TimeToFirstEvent => record.time_to_first_event(),
            PerRequest::TimeToFirstAnswer => record.time_to_first_answer(),
            PerRequest::Itl => {
                let gaps = u32::try_from(record.token_gaps.len()).ok()?;
                (gaps > 0).then(|| record.token_gaps.iter().sum::<Duration>() / gaps)
            }
            PerRequest::Tpot => record.tpot(),
            PerRequest::E2e => Some(record.e2e()),
            PerRequest::E2eCorrected => Some(record.e2e_corrected()),
        }
    }
}

/// One per-request criterion of goodput, scoped like its assertion.
#[derive(Debug, Clone, PartialEq)]
pub struct GoodCriterion {
    pub target: Option<String>,
    pub class: Option<String>,
    pub metric: PerRequest,
    pub comparison: Comparison,
    pub threshold_ms: f64,
}

/// Decides, request by request, whether it was "good": successful and within every latency
/// criterion that applies to its target and class. A missing latency (a non-streamed request
/// has no TTFT) does not meet its criterion.
#[derive(Debug, Clone, Default)]
pub struct GoodputJudge {
    /// Per target, per class: the criteria that apply.
    criteria: Vec<Vec<Vec<GoodCriterion>>>,
}

impl GoodputJudge {
    pub fn new(criteria: &[GoodCriterion], targets: &[String], classes: &[String]) -> Self {
        let criteria = targets
            .iter()
            .map(|target| {
                classes
                    .iter()
                    .map(|class| {
                        criteria
                            .iter()
                            .filter(|c| c.target.as_ref().is_none_or(|t| t == target))
                            .filter(|c| c.class.as_ref().is_none_or(|k| k == class))
                            .cloned()
                            .collect()
                    })
                    .collect()
            })
            .collect();
        GoodputJudge { criteria }
    }

    /// Whether any criterion exists (else goodput is not tracked).
    pub fn is_active(&self) -> bool {
        self.criteria.iter().flatten().any(|c| !c.is_empty())
    }

    pub fn is_good(&self, record: &RequestRecord) -> bool {
        if record.outcome.is_err() {
            return false;
        }
        let Some(criteria) = self
            .criteria
            .get(record.target)
            .and_then(|t| t.get(record.class))
        else {
            return true;
        };
        criteria.iter().all(|c| {
            c.metric.of(record).is_some_and(|value| {
                c.comparison
                    .holds(value.as_secs_f64() * 1000.0, c.threshold_ms)
            })
        })
    }
}
