//! The offline story provider: a story of several paragraphs written from what the photo
//! itself carries (EXIF date, time, camera, GPS and orientation, its size, its dominant
//! colours from a downscaled decode, and its title), in the requested style, in English.
//!
//! Deterministic: the same photo, style and language always give the same story (choices
//! come from a hash of the three, never from a clock or a random source).

use std::io::Cursor;

use chrono::{Datelike, NaiveDateTime, Timelike};
use sha2::{Digest, Sha256};

use super::provider::{ProviderError, StoryDraft, StoryProvider, StoryRequest, Style};

/// The offline provider.
#[derive(Debug, Clone, Default)]
pub struct BuiltinProvider;

#[async_trait::async_trait]
impl StoryProvider for BuiltinProvider {
    fn name(&self) -> &'static str {
        "builtin"
    }

    fn model(&self) -> Option<&str> {
        None
    }

    fn language_pattern(&self) -> &'static str {
        // English: `en` with any subtags (`en-GB`), in any case.
        "^[Ee][Nn](-[A-Za-z0-9]{1,8})*$"
    }

    fn check_language(&self, language: &str) -> Result<(), String> {
        let primary = language.split('-').next().unwrap_or_default();
        if primary.eq_ignore_ascii_case("en") {
            Ok(())
        } else {
            Err(format!(
                "the built-in story writer writes English only (\"en\"), not {language:?}; \
                 other languages need AISTORY_STORY_PROVIDER=openai"
            ))
        }
    }

    async fn write(&self, request: &StoryRequest) -> Result<StoryDraft, ProviderError> {
        let request = request.clone();
        // Decoding a 12-megapixel photo takes a core for a while: keep it off the runtime.
        tokio::task::spawn_blocking(move || Ok(write_story(&request)))
            .await
            .map_err(|error| {
                tracing::error!(%error, "the built-in story writer stopped");
                ProviderError::Transient("the story writer stopped unexpectedly".to_owned())
            })?
    }
}

/// Writes the story (CPU-bound; call from a blocking thread).
pub fn write_story(request: &StoryRequest) -> StoryDraft {
    let facts = Facts::read(request);
    let mut dice = Dice::new(request);
    compose(&facts, request.style, &mut dice)
}

/// What the photo tells us.
#[derive(Debug, Default)]
pub struct Facts {
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Local date and time the photo was taken, as the camera wrote it.
    pub taken: Option<NaiveDateTime>,
    pub camera: Option<String>,
    /// Latitude and longitude in degrees.
    pub place: Option<(f64, f64)>,
    /// Named dominant colours, most present first.
    pub colours: Vec<&'static str>,
    /// Mean luminance, 0 (black) to 1 (white), when the image could be decoded.
    pub brightness: Option<f32>,
    pub title: Option<String>,
}

impl Facts {
    pub fn read(request: &StoryRequest) -> Facts {
        let mut facts = Facts {
            title: request
                .title
                .as_deref()
                .map(str::trim)
                .filter(|title| !title.is_empty())
                .map(str::to_owned),
            taken: request.taken_at,
            ..Facts::default()
        };
        let mut swap_sides = false;
        if let Ok(exif) = exif::Reader::new().read_from_container(&mut Cursor::new(&request.image))
        {
            let text = |tag| {
                exif.get_field(tag, exif::In::PRIMARY)
                    .and_then(|field| match &field.value {
                        exif::Value::Ascii(values) => values
                            .first()
                            .map(|v| {
                                String::from_utf8_lossy(v)
                                    .trim_matches(['\0', ' '])
                                    .to_owned()
                            })
                            .filter(|v| !v.is_empty()),
                        _ => None,
                    })
            };
            facts.camera = match (text(exif::Tag::Make), text(exif::Tag::Model)) {
                (Some(make), Some(model))
                    if model.to_lowercase().starts_with(&make.to_lowercase()) =>
                {
                    Some(model)
                }
                (Some(make), Some(model)) => Some(format!("{make} {model}")),
                (make, model) => make.or(model),
            };
            if let Some(when) = text(exif::Tag::DateTimeOriginal)
                && let Ok(when) = NaiveDateTime::parse_from_str(&when, "%Y:%m:%d %H:%M:%S")
            {
                facts.taken = Some(when);
            }
            let coordinate = |value_tag, ref_tag, negative: &str| {
                let field = exif.get_field(value_tag, exif::In::PRIMARY)?;
                let exif::Value::Rational(parts) = &field.value else {
                    return None;
                };
                let [d, m, s] = parts.get(..3)? else {
                    return None;
                };
                let degrees = d.to_f64() + m.to_f64() / 60.0 + s.to_f64() / 3600.0;
                let sign = if text(ref_tag).as_deref() == Some(negative) {
                    -1.0
                } else {
                    1.0
                };
                degrees.is_finite().then_some(sign * degrees)
            };
            if let (Some(lat), Some(lon)) = (
                coordinate(exif::Tag::GPSLatitude, exif::Tag::GPSLatitudeRef, "S"),
                coordinate(exif::Tag::GPSLongitude, exif::Tag::GPSLongitudeRef, "W"),
            ) && lat.abs() <= 90.0
                && lon.abs() <= 180.0
            {
                facts.place = Some((lat, lon));
            }
            if let Some(orientation) = exif
                .get_field(exif::Tag::Orientation, exif::In::PRIMARY)
                .and_then(|field| field.value.get_uint(0))
            {
                // 5-8: the camera was turned; width and height swap when displayed.
                swap_sides = (5..=8).contains(&orientation);
            }
        }
        if let Some((width, height, colours, brightness)) = look_at(&request.image) {
            facts.width = Some(width);
            facts.height = Some(height);
            facts.colours = colours;
            facts.brightness = Some(brightness);
        } else if let Ok(size) = imagesize::blob_size(&request.image) {
            facts.width = u32::try_from(size.width).ok();
            facts.height = u32::try_from(size.height).ok();
        }
        if swap_sides {
            std::mem::swap(&mut facts.width, &mut facts.height);
        }
        facts
    }

    fn shape(&self) -> &'static str {
        match (self.width, self.height) {
            (Some(w), Some(h)) if u64::from(w) * 10 > u64::from(h) * 11 => "wide",
            (Some(w), Some(h)) if u64::from(h) * 10 > u64::from(w) * 11 => "tall",
            (Some(_), Some(_)) => "square",
            _ => "small",
        }
    }

    fn megapixels(&self) -> Option<f64> {
        Some(f64::from(self.width?) * f64::from(self.height?) / 1e6)
    }
}

/// The named colours we can see, with their sRGB values.
const PALETTE: [(&str, [u8; 3]); 20] = [
    ("black", [18, 18, 20]),
    ("charcoal grey", [70, 72, 75]),
    ("silver grey", [160, 162, 165]),
    ("white", [240, 240, 236]),
    ("crimson", [175, 30, 45]),
    ("rose pink", [230, 140, 165]),
    ("orange", [230, 120, 35]),
    ("amber", [215, 165, 50]),
    ("lemon yellow", [240, 225, 80]),
    ("olive", [120, 120, 45]),
    ("forest green", [35, 95, 45]),
    ("leaf green", [105, 170, 65]),
    ("teal", [30, 128, 128]),
    ("sky blue", [125, 180, 230]),
    ("ocean blue", [30, 80, 160]),
    ("navy", [22, 30, 80]),
    ("violet", [125, 60, 165]),
    ("lavender", [185, 165, 220]),
    ("chocolate brown", [100, 62, 35]),
    ("sand", [212, 192, 150]),
];

/// Decodes (bounded in memory), downscales, and names the dominant colours. `None` when the
/// format cannot be decoded here (the story then does without colours).
fn look_at(bytes: &[u8]) -> Option<(u32, u32, Vec<&'static str>, f32)> {
    let mut reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .ok()?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(20_000);
    limits.max_image_height = Some(20_000);
    limits.max_alloc = Some(512 * 1024 * 1024);
    reader.limits(limits);
    let decoded = reader.decode().ok()?;
    let (width, height) = (decoded.width(), decoded.height());
    let small = decoded.thumbnail(48, 48).to_rgb8();
    let mut counts = [0u32; PALETTE.len()];
    let mut luma = 0f64;
    for pixel in small.pixels() {
        let [r, g, b] = pixel.0;
        luma += (0.2126 * f64::from(r) + 0.7152 * f64::from(g) + 0.0722 * f64::from(b)) / 255.0;
        let nearest = PALETTE
            .iter()
            .enumerate()
            .min_by_key(|(_, (_, [pr, pg, pb]))| {
                let d = |a: u8, b: u8| (i32::from(a) - i32::from(b)).pow(2);
                // Weighted for the eye: green differences show most.
                2 * d(r, *pr) + 4 * d(g, *pg) + 3 * d(b, *pb)
            })
            .map(|(index, _)| index)
            .unwrap_or(0);
        counts[nearest] += 1;
    }
    let total = small.pixels().len().max(1) as u32;
    let mut ranked: Vec<(usize, u32)> = counts.iter().copied().enumerate().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let colours = ranked
        .into_iter()
        .filter(|(_, count)| count * 100 >= total * 6)
        .take(3)
        .map(|(index, _)| PALETTE[index].0)
        .collect();
    Some((width, height, colours, (luma / f64::from(total)) as f32))
}

/// Deterministic choices from the photo, style and language.
struct Dice(u64);

impl Dice {
    fn new(request: &StoryRequest) -> Dice {
        let mut hash = Sha256::new();
        match &request.checksum {
            Some(checksum) => hash.update(checksum.as_bytes()),
            None => hash.update(&request.image),
        }
        hash.update(request.style.as_str().as_bytes());
        hash.update(request.language.to_ascii_lowercase().as_bytes());
        hash.update(request.title.as_deref().unwrap_or_default().as_bytes());
        let digest = hash.finalize();
        let mut seed = [0u8; 8];
        seed.copy_from_slice(&digest[..8]);
        Dice(u64::from_le_bytes(seed))
    }

    /// splitmix64: small, fast, and the same on every machine forever.
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn pick<'a>(&mut self, options: &[&'a str]) -> &'a str {
        let len = options.len().max(1) as u64;
        options
            .get((self.next() % len) as usize)
            .copied()
            .unwrap_or_default()
    }
}

fn time_of_day(hour: u32) -> &'static str {
    match hour {
        5..=7 => "at dawn",
        8..=11 => "in the morning",
        12..=16 => "in the afternoon",
        17..=21 => "in the evening",
        _ => "in the middle of the night",
    }
}

fn season(month: u32, southern: bool) -> &'static str {
    let northern = match month {
        3..=5 => 0,
        6..=8 => 1,
        9..=11 => 2,
        _ => 3,
    };
    let index = if southern {
        (northern + 2) % 4
    } else {
        northern
    };
    ["spring", "summer", "autumn", "winter"][index]
}

fn place_phrase(place: Option<(f64, f64)>) -> String {
    match place {
        Some((lat, lon)) => format!(
            "at {:.4}° {}, {:.4}° {}",
            lat.abs(),
            if lat < 0.0 { "S" } else { "N" },
            lon.abs(),
            if lon < 0.0 { "W" } else { "E" }
        ),
        None => "in a place no map had marked".to_owned(),
    }
}

fn colour_phrase(colours: &[&str]) -> String {
    match colours {
        [] => "colours nobody could name".to_owned(),
        [one] => one.to_string(),
        [one, two] => format!("{one} and {two}"),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn compose(facts: &Facts, style: Style, dice: &mut Dice) -> StoryDraft {
    let colours = colour_phrase(&facts.colours);
    let main_colour = facts.colours.first().copied().unwrap_or("silver grey");
    let place = place_phrase(facts.place);
    let when = match facts.taken {
        Some(taken) => format!(
            "{} on {}, {} {} {} (a {} day)",
            time_of_day(taken.hour()),
            taken.format("%A"),
            taken.day(),
            taken.format("%B"),
            taken.year(),
            season(taken.month(), facts.place.is_some_and(|(lat, _)| lat < 0.0))
        ),
        None => "on a day no calendar recorded".to_owned(),
    };
    let light = match facts.brightness {
        Some(b) if b > 0.62 => "bright",
        Some(b) if b < 0.3 => "dim",
        Some(_) => "soft",
        None => "uncertain",
    };
    let shape = facts.shape();
    let camera = facts
        .camera
        .as_deref()
        .map(|camera| format!("the {camera}"))
        .unwrap_or_else(|| "a camera whose name was never written down".to_owned());
    let size = match (facts.width, facts.height, facts.megapixels()) {
        (Some(w), Some(h), Some(mp)) if mp >= 1.0 => {
            format!("{w} by {h} pixels, {mp:.1} megapixels")
        }
        (Some(w), Some(h), _) => format!("{w} by {h} pixels"),
        _ => "of a size nobody measured".to_owned(),
    };
    let name = facts.title.clone();
    let subject = name
        .as_deref()
        .map(|title| format!("“{title}”"))
        .unwrap_or_else(|| format!("the {main_colour} picture"));

    let (title, paragraphs): (String, Vec<String>) = match style {
        Style::Adventure => {
            let hero = dice.pick(&["Mara", "Tomas", "Ines", "Kofi", "Lena", "Arjun"]);
            let quest = dice.pick(&["a map", "a lost key", "a silver compass", "an old letter"]);
            (
                match &name {
                    Some(title) => format!("{title}: An Adventure"),
                    None => format!("The {} Expedition", capitalise(main_colour)),
                },
                vec![
                    format!(
                        "It began {when}, {place}. {hero} stood at the edge of a {shape} world \
                         painted in {colours}, holding {quest} that pointed somewhere nobody had \
                         been."
                    ),
                    format!(
                        "The light was {light}, and {hero} {}. Every step into {subject} \
                         revealed more: {size}, each one a stone on the path ahead.",
                        dice.pick(&[
                            "knew there was no time to waste",
                            "laughed at the size of the task",
                            "tightened the straps of an old pack",
                        ])
                    ),
                    format!(
                        "Only {camera} saw what happened next: the {main_colour} horizon opened \
                         like a door, and {hero} {}.",
                        dice.pick(&[
                            "ran through it before it could close",
                            "stepped through without looking back",
                            "whistled once and walked on",
                        ])
                    ),
                    format!(
                        "When the adventure was over, {hero} kept {quest} on a shelf at home, \
                         next to a photograph that still smelled of {}.",
                        dice.pick(&["wind and salt", "pine and rain", "dust and sunlight"])
                    ),
                ],
            )
        }
        Style::Bedtime => {
            let animal = dice.pick(&[
                "a small fox",
                "a sleepy owl",
                "a gentle bear",
                "a little rabbit",
            ]);
            (
                match &name {
                    Some(title) => format!("Goodnight, {title}"),
                    None => format!("Goodnight, {} World", capitalise(main_colour)),
                },
                vec![
                    format!(
                        "Once upon a time, {when}, {animal} found {subject}, a {shape} little \
                         world all in {colours}."
                    ),
                    format!(
                        "The light there was {light}, and the air was {}. {} counted the \
                         pixels one by one, {size}, and yawned before reaching the end.",
                        dice.pick(&["warm as a blanket", "quiet as snow", "soft as a pillow"]),
                        capitalise(animal)
                    ),
                    format!(
                        "{} had kept the moment safe, {place}, so that it would still be \
                         there tomorrow, and the day after, and the day after that.",
                        capitalise(&camera)
                    ),
                    format!(
                        "So {animal} curled up in the {main_colour} corner, closed both eyes, \
                         and {}. Goodnight, little world. Goodnight.",
                        dice.pick(&[
                            "dreamed of nothing at all",
                            "dreamed of the sea",
                            "listened to the stars humming",
                        ])
                    ),
                ],
            )
        }
        Style::Mystery => {
            let detective = dice.pick(&[
                "Inspector Vale",
                "Detective Ortiz",
                "Miss Harrow",
                "Sergeant Okafor",
            ]);
            (
                match &name {
                    Some(title) => format!("The Mystery of {title}"),
                    None => format!("The Mystery of the {} Photograph", capitalise(main_colour)),
                },
                vec![
                    format!(
                        "The photograph arrived without a note. {detective} turned it over: \
                         {shape}, {size}, its colours {colours}. Taken {when}, {place}."
                    ),
                    format!(
                        "\"The light is {light},\" {detective} murmured. \"Whoever stood here \
                         {}.\"",
                        dice.pick(&[
                            "was waiting for someone",
                            "did not want to be seen",
                            "knew exactly where to look",
                        ])
                    ),
                    format!(
                        "The first clue was the camera: {camera}. The second was the {main_colour} \
                         in the corner of {subject}, a colour that {}.",
                        dice.pick(&[
                            "should not have been there at all",
                            "matched a scarf found at the station",
                            "appears in only one street of the city",
                        ])
                    ),
                    format!(
                        "By midnight the case was closed. {detective} pinned the photograph \
                         to the wall and wrote one word beneath it: {}.",
                        dice.pick(&["\"Remembered.\"", "\"Solved.\"", "\"Home.\""])
                    ),
                ],
            )
        }
        Style::Poem => (
            match &name {
                Some(title) => format!("Ode to {title}"),
                None => format!("Ode in {}", capitalise(main_colour)),
            },
            vec![
                format!(
                    "{} I found you,\n{place},\na {shape} frame of {colours},\nheld still in \
                     {light} light.",
                    capitalise(&when)
                ),
                format!(
                    "{} kept you,\n{size},\nand every one of them {}\nthe way a shell keeps \
                     the sea.",
                    capitalise(&camera),
                    dice.pick(&["remembers", "still whispers", "holds"])
                ),
                format!(
                    "{} the {main_colour} will fade\nfrom the sky that made it,\nbut not from \
                     {subject},\nnot from here.",
                    dice.pick(&["Someday", "One evening", "Slowly"])
                ),
            ],
        ),
    };
    StoryDraft {
        title: title.chars().take(200).collect(),
        body: paragraphs.join("\n\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(style: Style) -> StoryRequest {
        let mut image = image::RgbImage::new(64, 32);
        for (x, _, pixel) in image.enumerate_pixels_mut() {
            *pixel = if x < 40 {
                image::Rgb([30, 80, 160])
            } else {
                image::Rgb([230, 120, 35])
            };
        }
        let mut png = Vec::new();
        image
            .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        StoryRequest {
            image: png.into(),
            content_type: Some("image/png".into()),
            title: Some("Harbour".into()),
            taken_at: None,
            style,
            language: "en".into(),
            checksum: None,
        }
    }

    #[test]
    fn stories_use_the_photo_and_are_deterministic() {
        for style in Style::ALL {
            let first = write_story(&request(style));
            assert_eq!(first, write_story(&request(style)), "{style}");
            assert!(
                first.body.split("\n\n").count() >= 3,
                "{style}: {}",
                first.body
            );
            assert!(first.title.contains("Harbour"), "{}", first.title);
            assert!(first.body.contains("ocean blue"), "{style}: {}", first.body);
            assert!(first.body.contains("64 by 32"), "{style}: {}", first.body);
        }
        assert_ne!(
            write_story(&request(Style::Adventure)).body,
            write_story(&request(Style::Mystery)).body
        );
    }

    #[test]
    fn only_english_is_accepted() {
        assert!(BuiltinProvider.check_language("en").is_ok());
        assert!(BuiltinProvider.check_language("en-GB").is_ok());
        assert!(
            BuiltinProvider
                .check_language("fr")
                .unwrap_err()
                .contains("English")
        );
    }

    #[test]
    fn undecodable_bytes_still_get_a_story() {
        let mut broken = request(Style::Bedtime);
        broken.image = bytes::Bytes::from_static(b"GIF89a not really");
        let story = write_story(&broken);
        assert!(
            story.body.contains("colours nobody could name"),
            "{}",
            story.body
        );
    }
}
