//! `[cost]`: the pricing table, currencies and budget.

use std::path::Path;

use crate::cost::{Currencies, PricingTable};
use crate::scenario::locate::KeyPath;
use crate::scenario::schema::CostSpec;
use crate::scenario::CostPlan;

use super::*;

/// Reads the pricing table (the scenario's or the built-in one), applies `[cost.models]`, and
/// checks currencies and the projection.
pub(super) fn cost_setup(
    checker: &mut Checker,
    key: &KeyPath,
    spec: Option<&CostSpec>,
    base_dir: &Path,
) -> (CostPlan, PricingTable, Currencies) {
    let default_spec = CostSpec::default();
    let spec = spec.unwrap_or(&default_spec);
    let (mut table, source) = pricing_table(checker, key, spec, base_dir);
    for (model, price) in &table.models {
        if let Some(problem) = price.problem() {
            checker.fail(
                &key.key("pricing"),
                format!("{source}: model \"{model}\": {problem}"),
            );
        }
    }
    for (model, price) in &spec.models {
        if let Some(problem) = price.problem() {
            checker.fail(&key.key("models").key(model), problem);
        }
        table.models.insert(model.clone(), price.clone());
    }
    let currency = spec
        .currency
        .clone()
        .unwrap_or_else(|| table.currency.clone());
    if currency.trim().is_empty() {
        checker.fail(&key.key("currency"), "must name a currency (e.g. \"USD\")");
    }
    for (name, rate) in &spec.exchange_rates {
        if !(rate.is_finite() && *rate > 0.0) {
            checker.fail(
                &key.key("exchange_rates").key(name),
                format!("must be > 0 units of {name} per 1 {currency} (got {rate})"),
            );
        }
    }
    let projection = projection(checker, key, spec);
    let currencies = Currencies {
        reporting: currency.clone(),
        rates: spec.exchange_rates.clone(),
    };
    if let Some(budget) = spec.budget {
        if !(budget.is_finite() && budget > 0.0) {
            checker.fail(&key.key("budget"), format!("must be > 0 (got {budget})"));
        }
    }
    let alerts = spec.alerts.clone().unwrap_or_else(|| vec![0.5, 0.8]);
    for (index, alert) in alerts.iter().enumerate() {
        if !(*alert > 0.0 && *alert <= 1.0) {
            checker.fail(
                &key.key("alerts").index(index),
                format!("must be a fraction of the budget in (0, 1] (got {alert})"),
            );
        }
    }
    let plan = CostPlan {
        currency,
        table: source,
        as_of: table.as_of.clone(),
        note: table.note.clone(),
        projection,
        budget: spec.budget,
        alerts,
        allow_unpriced: spec.allow_unpriced.unwrap_or(false),
    };
    (plan, table, currencies)
}

/// The pricing table: the built-in one, or the file `pricing` names (with its place on error),
/// and the name it is shown under.
fn pricing_table(
    checker: &mut Checker,
    key: &KeyPath,
    spec: &CostSpec,
    base_dir: &Path,
) -> (PricingTable, String) {
    let builtin = || -> PricingTable {
        toml::from_str(crate::cost::DEFAULT_TABLE).expect("the built-in pricing table parses")
    };
    match &spec.pricing {
        None => (builtin(), crate::cost::DEFAULT_TABLE_NAME.to_string()),
        Some(file) => {
            let path = base_dir.join(file);
            let shown = path.display().to_string();
            let parsed = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read pricing table {shown}: {e}"))
                .and_then(|text| {
                    toml::from_str::<PricingTable>(&text).map_err(|e| {
                        let (line, column) = e
                            .span()
                            .map_or((1, 1), |span| crate::scenario::line_col(&text, span.start));
                        format!("{shown}:{line}:{column}: {}", e.message().trim())
                    })
                });
            match parsed {
                Ok(table) => (table, shown),
                Err(message) => {
                    checker.fail(&key.key("pricing"), message);
                    (builtin(), shown)
                }
            }
        }
    }
}

/// `projection = { requests_per_day | output_tokens_per_day | tokens_per_day = N }`: exactly one.
fn projection(
    checker: &mut Checker,
    key: &KeyPath,
    spec: &CostSpec,
) -> Option<crate::cost::Projection> {
    spec.projection.as_ref().and_then(|p| {
        use crate::cost::{Projection, ProjectionBasis};
        let given: Vec<(ProjectionBasis, f64)> = [
            (ProjectionBasis::RequestsPerDay, p.requests_per_day),
            (ProjectionBasis::OutputTokensPerDay, p.output_tokens_per_day),
            (ProjectionBasis::TokensPerDay, p.tokens_per_day),
        ]
        .into_iter()
        .filter_map(|(basis, volume)| volume.map(|v| (basis, v)))
        .collect();
        match given.as_slice() {
            [(basis, volume)] if volume.is_finite() && *volume > 0.0 => Some(Projection {
                basis: *basis,
                volume: *volume,
            }),
            [(basis, volume)] => {
                checker.fail(
                    &key.key("projection").key(basis.name()),
                    format!("must be > 0 (got {volume})"),
                );
                None
            }
            _ => {
                checker.fail(
                    &key.key("projection"),
                    "set exactly one of requests_per_day, output_tokens_per_day, tokens_per_day",
                );
                None
            }
        }
    })
}
