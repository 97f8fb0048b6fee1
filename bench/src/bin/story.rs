//! Time per story of the built-in provider for a 12-megapixel JPEG (4000 x 3000, camera-like
//! content, quality 90), and the `openai` provider's preparation of the same photo (decode,
//! downscale to 1024 px, JPEG, base64), and the thumbnail job's rendering of it (both sizes:
//! time, and the bytes each thumbnail adds to the store).
//! Run: `cargo build --release -p bench && target/release/story [RUNS]`.

use std::io::Cursor;
use std::time::{Duration, Instant};

use service::stories::{StoryRequest, Style, builtin, openai};

fn photo() -> anyhow::Result<Vec<u8>> {
    // Smooth gradients with fine texture, so the JPEG is about the size a camera writes.
    let image = image::RgbImage::from_fn(4000, 3000, |x, y| {
        let noise = ((x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503)) >> 7) as u8 & 31;
        image::Rgb([
            ((x / 16) as u8).wrapping_add(noise),
            ((y / 12) as u8).wrapping_add(noise / 2),
            (((x + y) / 28) as u8).wrapping_add(noise),
        ])
    });
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut Cursor::new(&mut jpeg), 90)
        .encode_image(&image)?;
    Ok(jpeg)
}

fn main() -> anyhow::Result<()> {
    let runs: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(10);
    let jpeg = photo()?;
    println!(
        "photo: 4000 x 3000 JPEG, {:.1} MiB",
        jpeg.len() as f64 / 1024.0 / 1024.0
    );
    let mut request = StoryRequest {
        image: jpeg.clone().into(),
        content_type: Some("image/jpeg".into()),
        title: Some("Twelve megapixels".into()),
        taken_at: None,
        style: Style::Adventure,
        language: "en".into(),
        checksum: None,
    };
    let mut builtin_times: Vec<Duration> = Vec::new();
    for n in 0..runs {
        request.style = Style::ALL[n % Style::ALL.len()];
        let started = Instant::now();
        let story = builtin::write_story(&request);
        builtin_times.push(started.elapsed());
        anyhow::ensure!(!story.body.is_empty());
    }
    println!("builtin story: {}", bench::summary(&mut builtin_times));
    let mut prepare_times: Vec<Duration> = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let url = openai::data_url(&jpeg).map_err(|error| anyhow::anyhow!("{error}"))?;
        prepare_times.push(started.elapsed());
        anyhow::ensure!(url.starts_with("data:image/jpeg;base64,"));
    }
    println!(
        "openai photo preparation (downscale to 1024 px + base64): {}",
        bench::summary(&mut prepare_times)
    );
    let limits = service::images::ImageLimits {
        max_pixels: 50_000_000,
        max_side: 20_000,
    };
    let mut thumbnail_times: Vec<Duration> = Vec::new();
    let mut sizes = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let thumbnails = service::photos::thumbnails::render(Cursor::new(&jpeg), limits)
            .ok_or_else(|| anyhow::anyhow!("the photo could not be decoded"))?;
        thumbnail_times.push(started.elapsed());
        sizes = thumbnails
            .iter()
            .map(|(side, bytes)| format!("{side} px: {} KiB", bytes.len() / 1024))
            .collect();
    }
    println!(
        "thumbnails (decode, 256 and 1024 px JPEGs): {}; {}",
        bench::summary(&mut thumbnail_times),
        sizes.join(", ")
    );
    Ok(())
}
