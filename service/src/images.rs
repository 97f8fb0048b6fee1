//! What a photo's own bytes say: its type (from magic numbers, never the declared
//! Content-Type), its size in pixels (from the header, no decode) and when it was taken (EXIF).

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

/// Accepted image types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    Jpeg,
    Png,
    Webp,
    Gif,
    Heic,
}

impl ImageKind {
    pub fn content_type(self) -> &'static str {
        match self {
            ImageKind::Jpeg => "image/jpeg",
            ImageKind::Png => "image/png",
            ImageKind::Webp => "image/webp",
            ImageKind::Gif => "image/gif",
            ImageKind::Heic => "image/heic",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            ImageKind::Jpeg => "jpg",
            ImageKind::Png => "png",
            ImageKind::Webp => "webp",
            ImageKind::Gif => "gif",
            ImageKind::Heic => "heic",
        }
    }

    /// Every Content-Type [`Self::from_content_type`] knows (lower case, no parameters).
    pub const CONTENT_TYPES: [&'static str; 7] = [
        "image/jpeg",
        "image/jpg",
        "image/png",
        "image/webp",
        "image/gif",
        "image/heic",
        "image/heif",
    ];

    pub fn from_content_type(content_type: &str) -> Option<Self> {
        match content_type.trim().to_ascii_lowercase().as_str() {
            "image/jpeg" | "image/jpg" => Some(ImageKind::Jpeg),
            "image/png" => Some(ImageKind::Png),
            "image/webp" => Some(ImageKind::Webp),
            "image/gif" => Some(ImageKind::Gif),
            "image/heic" | "image/heif" => Some(ImageKind::Heic),
            _ => None,
        }
    }
}

/// The accepted types, for messages.
pub const ACCEPTED: &str = "JPEG, PNG, WebP, GIF or HEIC";

/// How many leading bytes [`sniff`] needs.
pub const SNIFF_BYTES: usize = 16;
/// How many leading bytes are kept to read dimensions and EXIF from.
pub const HEADER_BYTES: usize = 256 * 1024;

/// The type of an image from its first bytes, or `None` when it is not one we accept.
pub fn sniff(head: &[u8]) -> Option<ImageKind> {
    if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Some(ImageKind::Jpeg);
    }
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Some(ImageKind::Png);
    }
    if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
        return Some(ImageKind::Gif);
    }
    if head.len() >= 12 && &head[0..4] == b"RIFF" && &head[8..12] == b"WEBP" {
        return Some(ImageKind::Webp);
    }
    if head.len() >= 12 && &head[4..8] == b"ftyp" {
        let brand = &head[8..12];
        if [
            b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1",
        ]
        .iter()
        .any(|known| brand == *known)
        {
            return Some(ImageKind::Heic);
        }
    }
    None
}

/// The largest images accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageLimits {
    pub max_pixels: u64,
    pub max_side: u32,
}

impl ImageLimits {
    pub fn from_settings(storage: &settings::StorageSettings) -> Self {
        ImageLimits {
            max_pixels: storage.max_image_pixels,
            max_side: storage.max_image_side,
        }
    }
}

/// Width and height of an image of `kind` from its header bytes, within `limits`: an image
/// whose header cannot be read is refused (415: a signature followed by anything else is no
/// image), one too large too (422 on `file`).
pub fn checked_dimensions(
    header: &[u8],
    kind: ImageKind,
    limits: ImageLimits,
) -> Result<(i32, i32), crate::ServiceError> {
    // A PNG's first chunk is its header (IHDR); without it the size bytes mean nothing.
    let structured = match kind {
        ImageKind::Png => header.get(12..16) == Some(b"IHDR".as_slice()),
        _ => true,
    };
    let dimensions = if structured { dimensions(header) } else { None };
    let Some((width, height)) = dimensions else {
        return Err(crate::ServiceError::UnsupportedMedia {
            detail: format!(
                "the file starts like a {} image, but its header cannot be read: it is not a \
                 valid image",
                kind.content_type()
            ),
        });
    };
    let (w, h) = (width as u64, height as u64);
    if width <= 0 || height <= 0 {
        return Err(crate::ServiceError::UnsupportedMedia {
            detail: "the image says it has no pixels: it is not a valid image".to_owned(),
        });
    }
    if w > u64::from(limits.max_side) || h > u64::from(limits.max_side) || w * h > limits.max_pixels
    {
        return Err(crate::ServiceError::Validation(
            [(
                "file".to_owned(),
                vec![format!(
                    "the image is {width} x {height} pixels; at most {} pixels a side and {} \
                     megapixels are accepted",
                    limits.max_side,
                    limits.max_pixels as f64 / 1_000_000.0
                )],
            )]
            .into(),
        ));
    }
    Ok((width, height))
}

/// Width and height from the header bytes, when they can be read.
pub fn dimensions(header: &[u8]) -> Option<(i32, i32)> {
    let size = imagesize::blob_size(header).ok()?;
    Some((
        i32::try_from(size.width).ok()?,
        i32::try_from(size.height).ok()?,
    ))
}

/// When a photo was taken, from its EXIF data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TakenAt {
    /// `DateTimeOriginal`: the camera's clock, in whatever time zone it was set to.
    pub local: NaiveDateTime,
    /// The instant, when the photo also gives its UTC offset (`OffsetTimeOriginal`). Without
    /// one, the local time says nothing exact about the instant (it is not UTC).
    pub instant: Option<DateTime<Utc>>,
}

/// When the photo was taken, from EXIF `DateTimeOriginal` (and `OffsetTimeOriginal`).
pub fn taken_at(header: &[u8]) -> Option<TakenAt> {
    let exif = exif::Reader::new()
        .read_from_container(&mut std::io::Cursor::new(header))
        .ok()?;
    let field = exif.get_field(exif::Tag::DateTimeOriginal, exif::In::PRIMARY)?;
    let exif::Value::Ascii(values) = &field.value else {
        return None;
    };
    let mut when = exif::DateTime::from_ascii(values.first()?).ok()?;
    if let Some(offset) = exif.get_field(exif::Tag::OffsetTimeOriginal, exif::In::PRIMARY)
        && let exif::Value::Ascii(values) = &offset.value
        && let Some(text) = values.first()
    {
        let _ = when.parse_offset(text);
    }
    let local = NaiveDate::from_ymd_opt(
        i32::from(when.year),
        u32::from(when.month),
        u32::from(when.day),
    )?
    .and_hms_opt(
        u32::from(when.hour),
        u32::from(when.minute),
        u32::from(when.second),
    )?;
    // A camera clock can say anything; keep only dates a photo can have (and every database
    // can store): from 1826 to tomorrow, with a day's margin for time zones.
    let earliest = NaiveDate::from_ymd_opt(1826, 1, 1)?.and_hms_opt(0, 0, 0)?;
    let latest = (Utc::now() + chrono::Duration::days(1)).naive_utc();
    if !(earliest..=latest).contains(&local) {
        return None;
    }
    let instant = when.offset.map(|minutes| {
        DateTime::from_naive_utc_and_offset(
            local - chrono::Duration::minutes(i64::from(minutes)),
            Utc,
        )
    });
    Some(TakenAt { local, instant })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_by_magic_numbers() {
        assert_eq!(
            sniff(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0]),
            Some(ImageKind::Jpeg)
        );
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n...."), Some(ImageKind::Png));
        assert_eq!(sniff(b"GIF89a......"), Some(ImageKind::Gif));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some(ImageKind::Webp));
        assert_eq!(sniff(b"\0\0\0\x18ftypheic\0\0\0\0"), Some(ImageKind::Heic));
        assert_eq!(sniff(b"%PDF-1.7 ......."), None);
        assert_eq!(sniff(b""), None);
    }
}
