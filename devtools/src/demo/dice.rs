//! Randomness: one seeded stream per athlete, and the IEEE-exact draws the generator makes
//! from it (see the module comment of `demo` on why no transcendental functions).

use rand::rngs::Xoshiro256PlusPlus;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

/// `√3`, which scales the Irwin-Hall sum in [`Dice::normal`] to a unit standard deviation.
pub(super) const SQRT_3: f64 = 1.732_050_807_568_877_2;

pub(super) struct Dice(Xoshiro256PlusPlus);

impl Dice {
    /// One independent stream per athlete, so an athlete's plan does not depend on the others.
    pub(super) fn for_athlete(seed: u64, index: usize) -> Self {
        let stream = splitmix64(splitmix64(seed) ^ index as u64);
        Self(Xoshiro256PlusPlus::seed_from_u64(stream))
    }

    /// Uniform in [0, 1): the top 53 bits, the precision of an f64.
    pub(super) fn unit(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub(super) fn uniform(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.unit()
    }

    pub(super) fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Inclusive. The modulo bias is below 2^-50 for the small ranges used here.
    pub(super) fn int(&mut self, low: u32, high: u32) -> u32 {
        low + (self.0.next_u64() % u64::from(high - low + 1)) as u32
    }

    pub(super) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.int(0, items.len() as u32 - 1) as usize]
    }

    /// Approximately normal: a sum of four uniforms (Irwin-Hall). Bounded at ±3.46 standard
    /// deviations, which keeps physiological values plausible without clamping every draw, and
    /// needs no transcendental functions.
    pub(super) fn normal(&mut self, mean: f64, sd: f64) -> f64 {
        let sum = self.unit() + self.unit() + self.unit() + self.unit();
        mean + sd * (sum - 2.0) * SQRT_3
    }

    pub(super) fn uuid(&mut self) -> Uuid {
        let high = self.0.next_u64().to_be_bytes();
        let low = self.0.next_u64().to_be_bytes();
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&high);
        bytes[8..].copy_from_slice(&low);
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

pub(super) fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// A 1-5 (or 1-10) scale value from a continuous score.
pub(super) fn scale(score: f64, max: u8) -> u8 {
    score.round().clamp(1.0, f64::from(max)) as u8
}
