//! Thumbnails: a JPEG of each size in [`SIZES`] (the long side, never enlarged), made by the
//! [`MakeThumbnails`] job queued with the upload's completion and stored beside the original
//! (`storage::keys::thumbnail`), deleted with it. `photos.thumbnail_status` says whether they
//! exist: a gallery asks for them once `ready`, and stops waiting at `unavailable`.

use std::io::Cursor;

use async_trait::async_trait;
use bytes::Bytes;
use entity::photo;
use entity::thumbnail_status::ThumbnailStatus;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
use serde::{Deserialize, Serialize};

use crate::images::ImageLimits;
use crate::storage::{Storage, StorageError, keys};
use crate::worker::{BackgroundJob, JobContext, JobError};

/// The long side of each thumbnail, in pixels: a gallery tile, and a view that fills a screen.
pub const SIZES: [u32; 2] = [256, 1024];

/// JPEG quality: small files, no visible blocks at these sizes.
const QUALITY: u8 = 82;

/// What the thumbnail job runs with.
#[derive(Clone)]
pub struct ThumbnailJobs {
    pub storage: Storage,
    pub limits: ImageLimits,
}

/// Make the thumbnails of `photo_id` (queued when its bytes are stored).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MakeThumbnails {
    pub photo_id: i64,
}

#[async_trait]
impl BackgroundJob for MakeThumbnails {
    const KIND: &'static str = "photos.thumbnails";
    type Context = ThumbnailJobs;

    async fn run(&self, context: &ThumbnailJobs, job: &JobContext<'_>) -> Result<(), JobError> {
        let Some(photo) = photo::Entity::find_by_id(self.photo_id)
            .one(job.pool)
            .await?
        else {
            return Ok(()); // deleted meanwhile
        };
        if photo.thumbnail_status != ThumbnailStatus::Pending {
            return Ok(()); // made by an earlier run
        }
        let original = match context.storage.get(&photo.object_key).await {
            Ok(bytes) => bytes,
            // The photo went with its object between our read and this one.
            Err(StorageError::NotFound) => return Ok(()),
            Err(error) => {
                tracing::warn!(%error, key = photo.object_key, "reading a photo for its thumbnails failed");
                return Err(JobError::Retry("the photo could not be read".to_owned()));
            }
        };
        let limits = context.limits;
        let made = tokio::task::spawn_blocking(move || render(&original, limits))
            .await
            .map_err(|error| JobError::Retry(format!("the thumbnail task failed: {error}")))?;
        let status = match made {
            Some(thumbnails) => {
                for (size, bytes) in thumbnails {
                    let key = keys::thumbnail(&photo.object_key, size);
                    context.storage.put(&key, bytes).await.map_err(|error| {
                        JobError::Retry(format!("storing thumbnail {key} failed: {error}"))
                    })?;
                }
                ThumbnailStatus::Ready
            }
            None => ThumbnailStatus::Unavailable,
        };
        let updated = photo::Entity::update_many()
            .col_expr(photo::Column::ThumbnailStatus, Expr::value(status))
            .col_expr(
                photo::Column::UpdatedAt,
                Expr::value(entity::timestamps::now()),
            )
            .filter(photo::Column::Id.eq(photo.id))
            .exec(job.pool)
            .await?;
        if updated.rows_affected == 0 && status == ThumbnailStatus::Ready {
            // Deleted while we worked: its deletion did not know of these objects yet.
            for size in SIZES {
                let key = keys::thumbnail(&photo.object_key, size);
                context.storage.delete(&key).await.ok();
            }
        }
        Ok(())
    }
}

/// Each size of thumbnail of `original` as JPEG, or `None` when it cannot be decoded here
/// (a format without a decoder, like HEIC, or damaged bytes). Decoding is bounded by the same
/// limits as uploads; EXIF orientation is applied, so a portrait photo stays upright.
pub fn render(original: &[u8], limits: ImageLimits) -> Option<Vec<(u32, Bytes)>> {
    use image::ImageDecoder;
    let reader = image::ImageReader::new(Cursor::new(original))
        .with_guessed_format()
        .ok()?;
    let mut decoder = reader.into_decoder().ok()?;
    let mut bounds = image::Limits::default();
    bounds.max_image_width = Some(limits.max_side);
    bounds.max_image_height = Some(limits.max_side);
    // RGBA at 16 bits per channel at the most, plus the resized copies.
    bounds.max_alloc = Some(limits.max_pixels.saturating_mul(8).saturating_add(64 << 20));
    decoder.set_limits(bounds).ok()?;
    let orientation = decoder.orientation().ok();
    let mut decoded = image::DynamicImage::from_decoder(decoder).ok()?;
    if let Some(orientation) = orientation {
        decoded.apply_orientation(orientation);
    }
    let mut out = Vec::with_capacity(SIZES.len());
    for size in SIZES {
        let resized = if decoded.width().max(decoded.height()) > size {
            decoded.resize(size, size, image::imageops::FilterType::Triangle)
        } else {
            decoded.clone()
        };
        let mut jpeg = Vec::new();
        let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, QUALITY);
        resized.to_rgb8().write_with_encoder(encoder).ok()?;
        out.push((size, Bytes::from(jpeg)));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let image = image::RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
        });
        let mut png = Vec::new();
        image
            .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        png
    }

    const LIMITS: ImageLimits = ImageLimits {
        max_pixels: 50_000_000,
        max_side: 20_000,
    };

    #[test]
    fn each_size_keeps_the_aspect_and_never_enlarges() {
        let made = render(&png(2000, 1000), LIMITS).unwrap();
        let sides: Vec<(u32, u32)> = made
            .iter()
            .map(|(_, jpeg)| {
                let decoded = image::load_from_memory(jpeg).unwrap();
                (decoded.width(), decoded.height())
            })
            .collect();
        assert_eq!(sides, vec![(256, 128), (1024, 512)]);

        let small = render(&png(300, 200), LIMITS).unwrap();
        let decoded = image::load_from_memory(&small[1].1).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (300, 200));
    }

    #[test]
    fn undecodable_bytes_have_no_thumbnail() {
        assert!(render(b"not an image at all", LIMITS).is_none());
        let mut truncated = png(64, 64);
        truncated.truncate(60);
        assert!(render(&truncated, LIMITS).is_none());
    }

    #[test]
    fn decoding_is_bounded_by_the_limits() {
        let tight = ImageLimits {
            max_pixels: 1_000,
            max_side: 100,
        };
        assert!(render(&png(200, 50), tight).is_none());
    }
}
