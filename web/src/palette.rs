//! Shard colours: a hand-picked palette that reads well on the dark stage,
//! continued with golden-angle hues when there are more shards than entries.

/// An sRGB colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rgb {
    /// Red.
    pub r: u8,
    /// Green.
    pub g: u8,
    /// Blue.
    pub b: u8,
}

impl Rgb {
    /// `#rrggbb`, for CSS.
    pub fn css(self) -> String {
        format!("#{:02x}{:02x}{:02x}", self.r, self.g, self.b)
    }

    /// Linear mix: `t = 0` is `self`, `t = 1` is `other`.
    pub fn mix(self, other: Rgb, t: f32) -> Rgb {
        let t = t.clamp(0.0, 1.0);
        let lerp = |a: u8, b: u8| (f32::from(a) + (f32::from(b) - f32::from(a)) * t).round() as u8;
        Rgb {
            r: lerp(self.r, other.r),
            g: lerp(self.g, other.g),
            b: lerp(self.b, other.b),
        }
    }
}

const fn hex(value: u32) -> Rgb {
    Rgb {
        r: (value >> 16) as u8,
        g: (value >> 8) as u8,
        b: value as u8,
    }
}

const PALETTE: [Rgb; 12] = [
    hex(0x38bdf8), // sky
    hex(0xf59e0b), // amber
    hex(0x34d399), // emerald
    hex(0xf472b6), // pink
    hex(0xa78bfa), // violet
    hex(0xa3e635), // lime
    hex(0xfb7185), // rose
    hex(0x22d3ee), // cyan
    hex(0xfbbf24), // yellow
    hex(0x818cf8), // indigo
    hex(0xfb923c), // orange
    hex(0x2dd4bf), // teal
];

/// The colour of the shard with this name: derived from the trailing number of
/// `s{n}` names so a shard keeps its colour when others come and go; other
/// names hash to a slot.
pub fn shard_color(name: &str) -> Rgb {
    let digits: String = name
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let slot = match digits.parse::<u64>() {
        Ok(number) if !digits.is_empty() => number,
        _ => name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |acc, byte| {
            (acc ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        }),
    };
    color_for_slot(slot)
}

/// Colour number `slot`: the palette first, then golden-angle hues.
pub fn color_for_slot(slot: u64) -> Rgb {
    if let Some(color) = PALETTE.get(slot as usize) {
        return *color;
    }
    let hue = remainder((slot as f64) * 137.507_764, 360.0);
    let lightness = if slot.is_multiple_of(2) { 0.66 } else { 0.58 };
    hsl(hue, 0.72, lightness)
}

/// `value % modulus` for a finite `value >= 0` and a whole `modulus`, the
/// same number `%` gives (the difference from a whole multiple of the
/// modulus is exact), without libm's `fmod` and the 128-bit division it
/// brings (2 KB of the page's wasm).
fn remainder(value: f64, modulus: f64) -> f64 {
    let rest = value - modulus * (value / modulus).floor();
    // The quotient rounded up to the next whole number: one modulus back.
    if rest < 0.0 { rest + modulus } else { rest }
}

/// HSL (hue in degrees, saturation and lightness in 0..=1) to sRGB.
pub fn hsl(hue: f64, saturation: f64, lightness: f64) -> Rgb {
    let chroma = (1.0 - (2.0 * lightness - 1.0).abs()) * saturation;
    let sector = hue / 60.0;
    let x = chroma * (1.0 - (remainder(sector, 2.0) - 1.0).abs());
    let (r, g, b) = match sector as u32 {
        0 => (chroma, x, 0.0),
        1 => (x, chroma, 0.0),
        2 => (0.0, chroma, x),
        3 => (0.0, x, chroma),
        4 => (x, 0.0, chroma),
        _ => (chroma, 0.0, x),
    };
    let m = lightness - chroma / 2.0;
    let channel = |value: f64| ((value + m) * 255.0).round().clamp(0.0, 255.0) as u8;
    Rgb {
        r: channel(r),
        g: channel(g),
        b: channel(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_remainder_is_the_one_percent_gives() {
        let check = |value: f64, modulus: f64| {
            assert_eq!(
                remainder(value, modulus),
                value % modulus,
                "{value} % {modulus}"
            );
        };
        for slot in 0..100_000u64 {
            check(slot as f64 * 137.507_764, 360.0);
        }
        for step in 0..60_000u32 {
            check(f64::from(step) * 1e-4, 2.0);
            check(f64::from(step) * 1e-4 + 6.0 - 1e-12, 2.0);
        }
        check(360.0 - f64::EPSILON * 256.0, 360.0);
        check(720.0, 360.0);
        check(0.0, 2.0);
    }

    #[test]
    fn numbered_shards_take_palette_slots_by_number() {
        assert_eq!(shard_color("s0"), PALETTE[0]);
        assert_eq!(shard_color("s3"), PALETTE[3]);
        assert_eq!(shard_color("eu-west-11"), PALETTE[11]);
        assert_eq!(shard_color("s12"), color_for_slot(12));
    }

    #[test]
    fn colours_beyond_the_palette_are_distinct() {
        let colors: Vec<Rgb> = (0..64).map(color_for_slot).collect();
        for (index, color) in colors.iter().enumerate() {
            assert!(
                !colors[..index].contains(color),
                "slot {index} repeats {color:?}"
            );
        }
    }

    #[test]
    fn css_and_mix() {
        assert_eq!(hex(0x38bdf8).css(), "#38bdf8");
        let black = hex(0);
        let white = hex(0xffffff);
        assert_eq!(black.mix(white, 0.5), hex(0x808080));
        assert_eq!(black.mix(white, 2.0), white);
        assert_eq!(hsl(0.0, 1.0, 0.5), hex(0xff0000));
        assert_eq!(hsl(240.0, 1.0, 0.5), hex(0x0000ff));
    }
}
