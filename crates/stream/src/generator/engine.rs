//! The generator: merges legit traffic and episodes in event time and renders events.
//!
//! Key decision: three independent ChaCha8 streams derived from the seed (population,
//! events, defects/disorder), so options that only apply after the onset or only when
//! enabled never shift the random numbers the rest of the stream sees.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp1, StandardNormal};

use super::catalog::{COUNTRIES, Country, DEVICES, Device, other_device, pick_excluding};
use super::config::{GeneratorConfig, GeneratorError};
use super::effects::Effects;
use super::episodes::{Episode, EpisodeKind, Whereabouts, choose_kind, mean_candidate_gap_ms};
use super::event::GeneratedEvent;
use super::format::{EventIds, TimestampText, round_to_cents};
use super::population::{Population, UserProfile};
use super::quality::degrade;
use super::scenario::DriftSchedule;

/// Random stream of the user population.
const POPULATION_STREAM: u64 = 0;
/// Random stream of event timing, users, amounts, places and labels.
const EVENT_STREAM: u64 = 1;
/// Random stream of `quality` defects.
const DEFECT_STREAM: u64 = 2;
/// Random stream of out-of-order timestamps.
const DISORDER_STREAM: u64 = 3;

/// Legit events abroad (ordinary travel).
const LEGIT_ABROAD: f64 = 0.02;
/// Legit events on another device than the usual one.
const LEGIT_OTHER_DEVICE: f64 = 0.08;
/// Legit events that are a big purchase for the user, sized like fraud.
const LEGIT_SPLURGE: f64 = 0.01;
/// Median multiple of the user's typical amount in fraud, travel and splurges...
const BIG_AMOUNT_MULTIPLE: f64 = 4.0;
/// ...and its log spread.
const BIG_AMOUNT_LOG_SPREAD: f64 = 0.5;
/// Card-testing amounts are uniform in this range.
const CARD_TEST_AMOUNT: (f64, f64) = (0.5, 5.0);
/// Amounts are clamped to the contract's valid range (before `quality` defects).
const AMOUNT_RANGE: (f64, f64) = (0.01, 5_000.0);
/// Label noise: fraud labelled legit (missed chargebacks)...
const MISSED_FRAUD: f64 = 0.03;
/// ...and legit labelled fraud (false disputes).
const FALSE_FRAUD: f64 = 0.003;
/// Late events have `event_ts` set back by up to this many seconds.
const MAX_LATENESS_S: i64 = 60;

/// An infinite, deterministic stream of synthetic card transactions.
///
/// Iterate it, or call [`Generator::next_into`] to reuse one event's buffers.
#[derive(Debug, Clone)]
pub struct Generator {
    config: GeneratorConfig,
    schedule: DriftSchedule,
    population: Population,
    rng: ChaCha8Rng,
    defect_rng: ChaCha8Rng,
    disorder_rng: ChaCha8Rng,
    ids: EventIds,
    timestamps: TimestampText,
    /// Index of the next event.
    index: u64,
    /// Event time since `start_ts`, ms.
    now_ms: f64,
    next_legit_ms: f64,
    next_candidate_ms: f64,
    mean_candidate_gap_ms: f64,
    episodes: Vec<Episode>,
}

/// The fields of an event before rendering.
struct Draft {
    user: u32,
    amount: f64,
    country: Country,
    device: Device,
    label: u8,
}

/// Which scheduled thing happens next.
enum Next {
    Legit,
    Candidate,
    Episode(usize),
}

impl Generator {
    /// Validates `config` and draws the user population.
    pub fn new(config: GeneratorConfig) -> Result<Self, GeneratorError> {
        config.check()?;
        let stream = |id: u64| {
            let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
            rng.set_stream(id);
            rng
        };
        let population = Population::generate(config.users, &mut stream(POPULATION_STREAM));
        let mut rng = stream(EVENT_STREAM);
        let mean_candidate_gap_ms = mean_candidate_gap_ms(config.mean_interarrival_ms);
        let first_candidate_ms = exponential(&mut rng) * mean_candidate_gap_ms;
        tracing::debug!(
            seed = config.seed,
            users = config.users,
            scenario = %config.scenario,
            onset = config.onset,
            ramp = config.ramp,
            "synthetic generator ready"
        );
        Ok(Self {
            schedule: config.schedule(),
            population,
            rng,
            defect_rng: stream(DEFECT_STREAM),
            disorder_rng: stream(DISORDER_STREAM),
            ids: EventIds::for_seed(config.seed),
            timestamps: TimestampText::new(),
            index: 0,
            now_ms: 0.0,
            next_legit_ms: 0.0,
            next_candidate_ms: first_candidate_ms,
            mean_candidate_gap_ms,
            episodes: Vec::new(),
            config,
        })
    }

    /// The configuration this generator was built from.
    pub fn config(&self) -> &GeneratorConfig {
        &self.config
    }

    /// Index of the next event to be generated (= events generated so far).
    pub fn position(&self) -> u64 {
        self.index
    }

    /// Overwrites `event` with the next event, reusing its string buffers.
    pub fn next_into(&mut self, event: &mut GeneratedEvent) {
        let effects = Effects::at(self.config.scenario, self.schedule.intensity(self.index));
        let draft = self.next_draft(&effects);
        self.render(&draft, &effects, event);
        self.index += 1;
    }

    fn next_draft(&mut self, effects: &Effects) -> Draft {
        loop {
            let draft = match self.next_scheduled() {
                Next::Legit => Some(self.legit_now(effects)),
                Next::Episode(slot) => {
                    self.now_ms = self.episodes[slot].next_due_ms;
                    Some(self.episode_event(slot, effects))
                }
                Next::Candidate => self.candidate_now(effects),
            };
            if let Some(draft) = draft {
                return draft;
            }
        }
    }

    /// Emits the due legit event and schedules the next one at the hour's rate.
    fn legit_now(&mut self, effects: &Effects) -> Draft {
        self.now_ms = self.next_legit_ms;
        let draft = self.legit_event(effects);
        let gap = self.config.mean_interarrival_ms / self.population.relative_rate(self.hour());
        self.next_legit_ms = self.now_ms + exponential(&mut self.rng) * gap;
        draft
    }

    /// Thins the due candidate start: maybe starts an episode and emits its first event.
    fn candidate_now(&mut self, effects: &Effects) -> Option<Draft> {
        self.now_ms = self.next_candidate_ms;
        self.next_candidate_ms += exponential(&mut self.rng) * self.mean_candidate_gap_ms;
        let u = self.rng.random::<f64>();
        let kind = choose_kind(&effects.episodes, self.hour(), u)?;
        let slot = self.start_episode(kind, effects);
        Some(self.episode_event(slot, effects))
    }

    /// The earliest of the next legit event, candidate start and episode event.
    fn next_scheduled(&self) -> Next {
        let mut next = Next::Legit;
        let mut due = self.next_legit_ms;
        if self.next_candidate_ms < due {
            next = Next::Candidate;
            due = self.next_candidate_ms;
        }
        for (slot, episode) in self.episodes.iter().enumerate() {
            if episode.next_due_ms < due {
                next = Next::Episode(slot);
                due = episode.next_due_ms;
            }
        }
        next
    }

    fn legit_event(&mut self, effects: &Effects) -> Draft {
        let user_index = self.population.draw_active(self.hour(), &mut self.rng);
        let user = self.population.user(user_index);
        let home = home_of(user, effects);
        let country = if self.rng.random::<f64>() < LEGIT_ABROAD {
            pick_excluding(&effects.country_mix, usize::from(home), self.rng.random()) as Country
        } else {
            home
        };
        let device = if self.rng.random::<f64>() < LEGIT_OTHER_DEVICE {
            other_device(user.device, self.rng.random())
        } else {
            user.device
        };
        let splurge = self.rng.random::<f64>() < LEGIT_SPLURGE;
        let amount = draw_habitual_amount(user, effects, splurge, &mut self.rng);
        let label = self.noisy_label(0);
        Draft {
            user: user_index,
            amount,
            country,
            device,
            label,
        }
    }

    /// Starts an episode of `kind` now for a uniformly drawn user; returns its slot.
    fn start_episode(&mut self, kind: EpisodeKind, effects: &Effects) -> usize {
        let user_index = self.population.draw_uniform(&mut self.rng);
        let user = self.population.user(user_index);
        let place = Whereabouts {
            home: home_of(user, effects),
            device: user.device,
            country_mix: &effects.country_mix,
        };
        let episode = Episode::start(kind, user_index, self.now_ms, &place, &mut self.rng);
        self.episodes.push(episode);
        self.episodes.len() - 1
    }

    fn episode_event(&mut self, slot: usize, effects: &Effects) -> Draft {
        let (user_index, kind, country, device) = {
            let episode = &self.episodes[slot];
            (episode.user, episode.kind, episode.country, episode.device)
        };
        let user = self.population.user(user_index);
        let amount = match kind {
            EpisodeKind::Fraud | EpisodeKind::Travel => {
                draw_habitual_amount(user, effects, true, &mut self.rng)
            }
            EpisodeKind::CardTesting => {
                round_to_cents(self.rng.random_range(CARD_TEST_AMOUNT.0..CARD_TEST_AMOUNT.1))
            }
        };
        if !self.episodes[slot].advance(&mut self.rng) {
            self.episodes.swap_remove(slot);
        }
        let label = self.noisy_label(kind.label());
        Draft {
            user: user_index,
            amount,
            country,
            device,
            label,
        }
    }

    fn noisy_label(&mut self, label: u8) -> u8 {
        let flip = if label == 1 { MISSED_FRAUD } else { FALSE_FRAUD };
        if self.rng.random::<f64>() < flip {
            1 - label
        } else {
            label
        }
    }

    /// UTC hour of day at the current event time.
    fn hour(&self) -> usize {
        (self.unix_ms().div_euclid(3_600_000).rem_euclid(24)) as usize
    }

    fn unix_ms(&self) -> i64 {
        self.config.start_ts * 1000 + self.now_ms as i64
    }

    fn render(&mut self, draft: &Draft, effects: &Effects, event: &mut GeneratedEvent) {
        let unix_ms = self.unix_ms();
        event.event_id.clear();
        let id = self.ids.id(self.index, unix_ms);
        event
            .event_id
            .push_str(std::str::from_utf8(&id).expect("ids are ASCII"));
        event.user_id.clear();
        event.user_id.push_str(&self.population.user(draft.user).id);
        event.transaction_amount = Some(draft.amount);
        event.country = Some(COUNTRIES[usize::from(draft.country)]);
        event.device = Some(DEVICES[usize::from(draft.device)]);
        let second = unix_ms.div_euclid(1000) - self.lateness_s();
        event.event_ts.clear();
        event.event_ts.push_str(self.timestamps.format(second));
        event.label = draft.label;
        event.drift_intensity = effects.intensity;
        degrade(event, effects.defect_rate, &mut self.defect_rng);
    }

    /// How many seconds this event's timestamp is set back (usually 0).
    fn lateness_s(&mut self) -> i64 {
        let fraction = self.config.out_of_order_fraction;
        if fraction > 0.0 && self.disorder_rng.random::<f64>() < fraction {
            self.disorder_rng.random_range(1..=MAX_LATENESS_S)
        } else {
            0
        }
    }
}

impl Iterator for Generator {
    type Item = GeneratedEvent;

    fn next(&mut self) -> Option<GeneratedEvent> {
        let mut event = GeneratedEvent::default();
        self.next_into(&mut event);
        Some(event)
    }
}

/// Where the user lives at this drift intensity.
fn home_of(user: &UserProfile, effects: &Effects) -> Country {
    if user.move_rank < effects.moved_share {
        user.drifted_home
    } else {
        user.home
    }
}

/// An amount around the user's (drifted) typical amount; `big` ones are several times
/// larger, as fraud, travel and rare splurges are.
fn draw_habitual_amount(user: &UserProfile, effects: &Effects, big: bool, rng: &mut ChaCha8Rng) -> f64 {
    let noise: f64 = rng.sample(StandardNormal);
    let mut log_amount =
        user.log_typical + effects.amount_scale.ln() + user.log_spread * effects.spread_scale * noise;
    if big {
        let big_noise: f64 = rng.sample(StandardNormal);
        log_amount += BIG_AMOUNT_MULTIPLE.ln() + BIG_AMOUNT_LOG_SPREAD * big_noise;
    }
    round_to_cents(log_amount.exp().clamp(AMOUNT_RANGE.0, AMOUNT_RANGE.1))
}

fn exponential(rng: &mut ChaCha8Rng) -> f64 {
    Exp1.sample(rng)
}
