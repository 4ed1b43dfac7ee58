//! A day's nutrition: meals at their usual times (after a morning or evening run when there is
//! one), fuel before, during and after runs, saved presets used for some of them, and the day's
//! carbohydrate portions scaled together.

use chrono::NaiveDate;
use domain::athlete::Nutrients;
use domain::journal::{JournalCommand, LogNutritionEntry, NutritionEntryType, NutritionValues};
use uuid::Uuid;

use super::dice::{Dice, round1};
use super::planner::{AthletePlanner, RunDone};
use super::profile::{LATEST_LOCAL_S, SECONDS_PER_HOUR, local_to_utc};
use super::tables::{
    BREAKFASTS, DINNERS, Food, LUNCHES, POST_RUN, PRE_RUN, PRESETS, RunKind, SNACKS,
};

struct NutritionDraft {
    at_local_s: u32,
    entry_type: NutritionEntryType,
    activity_id: Option<Uuid>,
    nutrients: Nutrients,
    notes: &'static str,
}

type Preset = (&'static str, NutritionEntryType, Nutrients);

/// What the athlete eats from on a day they log.
struct Menu {
    presets: Vec<&'static Preset>,
    every_meal: bool,
    caffeine_habit_mg: f64,
    /// The day's carbohydrate portions as a factor around 1.
    carbohydrate_factor: f64,
}

impl AthletePlanner<'_> {
    /// `fuelling`: the day's carbohydrate portions, in standard deviations.
    pub(super) fn nutrition(&mut self, date: NaiveDate, runs: &[RunDone], fuelling: f64) {
        if !self.dice.chance(self.p.nutrition_rate) {
            return;
        }
        let menu = Menu {
            presets: self.p.presets.iter().map(|(_, i)| &PRESETS[*i]).collect(),
            every_meal: self.p.logs_every_meal,
            caffeine_habit_mg: self.p.caffeine_habit_mg,
            carbohydrate_factor: (1.0 + self.p.fuelling_sd * fuelling).max(0.4),
        };
        let dice = &mut self.dice;
        let mut drafts = menu.meals(dice, runs);
        for run in runs {
            drafts.extend(menu.before(dice, run));
            drafts.extend(menu.during(dice, run));
            drafts.extend(menu.after(dice, run));
        }
        drafts.sort_by_key(|d| d.at_local_s);
        for draft in drafts {
            self.log_nutrition(date, draft);
        }
    }

    fn log_nutrition(&mut self, date: NaiveDate, draft: NutritionDraft) {
        let n = draft.nutrients;
        let command = JournalCommand::LogNutritionEntry(LogNutritionEntry {
            athlete_id: self.p.athlete_id,
            date,
            entry_id: self.dice.uuid(),
            values: NutritionValues {
                entry_type: draft.entry_type,
                activity_id: draft.activity_id,
                calories_kcal: n.calories_kcal,
                protein_g: n.protein_g,
                carbohydrate_g: n.carbohydrate_g,
                fat_g: n.fat_g,
                fibre_g: n.fibre_g,
                caffeine_mg: n.caffeine_mg,
                notes: Some(draft.notes.to_string()),
            },
            logged_at: Some(local_to_utc(date, draft.at_local_s, self.p.utc_offset_min)),
        });
        self.journal(date, command);
    }
}

impl Menu {
    fn preset(&self, entry_type: NutritionEntryType) -> Option<&'static Preset> {
        self.presets
            .iter()
            .copied()
            .find(|(_, used_for, _)| *used_for == entry_type)
    }

    fn daily(
        &self,
        dice: &mut Dice,
        foods: &'static [Food],
        at_local_s: u32,
        caffeine: f64,
    ) -> NutritionDraft {
        let food = dice.pick(foods);
        NutritionDraft {
            at_local_s: at_local_s.min(LATEST_LOCAL_S),
            entry_type: NutritionEntryType::Daily,
            activity_id: None,
            nutrients: fuelled(&nutrients(dice, food, caffeine), self.carbohydrate_factor),
            notes: food.name,
        }
    }

    /// Breakfast, lunch, a snack and dinner, each on some days (every meal for a diligent
    /// logger), and at least one meal on a day with nutrition.
    fn meals(&self, dice: &mut Dice, runs: &[RunDone]) -> Vec<NutritionDraft> {
        let mut drafts: Vec<NutritionDraft> = Vec::with_capacity(8);
        let every_meal = self.every_meal;
        let morning_run_end = runs
            .iter()
            .filter(|r| r.start_local_s < 12 * SECONDS_PER_HOUR)
            .map(|r| r.start_local_s + r.moving_time_s as u32)
            .max();
        let evening_run_end = runs
            .iter()
            .filter(|r| r.start_local_s >= 12 * SECONDS_PER_HOUR)
            .map(|r| r.start_local_s + r.moving_time_s as u32)
            .max();

        let mut logged_any = false;
        if dice.chance(0.85) || every_meal {
            let at = dice
                .int(7 * SECONDS_PER_HOUR, 9 * SECONDS_PER_HOUR)
                .max(morning_run_end.map_or(0, |end| end + 900));
            let mut breakfast = self.daily(dice, BREAKFASTS, at, self.caffeine_habit_mg);
            if let Some((name, _, n)) = self.preset(NutritionEntryType::Daily)
                && dice.chance(0.5)
            {
                breakfast.nutrients = *n;
                breakfast.notes = *name;
            }
            drafts.push(breakfast);
            logged_any = true;
        }
        if dice.chance(0.65) || every_meal {
            let at = dice.int(12 * SECONDS_PER_HOUR, 13 * SECONDS_PER_HOUR + 1800);
            drafts.push(self.daily(dice, LUNCHES, at, 0.0));
            logged_any = true;
        }
        if dice.chance(0.3) {
            let at = dice.int(15 * SECONDS_PER_HOUR, 16 * SECONDS_PER_HOUR + 1800);
            drafts.push(self.daily(dice, SNACKS, at, 0.0));
            logged_any = true;
        }
        if dice.chance(0.75) || !logged_any || every_meal {
            let at = dice
                .int(18 * SECONDS_PER_HOUR + 1800, 20 * SECONDS_PER_HOUR + 1800)
                .max(evening_run_end.map_or(0, |end| end + 1800));
            drafts.push(self.daily(dice, DINNERS, at, 0.0));
        }
        drafts
    }

    fn before(&self, dice: &mut Dice, run: &RunDone) -> Option<NutritionDraft> {
        if !dice.chance(if self.every_meal { 0.9 } else { 0.55 }) {
            return None;
        }
        let at = run.start_local_s - dice.int(20 * 60, 60 * 60);
        let (notes, nutrients) = match self.preset(NutritionEntryType::PreActivity) {
            Some((name, _, n)) if dice.chance(0.7) => (*name, *n),
            _ => {
                let food = dice.pick(PRE_RUN);
                let drawn = nutrients(dice, food, 0.0);
                (food.name, fuelled(&drawn, self.carbohydrate_factor))
            }
        };
        Some(NutritionDraft {
            at_local_s: at,
            entry_type: NutritionEntryType::PreActivity,
            activity_id: Some(run.activity_id),
            nutrients,
            notes,
        })
    }

    /// Fuelling during the run only pays off past about 75 minutes.
    fn during(&self, dice: &mut Dice, run: &RunDone) -> Option<NutritionDraft> {
        if !(run.moving_time_s > 4500.0 && dice.chance(0.7)) {
            return None;
        }
        let gels = (run.moving_time_s / 2700.0).floor().max(1.0);
        let at = run.start_local_s + (run.moving_time_s / 2.0) as u32;
        let (notes, nutrients) = match self.preset(NutritionEntryType::DuringActivity) {
            Some((name, _, n)) => (*name, scale_nutrients(n, gels)),
            None => {
                let caffeine = if dice.chance(0.3) { 25.0 * gels } else { 0.0 };
                let gel = Nutrients {
                    calories_kcal: Some(100.0 * gels),
                    protein_g: Some(0.0),
                    carbohydrate_g: Some(25.0 * gels),
                    fat_g: Some(0.0),
                    fibre_g: None,
                    caffeine_mg: Some(caffeine),
                };
                ("Energy gels", gel)
            }
        };
        Some(NutritionDraft {
            at_local_s: at,
            entry_type: NutritionEntryType::DuringActivity,
            activity_id: Some(run.activity_id),
            nutrients,
            notes,
        })
    }

    fn after(&self, dice: &mut Dice, run: &RunDone) -> Option<NutritionDraft> {
        let end_s = run.start_local_s + run.moving_time_s as u32;
        let hard = !matches!(run.kind, RunKind::Easy | RunKind::Recovery);
        if !dice.chance(if hard { 0.75 } else { 0.4 }) {
            return None;
        }
        let at = (end_s + dice.int(10 * 60, 45 * 60)).min(LATEST_LOCAL_S);
        let (notes, nutrients) = match self.preset(NutritionEntryType::PostActivity) {
            Some((name, _, n)) if dice.chance(0.7) => (*name, *n),
            _ => {
                let food = dice.pick(POST_RUN);
                (food.name, nutrients(dice, food, 0.0))
            }
        };
        Some(NutritionDraft {
            at_local_s: at,
            entry_type: NutritionEntryType::PostActivity,
            activity_id: Some(run.activity_id),
            nutrients,
            notes,
        })
    }
}

/// `habit_caffeine_mg`: the coffee the athlete has with this meal anyway; a food that already
/// includes a coffee does not add a second one.
fn nutrients(dice: &mut Dice, food: &Food, habit_caffeine_mg: f64) -> Nutrients {
    let kcal = (dice.uniform(food.kcal.0, food.kcal.1) / 5.0).round() * 5.0;
    let fat_share = 1.0 - food.carbohydrate_share - food.protein_share;
    let caffeine = food.caffeine_mg.max(habit_caffeine_mg);
    Nutrients {
        calories_kcal: Some(kcal),
        protein_g: Some((kcal * food.protein_share / 4.0).round()),
        carbohydrate_g: Some((kcal * food.carbohydrate_share / 4.0).round()),
        fat_g: Some((kcal * fat_share / 9.0).round()),
        fibre_g: Some(round1(kcal / 100.0 * food.fibre_g_per_100_kcal)),
        caffeine_mg: (caffeine > 0.0).then_some(caffeine),
    }
}

/// `n` with its carbohydrate (and the energy it carries) scaled by `factor`: a bigger or smaller
/// portion of the starchy part of a meal.
fn fuelled(n: &Nutrients, factor: f64) -> Nutrients {
    let Some(carbohydrate_g) = n.carbohydrate_g else {
        return *n;
    };
    let scaled_g = (carbohydrate_g * factor).round();
    Nutrients {
        calories_kcal: n
            .calories_kcal
            .map(|kcal| kcal + 4.0 * (scaled_g - carbohydrate_g)),
        carbohydrate_g: Some(scaled_g),
        ..*n
    }
}

fn scale_nutrients(n: &Nutrients, times: f64) -> Nutrients {
    let by = |v: Option<f64>| v.map(|v| v * times);
    Nutrients {
        calories_kcal: by(n.calories_kcal),
        protein_g: by(n.protein_g),
        carbohydrate_g: by(n.carbohydrate_g),
        fat_g: by(n.fat_g),
        fibre_g: by(n.fibre_g),
        caffeine_mg: by(n.caffeine_mg),
    }
}
