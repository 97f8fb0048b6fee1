//! Real image files made in the tests.

use std::io::Cursor;

use image::{ImageFormat, Rgb, RgbImage};

fn picture(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        Rgb([
            (x * 255 / width.max(1)) as u8,
            (y * 255 / height.max(1)) as u8,
            128,
        ])
    })
}

fn encode(width: u32, height: u32, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    picture(width, height)
        .write_to(&mut out, format)
        .unwrap_or_else(|error| panic!("encoding a test {format:?} failed: {error}"));
    out.into_inner()
}

pub fn png(width: u32, height: u32) -> Vec<u8> {
    encode(width, height, ImageFormat::Png)
}

pub fn webp(width: u32, height: u32) -> Vec<u8> {
    encode(width, height, ImageFormat::WebP)
}

/// A JPEG; with `taken`, an EXIF block whose DateTimeOriginal is that `YYYY:MM:DD HH:MM:SS`.
pub fn jpeg(width: u32, height: u32, taken: Option<&str>) -> Vec<u8> {
    match taken {
        Some(taken) => jpeg_taken(width, height, taken, None),
        None => encode(width, height, ImageFormat::Jpeg),
    }
}

/// A JPEG whose EXIF says it was taken at `taken` (`YYYY:MM:DD HH:MM:SS`, the camera's clock),
/// with `OffsetTimeOriginal` `offset` (`+02:00`) when given.
pub fn jpeg_taken(width: u32, height: u32, taken: &str, offset: Option<&str>) -> Vec<u8> {
    let plain = encode(width, height, ImageFormat::Jpeg);
    // APP1 "Exif" segment right after SOI: a little-endian TIFF with IFD0 -> Exif IFD ->
    // DateTimeOriginal (and OffsetTimeOriginal).
    let entries: u16 = if offset.is_some() { 2 } else { 1 };
    let data_at = 26 + 2 + 12 * u32::from(entries) + 4;
    let mut tiff: Vec<u8> = Vec::new();
    tiff.extend_from_slice(b"II*\0");
    tiff.extend_from_slice(&8u32.to_le_bytes()); // IFD0 at 8
    // IFD0: one entry, ExifIFDPointer (0x8769, LONG) -> 26
    tiff.extend_from_slice(&1u16.to_le_bytes());
    tiff.extend_from_slice(&0x8769u16.to_le_bytes());
    tiff.extend_from_slice(&4u16.to_le_bytes());
    tiff.extend_from_slice(&1u32.to_le_bytes());
    tiff.extend_from_slice(&26u32.to_le_bytes());
    tiff.extend_from_slice(&0u32.to_le_bytes()); // no next IFD
    // Exif IFD at 26: DateTimeOriginal (0x9003, ASCII, 20), then OffsetTimeOriginal (0x9011,
    // ASCII, 7), their values after the IFD.
    tiff.extend_from_slice(&entries.to_le_bytes());
    tiff.extend_from_slice(&0x9003u16.to_le_bytes());
    tiff.extend_from_slice(&2u16.to_le_bytes());
    tiff.extend_from_slice(&20u32.to_le_bytes());
    tiff.extend_from_slice(&data_at.to_le_bytes());
    if offset.is_some() {
        tiff.extend_from_slice(&0x9011u16.to_le_bytes());
        tiff.extend_from_slice(&2u16.to_le_bytes());
        tiff.extend_from_slice(&7u32.to_le_bytes());
        tiff.extend_from_slice(&(data_at + 20).to_le_bytes());
    }
    tiff.extend_from_slice(&0u32.to_le_bytes());
    let mut text = taken.as_bytes().to_vec();
    text.resize(19, b' ');
    text.push(0);
    tiff.extend_from_slice(&text);
    if let Some(offset) = offset {
        let mut text = offset.as_bytes().to_vec();
        text.resize(6, b' ');
        text.push(0);
        tiff.extend_from_slice(&text);
    }
    let mut segment = b"Exif\0\0".to_vec();
    segment.extend_from_slice(&tiff);
    let length = u16::try_from(segment.len() + 2).unwrap_or(u16::MAX);
    let mut out = plain[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(&segment);
    out.extend_from_slice(&plain[2..]);
    out
}
