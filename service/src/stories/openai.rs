//! The `openai` provider: any OpenAI-compatible chat-completions endpoint. The photo goes as
//! a data URL (downscaled so its long side is at most 1024 px); the story comes back as
//! structured JSON `{title, body}` and is validated. 429 and 5xx are retried honouring
//! `Retry-After`; each request is bounded by a time-out.

use std::io::Cursor;
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use settings::OpenAiSettings;

use super::provider::{ProviderError, StoryDraft, StoryProvider, StoryRequest, Style};

/// The longest side of the image we send.
pub const MAX_SIDE: u32 = 1024;
/// The longest we wait on a `Retry-After` within one job attempt.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// Longest story body we keep, in bytes (MySQL's TEXT holds 65,535).
const MAX_BODY_BYTES: usize = 60_000;

pub struct OpenAiProvider {
    settings: OpenAiSettings,
    client: reqwest::Client,
}

impl OpenAiProvider {
    pub fn new(settings: OpenAiSettings) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
            .build()?;
        Ok(OpenAiProvider { settings, client })
    }

    fn endpoint(&self) -> String {
        format!("{}/chat/completions", self.settings.base_url)
    }
}

/// The photo as a JPEG data URL, long side at most [`MAX_SIDE`].
pub fn data_url(image: &[u8]) -> Result<String, ProviderError> {
    let unreadable = |error: image::ImageError| {
        ProviderError::Permanent(format!("the photo could not be read: {error}"))
    };
    let mut reader = image::ImageReader::new(Cursor::new(image))
        .with_guessed_format()
        .map_err(|error| {
            ProviderError::Permanent(format!("the photo could not be read: {error}"))
        })?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(20_000);
    limits.max_image_height = Some(20_000);
    limits.max_alloc = Some(512 * 1024 * 1024);
    reader.limits(limits);
    let decoded = reader.decode().map_err(unreadable)?;
    let small = if decoded.width().max(decoded.height()) > MAX_SIDE {
        decoded.resize(MAX_SIDE, MAX_SIDE, image::imageops::FilterType::Triangle)
    } else {
        decoded
    };
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 85)
        .encode_image(&small.to_rgb8())
        .map_err(unreadable)?;
    Ok(format!(
        "data:image/jpeg;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(jpeg)
    ))
}

fn instructions(style: Style) -> &'static str {
    match style {
        Style::Adventure => "an adventure story: a hero, a quest, a turning point and a return",
        Style::Bedtime => {
            "a gentle bedtime story for a young child, calm and warm, ending in sleep"
        }
        Style::Mystery => "a short mystery: a puzzle, clues found in the photo, and a resolution",
        Style::Poem => "a poem of three to five stanzas",
    }
}

/// The largest answer read from the story service (a story is a few KiB of JSON).
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

enum Read {
    /// Over the limit: not read further.
    TooLarge,
    /// The body could not be read (`None`: no reqwest error to say why).
    Failed(Option<reqwest::Error>),
}

/// The response body, refusing to hold more than `limit` bytes (a broken or hostile service
/// could send gigabytes).
async fn read_bounded(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, Read> {
    if response
        .content_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Err(Read::TooLarge);
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > limit {
                    return Err(Read::TooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(error) => return Err(Read::Failed(Some(error))),
        }
    }
}

fn request_body(model: &str, request: &StoryRequest, image_url: &str) -> Value {
    let mut facts = Vec::new();
    if let Some(title) = &request.title {
        facts.push(format!("The owner titled the photo {title:?}."));
    }
    if let Some(taken) = request.taken_at {
        facts.push(format!(
            "It was taken on {}.",
            taken.format("%Y-%m-%d at %H:%M")
        ));
    }
    json!({
        "model": model,
        "messages": [
            {
                "role": "system",
                "content": "You write original stories inspired by a photograph. Answer with a \
                            JSON object {\"title\": string, \"body\": string} and nothing else. \
                            The body has several paragraphs separated by blank lines."
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "text",
                        "text": format!(
                            "Write {} about this photo, in the language with BCP 47 tag {:?}. {}",
                            instructions(request.style),
                            request.language,
                            facts.join(" ")
                        )
                    },
                    { "type": "image_url", "image_url": { "url": image_url } }
                ]
            }
        ],
        "response_format": {
            "type": "json_schema",
            "json_schema": {
                "name": "story",
                "strict": true,
                "schema": {
                    "type": "object",
                    "properties": {
                        "title": { "type": "string" },
                        "body": { "type": "string" }
                    },
                    "required": ["title", "body"],
                    "additionalProperties": false
                }
            }
        }
    })
}

/// Reads the story out of a chat-completions answer, or says why it cannot be used.
pub fn parse_answer(answer: &Value) -> Result<StoryDraft, String> {
    let message = answer
        .pointer("/choices/0/message")
        .ok_or("it has no choices[0].message")?;
    if let Some(refusal) = message.get("refusal").and_then(Value::as_str)
        && !refusal.is_empty()
    {
        return Err(format!("the model refused: {refusal}"));
    }
    let content = message
        .get("content")
        .and_then(Value::as_str)
        .ok_or("its message has no text content")?;
    // Some endpoints wrap JSON in a Markdown fence despite being asked not to.
    let content = content
        .trim()
        .trim_start_matches("```json")
        .trim_start_matches("```")
        .trim_end_matches("```")
        .trim();
    #[derive(serde::Deserialize)]
    struct Story {
        title: String,
        body: String,
    }
    let story: Story = serde_json::from_str(content)
        .map_err(|error| format!("its content is not the JSON story asked for ({error})"))?;
    let title = story.title.trim();
    let body = story.body.trim();
    if title.is_empty() || body.is_empty() {
        return Err("the story's title or body is empty".to_owned());
    }
    if body.len() > MAX_BODY_BYTES {
        return Err(format!("the story is longer than {MAX_BODY_BYTES} bytes"));
    }
    Ok(StoryDraft {
        title: title.chars().take(200).collect(),
        body: body.to_owned(),
    })
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    (when.with_timezone(&chrono::Utc) - chrono::Utc::now())
        .to_std()
        .ok()
}

#[async_trait::async_trait]
impl StoryProvider for OpenAiProvider {
    fn name(&self) -> &'static str {
        "openai"
    }

    fn model(&self) -> Option<&str> {
        Some(&self.settings.model)
    }

    fn check_language(&self, _language: &str) -> Result<(), String> {
        // The model is asked to write in the language; any well-formed tag may be tried.
        Ok(())
    }

    async fn write(&self, request: &StoryRequest) -> Result<StoryDraft, ProviderError> {
        let image = request.image.clone();
        let image_url = tokio::task::spawn_blocking(move || data_url(&image))
            .await
            .map_err(|error| {
                tracing::error!(%error, "preparing a photo for the story service stopped");
                ProviderError::Transient("preparing the photo stopped unexpectedly".to_owned())
            })??;
        let body = request_body(&self.settings.model, request, &image_url);
        let mut last_problem = String::new();
        for attempt in 0..=self.settings.max_retries {
            let mut call = self.client.post(self.endpoint()).json(&body);
            if let Some(key) = &self.settings.api_key {
                call = call.bearer_auth(key);
            }
            let wait = match call.send().await {
                Err(error) if error.is_timeout() => {
                    last_problem = format!(
                        "the story service did not answer within {} s",
                        self.settings.timeout.as_secs()
                    );
                    None
                }
                Err(error) => {
                    tracing::warn!(%error, "the story service could not be reached");
                    last_problem = "the story service could not be reached".to_owned();
                    None
                }
                Ok(response) => {
                    let status = response.status();
                    if status.is_success() {
                        let answer = match read_bounded(response, MAX_ANSWER_BYTES).await {
                            Ok(body) => serde_json::from_slice::<Value>(&body).map_err(|_| None),
                            Err(Read::TooLarge) => {
                                return Err(ProviderError::Permanent(format!(
                                    "the story service gave an answer over {} MiB",
                                    MAX_ANSWER_BYTES / (1024 * 1024)
                                )));
                            }
                            Err(Read::Failed(error)) => Err(error),
                        };
                        let answer: Value = match answer {
                            Ok(answer) => answer,
                            Err(Some(error)) if error.is_timeout() => {
                                last_problem = format!(
                                    "the story service did not answer within {} s",
                                    self.settings.timeout.as_secs()
                                );
                                if attempt < self.settings.max_retries {
                                    let backoff = Duration::from_millis(500u64 << attempt.min(6));
                                    tokio::time::sleep(backoff).await;
                                }
                                continue;
                            }
                            Err(_) => {
                                return Err(ProviderError::Permanent(
                                    "the story service gave an answer that is not JSON".to_owned(),
                                ));
                            }
                        };
                        return parse_answer(&answer).map_err(|why| {
                            ProviderError::Permanent(format!(
                                "the story service gave an answer we could not use: {why}"
                            ))
                        });
                    }
                    if status.as_u16() == 429 || status.is_server_error() {
                        last_problem = if status.as_u16() == 429 {
                            "the story service is busy (HTTP 429)".to_owned()
                        } else {
                            format!("the story service failed (HTTP {})", status.as_u16())
                        };
                        retry_after(&response)
                    } else {
                        // The configuration to check is for the operator's eyes (the log), not
                        // for the user who reads the failed photo's `error`.
                        let check = match status.as_u16() {
                            401 | 403 => "AISTORY_AI_API_KEY",
                            404 => "AISTORY_AI_BASE_URL and AISTORY_AI_MODEL",
                            _ => "the AISTORY_AI_* settings",
                        };
                        tracing::error!(
                            status = status.as_u16(),
                            check,
                            "the story service refused a request: check the configuration"
                        );
                        let reason = match status.as_u16() {
                            401 | 403 => "; the service is not set up correctly on our side",
                            _ => "",
                        };
                        return Err(ProviderError::Permanent(format!(
                            "the story service refused the request (HTTP {}){reason}",
                            status.as_u16()
                        )));
                    }
                }
            };
            if attempt < self.settings.max_retries {
                let backoff = Duration::from_millis(500u64 << attempt.min(6));
                let wait = wait.unwrap_or(backoff).min(MAX_RETRY_AFTER);
                tracing::info!(
                    attempt,
                    wait_ms = wait.as_millis() as u64,
                    last_problem,
                    "retrying the story service"
                );
                tokio::time::sleep(wait).await;
            }
        }
        Err(ProviderError::Transient(last_problem))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_validated() {
        let answer = |content: &str| json!({"choices": [{"message": {"content": content}}]});
        let story = parse_answer(&answer(r#"{"title": " T ", "body": "Once."}"#)).unwrap();
        assert_eq!(story.title, "T");
        assert!(parse_answer(&answer("```json\n{\"title\":\"T\",\"body\":\"B\"}\n```")).is_ok());
        assert!(
            parse_answer(&answer("not json"))
                .unwrap_err()
                .contains("not the JSON")
        );
        assert!(parse_answer(&answer(r#"{"title": "", "body": "x"}"#)).is_err());
        assert!(parse_answer(&json!({"choices": []})).is_err());
        let refused = json!({"choices": [{"message": {"content": null, "refusal": "no"}}]});
        assert!(parse_answer(&refused).unwrap_err().contains("refused"));
    }

    #[test]
    fn large_photos_are_downscaled() {
        let image = image::RgbImage::from_pixel(3000, 1500, image::Rgb([10, 200, 30]));
        let mut png = Vec::new();
        image
            .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let url = data_url(&png).unwrap();
        let encoded = url.strip_prefix("data:image/jpeg;base64,").unwrap();
        let jpeg = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap();
        let small = image::load_from_memory(&jpeg).unwrap();
        assert_eq!((small.width(), small.height()), (1024, 512));
    }
}
