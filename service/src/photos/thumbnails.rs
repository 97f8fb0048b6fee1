//! Thumbnails: a JPEG of each size in [`SIZES`] (the long side, never enlarged), made by the
//! [`MakeThumbnails`] job queued with the upload's completion and stored beside the original
//! (`storage::keys::thumbnail`), deleted with it. `photos.thumbnail_status` says whether they
//! exist: a gallery asks for them once `ready`, and stops waiting at `unavailable`.

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
        if photo.thumbnail_status == ThumbnailStatus::Ready {
            return Ok(()); // made by an earlier run
        }
        // `unavailable` is tried again: an operator's retry of a job that gave up (`api jobs
        // retry`) makes them once the store is back; a photo that cannot be decoded stays so.
        let made = match decode_from_store(&context.storage, &photo.object_key, context.limits)
            .await
        {
            Ok(made) => made,
            // The photo went with its object between our read and this one.
            Err(StorageError::NotFound) => return Ok(()),
            Err(error) => {
                tracing::warn!(%error, key = photo.object_key, "reading a photo for its thumbnails failed");
                return Err(JobError::Retry("the photo could not be read".to_owned()));
            }
        };
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

    /// Given up (the store failed every attempt): `unavailable`, so clients stop waiting.
    async fn gave_up(
        &self,
        _context: &ThumbnailJobs,
        txn: &sea_orm::DatabaseTransaction,
        _reason: &str,
    ) -> Result<(), crate::ServiceError> {
        photo::Entity::update_many()
            .col_expr(
                photo::Column::ThumbnailStatus,
                Expr::value(ThumbnailStatus::Unavailable),
            )
            .col_expr(
                photo::Column::UpdatedAt,
                Expr::value(entity::timestamps::now()),
            )
            .filter(photo::Column::Id.eq(self.photo_id))
            .filter(photo::Column::ThumbnailStatus.eq(ThumbnailStatus::Pending))
            .exec(txn)
            .await?;
        Ok(())
    }
}

/// The thumbnails of the object at `key` ([`render`]). The object is copied chunk by chunk to a
/// scratch file that the decoder reads, so the job holds the decoded pixels and a few chunks,
/// never the whole original too (up to `AISTORY_MAX_UPLOAD_BYTES`).
async fn decode_from_store(
    storage: &Storage,
    key: &str,
    limits: ImageLimits,
) -> Result<Option<Vec<(u32, Bytes)>>, StorageError> {
    use futures_util::StreamExt;
    use std::io::Write;
    let mut stream = storage.stream(key).await?;
    // `None` ends the copy early (the store failed): the writer then decodes nothing.
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Option<Bytes>>(4);
    let writer = tokio::task::spawn_blocking(move || -> std::io::Result<_> {
        let scratch = Scratch::new();
        let mut file = std::io::BufWriter::new(std::fs::File::create(&scratch.0)?);
        while let Some(chunk) = receiver.blocking_recv() {
            match chunk {
                Some(chunk) => file.write_all(&chunk)?,
                None => return Ok(None),
            }
        }
        file.flush()?;
        drop(file);
        let source = std::io::BufReader::new(std::fs::File::open(&scratch.0)?);
        Ok(Some(render(source, limits)))
    });
    let mut failed = None;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(chunk) => {
                if sender.send(Some(chunk)).await.is_err() {
                    break; // the writer stopped: its error is below
                }
            }
            Err(error) => {
                sender.send(None).await.ok();
                failed = Some(error);
                break;
            }
        }
    }
    drop(sender);
    let written = writer
        .await
        .map_err(|error| StorageError::Config(format!("the thumbnail task failed: {error}")))?
        .map_err(|error| StorageError::Config(format!("the scratch file failed: {error}")));
    match (failed, written) {
        (Some(error), _) => Err(error),
        (None, Err(error)) => Err(error),
        (None, Ok(Some(made))) => Ok(made),
        (None, Ok(None)) => Err(StorageError::Config("the copy was cut".to_owned())),
    }
}

/// A file in the temporary directory, removed when dropped.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new() -> Scratch {
        Scratch(std::env::temp_dir().join(format!("aistory-thumbnail-{}", uuid::Uuid::new_v4())))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        std::fs::remove_file(&self.0).ok();
    }
}

/// Each size of thumbnail of the image in `source` as JPEG, or `None` when it cannot be decoded
/// here (a format without a decoder, like HEIC, or damaged bytes). Decoding is bounded by the
/// same limits as uploads; EXIF orientation is applied, so a portrait photo stays upright.
pub fn render(
    source: impl std::io::BufRead + std::io::Seek,
    limits: ImageLimits,
) -> Option<Vec<(u32, Bytes)>> {
    use image::ImageDecoder;
    let reader = image::ImageReader::new(source).with_guessed_format().ok()?;
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
    use std::io::Cursor;

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
        let made = render(Cursor::new(png(2000, 1000)), LIMITS).unwrap();
        let sides: Vec<(u32, u32)> = made
            .iter()
            .map(|(_, jpeg)| {
                let decoded = image::load_from_memory(jpeg).unwrap();
                (decoded.width(), decoded.height())
            })
            .collect();
        assert_eq!(sides, vec![(256, 128), (1024, 512)]);

        let small = render(Cursor::new(png(300, 200)), LIMITS).unwrap();
        let decoded = image::load_from_memory(&small[1].1).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (300, 200));
    }

    #[test]
    fn undecodable_bytes_have_no_thumbnail() {
        assert!(render(Cursor::new(b"not an image at all"), LIMITS).is_none());
        let mut truncated = png(64, 64);
        truncated.truncate(60);
        assert!(render(Cursor::new(truncated), LIMITS).is_none());
    }

    #[test]
    fn decoding_is_bounded_by_the_limits() {
        let tight = ImageLimits {
            max_pixels: 1_000,
            max_side: 100,
        };
        assert!(render(Cursor::new(png(200, 50)), tight).is_none());
    }
}
