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
    let plain = encode(width, height, ImageFormat::Jpeg);
    let Some(taken) = taken else { return plain };
    // APP1 "Exif" segment right after SOI: a little-endian TIFF with IFD0 -> Exif IFD ->
    // DateTimeOriginal.
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
    // Exif IFD at 26: one entry, DateTimeOriginal (0x9003, ASCII, 20) -> 44
    tiff.extend_from_slice(&1u16.to_le_bytes());
    tiff.extend_from_slice(&0x9003u16.to_le_bytes());
    tiff.extend_from_slice(&2u16.to_le_bytes());
    tiff.extend_from_slice(&20u32.to_le_bytes());
    tiff.extend_from_slice(&44u32.to_le_bytes());
    tiff.extend_from_slice(&0u32.to_le_bytes());
    let mut text = taken.as_bytes().to_vec();
    text.resize(19, b' ');
    text.push(0);
    tiff.extend_from_slice(&text);
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
