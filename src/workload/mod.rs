//! What each request carries: its prompt (synthetic of an exact token length, or a record of a
//! dataset or trace), its output cap, an optional shared prefix, and for multi-turn sessions the
//! next user message. Every choice is a pure function of the seed and the request's index, so
//! request k carries the same prompt on every target and every run of the scenario.
//!
//! Drawing is split in two: [`draw`] decides cheaply *what* request k is (class, prompt length or
//! record, output cap, prefix), and [`messages`] builds its text. The spend projection sizes
//! millions of requests from the draw alone.

mod dataset;
mod dataset_images;
mod images;
mod synthetic;
mod trace;

use std::sync::Arc;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, RngExt, SeedableRng};
use rand_distr::weighted::WeightedIndex;
use rand_distr::{Distribution, LogNormal, Normal};
use serde_json::{json, Value};

pub use dataset::{Dataset, DatasetError, DatasetFormat, DatasetRecord, InputFilter};
pub use images::ImagePlan;
pub use synthetic::{synthetic_prompt, Words};
pub use trace::{Trace, TraceEntry, TraceError, TracePrompt};

use crate::protocol::openai::Messages;
use crate::tokenizer::Tokenizer;

/// A validated traffic class: its weight, where its prompts come from, its output caps and
/// sessions, and the labels routing rules match.
#[derive(Debug, Clone)]
pub struct ClassPlan {
    pub name: String,
    pub weight: f64,
    pub prompt: PromptSource,
    /// Output cap sent as `max_tokens`, drawn per request.
    pub max_tokens: Option<LengthModel>,
    pub min_tokens: Option<u32>,
    pub ignore_eos: Option<bool>,
    /// Texts per request for an embeddings target (1 elsewhere).
    pub inputs_per_request: u32,
    pub shared_prefix: Option<SharedPrefix>,
    /// Multi-turn conversations; `None` = one request each.
    pub session: Option<SessionPlan>,
    pub model: Option<String>,
    pub labels: ClassLabels,
    /// Images attached to every user message it sends.
    pub images: Option<ImagePlan>,
    /// Tools its requests declare, and their `tool_choice`.
    pub tools: Option<Arc<crate::protocol::tools::ToolSet>>,
}

/// The routing labels of a class (`labels = { priority = "low", tags = { … } }`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClassLabels {
    pub priority: Option<String>,
    pub user_facing: Option<bool>,
    pub max_latency: Option<std::time::Duration>,
    pub tags: std::collections::BTreeMap<String, String>,
}

/// A distribution of token lengths, validated.
#[derive(Debug, Clone, PartialEq)]
pub enum LengthModel {
    Fixed(u32),
    Uniform {
        min: u32,
        max: u32,
    },
    Normal {
        mean: f64,
        stddev: f64,
    },
    LogNormal {
        mean: f64,
        stddev: f64,
    },
    /// Lengths measured from a dataset's prompts, drawn uniformly (with their repeats, so the
    /// dataset's distribution is reproduced).
    Empirical(Arc<Vec<u32>>),
}

impl LengthModel {
    /// Draws one length, at least 1.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> u32 {
        let value = match self {
            LengthModel::Fixed(n) => return (*n).max(1),
            LengthModel::Uniform { min, max } => return rng.random_range(*min..=*max).max(1),
            LengthModel::Empirical(lengths) => {
                return lengths[rng.random_range(0..lengths.len())].max(1)
            }
            LengthModel::Normal { mean, stddev } => Normal::new(*mean, *stddev)
                .map(|d| d.sample(rng))
                .unwrap_or(*mean),
            LengthModel::LogNormal { mean, stddev } => {
                // Parameters of the underlying normal from the desired mean and deviation.
                let sigma2 = (1.0 + (stddev * stddev) / (mean * mean)).ln();
                let mu = mean.ln() - sigma2 / 2.0;
                LogNormal::new(mu, sigma2.sqrt())
                    .map(|d| d.sample(rng))
                    .unwrap_or(*mean)
            }
        };
        value.round().clamp(1.0, u32::MAX as f64) as u32
    }
}

/// How a class walks its dataset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Sampling {
    /// Any record for any request, with replacement.
    #[default]
    Random,
    /// Records in file order (request position modulo the record count).
    Sequential,
    /// A seeded permutation: every record once before any repeats.
    Shuffle,
}

/// Where a class's prompts come from.
#[derive(Debug, Clone)]
pub enum PromptSource {
    /// A user message of a drawn number of tokens. Unique per request unless `unique` is false,
    /// in which case every request of the same length carries the same text.
    Synthetic {
        lengths: LengthModel,
        unique: bool,
        /// What the prompts are made of (exact in the class's tokenizer).
        words: Words,
    },
    Dataset(DatasetSource),
    /// Prompts come only from the replayed trace's lines.
    TraceOnly,
}

/// A dataset with the order the class samples it in.
#[derive(Debug, Clone)]
pub struct DatasetSource {
    pub data: Arc<Dataset>,
    pub sampling: Sampling,
    /// For [`Sampling::Shuffle`]: the seeded permutation of record indices.
    order: Arc<Vec<u32>>,
}

impl DatasetSource {
    /// A dataset sampled as asked; `seed` fixes a shuffle's permutation.
    pub fn new(data: Arc<Dataset>, sampling: Sampling, seed: u64) -> Self {
        let mut order: Vec<u32> = Vec::new();
        if sampling == Sampling::Shuffle {
            order = (0..data.records.len() as u32).collect();
            let mut rng = SmallRng::seed_from_u64(seed ^ 0x5AFF_1E00);
            // Fisher–Yates.
            for i in (1..order.len()).rev() {
                let j = rng.random_range(0..=i);
                order.swap(i, j);
            }
        }
        DatasetSource {
            data,
            sampling,
            order: Arc::new(order),
        }
    }

    /// The record for a request at shard-local `position`, drawing from `rng` when random.
    fn pick<R: Rng + ?Sized>(&self, position: u64, rng: &mut R) -> usize {
        let n = self.data.records.len();
        match self.sampling {
            Sampling::Random => rng.random_range(0..n),
            Sampling::Sequential => (position % n as u64) as usize,
            Sampling::Shuffle => self.order[(position % n as u64) as usize] as usize,
        }
    }
}

/// K shared system prompts of N tokens, one of which a fraction of a class's requests start with
/// (to exercise a provider's prompt cache on purpose).
#[derive(Debug, Clone, PartialEq)]
pub struct SharedPrefix {
    pub tokens: u32,
    pub fraction: f64,
    /// The K prompts, built once from the class's name so every run sends the same ones.
    pub texts: Arc<Vec<String>>,
}

impl SharedPrefix {
    pub fn new(class_name: &str, count: u32, tokens: u32, fraction: f64, words: &Words) -> Self {
        let base = class_name
            .bytes()
            .fold(0xCBF2_9CE4_8422_2325u64, |hash, byte| {
                (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01B3)
            });
        let texts = (0..count)
            .map(|i| {
                let mut rng = SmallRng::seed_from_u64(base ^ u64::from(i).wrapping_mul(0x9E37));
                synthetic_prompt(words, tokens, &mut rng)
            })
            .collect();
        SharedPrefix {
            tokens,
            fraction,
            texts: Arc::new(texts),
        }
    }
}

/// A class's conversations: each session sends `turns` requests, every one with the history so
/// far (user messages and the server's answers) plus a new user message, `think_time` apart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SessionPlan {
    pub turns: u32,
    pub think_time: Duration,
}

/// What request k is, decided without building its text.
#[derive(Debug, Clone, PartialEq)]
pub struct Draw {
    pub class: usize,
    pub prompt: PromptDraw,
    /// The output cap sent (`max_tokens`), if any.
    pub max_tokens: Option<u32>,
    /// Which shared prefix it starts with, if any.
    pub prefix: Option<usize>,
    /// Where in its class's image pool its images start (a class with images only).
    pub image_pick: Option<u64>,
}

/// The prompt of a [`Draw`].
#[derive(Debug, Clone, PartialEq)]
pub enum PromptDraw {
    /// A synthetic user message of `tokens` tokens, built from `text_seed`.
    Synthetic { tokens: u32, text_seed: u64 },
    /// A record of the class's dataset.
    Record(usize),
    /// The messages of trace entry k.
    Trace(usize),
}

/// The class and prompt generator of request `k`: a pure function of the seed and `k`.
pub fn request_choice(classes: &[ClassPlan], seed: u64, k: u64) -> (usize, SmallRng) {
    let mut rng = SmallRng::seed_from_u64(seed ^ k.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let class = if classes.len() == 1 {
        0
    } else {
        WeightedIndex::new(classes.iter().map(|c| c.weight))
            .map(|w| w.sample(&mut rng))
            .unwrap_or(0)
    };
    (class, rng)
}

/// Decides request `k` (its global index, the same on every shard): its class (or the trace
/// entry's), prompt, output cap and prefix, from the scenario `seed` and `k` alone, so that a
/// sharded run's shards together send exactly the unsharded run's requests.
pub fn draw(classes: &[ClassPlan], trace: Option<&Trace>, seed: u64, k: u64) -> Draw {
    let entry = trace.and_then(|t| t.entries.get(k as usize));
    let (class_index, mut rng) = match entry {
        Some(entry) => (
            entry.class,
            SmallRng::seed_from_u64(seed ^ k.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        ),
        None => request_choice(classes, seed, k),
    };
    let class = &classes[class_index];
    let prompt = match entry.map(|e| &e.prompt) {
        Some(TracePrompt::Messages(_)) => PromptDraw::Trace(k as usize),
        Some(TracePrompt::Tokens(tokens)) => PromptDraw::Synthetic {
            tokens: *tokens,
            text_seed: rng.random(),
        },
        Some(TracePrompt::FromClass) | None => class_prompt(class, class_index, k, &mut rng),
    };
    let record_cap = match (&prompt, &class.prompt) {
        (PromptDraw::Record(index), PromptSource::Dataset(source)) => {
            source.data.records[*index].max_tokens
        }
        _ => None,
    };
    let class_cap = class
        .max_tokens
        .as_ref()
        .map(|lengths| lengths.sample(&mut rng));
    let max_tokens = entry
        .and_then(|e| e.output_tokens)
        .or(class_cap)
        .or(record_cap);
    let prefix = class.shared_prefix.as_ref().and_then(|shared| {
        let chosen = rng.random::<f64>() < shared.fraction;
        let which = rng.random_range(0..shared.texts.len());
        chosen.then_some(which)
    });
    Draw {
        class: class_index,
        prompt,
        max_tokens,
        prefix,
        image_pick: class.images.as_ref().map(|_| rng.random()),
    }
}

/// The new user message of turn `turn` (1-based beyond the first) of session `k`.
pub fn draw_turn(classes: &[ClassPlan], class_index: usize, seed: u64, k: u64, turn: u32) -> Draw {
    let mut rng = SmallRng::seed_from_u64(
        seed ^ k.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(turn).wrapping_mul(0xD6E8_FEB8),
    );
    let class = &classes[class_index];
    let prompt = class_prompt(class, class_index, k, &mut rng);
    let max_tokens = class
        .max_tokens
        .as_ref()
        .map(|lengths| lengths.sample(&mut rng));
    Draw {
        class: class_index,
        prompt,
        max_tokens,
        prefix: None,
        image_pick: class.images.as_ref().map(|_| rng.random()),
    }
}

fn class_prompt(
    class: &ClassPlan,
    class_index: usize,
    position: u64,
    rng: &mut SmallRng,
) -> PromptDraw {
    match &class.prompt {
        PromptSource::Synthetic {
            lengths, unique, ..
        } => {
            let tokens = lengths.sample(rng);
            let text_seed = if *unique {
                rng.random()
            } else {
                // The same text for every request of this length in this class.
                0x0005_EED0_0000_0000 ^ class_index as u64
            };
            PromptDraw::Synthetic { tokens, text_seed }
        }
        PromptSource::Dataset(source) => PromptDraw::Record(source.pick(position, rng)),
        // Validation refuses trace lines without a prompt for such a class; an empty user
        // message would be the server's to reject.
        PromptSource::TraceOnly => PromptDraw::Synthetic {
            tokens: 0,
            text_seed: 0,
        },
    }
}

/// The chat `messages` of a drawn request.
pub fn messages(classes: &[ClassPlan], trace: Option<&Trace>, draw: &Draw) -> Value {
    let class = &classes[draw.class];
    if let Some(prompt) = synthetic_text(classes, draw) {
        let mut list = Messages::Prompt {
            system: prompt.system,
            user: &prompt.user,
        }
        .to_values();
        attach_images(class, draw, &mut list);
        return Value::Array(list);
    }
    let mut list = match &draw.prompt {
        PromptDraw::Synthetic { .. } => Vec::new(),
        PromptDraw::Record(index) => match &class.prompt {
            PromptSource::Dataset(source) => source.data.records[*index].messages.clone(),
            PromptSource::Synthetic { .. } | PromptSource::TraceOnly => Vec::new(),
        },
        PromptDraw::Trace(k) => match trace.and_then(|t| t.entries.get(*k)).map(|e| &e.prompt) {
            Some(TracePrompt::Messages(messages)) => messages.clone(),
            _ => Vec::new(),
        },
    };
    if let (Some(which), Some(shared)) = (draw.prefix, &class.shared_prefix) {
        list.insert(
            0,
            json!({ "role": "system", "content": shared.texts[which].as_str() }),
        );
    }
    attach_images(class, draw, &mut list);
    Value::Array(list)
}

/// The class's images, as parts after the text of the last user message.
fn attach_images(class: &ClassPlan, draw: &Draw, messages: &mut [Value]) {
    let (Some(images), Some(pick)) = (&class.images, draw.image_pick) else {
        return;
    };
    dataset_images::append_to_last_user(messages, images.parts(pick));
}

/// The texts of a drawn embeddings request: its own prompt, then `inputs_per_request − 1` more
/// of its class (synthetic texts from seeds derived from its own, or the dataset records that
/// follow its record), as user messages. A pure function of the draw.
pub fn embedding_inputs(classes: &[ClassPlan], trace: Option<&Trace>, draw: &Draw) -> Vec<Value> {
    let class = &classes[draw.class];
    let mut inputs = Vec::with_capacity(class.inputs_per_request as usize);
    for i in 0..u64::from(class.inputs_per_request.max(1)) {
        let prompt = match (&draw.prompt, &class.prompt) {
            (_, _) if i == 0 => draw.prompt.clone(),
            (PromptDraw::Synthetic { tokens, text_seed }, _) => PromptDraw::Synthetic {
                tokens: *tokens,
                text_seed: text_seed ^ i.wrapping_mul(0x2545_F491_4F6C_DD1D),
            },
            (PromptDraw::Record(index), PromptSource::Dataset(source)) => {
                PromptDraw::Record((*index + i as usize) % source.data.records.len().max(1))
            }
            (other, _) => other.clone(),
        };
        let sibling = Draw {
            prompt,
            prefix: None,
            ..draw.clone()
        };
        if let Value::Array(list) = messages(classes, trace, &sibling) {
            inputs.extend(
                list.into_iter()
                    .filter(|m| m.get("role").and_then(Value::as_str) != Some("system")),
            );
        }
    }
    inputs
}

/// The text of a drawn synthetic prompt: its user message, after the class's shared prefix as
/// a system message when it has one.
pub struct SyntheticText<'a> {
    pub system: Option<&'a str>,
    pub user: String,
}

/// The text of a synthetic draw (what [`messages`] puts in message objects); `None` for dataset
/// and trace prompts.
pub fn synthetic_text<'c>(classes: &'c [ClassPlan], draw: &Draw) -> Option<SyntheticText<'c>> {
    let PromptDraw::Synthetic { tokens, text_seed } = draw.prompt else {
        return None;
    };
    let class = &classes[draw.class];
    let mut rng = SmallRng::seed_from_u64(text_seed);
    let words = match &class.prompt {
        PromptSource::Synthetic { words, .. } => words,
        _ => &Words::default(),
    };
    Some(SyntheticText {
        system: match (draw.prefix, &class.shared_prefix) {
            (Some(which), Some(shared)) => Some(shared.texts[which].as_str()),
            _ => None,
        },
        user: synthetic_prompt(words, tokens, &mut rng),
    })
}

/// Chat-format input tokens of a drawn request by `tokenizer`, computed without building
/// synthetic text (which is exact by construction): the prompt and what the chat format adds
/// (for OpenAI's vocabularies 3 tokens per message plus the role, and 3 to prime the reply).
pub fn input_tokens(
    classes: &[ClassPlan],
    trace: Option<&Trace>,
    draw: &Draw,
    tokenizer: &Tokenizer,
    api: crate::protocol::Api,
) -> u64 {
    let class = &classes[draw.class];
    let (per_message, per_request) = tokenizer.template_tokens();
    let images = class.images.as_ref().map_or(0, |images| images.tokens(api));
    let prefix = match (draw.prefix, &class.shared_prefix) {
        (Some(_), Some(shared)) => u64::from(shared.tokens) + per_message,
        _ => 0,
    };
    let prompt = match &draw.prompt {
        PromptDraw::Synthetic { tokens, .. } => u64::from(*tokens) + per_message + per_request,
        PromptDraw::Record(index) => match &class.prompt {
            PromptSource::Dataset(source) => {
                let record = &source.data.records[*index];
                record.input_tokens(tokenizer) + record.image_tokens(api)
            }
            PromptSource::Synthetic { .. } | PromptSource::TraceOnly => 0,
        },
        PromptDraw::Trace(_) => tokenizer.count_messages(&messages(classes, trace, draw)),
    };
    (prompt + images) * u64::from(class.inputs_per_request.max(1)) + prefix
}

/// One line about what a class sends, for `drover validate` and the start of a run.
pub fn describe_class(class: &ClassPlan) -> String {
    let mut parts = vec![match &class.prompt {
        PromptSource::Synthetic {
            lengths, unique, ..
        } => format!(
            "synthetic prompts of {} tokens{}",
            describe_lengths(lengths),
            if *unique { "" } else { ", repeated" }
        ),
        PromptSource::Dataset(source) => format!(
            "{} dataset {} ({} records{}, {} sampling)",
            source.data.format.name(),
            source.data.path.display(),
            source.data.records.len(),
            if source.data.filtered_out > 0 {
                format!(
                    ", {} filtered out by input length",
                    source.data.filtered_out
                )
            } else {
                String::new()
            },
            match source.sampling {
                Sampling::Random => "random",
                Sampling::Sequential => "sequential",
                Sampling::Shuffle => "shuffled",
            }
        ),
        PromptSource::TraceOnly => "prompts from the trace".into(),
    }];
    if let Some(lengths) = &class.max_tokens {
        parts.push(format!("max_tokens {}", describe_lengths(lengths)));
    }
    if let Some(shared) = &class.shared_prefix {
        parts.push(format!(
            "{:.0}% start with one of {} shared {}-token system prompts",
            shared.fraction * 100.0,
            shared.texts.len(),
            shared.tokens
        ));
    }
    if let Some(session) = &class.session {
        parts.push(format!(
            "sessions of {} turns, {} think time",
            session.turns,
            humantime::format_duration(session.think_time)
        ));
    }
    if let Some(images) = &class.images {
        parts.push(format!(
            "images {} × {}×{} PNG (about {} KiB each as a data URL){}",
            images.count,
            images.width,
            images.height,
            images.mean_url_bytes().div_ceil(1024),
            images
                .detail
                .as_deref()
                .map_or(String::new(), |detail| format!(", detail {detail}"))
        ));
    }
    parts.join("; ")
}

fn describe_lengths(lengths: &LengthModel) -> String {
    match lengths {
        LengthModel::Fixed(n) => n.to_string(),
        LengthModel::Uniform { min, max } => format!("{min}-{max} (uniform)"),
        LengthModel::Normal { mean, stddev } => format!("~{mean} ± {stddev} (normal)"),
        LengthModel::LogNormal { mean, stddev } => format!("~{mean} ± {stddev} (lognormal)"),
        LengthModel::Empirical(lengths) => {
            let mean = lengths.iter().map(|n| f64::from(*n)).sum::<f64>() / lengths.len() as f64;
            format!("~{mean:.0} (empirical, {} lengths)", lengths.len())
        }
    }
}

/// The most tokens any prompt or answer length may ask for (input_tokens, max_tokens, a
/// trace line's lengths): 1,048,576.
pub const MAX_TOKENS: u32 = 1 << 20;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenizer::Encoding;

    fn class(prompt: PromptSource) -> ClassPlan {
        ClassPlan {
            name: "c".into(),
            weight: 1.0,
            prompt,
            max_tokens: None,
            min_tokens: None,
            ignore_eos: None,
            inputs_per_request: 1,
            shared_prefix: None,
            session: None,
            model: None,
            labels: ClassLabels::default(),
            images: None,
            tools: None,
        }
    }

    #[test]
    fn length_models_respect_their_bounds() {
        let mut rng = SmallRng::seed_from_u64(2);
        let uniform = LengthModel::Uniform { min: 10, max: 20 };
        assert!((0..1000).all(|_| (10..=20).contains(&uniform.sample(&mut rng))));
        let lognormal = LengthModel::LogNormal {
            mean: 200.0,
            stddev: 50.0,
        };
        let mean = (0..20_000)
            .map(|_| lognormal.sample(&mut rng) as f64)
            .sum::<f64>()
            / 20_000.0;
        assert!((mean - 200.0).abs() < 3.0, "mean {mean}");
        let empirical = LengthModel::Empirical(Arc::new(vec![5, 5, 9]));
        let fives = (0..3000)
            .filter(|_| empirical.sample(&mut rng) == 5)
            .count();
        assert!((1800..2200).contains(&fives), "{fives} of 3000 drew 5");
    }

    #[test]
    fn synthetic_input_size_matches_the_tokenizer_on_the_built_messages() {
        let mut plan = class(PromptSource::Synthetic {
            lengths: LengthModel::Uniform { min: 20, max: 300 },
            unique: true,
            words: Words::default(),
        });
        plan.shared_prefix = Some(SharedPrefix::new("c", 2, 100, 0.5, &Words::default()));
        let classes = vec![plan];
        for k in 0..40 {
            let drawn = draw(&classes, None, 9, k);
            let built = messages(&classes, None, &drawn);
            for encoding in [Encoding::O200kBase, Encoding::Cl100kBase] {
                assert_eq!(
                    input_tokens(
                        &classes,
                        None,
                        &drawn,
                        &encoding.into(),
                        crate::protocol::Api::OpenAi
                    ),
                    encoding.count_messages(&built),
                    "request {k}"
                );
            }
        }
    }

    #[test]
    fn repeated_prompts_are_identical_and_unique_ones_differ() {
        let lengths = LengthModel::Fixed(50);
        let unique = vec![class(PromptSource::Synthetic {
            lengths: lengths.clone(),
            unique: true,
            words: Words::default(),
        })];
        let repeated = vec![class(PromptSource::Synthetic {
            lengths,
            unique: false,
            words: Words::default(),
        })];
        let text = |classes: &[ClassPlan], k| messages(classes, None, &draw(classes, None, 1, k));
        assert_ne!(text(&unique, 0), text(&unique, 1));
        assert_eq!(text(&repeated, 0), text(&repeated, 1));
    }

    fn dataset_class(records: usize, sampling: Sampling) -> ClassPlan {
        let data = Dataset {
            path: "d.jsonl".into(),
            format: DatasetFormat::Chat,
            records: (0..records)
                .map(|i| DatasetRecord {
                    messages: vec![json!({ "role": "user", "content": format!("record {i}") })],
                    max_tokens: None,
                    line: i + 1,
                    image_sizes: Vec::new(),
                })
                .collect(),
            filtered_out: 0,
        };
        class(PromptSource::Dataset(DatasetSource::new(
            Arc::new(data),
            sampling,
            11,
        )))
    }

    fn records_drawn(classes: &[ClassPlan], ks: &[u64]) -> Vec<usize> {
        ks.iter()
            .map(|k| match draw(classes, None, 5, *k).prompt {
                PromptDraw::Record(index) => index,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn sequential_sampling_walks_the_file_in_order_and_wraps() {
        let classes = vec![dataset_class(4, Sampling::Sequential)];
        let ks: Vec<u64> = (0..6).collect();
        assert_eq!(records_drawn(&classes, &ks), vec![0, 1, 2, 3, 0, 1]);
        // Shard 1 of 2 sends k = 1, 3, 5, …: the records the unsharded run sends as those.
        assert_eq!(records_drawn(&classes, &[1, 3, 5]), vec![1, 3, 1]);
    }

    #[test]
    fn shuffled_sampling_uses_every_record_once_before_repeating() {
        let classes = vec![dataset_class(50, Sampling::Shuffle)];
        let ks: Vec<u64> = (0..100).collect();
        let drawn = records_drawn(&classes, &ks);
        let mut first: Vec<usize> = drawn[..50].to_vec();
        assert_ne!(first, (0..50).collect::<Vec<_>>(), "shuffled");
        first.sort_unstable();
        assert_eq!(first, (0..50).collect::<Vec<_>>());
        assert_eq!(drawn[..50], drawn[50..], "the same order again");
        // Random sampling repeats records within the first pass (birthday bound at 50 of 50).
        let random = records_drawn(&[dataset_class(50, Sampling::Random)], &ks[..50]);
        let distinct: std::collections::BTreeSet<_> = random.iter().collect();
        assert!(distinct.len() < 50);
    }

    #[test]
    fn shared_prefixes_go_to_the_asked_fraction_as_a_system_message() {
        let mut plan = class(PromptSource::Synthetic {
            lengths: LengthModel::Fixed(10),
            unique: true,
            words: Words::default(),
        });
        plan.shared_prefix = Some(SharedPrefix::new("c", 3, 40, 0.25, &Words::default()));
        let classes = vec![plan];
        let drawn: Vec<Draw> = (0..4000).map(|k| draw(&classes, None, 3, k)).collect();
        let with = drawn.iter().filter(|d| d.prefix.is_some()).count();
        assert!((850..1150).contains(&with), "{with} of 4000 have a prefix");
        let first = drawn.iter().find(|d| d.prefix.is_some()).unwrap();
        let built = messages(&classes, None, first);
        assert_eq!(built[0]["role"], "system");
        assert_eq!(built[0]["content"].as_str().unwrap().split(' ').count(), 40);
        assert_eq!(built[1]["role"], "user");
    }
}
