//! Money: pricing tables (list prices per 1M tokens per model, discounts per request mode), a
//! target's bill (its billing currency and rate, e.g. a relay that charges ¥1 per $1 of list
//! price), conversion into the run's reporting currency, and projections to a daily volume.
//!
//! Cost is a pure function of token usage and a [`Price`]:
//!
//! ```text
//! list      = (uncached_input × input + cached_input × cached_input_price
//!              + answer_output × output + reasoning_output × reasoning_output_price) / 1e6
//! billed    = list × (1 − discount) × bill_rate          (in the bill currency)
//! reported  = billed ÷ exchange_rate[bill currency]      (in the reporting currency)
//! ```
//!
//! Exchange rates are units of a currency per one unit of the reporting currency
//! (`{ CNY = 7.3 }` with USD reporting). Without an explicit `bill_rate`, a bill in another
//! currency than the list converts at the market rate, so it costs the same as the list price.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The pricing table shipped with drover (`scenarios/pricing/default.toml`), used when a scenario
/// names none.
pub const DEFAULT_TABLE: &str = include_str!("../scenarios/pricing/default.toml");
/// How the default table is named in messages and results.
pub const DEFAULT_TABLE_NAME: &str = "built-in scenarios/pricing/default.toml";

/// A pricing table file.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PricingTable {
    /// When the prices were taken from the providers' pages.
    pub as_of: Option<String>,
    /// Currency of every price in the table (e.g. `USD`).
    pub currency: String,
    pub note: Option<String>,
    #[serde(default)]
    pub models: BTreeMap<String, ModelPrice>,
}

/// One model's list prices per 1M tokens and its discounts per mode.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    pub input: f64,
    pub output: f64,
    /// Price of input tokens read from the provider's prompt cache; input price when absent.
    pub cached_input: Option<f64>,
    /// Price of output tokens spent reasoning (part of the output a server reports); output
    /// price when absent, as OpenAI, Anthropic and DeepSeek bill them today.
    pub reasoning_output: Option<f64>,
    /// Fraction off for the asynchronous Batch API (0.5 = half price).
    #[serde(default)]
    pub batch_api_discount: f64,
    /// Fraction off for a relay's batch mode on chat completions (`"mode": "batch"`).
    #[serde(default)]
    pub batch_mode_discount: f64,
}

impl ModelPrice {
    /// What is wrong with these prices, if anything.
    pub fn problem(&self) -> Option<String> {
        let prices = [
            ("input", Some(self.input)),
            ("output", Some(self.output)),
            ("cached_input", self.cached_input),
            ("reasoning_output", self.reasoning_output),
        ];
        for (name, value) in prices {
            if let Some(value) = value {
                if !value.is_finite() || value < 0.0 {
                    return Some(format!("{name} = {value} is not a price (≥ 0)"));
                }
            }
        }
        for (name, value) in [
            ("batch_api_discount", self.batch_api_discount),
            ("batch_mode_discount", self.batch_mode_discount),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Some(format!(
                    "{name} = {value} is not a fraction between 0 and 1"
                ));
            }
        }
        None
    }
}

/// How a target's requests are priced, resolved from the table, the scenario and the mode.
#[derive(Debug, Clone, PartialEq)]
pub struct Price {
    /// The table entry used.
    pub model: String,
    pub list: ModelPrice,
    pub list_currency: String,
    /// Fraction off the list price for this target's mode.
    pub discount: f64,
    pub bill_currency: String,
    /// Bill-currency units charged per list-currency unit (after the discount).
    pub bill_rate: f64,
    /// Reporting-currency units per bill-currency unit.
    pub to_reporting: f64,
    /// Reporting-currency units per list-currency unit at the market rate: what the official
    /// list price costs someone who pays it.
    pub official_to_reporting: f64,
    /// The reporting currency.
    pub currency: String,
}

/// Tokens of one request or a group of requests, as billed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenUsage {
    /// All input tokens, cached ones included.
    pub input: u64,
    /// Input tokens read from the provider's cache.
    pub cached_input: u64,
    /// All output tokens, reasoning ones included.
    pub output: u64,
    /// Output tokens spent reasoning (part of `output`).
    pub reasoning_output: u64,
}

/// An amount in the reporting currency, split by what it paid for.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Cost {
    pub input: f64,
    pub output: f64,
    /// What the same tokens cost before any discount (bill rate and currency applied).
    pub list: f64,
    /// What the same tokens cost at the official list price, paid at the market rate (no
    /// discount, no relay's bill rate): the price a saving is measured against.
    pub official: f64,
}

impl Cost {
    pub fn total(&self) -> f64 {
        self.input + self.output
    }
}

impl std::ops::AddAssign for Cost {
    fn add_assign(&mut self, other: Cost) {
        self.input += other.input;
        self.output += other.output;
        self.list += other.list;
        self.official += other.official;
    }
}

impl Price {
    /// The cost of `usage` in the reporting currency.
    pub fn cost(&self, usage: &TokenUsage) -> Cost {
        let cached = usage.cached_input.min(usage.input);
        let uncached = usage.input - cached;
        let cached_price = self.list.cached_input.unwrap_or(self.list.input);
        let list_factor = self.bill_rate * self.to_reporting / 1e6;
        let factor = (1.0 - self.discount) * list_factor;
        let input = uncached as f64 * self.list.input + cached as f64 * cached_price;
        let reasoning = usage.reasoning_output.min(usage.output);
        let reasoning_price = self.list.reasoning_output.unwrap_or(self.list.output);
        let output = (usage.output - reasoning) as f64 * self.list.output
            + reasoning as f64 * reasoning_price;
        Cost {
            input: input * factor,
            output: output * factor,
            list: (input + output) * list_factor,
            official: (input + output) * self.official_to_reporting / 1e6,
        }
    }
}

/// The discount a cost got against its list price, `1 − total / list`, with float noise removed
/// (`fallback` when nothing was priced).
pub fn effective_discount(total: f64, list: f64, fallback: f64) -> f64 {
    if list <= 0.0 {
        return fallback;
    }
    let discount = ((1.0 - total / list) * 1e9).round() / 1e9;
    discount.clamp(0.0, 1.0) + 0.0
}

/// The volume a cost is projected to.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProjectionBasis {
    RequestsPerDay,
    OutputTokensPerDay,
    /// Input plus output tokens.
    TokensPerDay,
}

impl ProjectionBasis {
    pub fn name(self) -> &'static str {
        match self {
            ProjectionBasis::RequestsPerDay => "requests_per_day",
            ProjectionBasis::OutputTokensPerDay => "output_tokens_per_day",
            ProjectionBasis::TokensPerDay => "tokens_per_day",
        }
    }
}

/// Projects a measured cost to `volume` units per day of `basis`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Projection {
    pub basis: ProjectionBasis,
    pub volume: f64,
}

/// Days in the projected month.
pub const DAYS_PER_MONTH: f64 = 30.0;

impl Projection {
    /// Cost per day at the projected volume, from a measured `cost` over `requests` requests and
    /// `usage` tokens; `None` when the run measured none of the basis.
    pub fn per_day(&self, cost: f64, requests: u64, usage: &TokenUsage) -> Option<f64> {
        let measured = match self.basis {
            ProjectionBasis::RequestsPerDay => requests as f64,
            ProjectionBasis::OutputTokensPerDay => usage.output as f64,
            ProjectionBasis::TokensPerDay => (usage.input + usage.output) as f64,
        };
        (measured > 0.0).then(|| cost / measured * self.volume)
    }
}

/// Why prices could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PricingError(pub String);

/// Converts between currencies given units per one reporting-currency unit.
#[derive(Debug, Clone, PartialEq)]
pub struct Currencies {
    pub reporting: String,
    pub rates: BTreeMap<String, f64>,
}

impl Currencies {
    /// Units of `currency` per one reporting unit.
    pub fn rate(&self, currency: &str) -> Result<f64, PricingError> {
        if currency.eq_ignore_ascii_case(&self.reporting) {
            return Ok(1.0);
        }
        self.rates
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(currency))
            .map(|(_, rate)| *rate)
            .ok_or_else(|| {
                PricingError(format!(
                    "no exchange rate for {currency}: add it to [cost] exchange_rates as units of \
                     {currency} per 1 {} (e.g. {{ {currency} = 7.3 }})",
                    self.reporting
                ))
            })
    }
}

/// A target's pricing choices from the scenario.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TargetPricing {
    /// Table entry; defaults to the target's model name.
    pub model: Option<String>,
    pub bill_currency: Option<String>,
    pub bill_rate: Option<f64>,
    pub discount: Option<f64>,
}

/// Which discount of the table a target's requests get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PricedMode {
    /// Streaming or plain completions at list price.
    Standard,
    /// A relay's batch mode on chat completions (`"mode": "batch"` in the body).
    BatchMode,
    /// The asynchronous Batch API.
    BatchApi,
}

/// Resolves a target's [`Price`]: `Ok(None)` when the model is not in the table and the scenario
/// did not name a table entry (the target is unpriced).
pub fn resolve(
    table: &PricingTable,
    currencies: &Currencies,
    target_model: &str,
    pricing: &TargetPricing,
    mode: PricedMode,
) -> Result<Option<Price>, PricingError> {
    let key = pricing.model.as_deref().unwrap_or(target_model);
    let Some(list) = table.models.get(key) else {
        if pricing.model.is_some() {
            return Err(PricingError(format!(
                "\"{key}\" is not in the pricing table (known: {}); add it under [cost.models.\"{key}\"]",
                table.models.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        return Ok(None);
    };
    let discount = pricing.discount.unwrap_or(match mode {
        PricedMode::Standard => 0.0,
        PricedMode::BatchMode => list.batch_mode_discount,
        PricedMode::BatchApi => list.batch_api_discount,
    });
    let bill_currency = pricing
        .bill_currency
        .clone()
        .unwrap_or_else(|| table.currency.clone());
    let bill = currencies.rate(&bill_currency)?;
    let bill_rate = match pricing.bill_rate {
        Some(rate) => rate,
        None if bill_currency.eq_ignore_ascii_case(&table.currency) => 1.0,
        // Billed in another currency at the market rate: the same money as the list price.
        None => bill / currencies.rate(&table.currency)?,
    };
    // The list currency must be convertible too when it is not the reporting one.
    let list_rate = currencies.rate(&table.currency)?;
    Ok(Some(Price {
        model: key.to_string(),
        list: list.clone(),
        list_currency: table.currency.clone(),
        discount,
        bill_currency,
        bill_rate,
        to_reporting: 1.0 / bill,
        official_to_reporting: 1.0 / list_rate,
        currency: currencies.reporting.clone(),
    }))
}

/// What a finished request cost at its target's prices — the Batch API price when it went
/// through the Batch API — or `None` for a failure or an unpriced target.
pub fn record_cost(
    price: Option<&Price>,
    batch_price: Option<&Price>,
    record: &crate::record::RequestRecord,
) -> Option<Cost> {
    record.outcome.as_ref().ok()?;
    let price = if record.via_batch_api {
        batch_price.or(price)
    } else {
        price
    }?;
    Some(price.cost(&TokenUsage {
        input: record.input_tokens.unwrap_or(0),
        cached_input: record.cached_input_tokens,
        output: record.output_tokens,
        reasoning_output: record.detail.reasoning_tokens,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> PricingTable {
        toml::from_str(DEFAULT_TABLE).expect("the shipped table parses")
    }

    fn usd() -> Currencies {
        Currencies {
            reporting: "USD".into(),
            rates: BTreeMap::from([("CNY".into(), 7.3)]),
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12 * b.abs().max(1.0)
    }

    #[test]
    fn the_shipped_table_has_the_four_models_with_sane_prices() {
        let table = table();
        for model in [
            "gpt-4.1",
            "claude-sonnet-4-5",
            "gemini-2.5-flash",
            "deepseek-v3.2",
        ] {
            let price = &table.models[model];
            assert_eq!(price.problem(), None, "{model}");
        }
        assert!(table.as_of.is_some() && table.note.is_some());
    }

    /// GPT-4.1 at its list price from the shipped table, in USD, streamed.
    fn gpt_4_1() -> Price {
        resolve(
            &table(),
            &usd(),
            "gpt-4.1",
            &TargetPricing::default(),
            PricedMode::Standard,
        )
        .unwrap()
        .unwrap()
    }

    #[test]
    fn list_price_with_cache_hits_by_hand() {
        let price = gpt_4_1();
        // 1,000 input of which 400 cached, 500 output at $2 / $0.50 / $8 per 1M:
        // 600 × 2 + 400 × 0.5 = 1,400 → $0.0014; 500 × 8 = 4,000 → $0.004.
        let cost = price.cost(&TokenUsage {
            input: 1_000,
            cached_input: 400,
            output: 500,
            reasoning_output: 0,
        });
        assert!(close(cost.input, 0.0014), "{cost:?}");
        assert!(close(cost.output, 0.004), "{cost:?}");
        assert!(close(cost.total(), 0.0054));
    }

    #[test]
    fn reasoning_tokens_cost_their_own_price_or_the_output_price() {
        let mut price = gpt_4_1();
        // 500 output tokens of which 300 reasoned, at $8 per 1M output.
        let usage = TokenUsage {
            input: 0,
            cached_input: 0,
            output: 500,
            reasoning_output: 300,
        };
        // No reasoning price: all 500 at the output price, 500 × 8 → $0.004.
        assert!(close(price.cost(&usage).output, 0.004));
        // Reasoning at $2 per 1M: 200 × 8 + 300 × 2 = 2,200 → $0.0022, list alike.
        price.list.reasoning_output = Some(2.0);
        let cost = price.cost(&usage);
        assert!(close(cost.output, 0.0022), "{cost:?}");
        assert!(close(cost.list, 0.0022), "{cost:?}");
        // A server claiming more reasoning than output: reasoning is capped at the output.
        let claimed = TokenUsage {
            reasoning_output: 900,
            ..usage
        };
        assert!(close(price.cost(&claimed).output, 0.001), "500 × 2");
        price.list.reasoning_output = Some(-1.0);
        assert!(price.list.problem().unwrap().contains("reasoning_output"));
    }

    #[test]
    fn batch_discounts_apply_per_mode_and_can_be_overridden() {
        let usage = TokenUsage {
            input: 2_000_000,
            cached_input: 0,
            output: 1_000_000,
            reasoning_output: 0,
        };
        let cost = |pricing: &TargetPricing, mode| {
            resolve(&table(), &usd(), "claude-sonnet-4-5", pricing, mode)
                .unwrap()
                .unwrap()
                .cost(&usage)
                .total()
        };
        // 2 × $3 + 1 × $15 = $21 at list; the Batch API halves it.
        assert!(close(
            cost(&TargetPricing::default(), PricedMode::Standard),
            21.0
        ));
        assert!(close(
            cost(&TargetPricing::default(), PricedMode::BatchApi),
            10.5
        ));
        // No relay batch-mode discount in the table; a scenario sets 20% for its relay.
        assert!(close(
            cost(&TargetPricing::default(), PricedMode::BatchMode),
            21.0
        ));
        let relay = TargetPricing {
            discount: Some(0.2),
            ..TargetPricing::default()
        };
        assert!(close(cost(&relay, PricedMode::BatchMode), 16.8));
    }

    #[test]
    fn a_relay_billing_one_yuan_per_list_dollar_costs_a_seventh_point_three() {
        let usage = TokenUsage {
            input: 1_000_000,
            cached_input: 0,
            output: 1_000_000,
            reasoning_output: 0,
        };
        // GPT-4.1 list: $2 + $8 = $10. The relay bills ¥1 per $1 → ¥10 → $10 / 7.3.
        let relay = TargetPricing {
            model: Some("gpt-4.1".into()),
            bill_currency: Some("CNY".into()),
            bill_rate: Some(1.0),
            discount: None,
        };
        let price = resolve(&table(), &usd(), "relay-gpt", &relay, PricedMode::Standard)
            .unwrap()
            .unwrap();
        assert!(close(price.cost(&usage).total(), 10.0 / 7.3));
        // Against the official $10 paid at the market rate, that is a saving of 86.3%.
        assert!(close(price.cost(&usage).official, 10.0));
        // Reported in CNY instead, the same bill is ¥10.
        let cny = Currencies {
            reporting: "CNY".into(),
            rates: BTreeMap::from([("USD".into(), 1.0 / 7.3)]),
        };
        let price = resolve(&table(), &cny, "x", &relay, PricedMode::Standard)
            .unwrap()
            .unwrap();
        assert!(close(price.cost(&usage).total(), 10.0));
        // Billed in CNY at the market rate (no bill_rate): the list price, $10.
        let market = TargetPricing {
            bill_rate: None,
            ..relay
        };
        let price = resolve(&table(), &usd(), "x", &market, PricedMode::Standard)
            .unwrap()
            .unwrap();
        assert!(close(price.cost(&usage).total(), 10.0));
    }

    #[test]
    fn unknown_models_and_missing_rates_are_explained() {
        let named = TargetPricing {
            model: Some("gpt-9".into()),
            ..TargetPricing::default()
        };
        let error = resolve(&table(), &usd(), "m", &named, PricedMode::Standard).unwrap_err();
        assert!(
            error.0.contains("\"gpt-9\" is not in the pricing table"),
            "{error}"
        );
        assert!(error.0.contains("gpt-4.1"));
        // Not named and not in the table: unpriced, not an error.
        assert_eq!(
            resolve(
                &table(),
                &usd(),
                "mock-llm",
                &TargetPricing::default(),
                PricedMode::Standard
            ),
            Ok(None)
        );
        let eur = TargetPricing {
            model: Some("gpt-4.1".into()),
            bill_currency: Some("EUR".into()),
            ..TargetPricing::default()
        };
        let error = resolve(&table(), &usd(), "m", &eur, PricedMode::Standard).unwrap_err();
        assert!(error.0.contains("no exchange rate for EUR"), "{error}");
    }

    #[test]
    fn projections_scale_the_measured_cost_to_a_daily_volume() {
        let usage = TokenUsage {
            input: 30_000,
            cached_input: 0,
            output: 10_000,
            reasoning_output: 0,
        };
        let per_day = |basis, volume| Projection { basis, volume }.per_day(2.0, 100, &usage);
        // $2 for 10,000 output tokens → $2,000 for 10M a day.
        assert_eq!(
            per_day(ProjectionBasis::OutputTokensPerDay, 1e7),
            Some(2_000.0)
        );
        assert_eq!(per_day(ProjectionBasis::TokensPerDay, 40_000.0), Some(2.0));
        assert_eq!(
            per_day(ProjectionBasis::RequestsPerDay, 1_000.0),
            Some(20.0)
        );
        let nothing = TokenUsage::default();
        assert_eq!(
            Projection {
                basis: ProjectionBasis::OutputTokensPerDay,
                volume: 1.0
            }
            .per_day(0.0, 0, &nothing),
            None
        );
    }
}
