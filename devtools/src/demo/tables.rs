//! Reference tables: names, races, kinds of run, foods and presets the generator draws from.

use domain::activity::WorkoutType;
use domain::athlete::Nutrients;
use domain::journal::NutritionEntryType;

/// (display form, ASCII form for the email address).
pub(super) const FEMALE_FIRST_NAMES: &[(&str, &str)] = &[
    ("Mara", "mara"),
    ("Zoë", "zoe"),
    ("Aoife", "aoife"),
    ("Priya", "priya"),
    ("Ingrid", "ingrid"),
    ("Amara", "amara"),
    ("Mei", "mei"),
    ("Sofia", "sofia"),
    ("Élodie", "elodie"),
    ("Fatima", "fatima"),
    ("Hannah", "hannah"),
    ("Yuki", "yuki"),
    ("Camila", "camila"),
    ("Niamh", "niamh"),
];

pub(super) const MALE_FIRST_NAMES: &[(&str, &str)] = &[
    ("José", "jose"),
    ("Søren", "soren"),
    ("Kenji", "kenji"),
    ("Chidi", "chidi"),
    ("Lukas", "lukas"),
    ("Mateo", "mateo"),
    ("Rahul", "rahul"),
    ("Tomás", "tomas"),
    ("Oluwaseun", "oluwaseun"),
    ("Liam", "liam"),
    ("Arjun", "arjun"),
    ("Jonas", "jonas"),
    ("Kwame", "kwame"),
    ("Diego", "diego"),
];

pub(super) const LAST_NAMES: &[(&str, &str)] = &[
    ("Okafor", "okafor"),
    ("García", "garcia"),
    ("Nakamura", "nakamura"),
    ("Müller", "muller"),
    ("O'Brien", "obrien"),
    ("Lindqvist", "lindqvist"),
    ("Kowalski", "kowalski"),
    ("Haddad", "haddad"),
    ("Patel", "patel"),
    ("Rossi", "rossi"),
    ("Nguyen", "nguyen"),
    ("Dubois", "dubois"),
    ("Kariuki", "kariuki"),
    ("Silva", "silva"),
    ("Johansson", "johansson"),
    ("Fernández", "fernandez"),
    ("Mensah", "mensah"),
    ("Tanaka", "tanaka"),
    ("Cohen", "cohen"),
    ("Walker", "walker"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RaceDistance {
    FiveK,
    TenK,
    Half,
    Marathon,
}

impl RaceDistance {
    pub(super) fn official_m(self) -> f64 {
        match self {
            Self::FiveK => 5_000.0,
            Self::TenK => 10_000.0,
            Self::Half => 21_097.5,
            Self::Marathon => 42_195.0,
        }
    }

    pub(super) fn names(self) -> &'static [&'static str] {
        match self {
            Self::FiveK => &["Riverside 5K", "Park 5K", "Harbour Twilight 5K"],
            Self::TenK => &["Autumn 10K", "Lakeside 10K", "City Centre 10K"],
            Self::Half => &["Coastal Half Marathon", "Spring Half Marathon"],
            Self::Marathon => &["City Marathon", "Valley Marathon"],
        }
    }
}

/// What a run was for; decides its intensity, distance, name and perceived effort.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RunKind {
    Recovery,
    Easy,
    Long,
    Tempo,
    Threshold,
    Intervals,
    Race(RaceDistance),
}

impl RunKind {
    /// Average intensity as a fraction of heart-rate reserve (Karvonen): what the athlete's
    /// watch would show as the session's average HR.
    pub(super) fn intensity_range(self) -> (f64, f64) {
        match self {
            Self::Recovery => (0.56, 0.62),
            Self::Easy => (0.63, 0.70),
            Self::Long => (0.64, 0.72),
            Self::Tempo => (0.78, 0.84),
            Self::Threshold => (0.82, 0.87),
            // Averaged over warm-up, reps and recoveries.
            Self::Intervals => (0.72, 0.80),
            Self::Race(RaceDistance::FiveK) => (0.90, 0.94),
            Self::Race(RaceDistance::TenK) => (0.88, 0.92),
            Self::Race(RaceDistance::Half) => (0.85, 0.89),
            Self::Race(RaceDistance::Marathon) => (0.79, 0.85),
        }
    }

    pub(super) fn workout_type(self) -> WorkoutType {
        match self {
            Self::Recovery => WorkoutType::Recovery,
            Self::Easy => WorkoutType::Easy,
            Self::Long => WorkoutType::Long,
            Self::Tempo => WorkoutType::Tempo,
            Self::Threshold => WorkoutType::Threshold,
            Self::Intervals => WorkoutType::Intervals,
            Self::Race(_) => WorkoutType::Race,
        }
    }

    /// Typical RPE (1-10) of the session for a rested athlete.
    pub(super) fn base_effort(self) -> f64 {
        match self {
            Self::Recovery => 2.0,
            Self::Easy => 3.0,
            Self::Long => 5.0,
            Self::Tempo => 6.5,
            Self::Threshold => 7.0,
            Self::Intervals => 7.5,
            Self::Race(RaceDistance::Half) => 8.5,
            Self::Race(_) => 9.0,
        }
    }

    /// How much the last lap's HR exceeds the first's (cardiac drift, or a race's finish).
    pub(super) fn hr_drift_bpm(self) -> f64 {
        match self {
            Self::Recovery | Self::Easy => 4.0,
            Self::Long => 9.0,
            Self::Tempo | Self::Threshold => 6.0,
            Self::Intervals => 3.0,
            Self::Race(_) => 8.0,
        }
    }
}

/// A 4-week cycle (three building weeks, one lighter), applied to easy and long distances.
pub(super) const WEEK_VOLUME: [f64; 4] = [0.95, 1.0, 1.06, 0.8];

pub(super) const INTERVAL_SESSIONS: &[&str] = &[
    "6 × 800 m",
    "5 × 1 km",
    "10 × 400 m",
    "4 × 1 mile",
    "8 × 2 min hills",
];
pub(super) const THRESHOLD_SESSIONS: &[&str] =
    &["Threshold 3 × 10 min", "Cruise intervals 4 × 2 km"];
pub(super) const EASY_RUN_NAMES: &[&str] = &[
    "Canal loop",
    "Easy miles along the river",
    "Park laps",
    "Run to work",
    "Club social run",
];
pub(super) const RUN_NOTES: &[&str] = &[
    "Felt smooth throughout",
    "Windy on the way back",
    "Legs heavy from yesterday",
    "Negative split, felt controlled",
    "Too hot, backed off the pace",
    "Great group run",
    "Left calf a bit tight",
];
pub(super) const CHECK_IN_NOTES: &[&str] = &[
    "Slept badly, noisy neighbours",
    "Travelling for work",
    "Feeling great",
    "Slight cold coming on",
    "Kids up in the night",
];
pub(super) const WORK_NOTES: &[&str] = &[
    "Quarter-end deadline",
    "Conference day",
    "Back-to-back meetings",
    "Covered a colleague's shift",
];

/// One food or drink as the athlete would log it; shares are of energy.
pub(super) struct Food {
    pub(super) name: &'static str,
    pub(super) kcal: (f64, f64),
    pub(super) carbohydrate_share: f64,
    pub(super) protein_share: f64,
    pub(super) fibre_g_per_100_kcal: f64,
    pub(super) caffeine_mg: f64,
}

const fn food(
    name: &'static str,
    kcal: (f64, f64),
    carbohydrate_share: f64,
    protein_share: f64,
    fibre_g_per_100_kcal: f64,
    caffeine_mg: f64,
) -> Food {
    Food {
        name,
        kcal,
        carbohydrate_share,
        protein_share,
        fibre_g_per_100_kcal,
        caffeine_mg,
    }
}

pub(super) const BREAKFASTS: &[Food] = &[
    food(
        "Porridge with banana and honey",
        (420.0, 560.0),
        0.66,
        0.12,
        1.6,
        0.0,
    ),
    food("Eggs on toast", (380.0, 520.0), 0.35, 0.25, 0.8, 0.0),
    food(
        "Greek yoghurt, granola and berries",
        (350.0, 480.0),
        0.50,
        0.22,
        1.2,
        0.0,
    ),
    food(
        "Bagel with peanut butter and coffee",
        (420.0, 560.0),
        0.50,
        0.15,
        0.9,
        95.0,
    ),
];
pub(super) const LUNCHES: &[Food] = &[
    food(
        "Chicken and rice bowl",
        (600.0, 800.0),
        0.50,
        0.30,
        0.8,
        0.0,
    ),
    food(
        "Lentil soup with bread",
        (450.0, 620.0),
        0.58,
        0.20,
        2.2,
        0.0,
    ),
    food("Tuna salad sandwich", (480.0, 650.0), 0.45, 0.25, 1.0, 0.0),
    food("Leftover pasta", (550.0, 780.0), 0.60, 0.15, 0.9, 0.0),
];
pub(super) const DINNERS: &[Food] = &[
    food(
        "Salmon, potatoes and greens",
        (650.0, 850.0),
        0.40,
        0.30,
        1.1,
        0.0,
    ),
    food(
        "Vegetable curry with rice",
        (600.0, 850.0),
        0.60,
        0.12,
        1.5,
        0.0,
    ),
    food("Spaghetti bolognese", (700.0, 950.0), 0.55, 0.20, 0.9, 0.0),
    food("Homemade pizza", (800.0, 1100.0), 0.50, 0.17, 0.7, 0.0),
];
pub(super) const SNACKS: &[Food] = &[
    food("Apple and almonds", (180.0, 260.0), 0.40, 0.12, 2.5, 0.0),
    food("Flapjack", (220.0, 320.0), 0.60, 0.06, 1.0, 0.0),
    food("Toast with jam", (180.0, 250.0), 0.75, 0.10, 0.8, 0.0),
];
pub(super) const PRE_RUN: &[Food] = &[
    food("Banana", (100.0, 120.0), 0.93, 0.04, 2.6, 0.0),
    food(
        "Coffee and a slice of toast",
        (150.0, 220.0),
        0.70,
        0.12,
        1.0,
        95.0,
    ),
    food("Energy bar", (200.0, 250.0), 0.65, 0.10, 1.2, 0.0),
];
pub(super) const POST_RUN: &[Food] = &[
    food("Recovery shake", (200.0, 320.0), 0.45, 0.40, 0.3, 0.0),
    food("Chocolate milk", (300.0, 380.0), 0.60, 0.25, 0.5, 0.0),
    food("Recovery smoothie", (250.0, 380.0), 0.62, 0.25, 1.5, 0.0),
];

/// The presets the showcase athlete saves (by name, from [`PRESETS`]).
pub(super) const SHOWCASE_PRESETS: &[&str] = &[
    "Oats with banana",
    "Toast with honey",
    "Usual gel",
    "Recovery shake",
];

/// The preset an athlete saves, and where it is used in place of a drawn food.
pub(super) const PRESETS: &[(&str, NutritionEntryType, Nutrients)] = &[
    (
        "Oats with banana",
        NutritionEntryType::Daily,
        Nutrients {
            calories_kcal: Some(450.0),
            protein_g: Some(14.0),
            carbohydrate_g: Some(80.0),
            fat_g: Some(9.0),
            fibre_g: Some(8.0),
            caffeine_mg: None,
        },
    ),
    (
        "Toast with honey",
        NutritionEntryType::PreActivity,
        Nutrients {
            calories_kcal: Some(210.0),
            protein_g: Some(5.0),
            carbohydrate_g: Some(42.0),
            fat_g: Some(2.5),
            fibre_g: Some(1.5),
            caffeine_mg: None,
        },
    ),
    (
        "Usual gel",
        NutritionEntryType::DuringActivity,
        Nutrients {
            calories_kcal: Some(100.0),
            protein_g: Some(0.0),
            carbohydrate_g: Some(25.0),
            fat_g: Some(0.0),
            fibre_g: None,
            caffeine_mg: Some(0.0),
        },
    ),
    (
        "Recovery shake",
        NutritionEntryType::PostActivity,
        Nutrients {
            calories_kcal: Some(240.0),
            protein_g: Some(25.0),
            carbohydrate_g: Some(27.0),
            fat_g: Some(3.5),
            fibre_g: Some(1.0),
            caffeine_mg: None,
        },
    ),
    (
        "Black coffee",
        NutritionEntryType::PreActivity,
        Nutrients {
            calories_kcal: Some(2.0),
            protein_g: None,
            carbohydrate_g: None,
            fat_g: None,
            fibre_g: None,
            caffeine_mg: Some(95.0),
        },
    ),
];
